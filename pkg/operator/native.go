package operator

import (
	"math"

	"github.com/expr-lang/expr/ast"

	"github.com/streamd/streamd/pkg/record"
)

// nativeFn evaluates an expression on a row without the expr VM and without
// boxing values. ok is false when the row is outside what the native path
// answers exactly (an absent value, an integer division by zero, a result of
// another type than expected): the VM then evaluates the row, with its own
// semantics and errors. The native path therefore never changes a result;
// FuzzNativeMatchesVM holds it to that.
type nativeFn func(row record.Row) (v record.Value, ok bool)

// compileNative builds the native evaluator for the subset of expressions
// it covers — fields of scalar types (not timestamps), literals, unary
// minus and not, + - * / %, comparisons, and/or, `in` a literal array — or
// returns nil.
func compileNative(n ast.Node, schema *record.Schema) nativeFn {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		i, ok := schema.Index(n.Value)
		if !ok {
			return nil
		}
		t := schema.Field(i).Type
		switch t {
		case record.TypeString, record.TypeInt, record.TypeFloat, record.TypeBool:
		default:
			return nil
		}
		return func(row record.Row) (record.Value, bool) {
			v := row[i]
			return v, v.T == t
		}
	case *ast.IntegerNode:
		return constant(record.Int(int64(n.Value)))
	case *ast.FloatNode:
		return constant(record.Float(n.Value))
	case *ast.StringNode:
		return constant(record.String(n.Value))
	case *ast.BoolNode:
		return constant(record.Bool(n.Value))
	case *ast.UnaryNode:
		inner := compileNative(n.Node, schema)
		if inner == nil {
			return nil
		}
		switch n.Operator {
		case "-":
			return func(row record.Row) (record.Value, bool) {
				v, ok := inner(row)
				switch {
				case !ok:
				case v.T == record.TypeInt:
					return record.Int(-v.Int()), true
				case v.T == record.TypeFloat:
					return record.Float(-v.Float()), true
				}
				return record.Null, false
			}
		case "+":
			return func(row record.Row) (record.Value, bool) {
				v, ok := inner(row)
				return v, ok && v.Numeric()
			}
		case "!", "not":
			return func(row record.Row) (record.Value, bool) {
				v, ok := inner(row)
				if !ok || v.T != record.TypeBool {
					return record.Null, false
				}
				return record.Bool(!v.Bool()), true
			}
		}
		return nil
	case *ast.BinaryNode:
		return compileBinary(n, schema)
	}
	return nil
}

func constant(c record.Value) nativeFn {
	return func(record.Row) (record.Value, bool) { return c, true }
}

func compileBinary(n *ast.BinaryNode, schema *record.Schema) nativeFn {
	l := compileNative(n.Left, schema)
	if l == nil {
		return nil
	}
	if n.Operator == "in" {
		arr, ok := n.Right.(*ast.ArrayNode)
		if !ok {
			return nil
		}
		set := make([]record.Value, 0, len(arr.Nodes))
		for _, e := range arr.Nodes {
			c := compileNative(e, schema)
			if c == nil {
				return nil
			}
			v, ok := c(nil)
			if !ok {
				return nil // not a literal
			}
			set = append(set, v)
		}
		return func(row record.Row) (record.Value, bool) {
			v, ok := l(row)
			if !ok {
				return record.Null, false
			}
			for _, s := range set {
				if equalValues(v, s) {
					return record.Bool(true), true
				}
			}
			return record.Bool(false), true
		}
	}
	r := compileNative(n.Right, schema)
	if r == nil {
		return nil
	}
	switch n.Operator {
	case "&&", "and":
		// Short-circuit as the VM does: the right side of a false left
		// side is not evaluated, so its absent values do not matter.
		return func(row record.Row) (record.Value, bool) {
			a, ok := l(row)
			if !ok || a.T != record.TypeBool {
				return record.Null, false
			}
			if !a.Bool() {
				return a, true
			}
			b, ok := r(row)
			return b, ok && b.T == record.TypeBool
		}
	case "||", "or":
		return func(row record.Row) (record.Value, bool) {
			a, ok := l(row)
			if !ok || a.T != record.TypeBool {
				return record.Null, false
			}
			if a.Bool() {
				return a, true
			}
			b, ok := r(row)
			return b, ok && b.T == record.TypeBool
		}
	case "==", "!=":
		neq := n.Operator == "!="
		return func(row record.Row) (record.Value, bool) {
			a, ok1 := l(row)
			b, ok2 := r(row)
			if !ok1 || !ok2 {
				return record.Null, false
			}
			return record.Bool(equalValues(a, b) != neq), true
		}
	case "<", "<=", ">", ">=":
		op := n.Operator
		return func(row record.Row) (record.Value, bool) {
			a, ok1 := l(row)
			b, ok2 := r(row)
			if !ok1 || !ok2 {
				return record.Null, false
			}
			c, ok := order(a, b)
			if !ok {
				return record.Null, false
			}
			switch op {
			case "<":
				return record.Bool(c < 0), true
			case "<=":
				return record.Bool(c <= 0), true
			case ">":
				return record.Bool(c > 0), true
			}
			return record.Bool(c >= 0), true
		}
	case "+", "-", "*", "/", "%":
		op := n.Operator
		return func(row record.Row) (record.Value, bool) {
			a, ok1 := l(row)
			b, ok2 := r(row)
			if !ok1 || !ok2 {
				return record.Null, false
			}
			return arith(op, a, b)
		}
	}
	return nil
}

