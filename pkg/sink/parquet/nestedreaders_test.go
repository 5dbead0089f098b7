package parquet

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/internal/parquetcheck"
	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// nestedLeafPaths are the leaf columns of nestedDecodeFields, as every
// column chunk must name them in path_in_schema (written out by hand from
// the layout of LogicalTypes.md, not computed).
var nestedLeafPaths = [][]string{
	{"id"}, {"tenant"},
	{"geo", "lat"}, {"geo", "lon"}, {"geo", "city"}, {"geo", "at"},
	{"tags", "list", "element"},
	{"attrs", "key_value", "key"}, {"attrs", "key_value", "value"},
	{"spans", "list", "element", "name"},
	{"spans", "list", "element", "dur"},
	{"spans", "list", "element", "ok"},
	{"spans", "list", "element", "ids", "list", "element"},
	{"spans", "list", "element", "labels", "key_value", "key"},
	{"spans", "list", "element", "labels", "key_value", "value"},
	{"grid", "list", "element", "list", "element"},
}

// nestedDuckSchema is what DuckDB's parquet_schema must report for every
// element: name, type, repetition, converted type, DuckDB type of the
// top-level columns.
var nestedDuckSchema = [][5]string{
	{"id", "INT64", "OPTIONAL", "INT_64", "BIGINT"},
	{"tenant", "BYTE_ARRAY", "OPTIONAL", "UTF8", "VARCHAR"},
	{"geo", "", "OPTIONAL", "", "STRUCT(lat DOUBLE, lon DOUBLE, city VARCHAR, \"at\" TIMESTAMP WITH TIME ZONE)"},
	{"lat", "DOUBLE", "OPTIONAL", "", ""},
	{"lon", "DOUBLE", "OPTIONAL", "", ""},
	{"city", "BYTE_ARRAY", "OPTIONAL", "UTF8", ""},
	{"at", "INT64", "OPTIONAL", "TIMESTAMP_MICROS", ""},
	{"tags", "", "OPTIONAL", "LIST", "VARCHAR[]"},
	{"list", "", "REPEATED", "", ""},
	{"element", "BYTE_ARRAY", "OPTIONAL", "UTF8", ""},
	{"attrs", "", "OPTIONAL", "MAP", "MAP(VARCHAR, VARCHAR)"},
	{"key_value", "", "REPEATED", "", ""},
	{"key", "BYTE_ARRAY", "REQUIRED", "UTF8", ""},
	{"value", "BYTE_ARRAY", "OPTIONAL", "UTF8", ""},
	{"spans", "", "OPTIONAL", "LIST", "STRUCT(\"name\" VARCHAR, dur BIGINT, ok BOOLEAN, ids BIGINT[], labels MAP(VARCHAR, DOUBLE))[]"},
	{"list", "", "REPEATED", "", ""},
	{"element", "", "OPTIONAL", "", ""},
	{"name", "BYTE_ARRAY", "OPTIONAL", "UTF8", ""},
	{"dur", "INT64", "OPTIONAL", "INT_64", ""},
	{"ok", "BOOLEAN", "OPTIONAL", "", ""},
	{"ids", "", "OPTIONAL", "LIST", ""},
	{"list", "", "REPEATED", "", ""},
	{"element", "INT64", "OPTIONAL", "INT_64", ""},
	{"labels", "", "OPTIONAL", "MAP", ""},
	{"key_value", "", "REPEATED", "", ""},
	{"key", "BYTE_ARRAY", "REQUIRED", "UTF8", ""},
	{"value", "DOUBLE", "OPTIONAL", "", ""},
	{"grid", "", "OPTIONAL", "LIST", "DOUBLE[][]"},
	{"list", "", "REPEATED", "", ""},
	{"element", "", "OPTIONAL", "LIST", ""},
	{"list", "", "REPEATED", "", ""},
	{"element", "DOUBLE", "OPTIONAL", "", ""},
}

var nestedStrings = []string{"", "a", "é☕", `quote"d`, `back\slash`, "tab\tand\nline", "😀", "<tag>&", "x"}

