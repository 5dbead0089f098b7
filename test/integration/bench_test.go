package integration_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/testenv"
)

// benchRecords is how many records BenchmarkKafkaToParquetOnMinIO
// pre-produces: STREAMD_BENCH_RECORDS, else 1,000,000 (100,000 with -short).
func benchRecords(b *testing.B) int {
	if v := os.Getenv("STREAMD_BENCH_RECORDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("STREAMD_BENCH_RECORDS=%q: want a positive integer", v)
		}
		return n
	}
	if testing.Short() {
		return 100_000
	}
	return 1_000_000
}

// BenchmarkKafkaToParquetOnMinIO measures the log-platform path: a
// 4-partition topic of ~200-byte JSON log records, pre-produced, read by a
// pipeline (kafka source → JSON decode → zstd Parquet on MinIO partitioned
// by day and hour, no windows) from start until every record is read and
// every file is closed and uploaded, once with unsorted files and once
// sorted by service and time (sortBy). It reports records/s, records/s per
// core (GOMAXPROCS) and MB/s of message values.
func BenchmarkKafkaToParquetOnMinIO(b *testing.B) {
	n := benchRecords(b)
	endpoint, ak, sk := testenv.StartMinIO(b)
	testenv.MinIOBucket(b, endpoint, ak, sk, "bench")
	brokers := testenv.StartKafka(b, "logs:4")

	cl := kafkaClient(b, brokers, kgo.ProducerLinger(5*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var bytes int64
	var (
		mu       sync.Mutex
		firstErr error
	)
	for i := range n {
		v := makeLog(i, 5*time.Millisecond).JSON()
		bytes += int64(len(v))
		cl.Produce(ctx, &kgo.Record{Topic: "logs", Partition: int32(i % 4), Value: v}, func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	err := cl.Flush(ctx)
	mu.Lock()
	err = errors.Join(err, firstErr)
	mu.Unlock()
	if err != nil {
		b.Fatalf("pre-produce: %v", err)
	}

	run := 0
	for _, bc := range []struct{ name, layout string }{
		{"unsorted", ""},
		{"sorted", "      sortBy: [service, ts]\n      rowGroupSize: 64MiB\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				run++
				doc := fmt.Sprintf(`
name: bench-kafka-parquet
http: {listen: "off"}
checkpoint: {enabled: false}
batchSize: 4096
sources:
  - name: logs
    type: kafka
    kafka: {brokers: ["%s"], topics: [logs], startOffset: earliest, maxBytes: 16777216}
    decode:
      fields:
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
        - {name: id, type: int}
        - {name: service, type: string, required: true}
        - {name: level, type: string}
        - {name: host, type: string}
        - {name: path, type: string}
        - {name: status, type: int}
        - {name: latency_ms, type: float}
        - {name: msg, type: string}
        - {name: trace, type: string}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 1s}
sinks:
  - name: lake
    input: logs
    type: parquet
    parquet:
      path: s3://bench/run-%d
      partition: dt={date}/hour={hour}
      compression: zstd
%s      s3: {endpoint: "%s", pathStyle: true, accessKey: "%s", secretKey: "%s"}
`, brokers[0], run, bc.layout, endpoint, ak, sk)
				p := startPipeline(b, doc, nil)
				waitFor(b, "all records read", func() bool { return p.read() >= int64(n) }, p)
				p.stop(b)
			}
			elapsed := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(n)/elapsed, "records/s")
			b.ReportMetric(float64(n)/elapsed/float64(runtime.GOMAXPROCS(0)), "records/s/core")
			b.ReportMetric(float64(bytes)/1e6/elapsed, "MB/s")
			b.ReportMetric(float64(bytes)/float64(n), "bytes/record")
		})
	}
}
