package coordinator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	"github.com/streamd/streamd/pkg/keyed"
	"github.com/streamd/streamd/pkg/operator/coordinator"
	"github.com/streamd/streamd/pkg/operator/marker"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source"
)

const (
	prefix    = "pipelines/fake"
	stage     = "w"
	keyGroups = 8
	timeout   = 10 * time.Second
)

// fakeRuntime is a runtime of one split ("in/0") and one subtask of stage
// w, writing to one transactional sink; no task runs. A test plays the
// tasks: it takes each injected barrier from barriers and acknowledges it
// (or not) through the coordinator's marker handler.
type fakeRuntime struct {
	sinks    []coordinator.Sink
	barriers chan *coordinator.Request

	mu       sync.Mutex
	restored *coordinator.RestoreState
}

func newFakeRuntime(sk sink.Sink) *fakeRuntime {
	return &fakeRuntime{sinks: []coordinator.Sink{{Name: "out", Sink: sk}}, barriers: make(chan *coordinator.Request, 16)}
}

func (f *fakeRuntime) Pipeline() string                 { return "fake" }
func (f *fakeRuntime) KeyGroups() int                   { return keyGroups }
func (f *fakeRuntime) Stages() []string                 { return []string{stage} }
func (f *fakeRuntime) Subtasks() int                    { return 1 }
func (f *fakeRuntime) Sinks() []coordinator.Sink        { return f.sinks }
func (f *fakeRuntime) Sources() []coordinator.Source    { return nil }
func (f *fakeRuntime) Failed() bool                     { return false }
func (f *fakeRuntime) Outage(time.Duration) []error     { return nil }
func (f *fakeRuntime) EndedCommitted(coordinator.Ended) {}

func (f *fakeRuntime) Ended([]checkpoint.SplitState, []checkpoint.SinkState) coordinator.Ended {
	return coordinator.Ended{}
}

func (f *fakeRuntime) Inject(req *coordinator.Request, counted func(int)) (int, error) {
	if counted != nil {
		counted(1)
	}
	f.barriers <- req
	return 1, nil
}

func (f *fakeRuntime) Restore(rs *coordinator.RestoreState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restored = rs
	return nil
}

// txSink is a transactional sink that records what it is asked to commit
// and recover.
type txSink struct {
	mu        sync.Mutex
	committed map[string][]byte // by task, the last committed state
	recovered map[string][]byte
}

func (s *txSink) NewWriter(string, *record.Schema) (sink.Writer, error) {
	return nil, errors.New("no writers in these tests")
}
func (s *txSink) Close(context.Context) error { return nil }

func (s *txSink) Commit(_ context.Context, task string, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed == nil {
		s.committed = make(map[string][]byte)
	}
	s.committed[task] = bytes.Clone(state)
	return nil
}

func (s *txSink) Recover(_ context.Context, states map[string][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recovered = states
	return nil
}

// snapshotOp is a subtask's operator as the coordinator sees it at a
// barrier: a watermark and a snapshot per key group.
type snapshotOp struct {
	keyed.Operator // nothing else is called
	wm             int64
	groups         map[uint16][]byte
}

func (o snapshotOp) Watermark() int64                     { return o.wm }
func (o snapshotOp) Snapshot() map[uint16][]byte          { return o.groups }
func (o snapshotOp) BeginSnapshot() keyed.PendingSnapshot { return keyed.Taken(o.groups) }

// faultyStore fails state writes (Put) or the manifest's conditional
// create (PutIfAbsent), the write that makes a checkpoint complete, when told.
type faultyStore struct {
	store.Store
	failPut, failCreate atomic.Bool
}

var errInjected = errors.New("injected store failure")

func (s *faultyStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if s.failPut.Load() {
		return errInjected
	}
	return s.Store.Put(ctx, key, r, size)
}

func (s *faultyStore) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if s.failCreate.Load() {
		return errInjected
	}
	return s.Store.PutIfAbsent(ctx, key, data)
}

type harness struct {
	t   *testing.T
	st  store.Store
	rt  *fakeRuntime
	sk  *txSink
	c   *coordinator.Coordinator
	reg *prometheus.Registry
}

func newHarness(t *testing.T, st store.Store, retain int) *harness {
	t.Helper()
	h := &harness{t: t, st: st, sk: &txSink{}, reg: prometheus.NewRegistry()}
	h.rt = newFakeRuntime(h.sk)
	c, err := coordinator.New(h.rt, coordinator.Config{Store: st, Timeout: timeout, Retain: retain}, nil, h.reg)
	require.NoError(t, err)
	h.c = c
	return h
}

