package operator

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	"github.com/streamd/streamd/pkg/window"
)

// TestDifferentialWindows runs seeded random workloads — several splits,
// disorder within and beyond the watermark bound, late records, duplicate
// event times, idle splits, splits that end early, bursts — through the real
// runtime and through the reference model (model_test.go), and requires the
// same rows: every window result, revision and retraction per window, and
// every late record, for tumbling, sliding (any size and slide, offsets) and
// session windows, every aggregate, allowed lateness, both emit modes,
// chained stages reading updates, and any parallelism, key-group count and
// batch size. A failure prints the seed and a minimized workload.
//
// STREAMD_DIFF_CASES sets the number of cases (default 300, 2000 with
// -short unset and the race detector off is what scripts/test.sh runs);
// STREAMD_DIFF_SEED the first seed (default 1). A long exploration is
//
//	STREAMD_DIFF_CASES=100000 STREAMD_DIFF_SEED=$RANDOM go test ./pkg/operator -run TestDifferentialWindows
func TestDifferentialWindows(t *testing.T) {
	cases := envInt("STREAMD_DIFF_CASES", 300)
	first := int64(envInt("STREAMD_DIFF_SEED", 1))
	shapes := map[string]int{}
	for seed := first; seed < first+int64(cases); seed++ {
		w := genWorkload(seed)
		for _, sh := range w.shapes() {
			shapes[sh]++
		}
		if diff := checkWorkload(t, w); diff != "" {
			min := minimize(t, w)
			t.Fatalf("seed %d: the runtime and the model disagree:\n%s\nminimized workload (seed %d):\n%s\n%s", seed, diff, seed, min, checkWorkload(t, min))
		}
	}
	var names []string
	for k, n := range shapes {
		names = append(names, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(names)
	t.Logf("%d cases from seed %d; cases per shape: %s; rows compared: %d results, %d updates, %d retractions, %d late records",
		cases, first, strings.Join(names, " "), diffStats.results, diffStats.updates, diffStats.retractions, diffStats.late)
}

// TestDifferentialHighParallelism runs chained workloads with 64 and 128
// subtasks per stage — the default on a large node — on this small one:
// startup, markers (savepoint restarts) and shutdown must work, and the
// results must not change.
func TestDifferentialHighParallelism(t *testing.T) {
	n := 0
	for seed := int64(1); n < 6; seed++ {
		w := genWorkload(seed)
		if len(w.Stages) < 2 {
			continue
		}
		w.Parallelism = []int{64, 128}[n%2]
		for i := range w.Steps {
			if w.Steps[i].Restart {
				w.Steps[i].Parallelism = []int{128, 64}[n%2]
			}
		}
		n++
		if diff := checkWorkload(t, w); diff != "" {
			t.Fatalf("seed %d at parallelism %d:\n%s\n%s", seed, w.Parallelism, diff, w)
		}
	}
}

// TestDifferentialManySplits runs workloads with hundreds of splits: the
// extra splits hold the watermark (or go idle) until they end, just before
// the original ones, so startup, markers, restarts and shutdown run with
// hundreds of split tasks and every valve input, and the results must
// equal the model's.
func TestDifferentialManySplits(t *testing.T) {
	for _, tc := range []struct {
		seed  int64
		extra int
	}{{3, 200}, {11, 300}, {29, 250}} {
		w := genWorkload(tc.seed)
		last := len(w.Steps) - 1
		for last >= 0 && w.Steps[last].End {
			last--
		}
		var ends []mStep
		for i := range tc.extra {
			ends = append(ends, mStep{Split: len(w.Splits), End: true})
			w.Splits = append(w.Splits, fmt.Sprintf("x%d", i))
		}
		w.Steps = slices.Concat(w.Steps[:last+1], ends, w.Steps[last+1:])
		if diff := checkWorkload(t, w); diff != "" {
			t.Fatalf("seed %d with %d splits:\n%s\n%s", tc.seed, len(w.Splits), diff, w)
		}
	}
}

// FuzzDifferentialWindows explores seeds with the fuzzer:
// go test ./pkg/operator -run '^$' -fuzz FuzzDifferentialWindows.
func FuzzDifferentialWindows(f *testing.F) {
	for _, s := range []int64{1, 7, 42} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed int64) {
		w := genWorkload(seed)
		if diff := checkWorkload(t, w); diff != "" {
			t.Fatalf("seed %d:\n%s\nminimized:\n%s", seed, diff, minimize(t, w))
		}
	})
}

