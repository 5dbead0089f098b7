package parquet

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/streamd/streamd/pkg/record"
)

// DefaultPartition is the directory value of a null or empty partition
// field, the name Hive, Spark and Trino read back as NULL.
const DefaultPartition = "__HIVE_DEFAULT_PARTITION__"

type segmentKind uint8

const (
	segLiteral segmentKind = iota
	segDate
	segHour
	segMinute
	segField
)

// segment is one piece of a partition template: literal text, a time
// token, or a field reference.
type segment struct {
	kind  segmentKind
	text  string // literal text or field name
	field int    // field index once bound to a schema
}

const (
	msPerMinute = int64(time.Minute / time.Millisecond)
	msPerHour   = int64(time.Hour / time.Millisecond)
	msPerDay    = 24 * msPerHour
)

// parseTemplate splits a partition template into segments and checks that
// every rendering stays inside the output directory.
func parseTemplate(s string) ([]segment, error) {
	var segs []segment
	rest := s
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if close := strings.IndexByte(rest, '}'); close >= 0 && (open < 0 || close < open) {
			return nil, fmt.Errorf("unmatched '}' in %q", s)
		}
		if open < 0 {
			segs = append(segs, segment{kind: segLiteral, text: rest})
			break
		}
		if open > 0 {
			segs = append(segs, segment{kind: segLiteral, text: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("unclosed '{' in %q", s)
		}
		name := rest[open+1 : open+end]
		switch {
		case name == "":
			return nil, fmt.Errorf("empty {} in %q", s)
		case strings.ContainsAny(name, "{/"):
			return nil, fmt.Errorf("invalid token {%s} in %q", name, s)
		case name == "date":
			segs = append(segs, segment{kind: segDate})
		case name == "hour":
			segs = append(segs, segment{kind: segHour})
		case name == "minute":
			segs = append(segs, segment{kind: segMinute})
		default:
			segs = append(segs, segment{kind: segField, text: name})
		}
		rest = rest[open+end+1:]
	}
	// Render with placeholder values to check the directory structure:
	// tokens always render to something non-empty without '/' or a
	// leading '.', so only the literal text can escape the directory.
	var shape strings.Builder
	for _, sg := range segs {
		if sg.kind == segLiteral {
			shape.WriteString(sg.text)
		} else {
			shape.WriteByte('x')
		}
	}
	if shape.Len() == 0 {
		return segs, nil
	}
	if strings.ContainsRune(shape.String(), '\\') {
		return nil, fmt.Errorf("backslash in %q", s)
	}
	for _, dir := range strings.Split(shape.String(), "/") {
		switch {
		case dir == "":
			return nil, fmt.Errorf("empty directory name in %q", s)
		case dir == "." || dir == "..":
			return nil, fmt.Errorf("directory %q in %q", dir, s)
		case dir[0] == '.':
			return nil, fmt.Errorf("hidden directory %q in %q", dir, s)
		}
	}
	return segs, nil
}

// partitioner renders the partition directory of a row. It is used by one
// writer goroutine and reuses its scratch buffer.
type partitioner struct {
	segs []segment
	// bucketMs is the width of the finest time token, so rows whose event
	// times fall in the same bucket share the time part of the path.
	bucketMs int64
	// fields are the record fields the path depends on.
	fields  []int
	scratch []byte
}

func newPartitioner(template string, schema *record.Schema) (*partitioner, error) {
	segs, err := parseTemplate(template)
	if err != nil {
		return nil, err
	}
	p := &partitioner{segs: segs}
	for i := range p.segs {
		sg := &p.segs[i]
		switch sg.kind {
		case segDate:
			p.bucketMs = finer(p.bucketMs, msPerDay)
		case segHour:
			p.bucketMs = finer(p.bucketMs, msPerHour)
		case segMinute:
			p.bucketMs = finer(p.bucketMs, msPerMinute)
		case segField:
			idx, ok := schema.Index(sg.text)
			if !ok {
				return nil, fmt.Errorf("unknown field {%s} (schema: %s)", sg.text, schema)
			}
			sg.field = idx
			if !containsInt(p.fields, idx) {
				p.fields = append(p.fields, idx)
			}
		}
	}
	return p, nil
}

func finer(cur, next int64) int64 {
	if cur == 0 || next < cur {
		return next
	}
	return cur
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// bucket returns the time bucket of an event time; rows in the same bucket
// with the same partition field values render to the same path.
func (p *partitioner) bucket(ms int64) int64 {
	if p.bucketMs == 0 {
		return 0
	}
	q := ms / p.bucketMs
	if ms%p.bucketMs < 0 {
		q--
	}
	return q
}

// render appends the partition directory of a row to dst.
func (p *partitioner) render(dst []byte, row record.Row, ms int64) []byte {
	var t time.Time
	if p.bucketMs != 0 {
		t = time.UnixMilli(ms).UTC()
	}
	for _, sg := range p.segs {
		switch sg.kind {
		case segLiteral:
			dst = append(dst, sg.text...)
		case segDate:
			dst = t.AppendFormat(dst, time.DateOnly)
		case segHour:
			dst = appendTwoDigits(dst, t.Hour())
		case segMinute:
			dst = appendTwoDigits(dst, t.Minute())
		case segField:
			dst = p.appendValue(dst, row[sg.field])
		}
	}
	return dst
}

func appendTwoDigits(dst []byte, n int) []byte {
	return append(dst, byte('0'+n/10), byte('0'+n%10))
}

func (p *partitioner) appendValue(dst []byte, v record.Value) []byte {
	if v.T == record.TypeString {
		return escapePathValue(dst, v.S)
	}
	if v.IsNull() {
		return append(dst, DefaultPartition...)
	}
	p.scratch = v.AppendText(p.scratch[:0])
	return escapePathValue(dst, p.scratch)
}

// mustEscape marks the bytes Hive escapes in partition values (FileUtils.
// escapePathName): control characters, path separators and characters that
// are special in paths, globs or URIs.
var mustEscape = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	for _, c := range "\"#%'*/:=?\\\x7f{[]^" {
		t[c] = true
	}
	return t
}()

// escapePathValue appends a partition value escaped as Hive does (%XX with
// upper-case hex). An empty value becomes DefaultPartition, a leading '.'
// is escaped too so a value can never make a hidden directory or "..", and
// so are bytes that are not valid UTF-8, which object keys cannot hold.
func escapePathValue[S string | []byte](dst []byte, s S) []byte {
	if len(s) == 0 {
		return append(dst, DefaultPartition...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			// Object keys must be UTF-8: bytes of an invalid sequence are
			// escaped like control characters, valid ones are kept.
			if r, n := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))])); r != utf8.RuneError || n > 1 {
				dst = append(dst, s[i:i+n]...)
				i += n - 1
				continue
			}
			dst = append(dst, '%', hexDigits[c>>4], hexDigits[c&15])
			continue
		}
		if mustEscape[c] || (i == 0 && c == '.') {
			dst = append(dst, '%', hexDigits[c>>4], hexDigits[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

const hexDigits = "0123456789ABCDEF"

// CheckPartition reports whether a partition template is well formed and
// names only fields of schema, so a pipeline can be rejected before it runs.
func CheckPartition(template string, schema *record.Schema) error {
	_, err := newPartitioner(template, schema)
	return err
}
