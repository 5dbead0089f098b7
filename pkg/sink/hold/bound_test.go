package hold

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// memSink collects delivered rows; failing makes its writes fail.
type memSink struct {
	mu      sync.Mutex
	ids     []string
	failing bool
}

func (m *memSink) NewWriter(string, *record.Schema) (sink.Writer, error) { return m, nil }
func (m *memSink) Close(context.Context) error                           { return nil }
func (m *memSink) Write(_ context.Context, b *record.Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failing {
		return errors.New("sink unavailable")
	}
	for i := 0; i < b.Len(); i++ {
		m.ids = append(m.ids, b.Row(i)[0].S)
	}
	return nil
}

// put is what the runtime does for every batch: wait for room (on the
// task's goroutine), then write (on the writer's).
func put(ctx context.Context, w *Writer, b *record.Batch) error {
	w.AwaitRoom(ctx)
	return w.Write(ctx, b)
}

// writeAsync puts b on another goroutine; the returned channel is closed
// once it is written.
func writeAsync(t *testing.T, w *Writer, b *record.Batch) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		require.NoError(t, put(context.Background(), w, b))
	}()
	return done
}

func blocked(done chan struct{}) bool {
	synctest.Wait()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// The protocol a writer past its bound follows, step by step: it waits
// only for what can come without its task — a checkpoint to start, or
// one every task acknowledged to deliver — and stops waiting when that
// checkpoint fails or cannot start.
func TestWriterPastItsBoundWaitsOnlyForWhatCanCome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		inner := &memSink{}
		s := NewWith(inner, Config{Name: "alerts", MaxHeldBytes: 16}, prometheus.NewRegistry())
		requests := 0
		s.BindCheckpoints(func() { requests++ })
		wi, err := s.NewWriter("stage-0", schema)
		require.NoError(t, err)
		w := wi.(*Writer)
		require.NoError(t, put(ctx, w, batch("a", "b")), "below the bound: no wait")

		// Past the bound with nothing closed: ask for a checkpoint and wait
		// for it to start, then go on to meet its barrier.
		done := writeAsync(t, w, batch("c"))
		require.True(t, blocked(done))
		require.Equal(t, 1, requests)
		s.CheckpointStarted(1)
		require.False(t, blocked(done))
		st1, err := w.Prepare(ctx, 1)
		require.NoError(t, err)

		// Checkpoint 1 may still need this task (its snapshot): no wait.
		require.NoError(t, put(ctx, w, batch("d")))
		// Once every task acknowledged it, wait for its delivery.
		s.CheckpointAcknowledged(1)
		done = writeAsync(t, w, batch("e"))
		require.True(t, blocked(done))
		require.NoError(t, s.Commit(ctx, "stage-0", st1))
		require.False(t, blocked(done), "delivery released the task")
		require.Equal(t, []string{"a", "b", "c"}, inner.ids)

		// Checkpoint 2 is acknowledged, then fails: the writer stops waiting
		// for it, asks for another and goes on once that one starts.
		s.CheckpointStarted(2)
		_, err = w.Prepare(ctx, 2)
		require.NoError(t, err)
		s.CheckpointAcknowledged(2)
		done = writeAsync(t, w, batch("f"))
		require.True(t, blocked(done))
		s.CheckpointAborted(2)
		require.True(t, blocked(done), "waits for a new checkpoint to start")
		require.Equal(t, 2, requests)
		s.CheckpointStarted(3)
		require.False(t, blocked(done))
		st3, err := w.Prepare(ctx, 3)
		require.NoError(t, err)
		s.CheckpointAcknowledged(3)

		// A delivery that fails stops the wait for it too: the rows go with
		// the next checkpoint, asked for at once.
		inner.failing = true
		done = writeAsync(t, w, batch("g"))
		require.True(t, blocked(done))
		require.Error(t, s.Commit(ctx, "stage-0", st3))
		require.True(t, blocked(done), "waits for a new checkpoint to start")
		require.Equal(t, 3, requests)
		s.CheckpointStarted(4)
		require.False(t, blocked(done))

		// Delivered by the next checkpoint: nothing lost, nothing twice.
		inner.failing = false
		st4, err := w.Prepare(ctx, 4)
		require.NoError(t, err)
		s.CheckpointAcknowledged(4)
		require.NoError(t, s.Commit(ctx, "stage-0", st4))
		require.Equal(t, []string{"a", "b", "c", "d", "e", "f", "g"}, inner.ids)
		require.NoError(t, put(ctx, w, record.NewBatch(2, 0)))
		require.Zero(t, s.heldRows.Load(), "the next write frees what was delivered")
		require.Zero(t, s.heldBytes.Load())

		// Once no checkpoint will come, nothing waits any more.
		s.CheckpointAborted(math.MaxInt64)
		for range 10 {
			require.NoError(t, put(ctx, w, batch("h", "i", "j")))
		}
	})
}

