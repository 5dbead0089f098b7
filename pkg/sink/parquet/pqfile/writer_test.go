package pqfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/format"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
)

// testSchema has one required column that orders the rows and optional
// columns of every type the sink writes.
func testSchema() *parquet.Schema {
	return parquet.NewSchema("event", parquet.Group{
		"id":    parquet.Int(64),
		"name":  parquet.Optional(parquet.String()),
		"n":     parquet.Optional(parquet.Int(64)),
		"score": parquet.Optional(parquet.Leaf(parquet.DoubleType)),
		"ok":    parquet.Optional(parquet.Leaf(parquet.BooleanType)),
		"at":    parquet.Optional(parquet.Timestamp(parquet.Microsecond)),
	})
}

var baseMicros = time.Date(2026, 11, 21, 5, 0, 0, 0, time.UTC).UnixMicro()

// event is the expected content of the row with a given id; nil is NULL.
type event struct {
	id    int64
	name  *string
	n     *int64
	score *float64
	ok    *bool
	at    *int64
}

func eventFor(id int64) event {
	e := event{id: id}
	if id%7 != 0 {
		s := fmt.Sprintf("name-%d-%s", id, strings.Repeat("é", int(id%5)))
		e.name = &s
	}
	if id%5 != 1 {
		n := id*1000003 - 7_000_000
		e.n = &n
	}
	if id%6 != 2 {
		f := float64(id)*0.25 - 3
		e.score = &f
	}
	if id%4 != 3 {
		b := id%2 == 0
		e.ok = &b
	}
	if id%9 != 4 {
		t := baseMicros + id*1_000_123
		e.at = &t
	}
	return e
}

// rowBuilder turns events into parquet rows, reusing rows and string bytes
// across batches the way a sink does, so the writer must copy.
type rowBuilder struct {
	schema  *parquet.Schema
	cols    map[string]parquet.LeafColumn
	rows    []parquet.Row
	scratch [][]byte
}

func newRowBuilder(t testing.TB, schema *parquet.Schema) *rowBuilder {
	b := &rowBuilder{schema: schema, cols: map[string]parquet.LeafColumn{}}
	for _, name := range []string{"id", "name", "n", "score", "ok", "at"} {
		leaf, ok := schema.Lookup(name)
		require.True(t, ok, name)
		b.cols[name] = leaf
	}
	return b
}

func (b *rowBuilder) value(name string, v parquet.Value, null bool) parquet.Value {
	leaf := b.cols[name]
	if null {
		return parquet.NullValue().Level(0, 0, leaf.ColumnIndex)
	}
	return v.Level(0, leaf.MaxDefinitionLevel, leaf.ColumnIndex)
}

