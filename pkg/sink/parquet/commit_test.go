package parquet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// hourMs is 2025-11-21T05:00Z plus h hours and m minutes, in ms.
func hourMs(h, m int) int64 { return baseMs + int64(h)*msPerHour + int64(m)*msPerMinute }

// writeAt writes rows with ids from..to-1, all at event time ms.
func writeAt(t *testing.T, w sink.Writer, from, to int, ms int64) {
	t.Helper()
	b := record.NewBatch(testSchema.Len(), to-from)
	for n := from; n < to; n++ {
		fillRow(b.AppendRow(ms+int64(n-from)), n)
	}
	require.NoError(t, w.Write(context.Background(), b))
}

func tick(t *testing.T, w sink.Writer, wm int64) {
	t.Helper()
	require.NoError(t, w.(sink.Ticker).Tick(context.Background(), time.Now().UnixMilli(), wm))
}

func readManifest(t *testing.T, dir string) partitionManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	require.NoError(t, err)
	var m partitionManifest
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestPartitionCommitExactlyOnce drives two tasks whose watermarks pass an
// hour at different times: the hour is committed only when both are past
// its end plus the allowed lateness, and only through the Commit of a
// completed checkpoint; its manifest matches what DuckDB reads from the
// partition's files; rows after the commit are counted, not listed; a
// restore that redoes the commit leaves it as it was.
func TestPartitionCommitExactlyOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	mutate := func(c *Config) {
		c.Partition = "dt={date}/hour={hour}"
		c.PartitionCommit = PartitionCommitConfig{Enabled: true, AllowedLateness: 10 * time.Minute}
	}
	cfg := DefaultConfig()
	cfg.Name, cfg.Dir, cfg.Transactional = "test", dir, true
	mutate(&cfg)
	s, err := New(cfg, nil, reg)
	require.NoError(t, err)
	a, err := s.NewWriter("a", testSchema)
	require.NoError(t, err)
	b, err := s.NewWriter("b", testSchema)
	require.NoError(t, err)
	h05 := filepath.Join(dir, "dt=2025-11-21", "hour=05")
	h06 := filepath.Join(dir, "dt=2025-11-21", "hour=06")

	writeAt(t, a, 0, 100, hourMs(0, 1))    // hour 05
	writeAt(t, b, 100, 250, hourMs(0, 30)) // hour 05
	writeAt(t, a, 250, 300, hourMs(1, 2))  // hour 06
	tick(t, a, hourMs(1, 15))              // a is past 06:10: closes hour 05
	writeAt(t, a, 300, 302, hourMs(0, 59)) // late for a, still in time for the commit
	tick(t, b, hourMs(0, 40))              // b still in hour 05
	commitAll := func(id int64) map[string][]byte {
		states := map[string][]byte{"a": prepare(t, a, id), "b": prepare(t, b, id)}
		require.NoError(t, s.Commit(ctx, "a", states["a"]))
		require.NoError(t, s.Commit(ctx, "b", states["b"]))
		return states
	}
	commitAll(1)
	require.False(t, exists(filepath.Join(h05, successName)), "b holds hour 05 back")

	writeAt(t, b, 302, 310, hourMs(0, 58))
	tick(t, b, hourMs(1, 11)) // b passes 06:10 too
	sa, sb := prepare(t, a, 2), prepare(t, b, 2)
	require.False(t, exists(filepath.Join(h05, successName)), "nothing is committed before the checkpoint completes")
	require.NoError(t, s.Commit(ctx, "a", sa))
	require.NoError(t, s.Commit(ctx, "b", sb))
	require.True(t, exists(filepath.Join(h05, successName)))
	require.False(t, exists(filepath.Join(h06, successName)), "hour 06 is not over")

	m := readManifest(t, h05)
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name)
	}
	onDisk, err := filepath.Glob(filepath.Join(h05, "*.parquet"))
	require.NoError(t, err)
	for i := range onDisk {
		onDisk[i] = filepath.Base(onDisk[i])
	}
	require.ElementsMatch(t, onDisk, names, "the manifest lists the partition's files")
	got := duckdb.Query(t, fmt.Sprintf(`SELECT count(*) AS n, min(filename) IS NOT NULL AS any,
		count(DISTINCT filename) AS files FROM read_parquet('%s/*.parquet', filename=true)`, h05))
	require.Equal(t, float64(len(names)), got[0]["files"])
	require.Equal(t, int64(100+150+2+8), m.Rows)
	require.Equal(t, float64(m.Rows), got[0]["n"])
	require.Equal(t, int64(2), m.LateRecords, "rows of a's closed hour before the commit")
	require.Equal(t, "2025-11-21T05:00:00.000Z", m.Start)
	require.Equal(t, "2025-11-21T06:00:00.000Z", m.End)
	require.Equal(t, msTime(hourMs(0, 1)), m.MinEventTime)
	require.Equal(t, msTime(hourMs(0, 59)+1), m.MaxEventTime)
	var sum int64
	for _, f := range m.Files {
		sum += f.Rows
		fi, err := os.Stat(filepath.Join(h05, f.Name))
		require.NoError(t, err)
		require.Equal(t, fi.Size(), f.Bytes)
	}
	require.Equal(t, m.Rows, sum)
	before, err := os.ReadFile(filepath.Join(h05, manifestName))
	require.NoError(t, err)

	// After the commit: counted, written, not listed.
	writeAt(t, a, 400, 403, hourMs(0, 20))
	require.Equal(t, 3.0, gather(t, reg, "test")["streamd_parquet_partition_late_rows_total"])
	require.Equal(t, 1.0, gather(t, reg, "test")["streamd_parquet_partitions_committed_total"])
	s3 := commitAll(3)

	// Crash; a restart restores checkpoint 2 and commits again.
	s = txnSink(t, dir, nil, mutate)
	require.NoError(t, s.Recover(ctx, map[string][]byte{"a": sa, "b": sb}))
	a, err = s.NewWriter("a", testSchema)
	require.NoError(t, err)
	b, err = s.NewWriter("b", testSchema)
	require.NoError(t, err)
	tick(t, a, hourMs(2, 30))
	tick(t, b, hourMs(2, 30))
	_ = s3
	commitAll(3)
	after, err := os.ReadFile(filepath.Join(h05, manifestName))
	require.NoError(t, err)
	require.Equal(t, string(before), string(after), "the commit is not redone")
	require.True(t, exists(filepath.Join(h06, successName)), "hour 06 commits once both are past it")
	m6 := readManifest(t, h06)
	require.Equal(t, int64(50), m6.Rows)
	entries, err := os.ReadDir(h05)
	require.NoError(t, err)
	var hidden []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			hidden = append(hidden, e.Name())
		}
	}
	require.Empty(t, slices.DeleteFunc(hidden, func(n string) bool { return strings.HasSuffix(n, stagedSuffix) }),
		"no temporary marker files are left")
}

