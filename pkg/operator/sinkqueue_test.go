package operator

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source"
)

// slowWriter records what it is asked to do, taking delay per write.
type slowWriter struct {
	mu     sync.Mutex
	delay  time.Duration
	log    []string
	rows   int
	failOn int // the write number that fails, 0 never
}

func (w *slowWriter) Write(_ context.Context, b *record.Batch) error {
	time.Sleep(w.delay)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rows += b.Len()
	w.log = append(w.log, "write")
	if w.failOn > 0 && len(w.log) == w.failOn {
		return errors.New("disk full")
	}
	return nil
}

func (w *slowWriter) Prepare(context.Context, int64) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, "prepare")
	return []byte{byte(w.rows)}, nil
}

func (w *slowWriter) Tick(context.Context, int64, int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, "tick")
	return nil
}

func (w *slowWriter) Close(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, "close")
	return nil
}

func oneRow() *record.Batch {
	b := record.NewBatch(1, 1)
	b.AppendRow(1)[0] = record.Int(1)
	return b
}

// A slow sink makes its producer wait once the queue is full — memory
// stays bounded — and the wait is accounted as backpressure; a prepare
// covers every write queued before it; the close writes what is queued.
func TestAsyncWriterBoundsAndOrders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &slowWriter{delay: time.Second}
		bp := &backpressure{}
		var errs []error
		a := newAsyncWriter(w, 2, bp, "sink:slow", func(err error) { errs = append(errs, err) })
		ctx := context.Background()
		start := time.Now()
		for range 6 {
			a.write(ctx, oneRow(), nil)
		}
		// Six writes of a second each, a queue of two: the producer got
		// back after three writes (one running, two queued).
		require.Equal(t, 3*time.Second, time.Since(start))
		ratio, on := bp.snapshot()
		require.Zero(t, ratio)
		require.Equal(t, "sink:slow", on)
		require.Equal(t, 3*time.Second, bp.total)

		state, err := a.Prepare(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, []byte{6}, state, "the prepare covers every earlier write")
		a.write(ctx, oneRow(), nil)
		require.NoError(t, a.Close(ctx))
		require.Equal(t, 7, w.rows, "close writes what was queued")
		require.Equal(t, "close", w.log[len(w.log)-1])
		require.Empty(t, errs)
		a.write(ctx, oneRow(), nil)
		require.ErrorIs(t, errs[0], errWriterClosed)
	})
}

// Ticks never wait for room and never pile up behind a slow writer.
func TestAsyncWriterTicksDoNotStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &slowWriter{delay: time.Second}
		a := newAsyncWriter(w, 4, &backpressure{}, "sink:slow", func(error) {})
		ctx := context.Background()
		a.write(ctx, oneRow(), nil)
		start := time.Now()
		for range 100 {
			a.tick(ctx, 1, 1)
		}
		require.Zero(t, time.Since(start), "ticks do not wait")
		require.NoError(t, a.Close(ctx))
		ticks := 0
		for _, s := range w.log {
			if s == "tick" {
				ticks++
			}
		}
		require.Equal(t, 1, ticks, "one tick waited at a time")
	})
}

// A failed write is reported, and later writes go on.
func TestAsyncWriterReportsErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &slowWriter{failOn: 2}
		var mu sync.Mutex
		var errs []error
		a := newAsyncWriter(w, 4, &backpressure{}, "sink:x", func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
		ctx := context.Background()
		for range 3 {
			a.write(ctx, oneRow(), nil)
		}
		require.NoError(t, a.Close(ctx))
		require.Len(t, errs, 1)
		require.EqualError(t, errs[0], "disk full")
		require.Equal(t, 3, w.rows)
	})
}

// slowSink's writers take a second per batch.
type slowSink struct{ w *slowWriter }

func (s slowSink) NewWriter(string, *record.Schema) (sink.Writer, error) { return s.w, nil }
func (s slowSink) Close(context.Context) error                           { return nil }

// A slow sink attached to a source makes the split wait — it stops reading
// instead of buffering — and the split's status says on what.
func TestSlowSinkBackpressuresTheSplit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &slowWriter{delay: time.Second}
		src := newScriptSource("a")
		rt, err := New(Job{Name: "slow", Parallelism: 1, TickInterval: scriptTick, SinkQueue: 2,
			Sources: []SourceSpec{{Name: "in", Source: src, Watermark: WatermarkConfig{SenderField: -1},
				NewDecoder: func() (Decoder, error) { return scriptDecoder{}, nil }}},
			Sinks: []SinkSpec{{Name: "slow", Input: "in", Sink: slowSink{w}}},
		}, nil, nil)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- rt.Run(context.Background()) }()
		synctest.Wait()
		fed := make(chan struct{})
		go func() {
			defer close(fed)
			for i := range 20 {
				src.feeds["a"] <- []source.Message{scriptRecord{T: int64(i), Key: "k"}.message()}
			}
		}()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		select {
		case <-fed:
			t.Fatal("the split read every batch although the sink took one a second")
		default:
		}
		st := rt.Status().Splits[0]
		require.Greater(t, st.Backpressure, 0.5, "share of the last second the split waited")
		require.Equal(t, "sink:slow", st.WaitingOn)
		<-fed
		close(src.ends["a"])
		require.NoError(t, <-done)
		require.Equal(t, 20, w.rows, "every batch was written")
	})
}

// copyWriter keeps a copy of every row it is given, after a delay, so a
// batch recycled before it wrote would show up as rows it never saw.
type copyWriter struct {
	delay time.Duration
	mu    sync.Mutex
	rows  []int64
}

func (w *copyWriter) Write(_ context.Context, b *record.Batch) error {
	time.Sleep(w.delay)
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := 0; i < b.Len(); i++ {
		w.rows = append(w.rows, b.Row(i)[0].Int())
	}
	return nil
}

func (w *copyWriter) Close(context.Context) error { return nil }

// An emitted batch is filled again only once every writer has written
// it: a fast and a slow writer each get every row exactly as emitted,
// while the task keeps emitting from recycled batches.
func TestRecycledBatchesWaitForEveryWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fast, slow := &copyWriter{}, &copyWriter{delay: 10 * time.Millisecond}
		bp := &backpressure{}
		fail := func(err error) { t.Error(err) }
		e := &emitter{stream: &stream{records: prometheus.NewCounter(prometheus.CounterOpts{Name: "rows"})}}
		e.writers = []*asyncWriter{newAsyncWriter(fast, 2, bp, "sink:fast", fail), newAsyncWriter(slow, 2, bp, "sink:slow", fail)}
		pool := newBatchPool(3)
		ctx := context.Background()
		var want []int64
		distinct := map[*record.Batch]bool{}
		for n := range 40 {
			b := pool.get(1, 4)
			distinct[b] = true
			for j := range 1 + n%4 {
				v := int64(n*10 + j)
				b.AppendRow(v)[0] = record.Int(v)
				want = append(want, v)
			}
			e.emitFrom(ctx, b, int64(n), false, pool)
		}
		for _, w := range e.writers {
			require.NoError(t, w.Close(ctx))
		}
		require.Equal(t, want, fast.rows)
		require.Equal(t, want, slow.rows)
		// The writers' queues hold two batches each and the pool three:
		// forty emits went through a handful of batches.
		require.Less(t, len(distinct), 10)
		// Every writer is done: the last batches are back in the pool,
		// empty, for the next emit.
		require.NotEmpty(t, pool.free)
		for len(pool.free) > 0 {
			require.Zero(t, (<-pool.free).Len())
		}
	})
}