// build returns rows for ids, valid until the next call.
func (b *rowBuilder) build(ids []int64) []parquet.Row {
	for len(b.rows) < len(ids) {
		b.rows = append(b.rows, make(parquet.Row, 6))
		b.scratch = append(b.scratch, nil)
	}
	rows := b.rows[:len(ids)]
	for i, id := range ids {
		e := eventFor(id)
		row := rows[i][:0]
		row = append(row, b.value("id", parquet.Int64Value(e.id), false))
		var name parquet.Value
		if e.name != nil {
			// Overwrite the previous batch's bytes in place.
			b.scratch[i] = append(b.scratch[i][:0], *e.name...)
			name = parquet.ByteArrayValue(b.scratch[i])
		}
		row = append(row, b.value("name", name, e.name == nil))
		row = append(row, b.value("n", parquet.Int64Value(deref(e.n)), e.n == nil))
		row = append(row, b.value("score", parquet.DoubleValue(deref(e.score)), e.score == nil))
		row = append(row, b.value("ok", parquet.BooleanValue(deref(e.ok)), e.ok == nil))
		row = append(row, b.value("at", parquet.Int64Value(deref(e.at)), e.at == nil))
		slices.SortFunc(row, func(x, y parquet.Value) int { return x.Column() - y.Column() })
		rows[i] = row
	}
	return rows
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func idRange(from, to int64) []int64 {
	ids := make([]int64, 0, to-from)
	for id := from; id < to; id++ {
		ids = append(ids, id)
	}
	return ids
}

// writeIDs writes ids in batches of 128.
func writeIDs(t testing.TB, w *Writer, b *rowBuilder, ids []int64) {
	for batch := range slices.Chunk(ids, 128) {
		require.NoError(t, w.WriteRows(b.build(batch)))
	}
}

// checkpoint snapshots w and passes the state through its encoding, as the
// checkpoint store would.
func checkpoint(t testing.TB, w *Writer) State {
	st, err := w.Snapshot()
	require.NoError(t, err)
	b, err := st.MarshalBinary()
	require.NoError(t, err)
	got, err := UnmarshalState(b)
	require.NoError(t, err)
	return got
}

// crash drops a writer without closing it: only its file handle goes.
func crash(t testing.TB, out *LocalOutput) {
	require.NoError(t, out.f.Close())
}

func TestWriter(t *testing.T) {
	schema := testSchema()
	tests := []struct {
		name string
		// write produces the file at path and returns the ids it must hold.
		write     func(t *testing.T, path string) []int64
		rowGroups int
	}{
		{
			name: "many row groups",
			write: func(t *testing.T, path string) []int64 {
				out, err := CreateLocal(path)
				require.NoError(t, err)
				w, err := New(out, schema, Options{RowGroupRows: 500})
				require.NoError(t, err)
				ids := idRange(0, 5000)
				writeIDs(t, w, newRowBuilder(t, schema), ids)
				require.Equal(t, int64(5000), w.Rows())
				require.NoError(t, w.Close())
				return ids
			},
			rowGroups: 10,
		},
		{
			name: "crash after checkpoint loses only later rows",
			write: func(t *testing.T, path string) []int64 {
				b := newRowBuilder(t, schema)
				opts := Options{RowGroupRows: 300, Compression: &snappy.Codec{}}
				out, err := CreateLocal(path)
				require.NoError(t, err)
				w, err := New(out, schema, opts)
				require.NoError(t, err)
				writeIDs(t, w, b, idRange(0, 1000))
				st := checkpoint(t, w)
				require.Equal(t, int64(1000), st.NumRows)
				require.NotEmpty(t, st.Tail)
				// Work after the checkpoint, lost in the crash; enough to
				// flush row groups past st.Length.
				writeIDs(t, w, b, idRange(100_000, 101_000))
				crash(t, out)
				fi, err := os.Stat(path)
				require.NoError(t, err)
				require.Greater(t, fi.Size(), st.Length)

				out, err = OpenLocalForResume(path, st.Length)
				require.NoError(t, err)
				w, err = Resume(out, schema, opts, st)
				require.NoError(t, err)
				require.Equal(t, int64(1000), w.Rows())
				writeIDs(t, w, b, idRange(2000, 2500))
				require.NoError(t, w.Close())
				return append(idRange(0, 1000), idRange(2000, 2500)...)
			},
			rowGroups: 5,
		},
		{
			name: "checkpoints and resumes keep one row group",
			write: func(t *testing.T, path string) []int64 {
				b := newRowBuilder(t, schema)
				out, err := CreateLocal(path)
				require.NoError(t, err)
				w, err := New(out, schema, Options{})
				require.NoError(t, err)
				for i := range int64(30) {
					writeIDs(t, w, b, idRange(i*100, i*100+100))
					st := checkpoint(t, w)
					if i%3 == 0 {
						crash(t, out)
						out, err = OpenLocalForResume(path, st.Length)
						require.NoError(t, err)
						w, err = Resume(out, schema, Options{}, st)
						require.NoError(t, err)
					}
				}
				require.Zero(t, w.RowGroups())
				require.NoError(t, w.Close())
				return idRange(0, 3000)
			},
			rowGroups: 1,
		},
		{
			name: "a tail over MaxTailBytes becomes a row group at the checkpoint",
			write: func(t *testing.T, path string) []int64 {
				b := newRowBuilder(t, schema)
				out, err := CreateLocal(path)
				require.NoError(t, err)
				w, err := New(out, schema, Options{MaxTailBytes: 1024})
				require.NoError(t, err)
				for i := range int64(4) {
					writeIDs(t, w, b, idRange(i*100, i*100+100))
					st := checkpoint(t, w)
					require.Empty(t, st.Tail)
				}
				require.NoError(t, w.Close())
				return idRange(0, 400)
			},
			rowGroups: 4,
		},
		{
			name: "finish closes a checkpointed file",
			write: func(t *testing.T, path string) []int64 {
				b := newRowBuilder(t, schema)
				opts := Options{RowGroupRows: 256}
				out, err := CreateLocal(path)
				require.NoError(t, err)
				w, err := New(out, schema, opts)
				require.NoError(t, err)
				writeIDs(t, w, b, idRange(0, 700))
				st := checkpoint(t, w)
				writeIDs(t, w, b, idRange(5000, 5600))
				crash(t, out)
				out, err = OpenLocalForResume(path, st.Length)
				require.NoError(t, err)
				require.NoError(t, Finish(out, schema, opts, st))
				return idRange(0, 700)
			},
			rowGroups: 3,
		},
		{
			name: "empty file",
			write: func(t *testing.T, path string) []int64 {
				out, err := CreateLocal(path)
				require.NoError(t, err)
				w, err := New(out, schema, Options{})
				require.NoError(t, err)
				require.NoError(t, w.Close())
				return nil
			},
			rowGroups: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "part-0.parquet")
			ids := tt.write(t, path)
			checkWithParquetGo(t, path, schema, ids, tt.rowGroups)
			checkWithDuckDB(t, path, ids, tt.rowGroups)
		})
	}
}