// TestPartitionCommitWithoutCheckpoints commits on Tick once every writer
// is past the hour; closing the writers (a stop) commits nothing the
// watermark has not passed.
func TestPartitionCommitWithoutCheckpoints(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Name, cfg.Dir, cfg.Partition = "test", dir, "dt={date}/hour={hour}"
	cfg.PartitionCommit.Enabled = true
	s, err := New(cfg, nil, reg)
	require.NoError(t, err)
	a, err := s.NewWriter("a", testSchema)
	require.NoError(t, err)
	b, err := s.NewWriter("b", testSchema)
	require.NoError(t, err)
	h05 := filepath.Join(dir, "dt=2025-11-21", "hour=05")
	h06 := filepath.Join(dir, "dt=2025-11-21", "hour=06")
	writeAt(t, a, 0, 10, hourMs(0, 5))
	writeAt(t, b, 10, 20, hourMs(1, 5))
	tick(t, a, hourMs(1, 0))
	require.False(t, exists(filepath.Join(h05, successName)))
	tick(t, b, hourMs(1, 30))
	require.True(t, exists(filepath.Join(h05, successName)))
	require.Equal(t, int64(10), readManifest(t, h05).Rows)
	require.False(t, exists(filepath.Join(h06, successName)))
	tick(t, a, hourMs(2, 1))
	require.NoError(t, a.Close(ctx))
	require.False(t, exists(filepath.Join(h06, successName)), "b is not past hour 06")
	tick(t, b, hourMs(1, 59))
	require.NoError(t, b.Close(ctx), "a stop commits only what the watermark passed")
	require.False(t, exists(filepath.Join(h06, successName)))
	require.Equal(t, 1.0, gather(t, reg, "test")["streamd_parquet_partitions_committed_total"])
}

