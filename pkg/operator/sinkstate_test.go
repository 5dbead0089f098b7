package operator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"strings"
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
	"github.com/streamd/streamd/pkg/source/generator"
	"github.com/streamd/streamd/pkg/window"
)

// bigStateSink is a transactional sink whose prepared states are large
// (as held rows near their bound are): 128 KiB that spell the task and
// the rows it got.
type bigStateSink struct {
	mu        sync.Mutex
	committed map[string][]byte // task → newest committed state
	recovered map[string][]byte
}

type bigStateWriter struct {
	s    *bigStateSink
	task string
	rows int
}

func (s *bigStateSink) NewWriter(task string, _ *record.Schema) (sink.Writer, error) {
	return &bigStateWriter{s: s, task: task}, nil
}
func (s *bigStateSink) Close(context.Context) error { return nil }
func (s *bigStateSink) Commit(_ context.Context, task string, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.committed[task] = bytes.Clone(state)
	return nil
}
func (s *bigStateSink) Recover(_ context.Context, states map[string][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recovered = maps.Clone(states)
	return nil
}

func (w *bigStateWriter) Write(_ context.Context, b *record.Batch) error {
	w.rows += b.Len()
	return nil
}
func (w *bigStateWriter) Close(context.Context) error { return nil }
func (w *bigStateWriter) Prepare(_ context.Context, id int64) ([]byte, error) {
	line := fmt.Sprintf("%s checkpoint %d rows %d\n", w.task, id, w.rows)
	return []byte(strings.Repeat(line, 128<<10/len(line)+1)), nil
}

// Large sink states are blobs of their own next to the stage state, not
// base64 inside the manifest, and a restore hands them back to the sink
// byte for byte.
func TestLargeSinkStatesAreBlobs(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	gen, err := generator.New(generator.Config{Seed: 7, Splits: 2, Machines: 4, Tags: 2, Count: 2000, Rate: 20000, Step: 10 * time.Millisecond, StartTime: time.Unix(1_700_000_000, 0)})
	require.NoError(t, err)
	fields := []decode.Field{
		{Name: "equipmentId", Path: []string{"equipmentId"}, Type: record.TypeString},
		{Name: "ts", Path: []string{"timestamp"}, Type: record.TypeTimestamp, TimeFormat: decode.TimeEpochMS},
	}
	run := func() *bigStateSink {
		sk := &bigStateSink{committed: make(map[string][]byte)}
		st, err := local.New(dir)
		require.NoError(t, err)
		rt, err := New(Job{
			Name: "big", Parallelism: 2, TickInterval: 20 * time.Millisecond,
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
			Sinks:      []SinkSpec{{Name: "big", Input: "w", Sink: sk}},
			Checkpoint: &CheckpointConfig{Store: st, Interval: 30 * time.Millisecond},
		}, nil, nil)
		require.NoError(t, err)
		require.NoError(t, rt.Run(context.Background()))
		return sk
	}
	first := run()
	require.Len(t, first.committed, 2, "both subtasks committed")

	st, err := local.New(dir)
	require.NoError(t, err)
	ctx := context.Background()
	m, err := checkpoint.Latest(ctx, st, "pipelines/big")
	require.NoError(t, err)
	require.Len(t, m.Sinks, 2)
	for _, s := range m.Sinks {
		require.Nil(t, s.State, "state of %s is not inline", s.Task)
		require.True(t, strings.HasPrefix(s.Key, checkpoint.Dir("pipelines/big", m.ID)+"/"), "blob %s is in the checkpoint's directory", s.Key)
		r, err := st.Get(ctx, s.Key)
		require.NoError(t, err)
		data, err := io.ReadAll(r)
		require.NoError(t, r.Close())
		require.NoError(t, err)
		require.Equal(t, first.committed[s.Task], data, "blob of %s is the committed state", s.Task)
	}
	r, err := st.Get(ctx, checkpoint.ManifestKey("pipelines/big", m.ID))
	require.NoError(t, err)
	manifest, err := io.ReadAll(r)
	require.NoError(t, r.Close())
	require.NoError(t, err)
	require.Less(t, len(manifest), 16<<10, "the manifest stays small")

	second := run()
	require.Equal(t, first.committed, second.recovered, "a restore hands the states back")
}
