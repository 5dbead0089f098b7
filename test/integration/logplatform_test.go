package integration_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/internal/parquetcheck"
	"github.com/streamd/streamd/internal/testenv"
	s3store "github.com/streamd/streamd/pkg/checkpoint/store/s3"
	"github.com/streamd/streamd/pkg/record"
)

// rawLogColumns are the columns of the example's raw-logs sink.
var rawLogColumns = []parquetcheck.Column{
	{Name: "ts", Kind: parquetcheck.TimestampMicros},
	{Name: "service", Kind: parquetcheck.String},
	{Name: "level", Kind: parquetcheck.String},
	{Name: "host", Kind: parquetcheck.String},
	{Name: "path", Kind: parquetcheck.String},
	{Name: "status", Kind: parquetcheck.Int},
	{Name: "latency_ms", Kind: parquetcheck.Float},
	{Name: "msg", Kind: parquetcheck.String},
}

// rawLogRow is what the raw-logs sink must hold for a record, computed
// from the record, not from the pipeline's output.
func rawLogRow(r logRecord) []*string {
	lat, _ := strconv.ParseFloat(fmt.Sprintf("%.3f", r.LatencyMs), 64)
	vals := []record.Value{
		record.Timestamp(r.TS * 1000),
		record.String(r.Service),
		record.String(r.Level),
		record.String(fmt.Sprintf("web-%02d", r.ID%16)),
		record.String(fmt.Sprintf("/api/v1/orders/%d", r.ID%1000)),
		record.Int(int64(r.Status)),
		record.Float(lat),
		record.String("request served to client"),
	}
	row := make([]*string, len(vals))
	for i, v := range vals {
		row[i] = parquetcheck.Canon(v)
	}
	return row
}