func newLocalStore(t *testing.T) store.Store {
	t.Helper()
	st, err := local.New(t.TempDir())
	require.NoError(t, err)
	return st
}

type result struct {
	id  int64
	err error
}

// trigger starts a periodic checkpoint and returns its barrier and where
// Trigger's result arrives.
func (h *harness) trigger() (*coordinator.Request, <-chan result) {
	h.t.Helper()
	done := make(chan result, 1)
	go func() {
		id, err := h.c.Trigger(context.Background(), false, false)
		done <- result{id, err}
	}()
	return <-h.rt.barriers, done
}

// cut is what the tasks report for one checkpoint.
type cut struct {
	offset    int64             // the split's next position
	splitWM   int64             // the split's watermark
	subWM     int64             // the subtask's watermark
	groups    map[uint16][]byte // the subtask's state
	splitSink []byte            // the state of the split's writer
	subSink   []byte            // the state of the subtask's writer
}

func (h *harness) ackSplit(req *coordinator.Request, c cut) {
	h.c.AtSplit(marker.Marker{ID: req.ID(), Payload: req}, marker.SplitCut{
		Source: "in", Split: "0", Next: source.Position{Offset: c.offset}, Watermark: c.splitWM,
		Sinks: []checkpoint.SinkState{{Sink: "out", Task: "in-0", State: c.splitSink}},
	})
}

func (h *harness) ackSubtask(req *coordinator.Request, c cut) {
	h.c.AtSubtask(marker.Marker{ID: req.ID(), Payload: req}, h.subtask(c))
}

func (h *harness) subtask(c cut) *marker.SubtaskContext {
	return &marker.SubtaskContext{Stage: stage, Index: 0, Operator: snapshotOp{wm: c.subWM, groups: c.groups},
		Sinks: []checkpoint.SinkState{{Sink: "out", Task: "w-0", State: c.subSink}}}
}

// metric returns the value of a counter or gauge of the coordinator.
func (h *harness) metric(name string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	require.NoError(h.t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	h.t.Fatalf("metric %s not registered", name)
	return 0
}

func retained(t *testing.T, st store.Store) []int64 {
	t.Helper()
	infos, err := checkpoint.List(context.Background(), st, prefix)
	require.NoError(t, err)
	ids := []int64{}
	for _, info := range infos {
		ids = append(ids, info.ID)
	}
	return ids
}

// cutOf is the distinct content of checkpoint id's cut.
func cutOf(id int64) cut {
	c := cut{
		offset: 100 * id, splitWM: 1000 * id, subWM: 1000*id - 1,
		groups:    map[uint16][]byte{1: fmt.Appendf(nil, "kg1@%d", id), 6: fmt.Appendf(nil, "kg6@%d", id)},
		splitSink: fmt.Appendf(nil, "split-sink@%d", id),
		subSink:   fmt.Appendf(nil, "subtask-sink@%d", id),
	}
	if id%2 == 0 {
		// Larger than what the manifest keeps inline: a blob of its own.
		c.subSink = bytes.Repeat(c.subSink, (70<<10)/len(c.subSink))
	}
	return c
}

// A checkpoint whose subtask never acknowledges fails after the timeout
// and is counted; the next one is taken and completes.
func TestTimedOutCheckpointIsCountedAndTheNextCompletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newLocalStore(t), 3)
		start := time.Now()
		req, done := h.trigger()
		require.EqualValues(t, 1, req.ID())
		h.ackSplit(req, cutOf(1)) // the subtask's acknowledgement never comes
		r := <-done
		require.EqualError(t, r.err, "checkpoint 1 timed out after 10s")
		require.Equal(t, timeout, time.Since(start), "failed at its timeout")
		require.Equal(t, 1.0, h.metric("streamd_checkpoint_failures_total"))
		require.Equal(t, 0.0, h.metric("streamd_checkpoints_completed_total"))
		require.Empty(t, retained(t, h.st))
		require.Zero(t, h.c.LastCompleted())

		req, done = h.trigger()
		require.EqualValues(t, 2, req.ID())
		h.ackSplit(req, cutOf(2))
		h.ackSubtask(req, cutOf(2))
		r = <-done
		require.NoError(t, r.err)
		require.EqualValues(t, 2, r.id)
		require.Equal(t, 1.0, h.metric("streamd_checkpoint_failures_total"))
		require.Equal(t, 1.0, h.metric("streamd_checkpoints_completed_total"))
		require.Equal(t, 2.0, h.metric("streamd_checkpoint_last_id"))
		require.Equal(t, []int64{2}, retained(t, h.st))
		require.EqualValues(t, 2, h.c.LastCompleted())
		m, err := checkpoint.Latest(context.Background(), h.st, prefix)
		require.NoError(t, err)
		require.Equal(t, []checkpoint.SplitState{{Source: "in", Split: "0", Next: source.Position{Offset: 200}, Watermark: 2000}}, m.Splits)
	})
}

