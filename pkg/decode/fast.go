package decode

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/streamd/streamd/pkg/record"
)

// The fast path decodes a well-formed message in one pass over its bytes,
// without building a tree: declared values are parsed where they stand,
// everything else is skipped (and checked to be JSON). It answers only
// messages it can decode exactly as the full decoder would: on anything
// else — an escape in a key or a declared string, a duplicate key, an
// unusual number, a missing required field, a value that is not the
// declared type, invalid UTF-8, deep nesting, any syntax error — it gives
// up and the full decoder decodes the message again, with its own errors.
// FuzzFastMatchesFull holds the two to the same rows and errors.

// fastNode is one object level of the declared paths: a key leads to a
// field or to a deeper object.
type fastNode struct {
	keys []string
	// quoted is each key as a message spells it, with its colon:
	// "key": ("" for a key with a quote or a backslash, which no plain
	// string matches).
	quoted []string
	field  []int       // index into JSON.fields, or -1
	child  []*fastNode // for keys that lead deeper
	// cursor is where the next key is looked for first: producers write
	// keys in the same order message after message.
	cursor int
}

// maxFastDepth bounds the nesting the fast path skips through; deeper
// messages go to the full decoder.
const maxFastDepth = 32

// newFastPath builds the key tree of the declared fields, or returns nil
// when the configuration needs the full decoder (raw fields, extras, a
// path that is both a field and the prefix of another).
func newFastPath(fields []Field, extras string) *fastNode {
	if extras != "" {
		return nil
	}
	root := &fastNode{}
	for i, f := range fields {
		if f.Raw {
			return nil
		}
		n := root
		for depth, k := range f.Path {
			j := n.find(k)
			last := depth == len(f.Path)-1
			if j < 0 {
				q := ""
				if !strings.ContainsAny(k, "\"\\") {
					q = `"` + k + `":`
				}
				n.keys = append(n.keys, k)
				n.quoted = append(n.quoted, q)
				n.field = append(n.field, -1)
				n.child = append(n.child, nil)
				j = len(n.keys) - 1
			}
			if last {
				if n.field[j] >= 0 || n.child[j] != nil {
					return nil
				}
				n.field[j] = i
				break
			}
			if n.field[j] >= 0 {
				return nil
			}
			if n.child[j] == nil {
				n.child[j] = &fastNode{}
			}
			n = n.child[j]
		}
	}
	return root
}

// at reports whether the message goes on with q, which is not empty.
func (s *fastScan) at(q string) bool {
	return q != "" && len(s.msg)-s.pos >= len(q) && b2s(s.msg[s.pos:s.pos+len(q)]) == q
}

func (n *fastNode) find(k string) int {
	for j, key := range n.keys {
		if key == k {
			return j
		}
	}
	return -1
}

// lookup finds a key, trying the one after the last match first.
func (n *fastNode) lookup(k []byte) int {
	if c := n.cursor; c < len(n.keys) && n.keys[c] == b2s(k) {
		n.cursor = c + 1
		return c
	}
	for j, key := range n.keys {
		if key == b2s(k) {
			n.cursor = j + 1
			return j
		}
	}
	return -1
}

// fastScan is the state of one fast decode.
type fastScan struct {
	d    *JSON
	msg  []byte
	pos  int
	seen []bool // per field
}

// fastDecode fills d.slots from msg; false means the full decoder must
// decode msg.
func (d *JSON) fastDecode(msg []byte) bool {
	s := fastScan{d: d, msg: msg, seen: d.fastSeen}
	clear(s.seen)
	s.ws()
	if !s.object(d.fast, 0) {
		return false
	}
	s.ws()
	if s.pos != len(msg) {
		return false
	}
	for i := range d.fields {
		if !s.seen[i] {
			if d.fields[i].Required {
				return false
			}
			d.slots[i].v.T, d.slots[i].v.N = record.TypeNull, 0
		}
	}
	return true
}

