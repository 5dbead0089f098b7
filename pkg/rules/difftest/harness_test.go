package difftest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/rules"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source"
)

var inputSchema = record.MustSchema(
	record.Field{Name: "key", Type: record.TypeString},
	record.Field{Name: "tag", Type: record.TypeString},
	record.Field{Name: "value", Type: record.TypeFloat},
	record.Field{Name: "site", Type: record.TypeString},
)

// decoder turns a message (the index of a record of the workload) into
// its row; the event time is the record's.
type decoder struct{ recs []rec }

func (d *decoder) Schema() *record.Schema { return inputSchema }

func (d *decoder) Decode(msg []byte, _ int64, b *record.Batch) error {
	i, err := strconv.Atoi(string(msg))
	if err != nil || i < 0 || i >= len(d.recs) {
		return fmt.Errorf("decode record index %q", msg)
	}
	x := d.recs[i]
	row := b.AppendRow(x.t)
	row[0], row[1], row[3] = record.String(x.key), record.String(x.tag), record.String(x.site)
	row[2] = record.Null
	if x.value != nil {
		row[2] = record.Float(*x.value)
	}
	return nil
}

// scriptSource has one split per workload split; its readers block until
// the test hands them the next scripted batch (or the end of the split).
type scriptSource struct {
	readers map[string]*scriptReader
	ids     []string
}

type delivery struct {
	msgs []source.Message
	end  bool
}

type scriptReader struct {
	ch   chan delivery
	left []source.Message
}

func newScriptSource(splits int) *scriptSource {
	s := &scriptSource{readers: map[string]*scriptReader{}}
	for i := range splits {
		id := fmt.Sprintf("s%d", i)
		s.ids = append(s.ids, id)
		s.readers[id] = &scriptReader{ch: make(chan delivery)}
	}
	return s
}

func (s *scriptSource) Splits(context.Context) ([]source.Split, error) {
	out := make([]source.Split, len(s.ids))
	for i, id := range s.ids {
		out[i] = source.Split{ID: id}
	}
	return out, nil
}

func (s *scriptSource) Open(_ context.Context, sp source.Split, _ *source.Position) (source.Reader, error) {
	return s.readers[sp.ID], nil
}

func (s *scriptSource) Close(context.Context) error { return nil }

// Read delivers at most max messages of the current batch; the rest follows
// at the next Read without blocking, as from a broker.
func (r *scriptReader) Read(ctx context.Context, b *source.Batch, max int) error {
	if len(r.left) == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case d := <-r.ch:
			if d.end {
				return source.ErrEndOfSplit
			}
			r.left = d.msgs
		}
	}
	n := min(max, len(r.left))
	b.Messages = append(b.Messages, r.left[:n]...)
	r.left = r.left[n:]
	return nil
}

func (r *scriptReader) Close() error { return nil }

// capture is a sink keeping every row it is given, in order per writer.
type capture struct {
	mu   sync.Mutex
	rows []capturedRow
}

type capturedRow struct {
	t   int64
	row record.Row
}

func (c *capture) NewWriter(string, *record.Schema) (sink.Writer, error) { return c, nil }
func (c *capture) Close(context.Context) error                           { return nil }

func (c *capture) Write(_ context.Context, b *record.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < b.Len(); i++ {
		c.rows = append(c.rows, capturedRow{t: b.Times[i], row: slices.Clone(b.Row(i))})
	}
	return nil
}

var _ sink.Sink = (*capture)(nil)

// outcome is what a run produced.
type outcome struct {
	alerts   []alertOut
	late     []lateOut
	accepted []bool
	errs     []string
}

// runRuntime runs a workload through the real runtime inside a synctest
// bubble: each scripted batch is handed to its split and the bubble waits
// until every goroutine has processed it, so the order in which records,
// watermarks and rule changes reach the rule stage is the script's.
func runRuntime(t *testing.T, w *workload) (out outcome) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		out = runInBubble(w, dir)
	})
	return out
}

const tick = 200 * time.Millisecond