// Without a coordinator (no checkpoints bound) a writer never waits:
// nothing would release it.
func TestUnboundWriterNeverWaits(t *testing.T) {
	s := NewWith(&memSink{}, Config{MaxHeldBytes: 8}, nil)
	w, err := s.NewWriter("t", schema)
	require.NoError(t, err)
	for range 100 {
		require.NoError(t, put(context.Background(), w.(*Writer), batch("x")))
	}
	require.EqualValues(t, 100, s.heldRows.Load())
	require.NoError(t, w.Close(context.Background()))
	require.Zero(t, s.heldRows.Load())
}

// The bound is the sink's, shared evenly by its writers (as Kafka Streams
// divides its record cache among stream threads), with a floor: more
// producing tasks do not multiply what the sink may hold.
func TestWritersShareTheBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := NewWith(&memSink{}, Config{MaxHeldBytes: 4 * minShare}, nil)
		s.BindCheckpoints(func() {})
		var ws []*Writer
		for i := range 8 {
			w, err := s.NewWriter(fmt.Sprintf("split-%d", i), schema)
			require.NoError(t, err)
			ws = append(ws, w.(*Writer))
		}
		require.EqualValues(t, minShare, s.share(), "8 writers: the floor")
		// Fill writer 0 past the floor: its task waits, the others do not.
		big := make([]string, 0, 4096)
		for i := range cap(big) {
			big = append(big, fmt.Sprintf("alert-%06d-%s", i, strings.Repeat("x", 60)))
		}
		for ws[0].bytes < minShare {
			require.NoError(t, put(ctx, ws[0], batch(big...)))
		}
		done := writeAsync(t, ws[0], batch("a"))
		require.True(t, blocked(done), "writer 0 holds its share")
		require.NoError(t, put(ctx, ws[1], batch("b")), "writer 1 has room")
		// Six writers close: two share the bound, 2 shares each.
		for _, w := range ws[2:] {
			require.NoError(t, w.Close(ctx))
		}
		require.EqualValues(t, 2*minShare, s.share())
		require.False(t, blocked(done), "writer 0's share grew")
	})
}

// A hand-over that failed is retried with the next checkpoint: until then
// the sink reports it as retrying (the pipeline is not ready), since when,
// and stops once the rows are delivered.
func TestFailedHandoverIsRetrying(t *testing.T) {
	ctx := context.Background()
	inner := &memSink{failing: true}
	s := New(inner)
	w, err := s.NewWriter("stage-0", schema)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, batch("a", "b")))
	st1, err := w.(sink.Preparer).Prepare(ctx, 1)
	require.NoError(t, err)
	require.NoError(t, s.Retrying())
	before := time.Now()
	require.Error(t, s.Commit(ctx, "stage-0", st1))
	var re *store.RetryError
	require.ErrorAs(t, s.Retrying(), &re)
	require.False(t, re.Since.Before(before))
	require.Contains(t, re.Error(), "sink unavailable")

	inner.mu.Lock()
	inner.failing = false
	inner.mu.Unlock()
	require.NoError(t, w.Write(ctx, batch("c")))
	st2, err := w.(sink.Preparer).Prepare(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, s.Commit(ctx, "stage-0", st2))
	require.NoError(t, s.Retrying())
	require.Equal(t, []string{"a", "b", "c"}, inner.ids)
}
