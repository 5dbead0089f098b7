package parquetcheck

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// Kind is the type of a column as the files must declare it.
type Kind int

// Column kinds, with the Parquet types the sink writes for them.
const (
	// String is BYTE_ARRAY with the STRING logical type.
	String Kind = iota
	// Int is INT64 with INTEGER(64, signed).
	Int
	// Float is DOUBLE.
	Float
	// Bool is BOOLEAN.
	Bool
	// TimestampMicros is INT64 with TIMESTAMP(MICROS, isAdjustedToUTC).
	TimestampMicros
	// TimestampMillis is INT64 with TIMESTAMP(MILLIS, isAdjustedToUTC).
	TimestampMillis
	// JSON is BYTE_ARRAY with the JSON logical type.
	JSON
)

// kindInfo is what each reader must report for a kind.
type kindInfo struct {
	physical, logical, arrow, duckdb string
}

var kinds = map[Kind]kindInfo{
	String:          {"BYTE_ARRAY", "STRING", "Utf8", "VARCHAR"},
	Int:             {"INT64", "INTEGER(64,true)", "Int64", "BIGINT"},
	Float:           {"DOUBLE", "", "Float64", "DOUBLE"},
	Bool:            {"BOOLEAN", "", "Bool", "BOOLEAN"},
	TimestampMicros: {"INT64", "TIMESTAMP(MICROS,true)", "Timestamp<MICROSECOND, UTC>", "TIMESTAMP WITH TIME ZONE"},
	TimestampMillis: {"INT64", "TIMESTAMP(MILLIS,true)", "Timestamp<MILLISECOND, UTC>", "TIMESTAMP WITH TIME ZONE"},
	JSON:            {"BYTE_ARRAY", "JSON", "Utf8", "JSON"},
}

// Column is one expected column.
type Column struct {
	Name string
	Kind Kind
}

// Spec is what a set of files must hold.
type Spec struct {
	Columns []Column
	// Rows are the expected rows over all files, in any order, each value
	// in Canon form.
	Rows [][]*string
	// Codec is the expected codec of every column chunk ("ZSTD").
	Codec string
	// Dictionary requires dictionary encoding on every String column chunk.
	Dictionary bool
	// SortBy, when set, requires the rows of every row group to be in
	// ascending order of these column indexes (nulls last), as the sink
	// sorts, and the row groups to say so in sorting_columns (hyparquet).
	SortBy []int
}

// Canon renders a record value the way the readers' output is compared:
// strings as they are, integers and timestamps (microseconds) in decimal,
// doubles as "f" and the hex of their bits ("NaN" for any NaN), booleans as
// "true"/"false", nil for null.
func Canon(v record.Value) *string {
	var s string
	switch v.T {
	case record.TypeNull:
		return nil
	case record.TypeString:
		s = v.S
	case record.TypeInt, record.TypeTimestamp:
		s = strconv.FormatInt(v.Int(), 10)
	case record.TypeFloat:
		s = canonFloat(v.Float())
	case record.TypeBool:
		s = strconv.FormatBool(v.Bool())
	default:
		s = string(v.AppendText(nil))
	}
	return &s
}

func canonFloat(f float64) string {
	if math.IsNaN(f) {
		return "NaN"
	}
	return fmt.Sprintf("f%016x", math.Float64bits(f))
}

// Report counts what Check read.
type Report struct {
	Files, RowGroups, Chunks, Rows int
}

