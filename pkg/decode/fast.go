package decode

import (
	"bytes"
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
	keys  []string
	field []int       // index into JSON.fields, or -1
	child []*fastNode // for keys that lead deeper
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
				n.keys = append(n.keys, k)
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
			d.slots[i].v, d.slots[i].str = record.Null, nil
		}
	}
	return true
}

func (s *fastScan) ws() {
	for s.pos < len(s.msg) {
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
		key, ok := s.plainString()
		if !ok {
			return false
		}
		s.ws()
		if s.pos >= len(s.msg) || s.msg[s.pos] != ':' {
			return false
		}
		s.pos++
		s.ws()
		j := -1
		if node != nil {
			j = node.lookup(key)
		}
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

// plainString reads a string without escapes and returns its bytes; a
// string with escapes is left to the full decoder. (Raw control
// characters are kept as they are, as the full decoder keeps them.)
func (s *fastScan) plainString() ([]byte, bool) {
	if s.pos >= len(s.msg) || s.msg[s.pos] != '"' {
		return nil, false
	}
	start := s.pos + 1
	end := bytes.IndexByte(s.msg[start:], '"')
	if end < 0 {
		return nil, false
	}
	str := s.msg[start : start+end]
	if bytes.IndexByte(str, '\\') >= 0 {
		return nil, false
	}
	s.pos = start + end + 1
	return str, true
}

// number reads a number in the JSON grammar and returns its text.
func (s *fastScan) number() ([]byte, bool) {
	p, i := s.msg, s.pos
	start := i
	if i < len(p) && p[i] == '-' {
		i++
	}
	switch {
	case i < len(p) && p[i] == '0':
		i++
	case i < len(p) && p[i] >= '1' && p[i] <= '9':
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(p) && p[i] == '.' {
		i++
		d := i
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		d := i
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	s.pos = i
	return p[start:i], true
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
	_, ok := s.number()
	return ok
}

// skipString reads a string with the escapes JSON allows.
func (s *fastScan) skipString() bool {
	p := s.msg
	for i := s.pos + 1; i < len(p); i++ {
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
		sl.v, sl.str = record.Null, nil
		return true
	}
	switch f.Type {
	case record.TypeString:
		str, ok := s.plainString()
		if !ok || !utf8.Valid(str) || (f.Key && d.maxKey > 0 && len(str) > d.maxKey) {
			return false
		}
		sl.v, sl.str = record.Value{T: record.TypeString}, str
		return true
	case record.TypeBool:
		switch {
		case c == 't' && s.literal("true"):
			sl.v = record.Bool(true)
		case c == 'f' && s.literal("false"):
			sl.v = record.Bool(false)
		default:
			return false
		}
		sl.str = nil
		return true
	case record.TypeInt, record.TypeFloat:
		raw, ok := s.number()
		if !ok {
			return false
		}
		v, ok := numberValue(raw, f.Type)
		if !ok {
			return false
		}
		sl.v, sl.str = v, nil
		return true
	case record.TypeTimestamp:
		var us int64
		if c == '"' {
			if f.TimeFormat != TimeAuto && f.TimeFormat != TimeRFC3339 {
				return false
			}
			str, ok := s.plainString()
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
			raw, ok := s.number()
			if !ok {
				return false
			}
			if us, ok = epochMicros(raw, f.TimeFormat); !ok {
				return false
			}
		}
		if us < 0 {
			return false
		}
		sl.v, sl.str = record.Timestamp(us), nil
		return true
	}
	return false
}