// fastTempDir is a temporary directory in memory where the machine has one
// (/dev/shm): checkpoints fsync, and thousands of cases restart.
func fastTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "streamd-diff-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// shapes lists what a workload exercises, for the coverage summary.
func (w *workload) shapes() []string {
	var out []string
	for i, st := range w.Stages {
		p := st.Assigner.Kind.String()
		if st.Assigner.Kind == window.Sliding && st.Assigner.Size%st.Assigner.Slide != 0 {
			p = "sliding-nondividing"
		}
		if i > 0 {
			p = "chained-" + p
		}
		out = append(out, p)
		if st.Lateness > 0 {
			out = append(out, "lateness")
		}
		if st.Emit == window.EmitFinal {
			out = append(out, "final")
		}
		if st.Assigner.Offset != 0 {
			out = append(out, "offset")
		}
	}
	if len(w.Stages) > 1 && w.Stages[0].Lateness > 0 && w.Stages[0].Emit == window.EmitUpdates {
		out = append(out, "chained-updates")
	}
	if len(w.Splits) > 1 {
		out = append(out, "splits>1")
	}
	if w.Idle > 0 {
		out = append(out, "idle")
	}
	if w.Parallelism > 1 {
		out = append(out, "parallel")
	}
	for _, s := range w.Steps {
		if s.Restart {
			out = append(out, "restart")
			break
		}
	}
	for _, s := range w.Steps {
		if s.End {
			out = append(out, "split-ends")
			break
		}
	}
	return out
}

// diffStats counts the rows the differential tests compared.
var diffStats struct{ results, updates, retractions, late int }

// checkWorkload runs w through the runtime and the model and returns their
// differences ("" when they agree).
func checkWorkload(t *testing.T, w *workload) string {
	var gotRows []mRow
	var gotLate []mLate
	var restarts []time.Duration
	synctest.Test(t, func(t *testing.T) {
		gotRows, gotLate, restarts = runWorkload(t, w)
	})
	m, err := newModel(w)
	if err != nil {
		t.Fatalf("seed %d: model: %v", w.Seed, err)
	}
	m.restarts = restarts
	m.run()
	for _, r := range m.rows {
		switch {
		case r.Retract:
			diffStats.retractions++
		case r.Rev > 0:
			diffStats.updates++
		default:
			diffStats.results++
		}
	}
	diffStats.late += len(m.late)
	return compareOutputs(w, m.rows, gotRows, m.late, gotLate)
}

