package parquet

import (
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/record"
)

// Nested fields become Parquet groups, laid out as the format's
// LogicalTypes.md asks and parquet-mr, Arrow, Spark and Trino write them:
//
//	optional group geo { optional double lat; ... }                       struct
//	optional group tags (LIST) { repeated group list { optional … element; } }
//	optional group attrs (MAP) { repeated group key_value {
//	    required binary key (STRING); optional … value; } }
//
// A nested value travels as canonical JSON text (record package doc); the
// writer shreds it into its leaf columns with repetition and definition
// levels (Dremel), reading the text in one pass without copying strings
// that have no escapes. Every member, element and value is optional, so a
// null at any level is representable.

// nodeFor maps one field (or member) to its optional Parquet node.
func nodeFor(f record.Field, lay layout) (parquet.Node, error) {
	var n parquet.Node
	switch f.Type {
	case record.TypeString:
		if lay.isJSON(f.Name) {
			n = parquet.Encoded(parquet.JSON(), &parquet.RLEDictionary)
		} else {
			n = parquet.Encoded(parquet.String(), &parquet.RLEDictionary)
		}
	case record.TypeInt:
		n = parquet.Encoded(parquet.Int(64), &parquet.Plain)
	case record.TypeFloat:
		n = parquet.Encoded(parquet.Leaf(parquet.DoubleType), &parquet.Plain)
	case record.TypeBool:
		n = parquet.Encoded(parquet.Leaf(parquet.BooleanType), &parquet.Plain)
	case record.TypeTimestamp:
		unit := parquet.Microsecond
		if lay.timestampMillis {
			unit = parquet.Millisecond
		}
		n = parquet.Encoded(parquet.TimestampAdjusted(unit, true), &parquet.Plain)
	case record.TypeStruct:
		g := &orderedGroup{fields: make([]parquet.Field, len(f.Fields))}
		for i, m := range f.Fields {
			// Members are never JSON columns: jsonColumns names top-level fields.
			mn, err := nodeFor(m, layout{timestampMillis: lay.timestampMillis})
			if err != nil {
				return nil, err
			}
			g.fields[i] = &orderedField{Node: mn, name: m.Name}
		}
		n = g
	case record.TypeList, record.TypeMap:
		if f.Elem == nil {
			return nil, fmt.Errorf("map field %q: %s without an element type", f.Name, f.Type)
		}
		e := *f.Elem
		e.Name = ""
		en, err := nodeFor(e, layout{timestampMillis: lay.timestampMillis})
		if err != nil {
			return nil, err
		}
		if f.Type == record.TypeList {
			n = parquet.List(en)
		} else {
			n = parquet.Map(parquet.Encoded(parquet.String(), &parquet.RLEDictionary), en)
		}
	default:
		return nil, fmt.Errorf("map field %q: type %s has no Parquet column type", f.Name, f.Type)
	}
	return parquet.Optional(n), nil
}

// leafCount is the number of leaf columns field f takes.
func leafCount(f record.Field) int {
	switch f.Type {
	case record.TypeStruct:
		n := 0
		for _, m := range f.Fields {
			n += leafCount(m)
		}
		return n
	case record.TypeList:
		return leafCount(*f.Elem)
	case record.TypeMap:
		return 1 + leafCount(*f.Elem)
	}
	return 1
}

// shredNode is one node of a nested field's type with its place in the
// Parquet schema.
type shredNode struct {
	typ record.Type
	// col is the leaf column of a scalar, or of a map's keys.
	col int
	// def is the definition level of a present (non-null) value here; rep
	// is, for a list or map, the repetition level of its repeated group.
	def, rep int
	members  []shredNode // struct
	names    []string    // struct member names
	elem     *shredNode  // list element, map value
	// leaves are the leaf columns below this node, in column order.
	leaves []int
}

// shredder writes the nested fields of rows as leaf values. It belongs to
// one Writer.
type shredder struct {
	// fields has a node per top-level field: scalars too, so the columns
	// of every field are known.
	fields []shredNode
	// leafVals collects, per leaf column, the values of the row being
	// shredded.
	leafVals [][]parquet.Value
	millis   bool
	// arena holds unescaped strings until the run is handed to the file
	// writer; it is never reallocated under values that point into it.
	arena []byte
	// seen marks the struct members read, per struct depth.
	seen [][]bool
	// bad counts nested values that were not canonical for their type.
	bad int
}

