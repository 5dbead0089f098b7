package parquet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/parquetcheck"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// readerColumns is testSchema as the files must declare it.
var readerColumns = []parquetcheck.Column{
	{Name: "id", Kind: parquetcheck.Int},
	{Name: "s", Kind: parquetcheck.String},
	{Name: "i", Kind: parquetcheck.Int},
	{Name: "f", Kind: parquetcheck.Float},
	{Name: "b", Kind: parquetcheck.Bool},
	{Name: "ts", Kind: parquetcheck.TimestampMicros},
	{Name: "tenant", Kind: parquetcheck.String},
}

// longRun drives a sink the way the runtime does over a long run with
// checkpoints: two tasks, files rolled by rows, by size and by age, row
// groups flushed by size, checkpoints committed, a crash after a checkpoint
// that loses the rows written since (which the source replays), a restore
// that resumes the open files under the same names, and a final
// checkpoint. It returns the ids every published file must hold, once each.
func longRun(t *testing.T, newSink func() *Sink) []int {
	ctx := context.Background()
	tasks := []string{"w-0", "w-1"}
	s := newSink()
	writers := map[string]sink.Writer{}
	for _, task := range tasks {
		w, err := s.NewWriter(task, testSchema)
		require.NoError(t, err)
		writers[task] = w
	}
	next := map[string]int{"w-0": 0, "w-1": 1_000_000}
	write := func(task string, n int) {
		w := writers[task]
		for n > 0 {
			k := min(n, 97)
			b := record.NewBatch(testSchema.Len(), k)
			for range k {
				id := next[task]
				fillRow(b.AppendRow(rowTime(id)), id)
				next[task]++
			}
			require.NoError(t, w.Write(ctx, b))
			n -= k
		}
	}
	checkpointAll := func(id int64, final bool) map[string][]byte {
		states := map[string][]byte{}
		for _, task := range tasks {
			var st []byte
			var err error
			if final {
				st, err = writers[task].(*Writer).PrepareFinal(ctx, id)
			} else {
				st, err = writers[task].(sink.Preparer).Prepare(ctx, id)
			}
			require.NoError(t, err)
			states[task] = st
		}
		for _, task := range tasks {
			require.NoError(t, s.Commit(ctx, task, states[task]))
		}
		return states
	}
	ageRoll := func() {
		later := time.Now().Add(2 * s.cfg.RollAge).UnixMilli()
		for _, task := range tasks {
			require.NoError(t, writers[task].(sink.Ticker).Tick(ctx, later, later))
		}
	}

	for _, task := range tasks {
		write(task, 1500) // rolls by rows and size, row groups by size
	}
	checkpointAll(1, false)
	for _, task := range tasks {
		write(task, 400)
	}
	ageRoll() // every open file rolls by age
	for _, task := range tasks {
		write(task, 650)
	}
	resumeFrom := checkpointAll(2, false)
	replay := map[string]int{}
	for _, task := range tasks {
		replay[task] = next[task]
		write(task, 300) // lost in the crash below
	}

	// Crash: the writers are dropped without Close; a new process restores
	// checkpoint 2 and the source replays from its positions.
	s = newSink()
	require.NoError(t, s.Recover(ctx, resumeFrom))
	for _, task := range tasks {
		w, err := s.NewWriter(task, testSchema)
		require.NoError(t, err)
		writers[task] = w
		next[task] = replay[task]
	}
	for _, task := range tasks {
		write(task, 900)
	}
	checkpointAll(3, false)
	for _, task := range tasks {
		write(task, 250)
	}
	checkpointAll(4, true)
	for _, task := range tasks {
		require.NoError(t, writers[task].Close(ctx))
	}
	require.NoError(t, s.Close(ctx))

	var want []int
	for n := range next["w-0"] {
		want = append(want, n)
	}
	for n := 1_000_000; n < next["w-1"]; n++ {
		want = append(want, n)
	}
	return want
}

// readerSpec is what the files of longRun must hold.
func readerSpec(ids []int) parquetcheck.Spec {
	rows := make([][]*string, len(ids))
	r := make(record.Row, testSchema.Len())
	for i, id := range ids {
		clear(r)
		fillRow(r, id)
		row := make([]*string, len(r))
		for j, v := range r {
			row[j] = parquetcheck.Canon(v)
		}
		rows[i] = row
	}
	return parquetcheck.Spec{Columns: readerColumns, Rows: rows, Codec: "ZSTD", Dictionary: true}
}

