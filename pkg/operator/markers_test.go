package operator

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/rules"
	"github.com/streamd/streamd/pkg/source"
	"github.com/streamd/streamd/pkg/window"
)

// stuckSource has one split whose reads ignore their deadline and end only
// when end is closed: a split busy in a long read (a slow broker) that
// takes no marker meanwhile.
type stuckSource struct{ end chan struct{} }

func (s stuckSource) Splits(context.Context) ([]source.Split, error) {
	return []source.Split{{ID: "0"}}, nil
}

func (s stuckSource) Open(context.Context, source.Split, *source.Position) (source.Reader, error) {
	return stuckReader(s), nil
}

func (s stuckSource) Close(context.Context) error { return nil }

type stuckReader stuckSource

func (r stuckReader) Read(context.Context, *source.Batch, int) error {
	<-r.end
	return source.ErrEndOfSplit
}

func (r stuckReader) Close() error { return nil }

// Markers are injected into splits that are busy reading: a split only
// looks at its markers between reads. Injecting must never wait for a
// split, however many markers are waiting — the split may be leaving,
// which needs the lock injection holds.
func TestInjectNeverWaitsForASplit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := stuckSource{end: make(chan struct{})}
		rt, err := New(Job{Name: "markers", Parallelism: 1, Sources: []SourceSpec{{
			Name: "in", Source: src, Watermark: WatermarkConfig{SenderField: -1},
			NewDecoder: func() (Decoder, error) { return scriptDecoder{}, nil },
		}}}, nil, nil)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- rt.Run(context.Background()) }()
		synctest.Wait()
		for i := range 500 {
			if i == 100 {
				close(src.end) // the split leaves while markers keep coming
			}
			if _, err := rt.Inject(fmt.Sprintf("marker %d", i)); err != nil {
				require.ErrorIs(t, err, ErrNotRunning)
			}
		}
		require.NoError(t, <-done)
	})
}

// A burst of rule changes (a control topic replayed at start, a script
// putting many rules) goes out in few markers: one alignment per burst,
// not one per rule. Every change is in force afterwards.
func TestRuleChangesAreBatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startScripted(t, Job{Name: "rules", Parallelism: 2, Stages: []StageSpec{{
			Name: "r", Input: "in", KeyBy: []string{"key"}, Rules: &RulesSpec{Options: rules.DefaultOptions()},
		}}}, WatermarkConfig{SenderField: -1}, "a", "b")
		before := s.rt.lastMarker
		const n = 200
		for i := range n {
			r, err := rules.Parse([]byte(fmt.Sprintf(`{"id":"r%d","version":1,"key":["key"],"signals":{"v":{"value":"value"}},`+
				`"states":["OK","HIGH"],"groups":[{"name":"high","state":"HIGH","conditions":["v > %d"]}]}`, i, i)), rules.FormatJSON)
			require.NoError(t, err)
			require.NoError(t, s.rt.Rules().Put(context.Background(), "r", r))
		}
		s.wall(scriptTick) // the splits take their markers between reads
		markers := s.rt.lastMarker - before
		require.LessOrEqual(t, markers, int64(n/10), "rule changes per marker")
		for _, op := range s.rt.stages[0].ruleOps {
			require.Len(t, op.eng.Rules(), n, "every subtask applied every change")
		}
		s.end()
	})
}

// mixedSource has a scripted split "a" and a stuck split "slow".
type mixedSource struct {
	*scriptSource
	stuck stuckSource
}

func (s mixedSource) Splits(context.Context) ([]source.Split, error) {
	return []source.Split{{ID: "a"}, {ID: "slow"}}, nil
}

func (s mixedSource) Open(ctx context.Context, sp source.Split, start *source.Position) (source.Reader, error) {
	if sp.ID == "slow" {
		return stuckReader(s.stuck), nil
	}
	return s.scriptSource.Open(ctx, sp, start)
}

// While a subtask aligns a marker that one input cannot deliver yet (its
// split is stuck in a read), the inputs past the marker are held at their
// gates once the subtask has queued a few of their batches: memory stays
// bounded, and everything flows once the marker is aligned.
func TestAlignmentQueueIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := mixedSource{scriptSource: newScriptSource("a"), stuck: stuckSource{end: make(chan struct{})}}
		rt, err := New(Job{Name: "align", Parallelism: 1, TickInterval: scriptTick,
			Sources: []SourceSpec{{Name: "in", Source: src, Watermark: WatermarkConfig{SenderField: -1},
				NewDecoder: func() (Decoder, error) { return scriptDecoder{}, nil }}},
			Stages: []StageSpec{{Name: "w", Input: "in", KeyBy: []string{"key"},
				Assigner:   window.Assigner{Kind: window.Tumbling, Size: 10_000, Slide: 10_000},
				Aggregates: []window.Spec{{Fn: "count"}}, NewAggregate: window.NewAggregate}},
		}, nil, nil)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- rt.Run(context.Background()) }()
		synctest.Wait()
		_, err = rt.Inject("barrier")
		require.NoError(t, err)
		time.Sleep(scriptTick) // split a passes the marker; slow cannot
		synctest.Wait()

		const batches = 300
		fed := make(chan struct{})
		go func() {
			defer close(fed)
			for i := range batches {
				src.feeds["a"] <- []source.Message{scriptRecord{T: int64(i), Key: "k", Seq: int64(i)}.message()}
			}
		}()
		synctest.Wait()
		sig := rt.stages[0].align[0]
		// The gate admits events while fewer than alignBudget are queued;
		// those already in the input channel come on top.
		require.LessOrEqual(t, sig.queued.Load(), int64(alignBudget+inputCapacity), "events queued behind the marker")
		select {
		case <-fed:
			t.Fatal("split a read every batch although the subtask could not take them")
		default:
		}

		close(src.stuck.end) // the slow split delivers the marker as it leaves
		<-fed
		close(src.ends["a"])
		require.NoError(t, <-done)
		require.EqualValues(t, batches, testutil.ToFloat64(rt.m.stageIn.WithLabelValues("w")), "every record reached the stage")
	})
}
