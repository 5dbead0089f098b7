package parquet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/streamd/streamd/internal/parquetcheck"
	"github.com/streamd/streamd/pkg/record"
)

// This file is the reference model of nested columns: it reads a message
// with encoding/json (not the decoder's parser), applies the declared
// types from the rules in docs/pipeline.md, and says what each nested
// column must hold — as the values readers return and as the Parquet
// column stripes (repetition level, definition level, value) the format
// defines. It shares no code with the decoder or the writer.

// jnode is a JSON value with object members in input order.
type jnode struct {
	kind    byte // 'n' null, 's' string, 'd' number, 'b' bool, 'o' object, 'a' array
	str     string
	b       bool
	keys    []string
	members []*jnode
	elems   []*jnode
}

// parseOrdered parses one JSON document, keeping member order and repeats.
func parseOrdered(msg []byte) (*jnode, error) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	n, err := parseNode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data")
	}
	return n, nil
}

func parseNode(dec *json.Decoder) (*jnode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case nil:
		return &jnode{kind: 'n'}, nil
	case string:
		return &jnode{kind: 's', str: v}, nil
	case json.Number:
		return &jnode{kind: 'd', str: v.String()}, nil
	case bool:
		return &jnode{kind: 'b', b: v}, nil
	case json.Delim:
		n := &jnode{kind: 'o'}
		if v == '[' {
			n.kind = 'a'
		}
		for dec.More() {
			if n.kind == 'o' {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, kt.(string))
			}
			c, err := parseNode(dec)
			if err != nil {
				return nil, err
			}
			if n.kind == 'o' {
				n.members = append(n.members, c)
			} else {
				n.elems = append(n.elems, c)
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return n, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// get returns the first member named key, or nil.
func (n *jnode) get(key string) *jnode {
	for i, k := range n.keys {
		if k == key {
			return n.members[i]
		}
	}
	return nil
}

// modelReject is why the model rejects a message.
type modelReject struct{ reason string }

func (r *modelReject) Error() string { return r.reason }

// expectRow applies the declared fields to a parsed message: the value of
// every field in reader form (see expectValue), or the reject reason.
func expectRow(fields []record.Field, required map[string]bool, msg *jnode) ([]any, error) {
	if msg.kind != 'o' {
		return nil, &modelReject{"invalid_json"}
	}
	out := make([]any, len(fields))
	for i, f := range fields {
		v := msg.get(f.Name)
		if v == nil || v.kind == 'n' {
			if required[f.Name] {
				return nil, &modelReject{"missing_field"}
			}
			continue
		}
		x, err := expectValue(f, v)
		if err != nil {
			return nil, err
		}
		out[i] = x
	}
	return out, nil
}

// expectValue is a value in reader form: nil for null; a scalar as
// parquetcheck.Canon writes it; a struct as a map with every member; a
// list as a slice; a map as its [key, value] pairs in input order (see
// sortedMaps).
func expectValue(f record.Field, v *jnode) (any, error) {
	if v == nil || v.kind == 'n' {
		return nil, nil
	}
	mismatch := &modelReject{"type_mismatch"}
	switch f.Type {
	case record.TypeStruct:
		if v.kind != 'o' {
			return nil, mismatch
		}
		m := make(map[string]any, len(f.Fields))
		for _, mf := range f.Fields {
			x, err := expectValue(mf, v.get(mf.Name))
			if err != nil {
				return nil, err
			}
			m[mf.Name] = x
		}
		return m, nil
	case record.TypeList:
		if v.kind != 'a' {
			return nil, mismatch
		}
		out := []any{}
		for _, e := range v.elems {
			x, err := expectValue(*f.Elem, e)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case record.TypeMap:
		if v.kind != 'o' {
			return nil, mismatch
		}
		out := []any{}
		seen := map[string]bool{}
		for i, k := range v.keys {
			if seen[k] {
				continue // the first value of a repeated key counts
			}
			seen[k] = true
			x, err := expectValue(*f.Elem, v.members[i])
			if err != nil {
				return nil, err
			}
			out = append(out, []any{k, x})
		}
		return out, nil
	case record.TypeString:
		if v.kind != 's' {
			return nil, mismatch
		}
		return v.str, nil
	case record.TypeBool:
		if v.kind != 'b' {
			return nil, mismatch
		}
		return strconv.FormatBool(v.b), nil
	case record.TypeInt:
		if v.kind != 'd' {
			return nil, mismatch
		}
		if n, err := strconv.ParseInt(v.str, 10, 64); err == nil {
			return strconv.FormatInt(n, 10), nil
		}
		fl, err := strconv.ParseFloat(v.str, 64)
		if err != nil || fl != math.Trunc(fl) || fl >= 1<<63 || fl < -(1<<63) {
			return nil, mismatch
		}
		return strconv.FormatInt(int64(fl), 10), nil
	case record.TypeFloat:
		if v.kind != 'd' {
			return nil, mismatch
		}
		// A number written as an integer is converted from the integer,
		// so -0 is +0.
		if n, err := strconv.ParseInt(v.str, 10, 64); err == nil {
			return *parquetcheck.Canon(record.Float(float64(n))), nil
		}
		fl, err := strconv.ParseFloat(v.str, 64)
		if err != nil || math.IsInf(fl, 0) {
			return nil, mismatch
		}
		return *parquetcheck.Canon(record.Float(fl)), nil
	case record.TypeTimestamp:
		// The model's timestamps are epoch milliseconds, integers only.
		if v.kind != 'd' {
			return nil, mismatch
		}
		bad := &modelReject{"bad_timestamp"}
		if ms, err := strconv.ParseInt(v.str, 10, 64); err == nil {
			if ms < 0 || ms > math.MaxInt64/1000 {
				return nil, bad
			}
			return strconv.FormatInt(ms*1000, 10), nil
		}
		fl, err := strconv.ParseFloat(v.str, 64)
		us := math.Round(fl * 1e3)
		if err != nil || math.IsNaN(us) || us >= 1<<63 || us < 0 {
			return nil, bad
		}
		return strconv.FormatInt(int64(us), 10), nil
	}
	return nil, fmt.Errorf("model: type %s", f.Type)
}

// sortedMaps returns reader-form v with every map's pairs sorted by key,
// for comparison with readers that return maps as objects.
func sortedMaps(f record.Field, v any) any {
	if v == nil {
		return nil
	}
	switch f.Type {
	case record.TypeStruct:
		m := v.(map[string]any)
		out := make(map[string]any, len(m))
		for _, mf := range f.Fields {
			out[mf.Name] = sortedMaps(mf, m[mf.Name])
		}
		return out
	case record.TypeList:
		out := []any{}
		for _, e := range v.([]any) {
			out = append(out, sortedMaps(*f.Elem, e))
		}
		return out
	case record.TypeMap:
		out := []any{}
		for _, p := range v.([]any) {
			kv := p.([]any)
			out = append(out, []any{kv[0], sortedMaps(*f.Elem, kv[1])})
		}
		slices.SortFunc(out, func(a, b any) int { return strings.Compare(a.([]any)[0].(string), b.([]any)[0].(string)) })
		return out
	}
	return v
}

// stripe is one value of a leaf column: its levels and value (nil: null).
type stripe struct {
	rep, def int
	val      *string
}

// modelStripes appends, per leaf column of f (in column order), the
// stripes of reader-form value v, as the Dremel encoding defines them:
// every optional level adds one to the definition level, a repeated group
// one to both levels; the first value of a row has repetition level 0.
func modelStripes(cols [][]stripe, f record.Field, v any) [][]stripe {
	var walk func(f record.Field, v any, col, rep, def, depth int) int
	// walk returns the next column after f's leaves.
	nullAll := func(f record.Field, col, rep, def int) int {
		for c := col; c < col+leafCount(f); c++ {
			cols[c] = append(cols[c], stripe{rep: rep, def: def})
		}
		return col + leafCount(f)
	}
	walk = func(f record.Field, v any, col, rep, def, depth int) int {
		if v == nil {
			return nullAll(f, col, rep, def)
		}
		def++ // present
		switch f.Type {
		case record.TypeStruct:
			m := v.(map[string]any)
			c := col
			for _, mf := range f.Fields {
				c = walk(mf, m[mf.Name], c, rep, def, depth)
			}
			return c
		case record.TypeList:
			l := v.([]any)
			if len(l) == 0 {
				return nullAll(*f.Elem, col, rep, def)
			}
			end := col
			for i, e := range l {
				r := rep
				if i > 0 {
					r = depth + 1
				}
				end = walk(*f.Elem, e, col, r, def+1, depth+1)
			}
			return end
		case record.TypeMap:
			l := v.([]any)
			if len(l) == 0 {
				cols[col] = append(cols[col], stripe{rep: rep, def: def})
				return nullAll(*f.Elem, col+1, rep, def)
			}
			end := col
			for i, p := range l {
				r := rep
				if i > 0 {
					r = depth + 1
				}
				k := p.([]any)[0].(string)
				cols[col] = append(cols[col], stripe{rep: r, def: def + 1, val: &k})
				end = walk(*f.Elem, p.([]any)[1], col+1, r, def+1, depth+1)
			}
			return end
		}
		s := v.(string)
		cols[col] = append(cols[col], stripe{rep: rep, def: def, val: &s})
		return col + 1
	}
	walk(f, v, 0, 0, 0, 0)
	return cols
}
