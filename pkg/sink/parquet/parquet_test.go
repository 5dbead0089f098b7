package parquet

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/pkg/record"
)

var testSchema = record.MustSchema(
	record.Field{Name: "id", Type: record.TypeInt},
	record.Field{Name: "s", Type: record.TypeString},
	record.Field{Name: "i", Type: record.TypeInt},
	record.Field{Name: "f", Type: record.TypeFloat},
	record.Field{Name: "b", Type: record.TypeBool},
	record.Field{Name: "ts", Type: record.TypeTimestamp},
	record.Field{Name: "tenant", Type: record.TypeString},
)

// 2025-11-21T05:00:00Z in milliseconds.
const baseMs = int64(1763701200000)

var sampleStrings = []string{
	`plain`, `say "hi"`, `back\slash`, `a/b/c`, `café ☕ 日本語`, "tab\tnew\nline", ``, `'single'`, "emoji 🎉", "nul\x00byte",
}

var sampleInts = []int64{0, 1, -1, math.MaxInt64, math.MinInt64, 1 << 53, -(1 << 53) - 1, 42}

var sampleFloats = []float64{0, 0.1, -2.5, 1e300, -1e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1)}

// fillRow fills row n of the test data; every column is null on some rows.
func fillRow(r record.Row, n int) {
	r[0] = record.Int(int64(n))
	if n%7 != 3 {
		r[1] = record.String(sampleStrings[n%len(sampleStrings)] + strconv.Itoa(n))
	}
	if n%5 != 1 {
		r[2] = record.Int(sampleInts[n%len(sampleInts)])
	}
	if n%6 != 2 {
		r[3] = record.Float(sampleFloats[n%len(sampleFloats)])
	}
	if n%4 != 0 {
		r[4] = record.Bool(n%3 == 0)
	}
	if n%9 != 4 {
		r[5] = record.Timestamp(int64(n)*1_000_003 - 5_000_000_123)
	}
	if n%2 == 0 {
		r[6] = record.String("acme")
	} else {
		r[6] = record.String("we/ird \"co\"")
	}
}

// rowTime puts even rows in hour 05 and odd rows in hour 06.
func rowTime(n int) int64 { return baseMs + int64(n%2)*3_600_000 + int64(n)*10 }

// wantJSON is how the DuckDB harness renders a value.
func wantJSON(v record.Value) any {
	switch v.T {
	case record.TypeNull:
		return nil
	case record.TypeString:
		return v.S
	case record.TypeInt:
		n := v.Int()
		if n > 1<<53-1 || n < -(1<<53-1) {
			return strconv.FormatInt(n, 10)
		}
		return float64(n)
	case record.TypeFloat:
		f := v.Float()
		switch {
		case math.IsNaN(f):
			return "NaN"
		case math.IsInf(f, 1):
			return "Infinity"
		case math.IsInf(f, -1):
			return "-Infinity"
		}
		return f
	case record.TypeBool:
		return v.Bool()
	case record.TypeTimestamp:
		return v.Time().Format("2006-01-02T15:04:05.000000Z")
	}
	panic("unknown type")
}

func newTestSink(t *testing.T, mutate func(*Config)) (*Sink, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = "test"
	cfg.Dir = t.TempDir()
	cfg.Partition = "dt={date}/hour={hour}/t={tenant}"
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg, nil, nil)
	require.NoError(t, err)
	return s, cfg.Dir
}

// listFiles returns the paths below dir, relative and slash-separated.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return err
	}))
	return out
}

func parquetRows(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	st, err := f.Stat()
	require.NoError(t, err)
	pf, err := parquet.OpenFile(f, st.Size())
	require.NoError(t, err)
	return pf.NumRows()
}