// checkWithParquetGo reads the file back with parquet-go.
func checkWithParquetGo(t *testing.T, path string, schema *parquet.Schema, ids []int64, rowGroups int) {
	t.Helper()
	pf := openParquet(t, path)
	require.Equal(t, int64(len(ids)), pf.NumRows())
	require.Len(t, pf.RowGroups(), rowGroups)
	require.True(t, parquet.EqualNodes(schema, pf.Schema()))
	checkColumnPaths(t, pf.Metadata(), schema)

	b := newRowBuilder(t, schema)
	var got []parquet.Row
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		buf := make([]parquet.Row, 64)
		for {
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				got = append(got, r.Clone())
			}
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
		}
		require.NoError(t, rows.Close())
	}
	require.Len(t, got, len(ids))
	for i, id := range ids {
		want := b.build([]int64{id})[0]
		require.True(t, want.Equal(got[i]), "row %d: want %v, got %v", i, want, got[i])
	}
}

// checkColumnPaths requires every column chunk of every row group to name
// its leaf column: readers built on parquet-mr (Spark, Hive, Athena) find
// columns by path_in_schema, not by position.
func checkColumnPaths(t *testing.T, md *format.FileMetaData, schema *parquet.Schema) {
	t.Helper()
	want := schema.Columns()
	for i, rg := range md.RowGroups {
		require.Len(t, rg.Columns, len(want), "row group %d", i)
		for j := range rg.Columns {
			require.Equal(t, want[j], []string(rg.Columns[j].MetaData.PathInSchema), "row group %d column %d", i, j)
		}
	}
}

