package nexmark_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
	"github.com/streamd/streamd/pkg/record"
)

// benchQueries are the queries measured, in the order of the table in
// README.md.
var benchQueries = []string{"q0", "q1", "q2", "q5", "q7", "q10", "q11", "q12", "q14", "q15", "q16", "q17", "q21", "q22"}

// benchEvents is the input size: NEXMARK_EVENTS, default 200,000 (enough
// for a figure within a few percent; `make test` runs every benchmark once).
func benchEvents(b *testing.B) int64 {
	if s := os.Getenv("NEXMARK_EVENTS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("NEXMARK_EVENTS=%q: want a positive number", s)
		}
		return n
	}
	return 200_000
}

var (
	benchOnce  sync.Once
	benchDir   string
	benchInput string
)

// TestMain removes the benchmark input, which is written once per process,
// and prints the table of the benchmarks that ran (printTable).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		printTable(os.Stdout)
	}
	if benchDir != "" {
		_ = os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// input writes the benchmark's events at the reference rate (10,000 per
// second of event time) once.
func input(b *testing.B) string {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nexmark-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = dir
		benchInput = writeEvents(b, dataset{name: "bench", events: benchEvents(b), rate: 10_000}, dir)
	})
	if benchInput == "" {
		b.Fatal("no benchmark input")
	}
	return benchInput
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS returns memory the heap no longer uses to the system and
// resets the process's peak resident set size (Linux: clear_refs 5), so
// peakRSS measures one benchmark. It reports false where that is not
// possible.
func resetPeakRSS() bool {
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS is the peak resident set size since resetPeakRSS, in bytes.
func peakRSS() (int64, bool) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// report prints events per wall-clock second and per CPU-second of the
// whole process (GC and every goroutine included): with -cpu 1 the latter
// is the per-core figure, and it is less disturbed by other work on a
// shared machine than the wall-clock one; cpu-s/op is the CPU time of one
// run over all events. With rss, it also prints the peak resident set size
// of the run.
func report(b *testing.B, events int64, cpu0 time.Duration, rss bool) {
	total := float64(events) * float64(b.N)
	cpu := (cpuTime(b) - cpu0).Seconds()
	r := result{perCPU: total / cpu, cpu: cpu / float64(b.N), rssMB: -1}
	b.ReportMetric(total/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(r.perCPU, "events/cpu-s")
	b.ReportMetric(r.cpu, "cpu-s/op")
	if peak, ok := peakRSS(); ok && rss {
		r.rssMB = float64(peak) / (1 << 20)
		b.ReportMetric(r.rssMB, "peak-RSS-MB")
	}
	b.ReportMetric(0, "ns/op")
	keepResult(b.Name(), r)
}

// BenchmarkNexmark runs each query file over JSON lines, as
// `streamd run` would, into its discard sink; "decode" is the JSON decode
// of q0's fields alone, and native/… the same queries on the
// pre-decoded nexmark source (no JSON). Run with -cpu 1 for per-core
// figures; see README.md. peak-RSS-MB is the process's peak resident set
// during the benchmark, the input file held in memory included for
// "decode".
func BenchmarkNexmark(b *testing.B) {
	in := input(b)
	events := benchEvents(b)
	b.Run("decode", func(b *testing.B) {
		data, err := os.ReadFile(in)
		if err != nil {
			b.Fatal(err)
		}
		cfg, err := pipeline.Load("q0.yaml", nil)
		if err != nil {
			b.Fatal(err)
		}
		d, err := decode.NewJSON(decodeConfig(cfg))
		if err != nil {
			b.Fatal(err)
		}
		batch := record.NewBatch(d.Schema().Len(), 1024)
		rss := resetPeakRSS()
		cpu0 := cpuTime(b)
		for b.Loop() {
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
			for sc.Scan() {
				if batch.Len() == 1024 {
					batch.Reset()
				}
				if err := d.Decode(sc.Bytes(), 0, batch); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b, events, cpu0, rss)
	})
	for _, native := range []bool{false, true} {
		for _, q := range benchQueries {
			name := q
			if native {
				name = "native/" + q
			}
			b.Run(name, func(b *testing.B) {
				rss := resetPeakRSS()
				cpu0 := cpuTime(b)
				var out int64
				for b.Loop() {
					job, dir := benchJob(b, q+".yaml", in, events, native)
					rt, err := operator.New(job, nil, nil)
					if err != nil {
						b.Fatal(err)
					}
					if err := rt.Run(context.Background()); err != nil {
						b.Fatal(err)
					}
					out = outputRows(b, job, dir)
				}
				report(b, events, cpu0, rss)
				checkRows(b, q, out, in)
			})
		}
	}
}

// benchJob builds a query file as it is, reading input, or with its source
// replaced by the native nexmark source of the same events.
func benchJob(b *testing.B, file, in string, events int64, native bool) (operator.Job, string) {
	b.Helper()
	dir := b.TempDir()
	cfg, err := pipeline.Load(file, func(k string) (string, bool) {
		switch k {
		case "NEXMARK_INPUT":
			return in, true
		case "NEXMARK_OUT":
			return dir, true
		}
		return "", false
	})
	if err != nil {
		b.Fatal(err)
	}
	if native {
		s := &cfg.Sources[0]
		s.Type, s.File = "nexmark", nil
		s.Nexmark = &pipeline.NexmarkConfig{Seed: benchSeed, Events: events, Rate: 10_000, Format: "native"}
	}
	job, err := pipeline.Build(cfg, pipeline.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return job, dir
}

// decodeConfig is the decode configuration of a pipeline's first source,
// as the pipeline builds it.
func decodeConfig(cfg *pipeline.Config) decode.Config {
	s := cfg.Sources[0]
	out := decode.Config{EventTimeField: s.EventTime.Field}
	for _, f := range s.Decode.Fields {
		t, _ := record.ParseType(f.Type)
		tf, _ := decode.ParseTimeFormat(f.Format)
		p := f.Path
		if p == "" {
			p = f.Name
		}
		out.Fields = append(out.Fields, decode.Field{Name: f.Name, Path: strings.Split(p, "."), Type: t, TimeFormat: tf, Required: f.Required})
	}
	return out
}