func TestWriteReadBackWithDuckDB(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestSink(t, nil)
	w, err := s.NewWriter("window-0", testSchema)
	require.NoError(t, err)

	const batches, perBatch = 5, 97
	var want []record.Row
	n := 0
	for range batches {
		b := record.NewBatch(testSchema.Len(), perBatch)
		for range perBatch {
			fillRow(b.AppendRow(rowTime(n)), n)
			n++
		}
		// A string in memory the caller overwrites after Write: the writer
		// must have copied it.
		scratch := []byte("overwritten-after-write")
		b.Row(0)[1] = record.String(unsafe.String(&scratch[0], len(scratch)))
		for i := range b.Len() {
			want = append(want, append(record.Row(nil), b.Row(i)...))
			want[len(want)-1][1] = want[len(want)-1][1].Clone()
		}
		require.NoError(t, w.Write(ctx, b))
		for i := range scratch {
			scratch[i] = 'X'
		}
	}
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Close(ctx))

	require.ElementsMatch(t, []string{
		"dt=2025-11-21/hour=05/t=acme/part-window-0-000000.parquet",
		"dt=2025-11-21/hour=06/t=we%2Fird %22co%22/part-window-0-000001.parquet",
	}, listFiles(t, dir))

	got := duckdb.Query(t, fmt.Sprintf(`SELECT *
		FROM read_parquet('%s/**/*.parquet', hive_partitioning=true, hive_types={'hour': VARCHAR})
		ORDER BY id`, dir))
	require.Len(t, got, len(want))
	names := []string{"id", "s", "i", "f", "b", "ts", "tenant"}
	for r, row := range want {
		for c, name := range names {
			require.Equal(t, wantJSON(row[c]), got[r][name], "row %d field %s", r, name)
		}
		wantHour := "05"
		if r%2 == 1 {
			wantHour = "06"
		}
		require.Equal(t, "2025-11-21", got[r]["dt"], "row %d dt", r)
		require.Equal(t, wantHour, got[r]["hour"], "row %d hour", r)
		require.Equal(t, row[6].S, got[r]["t"], "row %d partition value", r)
	}
}

func TestRollByRows(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestSink(t, func(c *Config) {
		c.Partition = ""
		c.RollRows = 10
	})
	w, err := s.NewWriter("t", testSchema)
	require.NoError(t, err)
	b := record.NewBatch(testSchema.Len(), 25)
	for n := range 25 {
		fillRow(b.AppendRow(baseMs), n)
	}
	require.NoError(t, w.Write(ctx, b))
	// Two full files are committed as soon as they reach RollRows.
	require.ElementsMatch(t, []string{"part-t-000000.parquet", "part-t-000001.parquet", ".part-t-000002.parquet.inprogress"}, listFiles(t, dir))
	require.NoError(t, w.Close(ctx))
	files := listFiles(t, dir)
	require.Equal(t, []string{"part-t-000000.parquet", "part-t-000001.parquet", "part-t-000002.parquet"}, files)
	var rows []int64
	for _, f := range files {
		rows = append(rows, parquetRows(t, filepath.Join(dir, f)))
	}
	require.Equal(t, []int64{10, 10, 5}, rows)
}

func TestRollBySize(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestSink(t, func(c *Config) {
		c.Partition = ""
		c.RollSize = 1 // every run rolls the file
	})
	w, err := s.NewWriter("t", testSchema)
	require.NoError(t, err)
	for n := range 3 {
		b := record.NewBatch(testSchema.Len(), 1)
		fillRow(b.AppendRow(baseMs), n)
		require.NoError(t, w.Write(ctx, b))
	}
	require.NoError(t, w.Close(ctx))
	require.Equal(t, []string{"part-t-000000.parquet", "part-t-000001.parquet", "part-t-000002.parquet"}, listFiles(t, dir))
}

func TestRollByAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s, dir := newTestSink(t, func(c *Config) {
			c.Partition = "t={tenant}"
			c.RollAge = 5 * time.Minute
		})
		w, err := s.NewWriter("t", testSchema)
		require.NoError(t, err)
		tick := w.(interface {
			Tick(context.Context, int64, int64) error
		})
		write := func(n int) {
			b := record.NewBatch(testSchema.Len(), 1)
			fillRow(b.AppendRow(baseMs), n)
			require.NoError(t, w.Write(ctx, b))
		}
		write(0) // acme at t=0
		time.Sleep(3 * time.Minute)
		write(1) // we/ird at t=3m
		require.NoError(t, tick.Tick(ctx, time.Now().UnixMilli(), 0))
		require.Empty(t, committed(listFiles(t, dir)))

		time.Sleep(2 * time.Minute) // acme's file is 5m old, the other 2m
		require.NoError(t, tick.Tick(ctx, time.Now().UnixMilli(), 0))
		require.Equal(t, []string{"t=acme/part-t-000000.parquet"}, committed(listFiles(t, dir)))

		write(2) // acme again: a new file with the next sequence number
		time.Sleep(3 * time.Minute)
		require.NoError(t, tick.Tick(ctx, time.Now().UnixMilli(), 0))
		require.Equal(t, []string{"t=acme/part-t-000000.parquet", "t=we%2Fird %22co%22/part-t-000001.parquet"},
			committed(listFiles(t, dir)))
		require.NoError(t, w.Close(ctx))
		require.Equal(t, []string{"t=acme/part-t-000000.parquet", "t=acme/part-t-000002.parquet", "t=we%2Fird %22co%22/part-t-000001.parquet"},
			listFiles(t, dir))
	})
}

