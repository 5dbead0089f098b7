package decode

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fastjson"
	"github.com/valyala/fastjson/fastfloat"

	"github.com/streamd/streamd/pkg/record"
)

// Reasons a record is rejected. They are stable: metrics and dead letters
// carry them as labels.
const (
	ReasonInvalidJSON     = "invalid_json"
	ReasonMissingField    = "missing_field"
	ReasonTypeMismatch    = "type_mismatch"
	ReasonBadTimestamp    = "bad_timestamp"
	ReasonFutureTimestamp = "future_timestamp"
	ReasonNoEventTime     = "no_event_time"
	// ReasonInvalidUTF8 is a string field (a key field included) holding
	// bytes that are not UTF-8. Such a string would make a Parquet file
	// unreadable as a whole ("Invalid string encoding" in DuckDB), so it is
	// never passed on as is.
	ReasonInvalidUTF8 = "invalid_utf8"
	// ReasonRecordTooLarge is a message longer than Config.MaxRecordBytes.
	ReasonRecordTooLarge = "record_too_large"
	// ReasonKeyTooLarge is a key field longer than Config.MaxKeyBytes.
	ReasonKeyTooLarge = "key_too_large"
	// ReasonEmptyRecord is an empty message or blank line, dead-lettered
	// under EmptyDeadLetter.
	ReasonEmptyRecord = "empty_record"
)

// UTF8Policy says what happens to a string field that is not valid UTF-8.
type UTF8Policy uint8

// UTF-8 policies. Dead-lettering is the default because a replaced byte is
// a changed value, which is a decision the pipeline owner makes.
const (
	// UTF8DeadLetter rejects the record with ReasonInvalidUTF8.
	UTF8DeadLetter UTF8Policy = iota
	// UTF8Replace replaces every invalid byte sequence with U+FFFD and
	// keeps the record; Counters.Repaired counts such records.
	UTF8Replace
)

// EmptyPolicy says what happens to an empty message or blank line.
type EmptyPolicy uint8

// Empty-record policies.
const (
	// EmptySkip drops the record after counting it in Counters.Empty.
	EmptySkip EmptyPolicy = iota
	// EmptyDeadLetter counts it and rejects it with ReasonEmptyRecord.
	EmptyDeadLetter
)

// Counter is the part of a Prometheus counter the decoder needs.
type Counter interface{ Inc() }

// Counters count what the decoder accepts or skips without a dead letter;
// nil counters count nothing. They are shared by the decoders of a source.
type Counters struct {
	// Empty counts empty messages and blank lines, skipped or not.
	Empty Counter
	// Repaired counts records kept after replacing invalid UTF-8.
	Repaired Counter
}

// futureRefresh is how many records at most share one reading of the clock
// for the MaxFuture check.
const futureRefresh = 64

// maxDetail bounds how much of a bad message or value an Error repeats, so a
// 16 MiB garbage line does not become a 16 MiB dead-letter reason.
const maxDetail = 100

// Error is why a message could not be decoded.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	// Detail names the field and what was seen, truncated.
	Detail string
}

// Error implements error.
func (e *Error) Error() string { return "decode record: " + e.Reason + ": " + e.Detail }

// DeadLetterReason returns Reason, the label a dead letter carries.
func (e *Error) DeadLetterReason() string { return e.Reason }

// Field is one declared field of a record.
type Field struct {
	// Name is the column name in the record schema.
	Name string
	// Path is the list of object keys leading to the value; empty means [Name].
	Path []string
	// Type is the column type; TypeNull is not allowed.
	Type record.Type
	// TimeFormat says how a timestamp field is written; ignored for other types.
	TimeFormat TimeFormat
	// Required fields that are absent or null reject the record.
	Required bool
	// Key marks a field used as a key (keyBy): its string values are
	// bounded by Config.MaxKeyBytes.
	Key bool
	// Raw keeps the value at Path, whatever its JSON type (object, array,
	// string, number, bool), as its JSON text in a string column, so
	// nested values reach the output whole. Type must be TypeString.
	Raw bool
	// Fields are the members of a TypeStruct field, each read from the
	// object key of its Name (members have no Path). See nested.go.
	Fields []Field
	// Elem is the element type of a TypeList field or the value type of a
	// TypeMap field (keys are strings).
	Elem *Field
}

