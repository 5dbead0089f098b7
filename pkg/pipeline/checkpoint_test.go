package pipeline_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/internal/s3proxy"
	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

const savepointPipeline = `
name: sp
parallelism: 2
batchSize: 128
http: {listen: "off"}
checkpoint: {dir: "${DIR}/checkpoints", interval: 150ms}
sources:
  - name: points
    type: generator
    generator:
      rate: ${RATE}
      seed: 11
      count: 5000
      splits: 2
      machines: 8
      tags: 3
      step: 20ms
      outOfOrderness: 500ms
      startTime: "2026-03-01T00:00:00Z"
    decode:
      fields:
        - {name: equipmentId, type: string}
        - {name: tag, type: string}
        - {name: value, type: float}
        - {name: ts, path: timestamp, type: timestamp, format: epoch_ms}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 1s}
stages:
  - name: w
    keyBy: [equipmentId, tag]
    window: {type: tumbling, size: 5s}
    aggregates:
      - {fn: count, as: n}
      - {fn: avg, field: value}
      - {fn: max, field: value}
sinks:
  - {name: out, input: w, type: file, file: {path: "${DIR}/results.jsonl"}}
`

func runPipeline(t *testing.T, dir, rate string, stopAfter int64) {
	t.Helper()
	runPipelineDoc(t, savepointPipeline, dir, rate, stopAfter, nil)
}

func runPipelineDoc(t *testing.T, doc, dir, rate string, stopAfter int64, reg prometheus.Registerer) {
	t.Helper()
	cfg, err := pipeline.Parse([]byte(doc), func(k string) (string, bool) {
		switch k {
		case "DIR":
			return dir, true
		case "RATE":
			return rate, true
		}
		return "", false
	})
	require.NoError(t, err)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	job, err := pipeline.Build(cfg, pipeline.Options{Logger: log, Registry: reg})
	require.NoError(t, err)
	rt, err := operator.New(job, log, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	if stopAfter > 0 {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			var read int64
			for _, s := range rt.Status().Splits {
				read += s.Records
			}
			if read >= stopAfter && rt.Coordinator().LastCompleted() > 1 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel() // as SIGTERM: savepoint, then stop
	}
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("pipeline did not stop")
	}
}

func sortedLines(t *testing.T, path string) []string {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	sort.Strings(lines)
	return lines
}

// TestSavepointRestoreMatchesUninterrupted stops a pipeline mid-stream (a
// savepoint at shutdown keeps open windows and positions), restarts it from
// the savepoint, and requires the combined output to equal, line for line,
// the output of a run that was never stopped.
func TestSavepointRestoreMatchesUninterrupted(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ref := t.TempDir()
	runPipeline(t, ref, "0", 0)
	want := sortedLines(t, filepath.Join(ref, "results.jsonl"))
	require.Greater(t, len(want), 50)

	dir := t.TempDir()
	runPipeline(t, dir, "4000", 4000) // stopped with a savepoint
	st, err := local.New(filepath.Join(dir, "checkpoints"))
	require.NoError(t, err)
	m, err := checkpoint.Latest(context.Background(), st, "pipelines/sp")
	require.NoError(t, err)
	require.True(t, m.Savepoint, "the last checkpoint is the shutdown savepoint")
	var stopped int64
	for _, s := range m.Splits {
		stopped += s.Next.Offset
	}
	require.Less(t, stopped, int64(10000), "the first run stopped before the end of the input")
	first := sortedLines(t, filepath.Join(dir, "results.jsonl"))
	require.Less(t, len(first), len(want), "the first run left windows open")

	runPipeline(t, dir, "0", 0) // restores the savepoint, runs to the end
	require.Equal(t, want, sortedLines(t, filepath.Join(dir, "results.jsonl")))
}