func committed(files []string) []string {
	var out []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".inprogress") {
			out = append(out, f)
		}
	}
	return out
}

func TestNoInProgressFileAfterClose(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestSink(t, nil)
	w, err := s.NewWriter("t", testSchema)
	require.NoError(t, err)
	b := record.NewBatch(testSchema.Len(), 50)
	for n := range 50 {
		fillRow(b.AppendRow(rowTime(n)), n)
	}
	require.NoError(t, w.Write(ctx, b))
	files := listFiles(t, dir)
	require.Len(t, files, 2)
	for _, f := range files {
		require.True(t, strings.HasPrefix(filepath.Base(f), ".part-t-") && strings.HasSuffix(f, ".parquet.inprogress"), f)
	}
	require.NoError(t, w.Close(ctx))
	for _, f := range listFiles(t, dir) {
		require.NotContains(t, f, "inprogress")
		require.False(t, strings.HasPrefix(filepath.Base(f), "."), f)
	}
	require.Error(t, w.Write(ctx, b), "write after close")
}

func TestExistingFilesAreNotReplaced(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestSink(t, func(c *Config) { c.Partition = "" })
	require.NoError(t, os.WriteFile(filepath.Join(dir, "part-t-000000.parquet"), []byte("earlier run"), 0o644))
	w, err := s.NewWriter("t", testSchema)
	require.NoError(t, err)
	b := record.NewBatch(testSchema.Len(), 1)
	fillRow(b.AppendRow(baseMs), 0)
	require.NoError(t, w.Write(ctx, b))
	require.NoError(t, w.Close(ctx))
	require.Equal(t, []string{"part-t-000000.parquet", "part-t-000001.parquet"}, listFiles(t, dir))
	old, err := os.ReadFile(filepath.Join(dir, "part-t-000000.parquet"))
	require.NoError(t, err)
	require.Equal(t, "earlier run", string(old))
}

func TestTypeMismatchWritesNothing(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestSink(t, nil)
	w, err := s.NewWriter("t", testSchema)
	require.NoError(t, err)
	b := record.NewBatch(testSchema.Len(), 2)
	fillRow(b.AppendRow(baseMs), 0)
	fillRow(b.AppendRow(baseMs), 1)
	b.Row(1)[5] = record.String("not a timestamp")
	require.ErrorContains(t, w.Write(ctx, b), `row 1 field "ts": string value in timestamp column`)
	require.Empty(t, listFiles(t, dir))
	require.NoError(t, w.Close(ctx))
}