// Config declares what a JSON decoder extracts.
type Config struct {
	// Fields are the record's columns, in schema order.
	Fields []Field
	// EventTimeField names a timestamp field that carries the event time;
	// "" means the message (broker) timestamp is the event time.
	EventTimeField string
	// MaxFuture rejects records whose event time is more than this ahead of
	// Now; 0 or negative disables the check.
	MaxFuture time.Duration
	// Now is the wall clock for MaxFuture; nil means time.Now. It is read
	// when a record's event time is past the limit computed at the last
	// reading, and otherwise at most every futureRefresh records: a clock
	// that goes forward gives the answer of a reading per record. (After
	// the clock steps back, up to futureRefresh-1 records are still judged
	// by the limit of the reading before the step.)
	Now func() time.Time
	// InvalidUTF8 is the policy for string fields that are not UTF-8.
	InvalidUTF8 UTF8Policy
	// Empty is the policy for empty messages and blank lines.
	Empty EmptyPolicy
	// MaxRecordBytes rejects longer messages with ReasonRecordTooLarge;
	// 0 means no limit.
	MaxRecordBytes int
	// MaxKeyBytes rejects records whose Key string fields are longer, with
	// ReasonKeyTooLarge; 0 means no limit.
	MaxKeyBytes int
	// Counters count empty and repaired records.
	Counters Counters
	// ExtrasField, when set, appends a string column of that name holding
	// the top-level keys of the message that no declared field reads (a
	// field with a nested path reads its first key), with their values, as
	// a JSON object; null when there are none. Nothing a producer adds is
	// lost.
	ExtrasField string
}

// slot is a decoded field waiting to be committed to the batch: strings stay
// in the parser's buffer until the whole record is known to be good. v.S is
// always empty: the string is str (full decoder) or msg[off:end] (fast
// path), and the fast path writes no pointer into a slot, which spares
// it the GC's write barriers.
type slot struct {
	v   record.Value
	str []byte
	// off and end delimit the string in the message, for the fast path.
	off, end int
	// fixed holds the repaired copy of a string under UTF8Replace, reused
	// from record to record.
	fixed []byte
	// own holds the JSON text of a raw value, reused across records.
	own []byte
	// cache shares the strings of a field that repeats its values (see
	// strCache); nil for other types.
	cache *strCache
}

// JSON decodes JSON objects into typed records. It is used by one goroutine.
type JSON struct {
	parser    fastjson.Parser
	fields    []Field
	schema    *record.Schema
	eventIdx  int
	maxFuture time.Duration
	now       func() time.Time
	// futureLimit is the MaxFuture limit (ms) at the last reading of now,
	// trusted for futureLeft more records.
	futureLimit int64
	futureLeft  int
	slots       []slot
	scratch     []byte
	utf8        UTF8Policy
	empty       EmptyPolicy
	maxRecord   int
	maxKey      int
	counters    Counters
	repaired    bool // the record being decoded had a string repaired
	// extras is the index of the extras column, or -1; declared holds the
	// top-level keys the fields read.
	extras   int
	declared map[string]bool
	// fast is the key tree of the one-pass decoder, nil when the
	// configuration needs the full one; fastSeen marks the fields read.
	fast     *fastNode
	fastSeen []bool
	// nested is the scratch of nested fields.
	nested nestedState
}