// genNestedMessage makes a message for nestedDecodeFields with nulls and
// absences at every level, empty lists and maps, repeated map keys,
// undeclared members and escapes.
func genNestedMessage(rng *rand.Rand, id int) string {
	type gen func() string
	str := func() string {
		s, _ := json.Marshal(nestedStrings[rng.IntN(len(nestedStrings))])
		return string(s)
	}
	float := func() string {
		return strconv.FormatFloat((rng.Float64()-0.5)*float64(int64(1)<<rng.IntN(40)), 'g', -1, 64)
	}
	// obj writes the members it is given, each absent, null or its value.
	obj := func(members ...any) gen {
		return func() string {
			var parts []string
			for i := 0; i < len(members); i += 2 {
				name, val := members[i].(string), members[i+1].(gen)
				switch rng.IntN(10) {
				case 0:
					continue
				case 1:
					parts = append(parts, fmt.Sprintf("%q:null", name))
				default:
					parts = append(parts, fmt.Sprintf("%q:%s", name, val()))
				}
			}
			rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
			return "{" + strings.Join(parts, ",") + "}"
		}
	}
	list := func(max int, elem gen) gen {
		return func() string {
			parts := make([]string, rng.IntN(max+1))
			for i := range parts {
				if rng.IntN(8) == 0 {
					parts[i] = "null"
				} else {
					parts[i] = elem()
				}
			}
			return "[" + strings.Join(parts, ",") + "]"
		}
	}
	mapOf := func(max int, val gen) gen {
		return func() string {
			parts := make([]string, rng.IntN(max+1))
			for i := range parts {
				v := val()
				if rng.IntN(8) == 0 {
					v = "null"
				}
				parts[i] = fmt.Sprintf("%q:%s", []string{"k1", "k2", "ключ", "k\"q", "k4"}[rng.IntN(5)], v)
			}
			return "{" + strings.Join(parts, ",") + "}"
		}
	}
	msg := obj(
		"tenant", gen(func() string { return fmt.Sprintf(`"t%d"`, id%3) }),
		"geo", obj("lat", gen(float), "city", gen(str), "lon", gen(float),
			"at", gen(func() string { return strconv.FormatInt(1763701200000+rng.Int64N(86_400_000), 10) }),
			"extra", gen(str)),
		"tags", list(4, str),
		"attrs", mapOf(4, str),
		"spans", list(3, obj(
			"name", gen(str),
			"dur", gen(func() string { return strconv.Itoa(rng.IntN(1000) - 10) }),
			"ok", gen(func() string { return strconv.FormatBool(rng.IntN(2) == 0) }),
			"ids", list(3, func() string { return strconv.FormatInt(rng.Int64()-rng.Int64(), 10) }),
			"labels", mapOf(3, float))),
		"grid", list(3, list(3, float)),
	)()
	if msg == "{}" {
		return fmt.Sprintf(`{"id":%d}`, id)
	}
	return fmt.Sprintf(`{"id":%d,%s`, id, msg[1:])
}

// normReader turns what a reader returned for a value of type f into the
// model's reader form: leaves in Canon form, structs with every member,
// maps as sorted [key, value] pairs (readers return them as objects, as
// {"$map": pairs} or as [{"key", "value"}]).
func normReader(t testing.TB, f record.Field, v any) any {
	if v == nil {
		return nil
	}
	switch f.Type {
	case record.TypeStruct:
		m, ok := v.(map[string]any)
		require.True(t, ok, "struct read as %T", v)
		out := make(map[string]any, len(f.Fields))
		for _, mf := range f.Fields {
			out[mf.Name] = normReader(t, mf, m[mf.Name])
		}
		return out
	case record.TypeList:
		l, ok := v.([]any)
		require.True(t, ok, "list read as %T", v)
		out := []any{}
		for _, e := range l {
			out = append(out, normReader(t, *f.Elem, e))
		}
		return out
	case record.TypeMap:
		out := []any{}
		switch m := v.(type) {
		case map[string]any:
			if pairs, ok := m["$map"].([]any); ok && len(m) == 1 {
				for _, p := range pairs {
					kv := p.([]any)
					out = append(out, []any{kv[0], normReader(t, *f.Elem, kv[1])})
				}
			} else {
				for k, x := range m {
					out = append(out, []any{k, normReader(t, *f.Elem, x)})
				}
			}
		case []any:
			for _, e := range m {
				kv := e.(map[string]any)
				out = append(out, []any{kv["key"], normReader(t, *f.Elem, kv["value"])})
			}
		default:
			t.Fatalf("map read as %T", v)
		}
		slices.SortFunc(out, func(a, b any) int { return strings.Compare(a.([]any)[0].(string), b.([]any)[0].(string)) })
		return out
	}
	switch x := v.(type) {
	case string:
		if f.Type == record.TypeTimestamp && strings.Contains(x, "T") {
			tm, err := time.Parse(time.RFC3339Nano, x)
			require.NoError(t, err)
			return strconv.FormatInt(tm.UnixMicro(), 10)
		}
		return x
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		if f.Type == record.TypeFloat {
			fl, err := x.Float64()
			require.NoError(t, err)
			return *parquetcheck.Canon(record.Float(fl))
		}
		return x.String()
	case float64: // internal/duckdb decodes numbers as float64
		if f.Type == record.TypeFloat {
			return *parquetcheck.Canon(record.Float(x))
		}
		return strconv.FormatInt(int64(x), 10)
	}
	t.Fatalf("leaf of type %s read as %T", f.Type, v)
	return nil
}

