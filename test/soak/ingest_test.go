package soak_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/source/generator"
)

// ingestConfig reads the line-monitoring points of a 4-partition topic
// with a consumer group and writes them as they are to zstd Parquet, one
// directory per hour: Kafka to Parquet with nothing in between.
const ingestConfig = `
name: ingest
http: {listen: "${STREAMD_LISTEN}"}
checkpoint: {dir: "${CHECKPOINTS}", interval: 10s, savepointOnStop: true}
sources:
  - name: points
    type: kafka
    kafka: {brokers: ["${KAFKA_BROKER}"], topics: [points], group: ingest, startOffset: earliest}
    decode:
      fields:
        - {name: equipmentId, type: string, required: true}
        - {name: tag, type: string, required: true}
        - {name: value, type: float, required: true}
        - {name: quality, type: string}
        - {name: sourceId, path: meta.sourceId, type: string}
        - {name: seq, path: meta.sequenceNumber, type: int, required: true}
        - {name: ts, path: timestamp, type: timestamp, format: epoch_ms, required: true}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 2s}
sinks:
  - {name: pq, input: points, type: parquet, parquet: {path: "${OUTPUT}", partition: "dt={date}/hour={hour}"}}
`

// BenchmarkKafkaToParquet measures the daemon (built as the soak test
// builds it) consuming STREAMD_INGEST_RECORDS (default 2,000,000) JSON
// points of about 200 bytes from an in-process Kafka server into zstd
// Parquet: peak-RSS-MB is the process's peak resident size (getrusage),
// cpu-s its user and system CPU from start to exit (startup, the final
// savepoint that publishes the files, and shutdown included), and
// records/cpu-s the records per CPU-second. DuckDB then counts the rows of
// the published files: every record, once.
func BenchmarkKafkaToParquet(b *testing.B) {
	records := int64(2_000_000)
	if v := os.Getenv("STREAMD_INGEST_RECORDS"); v != "" {
		var err error
		records, err = strconv.ParseInt(v, 10, 64)
		require.NoError(b, err, "STREAMD_INGEST_RECORDS")
	}
	dir := b.TempDir()
	bin := buildDaemon(b)
	config := filepath.Join(dir, "ingest.yaml")
	require.NoError(b, os.WriteFile(config, []byte(ingestConfig), 0o600))
	brokers := testenv.StartKafka(b, "points:4")
	produce(b, brokers, records)

	var peak, cpu float64
	for b.Loop() {
		peak, cpu = ingestRun(b, bin, config, brokers[0], records)
	}
	b.ReportMetric(peak/(1<<20), "peak-RSS-MB")
	b.ReportMetric(cpu, "cpu-s")
	b.ReportMetric(float64(records)/cpu, "records/cpu-s")
}

// produce writes records generator points round-robin over the topic's
// partitions.
func produce(b *testing.B, brokers []string, records int64) {
	b.Helper()
	gen, err := generator.New(generator.Config{Seed: 1, Splits: 1, Machines: 1000, Tags: 10,
		Step: time.Millisecond, OutOfOrderness: time.Second, StartTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(b, err)
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("points"),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	require.NoError(b, err)
	defer client.Close()
	const chunk = 20_000
	batch := make([]*kgo.Record, 0, chunk)
	for n := int64(0); n < records; n++ {
		batch = append(batch, &kgo.Record{Value: gen.Record(0, n)})
		if len(batch) == chunk || n == records-1 {
			require.NoError(b, client.ProduceSync(context.Background(), batch...).FirstErr())
			batch = batch[:0]
		}
	}
}

// ingestRun runs the daemon until it has read every record, stops it with
// SIGTERM and returns its peak resident size and CPU time; the published
// files must hold every record once.
func ingestRun(b *testing.B, bin, config, broker string, records int64) (peak, cpu float64) {
	b.Helper()
	dir := b.TempDir()
	addr := freeAddr(b)
	d := startDaemon(b, bin, config, dir,
		"STREAMD_LISTEN="+addr,
		"KAFKA_BROKER="+broker,
		"OUTPUT="+filepath.Join(dir, "out"),
		"CHECKPOINTS="+filepath.Join(dir, "checkpoints"),
	)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		if n, err := sourceRecords(addr); err == nil && n >= records {
			break
		}
		select {
		case err := <-d.exited:
			b.Fatalf("streamd exited: %v; log:\n%s", err, d.log())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("streamd did not read %d records within 10 minutes; log:\n%s", records, d.log())
		}
	}
	d.stop(b, 2*time.Minute)
	st := d.cmd.ProcessState
	cpu = (st.UserTime() + st.SystemTime()).Seconds()
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		peak = float64(ru.Maxrss) * 1024 // kilobytes on Linux
	}

	b.StopTimer()
	rows := duckdb.Query(b, fmt.Sprintf(`SELECT count(*) AS n, count(DISTINCT seq) AS seqs, min(seq) AS lo, max(seq) AS hi
		FROM read_parquet('%s/**/*.parquet')`, filepath.Join(dir, "out")))
	require.Len(b, rows, 1)
	want := map[string]any{"n": float64(records), "seqs": float64(records), "lo": float64(0), "hi": float64(records - 1)}
	require.Equal(b, want, rows[0], "the published files hold every record once")
	b.StartTimer()
	return peak, cpu
}

// sourceRecords sums streamd_source_records_total over the splits.
func sourceRecords(addr string) (int64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "streamd_source_records_total{") {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, err
		}
		sum += f
	}
	return int64(sum), sc.Err()
}