// longRunConfig rolls often and flushes small row groups, so a few
// thousand rows make dozens of files and row groups.
func longRunConfig(c *Config) {
	c.Partition = "dt={date}/hour={hour}/t={tenant}"
	c.RollRows = 500
	c.RollSize = 96 << 10
	c.RollAge = time.Minute
	c.RowGroupSize = 24 << 10
}

// parquetFiles lists the published Parquet files below dir.
func parquetFiles(t *testing.T, dir string) []string {
	var out []string
	for _, f := range published(t, dir) {
		if strings.HasSuffix(f, ".parquet") {
			out = append(out, filepath.Join(dir, filepath.FromSlash(f)))
		}
	}
	return out
}

// checkLongRun checks the files of a long run with the three readers and
// that the run made what it was meant to: many files, several row groups
// in some of them.
func checkLongRun(t *testing.T, files []string, ids []int) {
	t.Helper()
	rep := parquetcheck.Check(t, files, readerSpec(ids))
	t.Logf("%d files, %d row groups, %d column chunks, %d rows read back by duckdb, hyparquet and arrow-rs",
		rep.Files, rep.RowGroups, rep.Chunks, rep.Rows)
	require.GreaterOrEqual(t, rep.Files, 16)
	require.Greater(t, rep.RowGroups, rep.Files+10)
}

func TestLongRunReadBackByThreeReaders(t *testing.T) {
	parquetcheck.Require(t)
	dir := t.TempDir()
	ids := longRun(t, func() *Sink { return txnSink(t, dir, nil, longRunConfig) })
	require.Empty(t, staged(t, dir))
	checkLongRun(t, parquetFiles(t, dir), ids)
}

// TestEngineDefaultsReadBack writes with the defaults and with
// millisecond timestamps, and checks types, encodings (v1 data pages,
// dictionary strings) and statistics with the three readers. Millisecond
// timestamps round down, also before 1970.
func TestEngineDefaultsReadBack(t *testing.T) {
	parquetcheck.Require(t)
	for _, tc := range []struct {
		unit string
		kind parquetcheck.Kind
	}{
		{"micros", parquetcheck.TimestampMicros},
		{"millis", parquetcheck.TimestampMillis},
	} {
		t.Run(tc.unit, func(t *testing.T) {
			s, dir := newTestSink(t, func(c *Config) { c.TimestampUnit = tc.unit })
			w, err := s.NewWriter("w", testSchema)
			require.NoError(t, err)
			b := record.NewBatch(testSchema.Len(), 3000)
			var rows [][]*string
			for n := range 3000 {
				r := b.AppendRow(rowTime(n))
				fillRow(r, n)
				want := slices.Clone(r)
				if tc.unit == "millis" && !r[5].IsNull() {
					us := r[5].Int()
					ms := us / 1000
					if us%1000 < 0 {
						ms--
					}
					want[5] = record.Timestamp(ms * 1000)
				}
				row := make([]*string, len(want))
				for j, v := range want {
					row[j] = parquetcheck.Canon(v)
				}
				rows = append(rows, row)
			}
			require.NoError(t, w.Write(context.Background(), b))
			require.NoError(t, w.Close(context.Background()))
			cols := slices.Clone(readerColumns)
			cols[5].Kind = tc.kind
			parquetcheck.Check(t, parquetFiles(t, dir), parquetcheck.Spec{
				Columns: cols, Rows: rows, Codec: "ZSTD", Dictionary: true,
			})
		})
	}
}