// TestCheckpointsThroughFaultyS3 stores checkpoints in S3 behind a proxy
// that fails, resets, loses and delays requests, with few retries so that
// some checkpoints really fail. The pipeline must keep running, count the
// failures, and — with results held until their checkpoint completes —
// produce across a stop and a restore exactly what an uninterrupted run does.
func TestCheckpointsThroughFaultyS3(t *testing.T) {
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket("chk"))
	s3srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer s3srv.Close()
	proxy, err := s3proxy.New(s3proxy.Config{Target: s3srv.URL, Seed: 7, ErrorRate: 0.2, ResetRate: 0.05, LostResponseRate: 0.05, DelayRate: 0.1, Delay: 20 * time.Millisecond})
	require.NoError(t, err)
	front := httptest.NewServer(proxy)
	defer front.Close()
	defer proxy.Close()

	doc := strings.Replace(savepointPipeline, `checkpoint: {dir: "${DIR}/checkpoints", interval: 150ms}`,
		`checkpoint:
  dir: s3://chk/pipelines
  interval: 100ms
  timeout: 5s
  s3: {endpoint: "`+front.URL+`", region: us-east-1, pathStyle: true, accessKey: ak, secretKey: sk, maxAttempts: 2, maxBackoff: 10ms}`, 1)
	doc = strings.Replace(doc, `type: file, file: {path: "${DIR}/results.jsonl"}}`, `type: file, delivery: exactlyOnce, file: {path: "${DIR}/results.jsonl"}}`, 1)
	require.Contains(t, doc, "s3://chk")
	require.Contains(t, doc, "exactlyOnce")

	ref := t.TempDir()
	runPipeline(t, ref, "0", 0)
	want := sortedLines(t, filepath.Join(ref, "results.jsonl"))

	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	runPipelineDoc(t, doc, dir, "4000", 4000, reg)
	failures := testutil.ToFloat64(counterNamed(t, reg, "streamd_checkpoint_failures_total"))
	t.Logf("first run: %v checkpoint failures; proxy injected %+v", failures, proxy.Counts())
	require.Positive(t, failures, "faults made some checkpoints fail")
	require.Positive(t, testutil.ToFloat64(counterNamed(t, reg, "streamd_checkpoints_completed_total")), "others completed")

	runPipelineDoc(t, doc, dir, "0", 0, prometheus.NewRegistry())
	got := sortedLines(t, filepath.Join(dir, "results.jsonl"))
	t.Logf("want %d lines, got %d", len(want), len(got))
	{
		counts := map[string]int{}
		for _, l := range got {
			counts[l]++
		}
		for _, l := range want {
			counts[l]--
		}
		n := 0
		for l, c := range counts {
			if c != 0 && n < 5 {
				t.Logf("%+d %s", c, l)
				n++
			}
		}
	}
	require.Equal(t, want, got)
}

func counterNamed(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: "copy"}, func() float64 { return mf.GetMetric()[0].GetCounter().GetValue() })
		}
	}
	t.Fatalf("metric %s not found", name)
	return nil
}

// A split read to its end before a checkpoint stays finished: the restored
// pipeline does not read it again (for Kinesis, a closed parent shard).
func TestFinishedSplitIsNotReadAgain(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&lines, `{"n":%d}`+"\n", i)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "once.jsonl"), []byte(lines.String()), 0o644))
	doc := fmt.Sprintf(`
name: finished
http: {listen: "off"}
checkpoint: {dir: %q, interval: 100ms}
sources:
  - name: once
    type: file
    file: {paths: [%q]}
    decode: {fields: [{name: n, type: int}]}
  - name: ticks
    type: generator
    generator: {rate: 200, count: 100000}
    decode: {fields: [{name: value, type: float}]}
sinks:
  - {name: out, input: once, type: file, file: {path: %q}}
`, filepath.Join(dir, "chk"), filepath.Join(dir, "once.jsonl"), filepath.Join(dir, "out.jsonl"))
	run := func() {
		cfg, err := pipeline.Parse([]byte(doc), nil)
		require.NoError(t, err)
		job, err := pipeline.Build(cfg, pipeline.Options{})
		require.NoError(t, err)
		rt, err := operator.New(job, nil, nil)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rt.Run(ctx) }()
		first := rt.Coordinator().LastCompleted()
		require.Eventually(t, func() bool { return rt.Coordinator().LastCompleted() >= first+2 }, 20*time.Second, 10*time.Millisecond)
		cancel()
		require.NoError(t, <-done)
	}
	run()
	st, err := local.New(filepath.Join(dir, "chk"))
	require.NoError(t, err)
	m, err := checkpoint.Latest(context.Background(), st, "pipelines/finished")
	require.NoError(t, err)
	var finished bool
	for _, s := range m.Splits {
		if s.Source == "once" {
			finished = s.Finished
		}
	}
	require.True(t, finished, "the manifest records the file as read to its end")
	run()
	require.Len(t, sortedLines(t, filepath.Join(dir, "out.jsonl")), 50, "the file is not read again after the restore")
}

