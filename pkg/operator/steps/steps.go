package steps

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/streamd/streamd/pkg/expression"
	"github.com/streamd/streamd/pkg/record"
)

// Filter keeps the rows for which a condition holds.
type Filter struct {
	cond *expression.Expression
}

// NewFilter compiles a filter condition.
func NewFilter(src string, in *record.Schema) (*Filter, error) {
	c, err := expression.Compile(src, in, record.TypeBool)
	if err != nil {
		return nil, fmt.Errorf("new filter: %w", err)
	}
	return &Filter{cond: c}, nil
}

// Schema is the input schema: filters do not change rows.
func (f *Filter) Schema() *record.Schema { return f.cond.Schema() }

// Apply copies the rows that pass into out.
func (f *Filter) Apply(in, out *record.Batch, reject func(int, error)) {
	for i := 0; i < in.Len(); i++ {
		ok, err := f.cond.EvalBool(in.Row(i))
		if err != nil {
			reject(i, err)
			continue
		}
		if ok {
			copy(out.AppendRow(in.Times[i]), in.Row(i))
		}
	}
}

// MapField is one computed field of a Map.
type MapField struct {
	Name string
	Expr string
	Type record.Type
}

// Map computes fields with expressions, optionally keeping the input fields.
type Map struct {
	in     *record.Schema
	out    *record.Schema
	exprs  []*expression.Expression
	types  []record.Type
	keep   []int // output position → input index for kept fields, -1 for computed
	target []int // computed expression i → output position
}

// NewMap compiles a map step.
func NewMap(fields []MapField, keep bool, in *record.Schema) (*Map, error) {
	m := &Map{in: in}
	var outFields []record.Field
	computed := make(map[string]bool, len(fields))
	for _, f := range fields {
		computed[f.Name] = true
	}
	if keep {
		for i := 0; i < in.Len(); i++ {
			if f := in.Field(i); !computed[f.Name] {
				outFields = append(outFields, f)
				m.keep = append(m.keep, i)
			}
		}
	}
	for _, f := range fields {
		// A bool field is compiled without expr's AsBool, which turns a nil
		// result into false: a null flag stays null. The result type is
		// checked here instead.
		want := f.Type
		if want == record.TypeBool {
			want = record.TypeNull
		}
		e, err := expression.Compile(f.Expr, in, want)
		if err != nil {
			return nil, fmt.Errorf("new map: field %q: %w", f.Name, err)
		}
		if f.Type == record.TypeBool {
			if t := e.ResultType(); t != nil && t.Kind() != reflect.Bool && t.Kind() != reflect.Interface {
				return nil, fmt.Errorf("new map: field %q: expression %q gives %s, want bool", f.Name, f.Expr, t)
			}
		}
		m.exprs = append(m.exprs, e)
		m.types = append(m.types, f.Type)
		m.target = append(m.target, len(outFields))
		outFields = append(outFields, record.Field{Name: f.Name, Type: f.Type})
	}
	out, err := record.NewSchema(outFields...)
	if err != nil {
		return nil, fmt.Errorf("new map: %w", err)
	}
	m.out = out
	return m, nil
}

// Schema is the output schema.
func (m *Map) Schema() *record.Schema { return m.out }

// Apply computes each row.
func (m *Map) Apply(in, out *record.Batch, reject func(int, error)) {
rows:
	for i := 0; i < in.Len(); i++ {
		src := in.Row(i)
		row := out.AppendRow(in.Times[i])
		for j, k := range m.keep {
			row[j] = src[k]
		}
		for j, e := range m.exprs {
			val, err := e.EvalValue(src, m.types[j])
			if err == nil {
				if val.T == record.TypeString {
					val.S = out.InternString(val.S)
				}
				row[m.target[j]] = val
			}
			if err != nil {
				out.TruncateLast()
				reject(i, err)
				continue rows
			}
		}
	}
}

// FlatMap emits one row per element of an array expression, with the
// element in a new (or replaced) field.
type FlatMap struct {
	in    *record.Schema
	out   *record.Schema
	expr  *expression.Expression
	typ   record.Type
	field int
	keep  []int
}

// NewFlatMap compiles a flatMap step.
func NewFlatMap(src, as string, typ record.Type, in *record.Schema) (*FlatMap, error) {
	if as == "" {
		return nil, errors.New("new flatMap: the output field name is empty")
	}
	e, err := expression.Compile(src, in, record.TypeNull)
	if err != nil {
		return nil, fmt.Errorf("new flatMap: %w", err)
	}
	f := &FlatMap{in: in, expr: e, typ: typ}
	var fields []record.Field
	for i := 0; i < in.Len(); i++ {
		if in.Field(i).Name != as {
			fields = append(fields, in.Field(i))
			f.keep = append(f.keep, i)
		}
	}
	f.field = len(fields)
	fields = append(fields, record.Field{Name: as, Type: typ})
	if f.out, err = record.NewSchema(fields...); err != nil {
		return nil, fmt.Errorf("new flatMap: %w", err)
	}
	return f, nil
}

// Schema is the output schema.
func (f *FlatMap) Schema() *record.Schema { return f.out }

// Apply expands each row.
func (f *FlatMap) Apply(in, out *record.Batch, reject func(int, error)) {
	for i := 0; i < in.Len(); i++ {
		src := in.Row(i)
		v, err := f.expr.Eval(src)
		if err != nil {
			reject(i, err)
			continue
		}
		items, ok := asSlice(v)
		if !ok {
			reject(i, fmt.Errorf("flatMap %q: got %T, want an array", f.expr.Source(), v))
			continue
		}
		vals := make([]record.Value, 0, len(items))
		for _, it := range items {
			val, err := expression.ToValue(it, f.typ)
			if err != nil {
				vals = nil
				reject(i, err)
				break
			}
			vals = append(vals, val)
		}
		for _, val := range vals {
			row := out.AppendRow(in.Times[i])
			for j, k := range f.keep {
				row[j] = src[k]
			}
			if val.T == record.TypeString {
				val.S = out.InternString(val.S)
			}
			row[f.field] = val
		}
	}
}

func asSlice(v any) ([]any, bool) {
	switch s := v.(type) {
	case nil:
		return nil, true
	case []any:
		return s, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}