// runInBubble runs the script; a restart step stops the runtime with a
// savepoint (SIGTERM) and starts a new one restored from it, with the same
// initial rules, on the same scripted input, at the restart's parallelism.
func runInBubble(w *workload, dir string) (out outcome) {
	dec := &decoder{}
	var msgs [][]source.Message
	for _, s := range w.steps {
		var m []source.Message
		for _, x := range s.recs {
			m = append(m, source.Message{Value: []byte(strconv.Itoa(len(dec.recs))), Position: source.Position{Offset: int64(len(dec.recs))}})
			dec.recs = append(dec.recs, x)
		}
		msgs = append(msgs, m)
	}
	var initial []*rules.Rule
	for _, d := range w.initial {
		r, err := rules.Parse(d.doc(), rules.FormatJSON)
		if err != nil {
			out.errs = append(out.errs, fmt.Sprintf("parse initial rule: %v", err))
			return out
		}
		initial = append(initial, r)
	}
	opts := rules.DefaultOptions()
	opts.MaxSignalPoints = w.maxPoints
	if w.stateTTL > 0 {
		opts.StateTTL = time.Duration(w.stateTTL) * time.Millisecond
	}
	var store *local.Store
	for _, s := range w.steps {
		if s.kind == "restart" && store == nil {
			var err error
			if store, err = local.New(dir); err != nil {
				out.errs = append(out.errs, fmt.Sprintf("checkpoint store: %v", err))
				return out
			}
		}
	}
	alerts, late := &capture{}, &capture{}
	src := newScriptSource(w.splits)
	job := operator.Job{
		Name: "ruled", Parallelism: w.parallelism, KeyGroups: w.keyGroups, BatchSize: w.batchSize, TickInterval: tick,
		Sources: []operator.SourceSpec{{
			Name: "in", Source: src,
			NewDecoder: func() (operator.Decoder, error) { return dec, nil },
			Watermark:  operator.WatermarkConfig{MaxOutOfOrderness: w.bound, SenderField: -1},
		}},
		Stages: []operator.StageSpec{{
			Name: "rules", Input: "in", KeyBy: []string{"key"}, AllowedLateness: time.Duration(w.lateness) * time.Millisecond,
			Rules: &operator.RulesSpec{Options: opts, Initial: initial},
		}},
		Sinks: []operator.SinkSpec{{Name: "alerts", Input: "rules", Sink: alerts}, {Name: "late", Input: "rules.late", Sink: late}},
	}
	if store != nil {
		job.Checkpoint = &operator.CheckpointConfig{Store: store, SavepointOnStop: true}
	}
	var (
		rt     *operator.Runtime
		ctx    context.Context
		cancel context.CancelFunc
		done   chan error
	)
	start := func() bool {
		var err error
		log := zap.NewNop()
		if os.Getenv("RULEDIFF_LOG") != "" {
			log = zap.Must(zap.NewDevelopment())
		}
		if rt, err = operator.New(job, log, nil); err != nil {
			out.errs = append(out.errs, fmt.Sprintf("new runtime: %v", err))
			return false
		}
		ctx, cancel = context.WithCancel(context.Background())
		done = make(chan error, 1)
		go func() { done <- rt.Run(ctx) }()
		synctest.Wait()
		select {
		case err := <-done:
			out.errs = append(out.errs, fmt.Sprintf("run ended before its input: %v", err))
			return false
		default:
		}
		return true
	}
	stop := func() {
		if err := <-done; err != nil {
			out.errs = append(out.errs, fmt.Sprintf("run: %v", err))
		}
		cancel()
	}
	if !start() {
		return out
	}
	for i, s := range w.steps {
		switch s.kind {
		case "restart":
			cancel() // SIGTERM: savepoint, stop
			stop()
			src = newScriptSource(w.splits)
			job.Sources[0].Source = src
			if s.parallelism > 0 {
				job.Parallelism = s.parallelism
			}
			if !start() {
				return out
			}
			continue
		case "batch":
			src.readers[src.ids[s.split]].ch <- delivery{msgs: msgs[i]}
		case "end":
			src.readers[src.ids[s.split]].ch <- delivery{end: true}
		case "put", "delete":
			var err error
			if s.kind == "put" {
				r, perr := rules.Parse(s.rule.doc(), rules.FormatJSON)
				if perr != nil {
					out.errs = append(out.errs, fmt.Sprintf("step %d: parse rule: %v", i, perr))
					return out
				}
				err = rt.Rules().Put(ctx, "rules", r)
			} else {
				err = rt.Rules().Delete(ctx, "rules", s.id)
			}
			out.accepted = append(out.accepted, err == nil)
			if err != nil && !errors.Is(err, operator.ErrStaleRule) && !errors.Is(err, rules.ErrNoRule) {
				out.errs = append(out.errs, fmt.Sprintf("step %d: %s: %v", i, s.kind, err))
			}
			// The change waits in every split until its read returns: the
			// reads time out after a tick and the splits pass it on.
			time.Sleep(tick)
		}
		synctest.Wait()
	}
	stop()
	for _, c := range alerts.rows {
		out.alerts = append(out.alerts, alertRow(c.row))
	}
	for _, c := range late.rows {
		x := rec{key: c.row[0].S, tag: c.row[1].S, site: c.row[3].S, t: c.t}
		if !c.row[2].IsNull() {
			v := c.row[2].Float()
			x.value = &v
		}
		out.late = append(out.late, lateOut{Rec: x, WM: c.row[4].Time().UnixMilli()})
	}
	return out
}