const boundedPipeline = `
name: bounded
parallelism: 2
batchSize: 128
http: {listen: "off"}
checkpoint:
  dir: "${DIR}/checkpoints"
  interval: 100ms
  savepointOnStop: ${SAVEPOINT}
sources:
  - name: points
    type: generator
    generator:
      rate: ${RATE}
      seed: 11
      count: ${COUNT}
      splits: 2
      machines: 8
      tags: 3
      step: 20ms
      outOfOrderness: 500ms
      startTime: "2026-03-01T00:00:00Z"
    decode:
      fields:
        - {name: equipmentId, type: string}
        - {name: tag, type: string}
        - {name: value, type: float}
        - {name: ts, path: timestamp, type: timestamp, format: epoch_ms}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 1s}
stages:
  - name: w
    keyBy: [equipmentId, tag]
    window: {type: tumbling, size: 5s}
    aggregates:
      - {fn: count, as: n}
      - {fn: max, field: value, as: hi}
sinks:
  - {name: out, input: w, type: parquet, parquet: {path: "${DIR}/out", rollAge: 1s}}
`

// runBounded runs boundedPipeline in dir with the given generator count and
// rate; with stopAfter > 0 it stops it (as SIGTERM does) once that many
// records were read and a checkpoint completed, else it runs to the end.
func runBounded(t *testing.T, dir string, count, rate string, savepoint bool, stopAfter int64) {
	t.Helper()
	env := map[string]string{"DIR": dir, "COUNT": count, "RATE": rate, "SAVEPOINT": fmt.Sprint(savepoint)}
	cfg, err := pipeline.Parse([]byte(boundedPipeline), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	job, err := pipeline.Build(cfg, pipeline.Options{Logger: log})
	require.NoError(t, err)
	rt, err := operator.New(job, log, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	if stopAfter > 0 {
		require.Eventually(t, func() bool {
			var read int64
			for _, s := range rt.Status().Splits {
				read += s.Records
			}
			return read >= stopAfter && rt.Coordinator().LastCompleted() > 1
		}, 30*time.Second, 10*time.Millisecond)
		cancel()
	}
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("pipeline did not stop")
	}
}

// windowRows reads the published window results under dir/out with DuckDB:
// one "machine tag start revision n hi" line per row, sorted.
func windowRows(t *testing.T, dir string) []string {
	t.Helper()
	published := 0
	_ = filepath.WalkDir(filepath.Join(dir, "out"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".parquet") && !strings.HasPrefix(d.Name(), ".") {
			published++
		}
		return nil
	})
	if published == 0 {
		return nil
	}
	rows := duckdb.Query(t, fmt.Sprintf(`SELECT equipmentId AS m, tag, epoch_ms(window_start) AS ws, revision, n, hi
		FROM read_parquet('%s/out/**/*.parquet') ORDER BY ALL`, dir))
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%v %v %v %v %v %v", r["m"], r["tag"], r["ws"], r["revision"], r["n"], r["hi"]))
	}
	sort.Strings(out)
	return out
}

