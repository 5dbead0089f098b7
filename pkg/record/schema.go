package record

import (
	"errors"
	"fmt"
	"strings"
)

// Field is one named, typed column of a schema, or a member of a nested
// field's type.
type Field struct {
	Name string
	Type Type
	// Fields are the members of a TypeStruct field, in order.
	Fields []Field
	// Elem is the element type of a TypeList field or the value type of a
	// TypeMap field (whose keys are strings); its Name is not used.
	Elem *Field
}

// Schema is the ordered list of fields of a stream. Schemas are immutable
// once built and shared by every batch of the stream.
type Schema struct {
	fields []Field
	index  map[string]int
}

// NewSchema builds a schema; field names must be unique and non-empty and
// nested types complete (Field.Validate).
func NewSchema(fields ...Field) (*Schema, error) {
	s := &Schema{fields: append([]Field(nil), fields...), index: make(map[string]int, len(fields))}
	for i, f := range fields {
		if f.Name == "" {
			return nil, errors.New("new schema: field name is empty")
		}
		if _, dup := s.index[f.Name]; dup {
			return nil, fmt.Errorf("new schema: duplicate field %q", f.Name)
		}
		if f.Type.Nested() {
			if err := f.Validate(); err != nil {
				return nil, fmt.Errorf("new schema: %w", err)
			}
		}
		s.index[f.Name] = i
	}
	return s, nil
}

// MustSchema is NewSchema for fixed schemas known to be valid.
func MustSchema(fields ...Field) *Schema {
	s, err := NewSchema(fields...)
	if err != nil {
		panic(err)
	}
	return s
}

// Len is the number of fields.
func (s *Schema) Len() int { return len(s.fields) }

// Field returns field i.
func (s *Schema) Field(i int) Field { return s.fields[i] }

// Fields returns a copy of the fields.
func (s *Schema) Fields() []Field { return append([]Field(nil), s.fields...) }

// Index returns the position of a field by name.
func (s *Schema) Index(name string) (int, bool) {
	i, ok := s.index[name]
	return i, ok
}

// String renders the schema as "name:type, …".
func (s *Schema) String() string {
	var b strings.Builder
	for i, f := range s.fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.Name)
		b.WriteByte(':')
		b.WriteString(f.TypeString())
	}
	return b.String()
}
