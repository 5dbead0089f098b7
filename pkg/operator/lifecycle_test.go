package operator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/sink/hold"
	"github.com/streamd/streamd/pkg/source"
	"github.com/streamd/streamd/pkg/source/generator"
	"github.com/streamd/streamd/pkg/window"
)

// seqFields decodes the test sources' records: {"n": <sequence>}.
var seqFields = []decode.Field{{Name: "n", Path: []string{"n"}, Type: record.TypeInt}}

func seqDecoder() (Decoder, error) { return decode.NewJSON(decode.Config{Fields: seqFields}) }

// rowSink records every row written, by task, and checks its writers the
// way a file sink would: a write with a cancelled context fails, and two
// open writers of one task collide.
type rowSink struct {
	mu         sync.Mutex
	rows       map[string][]int64 // task → values of field n, in order
	open       map[string]int
	collisions []string
	closes     []string // tasks, in the order their writers closed
}

func newRowSink() *rowSink {
	return &rowSink{rows: make(map[string][]int64), open: make(map[string]int)}
}

func (s *rowSink) NewWriter(task string, _ *record.Schema) (sink.Writer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[task] > 0 {
		s.collisions = append(s.collisions, task)
	}
	s.open[task]++
	return &rowWriter{s: s, task: task}, nil
}

func (s *rowSink) Close(context.Context) error { return nil }

func (s *rowSink) all() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int64
	for _, r := range s.rows {
		out = append(out, r...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

type rowWriter struct {
	s      *rowSink
	task   string
	closed bool
}

func (w *rowWriter) Write(ctx context.Context, b *record.Batch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write rows: %w", err)
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	for i := 0; i < b.Len(); i++ {
		w.s.rows[w.task] = append(w.s.rows[w.task], b.Row(i)[0].Int())
	}
	return nil
}

func (w *rowWriter) Close(context.Context) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if !w.closed {
		w.closed = true
		w.s.open[w.task]--
		w.s.closes = append(w.s.closes, w.task)
	}
	return nil
}

// seqSource is a dynamic source of numbered records {"n": offset}, split
// "s" only, whose assignments the test drives. Like a Kafka partition in a
// group, a reader opened without a start position begins at the offset
// last committed.
type seqSource struct {
	events    chan source.Event
	delivered chan source.Event // events whose fn call returned
	// readSlow makes every Read wait, so tasks are caught mid-read.
	readSlow time.Duration
	// closeSlow makes Reader.Close wait, as a reader flushing state does.
	closeSlow time.Duration
	// deliverAtStop makes a Read in progress when the stop comes return the
	// records it fetched, as kafka-go's batch gathering does.
	deliverAtStop bool

	mu        sync.Mutex
	committed map[string]int64
	opened    []int64 // start offset of every reader
	read      int64   // records handed out
}

func newSeqSource() *seqSource {
	return &seqSource{events: make(chan source.Event, 8), delivered: make(chan source.Event, 8), committed: make(map[string]int64)}
}

func (s *seqSource) Splits(context.Context) ([]source.Split, error) { return nil, nil }

func (s *seqSource) Open(_ context.Context, sp source.Split, start *source.Position) (source.Reader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.committed[sp.ID]
	if start != nil {
		next = start.Offset
	}
	s.opened = append(s.opened, next)
	return &seqReader{src: s, next: next}, nil
}

func (s *seqSource) Close(context.Context) error { return nil }

func (s *seqSource) Watch(ctx context.Context, fn func(source.Event) error) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-s.events:
			if err := fn(ev); err != nil {
				return err
			}
			s.delivered <- ev
		}
	}
}

func (s *seqSource) Commit(_ context.Context, offsets map[string]int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range offsets {
		s.committed[k] = v
	}
	return nil
}

type seqReader struct {
	src  *seqSource
	next int64
	done bool
}

func (r *seqReader) Read(ctx context.Context, b *source.Batch, max int) error {
	if r.src.deliverAtStop {
		<-ctx.Done()
		if r.done || !errors.Is(ctx.Err(), context.Canceled) {
			return ctx.Err()
		}
		r.done = true
	} else if r.src.readSlow > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.src.readSlow):
		}
	}
	n := min(max, 10)
	for range n {
		b.Messages = append(b.Messages, source.Message{Value: []byte(`{"n":` + strconv.FormatInt(r.next, 10) + `}`), Position: source.Position{Offset: r.next}})
		r.next++
	}
	r.src.mu.Lock()
	r.src.read += int64(n)
	r.src.mu.Unlock()
	return nil
}