// A bounded run after a savepoint ends in a final checkpoint covering what
// it published: a later run restores that, not the older savepoint, and
// publishes nothing twice (before, the bounded run fired the open windows
// and published them with no checkpoint, and the next run restored the
// savepoint and published those windows again).
func TestBoundedRunAfterSavepoint(t *testing.T) {
	ref := t.TempDir()
	runBounded(t, ref, "3000", "0", true, 0)
	want := windowRows(t, ref)
	require.Greater(t, len(want), 50)

	dir := t.TempDir()
	runBounded(t, dir, "1000000", "4000", true, 2000) // stopped with a savepoint
	require.Less(t, len(windowRows(t, dir)), len(want), "the first run left windows open")
	runBounded(t, dir, "3000", "0", true, 0) // restores the savepoint, reads to the end
	requireSameRows(t, want, windowRows(t, dir), "the bounded run continues the savepoint exactly")
	st, err := local.New(filepath.Join(dir, "checkpoints"))
	require.NoError(t, err)
	m, err := checkpoint.Latest(context.Background(), st, "pipelines/bounded")
	require.NoError(t, err)
	require.True(t, m.Final, "the bounded run ended in a final checkpoint")
	runBounded(t, dir, "3000", "0", true, 0) // a normal run after it
	requireSameRows(t, want, windowRows(t, dir), "a run after the final checkpoint publishes nothing again")
}

// A stop that drains (savepointOnStop: false) fires the open windows and
// ends in a final checkpoint: the next run reads on after the drained
// records, so every record is counted exactly once over both runs — a
// window open at the drain is published in two parts — and no row twice.
func TestDrainEndsInFinalCheckpoint(t *testing.T) {
	ref := t.TempDir()
	runBounded(t, ref, "3000", "0", false, 0)
	want := countsByWindow(t, ref)

	dir := t.TempDir()
	runBounded(t, dir, "1000000", "4000", false, 2000) // drained
	first := windowRows(t, dir)
	runBounded(t, dir, "3000", "0", false, 0)
	got := countsByWindow(t, dir)
	var diffs []string
	for k, n := range want {
		if got[k] != n {
			diffs = append(diffs, fmt.Sprintf("%s: %v, want %v", k, got[k], n))
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %v, want none", k, n))
		}
	}
	sort.Strings(diffs)
	require.Empty(t, diffs[:min(5, len(diffs))], "every record counted once (%d windows differ)", len(diffs))
	// The drain fired the windows it had open, so a window the drain cut
	// has a result from each run (their counts add up, as checked above);
	// within a run, each window has one result.
	second := map[string]int{}
	for _, r := range windowRows(t, dir) {
		second[r]++
	}
	for _, r := range first {
		second[r]--
	}
	for _, run := range []map[string]int{countRows(first), second} {
		seen := map[string]bool{}
		for r, n := range run {
			w := strings.Join(strings.Fields(r)[:3], " ")
			for range n {
				require.False(t, seen[w], "window %s published twice in one run", w)
				seen[w] = true
			}
		}
	}
}

// countRows counts each row of rows.
func countRows(rows []string) map[string]int {
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r]++
	}
	return out
}

// requireSameRows requires got to be the multiset want, reporting a few
// differences.
func requireSameRows(t *testing.T, want, got []string, msg string) {
	t.Helper()
	counts := map[string]int{}
	for _, r := range got {
		counts[r]++
	}
	for _, r := range want {
		counts[r]--
	}
	var diffs []string
	for r, c := range counts {
		if c != 0 {
			diffs = append(diffs, fmt.Sprintf("%+d %s", c, r))
		}
	}
	sort.Strings(diffs)
	require.Empty(t, diffs[:min(5, len(diffs))], "%s: %d rows, want %d; %d rows differ", msg, len(got), len(want), len(diffs))
}

// countsByWindow sums the published counts per key and window.
func countsByWindow(t *testing.T, dir string) map[string]float64 {
	t.Helper()
	rows := duckdb.Query(t, fmt.Sprintf(`SELECT equipmentId AS m, tag, epoch_ms(window_start) AS ws, sum(n) AS n
		FROM read_parquet('%s/out/**/*.parquet') GROUP BY ALL`, dir))
	out := make(map[string]float64, len(rows))
	for _, r := range rows {
		out[fmt.Sprintf("%v %v %v", r["m"], r["tag"], r["ws"])] = r["n"].(float64)
	}
	return out
}