// runWorkload plays w on the scripted runtime and returns its output rows
// and how long each restart took.
func runWorkload(t *testing.T, w *workload) ([]mRow, []mLate, []time.Duration) {
	var restarts []time.Duration
	job := Job{Name: "diff", Parallelism: w.Parallelism, KeyGroups: w.KeyGroups, BatchSize: w.BatchSize}
	if slices.ContainsFunc(w.Steps, func(s mStep) bool { return s.Restart }) {
		st, err := local.New(fastTempDir(t))
		if err != nil {
			t.Fatal(err)
		}
		job.Checkpoint = &CheckpointConfig{Store: st, Prefix: "diff", SavepointOnStop: true, Timeout: time.Minute}
	}
	for _, st := range w.Stages {
		job.Stages = append(job.Stages, StageSpec{
			Name: st.Name, Input: st.Input, KeyBy: st.KeyBy, Assigner: st.Assigner,
			AllowedLateness: time.Duration(st.Lateness) * time.Millisecond, Emit: st.Emit,
			Aggregates: st.Aggs, NewAggregate: window.NewAggregate,
		})
	}
	s := startScripted(t, job, WatermarkConfig{MaxOutOfOrderness: w.OOO, IdleTimeout: w.Idle, SenderField: -1}, w.Splits...)
	for _, step := range w.Steps {
		switch {
		case step.Restart:
			job.Parallelism = step.Parallelism
			restarts = append(restarts, s.restart(job))
		case step.Split >= 0 && step.End:
			s.endSplit(w.Splits[step.Split])
		case step.Split >= 0:
			// A tick between reads: splits go idle one at a time, as they
			// do outside a test; two at the same instant would race.
			s.wall(scriptTick)
			s.feed(w.Splits[step.Split], step.Recs)
		default:
			s.wall(step.Wall)
		}
	}
	s.end()
	var rows []mRow
	var late []mLate
	for _, c := range s.out.take() {
		if name, ok := strings.CutSuffix(c.stream, ".late"); ok {
			var sb strings.Builder
			for _, v := range c.row[:len(c.row)-1] {
				sb.WriteString(v.GoString())
				sb.WriteByte(' ')
			}
			late = append(late, mLate{Stage: name, T: c.time, Row: sb.String(), WM: c.row[len(c.row)-1].Int() / 1000})
			continue
		}
		var st *mStage
		for i := range w.Stages {
			if w.Stages[i].Name == c.stream {
				st = &w.Stages[i]
			}
		}
		if st == nil {
			continue
		}
		n := len(st.KeyBy)
		var sb strings.Builder
		for _, v := range c.row[:n] {
			sb.WriteString(v.GoString())
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%d..%d", c.row[n].Int()/1000, c.row[n+1].Int()/1000)
		rows = append(rows, mRow{Stage: c.stream, Ident: sb.String(), Rev: c.row[n+2].Int(), Retract: c.row[n+3].Bool(), Vals: c.row[n+4:]})
	}
	return rows, late, restarts
}

// compareOutputs compares, per stage and window, the sequence of rows, and
// the late records as a multiset.
func compareOutputs(w *workload, want, got []mRow, wantLate, gotLate []mLate) string {
	group := func(rows []mRow) (map[string][]mRow, []string) {
		m := map[string][]mRow{}
		var keys []string
		for _, r := range rows {
			k := r.Stage + " " + r.Ident
			if _, ok := m[k]; !ok {
				keys = append(keys, k)
			}
			m[k] = append(m[k], r)
		}
		slices.Sort(keys)
		return m, keys
	}
	specs := map[string][]window.Spec{}
	for _, st := range w.Stages {
		specs[st.Name] = st.Aggs
	}
	var diffs []string
	wm, wk := group(want)
	gm, gk := group(got)
	for _, k := range wk {
		if !rowsMatch(specs, wm[k], gm[k]) {
			diffs = append(diffs, fmt.Sprintf("window %s:\n  model:   %s\n  runtime: %s", k, renderRows(wm[k]), renderRows(gm[k])))
		}
	}
	for _, k := range gk {
		if _, ok := wm[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("window %s: only the runtime emitted it: %s", k, renderRows(gm[k])))
		}
	}
	lateKey := func(l mLate) string { return fmt.Sprintf("%s t=%d wm=%d %s", l.Stage, l.T, l.WM, l.Row) }
	var wl, gl []string
	for _, l := range wantLate {
		wl = append(wl, lateKey(l))
	}
	for _, l := range gotLate {
		gl = append(gl, lateKey(l))
	}
	slices.Sort(wl)
	slices.Sort(gl)
	if !slices.Equal(wl, gl) {
		diffs = append(diffs, fmt.Sprintf("late records:\n  model:   %v\n  runtime: %v", wl, gl))
	}
	if len(diffs) > 12 {
		diffs = append(diffs[:12], fmt.Sprintf("… and %d more", len(diffs)-12))
	}
	return strings.Join(diffs, "\n")
}

func rowsMatch(specs map[string][]window.Spec, want, got []mRow) bool {
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		a, b := want[i], got[i]
		if a.Rev != b.Rev || a.Retract != b.Retract || len(a.Vals) != len(b.Vals) {
			return false
		}
		for j, spec := range specs[a.Stage] {
			if !valueMatches(spec, b.Vals[j], a.Vals[j]) {
				return false
			}
		}
	}
	return true
}

func renderRows(rows []mRow) string {
	var parts []string
	for _, r := range rows {
		s := fmt.Sprintf("rev=%d", r.Rev)
		if r.Retract {
			s += " retract"
		}
		for _, v := range r.Vals {
			s += " " + v.GoString()
		}
		parts = append(parts, "["+s+"]")
	}
	return strings.Join(parts, " ")
}

