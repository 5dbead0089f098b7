package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/internal/testenv"
)

// kafkaSource is the source block shared by the Kafka tests: short waits
// and heartbeats, so group changes are noticed within a second.
const kafkaSource = `
    type: kafka
    kafka:
      brokers: ["${BROKER}"]
      topics: [logs]
      group: ${GROUP}
      startOffset: earliest
      maxWait: 50ms
      sessionTimeout: 6s
      heartbeatInterval: 200ms
      commitInterval: 200ms
    decode:
      fields:
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
        - {name: id, type: int, required: true}
        - {name: service, type: string, required: true}
        - {name: level, type: string}
        - {name: latency_ms, type: float}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 1s}
`

// TestKafkaWindowsToParquetOnMinIO reads a 4-partition topic with a
// consumer group, computes 1-minute windows per service and level, writes
// them as Parquet to MinIO partitioned by day and hour, and compares every
// row read back by DuckDB with the windows computed from the records.
func TestKafkaWindowsToParquetOnMinIO(t *testing.T) {
	endpoint, ak, sk := testenv.StartMinIO(t)
	testenv.MinIOBucket(t, endpoint, ak, sk, "lake")
	brokers := testenv.StartKafka(t, "logs:4")

	const n = 12_000
	recs := make([]logRecord, n)
	values := make([][]byte, n)
	for i := range recs {
		recs[i] = makeLog(i, 40*time.Millisecond) // 8 minutes across 06:00
		values[i] = recs[i].JSON()
	}
	produceKafka(t, kafkaClient(t, brokers), "logs", 4, values)

	doc := `
name: kafka-windows
parallelism: 2
http: {listen: "off"}
checkpoint: {dir: "${CHK}", interval: 200ms, savepointOnStop: false}
sources:
  - name: logs` + kafkaSource + `
stages:
  - name: per-minute
    keyBy: [service, level]
    window: {type: tumbling, size: 1m}
    aggregates:
      - {fn: count, as: n}
      - {fn: avg, field: latency_ms, as: avg_latency}
      - {fn: max, field: latency_ms, as: max_latency}
sinks:
  - name: lake
    input: per-minute
    type: parquet
    parquet:
      path: s3://lake/logs/windows
      partition: dt={date}/hour={hour}
      s3: {endpoint: "${S3_ENDPOINT}", pathStyle: true, accessKey: "${S3_KEY}", secretKey: "${S3_SECRET}"}
`
	p := startPipeline(t, doc, map[string]string{"BROKER": brokers[0], "GROUP": "windows",
		"S3_ENDPOINT": endpoint, "S3_KEY": ak, "S3_SECRET": sk})
	waitFor(t, "all records read", func() bool { return p.read() >= n }, p)
	require.EqualValues(t, n, p.read(), "every record read once")
	p.stop(t)

	dir := downloadS3(t, endpoint, ak, sk, "lake", "logs/windows")
	want := expectLogWindows(recs)
	rows := duckdb.Query(t, fmt.Sprintf(`
		SELECT service, level, epoch_ms(window_start) AS start, epoch_ms(window_end) AS "end", n, avg_latency, max_latency, dt, hour
		FROM read_parquet('%s/**/*.parquet', hive_partitioning = true, hive_types = {'hour': VARCHAR})`, dir))
	require.Len(t, rows, len(want), "one row per window and key")
	for _, r := range rows {
		k := logKey{r["service"].(string), r["level"].(string), int64(r["start"].(float64))}
		w, ok := want[k]
		require.True(t, ok, "unexpected window %+v", k)
		require.EqualValues(t, k.start+60_000, r["end"], "end of %+v", k)
		require.EqualValues(t, w.n, r["n"], "count of %+v", k)
		require.InDelta(t, w.sum/float64(w.n), r["avg_latency"], 1e-9, "avg of %+v", k)
		require.InDelta(t, w.max, r["max_latency"], 1e-9, "max of %+v", k)
		ts := time.UnixMilli(k.start).UTC()
		require.Equal(t, ts.Format("2006-01-02"), r["dt"], "dt of %+v", k)
		require.Equal(t, ts.Format("15"), r["hour"], "hour of %+v", k)
	}
	hours := duckdb.Query(t, fmt.Sprintf(`SELECT DISTINCT hour FROM read_parquet('%s/**/*.parquet', hive_partitioning = true, hive_types = {'hour': VARCHAR}) ORDER BY hour`, dir))
	require.Equal(t, []map[string]any{{"hour": "05"}, {"hour": "06"}}, hours)
}