// A checkpoint whose state or manifest cannot be written fails and is
// counted; the last completed checkpoint stays the latest, the retained
// ones stay, and readiness reports the store until one completes again.
func TestStoreFailureKeepsTheCompletedCheckpoints(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &faultyStore{Store: newLocalStore(t)}
		h := newHarness(t, st, 2)
		take := func(want int64) result {
			req, done := h.trigger()
			require.Equal(t, want, req.ID())
			h.ackSplit(req, cutOf(want))
			h.ackSubtask(req, cutOf(want))
			return <-done
		}
		for id := int64(1); id <= 2; id++ {
			require.NoError(t, take(id).err)
		}
		require.Equal(t, []int64{1, 2}, retained(t, st))

		st.failPut.Store(true)
		r := take(3)
		require.EqualError(t, r.err, "write checkpoint 3 state: injected store failure")
		require.ErrorIs(t, h.c.StoreFailure(), errInjected)
		require.EqualError(t, h.c.StoreFailure(), "checkpoint 3 failed on its store: write checkpoint 3 state: injected store failure")
		st.failPut.Store(false)

		st.failCreate.Store(true)
		r = take(4)
		require.EqualError(t, r.err, "write checkpoint 4 manifest: injected store failure")
		st.failCreate.Store(false)

		require.Equal(t, 2.0, h.metric("streamd_checkpoint_failures_total"))
		require.Equal(t, 2.0, h.metric("streamd_checkpoints_completed_total"))
		require.EqualValues(t, 2, h.c.LastCompleted())
		require.Equal(t, []int64{1, 2}, retained(t, st), "no retained checkpoint was deleted")
		m, err := checkpoint.Latest(context.Background(), st, prefix)
		require.NoError(t, err)
		require.EqualValues(t, 2, m.ID)
		for _, id := range []int64{1, 2} {
			_, err := checkpoint.Load(context.Background(), st, checkpoint.ManifestKey(prefix, id))
			require.NoError(t, err, "checkpoint %d is whole", id)
		}

		// Once the store writes again, checkpoints complete and retention
		// goes on from the newest.
		require.NoError(t, take(5).err)
		require.NoError(t, h.c.StoreFailure())
		require.Equal(t, []int64{2, 5}, retained(t, st))
	})
}

// Acknowledgements of a checkpoint that timed out, arriving while the
// next one is in progress, neither complete the next one nor end up in it.
func TestLateAcknowledgementIsIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newLocalStore(t), 3)
		stale, done := h.trigger()
		// The subtask begins an asynchronous snapshot that finishes late;
		// the split's acknowledgement is delayed too.
		var finishStale func()
		sub := h.subtask(cut{subWM: 5, groups: map[uint16][]byte{1: []byte("stale")}, subSink: []byte("stale")})
		sub.Async = func(start func() (<-chan struct{}, func())) {
			wait, finish := start()
			<-wait
			finishStale = finish
		}
		h.c.AtSubtask(marker.Marker{ID: stale.ID(), Payload: stale}, sub)
		require.NotNil(t, finishStale)
		require.EqualError(t, (<-done).err, "checkpoint 1 timed out after 10s")

		req, done := h.trigger()
		require.EqualValues(t, 2, req.ID())
		finishStale()
		h.ackSplit(stale, cut{offset: 999, splitSink: []byte("stale")})
		h.ackSplit(req, cutOf(2))
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("checkpoint 2 ended before its subtask acknowledged it: %v", r.err)
		default:
		}
		require.Empty(t, retained(t, h.st))

		h.ackSubtask(req, cutOf(2))
		r := <-done
		require.NoError(t, r.err)
		require.Equal(t, 1.0, h.metric("streamd_checkpoint_failures_total"))
		require.Equal(t, 1.0, h.metric("streamd_checkpoints_completed_total"))

		m, err := checkpoint.Latest(context.Background(), h.st, prefix)
		require.NoError(t, err)
		require.EqualValues(t, 2, m.ID)
		want := cutOf(2)
		require.Equal(t, []checkpoint.SplitState{{Source: "in", Split: "0", Next: source.Position{Offset: want.offset}, Watermark: want.splitWM}}, m.Splits)
		require.Len(t, m.Stages, 1)
		require.Len(t, m.Stages[0].Blobs, 1, "one blob: the stale part is not in it")
		require.Equal(t, want.subWM, m.Stages[0].Blobs[0].Watermark)
		var tasks []string
		for _, s := range m.Sinks {
			tasks = append(tasks, s.Task)
			require.NotEqual(t, "stale", string(s.State))
		}
		require.ElementsMatch(t, []string{"in-0", "w-0"}, tasks)

		rs := restore(t, h.st, 2)
		require.Equal(t, want.groups, rs.Groups[stage])
	})
}

