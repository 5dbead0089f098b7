package operator

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	"github.com/streamd/streamd/pkg/window"
)

// gaugeValue returns the value of the gauge name with labels (all of
// them), or -1 when there is none.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// A split whose broker is unreachable is failing, not idle: while it
// cannot be read the watermark stays where it was — however long the
// outage lasts past idleTimeout — so no window fires without its records,
// and once it is back what it delivers is on time. Meanwhile it is shown
// failing in the status and the metrics, the pipeline is not ready (past
// the grace period) by /readyz and streamd_ready alike, and it is alive.
//
// Before, the failing split went idle after idleTimeout: event time jumped
// to the other split's, the windows fired with half their data and the
// records delivered after the outage went to late.
func TestFailingSplitHoldsTheWatermark(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		job := Job{Name: "outage", Parallelism: 2, FailingGrace: 5 * time.Second, Stages: []StageSpec{{
			Name: "w", Input: "in", KeyBy: []string{"key"},
			Assigner:     window.Assigner{Kind: window.Tumbling, Size: 10_000, Slide: 10_000},
			Aggregates:   []window.Spec{{Fn: "count"}},
			NewAggregate: window.NewAggregate,
		}}}
		wm := WatermarkConfig{IdleTimeout: time.Second, SenderField: -1}
		reg := prometheus.NewRegistry()
		s := &scripted{t: t, src: newScriptSource("a", "b"), out: &collector{}, wm: wm, reg: reg}
		s.start(job)

		var input []scriptRecord
		seq := int64(0)
		feed := func(split string, from, to int64) {
			var recs []scriptRecord
			for ts := from; ts < to; ts += 1000 {
				seq++
				recs = append(recs, scriptRecord{T: ts, Key: "k-" + split, Seq: seq}, scriptRecord{T: ts, Key: "shared", Seq: seq + 1_000_000})
			}
			input = append(input, recs...)
			s.feed(split, recs)
		}
		feed("a", 0, 2000)
		feed("b", 0, 2000)

		s.fail("b", fmt.Errorf("dial tcp 127.0.0.1:9092: %w", syscall.ECONNREFUSED))
		// a reads on for a minute of event time and of wall time, far past
		// idleTimeout; b delivers nothing meanwhile.
		for ts := int64(2000); ts < 60_000; ts += 5000 {
			feed("a", ts, ts+5000)
			s.wall(5 * time.Second)
		}
		for _, c := range s.out.take() {
			require.NotEqual(t, "w", c.stream, "a window fired while split b was failing: %v", c.row)
			require.NotEqual(t, "w.late", c.stream)
		}
		st := s.rt.Status()
		var b SplitStatus
		for _, ss := range st.Splits {
			if ss.Split == "b" {
				b = ss
			}
		}
		require.True(t, b.Failing, "split b in /v1/status: %+v", b)
		require.False(t, b.Idle)
		require.Contains(t, b.Error, "connection refused")
		require.NotNil(t, b.FailingSince)
		require.Equal(t, "in/b", st.HeldBackBy)
		require.False(t, st.Ready)
		require.NotEmpty(t, st.NotReady)
		require.Contains(t, st.NotReady[0], "split in/b is failing")
		require.False(t, s.rt.Ready(), "/readyz")
		require.Equal(t, 0.0, gaugeValue(t, reg, "streamd_ready", nil), "streamd_ready agrees with /readyz")
		require.Equal(t, 1.0, gaugeValue(t, reg, "streamd_split_failing", map[string]string{"split": "b"}))
		require.Equal(t, 0.0, gaugeValue(t, reg, "streamd_split_failing", map[string]string{"split": "a"}))
		require.Equal(t, 0.0, gaugeValue(t, reg, "streamd_split_idle", map[string]string{"split": "b"}))
		require.Positive(t, testutil.ToFloat64(s.rt.m.readFailures.WithLabelValues("in", "b")))
		require.NoError(t, s.rt.Stalled(), "waiting on a broker is not stuck")

		s.recover("b")
		// What b's broker kept meanwhile.
		feed("b", 2000, 60_000)
		require.True(t, s.rt.Ready())
		require.Equal(t, 1.0, gaugeValue(t, reg, "streamd_ready", nil))
		require.Equal(t, 0.0, gaugeValue(t, reg, "streamd_split_failing", map[string]string{"split": "b"}))
		s.end()

		// The reference: a count per key and 10 s window of the whole input.
		type win struct {
			key   string
			start int64
		}
		want := map[win]int64{}
		for _, r := range input {
			want[win{r.Key, r.T / 10_000 * 10_000}]++
		}
		got := map[win]int64{}
		for _, c := range s.out.take() {
			require.NotEqual(t, "w.late", c.stream, "late after the outage: %v", c.row)
			if c.stream != "w" {
				continue
			}
			require.False(t, c.row[4].Bool(), "no result is withdrawn")
			k := win{c.row[0].Str(), c.row[1].Int() / 1000}
			require.NotContains(t, got, k, "one result per window")
			got[k] = c.row[5].Int()
		}
		require.Equal(t, want, got)
	})
}