// Check reads files with DuckDB, hyparquet and arrow-rs and requires each
// reader to see spec: every column chunk's path, physical and logical type,
// encodings, codec, value count and statistics (min, max, null count, as
// computed from the values that reader read), row counts, and the rows
// themselves as a multiset equal to spec.Rows.
func Check(t testing.TB, files []string, spec Spec) Report {
	t.Helper()
	require.NotEmpty(t, files, "no parquet files to check")
	readers := map[string][]File{
		"hyparquet": ReadJS(t, "hyparquet", files),
		"arrow":     ReadJS(t, "arrow", files),
		"duckdb":    ReadDuckDB(t, files, spec.Columns),
	}
	// Column paths first: the defect that makes files unreadable for
	// parquet-mr based engines while DuckDB still reads them.
	for _, name := range []string{"duckdb", "hyparquet", "arrow"} {
		for _, f := range readers[name] {
			require.Empty(t, f.Error, "%s cannot read %s", name, f.Path)
			for i, rg := range f.RowGroups {
				for j, ch := range rg.Columns {
					require.Less(t, j, len(spec.Columns), "%s %s row group %d: too many column chunks", name, f.Path, i)
					require.Equal(t, []string{spec.Columns[j].Name}, ch.Path, "%s %s row group %d column %d: path_in_schema", name, f.Path, i, j)
				}
			}
		}
	}
	var rep Report
	for _, name := range []string{"duckdb", "hyparquet", "arrow"} {
		got := readers[name]
		require.Len(t, got, len(files), "%s: one result per file", name)
		var rows [][]*string
		var r Report
		for i := range got {
			f := &got[i]
			require.Empty(t, f.Error, "%s cannot read %s", name, f.Path)
			checkFile(t, name, f, &spec)
			r.Files++
			for _, rg := range f.RowGroups {
				r.RowGroups++
				r.Chunks += len(rg.Columns)
				rows = append(rows, rg.Rows...)
			}
		}
		r.Rows = len(rows)
		requireSameRows(t, name, spec.Rows, rows)
		if name == "duckdb" {
			rep = r
		} else {
			require.Equal(t, rep, r, "%s sees other files, row groups or rows than duckdb", name)
		}
	}
	return rep
}

func checkFile(t testing.TB, reader string, f *File, spec *Spec) {
	t.Helper()
	where := reader + " " + f.Path
	require.Len(t, f.Schema, len(spec.Columns), "%s: leaf columns", where)
	for j, c := range spec.Columns {
		k := kinds[c.Kind]
		l := f.Schema[j]
		require.Equal(t, c.Name, l.Name, "%s: column %d", where, j)
		switch reader {
		case "hyparquet":
			require.Equal(t, k.physical, l.Physical, "%s: physical type of %s", where, c.Name)
			require.Equal(t, k.logical, deref(l.Logical), "%s: logical type of %s", where, c.Name)
			require.Equal(t, "OPTIONAL", deref(l.Repetition), "%s: repetition of %s", where, c.Name)
		case "arrow":
			require.Equal(t, k.arrow, l.Arrow, "%s: arrow type of %s", where, c.Name)
		case "duckdb":
			require.Equal(t, k.physical, l.Physical, "%s: physical type of %s", where, c.Name)
			require.Equal(t, k.duckdb, l.DuckDB, "%s: duckdb type of %s", where, c.Name)
		}
	}
	var total int64
	for i, rg := range f.RowGroups {
		at := fmt.Sprintf("%s row group %d", where, i)
		require.Len(t, rg.Rows, int(rg.NumRows), "%s: rows read", at)
		require.Len(t, rg.Columns, len(spec.Columns), "%s: column chunks", at)
		total += rg.NumRows
		for j, c := range spec.Columns {
			checkChunk(t, reader, fmt.Sprintf("%s column %d (%s)", at, j, c.Name), &rg.Columns[j], c, rg, j, spec)
		}
		if len(spec.SortBy) > 0 {
			checkSorted(t, at, rg.Rows, spec)
			if reader == "hyparquet" {
				var want []SortingColumn
				for _, j := range spec.SortBy {
					want = append(want, SortingColumn{Column: j})
				}
				require.Equal(t, want, rg.Sorting, "%s: sorting_columns", at)
			}
		}
	}
	require.Equal(t, f.NumRows, total, "%s: file rows = sum of row group rows", where)
}