// equalValues is expr's == on scalars: numbers compare by value across int
// and float, other values only with their own type.
func equalValues(a, b record.Value) bool {
	switch {
	case a.T == record.TypeInt && b.T == record.TypeInt:
		return a.Int() == b.Int()
	case a.Numeric() && b.Numeric():
		return a.Float() == b.Float()
	case a.T != b.T:
		return false
	case a.T == record.TypeString:
		return a.S == b.S
	case a.T == record.TypeBool:
		return a.Bool() == b.Bool()
	}
	return false
}

// order compares two numbers or two strings as expr's ordering operators
// do; ok is false for other pairs and for NaN, which the VM answers.
func order(a, b record.Value) (int, bool) {
	switch {
	case a.T == record.TypeInt && b.T == record.TypeInt:
		x, y := a.Int(), b.Int()
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	case a.Numeric() && b.Numeric():
		x, y := a.Float(), b.Float()
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		case x == y:
			return 0, true
		}
		return 0, false // NaN
	case a.T == record.TypeString && b.T == record.TypeString:
		switch {
		case a.S < b.S:
			return -1, true
		case a.S > b.S:
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// arith is expr's arithmetic on numbers: int with int stays int (wrapping
// as Go does), any float makes a float, / always divides as floats, % takes
// two ints; + joins two strings.
func arith(op string, a, b record.Value) (record.Value, bool) {
	if op == "+" && a.T == record.TypeString && b.T == record.TypeString {
		return record.String(a.S + b.S), true
	}
	if !a.Numeric() || !b.Numeric() {
		return record.Null, false
	}
	if a.T == record.TypeInt && b.T == record.TypeInt {
		x, y := a.Int(), b.Int()
		switch op {
		case "+":
			return record.Int(x + y), true
		case "-":
			return record.Int(x - y), true
		case "*":
			return record.Int(x * y), true
		case "/":
			return record.Float(float64(x) / float64(y)), true
		case "%":
			if y == 0 {
				return record.Null, false // the VM reports the division by zero
			}
			return record.Int(x % y), true
		}
		return record.Null, false
	}
	x, y := a.Float(), b.Float()
	switch op {
	case "+":
		return record.Float(x + y), true
	case "-":
		return record.Float(x - y), true
	case "*":
		return record.Float(x * y), true
	case "/":
		return record.Float(x / y), true
	}
	return record.Null, false // % of floats is the VM's error
}

// nativeToType converts a native result to a field of type t as ToValue
// converts a VM result; ok is false where ToValue would fail.
func nativeToType(v record.Value, t record.Type) (record.Value, bool) {
	switch t {
	case record.TypeString, record.TypeBool:
		return v, v.T == t
	case record.TypeInt:
		switch v.T {
		case record.TypeInt:
			return v, true
		case record.TypeFloat:
			if n := v.Float(); n == math.Trunc(n) && math.Abs(n) < 1<<62 {
				return record.Int(int64(n)), true
			}
		}
	case record.TypeFloat:
		switch v.T {
		case record.TypeFloat:
			return v, true
		case record.TypeInt:
			return record.Float(float64(v.Int())), true
		}
	}
	return record.Null, false
}
