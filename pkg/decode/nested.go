package decode

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/streamd/streamd/pkg/record"
)

// Nested fields (struct, list, map) are checked against their declared
// type member by member and written as canonical JSON text (record package
// doc), the form they travel in. The rules are the scalar rules applied at
// every level:
//   - a value of another JSON type than declared, at any depth, rejects
//     the record (type_mismatch), with the member's path in the detail
//     ("geo.lat", "spans[2].name", `attrs["k"]`);
//   - an absent or null struct member is null, unless it is Required
//     (missing_field); list elements and map values may be null;
//   - struct members not declared are not kept (declare the field as json,
//     or the member as a map, to keep them); a repeated key keeps its first
//     value;
//   - strings and map keys follow the UTF-8 policy;
//   - the canonical text of one field is bounded by MaxRecordBytes
//     (record_too_large), since it can be larger than its input ({} in a
//     list of structs stays {}, but an epoch 0 becomes a 28-byte time).
//
// Declared types nest at most record.MaxNestedDepth levels; deeper input
// below a declared member is not read, and input deeper than the JSON
// parser's bound (300) is invalid_json.

// checkNested validates the members of nested field f, whose path (for
// messages) is path.
func checkNested(f *Field, path string) error {
	if f.Raw {
		return fmt.Errorf("field %q: a %s field cannot be raw", path, f.Type)
	}
	var members []Field
	switch f.Type {
	case record.TypeStruct:
		if f.Elem != nil {
			return fmt.Errorf("field %q: a struct has fields, not an element type", path)
		}
		members = f.Fields
	case record.TypeList, record.TypeMap:
		if len(f.Fields) > 0 {
			return fmt.Errorf("field %q: a %s has an element type, not fields", path, f.Type)
		}
		if f.Elem == nil {
			return fmt.Errorf("field %q: a %s needs its element type", path, f.Type)
		}
		e := f.Elem
		if e.Required || e.Key || e.Raw || len(e.Path) > 0 {
			return fmt.Errorf("field %q: list elements and map values take only a type (and fields or a format)", path+"[]")
		}
		members = []Field{*e}
	}
	for _, m := range members {
		mp := path + "." + m.Name
		if f.Type != record.TypeStruct {
			mp = path + "[]"
		}
		switch {
		case f.Type == record.TypeStruct && m.Name == "":
			return fmt.Errorf("field %q: a struct field has no name", path)
		case len(m.Path) > 0:
			return fmt.Errorf("field %q: a struct field is read from its name, it has no path", mp)
		case m.Key:
			return fmt.Errorf("field %q: only top-level fields can be keys", mp)
		case m.Raw:
			return fmt.Errorf("field %q: only top-level fields can be raw (use type json there)", mp)
		case m.TimeFormat > TimeRFC3339:
			return fmt.Errorf("field %q: unknown time format %d", mp, m.TimeFormat)
		case m.Type.Nested():
			if err := checkNested(&m, mp); err != nil {
				return err
			}
		case !m.Type.Scalar():
			return fmt.Errorf("field %q: unsupported type %s", mp, m.Type)
		}
	}
	sf := schemaField(*f)
	sf.Name = path
	return sf.Validate()
}

// schemaField is the record field decoded from f.
func schemaField(f Field) record.Field {
	out := record.Field{Name: f.Name, Type: f.Type}
	for _, m := range f.Fields {
		out.Fields = append(out.Fields, schemaField(m))
	}
	if f.Elem != nil {
		e := schemaField(*f.Elem)
		out.Elem = &e
	}
	return out
}

// fastPathFor is newFastPath, or nil when a field is nested: the one-pass
// decoder reads scalars only.
func fastPathFor(fields []Field, extras string) *fastNode {
	for _, f := range fields {
		if f.Type.Nested() {
			return nil
		}
	}
	return newFastPath(fields, extras)
}

// pathStep is one step of the path to the member being decoded, rendered
// only for an error detail.
type pathStep struct {
	name  string // struct member
	index int    // list element, when name and key are empty
	key   []byte // map value
	isKey bool
}