func alertRow(row record.Row) alertOut {
	a := alertOut{
		ID: row[0].S, Rule: row[1].S, Version: row[2].Int(), Key: row[3].S, Old: row[4].S, New: row[5].S,
		Group: row[6].S, Severity: row[7].S, At: row[8].Time().UnixMilli(), Signals: map[string]*float64{},
	}
	if err := json.Unmarshal([]byte(row[9].S), &a.Signals); err != nil {
		a.Group += " (signals: " + err.Error() + ")"
	}
	var labels map[string]string
	if err := json.Unmarshal([]byte(row[10].S), &labels); err != nil {
		a.Group += " (labels: " + err.Error() + ")"
	}
	if len(labels) > 0 {
		a.Labels = labels
	}
	return a
}

func (a alertOut) String() string {
	var sig []string
	for name, v := range a.Signals {
		s := "absent"
		if v != nil {
			s = strconv.FormatFloat(*v, 'g', -1, 64)
		}
		sig = append(sig, name+"="+s)
	}
	sort.Strings(sig)
	return fmt.Sprintf("%s v%d %s %s->%s group=%s at=%s sev=%s signals{%s} labels%v id=%s", a.Rule, a.Version, a.Key, a.Old, a.New, a.Group, fmtT(a.At), a.Severity, strings.Join(sig, " "), a.Labels, a.ID)
}

func (l lateOut) String() string { return fmt.Sprintf("late %s wm=%s", l.Rec, fmtT(l.WM)) }