func TestPartitionCommitNeedsDate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = "/tmp/x"
	cfg.PartitionCommit.Enabled = true
	cfg.Partition = "hour={hour}"
	require.ErrorContains(t, cfg.Validate(), "partitionCommit needs {date}")
	cfg.Partition = "dt={date}/m={minute}"
	require.ErrorContains(t, cfg.Validate(), "needs {hour} with {minute}")
	cfg.Partition = "dt={date}/hour={hour}/t={tenant}"
	require.NoError(t, cfg.Validate())
}

// keepEven keeps rows with an even id and cannot evaluate ids divisible by 5.
type keepEven struct{}

func (keepEven) Keep(row record.Row) (bool, error) {
	id := row[0].Int()
	if id%5 == 0 {
		return false, fmt.Errorf("cannot evaluate row %d", id)
	}
	return id%2 == 0, nil
}

func TestFilterSelectsRowsAndCountsErrors(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Name, cfg.Dir, cfg.Filter = "test", dir, "id % 2 == 0"
	cfg.NewFilter = func(*record.Schema) (RowFilter, error) { return keepEven{}, nil }
	s, err := New(cfg, nil, reg)
	require.NoError(t, err)
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 0, 100, "")
	require.NoError(t, w.Close(context.Background()))
	var want []int64
	for n := int64(0); n < 100; n++ {
		if n%2 == 0 && n%5 != 0 {
			want = append(want, n)
		}
	}
	require.Equal(t, want, publishedIDs(t, dir))
	m := gather(t, reg, "test")
	require.Equal(t, 20.0, m["streamd_parquet_filter_errors_total"])
	require.Equal(t, 40.0, m["streamd_parquet_filtered_rows_total"])

	cfg.NewFilter = nil
	require.ErrorContains(t, cfg.Validate(), "filter is set but no NewFilter")
}

// TestPartitionCommitOnStoppingContext commits a partition in an object
// store from Ticks whose context a stop has cancelled: the files are
// published, so the markers are written anyway (bounded) instead of
// failing the pipeline, and concurrent ticks of two tasks commit the
// partition once.
func TestPartitionCommitOnStoppingContext(t *testing.T) {
	st := startFakeStore(t)
	cfg := DefaultConfig()
	cfg.Name, cfg.Dir, cfg.Store, cfg.PartSize = "test", "out", st, store.MinPartSize
	cfg.Partition = "dt={date}/hour={hour}"
	cfg.PartitionCommit.Enabled = true
	cfg.RollRows = 10 // the files are published as they are written
	s, err := New(cfg, nil, nil)
	require.NoError(t, err)
	a, err := s.NewWriter("a", testSchema)
	require.NoError(t, err)
	b, err := s.NewWriter("b", testSchema)
	require.NoError(t, err)
	writeAt(t, a, 0, 10, hourMs(0, 5))
	writeAt(t, b, 10, 20, hourMs(0, 6))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 2)
	go func() { done <- b.(sink.Ticker).Tick(ctx, time.Now().UnixMilli(), hourMs(1, 1)) }()
	go func() { done <- a.(sink.Ticker).Tick(ctx, time.Now().UnixMilli(), hourMs(1, 2)) }()
	require.NoError(t, <-done)
	require.NoError(t, <-done)
	dir := t.TempDir()
	keys := download(t, st, "out/", dir)
	require.Contains(t, keys, "dt=2025-11-21/hour=05/_SUCCESS")
	require.Equal(t, int64(20), readManifest(t, filepath.Join(dir, "dt=2025-11-21", "hour=05")).Rows)
}