// nestedState is the decoder's scratch for nested fields, reused.
type nestedState struct {
	// field is the top-level field being decoded, path the steps below it.
	field string
	path  []pathStep
	// member is the slot scalar members are decoded into.
	member slot
	// found holds, per struct level, the first value of each member.
	found [][]*fastjson.Value
	// keys holds the map keys of the map being written, per level.
	keys  [][][]byte
	fixed []byte
}

// decodeNested writes the canonical JSON of v (not null) as field f into s.
func (d *JSON) decodeNested(f *Field, v *fastjson.Value, s *slot) *Error {
	n := &d.nested
	n.field, n.path = f.Name, n.path[:0]
	var e *Error
	s.own, e = d.appendNested(s.own[:0], f, v, 0)
	if e != nil {
		return e
	}
	if d.maxRecord > 0 && len(s.own) > d.maxRecord {
		return &Error{Reason: ReasonRecordTooLarge, Detail: fmt.Sprintf("field %q: value of %d bytes as JSON is over the limit of %d bytes (decode.maxRecordBytes)", f.Name, len(s.own), d.maxRecord)}
	}
	if f.Key && d.maxKey > 0 && len(s.own) > d.maxKey {
		return &Error{Reason: ReasonKeyTooLarge, Detail: fmt.Sprintf("key field %q of %d bytes is over the limit of %d bytes (decode.maxKeyBytes)", f.Name, len(s.own), d.maxKey)}
	}
	s.v = record.NestedValue(f.Type, "")
	s.str = s.own
	return nil
}

