package rules

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

// tri is a three-valued truth. A comparison with an absent operand (a null
// field, a signal without data) is unknown rather than false, so that
// `!(temperature > 80)` does not hold merely because no temperature arrived.
type tri uint8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

// scope is what an expression reads: the record's fields or the signals of
// one (rule, key).
type scope struct {
	row  record.Row
	sigs []record.Value
	// run evaluates the parts of a condition outside the native subset.
	run *vmRunner
}

type (
	valueFn func(*scope) (record.Value, error)
	boolFn  func(*scope) (tri, error)
)

// nameRef is where an identifier's value lives.
type nameRef struct {
	signal bool
	idx    int
	typ    record.Type
}

// names resolves the identifiers one kind of expression may use.
type names struct {
	refs map[string]nameRef
	// env is the typed expr environment: a zero value of each name's type.
	env map[string]any
	// kind is "field" or "signal", used in error messages.
	kind string
	// loose accepts any name (validation without a schema).
	loose bool
}

// compiled is one expression compiled twice: to a native closure when the
// expression is within the subset evaluated without the expr VM (comparisons
// of names and literals, in-lists, and/or/not), and always to an expr
// program, which is the fallback and the type checker.
type compiled struct {
	src     string
	program *vm.Program
	// refs lists the names the expression reads, for filling the VM env and
	// for the absent-signal rule.
	refs []string
	// refIdx parallels refs.
	refIdx []nameRef
	// boolNative and valueNative are set when the native path applies.
	boolNative  boolFn
	valueNative valueFn
	// outType is the checked result type of a value expression.
	outType reflect.Type
	// tree is the unoptimized parse, used for select-index analysis.
	tree ast.Node
}

// compileExpr checks src against ns. asBool requires a boolean result.
func compileExpr(src string, ns *names, asBool bool) (*compiled, error) {
	return compileExprParts(src, ns, asBool, true)
}

// compileExprParts is compileExpr; with parts, a condition outside the
// native subset may be split into native operators over VM parts.
func compileExprParts(src string, ns *names, asBool, parts bool) (*compiled, error) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", src, err)
	}
	if !ns.loose {
		if name := firstUnknown(tree.Node, ns); name != "" {
			return nil, fmt.Errorf("unknown %s %q", ns.kind, name)
		}
	}
	// Names have been checked above; letting expr treat the untyped ones
	// (fields of unknown schema type) as undefined types them as "any",
	// which a nil placeholder in the env would not.
	opts := []expr.Option{expr.Env(ns.env), expr.AllowUndefinedVariables()}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("compile %q: %w", src, err)
	}
	c := &compiled{src: src, program: p, tree: tree.Node, outType: p.Node().Type()}
	seen := map[string]bool{}
	walk(tree.Node, func(n ast.Node) {
		if id, ok := n.(*ast.IdentifierNode); ok && !seen[id.Value] {
			if ref, ok := ns.refs[id.Value]; ok {
				seen[id.Value] = true
				c.refs = append(c.refs, id.Value)
				c.refIdx = append(c.refIdx, ref)
			}
		}
	})
	if asBool {
		var ok bool
		if c.boolNative, ok = nativeBool(tree.Node, ns, nil); !ok && parts {
			// Arithmetic or a function under !, && or ||: evaluate those
			// parts on the VM one by one and combine them natively, so
			// that an absent signal makes only its own part unknown and
			// `a > 80 || b * 2 > 7` holds when a > 80 without any b. A
			// part that does not compile on its own (it uses a `let`
			// from outside) leaves the whole condition to the VM; each
			// part is compiled once.
			failed := false
			leaf := func(n ast.Node) (boolFn, bool) {
				if failed {
					return nil, false
				}
				lc, err := compileExprParts(n.String(), ns, true, false)
				if err != nil {
					failed = true
					return nil, false
				}
				return func(s *scope) (tri, error) { return s.run.evalBool(lc, s) }, true
			}
			if f, ok := nativeBool(tree.Node, ns, leaf); ok && !failed {
				c.boolNative = f
			}
		}
	} else {
		c.valueNative, _ = nativeValue(tree.Node, ns)
	}
	return c, nil
}

// firstUnknown returns the first identifier that is not a known name, to
// turn expr's generic error into one naming the misspelt signal or field.
func firstUnknown(n ast.Node, ns *names) string {
	declared := map[string]bool{}
	walk(n, func(n ast.Node) {
		if v, ok := n.(*ast.VariableDeclaratorNode); ok {
			declared[v.Name] = true
		}
	})
	unknown := ""
	walk(n, func(n ast.Node) {
		if id, ok := n.(*ast.IdentifierNode); ok && unknown == "" {
			if _, ok := ns.refs[id.Value]; !ok && !declared[id.Value] {
				unknown = id.Value
			}
		}
	})
	return unknown
}

