package operator

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/sink/hold"
	"github.com/streamd/streamd/pkg/source"
	"github.com/streamd/streamd/pkg/window"
)

// slowDeliverySink delivers rows slowly (a webhook that takes its time) and
// records, at every delivery, how many rows the source had read but the
// sink not yet received: what the pipeline holds in between.
type slowDeliverySink struct {
	fed       *atomic.Int64
	mu        sync.Mutex
	got       []record.Value // the identifying field of every row, in order
	field     int
	delivered int64
	maxHeld   int64
}

func (s *slowDeliverySink) NewWriter(string, *record.Schema) (sink.Writer, error) { return s, nil }
func (s *slowDeliverySink) Close(context.Context) error                           { return nil }

func (s *slowDeliverySink) Write(_ context.Context, b *record.Batch) error {
	time.Sleep(time.Duration(b.Len()) * 10 * time.Millisecond) // 100 rows/s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxHeld = max(s.maxHeld, s.fed.Load()-s.delivered)
	for i := 0; i < b.Len(); i++ {
		s.got = append(s.got, b.Row(i)[s.field])
	}
	s.delivered += int64(b.Len())
	return nil
}

// With delivery exactlyOnce and a slow sink, what the pipeline holds is
// bounded: the producing task waits once it holds maxHeldBytes, asking for
// checkpoints early (the interval is an hour), so the source reads only
// as fast as the sink delivers. Every row is delivered exactly once, in
// order — from a split task's writer and from a subtask's.
func TestExactlyOnceHeldRowsAreBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		field int // seq for source rows, window_start for window results
	}{
		{"source", "in", 3},
		{"window", "w", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 3000
				var fed atomic.Int64
				slow := &slowDeliverySink{fed: &fed, field: tc.field}
				reg := prometheus.NewRegistry()
				held := hold.NewWith(slow, hold.Config{Name: "out", MaxHeldBytes: 1024}, reg)
				st, err := local.New(t.TempDir())
				require.NoError(t, err)
				src := newScriptSource("a")
				rt, err := New(Job{Name: "held", Parallelism: 2, BatchSize: 16, TickInterval: scriptTick,
					Sources: []SourceSpec{{Name: "in", Source: src, Watermark: WatermarkConfig{SenderField: -1},
						NewDecoder: func() (Decoder, error) { return scriptDecoder{}, nil }}},
					Stages: []StageSpec{{Name: "w", Input: "in", KeyBy: []string{"key"},
						Assigner:   window.Assigner{Kind: window.Tumbling, Size: 1, Slide: 1},
						Aggregates: []window.Spec{{Fn: "count"}}, NewAggregate: window.NewAggregate}},
					Sinks:      []SinkSpec{{Name: "out", Input: tc.input, Sink: held}},
					Checkpoint: &CheckpointConfig{Store: st, Interval: time.Hour, Timeout: time.Minute},
				}, nil, reg)
				require.NoError(t, err)
				done := make(chan error, 1)
				go func() { done <- rt.Run(context.Background()) }()
				for i := range n {
					src.feeds["a"] <- []source.Message{scriptRecord{T: int64(i), Key: "k", Seq: int64(i)}.message()}
					fed.Add(1)
				}
				close(src.ends["a"])
				require.NoError(t, <-done)

				require.Len(t, slow.got, n, "every row delivered once")
				for i, v := range slow.got {
					want := record.Int(int64(i))
					if tc.input == "w" {
						want = record.TimestampMillis(int64(i))
					}
					require.Equal(t, want, v, "row %d", i)
				}
				// 1 KiB holds about 60 rows; what is in flight between the
				// source and the writer comes on top.
				t.Logf("at most %d rows read but not delivered", slow.maxHeld)
				require.LessOrEqual(t, slow.maxHeld, int64(400), "rows read but not delivered")
				require.Positive(t, gathered(t, reg, "streamd_sink_held_wait_seconds_total"), "the task waited for delivery")
				require.Positive(t, gathered(t, reg, "streamd_checkpoints_completed_total"), "checkpoints were taken early")
			})
		})
	}
}

// gathered returns the value of a counter or gauge without labels beyond
// one series, from reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		require.Len(t, mf.GetMetric(), 1, name)
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