// leafValues collects the non-null leaf values at path below value v of
// type f, and the number of levels each leaf column encodes for it.
func leafValues(f record.Field, v any, path []string) []string {
	if v == nil {
		return nil
	}
	switch f.Type {
	case record.TypeStruct:
		for _, mf := range f.Fields {
			if mf.Name == path[0] {
				return leafValues(mf, v.(map[string]any)[mf.Name], path[1:])
			}
		}
		return nil
	case record.TypeList:
		var out []string
		for _, e := range v.([]any) {
			out = append(out, leafValues(*f.Elem, e, path[2:])...)
		}
		return out
	case record.TypeMap:
		var out []string
		for _, p := range v.([]any) {
			kv := p.([]any)
			if path[1] == "key" {
				out = append(out, kv[0].(string))
			} else {
				out = append(out, leafValues(*f.Elem, kv[1], path[2:])...)
			}
		}
		return out
	}
	return []string{v.(string)}
}

// leafKind is the type of the leaf column at path.
func leafKind(fields []record.Field, path []string) record.Type {
	for _, f := range fields {
		if f.Name != path[0] {
			continue
		}
		p := path[1:]
		for f.Type.Nested() {
			switch f.Type {
			case record.TypeStruct:
				i := slices.IndexFunc(f.Fields, func(m record.Field) bool { return m.Name == p[0] })
				f, p = f.Fields[i], p[1:]
			case record.TypeList:
				f, p = *f.Elem, p[2:]
			case record.TypeMap:
				if p[1] == "key" {
					return record.TypeString
				}
				f, p = *f.Elem, p[2:]
			}
		}
		return f.Type
	}
	return record.TypeNull
}

// compareCanon orders two Canon values of type t.
func compareCanon(t record.Type, a, b string) int {
	switch t {
	case record.TypeInt, record.TypeTimestamp:
		x, _ := strconv.ParseInt(a, 10, 64)
		y, _ := strconv.ParseInt(b, 10, 64)
		return cmp.Compare(x, y)
	case record.TypeFloat:
		return cmp.Compare(canonToFloat(a), canonToFloat(b))
	}
	return strings.Compare(a, b)
}

func canonToFloat(s string) float64 {
	bits, _ := strconv.ParseUint(strings.TrimPrefix(s, "f"), 16, 64)
	return math.Float64frombits(bits)
}