type visitFn func(ast.Node)

func (f visitFn) Visit(n *ast.Node) { f(*n) }

func walk(n ast.Node, f func(ast.Node)) {
	if n == nil {
		return
	}
	ast.Walk(&n, visitFn(f))
}

// vmRunner evaluates compiled programs with one VM and one env map; it
// belongs to one engine (one goroutine).
type vmRunner struct {
	machine vm.VM
	env     map[string]any
}

func (r *vmRunner) run(c *compiled, s *scope) (any, error) {
	if r.env == nil {
		r.env = make(map[string]any)
	}
	for i, name := range c.refs {
		ref := c.refIdx[i]
		var v record.Value
		if ref.signal {
			v = s.sigs[ref.idx]
		} else {
			v = s.row[ref.idx]
		}
		r.env[name] = toAny(v)
	}
	out, err := r.machine.Run(c.program, r.env)
	if err != nil {
		return nil, fmt.Errorf("evaluate %q: %w", c.src, err)
	}
	return out, nil
}

// toAny converts a value to the Go type the typed env declared for it.
func toAny(v record.Value) any {
	switch v.T {
	case record.TypeInt:
		return int(v.Int())
	case record.TypeNull:
		return nil
	}
	return v.Any()
}

// evalBool evaluates a condition: natively when possible, else on the VM.
// An absent signal makes the VM path unknown without running it.
func (r *vmRunner) evalBool(c *compiled, s *scope) (tri, error) {
	if c.boolNative != nil {
		return c.boolNative(s)
	}
	for _, ref := range c.refIdx {
		if ref.signal && s.sigs[ref.idx].IsNull() {
			return triUnknown, nil
		}
	}
	out, err := r.run(c, s)
	if err != nil {
		return triFalse, err
	}
	switch b := out.(type) {
	case bool:
		if b {
			return triTrue, nil
		}
		return triFalse, nil
	case nil:
		return triUnknown, nil
	}
	return triFalse, fmt.Errorf("evaluate %q: got %T, want bool", c.src, out)
}

// evalValue evaluates a value expression.
func (r *vmRunner) evalValue(c *compiled, s *scope) (record.Value, error) {
	if c.valueNative != nil {
		return c.valueNative(s)
	}
	out, err := r.run(c, s)
	if err != nil {
		return record.Null, err
	}
	return fromAny(out)
}

func fromAny(v any) (record.Value, error) {
	switch x := v.(type) {
	case nil:
		return record.Null, nil
	case float64:
		return record.Float(x), nil
	case float32:
		return record.Float(float64(x)), nil
	case int:
		return record.Int(int64(x)), nil
	case int64:
		return record.Int(x), nil
	case int32:
		return record.Int(int64(x)), nil
	case uint:
		return record.Int(int64(x)), nil
	case string:
		return record.String(x), nil
	case bool:
		return record.Bool(x), nil
	case time.Time:
		return record.Timestamp(x.UnixMicro()), nil
	}
	return record.Null, fmt.Errorf("unsupported result type %T", v)
}