// restoreWith restores checkpoint id, and recovers the sink from it, with
// the coordinator of a new runtime over st: what a restart does.
func restoreWith(t *testing.T, st store.Store, id int64) (*harness, *checkpoint.Manifest) {
	t.Helper()
	h := newHarness(t, st, 3)
	m, err := h.c.Restore(context.Background(), id)
	require.NoError(t, err)
	require.NoError(t, h.c.RecoverSinks(context.Background()))
	return h, m
}

// restore restores checkpoint id as restoreWith does and returns what the
// runtime was handed.
func restore(t *testing.T, st store.Store, id int64) *coordinator.RestoreState {
	t.Helper()
	h, _ := restoreWith(t, st, id)
	return h.rt.restored
}

// With Retain 2, five checkpoints leave exactly the last two, and each
// restores its own split position, key-group state and sink states.
func TestRetainedCheckpointsRestoreTheirOwnState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newLocalStore(t)
		h := newHarness(t, st, 2)
		for id := int64(1); id <= 5; id++ {
			req, done := h.trigger()
			require.Equal(t, id, req.ID())
			h.ackSubtask(req, cutOf(id))
			h.ackSplit(req, cutOf(id))
			r := <-done
			require.NoError(t, r.err)
			require.Equal(t, retained(t, st)[len(retained(t, st))-1], id)
			require.LessOrEqual(t, len(retained(t, st)), 2)
			c := cutOf(id)
			require.Equal(t, map[string][]byte{"in-0": c.splitSink, "w-0": c.subSink}, h.sk.committed, "checkpoint %d committed its sink states", id)
		}
		require.Equal(t, []int64{4, 5}, retained(t, st))
		objs, err := st.List(context.Background(), prefix+"/")
		require.NoError(t, err)
		for _, o := range objs {
			require.True(t, strings.HasPrefix(o.Key, checkpoint.Dir(prefix, 4)+"/") || strings.HasPrefix(o.Key, checkpoint.Dir(prefix, 5)+"/"),
				"%s belongs to a retained checkpoint", o.Key)
		}

		for _, id := range []int64{4, 5} {
			want := cutOf(id)
			r, m := restoreWith(t, st, id)
			require.Equal(t, id, m.ID)
			rs := r.rt.restored
			require.Equal(t, map[string]checkpoint.SplitState{"in/0": {Source: "in", Split: "0", Next: source.Position{Offset: want.offset}, Watermark: want.splitWM}}, rs.Splits)
			require.Equal(t, map[string]map[uint16][]byte{stage: want.groups}, rs.Groups)
			require.Equal(t, map[string]map[uint16]int64{stage: {1: want.subWM, 6: want.subWM}}, rs.Watermarks)
			require.Equal(t, map[string]int64{stage: want.subWM}, rs.StageWatermarks)
			pos, wm, ok := rs.TakeStartPosition("in", "0")
			require.True(t, ok)
			require.Equal(t, want.offset, pos.Offset)
			require.Equal(t, want.splitWM, wm)
			require.Equal(t, map[string][]byte{"in-0": want.splitSink, "w-0": want.subSink}, r.sk.recovered, "checkpoint %d hands its sink states to recovery", id)
			require.Equal(t, float64(id), r.metric("streamd_restored_checkpoint_id"))
			require.Equal(t, id, r.c.LastCompleted())
		}
		for _, id := range []int64{1, 2, 3} {
			_, err := newHarness(t, st, 2).c.Restore(context.Background(), id)
			require.ErrorIs(t, err, store.ErrNotFound, "checkpoint %d was deleted", id)
		}
	})
}