func (s *fastScan) ws() {
	// The first test ends the common case, no whitespace, at once.
	for s.pos < len(s.msg) && s.msg[s.pos] <= ' ' {
		switch s.msg[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// object reads an object whose keys node declares (nil: skip it all).
func (s *fastScan) object(node *fastNode, depth int) bool {
	if depth > maxFastDepth || s.pos >= len(s.msg) || s.msg[s.pos] != '{' {
		return false
	}
	s.pos++
	s.ws()
	if s.pos < len(s.msg) && s.msg[s.pos] == '}' {
		s.pos++
		return true
	}
	var entered uint64 // deeper keys of node already read, as bits
	for {
		j := -1
		if node != nil && node.cursor < len(node.keys) && s.at(node.quoted[node.cursor]) {
			// The key lookup would try first, spelled as it is declared,
			// colon included.
			j = node.cursor
			node.cursor++
			s.pos += len(node.quoted[j])
		} else {
			key, _, ok := s.plainString()
			if !ok {
				return false
			}
			s.ws()
			if s.pos >= len(s.msg) || s.msg[s.pos] != ':' {
				return false
			}
			s.pos++
			if node != nil {
				j = node.lookup(key)
			}
		}
		s.ws()
		switch {
		case j < 0:
			if !s.skip(depth + 1) {
				return false
			}
		case node.field[j] >= 0:
			i := node.field[j]
			if s.seen[i] || !s.value(i) {
				return false
			}
			s.seen[i] = true
		default:
			if j >= 64 || entered&(1<<j) != 0 {
				return false // a repeated object key: the full decoder decides
			}
			entered |= 1 << j
			if !s.object(node.child[j], depth+1) {
				return false // not an object where a path leads, or bad
			}
		}
		s.ws()
		if s.pos >= len(s.msg) {
			return false
		}
		switch s.msg[s.pos] {
		case ',':
			s.pos++
			s.ws()
		case '}':
			s.pos++
			return true
		default:
			return false
		}
	}
}

// Strings are scanned eight bytes at a time (SWAR): special marks, in the
// top bit of each byte, the bytes of w that end a run of plain string
// bytes: a quote, a backslash, and, when high is msb, a byte >= 0x80 (the
// start of a UTF-8 sequence, checked afterwards). (x - lsb) &^ x has the top
// bit of the lowest zero byte of x set; bytes above it may be flagged by the
// borrow too, so only the lowest flag is trusted.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

func special(w, high uint64) uint64 {
	q := w ^ (lsb * '"')
	bs := w ^ (lsb * '\\')
	return ((q-lsb)&^q | (bs-lsb)&^bs | w&high) & msb
}

// scanPlain finds the closing quote of a string whose contents start at i.
// It returns the quote's index and the index of the first byte >= 0x80, or
// -1 when the string is ASCII; ok is false when a backslash comes first or
// the string does not end.
func scanPlain(p []byte, i int) (end, nonASCII int, ok bool) {
	nonASCII = -1
	high := uint64(msb)
	for i < len(p) {
		if i+8 <= len(p) {
			m := special(binary.LittleEndian.Uint64(p[i:]), high)
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		switch c := p[i]; {
		case c == '"':
			return i, nonASCII, true
		case c == '\\':
			return 0, 0, false
		case c >= utf8.RuneSelf && nonASCII < 0:
			nonASCII, high = i, 0
		}
		i++
	}
	return 0, 0, false
}

// plainString reads a string without escapes and returns its bytes and
// whether they are valid UTF-8; a string with escapes is left to the full
// decoder. (Raw control characters are kept as they are, as the full
// decoder keeps them.)
func (s *fastScan) plainString() (str []byte, valid, ok bool) {
	if s.pos >= len(s.msg) || s.msg[s.pos] != '"' {
		return nil, false, false
	}
	start := s.pos + 1
	end, nonASCII, ok := scanPlain(s.msg, start)
	if !ok {
		return nil, false, false
	}
	s.pos = end + 1
	str = s.msg[start:end]
	return str, nonASCII < 0 || utf8.Valid(s.msg[nonASCII:end]), true
}

// numKind says what number() parsed.
type numKind uint8

const (
	// numText: only the text was checked; parseNumber parses it.
	numText numKind = iota
	// numInt: an integer of at most 18 digits, which cannot overflow.
	numInt
	// numFloat: a fraction without exponent of at most 15 digits in all,
	// whose value float64(digits) / 10^fraction digits is exact up to
	// the one rounding of the division: the value fastfloat.Parse, and so
	// the full decoder, gives it.
	numFloat
)

// number reads a number in the JSON grammar and returns its text, and its
// value when it is of a common shape (kind).
func (s *fastScan) number() (raw []byte, n int64, fl float64, kind numKind, ok bool) {
	p, i := s.msg, s.pos
	start := i
	neg := false
	if i < len(p) && p[i] == '-' {
		neg = true
		i++
	}
	digits := i
	var u uint64 // wraps past 19 digits; then only the text is used
	switch {
	case i < len(p) && p[i] == '0':
		i++
	case i < len(p) && p[i] >= '1' && p[i] <= '9':
		for ; i < len(p); i++ {
			c := p[i] - '0'
			if c > 9 {
				break
			}
			u = u*10 + uint64(c)
		}
	default:
		return nil, 0, 0, numText, false
	}
	intDigits := i - digits
	frac := -1
	if i < len(p) && p[i] == '.' {
		i++
		d := i
		for ; i < len(p); i++ {
			c := p[i] - '0'
			if c > 9 {
				break
			}
			u = u*10 + uint64(c)
		}
		if i == d {
			return nil, 0, 0, numText, false
		}
		frac = i - d
	}
	exp := false
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		exp = true
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		d := i
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		if i == d {
			return nil, 0, 0, numText, false
		}
	}
	s.pos = i
	raw = p[start:i]
	switch {
	case exp:
	case frac < 0 && intDigits <= 18:
		n = int64(u) //nolint:gosec // at most 18 digits
		if neg {
			n = -n
		}
		return raw, n, 0, numInt, true
	case frac >= 0 && intDigits+frac <= 15:
		fl = float64(u) / float64pow10[frac]
		if neg {
			fl = -fl
		}
		return raw, 0, fl, numFloat, true
	}
	return raw, 0, 0, numText, true
}

var float64pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// numberParts is what parseNumber makes of a number number() read.
func numberParts(raw []byte, n int64, fl float64, kind numKind) (int64, bool, float64, bool) {
	switch kind {
	case numInt:
		return n, true, 0, true
	case numFloat:
		return 0, false, fl, true
	}
	return parseNumber(raw)
}

// literal reads true, false or null.
func (s *fastScan) literal(word string) bool {
	if len(s.msg)-s.pos < len(word) || b2s(s.msg[s.pos:s.pos+len(word)]) != word {
		return false
	}
	s.pos += len(word)
	return true
}

// skip reads any value, checking that it is JSON.
func (s *fastScan) skip(depth int) bool {
	if s.pos >= len(s.msg) || depth > maxFastDepth {
		return false
	}
	switch s.msg[s.pos] {
	case '"':
		return s.skipString()
	case '{':
		return s.object(nil, depth)
	case '[':
		s.pos++
		s.ws()
		if s.pos < len(s.msg) && s.msg[s.pos] == ']' {
			s.pos++
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			s.ws()
			if s.pos >= len(s.msg) {
				return false
			}
			switch s.msg[s.pos] {
			case ',':
				s.pos++
				s.ws()
			case ']':
				s.pos++
				return true
			default:
				return false
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, _, _, _, ok := s.number()
	return ok
}

// skipString reads a string with the escapes JSON allows.
func (s *fastScan) skipString() bool {
	p := s.msg
	for i := s.pos + 1; i < len(p); i++ {
		if i+8 <= len(p) {
			m := special(binary.LittleEndian.Uint64(p[i:]), 0)
			if m == 0 {
				i += 7
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		switch p[i] {
		case '"':
			s.pos = i + 1
			return true
		case '\\':
			i++
			if i >= len(p) {
				return false
			}
			switch p[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(p) {
					return false
				}
				for _, h := range p[i+1 : i+5] {
					if !isHex(h) {
						return false
					}
				}
				i += 4
			default:
				return false
			}
		}
	}
	return false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// value reads the value of field i into its slot; false for anything the
// full decoder must judge (null of a required field, another type, bad
// UTF-8, an oversized key, a timestamp out of range).
func (s *fastScan) value(i int) bool {
	d := s.d
	f := &d.fields[i]
	sl := &d.slots[i]
	if s.pos >= len(s.msg) {
		return false
	}
	c := s.msg[s.pos]
	if c == 'n' {
		if f.Required || !s.literal("null") {
			return false
		}
		sl.v.T, sl.v.N = record.TypeNull, 0
		return true
	}
	switch f.Type {
	case record.TypeString:
		start := s.pos + 1
		str, valid, ok := s.plainString()
		if !ok || !valid || (f.Key && d.maxKey > 0 && len(str) > d.maxKey) {
			return false
		}
		sl.v.T, sl.v.N = record.TypeString, 0
		sl.off, sl.end = start, start+len(str)
		return true
	case record.TypeBool:
		switch {
		case c == 't' && s.literal("true"):
			sl.v.T, sl.v.N = record.TypeBool, record.Bool(true).N
		case c == 'f' && s.literal("false"):
			sl.v.T, sl.v.N = record.TypeBool, record.Bool(false).N
		default:
			return false
		}
		return true
	case record.TypeInt, record.TypeFloat:
		raw, n, fl, kind, ok := s.number()
		if !ok {
			return false
		}
		pn, isInt, pf, ok := numberParts(raw, n, fl, kind)
		v, ok := numberValueOf(pn, isInt, pf, ok, f.Type)
		if !ok {
			return false
		}
		sl.v.T, sl.v.N = v.T, v.N
		return true
	case record.TypeTimestamp:
		var us int64
		if c == '"' {
			if f.TimeFormat != TimeAuto && f.TimeFormat != TimeRFC3339 {
				return false
			}
			str, _, ok := s.plainString()
			if !ok {
				return false
			}
			t, err := time.Parse(time.RFC3339Nano, b2s(str))
			if err != nil {
				return false
			}
			us = t.UnixMicro()
		} else {
			if f.TimeFormat == TimeRFC3339 {
				return false
			}
			raw, n, fl, kind, ok := s.number()
			if !ok {
				return false
			}
			pn, isInt, pf, ok := numberParts(raw, n, fl, kind)
			if us, ok, _ = epochMicrosOf(pn, isInt, pf, ok, f.TimeFormat); !ok {
				return false
			}
		}
		if us < 0 {
			return false
		}
		sl.v.T, sl.v.N = record.TypeTimestamp, record.Timestamp(us).N
		return true
	}
	return false
}