// nativeBool builds a closure for the boolean subset; ok is false when the
// expression needs the VM. With leaf set, an operand of !, && or || outside
// the subset is handed to leaf (evaluated on the VM by itself) instead.
func nativeBool(n ast.Node, ns *names, leaf func(ast.Node) (boolFn, bool)) (boolFn, bool) {
	sub := func(n ast.Node) (boolFn, bool) {
		if f, ok := nativeBool(n, ns, leaf); ok || leaf == nil {
			return f, ok
		}
		return leaf(n)
	}
	switch n := n.(type) {
	case *ast.BoolNode:
		t := triFalse
		if n.Value {
			t = triTrue
		}
		return func(*scope) (tri, error) { return t, nil }, true
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil, false
		}
		inner, ok := sub(n.Node)
		if !ok {
			return nil, false
		}
		return func(s *scope) (tri, error) {
			t, err := inner(s)
			switch t {
			case triTrue:
				return triFalse, err
			case triFalse:
				return triTrue, err
			}
			return t, err
		}, true
	case *ast.IdentifierNode:
		get, ok := nativeValue(n, ns)
		if !ok {
			return nil, false
		}
		return func(s *scope) (tri, error) {
			v, _ := get(s)
			switch v.T {
			case record.TypeNull:
				return triUnknown, nil
			case record.TypeBool:
				if v.Bool() {
					return triTrue, nil
				}
				return triFalse, nil
			}
			return triFalse, fmt.Errorf("%s is %s, want bool", n.Value, v.T)
		}, true
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			l, ok1 := sub(n.Left)
			r, ok2 := sub(n.Right)
			if !ok1 || !ok2 {
				return nil, false
			}
			if n.Operator == "&&" || n.Operator == "and" {
				return func(s *scope) (tri, error) {
					a, err := l(s)
					if err != nil || a == triFalse {
						return triFalse, err
					}
					b, err := r(s)
					if err != nil || b == triFalse {
						return triFalse, err
					}
					if a == triTrue && b == triTrue {
						return triTrue, nil
					}
					return triUnknown, nil
				}, true
			}
			return func(s *scope) (tri, error) {
				a, err := l(s)
				if err != nil || a == triTrue {
					return a, err
				}
				b, err := r(s)
				if err != nil || b == triTrue {
					return b, err
				}
				if a == triFalse && b == triFalse {
					return triFalse, nil
				}
				return triUnknown, nil
			}, true
		case "==", "!=", "<", "<=", ">", ">=":
			l, ok1 := nativeValue(n.Left, ns)
			r, ok2 := nativeValue(n.Right, ns)
			if !ok1 || !ok2 {
				return nil, false
			}
			op := n.Operator
			return func(s *scope) (tri, error) {
				a, _ := l(s)
				b, _ := r(s)
				return compareOp(op, a, b)
			}, true
		case "in":
			l, ok := nativeValue(n.Left, ns)
			arr, isArr := n.Right.(*ast.ArrayNode)
			if !ok || !isArr {
				return nil, false
			}
			set, ok := literalSet(arr)
			if !ok {
				return nil, false
			}
			return func(s *scope) (tri, error) {
				v, _ := l(s)
				return set.contains(v), nil
			}, true
		}
	}
	return nil, false
}

// nativeValue builds a closure for a name or a literal.
func nativeValue(n ast.Node, ns *names) (valueFn, bool) {
	var c record.Value
	switch n := n.(type) {
	case *ast.IdentifierNode:
		ref, ok := ns.refs[n.Value]
		if !ok {
			return nil, false
		}
		i := ref.idx
		if ref.signal {
			return func(s *scope) (record.Value, error) { return s.sigs[i], nil }, true
		}
		return func(s *scope) (record.Value, error) { return s.row[i], nil }, true
	case *ast.IntegerNode:
		c = record.Int(int64(n.Value))
	case *ast.FloatNode:
		c = record.Float(n.Value)
	case *ast.StringNode:
		c = record.String(n.Value)
	case *ast.BoolNode:
		c = record.Bool(n.Value)
	case *ast.UnaryNode:
		if n.Operator != "-" {
			return nil, false
		}
		switch x := n.Node.(type) {
		case *ast.IntegerNode:
			c = record.Int(-int64(x.Value))
		case *ast.FloatNode:
			c = record.Float(-x.Value)
		default:
			return nil, false
		}
	default:
		return nil, false
	}
	return func(*scope) (record.Value, error) { return c, nil }, true
}

var errOrder = errors.New("values of different types cannot be ordered")

// compareOp follows expr's semantics for values present (equality across
// types is false, ordering across types an error) and yields unknown when
// either side is absent.
func compareOp(op string, a, b record.Value) (tri, error) {
	if a.T == record.TypeNull || b.T == record.TypeNull {
		return triUnknown, nil
	}
	var c int
	switch {
	case a.Numeric() && b.Numeric():
		x, y := a.Float(), b.Float()
		if x != x || y != y {
			return truth(op == "!="), nil
		}
		c = cmpF(x, y)
	case a.T == b.T && (a.T == record.TypeString || a.T == record.TypeTimestamp || a.T == record.TypeBool):
		if a.T == record.TypeBool && op != "==" && op != "!=" {
			return triFalse, fmt.Errorf("compare %s %s %s: %w", a.GoString(), op, b.GoString(), errOrder)
		}
		c = record.Compare(a, b)
	default:
		switch op {
		case "==":
			return triFalse, nil
		case "!=":
			return triTrue, nil
		}
		return triFalse, fmt.Errorf("compare %s (%s) %s %s (%s): %w", a.GoString(), a.T, op, b.GoString(), b.T, errOrder)
	}
	switch op {
	case "==":
		return truth(c == 0), nil
	case "!=":
		return truth(c != 0), nil
	case "<":
		return truth(c < 0), nil
	case "<=":
		return truth(c <= 0), nil
	case ">":
		return truth(c > 0), nil
	}
	return truth(c >= 0), nil
}