// NewJSON validates cfg and builds a decoder.
func NewJSON(cfg Config) (*JSON, error) {
	if len(cfg.Fields) == 0 {
		return nil, errors.New("new json decoder: no fields declared")
	}
	fields := make([]Field, len(cfg.Fields))
	schemaFields := make([]record.Field, len(cfg.Fields))
	eventIdx := -1
	for i, f := range cfg.Fields {
		if !f.Type.Scalar() && !f.Type.Nested() {
			return nil, fmt.Errorf("new json decoder: field %q: unsupported type %s", f.Name, f.Type)
		}
		if f.Type.Nested() {
			if err := checkNested(&f, f.Name); err != nil {
				return nil, fmt.Errorf("new json decoder: %w", err)
			}
		}
		if f.Raw && f.Type != record.TypeString {
			return nil, fmt.Errorf("new json decoder: raw field %q must be a string column, got %s", f.Name, f.Type)
		}
		if f.TimeFormat > TimeRFC3339 {
			return nil, fmt.Errorf("new json decoder: field %q: unknown time format %d", f.Name, f.TimeFormat)
		}
		if len(f.Path) == 0 {
			f.Path = []string{f.Name}
		} else {
			f.Path = append([]string(nil), f.Path...)
		}
		for _, k := range f.Path {
			if k == "" {
				return nil, fmt.Errorf("new json decoder: field %q: empty path element", f.Name)
			}
		}
		if f.Name == cfg.EventTimeField {
			if f.Type != record.TypeTimestamp {
				return nil, fmt.Errorf("new json decoder: event time field %q has type %s, want timestamp", f.Name, f.Type)
			}
			eventIdx = i
		}
		fields[i] = f
		schemaFields[i] = schemaField(f)
	}
	if cfg.InvalidUTF8 > UTF8Replace {
		return nil, fmt.Errorf("new json decoder: unknown invalid UTF-8 policy %d", cfg.InvalidUTF8)
	}
	if cfg.Empty > EmptyDeadLetter {
		return nil, fmt.Errorf("new json decoder: unknown empty-record policy %d", cfg.Empty)
	}
	if cfg.MaxRecordBytes < 0 || cfg.MaxKeyBytes < 0 {
		return nil, fmt.Errorf("new json decoder: maxRecordBytes %d and maxKeyBytes %d must be >= 0", cfg.MaxRecordBytes, cfg.MaxKeyBytes)
	}
	if cfg.EventTimeField != "" && eventIdx < 0 {
		return nil, fmt.Errorf("new json decoder: event time field %q is not declared", cfg.EventTimeField)
	}
	extras := -1
	declared := make(map[string]bool, len(fields))
	for _, f := range fields {
		declared[f.Path[0]] = true
	}
	if cfg.ExtrasField != "" {
		extras = len(schemaFields)
		schemaFields = append(schemaFields, record.Field{Name: cfg.ExtrasField, Type: record.TypeString})
	}
	schema, err := record.NewSchema(schemaFields...)
	if err != nil {
		return nil, fmt.Errorf("new json decoder: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	slots := make([]slot, len(schemaFields))
	for i, f := range schemaFields {
		if f.Type == record.TypeString {
			slots[i].cache = newStrCache()
		}
	}
	return &JSON{
		fields:    fields,
		schema:    schema,
		eventIdx:  eventIdx,
		maxFuture: cfg.MaxFuture,
		now:       now,
		slots:     slots,
		scratch:   make([]byte, 0, 64),
		utf8:      cfg.InvalidUTF8,
		empty:     cfg.Empty,
		maxRecord: cfg.MaxRecordBytes,
		maxKey:    cfg.MaxKeyBytes,
		counters:  cfg.Counters,
		extras:    extras,
		declared:  declared,
		fast:      fastPathFor(fields, cfg.ExtrasField),
		fastSeen:  make([]bool, len(fields)),
	}, nil
}

// Schema returns the schema of the rows Decode appends.
func (d *JSON) Schema() *record.Schema { return d.schema }

// Decode parses msg and appends one row to b, whose width must be the schema
// length. brokerTS (milliseconds) is the event time when no event time field
// is configured. On failure it returns an *Error and leaves b unchanged. An
// empty message (nothing but JSON whitespace) under EmptySkip is counted and
// appends nothing, with a nil error.
func (d *JSON) Decode(msg []byte, brokerTS int64, b *record.Batch) error {
	if d.maxRecord > 0 && len(msg) > d.maxRecord {
		return &Error{Reason: ReasonRecordTooLarge, Detail: fmt.Sprintf("record of %d bytes is over the limit of %d bytes (decode.maxRecordBytes)", len(msg), d.maxRecord)}
	}
	if isBlank(msg) {
		inc(d.counters.Empty)
		if d.empty == EmptyDeadLetter {
			return &Error{Reason: ReasonEmptyRecord, Detail: "empty message or blank line"}
		}
		return nil
	}
	d.repaired = false
	fast := d.fast != nil && d.fastDecode(msg)
	if !fast {
		d.repaired = false
		if e := d.fullDecode(msg); e != nil {
			return e
		}
	}

	var eventMS int64
	if d.eventIdx >= 0 {
		ev := d.slots[d.eventIdx].v
		if ev.IsNull() {
			return &Error{Reason: ReasonNoEventTime, Detail: fmt.Sprintf("field %q is absent or null", d.fields[d.eventIdx].Name)}
		}
		eventMS = int64(ev.N) / 1000 //nolint:gosec // N holds a timestamp's int64 bits

	} else {
		if brokerTS <= 0 {
			return &Error{Reason: ReasonNoEventTime, Detail: "no event time field configured and the message has no timestamp"}
		}
		eventMS = brokerTS
	}
	if d.maxFuture > 0 {
		// A clock reading (about 70 ns) is a tenth of a short record's
		// decode; a time within the last limit is within the current one
		// while the clock goes forward.
		if d.futureLeft <= 0 || eventMS > d.futureLimit {
			d.futureLimit = d.now().Add(d.maxFuture).UnixMilli()
			d.futureLeft = futureRefresh
		}
		d.futureLeft--
		if limit := d.futureLimit; eventMS > limit {
			return &Error{Reason: ReasonFutureTimestamp, Detail: fmt.Sprintf("event time %s is more than %s ahead of now",
				time.UnixMilli(eventMS).UTC().Format(time.RFC3339Nano), d.maxFuture)}
		}
	}

	if d.repaired {
		inc(d.counters.Repaired)
	}
	row := b.AppendRow(eventMS)
	for i := range d.slots {
		s := &d.slots[i]
		v := s.v
		switch {
		case v.T == record.TypeString && fast:
			str, ok := "", false
			if s.cache != nil {
				str, ok = s.cache.get(msg[s.off:s.end])
			}
			if !ok {
				str = b.Intern(msg[s.off:s.end])
			}
			v.S = str
		case v.T == record.TypeString || v.T.Nested():
			// Nested values are only decoded by the full decoder.
			v.S = b.Intern(s.str)
			s.str = nil
		}
		row[i] = v
	}
	return nil
}

// fullDecode parses msg into a tree and fills the slots from it: the
// decoder for every message, with every error; the fast path answers the
// well-formed ones.
func (d *JSON) fullDecode(msg []byte) *Error {
	doc, err := d.parser.ParseBytes(msg)
	if err != nil {
		return &Error{Reason: ReasonInvalidJSON, Detail: truncate(err.Error())}
	}
	if doc.Type() != fastjson.TypeObject {
		return &Error{Reason: ReasonInvalidJSON, Detail: "want a JSON object, got " + doc.Type().String()}
	}
	for i := range d.fields {
		f := &d.fields[i]
		s := &d.slots[i]
		s.str = nil
		v := doc.Get(f.Path...)
		if v == nil || v.Type() == fastjson.TypeNull {
			if f.Required {
				return d.missing(f, v)
			}
			s.v = record.Null
			continue
		}
		if f.Raw {
			var fixed bool
			s.own, fixed = appendValidJSON(s.own[:0], v)
			if fixed {
				if e := d.invalidUTF8(f.Name, s.own); e != nil {
					return e
				}
			}
			s.v = record.Value{T: record.TypeString}
			s.str = s.own
			continue
		}
		if f.Type.Nested() {
			if e := d.decodeNested(f, v, s); e != nil {
				return e
			}
			continue
		}
		if e := d.decodeValue(f, v, s); e != nil {
			return e
		}
	}
	if d.extras >= 0 {
		if fixed := d.collectExtras(doc, &d.slots[d.extras]); fixed {
			if e := d.invalidUTF8("extras", d.slots[d.extras].own); e != nil {
				return e
			}
		}
	}
	return nil
}

// invalidUTF8 applies the UTF-8 policy to a JSON-text field that had
// invalid bytes (already replaced in text): a dead letter, or a repair.
func (d *JSON) invalidUTF8(name string, text []byte) *Error {
	if d.utf8 == UTF8DeadLetter {
		return &Error{Reason: ReasonInvalidUTF8, Detail: fmt.Sprintf("field %q: %q is not valid UTF-8", name, truncate(string(text)))}
	}
	d.repaired = true
	return nil
}

// collectExtras renders the undeclared top-level keys of doc as a JSON
// object into s, or null when there are none; it reports whether invalid
// UTF-8 had to be replaced.
func (d *JSON) collectExtras(doc *fastjson.Value, s *slot) (fixed bool) {
	s.own = s.own[:0]
	obj, _ := doc.Object()
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if d.declared[b2s(key)] {
			return
		}
		if len(s.own) == 0 {
			s.own = append(s.own, '{')
		} else {
			s.own = append(s.own, ',')
		}
		if !utf8.Valid(key) {
			fixed = true
		}
		s.own = appendJSONString(s.own, key)
		s.own = append(s.own, ':')
		var f bool
		s.own, f = appendValidJSON(s.own, v)
		fixed = fixed || f
	})
	if len(s.own) == 0 {
		s.v, s.str = record.Null, nil
		return fixed
	}
	s.own = append(s.own, '}')
	s.v = record.Value{T: record.TypeString}
	s.str = s.own
	return fixed
}

