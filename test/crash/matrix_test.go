package crash_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The fault matrix: every shipped example pipeline (its own file, with its
// checkpoint block, tuned only through the variables the file reads) runs
// once undisturbed as the reference, and once per fault, and every run's
// published output must equal the reference row for row: 0 lost, 0
// duplicated.
//
// Faults (not every one applies to every example):
//   - kill9: SIGKILL at random moments, restart from the checkpoints;
//   - sigterm: SIGTERM (a savepoint) at random moments, restart;
//   - rebalance: a second streamd process joins the consumer group, takes
//     partitions and leaves again (Kafka source only);
//   - outage: the Kafka brokers drop every connection and refuse new ones
//     for 20 s (the source, or the alert sink);
//   - s3: the S3 endpoint answers 503s, resets connections, loses answers
//     and delays requests, then fails every request for 20 s;
//   - diskfull: the disk of the output and the checkpoints is full for
//     20 s.
//
// Stores: "local" (output and checkpoints in a local directory) and "minio"
// (both in MinIO, for the example that writes to S3).
//
// MATRIX_KILLS scales the kills (and stops and joins) per cell: the short
// form runs with the tests, scripts/crash-test.sh runs the long form.
// MATRIX_CELLS (a comma-separated list of example/fault/store globs)
// picks cells; CRASH_SEED replays the random moments.

// matrixCell is one run of the matrix.
type matrixCell struct {
	example, fault, store string
	// n is the number of kills, stops or joins (kill9, sigterm, rebalance).
	n int
}

func (c matrixCell) String() string { return c.example + "/" + c.fault + "/" + c.store }

// cellResult is what a cell reports, per sink.
type cellResult struct {
	cell       matrixCell
	runs       int // daemon processes started
	faults     int // kills, stops, joins or outages injected
	sinks      []string
	rows       map[string]int
	lost, dups map[string]int
	other      map[string]int // rows the reference does not have at all
	elapsed    time.Duration
	note       string
}

func (r cellResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-36s runs %3d faults %3d", r.cell, r.runs, r.faults)
	for _, s := range r.sinks {
		fmt.Fprintf(&b, " | %s: %d rows, lost %d, dup %d", s, r.rows[s], r.lost[s], r.dups[s])
		if r.other[s] > 0 {
			fmt.Fprintf(&b, ", other %d", r.other[s])
		}
	}
	fmt.Fprintf(&b, " | %s", r.elapsed.Round(time.Second))
	if r.note != "" {
		b.WriteString(" | " + r.note)
	}
	return b.String()
}

func (r cellResult) ok() bool {
	for _, s := range r.sinks {
		if r.lost[s] != 0 || r.dups[s] != 0 || r.other[s] != 0 {
			return false
		}
	}
	return true
}

// rowSet is a multiset of canonical rows (JSON with sorted keys).
type rowSet map[string]int

func (s rowSet) count() int {
	n := 0
	for _, c := range s {
		n += c
	}
	return n
}

// canonical renders a decoded row as JSON with sorted keys, without the
// fields in drop (values that depend on the wall clock).
func canonical(row map[string]any, drop ...string) string {
	for _, f := range drop {
		delete(row, f)
	}
	b, _ := json.Marshal(row) // maps marshal with sorted keys
	return string(b)
}

// diffRows compares got with the reference: lost copies, extra copies of
// reference rows, and rows the reference does not have.
func diffRows(ref, got rowSet) (lost, dups, other int) {
	for r, n := range ref {
		if d := n - got[r]; d > 0 {
			lost += d
		}
	}
	for r, n := range got {
		want, ok := ref[r]
		switch {
		case !ok:
			other += n
		case n > want:
			dups += n - want
		}
	}
	return lost, dups, other
}

// sampleDiff lists a few rows that differ, for failure messages.
func sampleDiff(ref, got rowSet) string {
	var lines []string
	for r, n := range ref {
		if got[r] < n {
			lines = append(lines, fmt.Sprintf("  missing ×%d %s", n-got[r], r))
		}
	}
	for r, n := range got {
		if n > ref[r] {
			lines = append(lines, fmt.Sprintf("  extra   ×%d %s", n-ref[r], r))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines[:min(6, len(lines))], "\n")
}

// exampleRun is one run (the reference, or a cell) of a shipped example:
// its own input, output and checkpoint locations.
type exampleRun struct {
	name string
	file string
	dir  string
	// env is the daemon environment of an instance ("a", or "b" for the
	// second process of a rebalance).
	env func(inst string) []string
	// splits is how many splits one instance reads when it holds them all.
	splits int
	// feed produces chunk i of nChunks of the input, spread over d.
	feed func(ctx context.Context, i, nChunks int, d time.Duration) error
	// published reads what the instances have published so far, by sink.
	published func(insts []string) (map[string]rowSet, error)
	// want is the number of rows each sink publishes for the whole input.
	want map[string]int
	// bounded: the input ends and the daemon exits by itself.
	bounded bool
	// paced is how long a bounded input takes to read at its rate (the
	// demo generator is paced): the wait for it to end adds it.
	paced time.Duration
	// input names the input's size: runs with the same input share a
	// reference.
	input string
	// perInstance projects a sink's rows for runs with several instances,
	// whose windows are computed per instance: per key and window, the
	// count (what must add up over the instances).
	perInstance map[string]func(rowSet) rowSet
}

// daemonEnv is the environment every daemon of the matrix gets.
var daemonEnv = []string{"AWS_EC2_METADATA_DISABLED=true"}

// matrixEnv is the runtime shared by the cells.
type matrixEnv struct {
	t    *testing.T
	bin  string
	root string
	rng  *rand.Rand
	w    *world
	// refs caches the reference output per example and store.
	refs map[string]map[string]rowSet
}

// start starts a daemon of run r for instance inst, appending to its log.
func (m *matrixEnv) start(r *exampleRun, inst string, extra ...string) *daemon {
	m.t.Helper()
	env := append(slices.Clone(daemonEnv), r.env(inst)...)
	env = append(env, extra...)
	return startDaemon(m.t, m.bin, r.file, filepath.Join(r.dir, inst+".log"), env)
}

// waitPublished waits until every sink has published at least the rows the
// whole input makes (fewer means something is lost: the wait is bounded),
// then two more checkpoints, so late duplicates would show.
func (m *matrixEnv) waitPublished(d *daemon, r *exampleRun, insts []string) {
	m.t.Helper()
	d.waitFor("the whole output to be published", finishTimeout, func() error {
		got, err := r.published(insts)
		if err != nil {
			return err
		}
		for sink, n := range r.want {
			proj := got[sink]
			if f := r.perInstance[sink]; f != nil && len(insts) > 1 {
				proj = f(proj)
			}
			if c := proj.count(); c < n {
				return fmt.Errorf("%w: sink %s has %d of %d rows", errIncomplete, sink, c, n)
			}
		}
		return nil
	})
	d.waitTwoMoreCheckpoints()
}

// waitExit waits for a bounded run to end by itself with status 0: within
// finishTimeout plus the time its paced input takes to read.
func (m *matrixEnv) waitExit(d *daemon, r *exampleRun) {
	m.t.Helper()
	limit := finishTimeout + r.paced
	select {
	case <-d.done:
	case <-time.After(limit):
		m.t.Fatalf("streamd did not end by itself within %s\n%s", limit, d.logTail())
	}
	require.NoError(m.t, d.err, "streamd exit status at the end of its input\n%s", d.logTail())
}

// reference runs r undisturbed: the whole input first, then the daemon
// until everything is published (or it ends by itself), then SIGTERM.
func (m *matrixEnv) reference(r *exampleRun) map[string]rowSet {
	m.t.Helper()
	ctx := context.Background()
	require.NoError(m.t, r.feed(ctx, 0, 1, 0), "produce the reference input")
	d := m.start(r, "a")
	if r.bounded {
		m.waitExit(d, r)
	} else {
		d.waitReading(r.splits)
		m.waitPublished(d, r, []string{"a"})
		d.stop()
	}
	got, err := r.published([]string{"a"})
	require.NoError(m.t, err)
	for sink, n := range r.want {
		if r.bounded {
			// The input ends: what the reference publishes is the count.
			r.want[sink] = got[sink].count()
		} else {
			require.Equal(m.t, n, got[sink].count(), "reference run: rows of sink %s", sink)
		}
		for row, c := range got[sink] {
			require.Equal(m.t, 1, c, "reference run: sink %s published a row twice: %s", sink, row)
		}
	}
	return got
}

// runCell runs one cell against the reference and returns its counts.
func (m *matrixEnv) runCell(c matrixCell, ref map[string]rowSet, r *exampleRun) cellResult {
	m.t.Helper()
	start := time.Now()
	res := cellResult{cell: c}
	insts := []string{"a"}
	switch c.fault {
	case "kill9", "sigterm":
		res.runs, res.faults = m.restarts(r, c)
	case "rebalance":
		res.runs, res.faults = m.rebalance(r, c)
		insts = []string{"a", "b"}
	case "outage":
		res.runs, res.faults, res.note = m.outage(r)
	case "s3":
		res.runs, res.faults, res.note = m.s3(r)
	case "diskfull":
		res.runs, res.faults, res.note = m.diskFull(r)
	default:
		m.t.Fatalf("unknown fault %q", c.fault)
	}
	got, err := r.published(insts)
	require.NoError(m.t, err)
	res.rows, res.lost, res.dups, res.other = map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	sinks := mapsKeys(r.want)
	sort.Strings(sinks)
	for _, sink := range sinks {
		res.sinks = append(res.sinks, sink)
		want, have := ref[sink], got[sink]
		if f := r.perInstance[sink]; f != nil && len(insts) > 1 {
			want, have = f(want), f(have)
			sink += " (per-window counts)"
			res.sinks[len(res.sinks)-1] = sink
		}
		res.rows[sink] = have.count()
		res.lost[sink], res.dups[sink], res.other[sink] = diffRows(want, have)
		if res.lost[sink]+res.dups[sink]+res.other[sink] > 0 {
			m.t.Errorf("%s: sink %s differs from the reference:\n%s", c, sink, sampleDiff(want, have))
		}
	}
	res.elapsed = time.Since(start)
	return res
}

func mapsKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// runFor lets a daemon work for a random moment between minRun and maxRun
// while chunk i of the input arrives.
func (m *matrixEnv) runFor(r *exampleRun, i, nChunks int) (time.Duration, chan error) {
	run := minRun + time.Duration(m.rng.Int64N(int64(maxRun-minRun)))
	fed := make(chan error, 1)
	go func() { fed <- r.feed(context.Background(), i, nChunks, run) }()
	return run, fed
}

// restarts kills (kill9) or stops (sigterm) the daemon c.n times at random
// moments while the input arrives, and lets the last process finish.
func (m *matrixEnv) restarts(r *exampleRun, c matrixCell) (runs, faults int) {
	m.t.Helper()
	nChunks := c.n + 1
	for i := range c.n {
		d := m.start(r, "a")
		runs++
		if d.waitWorkingOrExit(r.splits, r.bounded) {
			break // a bounded input already ended: nothing to interrupt
		}
		run, fed := m.runFor(r, i, nChunks)
		time.Sleep(run) // lets the daemon work; nothing is asserted on timing
		if d.exited() {
			require.NoError(m.t, d.err, "streamd ended by itself\n%s", d.logTail())
		} else if c.fault == "kill9" {
			d.kill()
		} else {
			d.stop()
		}
		faults++
		require.NoError(m.t, <-fed, "feed chunk %d", i)
	}
	d := m.start(r, "a")
	runs++
	m.finish(d, r, nChunks-1, nChunks, []string{"a"})
	return runs, faults
}

// finish feeds the last chunk to d and waits until everything is
// published, then stops it (or, bounded, until it ends by itself).
func (m *matrixEnv) finish(d *daemon, r *exampleRun, last, nChunks int, insts []string) {
	m.t.Helper()
	if r.bounded {
		m.waitExit(d, r)
		return
	}
	d.waitReading(r.splits)
	require.NoError(m.t, r.feed(context.Background(), last, nChunks, 0), "feed the last chunk")
	m.waitPublished(d, r, insts)
	d.stop()
}

// rebalance lets a second process join the group c.n times: it takes
// partitions, reads, and leaves with SIGTERM (a savepoint that publishes
// what it holds), and the first takes them back.
func (m *matrixEnv) rebalance(r *exampleRun, c matrixCell) (runs, faults int) {
	m.t.Helper()
	nChunks := 2*c.n + 1
	// Several instances drain at a stop: windows are per instance (see
	// the example file).
	a := m.start(r, "a", "SAVEPOINT_ON_STOP=false")
	runs++
	a.waitWorking(r.splits)
	for i := range c.n {
		run, fed := m.runFor(r, 2*i, nChunks)
		time.Sleep(run)
		require.NoError(m.t, <-fed)
		b := m.start(r, "b", "SAVEPOINT_ON_STOP=false")
		runs++
		faults++
		b.waitFor("the second process to get partitions", startTimeout, func() error {
			st, err := b.status()
			if err != nil {
				return err
			}
			if len(st.Splits) == 0 {
				return errors.New("no partition yet")
			}
			return nil
		})
		run, fed = m.runFor(r, 2*i+1, nChunks)
		time.Sleep(run)
		require.NoError(m.t, <-fed)
		b.stop()
		a.waitReading(r.splits)
	}
	m.finish(a, r, nChunks-1, nChunks, []string{"a", "b"})
	return runs, faults
}

// outage closes the Kafka gate for 20 s while the daemon runs.
func (m *matrixEnv) outage(r *exampleRun) (runs, faults int, note string) {
	m.t.Helper()
	const nChunks = 3
	d := m.start(r, "a")
	runs++
	d.waitWorking(r.splits)
	run, fed := m.runFor(r, 0, nChunks)
	time.Sleep(run)
	require.NoError(m.t, <-fed)
	m.w.gate.Close()
	faults++
	time.Sleep(outageFor)
	m.w.gate.Open()
	require.NoError(m.t, r.feed(context.Background(), 1, nChunks, time.Second))
	m.finish(d, r, 2, nChunks, []string{"a"})
	return runs, faults, fmt.Sprintf("%s outage", outageFor)
}

// outageFor is how long an outage lasts.
const outageFor = 20 * time.Second

// s3OutageFor is how long S3 answers 503 to everything: longer than the
// attempts of a request last (5, with backoff up to 5 s), and than the
// grace before a pipeline retrying a request turns not ready (30 s).
const s3OutageFor = 45 * time.Second

// s3 runs the daemon through a faulty S3 endpoint: errors, resets, lost
// answers and delays at random while the input arrives, then every request
// failing for 45 s, then a clean endpoint for the rest.
func (m *matrixEnv) s3(r *exampleRun) (runs, faults int, note string) {
	m.t.Helper()
	const nChunks = 4
	p := m.w.s3.proxy
	p.SetRates(0.05, 0.02, 0.02, 0.05)
	defer p.SetRates(0, 0, 0, 0)
	d := m.start(r, "a")
	runs++
	d.waitReading(r.splits)
	for i := range 2 {
		run, fed := m.runFor(r, i, nChunks)
		time.Sleep(run)
		require.NoError(m.t, <-fed)
	}
	restarts, failures := d.metric("streamd_pipeline_restarts_total"), d.metric("streamd_checkpoint_failures_total")
	p.SetRates(1, 0, 0, 0)
	faults++
	began := time.Now()
	require.NoError(m.t, r.feed(context.Background(), 2, nChunks, s3OutageFor/2))
	// The outage is waited out with the pipeline's state: checkpoints
	// fail and are counted, the pipeline turns not ready (by /readyz and
	// the metric alike) but stays alive, and it is not restarted.
	d.waitFor("a checkpoint failing during the S3 outage", s3OutageFor-time.Since(began), func() error {
		if n := d.metric("streamd_checkpoint_failures_total"); n <= failures {
			return fmt.Errorf("streamd_checkpoint_failures_total %v", n)
		}
		return nil
	})
	d.waitFor("not ready during the S3 outage", s3OutageFor-time.Since(began), func() error {
		if _, err := d.get("/readyz"); err == nil {
			return errors.New("/readyz answers 200")
		}
		if v := d.metric("streamd_ready"); v != 0 {
			return fmt.Errorf("streamd_ready %v", v)
		}
		return nil
	})
	_, err := d.get("/healthz")
	require.NoError(m.t, err, "/healthz during the S3 outage")
	time.Sleep(s3OutageFor - time.Since(began))
	require.Equal(m.t, restarts, d.metric("streamd_pipeline_restarts_total"), "pipeline restarts during the S3 outage\n%s", d.logTail())
	p.SetRates(0, 0, 0, 0)
	m.finish(d, r, 3, nChunks, []string{"a"})
	c := p.Counts()
	return runs, faults, fmt.Sprintf("s3: %d requests, %d 503s, %d resets, %d lost answers, %d delays", c.Requests, c.Errors, c.Resets, c.LostResponses, c.Delays)
}

// diskFull fills the output's disk for 20 s while the input arrives.
func (m *matrixEnv) diskFull(r *exampleRun) (runs, faults int, note string) {
	m.t.Helper()
	const nChunks = 3
	d := m.start(r, "a")
	runs++
	if d.waitWorkingOrExit(r.splits, r.bounded) {
		m.t.Fatalf("the input ended before the disk could fill up")
	}
	dk := m.w.disks[r.dir]
	dk.full(d.cmd.Process.Pid)
	faults++
	full := time.Now()
	require.NoError(m.t, r.feed(context.Background(), 0, nChunks, outageFor))
	require.NoError(m.t, r.feed(context.Background(), 1, nChunks, 0))
	time.Sleep(outageFor - time.Since(full)) // a generator's input needs no feeding
	require.False(m.t, d.exited(), "streamd exits on a full disk\n%s", d.logTail())
	restarts := d.metric("streamd_pipeline_restarts_total")
	dk.free(d.cmd.Process.Pid)
	m.finish(d, r, 2, nChunks, []string{"a"})
	log, _ := os.ReadFile(d.log)
	named := strings.Contains(string(log), "no space left on device") || strings.Contains(string(log), "file too large")
	require.True(m.t, named, "the log names the disk error")
	// A sink that cannot write fails the pipeline, naming itself; when only
	// checkpoints fail to write (output held until its checkpoint), the
	// error names the checkpoint being written.
	require.True(m.t, strings.Contains(string(log), `sink \"`) || strings.Contains(string(log), `"write checkpoint `),
		"the error names the sink or the checkpoint")
	return runs, faults, fmt.Sprintf("%s; %v restarts while full", dk.kind, restarts)
}

// waitWorkingOrExit is waitWorking for a daemon whose bounded input may end
// first: it reports whether the daemon ended by itself.
func (d *daemon) waitWorkingOrExit(splits int, bounded bool) bool {
	d.t.Helper()
	if !bounded {
		d.waitWorking(splits)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if id, err := d.lastCheckpoint(); err == nil && id > 0 {
			return false
		}
		select {
		case <-d.done:
			require.NoError(d.t, d.err, "streamd exit status\n%s", d.logTail())
			return true
		case <-ctx.Done():
			d.t.Fatalf("no checkpoint within %s\n%s", startTimeout, d.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// metric reads one unlabelled metric from /metrics, -1 if absent.
func (d *daemon) metric(name string) float64 {
	data, err := d.get("/metrics")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// cells lists the matrix: which faults apply to which example and store,
// and how many kills, stops or joins each gets (scaled by kills).
func cells(kills int) []matrixCell {
	var out []matrixCell
	add := func(example, fault, store string, n int) {
		out = append(out, matrixCell{example: example, fault: fault, store: store, n: n})
	}
	for _, store := range []string{"local", "minio"} {
		add("kafka-logs", "kill9", store, kills)
		add("kafka-logs", "sigterm", store, max(1, kills/4))
		add("kafka-logs", "rebalance", store, max(1, kills/10))
		add("kafka-logs", "outage", store, 1)
	}
	add("kafka-logs", "s3", "minio", 1)
	add("kafka-logs", "diskfull", "local", 1)
	add("kinesis-sensors", "kill9", "local", kills)
	add("kinesis-sensors", "sigterm", "local", max(1, kills/4))
	add("kinesis-sensors", "outage", "local", 1)
	add("kinesis-sensors", "diskfull", "local", 1)
	add("line-monitoring", "kill9", "local", kills)
	add("line-monitoring", "sigterm", "local", max(1, kills/4))
	add("line-monitoring", "diskfull", "local", 1)
	return out
}

// selected filters cells by MATRIX_CELLS globs ("kafka-logs/*/local,...").
func selected(t *testing.T, all []matrixCell) []matrixCell {
	t.Helper()
	spec := os.Getenv("MATRIX_CELLS")
	if spec == "" {
		if os.Getenv("MATRIX_KILLS") != "" {
			return all // the long form
		}
		spec = strings.Join(shortCells, ",")
	}
	var out []matrixCell
	for _, c := range all {
		for _, g := range strings.Split(spec, ",") {
			if ok, err := filepath.Match(strings.TrimSpace(g), c.String()); err == nil && ok {
				out = append(out, c)
				break
			}
		}
	}
	require.NotEmpty(t, out, "MATRIX_CELLS %q matches no cell", spec)
	return out
}

// shortKills is the number of kills per cell in the short form.
const shortKills = 3

// shortCells is the short form that runs with the tests: every fault and
// every example once, in a few minutes. The long form
// (scripts/crash-test.sh) runs every cell. The sensor example holds its
// alerts for Kafka until their checkpoint completes (delivery:
// exactlyOnce); a kill while a completed checkpoint's alerts are being
// handed over repeats them (docs/delivery.md), so its kill cell runs in
// the long form, where those repeats are counted.
var shortCells = []string{
	"kafka-logs/kill9/local", "kafka-logs/rebalance/local", "kafka-logs/outage/local", "kafka-logs/diskfull/local",
	"kafka-logs/s3/minio", "kinesis-sensors/sigterm/local", "line-monitoring/kill9/local",
}

func TestFaultMatrix(t *testing.T) {
	skipShort(t)
	n := shortKills
	if v := os.Getenv("MATRIX_KILLS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "MATRIX_KILLS")
	}
	s := seed(t)
	m := &matrixEnv{t: t, bin: buildDaemon(t), root: workDir(t), rng: rand.New(rand.NewPCG(s, 1)), refs: map[string]map[string]rowSet{}}
	m.w = newWorld(t, m.root)
	list := selected(t, cells(n))
	t.Logf("fault matrix: %d cells, %d kills per kill cell, seed %d (rerun with CRASH_SEED=%d); work dir %s", len(list), n, s, s, m.root)
	var mu sync.Mutex
	var results []cellResult
	for _, c := range list {
		t.Run(strings.ReplaceAll(c.String(), "/", "_"), func(t *testing.T) {
			mt := *m
			mt.t = t
			if c.store == "minio" {
				m.w.needMinIO(t)
			}
			run := m.w.newRun(t, c.example, c.fault, c.store)
			key := c.example + "/" + c.store + "/" + run.input
			ref, ok := m.refs[key]
			if !ok {
				ref = mt.reference(m.w.newRun(t, c.example, "ref-"+c.fault, c.store))
				m.refs[key] = ref
			}
			res := mt.runCell(c, ref, run)
			t.Log(res)
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
		})
	}
	var report strings.Builder
	for _, r := range results {
		status := "ok  "
		if !r.ok() {
			status = "FAIL"
		}
		fmt.Fprintf(&report, "\n%s %s", status, r)
	}
	t.Logf("fault matrix (seed %d):%s", s, report.String())
	if path := os.Getenv("MATRIX_REPORT"); path != "" {
		_ = os.WriteFile(path, []byte(report.String()+"\n"), 0o644)
	}
}