// compareOutcomes returns the differences between the runtime's outcome and the
// model's, empty when they agree exactly: every (rule, key) has the same
// alerts in the same order, the same late records, the same accepted
// changes.
func compareOutcomes(got outcome, m *model, accepted []bool) []string {
	var diffs []string
	diffs = append(diffs, got.errs...)
	if !slices.Equal(got.accepted, accepted) {
		diffs = append(diffs, fmt.Sprintf("accepted rule changes: runtime %v, model %v", got.accepted, accepted))
	}
	group := func(as []alertOut) map[string][]alertOut {
		out := map[string][]alertOut{}
		for _, a := range as {
			k := a.Rule + " " + a.Key
			out[k] = append(out[k], a)
		}
		return out
	}
	g, w := group(got.alerts), group(m.alerts)
	var keys []string
	for k := range g {
		keys = append(keys, k)
	}
	for k := range w {
		if _, ok := g[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if reflect.DeepEqual(g[k], w[k]) {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "alerts of %s differ:\n", k)
		for i := 0; i < max(len(g[k]), len(w[k])); i++ {
			gs, ws := "-", "-"
			if i < len(g[k]) {
				gs = g[k][i].String()
			}
			if i < len(w[k]) {
				ws = w[k][i].String()
			}
			mark := " "
			if gs != ws {
				mark = "!"
			}
			fmt.Fprintf(&b, "   %s runtime %s\n     model   %s\n", mark, gs, ws)
		}
		diffs = append(diffs, b.String())
	}
	render := func(ls []lateOut) []string {
		out := make([]string, len(ls))
		for i, l := range ls {
			out[i] = l.String()
		}
		sort.Strings(out)
		return out
	}
	if gl, wl := render(got.late), render(m.late); !slices.Equal(gl, wl) {
		diffs = append(diffs, fmt.Sprintf("late records differ:\n  runtime %v\n  model   %v", gl, wl))
	}
	return diffs
}

// check runs a workload both ways.
func check(t *testing.T, w *workload) ([]string, outcome, *model) {
	m := newModel(w)
	accepted := m.run()
	got := runRuntime(t, w)
	return compareOutcomes(got, m, accepted), got, m
}

// minimize drops script steps and records while the disagreement stays,
// within a budget of runs.
func minimize(t *testing.T, w *workload) *workload {
	budget := 400
	fails := func(c *workload) bool {
		if budget <= 0 {
			return false
		}
		budget--
		d, _, _ := check(t, c)
		return len(d) > 0
	}
	cur := w
	for changed := true; changed && budget > 0; {
		changed = false
		// Whole steps, in shrinking chunks; split ends stay, so that every
		// split still ends and the run finishes.
		for size := len(cur.steps) / 2; size >= 1; size /= 2 {
			for i := 0; i+size <= len(cur.steps); {
				cand := *cur
				cand.steps = nil
				keep := true
				for j, s := range cur.steps {
					if j >= i && j < i+size && s.kind != "end" {
						continue
					}
					cand.steps = append(cand.steps, s)
				}
				if len(cand.steps) < len(cur.steps) && fails(&cand) {
					cur, changed, keep = &cand, true, false
				}
				if keep {
					i += size
				}
			}
		}
		// Single records.
		for si := 0; si < len(cur.steps); si++ {
			for ri := 0; ri < len(cur.steps[si].recs); {
				cand := *cur
				cand.steps = slices.Clone(cur.steps)
				st := cand.steps[si]
				st.recs = slices.Delete(slices.Clone(st.recs), ri, ri+1)
				cand.steps[si] = st
				if fails(&cand) {
					cur, changed = &cand, true
					continue
				}
				ri++
			}
		}
		// Initial rules.
		for i := 0; i < len(cur.initial); {
			cand := *cur
			cand.initial = slices.Delete(slices.Clone(cur.initial), i, i+1)
			if fails(&cand) {
				cur, changed = &cand, true
				continue
			}
			i++
		}
	}
	return cur
}

func envInt(name string, def int) int {
	if s := os.Getenv(name); s != "" {
		n, err := strconv.Atoi(s)
		if err == nil {
			return n
		}
	}
	return def
}

// TestRuleDifferential runs random workloads through the runtime and the
// reference model and requires them to agree exactly.
func TestRuleDifferential(t *testing.T) {
	cases := envInt("RULEDIFF_CASES", 300)
	first := uint64(envInt("RULEDIFF_FIRST", 1))
	if s := os.Getenv("RULEDIFF_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("RULEDIFF_SEED: %v", err)
		}
		first, cases = seed, 1
	}
	if testing.Short() {
		cases = min(cases, 50)
	}
	var mu sync.Mutex
	var nAlerts, nLate, nChanges, nFailed int
	start := time.Now()
	t.Run("cases", func(t *testing.T) {
		for seed := first; seed < first+uint64(cases); seed++ {
			t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
				t.Parallel()
				w := generate(seed)
				diffs, got, _ := check(t, w)
				mu.Lock()
				nAlerts += len(got.alerts)
				nLate += len(got.late)
				nChanges += len(got.accepted)
				mu.Unlock()
				if len(diffs) == 0 {
					if cases == 1 {
						t.Logf("workload:\n%s", w)
						for _, a := range got.alerts {
							t.Logf("alert %s", a)
						}
					}
					return
				}
				mu.Lock()
				nFailed++
				mu.Unlock()
				small := minimize(t, w)
				d, _, _ := check(t, small)
				t.Errorf("runtime and model disagree for seed %d (%s); rerun with RULEDIFF_SEED=%d\nminimized workload:\n%s\ndifferences:\n%s",
					seed, w.shape(), seed, small, strings.Join(d, "\n"))
			})
		}
	})
	t.Logf("%d cases from seed %d in %s: %d alerts, %d late records, %d rule changes compared; %d failed",
		cases, first, time.Since(start).Round(time.Millisecond), nAlerts, nLate, nChanges, nFailed)
	if nFailed == 0 && cases >= 50 {
		// A harness that compares nothing proves nothing.
		if nAlerts == 0 || nLate == 0 || nChanges == 0 {
			t.Fatalf("the workloads exercise too little: %d alerts, %d late, %d changes", nAlerts, nLate, nChanges)
		}
	}
}