// TestKafkaInputFromKcat produces the input with kcat (librdkafka) and
// requires the pipeline to read every record exactly once.
func TestKafkaInputFromKcat(t *testing.T) {
	kcat := requireTool(t, "kcat", "scripts/install-kcat.sh")
	brokers := testenv.StartKafka(t, "logs:4")

	const n = 5000
	var in bytes.Buffer
	for i := range n {
		r := makeLog(i, time.Second)
		fmt.Fprintf(&in, "%s:%s\n", r.Service, r.JSON())
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-P", "-b", brokers[0], "-t", "logs", "-K:")
	cmd.Stdin = &in
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "kcat: %s", out)

	path := filepath.Join(t.TempDir(), "records.jsonl")
	p := startPipeline(t, `
name: from-kcat
http: {listen: "off"}
checkpoint: {dir: "${CHK}", interval: 200ms, savepointOnStop: false}
sources:
  - name: logs`+kafkaSource+`
sinks:
  - {name: raw, input: logs, type: file, file: {path: "${OUT}"}}
`, map[string]string{"BROKER": brokers[0], "GROUP": "kcat", "OUT": path})
	waitFor(t, "all records written", func() bool { return countLines(path) >= n }, p)
	splits := map[string]bool{}
	for _, s := range p.rt.Status().Splits {
		splits[s.Split] = true
	}
	p.stop(t)

	seen := make([]int, n)
	for _, r := range readJSONLines(t, path) {
		id := int(r["id"].(float64))
		seen[id]++
		require.Equal(t, makeLog(id, time.Second).Service, r["service"], "record %d", id)
	}
	for id, c := range seen {
		require.Equal(t, 1, c, "record %d read once", id)
	}
	require.Len(t, splits, 4, "kcat spread the keys over all partitions")
}

// TestKafkaGroupRebalance runs two pipelines in one consumer group, each
// with its own checkpoints: the second joins while records are produced
// and leaves again, twice, moving partitions both ways. A revoked
// partition is drained through a checkpoint that delivers its rows and
// commits its offset before the next owner starts, and the second member,
// back, resumes its partitions where the first left them rather than at
// its own older savepoint, so every record reaches the union of the
// outputs exactly once.
func TestKafkaGroupRebalance(t *testing.T) {
	brokers := testenv.StartKafka(t, "logs:4")
	cl := kafkaClient(t, brokers)
	dir := t.TempDir()
	doc := `
name: rebalance
http: {listen: "off"}
checkpoint: {dir: "${CHK}", interval: 200ms}
sources:
  - name: logs` + kafkaSource + `
sinks:
  - {name: raw, input: logs, type: file, delivery: exactlyOnce, file: {path: "${OUT}"}}
`
	env := func(out string) map[string]string {
		return map[string]string{"BROKER": brokers[0], "GROUP": "rebalance", "OUT": filepath.Join(dir, out), "CHK": filepath.Join(dir, out+".chk")}
	}

	// The producer writes batches of 100 records until told to stop.
	var (
		mu       sync.Mutex
		produced int
		stopProd = make(chan struct{})
		prodDone = make(chan error, 1)
	)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
		defer cancel()
		for i := 0; ; i += 100 {
			select {
			case <-stopProd:
				prodDone <- nil
				return
			case <-time.After(10 * time.Millisecond):
			}
			recs := make([]*kgo.Record, 100)
			for j := range recs {
				recs[j] = &kgo.Record{Topic: "logs", Partition: int32((i + j) % 4), Value: makeLog(i+j, time.Millisecond).JSON()}
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				prodDone <- err
				return
			}
			mu.Lock()
			produced = i + 100
			mu.Unlock()
		}
	}()
	producedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return produced
	}

	a := startPipeline(t, doc, env("a.jsonl"))
	waitFor(t, "the first member reads", func() bool { return a.read() > 500 }, a)
	for range 2 {
		// The same instance (its checkpoints, its output) joins again.
		b := startPipeline(t, doc, env("b.jsonl"))
		waitFor(t, "the second member gets partitions and reads", func() bool { return b.read() > 500 }, a, b)
		require.Less(t, len(a.rt.Status().Splits), 4, "the first member gave partitions away")
		b.stop(t)
		mark := producedNow()
		waitFor(t, "the first member takes all partitions back and reads on", func() bool {
			return len(a.rt.Status().Splits) == 4 && producedNow() > mark+2000
		}, a)
	}
	close(stopProd)
	require.NoError(t, <-prodDone)
	total := producedNow()
	waitFor(t, "every record written", func() bool {
		return countLines(filepath.Join(dir, "a.jsonl"))+countLines(filepath.Join(dir, "b.jsonl")) >= total && distinctIDs(t, dir) == total
	}, a)
	a.stop(t)

	seen := map[int]int{}
	for _, f := range []string{"a.jsonl", "b.jsonl"} {
		rows := readJSONLines(t, filepath.Join(dir, f))
		require.NotEmpty(t, rows, "%s wrote records", f)
		for _, r := range rows {
			seen[int(r["id"].(float64))]++
		}
	}
	dups := 0
	for id := range total {
		require.Positive(t, seen[id], "record %d lost", id)
		dups += seen[id] - 1
	}
	require.Len(t, seen, total, "no records beyond those produced")
	require.Zero(t, dups, "records delivered twice across the rebalances")
}

// distinctIDs counts the distinct record ids in the complete lines of the
// outputs in dir, which are still being written.
func distinctIDs(t testing.TB, dir string) int {
	ids := map[int64]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		for len(data) > 0 {
			line, rest, ok := bytes.Cut(data, []byte("\n"))
			if !ok {
				break
			}
			data = rest
			var r struct{ ID int64 }
			if json.Unmarshal(line, &r) == nil {
				ids[r.ID] = true
			}
		}
	}
	return len(ids)
}