// String renders a workload as a readable script.
func (w *workload) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "splits %v, maxOutOfOrderness %dms, idleTimeout %s, parallelism %d, keyGroups %d, batchSize %d\n", w.Splits, w.OOO, w.Idle, w.Parallelism, w.KeyGroups, w.BatchSize)
	for _, st := range w.Stages {
		a := st.Assigner
		fmt.Fprintf(&sb, "stage %s <- %s: %s size=%d slide=%d gap=%d offset=%d lateness=%d emit=%s keyBy=%v aggs=%v\n", st.Name, st.Input, a.Kind, a.Size, a.Slide, a.Gap, a.Offset, st.Lateness, st.Emit, st.KeyBy, st.Aggs)
	}
	for _, s := range w.Steps {
		switch {
		case s.Restart:
			fmt.Fprintf(&sb, "restart from a savepoint with parallelism %d\n", s.Parallelism)
		case s.Split >= 0 && s.End:
			fmt.Fprintf(&sb, "end %s\n", w.Splits[s.Split])
		case s.Split >= 0:
			fmt.Fprintf(&sb, "in %s:", w.Splits[s.Split])
			for _, r := range s.Recs {
				fmt.Fprintf(&sb, " {t=%d %s %v %s #%d}", r.T, r.Key, r.Value, r.Sender, r.Seq)
			}
			sb.WriteByte('\n')
		default:
			fmt.Fprintf(&sb, "wall +%s\n", s.Wall)
		}
	}
	return sb.String()
}

// minimize removes steps and records from a failing workload as long as it
// keeps failing.
func minimize(t *testing.T, w *workload) *workload {
	cur := w.clone()
	fails := func(c *workload) bool { return checkWorkload(t, c) != "" }
	for budget := 400; budget > 0; {
		progress := false
		for i := len(cur.Steps) - 1; i >= 0 && budget > 0; i-- {
			c := cur.clone()
			c.Steps = slices.Delete(c.Steps, i, i+1)
			budget--
			if fails(c) {
				cur, progress = c, true
				continue
			}
			for j := len(cur.Steps[i].Recs) - 1; j >= 0 && len(cur.Steps[i].Recs) > 1 && budget > 0; j-- {
				c := cur.clone()
				c.Steps[i].Recs = slices.Delete(c.Steps[i].Recs, j, j+1)
				budget--
				if fails(c) {
					cur, progress = c, true
				}
			}
		}
		for _, shrink := range []func(*workload) bool{
			func(c *workload) bool { ok := c.Parallelism > 1; c.Parallelism = 1; return ok },
			func(c *workload) bool { ok := c.KeyGroups > 1; c.KeyGroups = 1; return ok },
			func(c *workload) bool {
				ok := len(c.Stages) > 1 && len(c.Stages[1].Aggs) > 1
				c.Stages[len(c.Stages)-1].Aggs = c.Stages[len(c.Stages)-1].Aggs[:1]
				return ok
			},
		} {
			c := cur.clone()
			if shrink(c) && budget > 0 {
				budget--
				if fails(c) {
					cur, progress = c, true
				}
			}
		}
		if !progress {
			break
		}
	}
	return cur
}

func (w *workload) clone() *workload {
	c := *w
	c.Stages = slices.Clone(w.Stages)
	for i := range c.Stages {
		c.Stages[i].Aggs = slices.Clone(w.Stages[i].Aggs)
	}
	c.Steps = slices.Clone(w.Steps)
	for i := range c.Steps {
		c.Steps[i].Recs = slices.Clone(w.Steps[i].Recs)
	}
	return &c
}