// TestRuleDifferentialProductionShape runs rule workloads at 64 and 128
// subtasks and with hundreds of splits — a large node's defaults — on
// this small machine: startup, markers, rule changes, restarts and
// shutdown must work, and the alerts must equal the model's.
func TestRuleDifferentialProductionShape(t *testing.T) {
	for _, tc := range []struct {
		seed                uint64
		splits, parallelism int
	}{{10, 0, 64}, {6, 0, 128}, {7, 200, 0}, {8, 300, 64}, {9, 200, 128}} {
		t.Run(fmt.Sprintf("seed%d_splits%d_p%d", tc.seed, tc.splits, tc.parallelism), func(t *testing.T) {
			w := generateShape(tc.seed, tc.splits, tc.parallelism)
			// Key groups spread over every subtask, as in production.
			w.keyGroups = max(w.keyGroups, 2*w.parallelism)
			diffs, got, _ := check(t, w)
			if len(diffs) > 0 {
				t.Fatalf("runtime and model disagree (%s):\n%s", w.shape(), strings.Join(diffs, "\n"))
			}
			t.Logf("%s: %d alerts, %d late, %d rule changes", w.shape(), len(got.alerts), len(got.late), len(got.accepted))
		})
	}
}

func val(v float64) *float64 { return &v }

// TestRuleDifferentialRegressions replays minimized workloads of
// disagreements the harness found, each fixed since.
func TestRuleDifferentialRegressions(t *testing.T) {
	silent := &ruleDef{
		id: "silent", version: 1, enabled: true, key: []string{"key"}, states: []string{"OK", "HIGH"}, severity: "critical",
		signals: []signalDef{{name: "s0", value: "value", agg: "count", window: 5000}},
		groups:  []groupDef{{name: "g0", state: "HIGH", match: "all", conds: []*cond{{kind: "cmp", sig: "s0", op: "==", c: 0}}}},
	}
	hot := &ruleDef{
		id: "hot", version: 1, enabled: true, key: []string{"key"}, states: []string{"OK", "HIGH"}, severity: "warning",
		signals: []signalDef{{name: "s0", value: "value", agg: "latest"}},
		groups:  []groupDef{{name: "g0", state: "HIGH", match: "all", conds: []*cond{{kind: "cmp", sig: "s0", op: ">", c: 2}}}},
	}
	tests := []struct {
		name string
		w    *workload
	}{
		{
			// A key whose first record changes no signal (a null value is
			// not counted) is evaluated: count == 0 holds at once.
			name: "new key on empty signals",
			w: &workload{splits: 2, parallelism: 3, keyGroups: 7, batchSize: 1024, bound: 300, lateness: 2000, maxPoints: 10000,
				initial: []*ruleDef{silent},
				steps: []step{
					{kind: "end", split: 1},
					{kind: "batch", split: 0, recs: []rec{{key: "k0", tag: "b", site: "x", t: t0 + 35840}}},
					{kind: "end", split: 0},
				}},
		},
		{
			// After a restore, a split's restored watermark holds the
			// stage's watermark from the start, as in the uninterrupted
			// run: the record at -488ms is late against +2393ms.
			name: "restored split watermarks judge lateness",
			w: &workload{splits: 3, parallelism: 1, keyGroups: 128, batchSize: 1024, bound: 300, lateness: 0, maxPoints: 10000,
				initial: []*ruleDef{hot},
				steps: []step{
					{kind: "batch", split: 1, recs: []rec{{key: "k0", tag: "c", site: "y", value: val(0), t: t0 + 4221}}},
					{kind: "batch", split: 2, recs: []rec{{key: "k3", tag: "b", site: "x", value: val(3), t: t0 + 2694}}},
					{kind: "restart"},
					{kind: "batch", split: 0, recs: []rec{{key: "k1", tag: "c", site: "y", value: val(2), t: t0 + 4606}}},
					{kind: "batch", split: 0, recs: []rec{{key: "k4", tag: "a", site: "x", value: val(3), t: t0 - 488}}},
					{kind: "end", split: 0},
					{kind: "end", split: 1},
					{kind: "end", split: 2},
				}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			diffs, got, m := check(t, tc.w)
			if len(diffs) > 0 {
				t.Fatalf("runtime and model disagree:\n%s\ndifferences:\n%s", tc.w, strings.Join(diffs, "\n"))
			}
			if len(m.alerts)+len(m.late) == 0 || len(got.alerts)+len(got.late) == 0 {
				t.Fatal("the workload produces nothing to compare")
			}
		})
	}
}