// appendValidJSON appends the JSON text of v, with invalid UTF-8 replaced
// by U+FFFD, since JSON text (and Parquet's JSON type) is UTF-8; it reports
// whether anything was replaced.
func appendValidJSON(dst []byte, v *fastjson.Value) ([]byte, bool) {
	start := len(dst)
	dst = v.MarshalTo(dst)
	if utf8.Valid(dst[start:]) {
		return dst, false
	}
	fixed := []byte(strings.ToValidUTF8(string(dst[start:]), "\ufffd"))
	return append(dst[:start], fixed...), true
}

// appendJSONString appends s as a JSON string (RFC 8259), invalid UTF-8
// replaced by U+FFFD.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

func (d *JSON) missing(f *Field, v *fastjson.Value) *Error {
	if v == nil {
		return &Error{Reason: ReasonMissingField, Detail: fmt.Sprintf("required field %q is absent", f.Name)}
	}
	return &Error{Reason: ReasonMissingField, Detail: fmt.Sprintf("required field %q is null", f.Name)}
}

// decodeValue converts one non-null JSON value into s according to f.
func (d *JSON) decodeValue(f *Field, v *fastjson.Value, s *slot) *Error {
	switch f.Type {
	case record.TypeString:
		if v.Type() != fastjson.TypeString {
			return d.mismatch(f, v)
		}
		str, _ := v.StringBytes()
		if !utf8.Valid(str) {
			if d.utf8 == UTF8DeadLetter {
				return &Error{Reason: ReasonInvalidUTF8, Detail: fmt.Sprintf("field %q: %q is not valid UTF-8", f.Name, truncate(string(str)))}
			}
			s.fixed = appendValidUTF8(s.fixed[:0], str)
			str = s.fixed
			d.repaired = true
		}
		if f.Key && d.maxKey > 0 && len(str) > d.maxKey {
			return &Error{Reason: ReasonKeyTooLarge, Detail: fmt.Sprintf("key field %q of %d bytes is over the limit of %d bytes (decode.maxKeyBytes)", f.Name, len(str), d.maxKey)}
		}
		s.v = record.Value{T: record.TypeString}
		s.str = str
	case record.TypeBool:
		switch v.Type() {
		case fastjson.TypeTrue:
			s.v = record.Bool(true)
		case fastjson.TypeFalse:
			s.v = record.Bool(false)
		default:
			return d.mismatch(f, v)
		}
	case record.TypeInt, record.TypeFloat:
		if v.Type() != fastjson.TypeNumber {
			return d.mismatch(f, v)
		}
		d.scratch = v.MarshalTo(d.scratch[:0])
		val, ok := numberValue(d.scratch, f.Type)
		if !ok {
			return d.mismatch(f, v)
		}
		s.v = val
	case record.TypeTimestamp:
		return d.decodeTimestamp(f, v, s)
	}
	return nil
}