func TestIntInFloatColumn(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestSink(t, func(c *Config) { c.Partition = "" })
	w, err := s.NewWriter("t", testSchema)
	require.NoError(t, err)
	b := record.NewBatch(testSchema.Len(), 1)
	r := b.AppendRow(baseMs)
	r[3] = record.Int(7)
	require.NoError(t, w.Write(ctx, b))
	require.NoError(t, w.Close(ctx))
	got := duckdb.Query(t, fmt.Sprintf(`SELECT f FROM read_parquet('%s/*.parquet')`, dir))
	require.Equal(t, []map[string]any{{"f": 7.0}}, got)
}

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewPedanticRegistry()
	cfg := DefaultConfig()
	cfg.Name = "out"
	cfg.Dir = t.TempDir()
	cfg.Partition = "t={tenant}"
	s, err := New(cfg, nil, reg)
	require.NoError(t, err)
	w, err := s.NewWriter("t", testSchema)
	require.NoError(t, err)
	b := record.NewBatch(testSchema.Len(), 10)
	for n := range 10 {
		fillRow(b.AppendRow(baseMs), n)
	}
	require.NoError(t, w.Write(ctx, b))
	require.Equal(t, map[string]float64{
		"streamd_parquet_open_files":                     2,
		"streamd_parquet_rows_total":                     10,
		"streamd_parquet_files_total":                    0,
		"streamd_parquet_bytes_total":                    0,
		"streamd_parquet_filtered_rows_total":            0,
		"streamd_parquet_filter_errors_total":            0,
		"streamd_parquet_partitions_committed_total":     0,
		"streamd_parquet_partition_commit_delay_seconds": 0,
		"streamd_parquet_partition_late_rows_total":      0,
		"streamd_parquet_invalid_nested_values_total":    0,
	}, gather(t, reg, "out"))
	require.NoError(t, w.Close(ctx))

	var size int64
	for _, f := range listFiles(t, cfg.Dir) {
		st, err := os.Stat(filepath.Join(cfg.Dir, f))
		require.NoError(t, err)
		size += st.Size()
	}
	require.Equal(t, map[string]float64{
		"streamd_parquet_open_files":                     0,
		"streamd_parquet_rows_total":                     10,
		"streamd_parquet_files_total":                    2,
		"streamd_parquet_bytes_total":                    float64(size),
		"streamd_parquet_filtered_rows_total":            0,
		"streamd_parquet_filter_errors_total":            0,
		"streamd_parquet_partitions_committed_total":     0,
		"streamd_parquet_partition_commit_delay_seconds": 0,
		"streamd_parquet_partition_late_rows_total":      0,
		"streamd_parquet_invalid_nested_values_total":    0,
	}, gather(t, reg, "out"))
}

// gather returns the value of every metric of one sink by name.
func gather(t *testing.T, reg prometheus.Gatherer, sink string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sink {
					out[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

func TestCompressionCodecs(t *testing.T) {
	for _, codec := range []string{"zstd", "snappy", "gzip", "none"} {
		t.Run(codec, func(t *testing.T) {
			ctx := context.Background()
			s, dir := newTestSink(t, func(c *Config) {
				c.Partition = ""
				c.Compression = codec
			})
			w, err := s.NewWriter("t", testSchema)
			require.NoError(t, err)
			b := record.NewBatch(testSchema.Len(), 20)
			for n := range 20 {
				fillRow(b.AppendRow(baseMs), n)
			}
			require.NoError(t, w.Write(ctx, b))
			require.NoError(t, w.Close(ctx))
			require.Equal(t, int64(20), parquetRows(t, filepath.Join(dir, "part-t-000000.parquet")))
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		err    string
	}{
		{"default with dir", func(*Config) {}, ""},
		{"no name", func(c *Config) { c.Name = "" }, "name is empty"},
		{"no dir", func(c *Config) { c.Dir = "" }, "dir is empty"},
		{"bad codec", func(c *Config) { c.Compression = "lzo" }, `compression: unknown codec "lzo"`},
		{"bad partition", func(c *Config) { c.Partition = "dt={date" }, "partition: unclosed"},
		{"absolute partition", func(c *Config) { c.Partition = "/x={date}" }, "partition"},
		{"zero roll size", func(c *Config) { c.RollSize = 0 }, "rollSize must be positive"},
		{"negative roll rows", func(c *Config) { c.RollRows = -1 }, "rollRows must not be negative"},
		{"negative roll age", func(c *Config) { c.RollAge = -time.Second }, "rollAge must not be negative"},
		{"zero row group", func(c *Config) { c.RowGroupSize = 0 }, "rowGroupSize must be positive"},
		{"zero page size", func(c *Config) { c.PageSize = 0 }, "pageSize must be positive"},
		{"zero dictionary size", func(c *Config) { c.DictionarySize = 0 }, "dictionarySize must be positive"},
		{"millisecond timestamps", func(c *Config) { c.TimestampUnit = "millis" }, ""},
		{"bad timestamp unit", func(c *Config) { c.TimestampUnit = "nanos" }, `timestampUnit must be micros or millis, got "nanos"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Dir = "/tmp/out"
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestNewWriterErrors(t *testing.T) {
	s, _ := newTestSink(t, func(c *Config) { c.Partition = "x={nope}" })
	_, err := s.NewWriter("t", testSchema)
	require.ErrorContains(t, err, "unknown field {nope}")
	_, err = s.NewWriter("", testSchema)
	require.ErrorContains(t, err, "task name is empty")
}