// lateSplits is a source whose only split is assigned after the pipeline
// started, as a consumer group assigns partitions.
type lateSplits struct {
	*scriptSource
	assign chan struct{}
}

func (s *lateSplits) Splits(context.Context) ([]source.Split, error) { return nil, nil }

func (s *lateSplits) Watch(ctx context.Context, fn func(source.Event) error) error {
	select {
	case <-ctx.Done():
		return nil
	case <-s.assign:
	}
	if err := fn(source.Event{Split: source.Split{ID: s.ids[0]}}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

var _ source.Dynamic = (*lateSplits)(nil)

// TestRuleChangeBeforeAnySplit: a rule installed while no split is reading
// yet (partitions not assigned) reaches the subtasks once a split reads,
// instead of being shown by the rule manager and never applied.
func TestRuleChangeBeforeAnySplit(t *testing.T) {
	hot, err := rules.Parse((&ruleDef{
		id: "hot", version: 1, enabled: true, key: []string{"key"}, states: []string{"OK", "HIGH"}, severity: "warning",
		signals: []signalDef{{name: "s0", value: "value", agg: "latest"}},
		groups:  []groupDef{{name: "g0", state: "HIGH", match: "all", conds: []*cond{{kind: "cmp", sig: "s0", op: ">", c: 2}}}},
	}).doc(), rules.FormatJSON)
	require.NoError(t, err)
	synctest.Test(t, func(t *testing.T) {
		dec := &decoder{recs: []rec{{key: "k0", tag: "a", site: "x", value: val(5), t: t0}}}
		src := &lateSplits{scriptSource: newScriptSource(1), assign: make(chan struct{})}
		alerts := &capture{}
		rt, err := operator.New(operator.Job{
			Name: "late-splits", Parallelism: 2, TickInterval: tick,
			Sources: []operator.SourceSpec{{Name: "in", Source: src, Watermark: operator.WatermarkConfig{SenderField: -1},
				NewDecoder: func() (operator.Decoder, error) { return dec, nil }}},
			Stages: []operator.StageSpec{{Name: "rules", Input: "in", KeyBy: []string{"key"}, Rules: &operator.RulesSpec{Options: rules.DefaultOptions()}}},
			Sinks:  []operator.SinkSpec{{Name: "alerts", Input: "rules", Sink: alerts}},
		}, zap.NewNop(), nil)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rt.Run(ctx) }()
		synctest.Wait()
		require.NoError(t, rt.Rules().Put(ctx, "rules", hot))
		close(src.assign)
		time.Sleep(3 * tick) // the split starts, the change goes out and passes it
		synctest.Wait()
		src.readers[src.ids[0]].ch <- delivery{msgs: []source.Message{{Value: []byte("0")}}}
		synctest.Wait()
		cancel()
		require.NoError(t, <-done)
		require.Len(t, alerts.rows, 1, "the rule installed before the split started applies")
		a := alertRow(alerts.rows[0].row)
		require.Equal(t, "hot k0 HIGH", a.Rule+" "+a.Key+" "+a.New)
	})
}