// genWorkload makes the random workload of a seed.
func genWorkload(seed int64) *workload {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	pick := func(xs ...int64) int64 { return xs[r.IntN(len(xs))] }
	w := &workload{Seed: seed}
	for i := range 1 + r.IntN(3) {
		w.Splits = append(w.Splits, fmt.Sprintf("s%d", i))
	}
	w.OOO = pick(0, 0, 1, 500, int64(r.IntN(3000)))
	if r.IntN(3) == 0 {
		w.Idle = scriptTick * time.Duration(5+r.IntN(40))
	}
	w.Parallelism = 1 + r.IntN(4)
	w.KeyGroups = int(pick(1, 2, 3, 8, 128))
	w.BatchSize = 1 + r.IntN(8)

	st1 := mStage{Name: "w1", Input: "in", KeyBy: [][]string{{"key"}, {"key"}, nil, {"key", "sender"}}[r.IntN(4)]}
	st1.Assigner = genAssigner(r, true)
	st1.Lateness = pick(0, 0, 500, 3000, int64(r.IntN(20000)))
	if r.IntN(4) == 0 {
		st1.Emit = window.EmitFinal
	}
	st1.Aggs = genAggs(r, []window.Spec{
		{Fn: "count"}, {Fn: "count", Field: "value"}, {Fn: "sum", Field: "value"}, {Fn: "sum", Field: "seq"},
		{Fn: "min", Field: "value"}, {Fn: "max", Field: "value"}, {Fn: "avg", Field: "value"},
		{Fn: "first", Field: "value"}, {Fn: "last", Field: "value"}, {Fn: "first", Field: "key"}, {Fn: "last", Field: "sender"},
		{Fn: "max_by", Field: "key", By: "value"}, {Fn: "min_by", Field: "seq", By: "value"}, {Fn: "min", Field: "key"},
		{Fn: "count_distinct", Field: "key"}, {Fn: "count_distinct", Field: "sender"},
		{Fn: "quantile", Field: "value", Q: 0.5}, {Fn: "quantile", Field: "value", Q: 0.9},
	})
	w.Stages = append(w.Stages, st1)
	if r.IntN(5) < 2 {
		st2 := mStage{Name: "w2", Input: "w1"}
		changelog := st1.Emit == window.EmitUpdates && st1.Lateness > 0
		st2.Assigner = genAssigner(r, !changelog)
		st2.Lateness = pick(0, 0, 1000, int64(r.IntN(10000)))
		if r.IntN(4) == 0 {
			st2.Emit = window.EmitFinal
		}
		// Inputs over w1's exact results: its key, counts, sums, bounds.
		strFields := []string{}
		if slices.Contains(st1.KeyBy, "key") {
			strFields = append(strFields, "key")
		}
		var numFields []string
		for _, a := range st1.Aggs {
			name := aggName(a)
			switch {
			case a.Fn == "count" || a.Fn == "sum" || a.Fn == "max" || a.Fn == "min" && a.Field == "value":
				numFields = append(numFields, name)
			case (a.Fn == "first" || a.Fn == "max_by") && a.Field == "key":
				strFields = append(strFields, name)
			}
		}
		if len(strFields) > 0 && r.IntN(2) == 0 {
			st2.KeyBy = []string{strFields[r.IntN(len(strFields))]}
		}
		cands := []window.Spec{{Fn: "count"}, {Fn: "min", Field: "window_start"}, {Fn: "max", Field: "revision"}}
		for _, f := range numFields {
			cands = append(cands, window.Spec{Fn: "sum", Field: f}, window.Spec{Fn: "max", Field: f}, window.Spec{Fn: "max_by", Field: "window_end", By: f, As: "end_by_" + f})
		}
		for _, f := range strFields {
			cands = append(cands, window.Spec{Fn: "first", Field: f}, window.Spec{Fn: "last", Field: f})
		}
		st2.Aggs = slices.DeleteFunc(genAggs(r, cands), func(a window.Spec) bool {
			return slices.Contains(st2.KeyBy, a.Fn+"_"+a.Field) // an output named like the key
		})
		if len(st2.Aggs) == 0 {
			st2.Aggs = []window.Spec{{Fn: "count"}}
		}
		w.Stages = append(w.Stages, st2)
	}

	// Each split has its own event-time clock; records mostly move it on,
	// some jump back (disorder, late records), some repeat a time.
	base := pick(1_700_000_000_000, 0, -int64(r.IntN(100_000)))
	clocks := make([]int64, len(w.Splits))
	for i := range clocks {
		clocks[i] = base + int64(r.IntN(5000))
	}
	open := len(w.Splits)
	ended := make([]bool, len(w.Splits))
	var seq int64
	keys := 1 + r.IntN(5)
	for range 5 + r.IntN(40) {
		switch x := r.IntN(100); {
		case x < 2:
			w.Steps = append(w.Steps, mStep{Split: -1, Restart: true, Parallelism: 1 + r.IntN(4)})
		case x < 12:
			w.Steps = append(w.Steps, mStep{Split: -1, Wall: scriptTick * time.Duration(1+r.IntN(80))})
		case x < 15 && open > 1:
			s := r.IntN(len(w.Splits))
			if !ended[s] {
				ended[s] = true
				open--
				w.Steps = append(w.Steps, mStep{Split: s, End: true})
			}
		default:
			s := r.IntN(len(w.Splits))
			if ended[s] {
				continue
			}
			step := mStep{Split: s}
			for range 1 + r.IntN(6) {
				seq++
				t := clocks[s]
				switch y := r.IntN(100); {
				case y < 12:
					t -= int64(r.IntN(int(max(w.OOO, 1))*2 + 1))
				case y < 20:
					// behind the watermark, often within the lateness
					t -= w.OOO + int64(r.IntN(int(st1.Lateness)+3000))
				case y < 25:
					t -= int64(r.IntN(40_000))
				case y < 40:
					// a duplicate time
				default:
					clocks[s] += int64(r.IntN(2500))
					t = clocks[s]
				}
				rec := scriptRecord{T: t, Key: fmt.Sprintf("k%d", r.IntN(keys)), Value: float64(r.IntN(100)) * 0.25, Seq: seq}
				if r.IntN(4) > 0 {
					rec.Sender = fmt.Sprintf("d%d", r.IntN(3))
				}
				step.Recs = append(step.Recs, rec)
			}
			w.Steps = append(w.Steps, step)
		}
	}
	if slices.ContainsFunc(w.Steps, func(s mStep) bool { return s.Restart }) && len(w.Splits) > 1 {
		// After a restore every split's idle timer starts at the same
		// instant, and splits that go idle at the same instant race: which
		// the valve hears of first decides how far the watermark moves.
		w.Idle = 0
	}
	return w
}