func checkChunk(t testing.TB, reader, at string, ch *Chunk, c Column, rg RowGroup, j int, spec *Spec) {
	t.Helper()
	k := kinds[c.Kind]
	require.Equal(t, []string{c.Name}, ch.Path, "%s: path_in_schema", at)
	require.Equal(t, rg.NumRows, ch.NumValues, "%s: value count", at)
	if spec.Codec != "" {
		require.Equal(t, spec.Codec, ch.Codec, "%s: codec", at)
	}
	require.NotEmpty(t, ch.Encodings, "%s: encodings", at)
	for _, e := range ch.Encodings {
		require.Contains(t, engineEncodings, e, "%s: encoding %s is not read by every engine", at, e)
	}
	if spec.Dictionary && (c.Kind == String) && rg.NumRows > 0 {
		require.True(t, slices.Contains(ch.Encodings, "RLE_DICTIONARY") || slices.Contains(ch.Encodings, "PLAIN_DICTIONARY"),
			"%s: string column not dictionary encoded: %v", at, ch.Encodings)
	}
	if reader == "arrow" {
		return // parquet-wasm exposes no physical type or statistics
	}
	require.Equal(t, k.physical, ch.Physical, "%s: physical type", at)
	var nulls int64
	var present []string
	for _, row := range rg.Rows {
		if row[j] == nil {
			nulls++
		} else if *row[j] != "NaN" {
			present = append(present, *row[j])
		}
	}
	require.NotNil(t, ch.NullCount, "%s: null count statistic", at)
	require.Equal(t, nulls, *ch.NullCount, "%s: null count", at)
	if reader == "duckdb" {
		require.Equal(t, ch.WantNulls, *ch.NullCount, "%s: null count (SQL)", at)
		require.Equal(t, ch.WantMin, ch.Min, "%s: min statistic (SQL over the values)", at)
		require.Equal(t, ch.WantMax, ch.Max, "%s: max statistic (SQL over the values)", at)
		for _, pt := range ch.PageTypes {
			require.Contains(t, []string{"DATA_PAGE", "DICTIONARY_PAGE"}, pt, "%s: page type", at)
		}
		return
	}
	require.NotEmpty(t, ch.PageTypes, "%s: page encoding stats", at)
	for _, pt := range ch.PageTypes {
		require.Contains(t, []string{"DATA_PAGE", "DICTIONARY_PAGE"}, pt, "%s: page type (v1 data pages read everywhere)", at)
	}
	if len(present) == 0 {
		return
	}
	lo, hi := present[0], present[0]
	for _, v := range present[1:] {
		if compareKind(c.Kind, v, lo) < 0 {
			lo = v
		}
		if compareKind(c.Kind, v, hi) > 0 {
			hi = v
		}
	}
	require.NotNil(t, ch.Min, "%s: min statistic", at)
	require.NotNil(t, ch.Max, "%s: max statistic", at)
	require.Zero(t, compareKind(c.Kind, lo, *ch.Min), "%s: min statistic %q, values' min %q", at, *ch.Min, lo)
	require.Zero(t, compareKind(c.Kind, hi, *ch.Max), "%s: max statistic %q, values' max %q", at, *ch.Max, hi)
}

// engineEncodings are the encodings every engine of the compatibility table
// (docs/parquet.md) reads in v1 data pages.
var engineEncodings = []string{"PLAIN", "RLE", "BIT_PACKED", "RLE_DICTIONARY", "PLAIN_DICTIONARY"}

// compareKind orders two canonical values of a kind as Parquet statistics
// do: strings by unsigned bytes, numbers by value (-0 equals 0).
func compareKind(k Kind, a, b string) int {
	switch k {
	case Int, TimestampMicros, TimestampMillis:
		x, _ := strconv.ParseInt(a, 10, 64)
		y, _ := strconv.ParseInt(b, 10, 64)
		return cmp.Compare(x, y)
	case Float:
		return cmp.Compare(parseCanonFloat(a), parseCanonFloat(b))
	case Bool:
		return cmp.Compare(strconv.FormatBool(a == "true"), strconv.FormatBool(b == "true")) // "false" < "true"
	}
	return strings.Compare(a, b)
}

