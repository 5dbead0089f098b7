package expression

import (
	"math"
	"strings"
	"unicode/utf8"

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
// it covers — fields of scalar types (not timestamps), literals, nil as a
// result and in field == nil,
// unary minus and not, + - * / %, comparisons, and/or, `in` a literal
// array, the ternary `c ? a : b`, the string operators contains,
// startsWith and endsWith, and the builtins lower, upper, len of a string
// and split(s, sep)[i] — or returns nil. A string result may share memory
// with the row (a field, or a part of one that split cuts out); Map copies
// it into the output batch.
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
		// A null field is left to the VM, whose operators on typed
		// fields fail on nil (s == s is an error when s is null).
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
	case *ast.NilNode:
		return constant(record.Null)
	case *ast.ConditionalNode:
		return compileConditional(n, schema)
	case *ast.BuiltinNode:
		return compileBuiltin(n, schema)
	case *ast.MemberNode:
		return compileIndex(n, schema)
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

// compileConditional is `c ? a : b` (and if/else): the VM evaluates only
// the branch c chooses, and so does this.
func compileConditional(n *ast.ConditionalNode, schema *record.Schema) nativeFn {
	c := compileNative(n.Cond, schema)
	a := compileNative(n.Exp1, schema)
	b := compileNative(n.Exp2, schema)
	if c == nil || a == nil || b == nil {
		return nil
	}
	return func(row record.Row) (record.Value, bool) {
		v, ok := c(row)
		if !ok || v.T != record.TypeBool {
			return record.Null, false
		}
		if v.Bool() {
			return a(row)
		}
		return b(row)
	}
}

// compileBuiltin covers lower, upper and len of one string.
func compileBuiltin(n *ast.BuiltinNode, schema *record.Schema) nativeFn {
	if len(n.Arguments) != 1 || n.Map != nil {
		return nil
	}
	if _, shadowed := schema.Index(n.Name); shadowed {
		return nil
	}
	var f func(string) record.Value
	switch n.Name {
	case "lower":
		f = func(s string) record.Value { return record.String(strings.ToLower(s)) }
	case "upper":
		f = func(s string) record.Value { return record.String(strings.ToUpper(s)) }
	case "len":
		f = func(s string) record.Value { return record.Int(int64(utf8.RuneCountInString(s))) }
	default:
		return nil
	}
	arg := compileNative(n.Arguments[0], schema)
	if arg == nil {
		return nil
	}
	return func(row record.Row) (record.Value, bool) {
		v, ok := arg(row)
		if !ok || v.T != record.TypeString {
			return record.Null, false
		}
		return f(v.S), true
	}
}

// compileIndex covers split(s, sep)[i]: the i-th part (from the end when
// i < 0) without building the array. An index out of range, and an empty
// sep (which splits into characters), are the VM's.
func compileIndex(n *ast.MemberNode, schema *record.Schema) nativeFn {
	call, ok := n.Node.(*ast.BuiltinNode)
	if !ok || n.Optional || n.Method || call.Name != "split" || len(call.Arguments) != 2 || call.Map != nil {
		return nil
	}
	if _, shadowed := schema.Index(call.Name); shadowed {
		return nil
	}
	str := compileNative(call.Arguments[0], schema)
	sep := compileNative(call.Arguments[1], schema)
	idx := compileNative(n.Property, schema)
	if str == nil || sep == nil || idx == nil {
		return nil
	}
	return func(row record.Row) (record.Value, bool) {
		s, ok1 := str(row)
		p, ok2 := sep(row)
		i, ok3 := idx(row)
		if !ok1 || !ok2 || !ok3 || s.T != record.TypeString || p.T != record.TypeString || i.T != record.TypeInt {
			return record.Null, false
		}
		part, ok := splitPart(s.S, p.S, i.Int())
		if !ok {
			return record.Null, false
		}
		return record.String(part), true
	}
}

// splitPart is strings.Split(s, sep)[i], with expr's negative indexes
// counting from the end; ok is false when i is out of range or sep empty.
func splitPart(s, sep string, i int64) (string, bool) {
	if sep == "" {
		return "", false
	}
	if i < 0 {
		i += int64(strings.Count(s, sep)) + 1
		if i < 0 {
			return "", false
		}
	}
	for ; i > 0; i-- {
		k := strings.Index(s, sep)
		if k < 0 {
			return "", false
		}
		s = s[k+len(sep):]
	}
	if k := strings.Index(s, sep); k >= 0 {
		s = s[:k]
	}
	return s, true
}

func compileBinary(n *ast.BinaryNode, schema *record.Schema) nativeFn {
	if f := compileNilTest(n, schema); f != nil {
		return f
	}
	if f := compileCaseTest(n, schema); f != nil {
		return f
	}
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
			if !ok || v.T == record.TypeNull {
				return nil // not a literal, or nil
			}
			set = append(set, v)
		}
		return func(row record.Row) (record.Value, bool) {
			v, ok := l(row)
			if !ok || v.T == record.TypeNull {
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
			// nil from a ternary or a literal is the VM's: on typed
			// operands it fails rather than compares.
			if !ok1 || !ok2 || a.T == record.TypeNull || b.T == record.TypeNull {
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
	case "contains", "startsWith", "endsWith":
		var f func(s, sub string) bool
		switch n.Operator {
		case "contains":
			f = strings.Contains
		case "startsWith":
			f = strings.HasPrefix
		default:
			f = strings.HasSuffix
		}
		return func(row record.Row) (record.Value, bool) {
			a, ok1 := l(row)
			b, ok2 := r(row)
			if !ok1 || !ok2 || a.T != record.TypeString || b.T != record.TypeString {
				return record.Null, false
			}
			return record.Bool(f(a.S, b.S)), true
		}
	}
	return nil
}

// compileNilTest covers field == nil and field != nil (either way round),
// which the VM answers for any field, null or not: true when the field is
// null, for ==.
func compileNilTest(n *ast.BinaryNode, schema *record.Schema) nativeFn {
	if n.Operator != "==" && n.Operator != "!=" {
		return nil
	}
	side := n.Left
	if _, isNil := n.Left.(*ast.NilNode); isNil {
		side = n.Right
	} else if _, isNil := n.Right.(*ast.NilNode); !isNil {
		return nil
	}
	id, ok := side.(*ast.IdentifierNode)
	if !ok {
		return nil
	}
	i, ok := schema.Index(id.Value)
	if !ok {
		return nil
	}
	want := n.Operator == "=="
	return func(row record.Row) (record.Value, bool) {
		return record.Bool((row[i].T == record.TypeNull) == want), true
	}
}

// compileCaseTest covers lower(s) == "lit" and upper(s) == "LIT" (and !=,
// either way round) without building the lowered string: for an ASCII s
// the bytes are compared case-folded as they go; other strings are
// lowered (uppered) and compared.
func compileCaseTest(n *ast.BinaryNode, schema *record.Schema) nativeFn {
	if n.Operator != "==" && n.Operator != "!=" {
		return nil
	}
	call, ok := n.Left.(*ast.BuiltinNode)
	lit, ok2 := n.Right.(*ast.StringNode)
	if !ok || !ok2 {
		call, ok = n.Right.(*ast.BuiltinNode)
		lit, ok2 = n.Left.(*ast.StringNode)
		if !ok || !ok2 {
			return nil
		}
	}
	if (call.Name != "lower" && call.Name != "upper") || len(call.Arguments) != 1 || call.Map != nil {
		return nil
	}
	if _, shadowed := schema.Index(call.Name); shadowed {
		return nil
	}
	arg := compileNative(call.Arguments[0], schema)
	if arg == nil {
		return nil
	}
	lower, want, neq := call.Name == "lower", lit.Value, n.Operator == "!="
	return func(row record.Row) (record.Value, bool) {
		v, ok := arg(row)
		if !ok || v.T != record.TypeString {
			return record.Null, false
		}
		return record.Bool(caseEqual(v.S, want, lower) != neq), true
	}
}

// caseEqual is strings.ToLower(s) == want (strings.ToUpper with lower
// false), without allocating when s is ASCII.
func caseEqual(s, want string, lower bool) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			if lower {
				return strings.ToLower(s) == want
			}
			return strings.ToUpper(s) == want
		}
	}
	if len(s) != len(want) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case lower && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case !lower && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
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
	if v.T == record.TypeNull {
		return v, true // nil is null in any field, as ToValue makes it
	}
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
