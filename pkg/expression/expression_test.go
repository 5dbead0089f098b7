package expression

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// stepSchema is a schema with one field of every scalar type and a few
// more, the width of a typical decoded event.
func stepSchema(t testing.TB) *record.Schema {
	t.Helper()
	s, err := record.NewSchema(
		record.Field{Name: "i", Type: record.TypeInt},
		record.Field{Name: "j", Type: record.TypeInt},
		record.Field{Name: "f", Type: record.TypeFloat},
		record.Field{Name: "g", Type: record.TypeFloat},
		record.Field{Name: "s", Type: record.TypeString},
		record.Field{Name: "u", Type: record.TypeString},
		record.Field{Name: "b", Type: record.TypeBool},
		record.Field{Name: "ts", Type: record.TypeTimestamp},
		record.Field{Name: "host", Type: record.TypeString},
		record.Field{Name: "level", Type: record.TypeString},
	)
	require.NoError(t, err)
	return s
}

// vmOnly returns a copy of e that always evaluates on the VM.
func vmOnly(e *Expression) *Expression {
	c := *e
	c.native = nil
	c.refs = nil
	c.env = make(map[string]any, len(e.env))
	for k, v := range e.env {
		c.env[k] = v
	}
	return &c
}

// sameResult compares the native-first evaluation with the VM's.
func sameResult(t *testing.T, src string, want record.Type, row record.Row) {
	t.Helper()
	schema := stepSchema(t)
	e, err := Compile(src, schema, want)
	if err != nil {
		return // not a valid expression: nothing to compare
	}
	vm := vmOnly(e)
	if want == record.TypeBool {
		got, gotErr := e.EvalBool(row)
		exp, expErr := vm.EvalBool(row)
		require.Equal(t, expErr != nil, gotErr != nil, "%s on %v: error %v, VM error %v", src, row, gotErr, expErr)
		if expErr == nil {
			require.Equal(t, exp, got, "%s on %v", src, row)
		}
		return
	}
	got, gotErr := e.EvalValue(row, want)
	exp, expErr := vm.EvalValue(row, want)
	require.Equal(t, expErr != nil, gotErr != nil, "%s on %v: error %v, VM error %v", src, row, gotErr, expErr)
	if expErr == nil {
		require.Equal(t, exp.T, got.T, "%s on %v: %v, VM %v", src, row, got, exp)
		if exp.T == record.TypeFloat && math.IsNaN(exp.Float()) {
			require.True(t, math.IsNaN(got.Float()), "%s on %v: %v, VM NaN", src, row, got)
			return
		}
		require.Equal(t, exp, got, "%s on %v", src, row)
	}
}

func fullRow(i, j int64, f, g float64, s, u string, b bool) record.Row {
	return record.Row{record.Int(i), record.Int(j), record.Float(f), record.Float(g),
		record.String(s), record.String(u), record.Bool(b), record.Timestamp(1_700_000_000_000_000),
		record.String("web-1"), record.String("info")}
}

func TestNativeExpressionsMatchTheVM(t *testing.T) {
	rows := []record.Row{
		fullRow(3, 2, 2.5, -1, "a", "b", true),
		fullRow(1, 1, 1, 1, "A", "ÜnÏ", true),
		fullRow(1, 1, 1, 1, "Zz", "\u212a", false), // the Kelvin sign lowers to k
		fullRow(-7, 0, 0, 0, "", "a", false),
		fullRow(math.MaxInt64, 1, math.Inf(1), math.NaN(), "zz", "zz", true),
		fullRow(4, 4, 4, 4.0, "x", "x", false),
		{record.Null, record.Int(1), record.Null, record.Float(1), record.Null, record.String("b"), record.Null, record.Null, record.Null, record.Null},
	}
	conds := []string{
		"i > 2", "i >= j", "f < g", "i == f", "i != 4", "s == 'a'", "s < u", "b", "!b", "not b",
		"i > 2 && s == 'a'", "i > 100 && f > 0", "i > 0 || f > 0", "b || i > 0", "i in [1, 3, 4.0]",
		"s in ['a', 'x']", "level == 'info' && host != 'web-2'", "i % 2 == 0", "i / j > 1", "-i < 0",
		"i * 2 + 1 > f", "s + u == 'ab'", "f == f", "g != g", "i % j == 1", "ts > ts",
		"len(s) > 0", "i > 2 ? true : false",
		"s == nil", "s != nil", "nil == i", "nil != b", "ts == nil", "f != nil", "nil == nil", "nil != nil",
		"(i > 2 ? nil : s) == nil", "(i > 2 ? 'x' : nil) != nil", "s contains 'a'", "u startsWith s", "s endsWith ''",
		"lower(s) == 'a'", "upper(u) != 'B'", "len(level) == 4", "split(s, 'a')[0] == ''",
		"'a' == lower(s)", "lower(host) == 'web-1'", "upper(level) == 'INFO'", "lower(s) != 'A'", "upper(s) == 'ZZ'",
		"lower(u) == 'ünï'", "upper(u) == 'ÜNÏ'", "lower(u) == 'k'",
	}
	values := []struct {
		src string
		t   record.Type
	}{
		{"f * 0.908", record.TypeFloat}, {"i * 2", record.TypeInt}, {"i / j", record.TypeFloat},
		{"i / j", record.TypeInt}, {"i + f", record.TypeFloat}, {"f", record.TypeInt},
		{"s + '-' + u", record.TypeString}, {"i % j", record.TypeInt}, {"-f", record.TypeFloat},
		{"i > j", record.TypeBool}, {"i", record.TypeString}, {"upper(s)", record.TypeString},
		{"i - j * 3", record.TypeInt}, {"f + 1", record.TypeInt},
		{"i > 2 ? 1 : nil", record.TypeInt}, {"i > 2 ? i : nil", record.TypeFloat}, {"b ? nil : s", record.TypeString},
		{"nil", record.TypeInt}, {"i > 2 ? true : nil", record.TypeBool},
		{"lower(s) == 'a' ? '0' : s contains 'z' ? split(split(s, 'z')[1], 'x')[0] : nil", record.TypeString},
		{"split(level, 'f')[-1]", record.TypeString}, {"split(host, '-')[1]", record.TypeString},
		{"split(host, '-')[2]", record.TypeString}, {"split(host, '')[0]", record.TypeString},
		{"split(host, '-')[-3]", record.TypeString}, {"upper(host)", record.TypeString}, {"len(u)", record.TypeInt},
	}
	for _, row := range rows {
		for _, c := range conds {
			sameResult(t, c, record.TypeBool, row)
		}
		for _, v := range values {
			sameResult(t, v.src, v.t, row)
		}
	}
}