// appendNested appends the canonical JSON of v, a non-null value of type
// f, at nesting level depth.
func (d *JSON) appendNested(dst []byte, f *Field, v *fastjson.Value, depth int) ([]byte, *Error) {
	n := &d.nested
	switch f.Type {
	case record.TypeStruct:
		if v.Type() != fastjson.TypeObject {
			return dst, d.nestedMismatch(f, v)
		}
		for len(n.found) <= depth {
			n.found = append(n.found, nil)
		}
		found := n.found[depth][:0]
		for range f.Fields {
			found = append(found, nil)
		}
		n.found[depth] = found
		obj, _ := v.Object()
		cursor := 0
		obj.Visit(func(key []byte, mv *fastjson.Value) {
			j := memberIndex(f.Fields, key, cursor)
			if j >= 0 {
				cursor = j + 1
				if found[j] == nil {
					found[j] = mv
				}
			}
		})
		dst = append(dst, '{')
		first := true
		for j := range f.Fields {
			m := &f.Fields[j]
			mv := found[j]
			if mv == nil || mv.Type() == fastjson.TypeNull {
				if m.Required {
					n.path = append(n.path, pathStep{name: m.Name})
					return dst, &Error{Reason: ReasonMissingField, Detail: fmt.Sprintf("required field %q is %s", d.renderPath(), absentOrNull(mv))}
				}
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = record.AppendJSONString(dst, m.Name)
			dst = append(dst, ':')
			n.path = append(n.path, pathStep{name: m.Name})
			var e *Error
			if dst, e = d.appendMember(dst, m, mv, depth+1); e != nil {
				return dst, e
			}
			n.path = n.path[:len(n.path)-1]
		}
		return append(dst, '}'), nil
	case record.TypeList:
		if v.Type() != fastjson.TypeArray {
			return dst, d.nestedMismatch(f, v)
		}
		elems, _ := v.Array()
		dst = append(dst, '[')
		for i, ev := range elems {
			if i > 0 {
				dst = append(dst, ',')
			}
			if ev.Type() == fastjson.TypeNull {
				dst = append(dst, "null"...)
				continue
			}
			n.path = append(n.path, pathStep{index: i})
			var e *Error
			if dst, e = d.appendMember(dst, f.Elem, ev, depth+1); e != nil {
				return dst, e
			}
			n.path = n.path[:len(n.path)-1]
		}
		return append(dst, ']'), nil
	case record.TypeMap:
		if v.Type() != fastjson.TypeObject {
			return dst, d.nestedMismatch(f, v)
		}
		for len(n.keys) <= depth {
			n.keys = append(n.keys, nil)
		}
		obj, _ := v.Object()
		dst = append(dst, '{')
		var e *Error
		seen := n.keys[depth][:0]
		obj.Visit(func(key []byte, mv *fastjson.Value) {
			if e != nil || containsKey(seen, key) {
				return
			}
			seen = append(seen, key)
			if !utf8.Valid(key) {
				if d.utf8 == UTF8DeadLetter {
					e = &Error{Reason: ReasonInvalidUTF8, Detail: fmt.Sprintf("field %q: key %q is not valid UTF-8", d.renderPathWith(pathStep{key: key, isKey: true}), truncate(string(key)))}
					return
				}
				d.repaired = true
				n.fixed = appendValidUTF8(n.fixed[:0], key)
				key = n.fixed
			}
			if len(seen) > 1 {
				dst = append(dst, ',')
			}
			dst = record.AppendJSONString(dst, b2s(key))
			dst = append(dst, ':')
			if mv.Type() == fastjson.TypeNull {
				dst = append(dst, "null"...)
				return
			}
			n.path = append(n.path, pathStep{key: key, isKey: true})
			if dst, e = d.appendMember(dst, f.Elem, mv, depth+1); e != nil {
				return
			}
			n.path = n.path[:len(n.path)-1]
		})
		clear(seen)
		n.keys[depth] = seen[:0]
		if e != nil {
			return dst, e
		}
		return append(dst, '}'), nil
	}
	return dst, &Error{Reason: ReasonTypeMismatch, Detail: fmt.Sprintf("field %q: unsupported type %s", d.renderPath(), f.Type)}
}

// appendMember appends a non-null member value: nested, or a scalar
// checked as a top-level field of its type is.
func (d *JSON) appendMember(dst []byte, m *Field, v *fastjson.Value, depth int) ([]byte, *Error) {
	if m.Type.Nested() {
		return d.appendNested(dst, m, v, depth)
	}
	sl := &d.nested.member
	if e := d.decodeValue(m, v, sl); e != nil {
		return dst, d.relabel(e, m.Name)
	}
	if sl.v.T == record.TypeString {
		return record.AppendJSONString(dst, b2s(sl.str)), nil
	}
	return record.AppendJSONValue(dst, sl.v), nil
}

// memberIndex finds key among fields, trying from cursor first: producers
// write members in the same order.
func memberIndex(fields []Field, key []byte, cursor int) int {
	if cursor < len(fields) && fields[cursor].Name == b2s(key) {
		return cursor
	}
	for j := range fields {
		if fields[j].Name == b2s(key) {
			return j
		}
	}
	return -1
}

func containsKey(keys [][]byte, key []byte) bool {
	for _, k := range keys {
		if string(k) == string(key) {
			return true
		}
	}
	return false
}

func absentOrNull(v *fastjson.Value) string {
	if v == nil {
		return "absent"
	}
	return "null"
}

func (d *JSON) nestedMismatch(f *Field, v *fastjson.Value) *Error {
	return &Error{Reason: ReasonTypeMismatch, Detail: fmt.Sprintf("field %q: want %s, got %s %s",
		d.renderPath(), schemaField(*f).TypeString(), v.Type(), truncate(string(v.MarshalTo(nil))))}
}

// relabel puts the member's full path into an error decodeValue made with
// the member's own name.
func (d *JSON) relabel(e *Error, name string) *Error {
	e.Detail = strings.Replace(e.Detail, "field "+strconv.Quote(name), "field "+strconv.Quote(d.renderPath()), 1)
	return e
}

// renderPath renders the path of the member being decoded: the top-level
// field, then .name, [index] or ["key"] per level.
func (d *JSON) renderPath() string { return d.renderPathWith() }

func (d *JSON) renderPathWith(extra ...pathStep) string {
	var b strings.Builder
	b.WriteString(d.nested.field)
	for _, st := range append(d.nested.path, extra...) {
		switch {
		case st.isKey:
			b.WriteByte('[')
			b.WriteString(strconv.Quote(truncate(string(st.key))))
			b.WriteByte(']')
		case st.name != "":
			b.WriteByte('.')
			b.WriteString(st.name)
		default:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(st.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}
