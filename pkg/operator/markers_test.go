package operator

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/rules"
	"github.com/streamd/streamd/pkg/source"
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