func parseCanonFloat(s string) float64 {
	bits, err := strconv.ParseUint(strings.TrimPrefix(s, "f"), 16, 64)
	if err != nil {
		return math.NaN()
	}
	return math.Float64frombits(bits)
}

func checkSorted(t testing.TB, at string, rows [][]*string, spec *Spec) {
	t.Helper()
	for i := 1; i < len(rows); i++ {
		require.LessOrEqual(t, compareRows(spec, rows[i-1], rows[i]), 0, "%s: rows %d and %d out of sort order", at, i-1, i)
	}
}

// compareRows orders rows by spec.SortBy, nulls last.
func compareRows(spec *Spec, a, b []*string) int {
	for _, j := range spec.SortBy {
		x, y := a[j], b[j]
		switch {
		case x == nil && y == nil:
			continue
		case x == nil:
			return 1
		case y == nil:
			return -1
		}
		if c := compareKind(spec.Columns[j].Kind, *x, *y); c != 0 {
			return c
		}
	}
	return 0
}

func requireSameRows(t testing.TB, reader string, want, got [][]*string) {
	t.Helper()
	key := func(r []*string) string {
		var b strings.Builder
		for _, v := range r {
			if v == nil {
				b.WriteString("\x00N")
			} else {
				b.WriteString("\x00V")
				b.WriteString(*v)
			}
		}
		return b.String()
	}
	w := make([]string, len(want))
	for i, r := range want {
		w[i] = key(r)
	}
	g := make([]string, len(got))
	for i, r := range got {
		g[i] = key(r)
	}
	slices.Sort(w)
	slices.Sort(g)
	if !slices.Equal(w, g) {
		missing, extra := diff(w, g)
		t.Fatalf("%s: rows differ from the input: %d expected, %d read; %d missing (first %q), %d unexpected (first %q)",
			reader, len(w), len(g), len(missing), first(missing), len(extra), first(extra))
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return strings.ReplaceAll(s[0], "\x00", "|")
}

// diff returns the elements of sorted a missing from sorted b and those of
// b missing from a, as multisets.
func diff(a, b []string) (missing, extra []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			missing = append(missing, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			extra = append(extra, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return missing, extra
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// duckValue turns a value of the DuckDB harness's JSON into Canon form.
func duckValue(k Kind, v any) (*string, error) {
	if v == nil {
		return nil, nil
	}
	var s string
	switch k {
	case String, JSON:
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("string column holds %T", v)
		}
		s = str
	case Int:
		switch n := v.(type) {
		case float64:
			s = strconv.FormatInt(int64(n), 10)
		case string:
			s = n
		default:
			return nil, fmt.Errorf("int column holds %T", v)
		}
	case Float:
		switch n := v.(type) {
		case float64:
			s = canonFloat(n)
		case string:
			switch n {
			case "NaN":
				s = "NaN"
			case "Infinity":
				s = canonFloat(math.Inf(1))
			case "-Infinity":
				s = canonFloat(math.Inf(-1))
			default:
				return nil, fmt.Errorf("float column holds %q", n)
			}
		default:
			return nil, fmt.Errorf("float column holds %T", v)
		}
	case Bool:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("bool column holds %T", v)
		}
		s = strconv.FormatBool(b)
	case TimestampMicros, TimestampMillis:
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("timestamp column holds %T", v)
		}
		ts, err := time.Parse("2006-01-02T15:04:05.000000Z", str)
		if err != nil {
			return nil, err
		}
		s = strconv.FormatInt(ts.UnixMicro(), 10)
	}
	return &s, nil
}