// newShredder plans the columns of schema, checking them against the
// Parquet schema ps; nil when schema has no nested field (the flat path).
func newShredder(schema *record.Schema, ps *parquet.Schema, lay layout) (*shredder, error) {
	nested := false
	for i := range schema.Len() {
		nested = nested || schema.Field(i).Type.Nested()
	}
	if !nested {
		return nil, nil
	}
	sh := &shredder{millis: lay.timestampMillis}
	col := 0
	var paths [][]string
	for i := range schema.Len() {
		f := schema.Field(i)
		n := plan(f, []string{f.Name}, 1, 0, &col, &paths)
		sh.fields = append(sh.fields, n)
	}
	if !slices.EqualFunc(paths, ps.Columns(), slices.Equal[[]string]) {
		return nil, fmt.Errorf("plan nested columns: leaf paths %q, Parquet schema has %q", paths, ps.Columns())
	}
	sh.leafVals = make([][]parquet.Value, col)
	return sh, nil
}

// plan lays out f, present at definition level def below rep repeated
// groups, numbering leaves from *col and recording their paths.
func plan(f record.Field, path []string, def, rep int, col *int, paths *[][]string) shredNode {
	n := shredNode{typ: f.Type, def: def}
	leaf := func(p []string) int {
		c := *col
		*col++
		*paths = append(*paths, slices.Clone(p))
		return c
	}
	switch f.Type {
	case record.TypeStruct:
		for _, m := range f.Fields {
			mn := plan(m, append(slices.Clone(path), m.Name), def+1, rep, col, paths)
			n.members = append(n.members, mn)
			n.names = append(n.names, m.Name)
			n.leaves = append(n.leaves, mn.leaves...)
		}
	case record.TypeList:
		n.rep = rep + 1
		e := plan(*f.Elem, append(slices.Clone(path), "list", "element"), def+2, rep+1, col, paths)
		n.elem = &e
		n.leaves = e.leaves
	case record.TypeMap:
		n.rep = rep + 1
		n.col = leaf(append(slices.Clone(path), "key_value", "key"))
		e := plan(*f.Elem, append(slices.Clone(path), "key_value", "value"), def+2, rep+1, col, paths)
		n.elem = &e
		n.leaves = append([]int{n.col}, e.leaves...)
	default:
		n.col = leaf(path)
		n.leaves = []int{n.col}
	}
	return n
}

// appendNestedRow is appendRow for schemas with nested fields: a row has
// as many values as its lists and maps make, in column order.
func (w *Writer) appendNestedRow(row record.Row) {
	sh := w.shred
	start := len(w.vals)
	for i, v := range row {
		n := &sh.fields[i]
		if !n.typ.Nested() {
			w.vals = append(w.vals, w.leafValue(v, n.col, i))
			continue
		}
		for _, c := range n.leaves {
			sh.leafVals[c] = sh.leafVals[c][:0]
		}
		if v.IsNull() {
			sh.null(n, 0, 0)
		} else if !sh.value(n, v.S) {
			w.badNested(i, v.S)
			for _, c := range n.leaves {
				sh.leafVals[c] = sh.leafVals[c][:0]
			}
			sh.null(n, 0, 0)
		}
		for _, c := range n.leaves {
			w.vals = append(w.vals, sh.leafVals[c]...)
		}
	}
	end := len(w.vals)
	w.run = append(w.run, parquet.Row(w.vals[start:end:end]))
}

// leafValue is the Parquet value of scalar v of field i in column c, at
// the top level (definition level 1 when present).
func (w *Writer) leafValue(v record.Value, c, i int) parquet.Value {
	var pv parquet.Value
	switch v.T {
	case record.TypeNull:
		return pv.Level(0, 0, c)
	case record.TypeString:
		pv = parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(v.S), len(v.S)))
	case record.TypeInt:
		if w.types[i] == record.TypeFloat {
			pv = parquet.DoubleValue(float64(int64(v.N)))
		} else {
			pv = parquet.Int64Value(int64(v.N))
		}
	case record.TypeFloat:
		pv = parquet.DoubleValue(v.Float())
	case record.TypeBool:
		pv = parquet.BooleanValue(v.N != 0)
	case record.TypeTimestamp:
		us := int64(v.N)
		if w.lay.timestampMillis {
			// Floor, so times before 1970 stay in their millisecond.
			us = floorDiv(us, 1000)
		}
		pv = parquet.Int64Value(us)
	}
	return pv.Level(0, 1, c)
}