// genExpr builds a random expression over stepSchema from data; kind is
// "num", "str" or "bool".
type genExpr struct {
	data []byte
	pos  int
}

func (g *genExpr) next() int {
	if g.pos >= len(g.data) {
		return 0
	}
	b := g.data[g.pos]
	g.pos++
	return int(b)
}

func (g *genExpr) expr(kind string, depth int) string {
	c := g.next()
	if depth > 4 {
		c = 0
	}
	switch kind {
	case "num":
		switch c % 10 {
		case 0, 1:
			return []string{"i", "j", "f", "g"}[g.next()%4]
		case 2:
			return []string{"0", "1", "-3", "2.5", "0.0", "1099511627776", "-0.5", "7"}[g.next()%8]
		case 3, 4, 5:
			op := []string{"+", "-", "*", "/", "%"}[g.next()%5]
			return "(" + g.expr("num", depth+1) + " " + op + " " + g.expr("num", depth+1) + ")"
		case 6:
			return "-" + g.expr("num", depth+1)
		case 7:
			return "(" + g.expr("bool", depth+1) + " ? " + g.expr("num", depth+1) + " : " + g.orNil("num", depth+1) + ")"
		case 8:
			return "(" + g.expr("bool", depth+1) + " ? nil : " + g.expr("num", depth+1) + ")"
		}
		return "len(" + g.expr("str", depth+1) + ")"
	case "str":
		switch c % 8 {
		case 0, 1:
			return []string{"s", "u", "host", "level"}[g.next()%4]
		case 2:
			return strconv.Quote([]string{"", "a", "b", "info", "zz", "A/b", "a&b/C", "Ünï/", "//", "\u212a", "INFO"}[g.next()%11])
		case 3:
			return "(" + g.expr("str", depth+1) + " + " + g.expr("str", depth+1) + ")"
		case 4:
			return []string{"lower", "upper"}[g.next()%2] + "(" + g.expr("str", depth+1) + ")"
		case 5:
			sep := strconv.Quote([]string{"/", "a", "&", "", "//", "b/"}[g.next()%6])
			return "split(" + g.expr("str", depth+1) + ", " + sep + ")[" + strconv.Itoa(g.next()%7-3) + "]"
		case 6:
			return "split(" + g.expr("str", depth+1) + ", " + g.expr("str", depth+1) + ")[" + g.expr("num", depth+1) + "]"
		}
		return "(" + g.expr("bool", depth+1) + " ? " + g.expr("str", depth+1) + " : " + g.orNil("str", depth+1) + ")"
	}
	switch c % 14 {
	case 0:
		return "b"
	case 1:
		return []string{"true", "false"}[g.next()%2]
	case 2, 3:
		op := []string{"==", "!=", "<", "<=", ">", ">="}[g.next()%6]
		return "(" + g.expr("num", depth+1) + " " + op + " " + g.expr("num", depth+1) + ")"
	case 4:
		op := []string{"==", "!=", "<", ">="}[g.next()%4]
		return "(" + g.expr("str", depth+1) + " " + op + " " + g.expr("str", depth+1) + ")"
	case 5:
		return "!" + g.expr("bool", depth+1)
	case 6:
		op := []string{"&&", "||", "and", "or"}[g.next()%4]
		return "(" + g.expr("bool", depth+1) + " " + op + " " + g.expr("bool", depth+1) + ")"
	case 7:
		return g.expr("num", depth+1) + " in [1, 2.5, -3, 0]"
	case 8:
		op := []string{"contains", "startsWith", "endsWith"}[g.next()%3]
		return "(" + g.expr("str", depth+1) + " " + op + " " + g.expr("str", depth+1) + ")"
	case 9:
		op := []string{"==", "!="}[g.next()%2]
		kind := []string{"num", "str", "bool"}[g.next()%3]
		return "(" + g.orNil(kind, depth+1) + " " + op + " " + g.orNil(kind, depth+1) + ")"
	case 10:
		return "(" + g.expr("bool", depth+1) + " ? " + g.expr("bool", depth+1) + " : " + g.expr("bool", depth+1) + ")"
	case 11:
		return g.orNil("num", depth+1) + " in [1, nil, -3]"
	case 12:
		fn := []string{"lower", "upper"}[g.next()%2]
		lit := strconv.Quote([]string{"a", "A", "info", "INFO", "ünï", "ÜNÏ", "k", ""}[g.next()%8])
		return "(" + fn + "(" + g.expr("str", depth+1) + ") " + []string{"==", "!="}[g.next()%2] + " " + lit + ")"
	}
	return g.expr("str", depth+1) + ` in ["a", "info", ""]`
}