// TestNestedColumnsReadBack writes messages with nested fields through the
// decoder and the sink — several files and row groups per file, a
// checkpoint, a crash and a restore that resumes the open files with their
// buffered rows — and reads every file with DuckDB, hyparquet and arrow-rs.
// Each reader's values equal the reference model's, computed from the input
// JSON with encoding/json; every column chunk names its leaf in
// path_in_schema and carries statistics that match the values read; the
// schema is the LIST/MAP layout engines expect.
func TestNestedColumnsReadBack(t *testing.T) {
	parquetcheck.Require(t)
	ctx := context.Background()
	d := newNestedDecoder(t)
	schema := d.Schema()
	fields := schema.Fields()
	rng := rand.New(rand.NewPCG(7, 11))

	want := map[string]any{} // id → model row in reader form, maps sorted
	var rejected int
	makeBatch := func(from, to int) *record.Batch {
		b := record.NewBatch(schema.Len(), to-from)
		for id := from; id < to; id++ {
			msg := genNestedMessage(rng, id)
			if id%50 == 7 {
				msg = strings.Replace(msg, `"id":`, `"grid":[["x"]],"id":`, 1) // a counted rejection
			}
			doc, err := parseOrdered([]byte(msg))
			require.NoError(t, err, msg)
			row, merr := expectRow(fields, map[string]bool{"id": true}, doc)
			derr := d.Decode([]byte(msg), 1, b)
			if merr != nil {
				var de *decode.Error
				require.ErrorAs(t, derr, &de, msg)
				require.Equal(t, merr.Error(), de.Reason)
				rejected++
				continue
			}
			require.NoError(t, derr, msg)
			for i, f := range fields {
				row[i] = sortedMaps(f, row[i])
			}
			want[strconv.Itoa(id)] = row
		}
		return b
	}

	dir := t.TempDir()
	cfg := func(c *Config) {
		c.Partition = "t={tenant}"
		c.RollRows = 400
		c.RowGroupSize = 48 << 10
	}
	s := txnSink(t, dir, nil, cfg)
	w, err := s.NewWriter("w", schema)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, makeBatch(0, 1500)))
	st, err := w.(sink.Preparer).Prepare(ctx, 1)
	require.NoError(t, err)
	require.NoError(t, s.Commit(ctx, "w", st))
	_ = makeBatch(1500, 1700) // written after the checkpoint, lost in the crash: the source replays them
	for id := 1500; id < 1700; id++ {
		delete(want, strconv.Itoa(id))
	}
	rng = rand.New(rand.NewPCG(99, 1))

	s = txnSink(t, dir, nil, cfg)
	require.NoError(t, s.Recover(ctx, map[string][]byte{"w": st}))
	w, err = s.NewWriter("w", schema)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, makeBatch(1500, 3000)))
	st, err = w.(*Writer).PrepareFinal(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, s.Commit(ctx, "w", st))
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Close(ctx))
	require.Greater(t, rejected, 10)

	files := parquetFiles(t, dir)
	require.GreaterOrEqual(t, len(files), 6)
	idCol := slices.IndexFunc(fields, func(f record.Field) bool { return f.Name == "id" })

	rowGroups := 0
	for _, reader := range []string{"hyparquet", "arrow"} {
		got := map[string]any{}
		for _, f := range parquetcheck.ReadJSNested(t, reader, files) {
			require.Empty(t, f.Error, "%s: %s", reader, f.Path)
			if reader == "hyparquet" {
				rowGroups += len(f.RowGroups)
			}
			for _, rg := range f.RowGroups {
				require.Len(t, rg.Rows, int(rg.NumRows))
				var paths [][]string
				for _, c := range rg.Columns {
					paths = append(paths, c.Path)
					require.Equal(t, "ZSTD", c.Codec)
				}
				require.Equal(t, nestedLeafPaths, paths, "%s: %s", reader, f.Path)
				rows := make([][]any, len(rg.Rows))
				for r, raw := range rg.Rows {
					row := make([]any, len(fields))
					for i, fd := range fields {
						row[i] = normReader(t, fd, raw[i])
					}
					rows[r] = row
					id := row[idCol].(string)
					_, dup := got[id]
					require.False(t, dup, "%s: row %s read twice", reader, id)
					got[id] = row
				}
				if reader == "hyparquet" {
					checkNestedStats(t, f.Path, fields, rg.Columns, rows)
				}
			}
		}
		require.Equal(t, want, got, reader)
	}
	require.Greater(t, rowGroups, len(files), "several row groups per file")

	// DuckDB: schema and values through SQL.
	list := "[" + strings.Join(quoteAll(files), ", ") + "]"
	byFile := map[string][][5]string{}
	// parquet_schema lists a file's elements in order, the root first.
	for _, r := range duckdb.Query(t, `SELECT file_name, name, coalesce(type, '') AS type, coalesce(repetition_type, '') AS repetition_type,
		coalesce(converted_type, '') AS converted FROM parquet_schema(`+list+`)`) {
		row := [5]string{r["name"].(string), r["type"].(string), r["repetition_type"].(string), r["converted"].(string), ""}
		byFile[r["file_name"].(string)] = append(byFile[r["file_name"].(string)], row)
	}
	for f := range byFile {
		byFile[f] = byFile[f][1:]
	}
	top := map[string]string{}
	for _, r := range duckdb.Query(t, `DESCRIBE SELECT * FROM read_parquet(`+list[:strings.Index(list, ",")]+`])`) {
		top[r["column_name"].(string)] = r["column_type"].(string)
	}
	wantSchema := slices.Clone(nestedDuckSchema)
	for i := range wantSchema {
		if dt := wantSchema[i][4]; dt != "" {
			require.Equal(t, dt, top[wantSchema[i][0]], "DuckDB type of %s", wantSchema[i][0])
		}
		wantSchema[i][4] = ""
	}
	require.Len(t, byFile, len(files))
	for file, got := range byFile {
		require.Equal(t, wantSchema, got, file)
	}
	got := map[string]any{}
	for _, r := range duckdb.Query(t, `SET TimeZone='UTC'; SELECT * FROM read_parquet(`+list+`, hive_partitioning=false)`) {
		row := make([]any, len(fields))
		for i, fd := range fields {
			row[i] = normReader(t, fd, r[fd.Name])
		}
		got[row[idCol].(string)] = row
	}
	require.Equal(t, want, got, "duckdb")
	// And a query an engine user writes: unnest a list of structs.
	rows := duckdb.Query(t, `SELECT count(*) AS n, sum(s.dur) AS total FROM (SELECT unnest(spans) AS s FROM read_parquet(`+list+`)) WHERE s IS NOT NULL`)
	var n, total int64
	for _, r := range want {
		spans, _ := r.([]any)[slices.IndexFunc(fields, func(f record.Field) bool { return f.Name == "spans" })].([]any)
		for _, sp := range spans {
			if sp != nil {
				n++
				if d, ok := sp.(map[string]any)["dur"].(string); ok {
					x, _ := strconv.ParseInt(d, 10, 64)
					total += x
				}
			}
		}
	}
	require.Equal(t, float64(n), rows[0]["n"])
	require.Equal(t, float64(total), rows[0]["total"])
}