// TestLogPlatformExampleOnMinIO runs examples/kafka-logs-to-s3.yaml as
// shipped against kfake and MinIO with records spanning four hours, and
// checks the raw-logs output of every hour the watermark passed: a
// _SUCCESS and a manifest whose files, rows and event-time bounds match
// the records of that hour; zstd; rows sorted by service and time;
// one file per task and hour; and every file read back by DuckDB,
// hyparquet and arrow-rs equal to the records, value by value.
func TestLogPlatformExampleOnMinIO(t *testing.T) {
	parquetcheck.Require(t)
	endpoint, ak, sk := testenv.StartMinIO(t)
	testenv.MinIOBucket(t, endpoint, ak, sk, "lake")
	brokers := testenv.StartKafka(t, "logs:4")

	const n = 40_000
	recs := make([]logRecord, n)
	values := make([][]byte, n)
	for i := range recs {
		recs[i] = makeLog(i, 200*time.Millisecond) // 05:57 to 08:10
		values[i] = recs[i].JSON()
	}
	produceKafka(t, kafkaClient(t, brokers), "logs", 4, values)

	doc, err := os.ReadFile(filepath.Join("..", "..", "examples", "kafka-logs-to-s3.yaml"))
	require.NoError(t, err)
	// The example writes dead letters below ./out.
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Join("out", "kafka-logs-to-s3")) })
	p := startPipeline(t, string(doc), map[string]string{
		"KAFKA_BROKER": brokers[0], "OUTPUT": "s3://lake/logs", "CHECKPOINTS": "s3://lake/checkpoints",
		"DEADLETTERS": filepath.Join(t.TempDir(), "deadletters.jsonl"), "S3_ENDPOINT": endpoint,
		"S3_ACCESS_KEY": ak, "S3_SECRET_KEY": sk, "STREAMD_LISTEN": "off",
	})
	sc := s3store.DefaultConfig()
	sc.Bucket, sc.Endpoint, sc.PathStyle, sc.AccessKey, sc.SecretKey = "lake", endpoint, true, ak, sk
	st, err := s3store.New(sc, nil, nil)
	require.NoError(t, err)
	waitFor(t, "all records read", func() bool { return p.read() >= n }, p)
	hours := []string{"05", "06", "07"}
	waitFor(t, "hours 05 to 07 committed", func() bool {
		for _, h := range hours {
			objs, err := st.List(t.Context(), "logs/raw/dt=2026-01-01/hour="+h+"/_SUCCESS")
			if err != nil || len(objs) == 0 {
				return false
			}
		}
		return true
	}, p)
	require.EqualValues(t, n, p.read())
	p.stop(t)

	dir := downloadS3(t, endpoint, ak, sk, "lake", "logs/raw")
	var files []string
	var want [][]*string
	for _, h := range hours {
		hdir := filepath.Join(dir, "dt=2026-01-01", "hour="+h)
		require.FileExists(t, filepath.Join(hdir, "_SUCCESS"))
		var m struct {
			Partition, Start, End, MinEventTime, MaxEventTime string
			Rows, LateRecords                                 int64
			Files                                             []struct {
				Name        string
				Rows, Bytes int64
			}
			SourceOffsets []struct {
				Source, Split, First, Last string
			}
		}
		b, err := os.ReadFile(filepath.Join(hdir, "_manifest.json"))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &m))

		var inHour []logRecord
		for _, r := range recs {
			if time.UnixMilli(r.TS).UTC().Format("15") == h {
				inHour = append(inHour, r)
				want = append(want, rawLogRow(r))
			}
		}
		// Record i went to partition i%4 at offset i/4: the manifest's
		// range of each partition covers the hour's records there, and is
		// wider only by the reads that straddle the hour (at most a batch
		// of 1,024 records on either side).
		exact := map[string][2]int64{}
		for i, r := range recs {
			if time.UnixMilli(r.TS).UTC().Format("15") != h {
				continue
			}
			split, off := fmt.Sprintf("logs/%d", i%4), int64(i/4)
			e, ok := exact[split]
			if !ok {
				e = [2]int64{off, off}
			}
			exact[split] = [2]int64{min(e[0], off), max(e[1], off)}
		}
		require.Len(t, m.SourceOffsets, len(exact), "one range per partition of the topic: %+v", m.SourceOffsets)
		for _, so := range m.SourceOffsets {
			require.Equal(t, "logs", so.Source)
			e, ok := exact[so.Split]
			require.True(t, ok, "split %s", so.Split)
			first, err := strconv.ParseInt(so.First, 10, 64)
			require.NoError(t, err)
			last, err := strconv.ParseInt(so.Last, 10, 64)
			require.NoError(t, err)
			require.LessOrEqual(t, first, e[0], "hour %s %s", h, so.Split)
			require.GreaterOrEqual(t, last, e[1], "hour %s %s", h, so.Split)
			require.Less(t, e[0]-first, int64(1024), "hour %s %s", h, so.Split)
			require.Less(t, last-e[1], int64(1024), "hour %s %s", h, so.Split)
		}
		require.Equal(t, "dt=2026-01-01/hour="+h, m.Partition)
		require.EqualValues(t, len(inHour), m.Rows, "rows of hour %s", h)
		require.Equal(t, time.UnixMilli(inHour[0].TS).UTC().Format("2006-01-02T15:04:05.000Z"), m.MinEventTime)
		require.Equal(t, time.UnixMilli(inHour[len(inHour)-1].TS).UTC().Format("2006-01-02T15:04:05.000Z"), m.MaxEventTime)
		onDisk, err := filepath.Glob(filepath.Join(hdir, "*.parquet"))
		require.NoError(t, err)
		var names []string
		var sizes []int64
		for _, f := range m.Files {
			names = append(names, f.Name)
			fi, err := os.Stat(filepath.Join(hdir, f.Name))
			require.NoError(t, err)
			require.Equal(t, fi.Size(), f.Bytes)
			sizes = append(sizes, f.Bytes)
		}
		for i := range onDisk {
			onDisk[i] = filepath.Base(onDisk[i])
		}
		require.ElementsMatch(t, onDisk, names, "the manifest of hour %s lists its files", h)
		require.LessOrEqual(t, len(names), 4, "at most one file per split task and hour")
		t.Logf("hour %s: %d files, %d rows, sizes %v bytes", h, len(names), m.Rows, sizes)
		for _, f := range onDisk {
			files = append(files, filepath.Join(hdir, f))
		}
	}
	entries, err := os.ReadDir(filepath.Join(dir, "dt=2026-01-01"))
	require.NoError(t, err)
	for _, e := range entries {
		if !slices.Contains([]string{"hour=05", "hour=06", "hour=07"}, e.Name()) {
			require.NoFileExists(t, filepath.Join(dir, "dt=2026-01-01", e.Name(), "_SUCCESS"), "%s is not complete", e.Name())
		}
	}

	codecs := duckdb.Query(t, fmt.Sprintf(`SELECT DISTINCT compression FROM parquet_metadata('%s/dt=2026-01-01/hour=0[567]/*.parquet')`, dir))
	require.Equal(t, []map[string]any{{"compression": "ZSTD"}}, codecs)
	unsorted := duckdb.Query(t, fmt.Sprintf(`SELECT count(*) AS n FROM (
		SELECT service, ts, lag(service) OVER w AS ps, lag(ts) OVER w AS pts
		FROM read_parquet('%s/dt=2026-01-01/hour=0[567]/*.parquet', filename=true, file_row_number=true)
		WINDOW w AS (PARTITION BY filename ORDER BY file_row_number))
		WHERE ps > service OR (ps = service AND pts > ts)`, dir))
	require.Equal(t, 0.0, unsorted[0]["n"], "rows sorted by service, then ts")

	rep := parquetcheck.Check(t, files, parquetcheck.Spec{
		Columns: rawLogColumns, Rows: want, Codec: "ZSTD", Dictionary: true, SortBy: []int{1, 0},
	})
	t.Logf("%d files, %d row groups, %d rows read back by duckdb, hyparquet and arrow-rs", rep.Files, rep.RowGroups, rep.Rows)
}
