package operator

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/source"
	"github.com/streamd/streamd/pkg/source/generator"
	"github.com/streamd/streamd/pkg/window"
)

// slowOpen delays opening one split, as a slow broker or a large file does.
type slowOpen struct {
	*generator.Generator
	split string
	delay time.Duration
}

func (s slowOpen) Open(ctx context.Context, sp source.Split, start *source.Position) (source.Reader, error) {
	if sp.ID == s.split {
		time.Sleep(s.delay)
	}
	return s.Generator.Open(ctx, sp, start)
}

// The initial splits all join the subtasks before any of them emits: a
// split that opens slowly must not find event time already moved past its
// first records by a faster split.
func TestSlowSplitOpenDoesNotMakeRecordsLate(t *testing.T) {
	gen, err := generator.New(generator.Config{Seed: 3, Splits: 2, Machines: 4, Tags: 2, Count: 20000, Step: time.Millisecond, StartTime: time.Unix(1_700_000_000, 0)})
	require.NoError(t, err)
	fields := []decode.Field{
		{Name: "equipmentId", Path: []string{"equipmentId"}, Type: record.TypeString},
		{Name: "ts", Path: []string{"timestamp"}, Type: record.TypeTimestamp, TimeFormat: decode.TimeEpochMS},
	}
	reg := prometheus.NewRegistry()
	rt, err := New(Job{
		Name: "startup", Parallelism: 1,
		Sources: []SourceSpec{{
			Name: "gen", Source: slowOpen{Generator: gen, split: "gen-1", delay: 300 * time.Millisecond},
			Watermark:  WatermarkConfig{SenderField: -1},
			NewDecoder: func() (Decoder, error) { return decode.NewJSON(decode.Config{Fields: fields, EventTimeField: "ts"}) },
		}},
		Stages: []StageSpec{{
			Name: "w", Input: "gen", KeyBy: []string{"equipmentId"},
			Assigner:     window.Assigner{Kind: window.Tumbling, Size: 1000, Slide: 1000},
			Aggregates:   []window.Spec{{Fn: "count"}},
			NewAggregate: window.NewAggregate,
		}},
	}, nil, reg)
	require.NoError(t, err)
	require.NoError(t, rt.Run(context.Background()))
	require.Zero(t, testutil.ToFloat64(rt.m.lateRecords.WithLabelValues("w")), "no record of the slow split is late")
	require.Equal(t, 40000.0, testutil.ToFloat64(rt.m.stageIn.WithLabelValues("w")))
}
