package record

import (
	"fmt"
	"strings"
)

// MaxNestedDepth bounds how deep nested field types may be declared: a
// struct of a list of a map counts three levels. Engines and readers
// recurse over the schema, and no log schema needs more.
const MaxNestedDepth = 16

// Nested reports whether t is a struct, list or map type.
func (t Type) Nested() bool { return t == TypeStruct || t == TypeList || t == TypeMap }

// Scalar reports whether t is one of the scalar types string, int, float,
// bool or timestamp.
func (t Type) Scalar() bool { return t >= TypeString && t <= TypeTimestamp }

// NestedValue returns a value of nested type t holding text, the canonical
// JSON encoding of a value of the field's shape (see package doc). The
// caller guarantees that text is that encoding: sinks copy it as it is.
func NestedValue(t Type, text string) Value { return Value{S: text, T: t} }

// Validate checks a field's type: a scalar type, or a nested type whose
// members are valid, down to MaxNestedDepth. Messages name the field's
// path ("geo.lat", "spans[].name").
func (f Field) Validate() error { return f.validate(f.Name, 1) }

func (f Field) validate(path string, depth int) error {
	switch {
	case f.Type.Scalar():
		if len(f.Fields) > 0 || f.Elem != nil {
			return fmt.Errorf("field %q: type %s has no fields, items or values", path, f.Type)
		}
		return nil
	case !f.Type.Nested():
		return fmt.Errorf("field %q: unsupported type %s", path, f.Type)
	case depth > MaxNestedDepth:
		return fmt.Errorf("field %q: nested more than %d levels deep", path, MaxNestedDepth)
	}
	if f.Type == TypeStruct {
		if f.Elem != nil {
			return fmt.Errorf("field %q: a struct has fields, not items or values", path)
		}
		if len(f.Fields) == 0 {
			return fmt.Errorf("field %q: a struct needs at least one field", path)
		}
		seen := make(map[string]bool, len(f.Fields))
		for _, m := range f.Fields {
			if m.Name == "" {
				return fmt.Errorf("field %q: a struct field has no name", path)
			}
			if seen[m.Name] {
				return fmt.Errorf("field %q: duplicate struct field %q", path, m.Name)
			}
			seen[m.Name] = true
			if err := m.validate(path+"."+m.Name, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if len(f.Fields) > 0 {
		return fmt.Errorf("field %q: a %s has an element type, not fields", path, f.Type)
	}
	if f.Elem == nil {
		return fmt.Errorf("field %q: a %s needs its element type", path, f.Type)
	}
	return f.Elem.validate(path+"[]", depth+1)
}

// Equal reports whether two fields have the same name and the same type,
// nested members included.
func (f Field) Equal(g Field) bool {
	if f.Name != g.Name || f.Type != g.Type || len(f.Fields) != len(g.Fields) || (f.Elem == nil) != (g.Elem == nil) {
		return false
	}
	for i := range f.Fields {
		if !f.Fields[i].Equal(g.Fields[i]) {
			return false
		}
	}
	return f.Elem == nil || f.Elem.typeEqual(*g.Elem)
}

// typeEqual is Equal without the name, for list elements and map values.
func (f Field) typeEqual(g Field) bool {
	g.Name = f.Name
	return f.Equal(g)
}

// FieldsEqual reports whether two field lists are equal, field by field.
func FieldsEqual(a, b []Field) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// TypeString renders the field's full type: "float" for a scalar,
// "struct<lat:float,lon:float>", "list<string>" or "map<string,int>" for
// nested types, as Spark and Hive write them. Member names that are not
// plain identifiers are quoted with backticks.
func (f Field) TypeString() string {
	var b strings.Builder
	f.appendType(&b)
	return b.String()
}

func (f Field) appendType(b *strings.Builder) {
	switch f.Type {
	case TypeStruct:
		b.WriteString("struct<")
		for i, m := range f.Fields {
			if i > 0 {
				b.WriteByte(',')
			}
			writeMemberName(b, m.Name)
			b.WriteByte(':')
			m.appendType(b)
		}
		b.WriteByte('>')
	case TypeList, TypeMap:
		b.WriteString(f.Type.String())
		b.WriteByte('<')
		if f.Type == TypeMap {
			b.WriteString("string,")
		}
		if f.Elem != nil {
			f.Elem.appendType(b)
		}
		b.WriteByte('>')
	default:
		b.WriteString(f.Type.String())
	}
}

func writeMemberName(b *strings.Builder, name string) {
	plain := name != ""
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			plain = false
			break
		}
	}
	if plain {
		b.WriteString(name)
		return
	}
	b.WriteByte('`')
	b.WriteString(strings.ReplaceAll(name, "`", "``"))
	b.WriteByte('`')
}