// badNested accounts for a nested value that is not the canonical JSON of
// its type. The decoder never makes one; a value built elsewhere (a Go
// pipeline) might. It is written as null, counted and logged once.
func (w *Writer) badNested(i int, text string) {
	w.sink.metrics.badNested.Inc()
	if w.shred.bad == 0 {
		w.sink.logger.Warn("nested value is not canonical JSON of its type; written as null and counted",
			zap.String("task", w.task), zap.String("field", w.schema.Field(i).Name), zap.Int("bytes", len(text)))
	}
	w.shred.bad++
}

// resetRun drops what the values of a handed-over run pointed to.
func (sh *shredder) resetRun() {
	if sh != nil {
		sh.arena = sh.arena[:0]
	}
}

// null writes a null at definition level def for every leaf below n.
func (sh *shredder) null(n *shredNode, rep, def int) {
	for _, c := range n.leaves {
		sh.leafVals[c] = append(sh.leafVals[c], parquet.Value{}.Level(rep, def, c))
	}
}

// value shreds the canonical JSON text of a non-null value of n; false
// when the text is not that.
func (sh *shredder) value(n *shredNode, text string) bool {
	sc := jsonScan{s: text}
	ok := sh.node(&sc, n, 0, 0)
	sc.ws()
	return ok && sc.pos == len(text)
}

// node shreds the value at sc (null included) as n, the first value of
// every leaf at repetition level rep.
func (sh *shredder) node(sc *jsonScan, n *shredNode, rep, depth int) bool {
	sc.ws()
	if sc.literal("null") {
		sh.null(n, rep, n.def-1)
		return true
	}
	switch n.typ {
	case record.TypeStruct:
		return sh.structValue(sc, n, rep, depth)
	case record.TypeList:
		if !sc.byte('[') {
			return false
		}
		if sc.byte(']') {
			sh.null(n.elem, rep, n.def)
			return true
		}
		for r := rep; ; r = n.rep {
			if !sh.node(sc, n.elem, r, depth+1) {
				return false
			}
			if sc.byte(']') {
				return true
			}
			if !sc.byte(',') {
				return false
			}
		}
	case record.TypeMap:
		if !sc.byte('{') {
			return false
		}
		if sc.byte('}') {
			sh.leafVals[n.col] = append(sh.leafVals[n.col], parquet.Value{}.Level(rep, n.def, n.col))
			sh.null(n.elem, rep, n.def)
			return true
		}
		for r := rep; ; r = n.rep {
			key, ok := sh.str(sc)
			if !ok || !sc.byte(':') {
				return false
			}
			sh.leafVals[n.col] = append(sh.leafVals[n.col], parquet.ByteArrayValue(key).Level(r, n.def+1, n.col))
			if !sh.node(sc, n.elem, r, depth+1) {
				return false
			}
			if sc.byte('}') {
				return true
			}
			if !sc.byte(',') {
				return false
			}
		}
	}
	pv, ok := sh.scalar(sc, n.typ)
	if !ok {
		return false
	}
	sh.leafVals[n.col] = append(sh.leafVals[n.col], pv.Level(rep, n.def, n.col))
	return true
}

// structValue shreds an object: members in any order, each at most once;
// members it lacks are null.
func (sh *shredder) structValue(sc *jsonScan, n *shredNode, rep, depth int) bool {
	if !sc.byte('{') {
		return false
	}
	for len(sh.seen) <= depth {
		sh.seen = append(sh.seen, nil)
	}
	seen := sh.seen[depth][:0]
	for range n.members {
		seen = append(seen, false)
	}
	sh.seen[depth] = seen
	if !sc.byte('}') {
		cursor := 0
		for {
			key, ok := sh.str(sc)
			if !ok || !sc.byte(':') {
				return false
			}
			j := cursor
			if cursor >= len(n.names) || n.names[cursor] != b2s(key) {
				j = slices.Index(n.names, b2s(key))
			}
			if j < 0 || seen[j] {
				return false // not canonical: an undeclared or repeated member
			}
			seen[j], cursor = true, j+1
			if !sh.node(sc, &n.members[j], rep, depth+1) {
				return false
			}
			// A deeper struct may have grown sh.seen: take this level's again.
			seen = sh.seen[depth]
			if sc.byte('}') {
				break
			}
			if !sc.byte(',') {
				return false
			}
		}
	}
	for j := range n.members {
		if !seen[j] {
			sh.null(&n.members[j], rep, n.def)
		}
	}
	return true
}