func cmpF(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func truth(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// litSet is the right side of `x in [...]` with literal elements.
type litSet struct {
	strs map[string]struct{}
	nums []float64
	// list keeps the literals in source order for index analysis.
	list []record.Value
}

func literalSet(arr *ast.ArrayNode) (*litSet, bool) {
	s := &litSet{strs: map[string]struct{}{}}
	for _, el := range arr.Nodes {
		v, ok := nativeValue(el, &names{})
		if !ok {
			return nil, false
		}
		c, _ := v(nil)
		switch {
		case c.T == record.TypeString:
			s.strs[c.S] = struct{}{}
		case c.Numeric():
			s.nums = append(s.nums, c.Float())
		default:
			return nil, false
		}
		s.list = append(s.list, c)
	}
	return s, true
}

func (s *litSet) contains(v record.Value) tri {
	switch {
	case v.T == record.TypeNull:
		return triUnknown
	case v.T == record.TypeString:
		_, ok := s.strs[v.S]
		return truth(ok)
	case v.Numeric():
		f := v.Float()
		for _, n := range s.nums {
			if n == f {
				return triTrue
			}
		}
	}
	return triFalse
}

// equalityPredicates returns the top-level conjuncts of a select expression
// of the form `field == "const"` or `field in ["a", "b"]`: a record can only
// match if the field holds one of the values, which lets the engine look
// rules up by value instead of evaluating every select.
func equalityPredicates(n ast.Node, ns *names) map[int][]string {
	out := map[int][]string{}
	var visit func(n ast.Node)
	visit = func(n ast.Node) {
		b, ok := n.(*ast.BinaryNode)
		if !ok {
			return
		}
		switch b.Operator {
		case "&&", "and":
			visit(b.Left)
			visit(b.Right)
		case "==":
			id, s := identAndString(b.Left, b.Right)
			if id == nil {
				id, s = identAndString(b.Right, b.Left)
			}
			if id == nil {
				return
			}
			if ref, ok := ns.refs[id.Value]; ok && !ref.signal {
				out[ref.idx] = intersect(out[ref.idx], []string{s.Value})
			}
		case "in":
			id, ok := b.Left.(*ast.IdentifierNode)
			arr, ok2 := b.Right.(*ast.ArrayNode)
			if !ok || !ok2 {
				return
			}
			ref, known := ns.refs[id.Value]
			if !known || ref.signal {
				return
			}
			var vals []string
			for _, el := range arr.Nodes {
				s, ok := el.(*ast.StringNode)
				if !ok {
					return
				}
				vals = append(vals, s.Value)
			}
			out[ref.idx] = intersect(out[ref.idx], vals)
		}
	}
	visit(n)
	return out
}

// intersect narrows a field's allowed values when several conjuncts
// constrain the same field. prev nil means "not constrained yet".
func intersect(prev, vals []string) []string {
	if prev == nil {
		return append([]string{}, vals...)
	}
	keep := []string{}
	for _, p := range prev {
		for _, v := range vals {
			if p == v {
				keep = append(keep, p)
				break
			}
		}
	}
	return keep
}

func identAndString(a, b ast.Node) (*ast.IdentifierNode, *ast.StringNode) {
	id, ok := a.(*ast.IdentifierNode)
	s, ok2 := b.(*ast.StringNode)
	if !ok || !ok2 {
		return nil, nil
	}
	return id, s
}

// signalType maps a value expression's checked result type to the type of
// the signal it feeds: strings and booleans stay as they are, everything
// else is a number.
func signalType(t reflect.Type) record.Type {
	if t == nil {
		return record.TypeFloat
	}
	switch t.Kind() {
	case reflect.String:
		return record.TypeString
	case reflect.Bool:
		return record.TypeBool
	}
	return record.TypeFloat
}

// asNumber converts a signal input to float64; NaN is treated as absent.
func asNumber(v record.Value) (float64, bool, error) {
	switch v.T {
	case record.TypeNull:
		return 0, false, nil
	case record.TypeInt, record.TypeFloat:
		f := v.Float()
		if math.IsNaN(f) {
			return 0, false, nil
		}
		return f, true, nil
	case record.TypeBool:
		return v.Float(), true, nil
	}
	return 0, false, fmt.Errorf("value %s is %s, want a number", v.GoString(), v.T)
}