// checkWithDuckDB reads the file back with DuckDB: values, types and row
// group count, in one query per file since each starts a DuckDB process.
func checkWithDuckDB(t *testing.T, path string, ids []int64, rowGroups int) {
	t.Helper()
	wantTypes := map[string]any{
		"id":    "BIGINT",
		"name":  "VARCHAR",
		"n":     "BIGINT",
		"score": "DOUBLE",
		"ok":    "BOOLEAN",
		"at":    "TIMESTAMP WITH TIME ZONE",
	}
	src := fmt.Sprintf("read_parquet('%s')", path)
	if len(ids) == 0 {
		types := duckdb.Query(t, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+src+")")
		gotTypes := map[string]any{}
		for _, r := range types {
			gotTypes[r["column_name"].(string)] = r["column_type"]
		}
		require.Equal(t, wantTypes, gotTypes)
		return
	}
	rows := duckdb.Query(t, fmt.Sprintf(`SELECT id, name, n, score, ok, "at",
		typeof(id) AS t_id, typeof(name) AS t_name, typeof(n) AS t_n,
		typeof(score) AS t_score, typeof(ok) AS t_ok, typeof("at") AS t_at,
		(SELECT count(DISTINCT row_group_id) FROM parquet_metadata('%s')) AS row_groups
		FROM %s ORDER BY id`, path, src))
	require.Len(t, rows, len(ids))
	require.Equal(t, float64(rowGroups), rows[0]["row_groups"])
	sorted := slices.Sorted(slices.Values(ids))
	for i, id := range sorted {
		e := eventFor(id)
		want := map[string]any{
			"id":    float64(e.id),
			"name":  jsonOf(e.name, func(s string) any { return s }),
			"n":     jsonOf(e.n, func(n int64) any { return float64(n) }),
			"score": jsonOf(e.score, func(f float64) any { return f }),
			"ok":    jsonOf(e.ok, func(b bool) any { return b }),
			"at": jsonOf(e.at, func(us int64) any {
				return time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.000000Z")
			}),
			"row_groups": float64(rowGroups),
		}
		for col, typ := range wantTypes {
			want["t_"+col] = typ
		}
		require.Equal(t, want, rows[i], "id %d", id)
	}
}

func jsonOf[T any](p *T, f func(T) any) any {
	if p == nil {
		return nil
	}
	return f(*p)
}

func TestWriterErrors(t *testing.T) {
	schema := testSchema()
	dir := t.TempDir()

	t.Run("closed", func(t *testing.T) {
		out, err := CreateLocal(filepath.Join(dir, "closed.parquet"))
		require.NoError(t, err)
		w, err := New(out, schema, Options{})
		require.NoError(t, err)
		require.NoError(t, w.Close())
		require.ErrorIs(t, w.WriteRows(nil), ErrClosed)
		_, err = w.Snapshot()
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorIs(t, w.Close(), ErrClosed)
	})

	t.Run("options", func(t *testing.T) {
		_, err := New(nil, schema, Options{RowGroupRows: -1})
		require.ErrorContains(t, err, "RowGroupRows")
	})

	t.Run("resume from a cut that is too short", func(t *testing.T) {
		path := filepath.Join(dir, "short.parquet")
		out, err := CreateLocal(path)
		require.NoError(t, err)
		w, err := New(out, schema, Options{RowGroupRows: 100})
		require.NoError(t, err)
		writeIDs(t, w, newRowBuilder(t, schema), idRange(0, 250))
		st := checkpoint(t, w)
		crash(t, out)

		_, err = OpenLocalForResume(path, st.Length+1)
		require.ErrorContains(t, err, "checkpoint needs")

		out, err = OpenLocalForResume(path, st.Length)
		require.NoError(t, err)
		defer out.Close()
		short := st
		short.Length -= 10
		_, err = Resume(out, schema, Options{}, short)
		require.ErrorContains(t, err, "outside the")

		miscount := st
		miscount.NumRows++
		_, err = Resume(out, schema, Options{}, miscount)
		require.ErrorContains(t, err, "rows")

		other := parquet.NewSchema("other", parquet.Group{"x": parquet.Int(64)})
		_, err = Resume(out, other, Options{}, st)
		require.ErrorContains(t, err, "columns")
	})
}