// parseNumber parses the text of a JSON number, as an int64 when it is
// written as an integer that fits, else as a finite float64. ok is false for
// NaN, Inf and garbage that fastjson let through as a number.
func parseNumber(raw []byte) (n int64, isInt bool, f float64, ok bool) {
	if isIntegerText(raw) {
		if n, err := fastfloat.ParseInt64(b2s(raw)); err == nil {
			return n, true, 0, true
		}
	}
	f, err := parseFloat(raw) // exact, unlike fastfloat.Parse (float.go)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, 0, false
	}
	return 0, false, f, true
}

// numberValue converts the text of a JSON number to an int or float
// value; ok is false for a number the type cannot hold (a fraction or an
// overflow for an int, NaN or infinity).
func numberValue(raw []byte, t record.Type) (record.Value, bool) {
	n, isInt, fl, ok := parseNumber(raw)
	return numberValueOf(n, isInt, fl, ok, t)
}

// numberValueOf is numberValue of a number parseNumber parsed.
func numberValueOf(n int64, isInt bool, fl float64, ok bool, t record.Type) (record.Value, bool) {
	if !ok {
		return record.Null, false
	}
	if t == record.TypeFloat {
		if isInt {
			fl = float64(n)
		}
		return record.Float(fl), true
	}
	if !isInt {
		// 2^63 is exactly representable; anything at or beyond it overflows.
		if fl != math.Trunc(fl) || fl >= 1<<63 || fl < -(1<<63) {
			return record.Null, false
		}
		n = int64(fl)
	}
	return record.Int(n), true
}