func quoteAll(files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = "'" + strings.ReplaceAll(f, "'", "''") + "'"
	}
	return out
}

// checkNestedStats checks every column chunk's statistics against the
// values hyparquet read from its row group: min and max over the non-null
// leaf values, the null count and value count of the leaf's levels.
func checkNestedStats(t *testing.T, file string, fields []record.Field, chunks []parquetcheck.Chunk, rows [][]any) {
	t.Helper()
	for j, c := range chunks {
		kind := leafKind(fields, c.Path)
		var vals []string
		stripes, nulls := 0, 0
		for _, row := range rows {
			for i, f := range fields {
				if f.Name != c.Path[0] {
					continue
				}
				if len(c.Path) > 1 {
					vals = append(vals, leafValues(f, row[i], c.Path[1:])...)
				} else if row[i] != nil {
					vals = append(vals, row[i].(string))
				}
				cols := modelStripes(make([][]stripe, leafCount(f)), f, unsortMaps(row[i]))
				col := cols[leafIndex(f, c.Path[1:])]
				stripes += len(col)
				for _, s := range col {
					if s.val == nil {
						nulls++
					}
				}
			}
		}
		where := fmt.Sprintf("%s column %d %v", file, j, c.Path)
		require.Equal(t, int64(stripes), c.NumValues, where)
		require.NotNil(t, c.NullCount, where)
		require.Equal(t, int64(nulls), *c.NullCount, where)
		if len(vals) == 0 {
			require.Nil(t, c.Min, where)
			continue
		}
		mn := slices.MinFunc(vals, func(a, b string) int { return compareCanon(kind, a, b) })
		mx := slices.MaxFunc(vals, func(a, b string) int { return compareCanon(kind, a, b) })
		require.NotNil(t, c.Min, where)
		require.NotNil(t, c.Max, where)
		if kind == record.TypeFloat {
			// A float bound may be stored as its value of the other sign of zero.
			require.Equal(t, canonToFloat(mn), canonToFloat(*c.Min), where)
			require.Equal(t, canonToFloat(mx), canonToFloat(*c.Max), where)
			continue
		}
		require.Equal(t, mn, *c.Min, where)
		require.Equal(t, mx, *c.Max, where)
	}
}

// unsortMaps is the identity: a row group's maps keep their file order in
// the levels, but sorting a map does not change the level counts.
func unsortMaps(v any) any { return v }

// leafIndex is the index, among f's leaves, of the leaf at path below f.
func leafIndex(f record.Field, path []string) int {
	switch f.Type {
	case record.TypeStruct:
		n := 0
		for _, m := range f.Fields {
			if m.Name == path[0] {
				return n + leafIndex(m, path[1:])
			}
			n += leafCount(m)
		}
	case record.TypeList:
		return leafIndex(*f.Elem, path[2:])
	case record.TypeMap:
		if path[1] == "key" {
			return 0
		}
		return 1 + leafIndex(*f.Elem, path[2:])
	}
	return 0
}