// orNil is an expression of the kind, or now and then nil.
func (g *genExpr) orNil(kind string, depth int) string {
	if g.next()%4 == 0 {
		return "nil"
	}
	return g.expr(kind, depth)
}

func (g *genExpr) value() record.Value {
	switch g.next() % 12 {
	case 0:
		return record.Null
	case 1:
		return record.Int(int64(g.next()) - 128)
	case 2:
		return record.Int(0)
	case 3:
		return record.Int(math.MaxInt64 - int64(g.next()))
	case 4:
		return record.Float(float64(g.next())/8 - 16)
	case 5:
		return record.Float(math.NaN())
	case 6:
		return record.Float(math.Inf(1 - 2*(g.next()%2)))
	case 7:
		return record.String([]string{"", "a", "b", "info", "zz", "Info", "a/B/c", "Ünï", "\u212a"}[g.next()%9])
	case 8:
		return record.Bool(g.next()%2 == 0)
	}
	return record.Int(int64(g.next() % 5))
}

// row fills each field with a random value of its type, or null.
func (g *genExpr) row(schema *record.Schema) record.Row {
	row := make(record.Row, schema.Len())
	for i := range row {
		v := g.value()
		if v.T != record.TypeNull && v.T != schema.Field(i).Type {
			switch schema.Field(i).Type {
			case record.TypeInt:
				v = record.Int(int64(v.N % 9))
			case record.TypeFloat:
				v = record.Float(float64(v.N%9) - 4.5)
			case record.TypeString:
				v = record.String(strings.Repeat("a", int(v.N%3)))
			case record.TypeBool:
				v = record.Bool(v.N%2 == 1)
			case record.TypeTimestamp:
				v = record.Timestamp(int64(v.N))
			}
		}
		row[i] = v
	}
	return row
}

// FuzzNativeMatchesVM holds the native evaluation of filter and map
// expressions to the VM's answers, errors included, on random expressions
// and rows with nulls, NaN, infinities and integer edge values.
func FuzzNativeMatchesVM(f *testing.F) {
	for _, seed := range []string{"\x03\x02\x00\x01\x05", "\x06\x03\x04\x00\x00\x00\x00", "\x02\x02\x03\x04\x01\x00\x02\x07\x00\x03", "hello, native world", "\xff\xfe\xfd\x00\x01\x02\x03\x04\x05\x06\x07\x08"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &genExpr{data: data}
		schema := stepSchema(t)
		cond := g.expr("bool", 0)
		num := g.expr("num", 0)
		str := g.expr("str", 0)
		for range 4 {
			row := g.row(schema)
			sameResult(t, cond, record.TypeBool, row)
			sameResult(t, num, record.TypeFloat, row)
			sameResult(t, num, record.TypeInt, row)
			sameResult(t, str, record.TypeString, row)
		}
	})
}

// TestNativeCoversCommonSteps keeps the shapes of the shipped examples on
// the native path: a regression to the VM would box every field again.
func TestNativeCoversCommonSteps(t *testing.T) {
	schema := stepSchema(t)
	for _, src := range []string{
		"level == 'info' && host != 'web-2'", "f * 0.908", "i > 100 || s in ['a', 'b']", "!(f > 80.5)",
		"(i + j) / 2", "s + '-' + u",
		// The Nexmark queries' shapes (examples/nexmark q15–q16, q21, q22).
		"i < 10000 ? 1 : nil", "i >= 10000 && i < 1000000 ? j : nil",
		`lower(s) == "apple" ? "0" : lower(s) == "google" ? "1" : u contains "&channel_id=" ? split(split(u, "&channel_id=")[1], "&")[0] : nil`,
		`split(u, "/")[3]`, "s != nil", "len(s) > 3", "upper(s) endsWith 'X'",
	} {
		e, err := Compile(src, schema, record.TypeNull)
		require.NoError(t, err, src)
		require.NotNil(t, e.native, "%s runs on the VM", src)
	}
}
