package pipeline_test

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"

	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

// BenchmarkEndToEnd measures the whole pipeline of the line-monitoring use
// case: generator → JSON decode → keyBy machine+tag → 1-minute tumbling
// avg/max → zstd Parquet, Hive-partitioned. It reports records/s,
// records/s per core (GOMAXPROCS) and records per CPU-second of the whole
// process (user+sys, garbage collection included): on a shared machine the
// last is the steady per-core figure.
func BenchmarkEndToEnd(b *testing.B) {
	const perSplit = 250_000
	splits := runtime.GOMAXPROCS(0)
	b.ReportAllocs()
	cpu0 := processCPUSeconds()
	for b.Loop() {
		out := b.TempDir()
		doc := fmt.Sprintf(`
name: bench
http: {listen: "off"}
# The figure is the processing rate, without checkpoints.
checkpoint: {enabled: false}
sources:
  - name: points
    type: generator
    generator: {seed: 1, count: %d, splits: %d, machines: 1000, tags: 10, step: 1ms, outOfOrderness: 1s, startTime: "2026-01-01T00:00:00Z"}
    decode:
      fields:
        - {name: equipmentId, type: string, required: true}
        - {name: tag, type: string, required: true}
        - {name: value, type: float, required: true}
        - {name: quality, type: string}
        - {name: sourceId, path: meta.sourceId, type: string}
        - {name: ts, path: timestamp, type: timestamp, format: epoch_ms, required: true}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 2s}
stages:
  - name: w
    keyBy: [equipmentId, tag]
    window: {type: tumbling, size: 1m}
    aggregates:
      - {fn: avg, field: value}
      - {fn: max, field: value}
sinks:
  - {name: pq, input: w, type: parquet, parquet: {path: %q, partition: "dt={date}/hour={hour}"}}
`, perSplit, splits, out)
		cfg, err := pipeline.Parse([]byte(doc), nil)
		if err != nil {
			b.Fatal(err)
		}
		job, err := pipeline.Build(cfg, pipeline.Options{})
		if err != nil {
			b.Fatal(err)
		}
		rt, err := operator.New(job, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	cpu := processCPUSeconds() - cpu0
	total := float64(b.N * perSplit * splits)
	rate := total / b.Elapsed().Seconds()
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(rate/float64(runtime.GOMAXPROCS(0)), "records/s/core")
	if cpu > 0 {
		b.ReportMetric(total/cpu, "records/cpu-s")
	}
}

// processCPUSeconds is the CPU time (user and system) the process has used.
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