func TestWriteRowsRejectsUnknownColumn(t *testing.T) {
	schema := testSchema()
	w, err := New(discard{}, schema, Options{})
	require.NoError(t, err)
	b := newRowBuilder(t, schema)
	rows := slices.Clone(b.build([]int64{1, 2}))
	bad := slices.Clone(rows[1])
	bad[3] = parquet.Int64Value(1).Level(0, 0, 17)
	require.ErrorContains(t, w.WriteRows([]parquet.Row{rows[0], bad}), "column 17")
	require.Equal(t, int64(1), w.Rows())
	require.NoError(t, w.WriteRows(b.build([]int64{2})))
	require.Equal(t, int64(2), w.Rows())
	require.NoError(t, w.Close())
}

// Files of one goroutine sharing an encode buffer each get their own rows:
// row groups, checkpoint tails and a resume interleaved across two files
// leave both files exactly as written.
func TestWritersShareEncodeBuffer(t *testing.T) {
	schema := testSchema()
	dir := t.TempDir()
	var shared bytes.Buffer
	opts := Options{RowGroupRows: 300, EncodeBuffer: &shared}
	open := func(name string) (*LocalOutput, *Writer) {
		out, err := CreateLocal(filepath.Join(dir, name))
		require.NoError(t, err)
		w, err := New(out, schema, opts)
		require.NoError(t, err)
		return out, w
	}
	outA, a := open("a.parquet")
	_, c := open("c.parquet")
	b := newRowBuilder(t, schema)
	var idsA, idsC []int64
	for i := range int64(8) {
		ra, rc := idRange(i*1000, i*1000+455), idRange(50_000+i*1000, 50_000+i*1000+170)
		writeIDs(t, a, b, ra)
		writeIDs(t, c, b, rc)
		idsA, idsC = append(idsA, ra...), append(idsC, rc...)
	}
	// a's tail is encoded through the shared buffer; c's next row groups
	// and its own snapshot reuse the buffer before a's state is stored, as
	// a sink snapshots all its files before writing its state.
	stA, err := a.Snapshot()
	require.NoError(t, err)
	require.NotEmpty(t, stA.Tail)
	writeIDs(t, c, b, idRange(90_000, 90_700))
	idsC = append(idsC, idRange(90_000, 90_700)...)
	_, err = c.Snapshot()
	require.NoError(t, err)
	enc, err := stA.MarshalBinary()
	require.NoError(t, err)
	st, err := UnmarshalState(enc)
	require.NoError(t, err)
	crash(t, outA)
	out, err := OpenLocalForResume(filepath.Join(dir, "a.parquet"), st.Length)
	require.NoError(t, err)
	a, err = Resume(out, schema, opts, st)
	require.NoError(t, err)
	writeIDs(t, a, b, idRange(20_000, 20_333))
	idsA = append(idsA, idRange(20_000, 20_333)...)
	require.NoError(t, c.Close())
	require.NoError(t, a.Close())

	for _, f := range []struct {
		name string
		ids  []int64
	}{{"a.parquet", idsA}, {"c.parquet", idsC}} {
		path := filepath.Join(dir, f.name)
		rowGroups := (len(f.ids) + 299) / 300
		checkWithParquetGo(t, path, schema, f.ids, rowGroupsOf(t, path))
		checkWithDuckDB(t, path, f.ids, rowGroupsOf(t, path))
		require.GreaterOrEqual(t, rowGroupsOf(t, path), rowGroups)
	}
}

// rowGroupsOf counts the row groups in a file's footer.
func rowGroupsOf(t *testing.T, path string) int {
	t.Helper()
	return len(openParquet(t, path).RowGroups())
}

// openParquet opens a file with parquet-go; it is closed when the test
// ends.
func openParquet(t *testing.T, path string) *parquet.File {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	require.NoError(t, err)
	pf, err := parquet.OpenFile(f, fi.Size())
	require.NoError(t, err)
	return pf
}