// TestSortByReadBack writes rows in arbitrary order with sortBy [tenant, s]
// and checks with the three readers that every row group is sorted (nulls
// last) and says so in sorting_columns, and that no row is lost.
func TestSortByReadBack(t *testing.T) {
	parquetcheck.Require(t)
	s, dir := newTestSink(t, func(c *Config) {
		c.Partition = "dt={date}"
		c.SortBy = []string{"tenant", "s"}
		c.RowGroupSize = 16 << 10
	})
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	var rows [][]*string
	b := record.NewBatch(testSchema.Len(), 2000)
	for k := range 2000 {
		n := (k * 7919) % 2000 // a permutation: input order is not sorted
		r := b.AppendRow(rowTime(n))
		fillRow(r, n)
		row := make([]*string, len(r))
		for j, v := range r {
			row[j] = parquetcheck.Canon(v)
		}
		rows = append(rows, row)
	}
	require.NoError(t, w.Write(context.Background(), b))
	require.NoError(t, w.Close(context.Background()))
	rep := parquetcheck.Check(t, parquetFiles(t, dir), parquetcheck.Spec{
		Columns: readerColumns, Rows: rows, Codec: "ZSTD", Dictionary: true, SortBy: []int{6, 1},
	})
	require.Greater(t, rep.RowGroups, 2)
}

// TestRollSizeIsHonoured rolls files by size with row groups much smaller
// than the target: files end within 10% of rollSize, not at the in-memory
// size of their rows, which overstates the encoded size several times.
func TestRollSizeIsHonoured(t *testing.T) {
	const target = 256 << 10
	s, dir := newTestSink(t, func(c *Config) {
		c.Partition = ""
		c.RollSize = target
		c.RowGroupSize = 64 << 10
	})
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	for k := range 200 {
		b := record.NewBatch(testSchema.Len(), 500)
		for n := k * 500; n < (k+1)*500; n++ {
			// A log line: compresses a few times, like real logs.
			r := b.AppendRow(baseMs)
			fillRow(r, n)
			r[1] = record.String(fmt.Sprintf("GET /api/v1/items/%d?user=%x status=%d took=%dms", n*7%1000, n*2654435761, 200+n%5, n%97))
		}
		require.NoError(t, w.Write(context.Background(), b))
	}
	require.NoError(t, w.Close(context.Background()))
	files := parquetFiles(t, dir)
	require.Greater(t, len(files), 2)
	slices.Sort(files)
	for _, f := range files[:len(files)-1] { // the last file holds the rest
		fi, err := os.Stat(f)
		require.NoError(t, err)
		require.InDelta(t, target, fi.Size(), 0.1*target, "size of %s", filepath.Base(f))
	}
}

// TestJSONColumnsReadBack writes nested JSON decoded as raw text (a json
// field and the extras field) and checks with the three readers that the
// columns carry the JSON logical type and every value byte for byte; the
// hyparquet reader also parses every value as JSON.
func TestJSONColumnsReadBack(t *testing.T) {
	parquetcheck.Require(t)
	schema := record.MustSchema(
		record.Field{Name: "id", Type: record.TypeInt},
		record.Field{Name: "meta", Type: record.TypeString},
		record.Field{Name: "extras", Type: record.TypeString},
	)
	s, dir := newTestSink(t, func(c *Config) {
		c.Partition = ""
		c.JSONColumns = []string{"extras", "meta"}
		c.RowGroupSize = 8 << 10
	})
	w, err := s.NewWriter("w", schema)
	require.NoError(t, err)
	b := record.NewBatch(schema.Len(), 500)
	var rows [][]*string
	for n := range 500 {
		r := b.AppendRow(baseMs)
		r[0] = record.Int(int64(n))
		if n%7 != 0 {
			r[1] = record.String(fmt.Sprintf(`{"seq":%d,"tags":["a","b\"%c"],"deep":{"x":[%d,{"y":null}]},"s":"é☕"}`, n, 'a'+n%26, n*3))
		}
		if n%3 == 0 {
			r[2] = record.String(fmt.Sprintf(`{"added_by_producer":%d}`, n))
		}
		row := make([]*string, 3)
		for j, v := range r {
			row[j] = parquetcheck.Canon(v)
		}
		rows = append(rows, row)
	}
	require.NoError(t, w.Write(context.Background(), b))
	require.NoError(t, w.Close(context.Background()))
	parquetcheck.Check(t, parquetFiles(t, dir), parquetcheck.Spec{
		Columns: []parquetcheck.Column{
			{Name: "id", Kind: parquetcheck.Int},
			{Name: "meta", Kind: parquetcheck.JSON},
			{Name: "extras", Kind: parquetcheck.JSON},
		},
		Rows: rows, Codec: "ZSTD",
	})
}
