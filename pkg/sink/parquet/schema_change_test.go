package parquet

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/pkg/record"
)

// TestSchemaChangeAcrossRestart restores a checkpoint with open files into
// a pipeline whose stream gained a field (in the middle of the schema):
// the resumed files are finished with their old schema, new files carry
// the new column, and DuckDB reads all of them together by name, old rows
// with NULL in the new column.
func TestSchemaChangeAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := txnSink(t, dir, nil, nil)
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 0, 300, "")
	cp := prepare(t, w, 1)
	require.NoError(t, s.Commit(ctx, "w", cp))
	writeIDs(t, w, 300, 400, "") // lost in the crash

	fields := testSchema.Fields()
	wider := record.MustSchema(append(append(fields[:2:2], record.Field{Name: "region", Type: record.TypeString}), fields[2:]...)...)
	s = txnSink(t, dir, nil, nil)
	require.NoError(t, s.Recover(ctx, map[string][]byte{"w": cp}))
	w, err = s.NewWriter("w", wider)
	require.NoError(t, err)
	b := record.NewBatch(wider.Len(), 200)
	for n := 300; n < 500; n++ {
		r := b.AppendRow(baseMs)
		old := make(record.Row, testSchema.Len())
		fillRow(old, n)
		copy(r, old[:2])
		r[2] = record.String(fmt.Sprintf("eu-%d", n%3))
		copy(r[3:], old[2:])
	}
	require.NoError(t, w.Write(ctx, b))
	final, err := w.(*Writer).PrepareFinal(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Commit(ctx, "w", final))
	require.NoError(t, s.Close(ctx))
	require.Empty(t, staged(t, dir))

	files := published(t, dir)
	require.Len(t, files, 4, "two old files finished, two new ones")
	rows := duckdb.Query(t, fmt.Sprintf(`SELECT id, region, s, tenant FROM read_parquet('%s/**/*.parquet', union_by_name=true, hive_partitioning=false) ORDER BY id`, dir))
	require.Len(t, rows, 500)
	for i, r := range rows {
		require.EqualValues(t, i, r["id"])
		if i < 300 {
			require.Nil(t, r["region"], "row %d was written before the field existed", i)
		} else {
			require.Equal(t, fmt.Sprintf("eu-%d", i%3), r["region"])
		}
		want := make(record.Row, testSchema.Len())
		fillRow(want, i)
		require.Equal(t, wantJSON(want[1]), r["s"], "row %d", i)
		require.Equal(t, want[6].S, r["tenant"], "row %d", i)
	}
	for _, f := range files {
		cols := duckdb.Query(t, fmt.Sprintf(`SELECT string_agg(name, ',' ORDER BY column_id) AS cols FROM parquet_schema('%s') WHERE num_children IS NULL`, filepath.Join(dir, f)))
		resumed := strings.HasSuffix(f, "-000000.parquet") || strings.HasSuffix(f, "-000001.parquet")
		want := "id,s,region,i,f,b,ts,tenant"
		if resumed {
			want = "id,s,i,f,b,ts,tenant"
		}
		require.Equal(t, want, cols[0]["cols"], "columns of %s", f)
	}
}
