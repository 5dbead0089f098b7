package nexmark_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/sink/discard"
)

// result is what one run of a benchmark measured.
type result struct {
	perCPU float64 // events per CPU-second
	cpu    float64 // CPU-seconds of one run over all events
	rssMB  float64 // peak resident set, MiB; -1 when not measured
}

var (
	resultsMu sync.Mutex
	// results are the runs of each benchmark by its name, in the order run.
	results = map[string][]result{}
	// rowsOut is the number of rows each query wrote, the same in every run.
	rowsOut = map[string]int64{}
)

// keepResult keeps a run's figures for the table.
func keepResult(name string, r result) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	results[name] = append(results[name], r)
}

// outputRows is the number of rows a finished job wrote: what its discard
// sinks counted, and the rows of the Parquet files it published under dir
// (q10).
func outputRows(b *testing.B, job operator.Job, dir string) int64 {
	b.Helper()
	var n int64
	for _, s := range job.Sinks {
		if d, ok := s.Sink.(*discard.Sink); ok {
			n += d.Rows()
		}
	}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(path, ".parquet") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		n += pf.NumRows()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

var (
	bidsOnce  sync.Once
	bidsCount int64
	bidsErr   error
)

// inputBids counts the bids of the input file from its text: lines that
// start with event type 2, as the generator writes them.
func inputBids(in string) (int64, error) {
	bidsOnce.Do(func() {
		f, err := os.Open(in)
		if err != nil {
			bidsErr = err
			return
		}
		defer f.Close()
		r := bufio.NewReaderSize(f, 1<<20)
		prefix := []byte(`{"event_type":2,`)
		for {
			line, err := r.ReadSlice('\n')
			if bytes.HasPrefix(line, prefix) {
				bidsCount++
			}
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				bidsErr = err
				return
			}
		}
	})
	return bidsCount, bidsErr
}

// checkRows is what the benchmarks check, the same on every machine and
// under any load: a query writes the same rows from JSON lines and from the
// pre-decoded source and in every run (the input is generated from a fixed
// seed), at least one, and the pass-through queries (q0, q10) exactly one
// per bid of the input.
func checkRows(b *testing.B, q string, rows int64, in string) {
	b.Helper()
	if rows <= 0 {
		b.Fatalf("%s wrote no rows", q)
	}
	if q == "q0" || q == "q10" {
		bids, err := inputBids(in)
		if err != nil {
			b.Fatal(err)
		}
		if rows != bids {
			b.Fatalf("%s wrote %d rows, the input has %d bids", q, rows, bids)
		}
	}
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if prev, ok := rowsOut[q]; ok && prev != rows {
		b.Fatalf("%s wrote %d rows, an earlier run %d", q, rows, prev)
	}
	rowsOut[q] = rows
}

// reference is what a query is measured against: the target of the
// project's ingest work (events per second per core, JSON input) and
// Flink's published per-core figure (datagen source, no JSON), "" where
// there is none.
type reference struct {
	target, flink string
}

var references = map[string]reference{
	"q0":  {target: "≥ 1 M", flink: "379 K (2.0)"},
	"q1":  {target: "≥ 900 K", flink: "158 K (1.13)"},
	"q2":  {target: "≥ 1 M", flink: "175 K (1.13)"},
	"q5":  {target: "≥ 700 K", flink: "75 K (2.0)"},
	"q7":  {target: "≥ 700 K", flink: "23 K (2.0)"},
	"q11": {target: "≥ 700 K", flink: "46 K (2.0)"},
}

// printTable prints, for each query that was measured, the median events
// per CPU-second (the per-core figure under -cpu 1) and CPU-seconds per run
// over JSON lines and pre-decoded, the largest peak RSS, and the query's
// target and Flink figure. It summarises runs of -benchtime 1x (one run
// over all events per -count), as `make nexmark` makes them.
func printTable(w io.Writer) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	const prefix = "BenchmarkNexmark/"
	runs := 0
	for _, rs := range results {
		runs = max(runs, len(rs))
	}
	fmt.Fprintf(w, "\nNexmark, %d events, one core (-cpu 1), median of %d run(s); peak RSS is the largest:\n\n", benchEventsOr(200_000), runs)
	fmt.Fprintln(w, "| query | JSON events/s/core | CPU-s | peak RSS | pre-decoded events/s/core | CPU-s | peak RSS | target (JSON) | Flink per core |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, q := range append([]string{"decode"}, benchQueries...) {
		js, nat := results[prefix+q], results[prefix+"native/"+q]
		if len(js) == 0 && len(nat) == 0 {
			continue
		}
		ref := references[q]
		name := q
		if q == "decode" {
			name = "decode only (q0's fields)"
		}
		if q != "decode" && ref.target == "" {
			ref.target = "≥ 300 K"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name,
			rate(js), cpuSeconds(js), rss(js), rate(nat), cpuSeconds(nat), rss(nat), dash(ref.target), dash(ref.flink))
	}
	fmt.Fprintln(w)
}

// benchEventsOr is NEXMARK_EVENTS, or def when it is not set or not valid.
func benchEventsOr(def int64) int64 {
	if n, err := strconv.ParseInt(os.Getenv("NEXMARK_EVENTS"), 10, 64); err == nil && n > 0 {
		return n
	}
	return def
}

func median(rs []result, f func(result) float64) float64 {
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = f(r)
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

func rate(rs []result) string {
	if len(rs) == 0 {
		return "—"
	}
	return thousands(median(rs, func(r result) float64 { return r.perCPU })/1000) + " K"
}

func cpuSeconds(rs []result) string {
	if len(rs) == 0 {
		return "—"
	}
	return strconv.FormatFloat(median(rs, func(r result) float64 { return r.cpu }), 'f', 2, 64)
}

func rss(rs []result) string {
	peak := -1.0
	for _, r := range rs {
		peak = max(peak, r.rssMB)
	}
	if peak < 0 {
		return "—"
	}
	return strconv.FormatFloat(peak, 'f', 0, 64) + " MB"
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// thousands formats x rounded to an integer with comma separators.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func TestThousands(t *testing.T) {
	for x, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 1234567.8: "1,234,568"} {
		require.Equal(t, want, thousands(x), "%v", x)
	}
}