func isIntegerText(p []byte) bool {
	if len(p) > 0 && p[0] == '-' {
		p = p[1:]
	}
	if len(p) == 0 || len(p) > 19 {
		return false
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (d *JSON) decodeTimestamp(f *Field, v *fastjson.Value, s *slot) *Error {
	switch v.Type() {
	case fastjson.TypeString:
		if f.TimeFormat != TimeAuto && f.TimeFormat != TimeRFC3339 {
			return d.mismatch(f, v)
		}
		str, _ := v.StringBytes()
		t, err := time.Parse(time.RFC3339Nano, b2s(str))
		if err != nil {
			return &Error{Reason: ReasonBadTimestamp, Detail: fmt.Sprintf("field %q: %q is not an RFC 3339 time", f.Name, truncate(string(str)))}
		}
		// UnixMicro is only meaningful within ±292k years; RFC 3339 years are 4 digits.
		us := t.UnixMicro()
		if us < 0 {
			return d.badTimestamp(f, v, "before 1970")
		}
		s.v = record.Timestamp(us)
		return nil
	case fastjson.TypeNumber:
		if f.TimeFormat == TimeRFC3339 {
			return d.mismatch(f, v)
		}
		d.scratch = v.MarshalTo(d.scratch[:0])
		us, ok, finite := epochMicrosChecked(d.scratch, f.TimeFormat)
		if !finite {
			return d.badTimestamp(f, v, "not a finite number")
		}
		if !ok {
			return d.badTimestamp(f, v, "out of range")
		}
		if us < 0 {
			return d.badTimestamp(f, v, "before 1970")
		}
		s.v = record.Timestamp(us)
		return nil
	}
	return d.mismatch(f, v)
}

// epochMicrosChecked converts the text of an epoch number in format (or
// guessed by magnitude for TimeAuto) to microseconds; ok is false when it
// is not a finite number or out of range, finite says which, for the error
// message.
func epochMicrosChecked(raw []byte, format TimeFormat) (us int64, ok, finite bool) {
	n, isInt, fl, ok := parseNumber(raw)
	return epochMicrosOf(n, isInt, fl, ok, format)
}

// epochMicrosOf is epochMicrosChecked of a number parseNumber parsed.
func epochMicrosOf(n int64, isInt bool, fl float64, ok bool, format TimeFormat) (us int64, _, finite bool) {
	if !ok {
		return 0, false, false
	}
	if format == TimeAuto {
		mag := fl
		if isInt {
			mag = float64(n)
		}
		format = formatByMagnitude(math.Abs(mag))
	}
	us, ok = toMicros(n, isInt, fl, format)
	return us, ok, true
}

// formatByMagnitude guesses the unit of an epoch number: any time between
// 1973 and 5138 has a distinct magnitude in each unit.
func formatByMagnitude(x float64) TimeFormat {
	switch {
	case x < 1e11:
		return TimeEpochS
	case x < 1e14:
		return TimeEpochMS
	case x < 1e17:
		return TimeEpochUS
	}
	return TimeEpochNS
}

// toMicros converts an epoch number in the given unit to microseconds,
// reporting false on overflow.
func toMicros(n int64, isInt bool, f float64, format TimeFormat) (int64, bool) {
	switch format {
	case TimeEpochS:
		if isInt {
			return scaleMicros(n, 1_000_000)
		}
		return floatMicros(f * 1e6)
	case TimeEpochMS:
		if isInt {
			return scaleMicros(n, 1_000)
		}
		return floatMicros(f * 1e3)
	case TimeEpochUS:
		if isInt {
			return n, true
		}
		return floatMicros(f)
	case TimeEpochNS:
		if isInt {
			return floorDiv(n, 1000), true
		}
		return floatMicros(f / 1e3)
	}
	return 0, false
}

// scaleMicros is n * mult, or false on overflow. It is inlined with a
// constant mult, so the bounds are constants rather than divisions.
func scaleMicros(n, mult int64) (int64, bool) {
	if n > math.MaxInt64/mult || n < math.MinInt64/mult {
		return 0, false
	}
	return n * mult, true
}

func floatMicros(us float64) (int64, bool) {
	us = math.Round(us)
	if math.IsNaN(us) || us >= 1<<63 || us < -(1<<63) {
		return 0, false
	}
	return int64(us), true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) {
		q--
	}
	return q
}

func (d *JSON) mismatch(f *Field, v *fastjson.Value) *Error {
	want := f.Type.String()
	if f.Type == record.TypeTimestamp {
		want = "timestamp (" + f.TimeFormat.String() + ")"
	}
	return &Error{Reason: ReasonTypeMismatch, Detail: fmt.Sprintf("field %q: want %s, got %s %s",
		f.Name, want, v.Type(), truncate(string(v.MarshalTo(nil))))}
}

func (d *JSON) badTimestamp(f *Field, v *fastjson.Value, why string) *Error {
	return &Error{Reason: ReasonBadTimestamp, Detail: fmt.Sprintf("field %q: %s is %s",
		f.Name, truncate(string(v.MarshalTo(nil))), why)}
}

// truncate shortens s for an error detail. The result is always valid
// UTF-8 (invalid bytes become U+FFFD), because details are written to
// dead-letter sinks, Parquet included.
func truncate(s string) string {
	if len(s) <= maxDetail {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	cut := maxDetail
	// Do not split a UTF-8 sequence: back up to a rune start.
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "\uFFFD") + "…"
}

// appendValidUTF8 appends p to dst with every invalid byte sequence
// replaced by U+FFFD, the way strings.ToValidUTF8 does, without allocating
// once dst has grown.
func appendValidUTF8(dst, p []byte) []byte {
	invalid := false // the previous byte was part of an invalid sequence
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			invalid = false
			continue
		}
		_, size := utf8.DecodeRune(p[i:])
		if size == 1 {
			// One replacement per run of invalid bytes, as strings.ToValidUTF8.
			if !invalid {
				dst = append(dst, "\uFFFD"...)
				invalid = true
			}
			i++
			continue
		}
		dst = append(dst, p[i:i+size]...)
		i += size
		invalid = false
	}
	return dst
}

// isBlank reports a message holding nothing but JSON whitespace.
func isBlank(msg []byte) bool {
	for _, c := range msg {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return false
		}
	}
	return true
}

func inc(c Counter) {
	if c != nil {
		c.Inc()
	}
}

// b2s views p as a string without copying; the string must not outlive p's
// next modification.
func b2s(p []byte) string { return unsafe.String(unsafe.SliceData(p), len(p)) }