// A subtask stuck in a call that does not return is stalled, and liveness
// says so once StallTimeout has passed — not before.
func TestStalledSubtask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		job := Job{Name: "stall", Parallelism: 1, StallTimeout: time.Minute, Stages: []StageSpec{{
			Name: "w", Input: "in", KeyBy: []string{"key"},
			Assigner:     window.Assigner{Kind: window.Tumbling, Size: 1000, Slide: 1000},
			Aggregates:   []window.Spec{{Fn: "count"}},
			NewAggregate: window.NewAggregate,
		}}}
		s := &scripted{t: t, src: newScriptSource("a"), out: &collector{}, wm: WatermarkConfig{SenderField: -1}}
		s.start(job)
		require.NoError(t, s.rt.Stalled())
		s.wall(2 * time.Minute)
		require.NoError(t, s.rt.Stalled(), "an idle pipeline is alive")
		s.out.block.Store(true)
		s.feed("a", []scriptRecord{{T: 100, Key: "k", Seq: 1}, {T: 5000, Key: "k", Seq: 2}})
		s.wall(30 * time.Second)
		require.NoError(t, s.rt.Stalled(), "within StallTimeout")
		s.wall(31 * time.Second)
		err := s.rt.Stalled()
		// The sink's writer runs on its own goroutine: the write that does
		// not return is what is stuck (the subtask has room in its queue).
		require.ErrorContains(t, err, `sink "w" of task w-0 has been writing for 1m`)
		s.stop()
		select {
		case err := <-s.done:
			t.Logf("stopped with its sink blocked: %v", err)
		case <-time.After(time.Hour):
			t.Fatal("runtime did not stop")
		}
	})
}

// While a sink has been retrying a failed request for a few seconds (an
// S3 endpoint answering 503), periodic checkpoints fail at once and are
// counted instead of waiting for their timeout behind the retried write;
// after the grace period the pipeline is not ready, by Ready and
// streamd_ready alike; once the sink writes again both recover.
func TestSinkOutageFailsCheckpoints(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := local.New(t.TempDir())
		require.NoError(t, err)
		job := Job{Name: "sinkout", Parallelism: 1, FailingGrace: 30 * time.Second, Stages: []StageSpec{{
			Name: "w", Input: "in", KeyBy: []string{"key"},
			Assigner:     window.Assigner{Kind: window.Tumbling, Size: 1000, Slide: 1000},
			Aggregates:   []window.Spec{{Fn: "count"}},
			NewAggregate: window.NewAggregate,
		}}, Checkpoint: &CheckpointConfig{Store: st, Timeout: time.Hour}}
		reg := prometheus.NewRegistry()
		s := &scripted{t: t, src: newScriptSource("a"), out: &collector{}, wm: WatermarkConfig{SenderField: -1}, reg: reg}
		s.start(job)
		s.feed("a", []scriptRecord{{T: 100, Key: "k", Seq: 1}})
		ctx := context.Background()
		_, err = s.rt.Coordinator().Trigger(ctx, false, false)
		require.NoError(t, err)
		failures := func() float64 { return gathered(t, reg, "streamd_checkpoint_failures_total") }

		s.out.retrying.Store(&store.RetryError{Requests: 1, Since: time.Now(), Err: errors.New("api error SlowDown")})
		_, err = s.rt.Coordinator().Trigger(ctx, false, false)
		require.NoError(t, err, "a request retried for a moment is no outage")
		s.wall(6 * time.Second)
		_, err = s.rt.Coordinator().Trigger(ctx, false, false)
		require.ErrorContains(t, err, `sink "w" is retrying`)
		require.ErrorContains(t, err, "SlowDown")
		require.Equal(t, 1.0, failures(), "the failed checkpoint is counted")
		require.True(t, s.rt.Ready(), "within the grace period")
		s.wall(25 * time.Second)
		require.False(t, s.rt.Ready())
		require.ErrorContains(t, s.rt.NotReady(), `sink "w" is retrying`)
		require.Equal(t, 0.0, gaugeValue(t, reg, "streamd_ready", nil))

		s.out.retrying.Store(nil)
		_, err = s.rt.Coordinator().Trigger(ctx, false, false)
		require.NoError(t, err)
		require.True(t, s.rt.Ready())
		require.Equal(t, 1.0, gaugeValue(t, reg, "streamd_ready", nil))
		require.Equal(t, 1.0, failures())
		s.end()
	})
}
