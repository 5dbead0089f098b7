package operator

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/streamd/streamd/pkg/record"
)

// Expression is a compiled expr-lang expression over the fields of a schema.
// It is compiled once. Expressions within the native subset (comparisons,
// arithmetic, and/or/not over fields and literals) are evaluated on the
// record values directly, without boxing them; the others, and rows the
// native path does not answer, run on one reused VM whose environment map is
// filled with the fields the expression reads. An Expression belongs to one
// goroutine.
type Expression struct {
	src     string
	schema  *record.Schema
	program *vm.Program
	machine vm.VM
	env     map[string]any
	// refs are the schema indexes of the fields the expression reads, or
	// nil to bind every field (the expression reads $env).
	refs   []int
	native nativeFn
}

// CompileExpression compiles src against schema. want, when not TypeNull,
// is the type the expression must produce (bool for conditions).
func CompileExpression(src string, schema *record.Schema, want record.Type) (*Expression, error) {
	env := make(map[string]any, schema.Len())
	for i := 0; i < schema.Len(); i++ {
		f := schema.Field(i)
		env[f.Name] = f.Type.GoZero()
	}
	opts := []expr.Option{expr.Env(env)}
	if want == record.TypeBool {
		opts = append(opts, expr.AsBool())
	}
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("compile expression %q: %w", src, err)
	}
	e := &Expression{src: src, schema: schema, program: p, env: env}
	if tree, err := parser.Parse(src); err == nil {
		e.refs = fieldRefs(tree.Node, schema)
		e.native = compileNative(tree.Node, schema)
	}
	return e, nil
}

// fieldRefs lists the schema indexes of the fields n reads, once each; nil
// when n reads the whole environment.
func fieldRefs(n ast.Node, schema *record.Schema) []int {
	refs := []int{}
	seen := make(map[int]bool)
	all := false
	ast.Walk(&n, visitor(func(n ast.Node) {
		id, ok := n.(*ast.IdentifierNode)
		if !ok {
			return
		}
		if id.Value == "$env" {
			all = true
		}
		if i, ok := schema.Index(id.Value); ok && !seen[i] {
			seen[i] = true
			refs = append(refs, i)
		}
	}))
	if all {
		return nil
	}
	return refs
}

type visitor func(ast.Node)

func (f visitor) Visit(n *ast.Node) { f(*n) }

// bind sets the environment entry of field i from v.
func (e *Expression) bind(i int, v record.Value) {
	name := e.schema.Field(i).Name
	switch v.T {
	case record.TypeInt:
		e.env[name] = int(v.Int())
	case record.TypeNull:
		e.env[name] = nil
	default:
		e.env[name] = v.Any()
	}
}

// Eval evaluates the expression on a row with the VM.
func (e *Expression) Eval(row record.Row) (any, error) {
	if e.refs == nil {
		for i, v := range row {
			e.bind(i, v)
		}
	} else {
		for _, i := range e.refs {
			e.bind(i, row[i])
		}
	}
	out, err := e.machine.Run(e.program, e.env)
	if err != nil {
		return nil, fmt.Errorf("evaluate %q: %w", e.src, err)
	}
	return out, nil
}

// EvalBool evaluates a condition.
func (e *Expression) EvalBool(row record.Row) (bool, error) {
	if e.native != nil {
		if v, ok := e.native(row); ok && v.T == record.TypeBool {
			return v.Bool(), nil
		}
	}
	v, err := e.Eval(row)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("evaluate %q: got %T, want bool", e.src, v)
	}
	return b, nil
}

// EvalValue evaluates the expression on a row to a value of type t.
func (e *Expression) EvalValue(row record.Row, t record.Type) (record.Value, error) {
	if e.native != nil {
		if v, ok := e.native(row); ok {
			if v, ok := nativeToType(v, t); ok {
				return v, nil
			}
		}
	}
	v, err := e.Eval(row)
	if err != nil {
		return record.Null, err
	}
	return ToValue(v, t)
}

// ToValue converts an expression result to a value of type t.
func ToValue(v any, t record.Type) (record.Value, error) {
	if v == nil {
		return record.Null, nil
	}
	switch t {
	case record.TypeString:
		if s, ok := v.(string); ok {
			return record.String(s), nil
		}
	case record.TypeInt:
		switch n := v.(type) {
		case int:
			return record.Int(int64(n)), nil
		case int64:
			return record.Int(n), nil
		case float64:
			if n == math.Trunc(n) && math.Abs(n) < 1<<62 {
				return record.Int(int64(n)), nil
			}
		}
	case record.TypeFloat:
		switch n := v.(type) {
		case float64:
			return record.Float(n), nil
		case int:
			return record.Float(float64(n)), nil
		case int64:
			return record.Float(float64(n)), nil
		}
	case record.TypeBool:
		if b, ok := v.(bool); ok {
			return record.Bool(b), nil
		}
	case record.TypeTimestamp:
		if tm, ok := v.(time.Time); ok {
			return record.Timestamp(tm.UnixMicro()), nil
		}
	}
	return record.Null, fmt.Errorf("expression result %v (%T) is not a %s", v, v, t)
}

// Filter keeps the rows for which a condition holds.
type Filter struct {
	cond *Expression
}

// NewFilter compiles a filter condition.
func NewFilter(src string, in *record.Schema) (*Filter, error) {
	c, err := CompileExpression(src, in, record.TypeBool)
	if err != nil {
		return nil, fmt.Errorf("new filter: %w", err)
	}
	return &Filter{cond: c}, nil
}

// Schema is the input schema: filters do not change rows.
func (f *Filter) Schema() *record.Schema { return f.cond.schema }

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
	exprs  []*Expression
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
		e, err := CompileExpression(f.Expr, in, want)
		if err != nil {
			return nil, fmt.Errorf("new map: field %q: %w", f.Name, err)
		}
		if f.Type == record.TypeBool {
			if t := e.program.Node().Type(); t != nil && t.Kind() != reflect.Bool && t.Kind() != reflect.Interface {
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
	expr  *Expression
	typ   record.Type
	field int
	keep  []int
}

// NewFlatMap compiles a flatMap step.
func NewFlatMap(src, as string, typ record.Type, in *record.Schema) (*FlatMap, error) {
	if as == "" {
		return nil, errors.New("new flatMap: the output field name is empty")
	}
	e, err := CompileExpression(src, in, record.TypeNull)
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
			reject(i, fmt.Errorf("flatMap %q: got %T, want an array", f.expr.src, v))
			continue
		}
		vals := make([]record.Value, 0, len(items))
		for _, it := range items {
			val, err := ToValue(it, f.typ)
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

var (
	_ Step = (*Filter)(nil)
	_ Step = (*Map)(nil)
	_ Step = (*FlatMap)(nil)
)
