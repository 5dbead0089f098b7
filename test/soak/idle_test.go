package soak_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/modroot"
	"github.com/streamd/streamd/internal/testenv"
)

// BenchmarkIdleRSS reports what an idle Kafka pipeline costs in memory:
// the daemon (built as the soak test builds it) runs
// examples/kafka-logs-to-s3.yaml (a consumer group on a 4-partition
// topic, a window stage, two Parquet sinks, dead letters, checkpoints
// every 10 s) with local directories for its output, against an in-process
// Kafka server and a topic with no records. Once ready it is sampled every
// second for STREAMD_IDLE_SAMPLES seconds (default 20; checkpoints keep
// completing meanwhile); rss-MB is the peak resident size and
// live-heap-MB the live heap the last collection found.
func BenchmarkIdleRSS(b *testing.B) {
	samples := 20
	if v := os.Getenv("STREAMD_IDLE_SAMPLES"); v != "" {
		_, err := fmt.Sscan(v, &samples)
		require.NoError(b, err, "STREAMD_IDLE_SAMPLES")
	}
	root, err := modroot.Dir()
	require.NoError(b, err)
	bin := buildDaemon(b)
	brokers := testenv.StartKafka(b, "logs:4")

	var peak, heap int64
	for b.Loop() {
		peak, heap = idleRun(b, bin, filepath.Join(root, "examples", "kafka-logs-to-s3.yaml"), brokers[0], samples)
	}
	b.ReportMetric(float64(peak)/(1<<20), "rss-MB")
	b.ReportMetric(float64(heap)/(1<<20), "live-heap-MB")
}

// idleRun runs the daemon until it is ready, samples it, stops it with
// SIGTERM and returns its peak resident size and its last live heap.
func idleRun(b *testing.B, bin, config, broker string, samples int) (peak, heap int64) {
	b.Helper()
	dir := b.TempDir()
	addr := freeAddr(b)
	d := startDaemon(b, bin, config, dir,
		"STREAMD_LISTEN="+addr,
		"KAFKA_BROKER="+broker,
		"OUTPUT="+filepath.Join(dir, "out"),
		"CHECKPOINTS="+filepath.Join(dir, "checkpoints"),
		"DEADLETTERS="+filepath.Join(dir, "deadletters.jsonl"),
	)
	ready := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-d.exited:
			b.Fatalf("streamd exited: %v; log:\n%s", err, d.log())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(ready) {
			b.Fatalf("streamd not ready within a minute; log:\n%s", d.log())
		}
	}
	for range samples {
		time.Sleep(time.Second)
		rss, err := residentBytes(d.cmd.Process.Pid)
		require.NoError(b, err)
		peak = max(peak, rss)
	}
	heap, err := liveHeap(addr)
	require.NoError(b, err)
	d.stop(b, time.Minute)
	return peak, heap
}
