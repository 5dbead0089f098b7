package parquet

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/gzip"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/streamd/streamd/pkg/sink/parquet/pqfile"

	"github.com/streamd/streamd/pkg/record"
)

// layout is what, besides the record schema, decides a file's Parquet
// schema. It travels in the checkpointed state, so a file resumed after a
// configuration change keeps the schema its row groups were written with.
type layout struct {
	// timestampMillis writes timestamps as TIMESTAMP(MILLIS) instead of
	// TIMESTAMP(MICROS).
	timestampMillis bool
	// json names, sorted and NUL-separated (so a layout stays comparable),
	// the string fields written with the JSON logical type.
	json string
}

// newLayout makes a layout; jsonColumns may be in any order.
func newLayout(timestampMillis bool, jsonColumns []string) layout {
	names := slices.Clone(jsonColumns)
	slices.Sort(names)
	names = slices.Compact(names)
	return layout{timestampMillis: timestampMillis, json: strings.Join(names, "\x00")}
}

// jsonColumns returns the fields written with the JSON logical type.
func (l layout) jsonColumns() []string {
	if l.json == "" {
		return nil
	}
	return strings.Split(l.json, "\x00")
}

func (l layout) isJSON(name string) bool {
	return l.json != "" && slices.Contains(l.jsonColumns(), name)
}

// parquetSchema maps a record schema to a Parquet schema with one optional
// column per field, in schema order: a scalar field is one leaf column, a
// nested field a group (nested.go), so column i is field i only when no
// field is nested. Strings are
// dictionary encoded (the writer falls back to PLAIN for a column chunk
// whose dictionary outgrows its bound), everything else PLAIN: the
// encodings every engine reads (docs/parquet.md).
func parquetSchema(name string, s *record.Schema, lay layout) (*parquet.Schema, error) {
	g := &orderedGroup{fields: make([]parquet.Field, s.Len())}
	for i := range s.Len() {
		f := s.Field(i)
		n, err := nodeFor(f, lay)
		if err != nil {
			return nil, err
		}
		g.fields[i] = &orderedField{Node: n, name: f.Name}
	}
	return parquet.NewSchema(name, g), nil
}

// orderedGroup is a Parquet group whose columns keep the order they were
// given in; parquet.Group sorts its fields by name.
type orderedGroup struct {
	fields []parquet.Field
}

var _ parquet.Node = (*orderedGroup)(nil)

// ID implements parquet.Node.
func (g *orderedGroup) ID() int { return 0 }

// String implements parquet.Node.
func (g *orderedGroup) String() string {
	var b strings.Builder
	b.WriteString("group {")
	for i, f := range g.fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Name())
		b.WriteByte(' ')
		b.WriteString(f.String())
	}
	b.WriteString("}")
	return b.String()
}

// Type implements parquet.Node; a group has the group type.
func (g *orderedGroup) Type() parquet.Type { return parquet.Group{}.Type() }

// Optional implements parquet.Node.
func (g *orderedGroup) Optional() bool { return false }

// Repeated implements parquet.Node.
func (g *orderedGroup) Repeated() bool { return false }

// Required implements parquet.Node.
func (g *orderedGroup) Required() bool { return true }

// Leaf implements parquet.Node.
func (g *orderedGroup) Leaf() bool { return false }

// Fields implements parquet.Node.
func (g *orderedGroup) Fields() []parquet.Field { return g.fields }

// Encoding implements parquet.Node.
func (g *orderedGroup) Encoding() encoding.Encoding { return nil }

// Compression implements parquet.Node.
func (g *orderedGroup) Compression() compress.Codec { return nil }

// GoType implements parquet.Node. Rows are written with the low-level row
// API, never from Go structs, so a generic map type stands in.
func (g *orderedGroup) GoType() reflect.Type { return reflect.TypeFor[map[string]any]() }

// orderedField names a column of an orderedGroup.
type orderedField struct {
	parquet.Node
	name string
}

// Name implements parquet.Field.
func (f *orderedField) Name() string { return f.name }

// Value implements parquet.Field. It is only used to read fields out of Go
// values, which this sink never does.
func (f *orderedField) Value(reflect.Value) reflect.Value { return reflect.Value{} }

// codecFor maps a Config.Compression name to a codec.
func codecFor(name string) (compress.Codec, error) {
	switch name {
	case "zstd", "":
		return pqfile.Zstd(), nil
	case "snappy":
		return &snappy.Codec{}, nil
	case "gzip":
		return &gzip.Codec{}, nil
	case "none", "uncompressed":
		return &uncompressed.Codec{}, nil
	}
	return nil, fmt.Errorf("unknown codec %q (want zstd, snappy, gzip or none)", name)
}