// scalar reads a scalar of type t.
func (sh *shredder) scalar(sc *jsonScan, t record.Type) (parquet.Value, bool) {
	switch t {
	case record.TypeString:
		s, ok := sh.str(sc)
		return parquet.ByteArrayValue(s), ok
	case record.TypeBool:
		switch {
		case sc.literal("true"):
			return parquet.BooleanValue(true), true
		case sc.literal("false"):
			return parquet.BooleanValue(false), true
		}
	case record.TypeInt:
		if num, ok := sc.number(); ok {
			if i, err := strconv.ParseInt(num, 10, 64); err == nil {
				return parquet.Int64Value(i), true
			}
		}
	case record.TypeFloat:
		if num, ok := sc.number(); ok {
			if f, err := strconv.ParseFloat(num, 64); err == nil {
				return parquet.DoubleValue(f), true
			}
		}
	case record.TypeTimestamp:
		s, ok := sh.str(sc)
		if !ok {
			break
		}
		us, ok := parseCanonicalTime(b2s(s))
		if !ok {
			break
		}
		if sh.millis {
			us = floorDiv(us, 1000)
		}
		return parquet.Int64Value(us), true
	}
	return parquet.Value{}, false
}

// parseCanonicalTime reads a time as record.AppendJSONValue writes it
// ("2006-01-02T15:04:05.000000Z"), or any RFC 3339 time, in microseconds.
func parseCanonicalTime(s string) (int64, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, false
	}
	return t.UnixMicro(), true
}

// str reads a JSON string; one without escapes is a view of the text,
// valid while the batch is; an escaped one is unescaped into the arena.
func (sh *shredder) str(sc *jsonScan) ([]byte, bool) {
	sc.ws()
	s := sc.s
	if sc.pos >= len(s) || s[sc.pos] != '"' {
		return nil, false
	}
	start := sc.pos + 1
	i := start
	for i < len(s) && s[i] != '"' && s[i] != '\\' {
		i++
	}
	if i >= len(s) {
		return nil, false
	}
	if s[i] == '"' {
		sc.pos = i + 1
		return unsafe.Slice(unsafe.StringData(s[start:i]), i-start), true
	}
	// Escapes: unescape into a fresh region of the arena. Growing makes a
	// new array, so earlier values keep pointing at the old one.
	need := len(s) - start
	if cap(sh.arena)-len(sh.arena) < need {
		sh.arena = make([]byte, 0, max(2*cap(sh.arena), need, 4096))
	}
	base := len(sh.arena)
	out := append(sh.arena, s[start:i]...)
	for {
		if i >= len(s) {
			return nil, false
		}
		c := s[i]
		switch {
		case c == '"':
			sc.pos = i + 1
			sh.arena = out
			return out[base:len(out):len(out)], true
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return nil, false
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s[i+2:])
			if !ok {
				return nil, false
			}
			i += 6
			if utf16.IsSurrogate(r) && len(s) >= i+6 && s[i] == '\\' && s[i+1] == 'u' {
				if r2, ok := hex4(s[i+2:]); ok && utf16.DecodeRune(r, r2) != utf8.RuneError {
					r = utf16.DecodeRune(r, r2)
					i += 6
				}
			}
			out = utf8.AppendRune(out, r) // a lone surrogate becomes U+FFFD
			continue
		default:
			return nil, false
		}
		i += 2
	}
}

// hex4 reads the four hex digits of a \u escape.
func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(s[:4], 16, 16)
	return rune(v), err == nil
}

// jsonScan is a position in canonical JSON text.
type jsonScan struct {
	s   string
	pos int
}

func (sc *jsonScan) ws() {
	for sc.pos < len(sc.s) {
		switch sc.s[sc.pos] {
		case ' ', '\t', '\n', '\r':
			sc.pos++
		default:
			return
		}
	}
}

// byte consumes c after optional whitespace.
func (sc *jsonScan) byte(c byte) bool {
	sc.ws()
	if sc.pos < len(sc.s) && sc.s[sc.pos] == c {
		sc.pos++
		return true
	}
	return false
}

func (sc *jsonScan) literal(word string) bool {
	if len(sc.s)-sc.pos >= len(word) && sc.s[sc.pos:sc.pos+len(word)] == word {
		sc.pos += len(word)
		return true
	}
	return false
}

// number reads the text of a number (validated by its parser).
func (sc *jsonScan) number() (string, bool) {
	sc.ws()
	start := sc.pos
	for sc.pos < len(sc.s) {
		c := sc.s[sc.pos]
		if (c < '0' || c > '9') && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
			break
		}
		sc.pos++
	}
	return sc.s[start:sc.pos], sc.pos > start
}

// b2s views p as a string without copying.
func b2s(p []byte) string { return unsafe.String(unsafe.SliceData(p), len(p)) }
