package hold

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

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

// writeAsync writes b on another goroutine; the returned channel is closed
// once Write returned.
func writeAsync(t *testing.T, w sink.Writer, b *record.Batch) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		require.NoError(t, w.Write(context.Background(), b))
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
		require.NoError(t, w.Write(ctx, batch("a", "b")), "below the bound: no wait")

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
		require.NoError(t, w.Write(ctx, batch("d")))
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
		require.NoError(t, w.Write(ctx, record.NewBatch(2, 0)))
		require.Zero(t, s.heldRows.Load(), "the next write frees what was delivered")
		require.Zero(t, s.heldBytes.Load())

		// Once no checkpoint will come, nothing waits any more.
		s.CheckpointAborted(math.MaxInt64)
		for range 10 {
			require.NoError(t, w.Write(ctx, batch("h", "i", "j")))
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
		require.NoError(t, w.Write(context.Background(), batch("x")))
	}
	require.EqualValues(t, 100, s.heldRows.Load())
	require.NoError(t, w.Close(context.Background()))
	require.Zero(t, s.heldRows.Load())
}