func (r *seqReader) Position() source.Position { return source.Position{Offset: r.next} }

func (r *seqReader) Close() error {
	time.Sleep(r.src.closeSlow)
	return nil
}

var (
	_ source.Dynamic         = (*seqSource)(nil)
	_ source.OffsetCommitter = (*seqSource)(nil)
	_ source.Positioner      = (*seqReader)(nil)
)

func seqJob(src *seqSource, sk sink.Sink) Job {
	return Job{
		Name: "lifecycle", Parallelism: 1, TickInterval: 20 * time.Millisecond,
		Sources: []SourceSpec{{Name: "seq", Source: src, Watermark: WatermarkConfig{SenderField: -1}, NewDecoder: seqDecoder}},
		Sinks:   []SinkSpec{{Name: "rows", Input: "seq", Sink: sk}},
	}
}

// A stop that comes while a split is reading must not lose the batch that
// read returns: the split writes it with the drain context, not with the
// cancelled one (a sink attached directly to a source refused the write
// with "context canceled" and the pipeline exited with an error).
func TestDrainWritesLastBatch(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	src := newSeqSource()
	src.deliverAtStop = true
	rows := newRowSink()
	rt, err := New(seqJob(src, rows), nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	src.events <- source.Event{Split: source.Split{ID: "s"}}
	<-src.delivered
	require.Eventually(t, func() bool { return len(rt.Status().Splits) == 1 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done, "a drain writes what the last read returned")
	require.Equal(t, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, rows.all())
}

// A revoked split is drained and closed before the next event: a quick
// re-assignment of the same split never runs two tasks of it at once
// (their writers would share file names and status keys).
func TestRevokedSplitDrainsBeforeNextEvent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	src := newSeqSource()
	src.readSlow = 5 * time.Millisecond
	src.closeSlow = 100 * time.Millisecond
	rows := newRowSink()
	rt, err := New(seqJob(src, rows), nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	split := source.Split{ID: "s"}
	for range 3 {
		src.events <- source.Event{Split: split}
		<-src.delivered
		require.Eventually(t, func() bool { return len(rows.all()) > 0 }, 10*time.Second, time.Millisecond)
		src.events <- source.Event{Split: split, Revoked: true}
		<-src.delivered
		rows.mu.Lock()
		open := rows.open["split-seq-s"]
		rows.mu.Unlock()
		require.Zero(t, open, "the revoked split's writers are closed when its revocation returns")
	}
	cancel()
	require.NoError(t, <-done)
	require.Empty(t, rows.collisions, "two tasks of one split wrote at once")
}

// With checkpoints, a revoked split stops behind a checkpoint of its own:
// when the revocation returns, everything the split read is delivered and
// its position committed, so the next reader — here, the same split
// assigned again, starting at the committed offset — continues exactly
// after it. Over several re-assignments every record arrives once.
func TestRevokedSplitCommitsBeforeNextOwner(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	src := newSeqSource()
	src.readSlow = 2 * time.Millisecond
	rows := newRowSink()
	st, err := local.New(t.TempDir())
	require.NoError(t, err)
	job := seqJob(src, hold.New(rows))
	job.Checkpoint = &CheckpointConfig{Store: st, Interval: 50 * time.Millisecond, SavepointOnStop: true}
	rt, err := New(job, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	split := source.Split{ID: "s"}
	for i := range 4 {
		src.events <- source.Event{Split: split}
		<-src.delivered
		require.Eventually(t, func() bool { return len(rows.all()) > 20*(i+1) }, 20*time.Second, time.Millisecond)
		src.events <- source.Event{Split: split, Revoked: true}
		<-src.delivered
		src.mu.Lock()
		committed, read := src.committed["s"], src.read
		src.mu.Unlock()
		require.Equal(t, read, committed, "the revoked split's position is committed when its revocation returns")
		require.Len(t, rows.all(), int(read), "and everything it read is delivered")
	}
	cancel()
	require.NoError(t, <-done)
	got := rows.all()
	for i, n := range got {
		require.Equal(t, int64(i), n, "every record exactly once, in order")
	}
	require.Equal(t, []int64{0}, src.opened[:1])
	for i := 1; i < len(src.opened); i++ {
		require.Positive(t, src.opened[i], "each new reader starts where the last one committed")
	}
}

// The end of a bounded input ends in a checkpoint that covers everything
// published: a restart restores it and publishes nothing again (the
// output of the last windows was published without a checkpoint, and the
// restart replayed the input since the last periodic one).
func TestEndOfInputEndsInFinalCheckpoint(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	gen, err := generator.New(generator.Config{Seed: 5, Splits: 2, Machines: 4, Tags: 2, Count: 3000, Rate: 20000, Step: 10 * time.Millisecond, StartTime: time.Unix(1_700_000_000, 0)})
	require.NoError(t, err)
	fields := []decode.Field{
		{Name: "equipmentId", Path: []string{"equipmentId"}, Type: record.TypeString},
		{Name: "ts", Path: []string{"timestamp"}, Type: record.TypeTimestamp, TimeFormat: decode.TimeEpochMS},
	}
	run := func() *rowSink {
		rows := newRowSink()
		st, err := local.New(dir)
		require.NoError(t, err)
		rt, err := New(Job{
			Name: "final", Parallelism: 2, TickInterval: 20 * time.Millisecond,
			Sources: []SourceSpec{{
				Name: "gen", Source: gen, Watermark: WatermarkConfig{SenderField: -1},
				NewDecoder: func() (Decoder, error) {
					return decode.NewJSON(decode.Config{Fields: fields, EventTimeField: "ts"})
				},
			}},
			Stages: []StageSpec{{
				Name: "w", Input: "gen", KeyBy: []string{"equipmentId"},
				Assigner:     window.Assigner{Kind: window.Tumbling, Size: 1000, Slide: 1000},
				Aggregates:   []window.Spec{{Fn: "count"}},
				NewAggregate: window.NewAggregate,
			}},
			Sinks:      []SinkSpec{{Name: "rows", Input: "w", Sink: hold.New(rows)}},
			Checkpoint: &CheckpointConfig{Store: st, Interval: 30 * time.Millisecond, SavepointOnStop: true},
		}, nil, nil)
		require.NoError(t, err)
		require.NoError(t, rt.Run(context.Background()))
		return rows
	}
	first := run()
	require.NotEmpty(t, first.all())
	st, err := local.New(dir)
	require.NoError(t, err)
	m, err := checkpoint.Latest(context.Background(), st, "pipelines/final")
	require.NoError(t, err)
	require.True(t, m.Final, "the newest checkpoint is the final one")
	require.Len(t, m.Splits, 2)
	for _, s := range m.Splits {
		require.True(t, s.Finished, "split %s is recorded as read to its end", s.Split)
		require.Equal(t, int64(3000), s.Next.Offset)
	}
	second := run()
	require.Empty(t, second.all(), "a restart after the end of the input publishes nothing again")
}

// A revoked split leaves the valve: it stops holding event time back, but
// neither its end nor the end of every input it leaves behind ends event
// time or counts as idle (idle advance would fire windows while a
// rebalance has no split assigned).
func TestValveLeave(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name     string
		steps    func(v *valve) (int64, bool)
		wantWM   int64
		wantIdle bool
	}{
		{"a split that leaves no longer holds the watermark", func(v *valve) (int64, bool) {
			v.input(0)
			v.input(1)
			v.update(0, 100, false, false, now)
			v.update(1, 50, false, false, now)
			return v.leave(1, now)
		}, 100, false},
		{"all splits left: event time holds, not idle", func(v *valve) (int64, bool) {
			v.update(0, 100, false, false, now)
			v.update(1, 50, false, false, now)
			v.leave(0, now)
			return v.leave(1, now)
		}, 100, false},
		{"one finished, one left: event time holds", func(v *valve) (int64, bool) {
			v.update(0, 100, false, false, now)
			v.update(1, 50, false, false, now)
			v.update(0, maxWM, false, true, now)
			return v.leave(1, now)
		}, 100, false},
		{"all finished: event time ends", func(v *valve) (int64, bool) {
			v.update(0, 100, false, false, now)
			return v.update(0, maxWM, false, true, now)
		}, maxWM, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newValve()
			wm, idle := tt.steps(v)
			require.Equal(t, tt.wantWM, wm)
			require.Equal(t, tt.wantIdle, idle)
			_, advanced := v.idleAdvance(now.Add(time.Hour), time.Second)
			require.False(t, advanced && tt.wantWM != maxWM, "idle advance does not move event time while no split is assigned")
		})
	}
}