func genAssigner(r *rand.Rand, sessions bool) window.Assigner {
	kinds := []window.Kind{window.Tumbling, window.Sliding, window.Sliding}
	if sessions {
		kinds = append(kinds, window.Session)
	}
	switch kinds[r.IntN(len(kinds))] {
	case window.Tumbling:
		size := []int64{1000, 2500, 5000, 10000}[r.IntN(4)]
		a := window.Assigner{Kind: window.Tumbling, Size: size, Slide: size}
		if r.IntN(3) == 0 {
			a.Offset = int64(r.IntN(int(2*size-1))) - size + 1
		}
		return a
	case window.Sliding:
		pairs := [][2]int64{{5000, 2000}, {9000, 4000}, {3000, 1000}, {10000, 2500}, {4000, 3000}, {2000, 2000}}
		p := pairs[r.IntN(len(pairs))]
		if r.IntN(3) == 0 {
			p[0] = 500 + int64(r.IntN(9500))
			p[1] = 100 + int64(r.IntN(int(p[0]-99)))
		}
		a := window.Assigner{Kind: window.Sliding, Size: p[0], Slide: p[1]}
		if r.IntN(3) == 0 {
			a.Offset = int64(r.IntN(int(2*p[1]-1))) - p[1] + 1
		}
		return a
	}
	return window.Assigner{Kind: window.Session, Gap: 500 + int64(r.IntN(5000))}
}

// genAggs picks one to four aggregates with distinct output names.
func genAggs(r *rand.Rand, cands []window.Spec) []window.Spec {
	var out []window.Spec
	seen := map[string]bool{}
	for range 1 + r.IntN(4) {
		a := cands[r.IntN(len(cands))]
		if n := fmt.Sprintf("%s(%s,%s,%v)%s", a.Fn, a.Field, a.By, a.Q, a.As); !seen[n] {
			seen[n] = true
			out = append(out, a)
		}
	}
	return out
}

// aggName is the output field name of a w1 aggregate.
func aggName(a window.Spec) string {
	agg, err := window.NewAggregate(a, scriptInput)
	if err != nil {
		return fmt.Sprintf("%s(%s,%s,%v)", a.Fn, a.Field, a.By, a.Q)
	}
	return agg.Name()
}
