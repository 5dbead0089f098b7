package pqfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
	"github.com/stretchr/testify/require"
)

// footerOf reads the footer of a Parquet file with parquet-go.
func footerOf(t *testing.T, path string) *format.FileMetaData {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	return f.Metadata()
}

// TestParquetGoResetLosesColumnPaths pins the upstream bug the writer
// works around (parquet-go/parquet-go#602): after Writer.Reset, every
// column chunk of the next file has path_in_schema [""]. When an upgrade
// makes this test fail, the bug is fixed upstream; the workaround (a new
// parquet-go writer per row group, paths set from the schema) stays
// correct either way.
func TestParquetGoResetLosesColumnPaths(t *testing.T) {
	schema := testSchema()
	rows := newRowBuilder(t, schema).build([]int64{1, 2, 3})
	w := parquet.NewWriter(io.Discard, schema)
	var paths [][]string
	for range 2 {
		var out bytes.Buffer
		w.Reset(&out)
		_, err := w.WriteRows(rows)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		f, err := parquet.OpenFile(bytes.NewReader(out.Bytes()), int64(out.Len()))
		require.NoError(t, err)
		paths = append(paths, f.Metadata().RowGroups[0].Columns[0].MetaData.PathInSchema)
	}
	require.Equal(t, []string{"at"}, paths[0])
	require.Equal(t, []string{""}, paths[1], "parquet-go keeps column paths across Writer.Reset now: see the comment on Writer.pwConfig")
}

// TestColumnPathsInEveryRowGroup writes files the way the sink does —
// several row groups, checkpoints with a tail, a resume, a second file from
// the same process — and reads every column chunk's path back from the
// footer. Before the workaround only the first row group of a file named
// its columns.
func TestColumnPathsInEveryRowGroup(t *testing.T) {
	schema := testSchema()
	b := newRowBuilder(t, schema)
	dir := t.TempDir()
	opts := Options{RowGroupRows: 200}
	for file := range 2 {
		path := filepath.Join(dir, "part-"+string(rune('0'+file))+".parquet")
		out, err := CreateLocal(path)
		require.NoError(t, err)
		w, err := New(out, schema, opts)
		require.NoError(t, err)
		writeIDs(t, w, b, idRange(0, 450))
		st := checkpoint(t, w) // 2 row groups and a tail of 50 rows
		require.NotEmpty(t, st.Tail)
		crash(t, out)
		out, err = OpenLocalForResume(path, st.Length)
		require.NoError(t, err)
		w, err = Resume(out, schema, opts, st)
		require.NoError(t, err)
		writeIDs(t, w, b, idRange(450, 1000))
		require.NoError(t, w.Close())

		md := footerOf(t, path)
		require.Len(t, md.RowGroups, 5)
		checkColumnPaths(t, md, schema)
	}
}

// TestResumeRepairsColumnPaths resumes a file from a state whose row group
// list carries the empty paths that states written before the workaround
// hold: the finished file names every column.
func TestResumeRepairsColumnPaths(t *testing.T) {
	schema := testSchema()
	b := newRowBuilder(t, schema)
	path := filepath.Join(t.TempDir(), "part-0.parquet")
	opts := Options{RowGroupRows: 100}
	out, err := CreateLocal(path)
	require.NoError(t, err)
	w, err := New(out, schema, opts)
	require.NoError(t, err)
	writeIDs(t, w, b, idRange(0, 300))
	st := checkpoint(t, w)
	crash(t, out)

	var list rowGroupList
	require.NoError(t, thrift.Unmarshal(new(thrift.CompactProtocol), st.RowGroups, &list))
	require.Len(t, list.RowGroups, 3)
	for i := range list.RowGroups {
		for j := range list.RowGroups[i].Columns {
			list.RowGroups[i].Columns[j].MetaData.PathInSchema = thrift.Slice[string]{""}
		}
	}
	st.RowGroups, err = thrift.Marshal(new(thrift.CompactProtocol), &list)
	require.NoError(t, err)

	out, err = OpenLocalForResume(path, st.Length)
	require.NoError(t, err)
	w, err = Resume(out, schema, opts, st)
	require.NoError(t, err)
	writeIDs(t, w, b, idRange(300, 350))
	require.NoError(t, w.Close())
	checkColumnPaths(t, footerOf(t, path), schema)
	checkWithParquetGo(t, path, schema, idRange(0, 350), 4)
}

