package expression

import (
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

// Compile compiles src against schema. want, when not TypeNull,
// is the type the expression must produce (bool for conditions).
func Compile(src string, schema *record.Schema, want record.Type) (*Expression, error) {
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

// Schema is the schema the expression reads.
func (e *Expression) Schema() *record.Schema { return e.schema }

// Source is the expression's text.
func (e *Expression) Source() string { return e.src }

// ResultType is the Go type expr infers for the result, nil when it cannot
// tell before running (a field read through $env, a ternary of mixed
// types).
func (e *Expression) ResultType() reflect.Type { return e.program.Node().Type() }
