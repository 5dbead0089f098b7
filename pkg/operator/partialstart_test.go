package operator

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source/generator"
	"github.com/streamd/streamd/pkg/window"
)

// refusingSink refuses the writer of one task, as a sink whose directory
// or bucket cannot be opened for it does, and counts the writers it opened
// and closed.
type refusingSink struct {
	refuse string
	mu     sync.Mutex
	opened int
	closed int
}

func (s *refusingSink) NewWriter(task string, _ *record.Schema) (sink.Writer, error) {
	if task == s.refuse {
		return nil, errors.New("writer refused")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opened++
	return &countingWriter{s: s}, nil
}

func (s *refusingSink) Close(context.Context) error { return nil }

type countingWriter struct{ s *refusingSink }

func (w *countingWriter) Write(context.Context, *record.Batch) error { return nil }

func (w *countingWriter) Close(context.Context) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.closed++
	return nil
}

// A start that fails half way — one subtask cannot open its writer —
// returns the error and leaves nothing running: the subtasks already
// started (of this stage and of the later stages, which start first), the
// stream closers and their writers all end. With more subtasks than an
// input channel holds, the subtasks started have joined every subtask of
// the next stage.
func TestFailedStartUnwinds(t *testing.T) {
	for _, tc := range []struct {
		name        string
		parallelism int
		refuse      string
	}{
		{"last stage", 4, subtaskName("w2", 2)},
		{"first stage, the next one running", 4, subtaskName("w", 1)},
		{"wider than an input channel", 20, subtaskName("w", 17)},
	} {
		t.Run(tc.name, func(t *testing.T) { testFailedStart(t, tc.parallelism, tc.refuse) })
	}
}

func testFailedStart(t *testing.T, parallelism int, refuse string) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	gen, err := generator.New(generator.Config{Seed: 3, Splits: 2, Machines: 4, Tags: 2, Count: 1000, Step: time.Millisecond, StartTime: time.Unix(1_700_000_000, 0)})
	require.NoError(t, err)
	fields := []decode.Field{
		{Name: "equipmentId", Path: []string{"equipmentId"}, Type: record.TypeString},
		{Name: "ts", Path: []string{"timestamp"}, Type: record.TypeTimestamp, TimeFormat: decode.TimeEpochMS},
	}
	out := &refusingSink{refuse: refuse}
	stage := func(name, input string, key string) StageSpec {
		return StageSpec{
			Name: name, Input: input, KeyBy: []string{key},
			Assigner:     window.Assigner{Kind: window.Tumbling, Size: 1000, Slide: 1000},
			Aggregates:   []window.Spec{{Fn: "count"}},
			NewAggregate: window.NewAggregate,
		}
	}
	rt, err := New(Job{
		Name: "partial", Parallelism: parallelism,
		Sources: []SourceSpec{{
			Name: "gen", Source: gen, Watermark: WatermarkConfig{SenderField: -1},
			NewDecoder: func() (Decoder, error) { return decode.NewJSON(decode.Config{Fields: fields, EventTimeField: "ts"}) },
		}},
		Stages: []StageSpec{stage("w", "gen", "equipmentId"), stage("w2", "w", "equipmentId")},
		Sinks:  []SinkSpec{{Name: "counts", Input: "w", Sink: out}, {Name: "totals", Input: "w2", Sink: out}},
	}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- rt.Run(context.Background()) }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after a failed start")
	}
	require.ErrorContains(t, err, "writer refused")
	out.mu.Lock()
	defer out.mu.Unlock()
	require.Positive(t, out.opened)
	require.Equal(t, out.opened, out.closed, "every writer opened before the failure is closed")
}