// nestedEvent has a list, a struct and a map before the sort column, so a
// row has more values than columns and the sort column is not at its index.
type nestedEvent struct {
	ID    int64            `parquet:"id"`
	Tags  []string         `parquet:"tags,list"`
	Geo   *nestedGeo       `parquet:"geo,optional"`
	Attrs map[string]int64 `parquet:"attrs"`
	Name  string           `parquet:"name"`
}

type nestedGeo struct {
	Lat  float64  `parquet:"lat"`
	Hops []string `parquet:"hops,list"`
}

// TestNestedColumnPathsAndSort writes rows with lists, a struct and a map
// through row groups, a checkpoint with a tail, a crash and a resume, sorted
// by a column behind the nested ones: every column chunk, nested leaves
// included, names its full path (tags.list.element, attrs.key_value.key, …),
// every row group is sorted and no row is lost or changed.
func TestNestedColumnPathsAndSort(t *testing.T) {
	schema := parquet.SchemaOf(nestedEvent{})
	nameCol, ok := schema.Lookup("name")
	require.True(t, ok)
	require.Greater(t, nameCol.ColumnIndex, 4)
	ev := func(id int64) nestedEvent {
		e := nestedEvent{ID: id, Name: fmt.Sprintf("n%03d", (id*7919)%1000)}
		for k := range id % 4 {
			e.Tags = append(e.Tags, fmt.Sprint("t", k))
		}
		if id%3 != 0 {
			e.Geo = &nestedGeo{Lat: float64(id) / 8, Hops: e.Tags}
		}
		if id%2 == 0 {
			e.Attrs = map[string]int64{"a": id, "b": -id}
		}
		return e
	}
	write := func(w *Writer, from, to int64) {
		var rows []parquet.Row
		for id := from; id < to; id++ {
			e := ev(id)
			rows = append(rows, schema.Deconstruct(nil, &e))
		}
		require.NoError(t, w.WriteRows(rows))
	}
	path := filepath.Join(t.TempDir(), "part-0.parquet")
	opts := Options{RowGroupRows: 100, SortBy: []SortColumn{{Column: nameCol.ColumnIndex}}}
	out, err := CreateLocal(path)
	require.NoError(t, err)
	w, err := New(out, schema, opts)
	require.NoError(t, err)
	write(w, 0, 250)
	st := checkpoint(t, w)
	require.NotEmpty(t, st.Tail)
	crash(t, out)
	out, err = OpenLocalForResume(path, st.Length)
	require.NoError(t, err)
	w, err = Resume(out, schema, opts, st)
	require.NoError(t, err)
	write(w, 250, 420)
	require.NoError(t, w.Close())

	md := footerOf(t, path)
	require.Len(t, md.RowGroups, 5)
	checkColumnPaths(t, md, schema)
	require.Contains(t, schema.Columns(), []string{"attrs", "key_value", "key"})
	require.Contains(t, schema.Columns(), []string{"geo", "hops", "list", "element"})

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	pf, err := parquet.OpenFile(f, fi.Size())
	require.NoError(t, err)
	seen := map[int64]bool{}
	for _, rg := range pf.RowGroups() {
		r := parquet.NewGenericRowGroupReader[nestedEvent](rg)
		got := make([]nestedEvent, rg.NumRows())
		n, err := r.Read(got)
		if !errors.Is(err, io.EOF) {
			require.NoError(t, err)
		}
		require.Equal(t, int(rg.NumRows()), n)
		for i, e := range got {
			if i > 0 {
				require.LessOrEqual(t, got[i-1].Name, e.Name, "row group sorted by name")
			}
			want := ev(e.ID)
			require.Equal(t, want.Name, e.Name)
			require.Equal(t, len(want.Tags), len(e.Tags))
			require.Equal(t, want.Geo == nil, e.Geo == nil, "id %d", e.ID)
			require.Equal(t, len(want.Attrs), len(e.Attrs), "id %d", e.ID)
			require.False(t, seen[e.ID])
			seen[e.ID] = true
		}
	}
	require.Len(t, seen, 420)
}
