package operator

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/rules"
	"github.com/streamd/streamd/pkg/source/generator"
)

// Rule state is checkpointed per subtask under the subtask's index as key
// group number: a rule stage with more subtasks than key groups would
// write checkpoints no restore accepts, so it is refused up front.
func TestRuleStageCheckpointNeedsKeyGroups(t *testing.T) {
	gen, err := generator.New(generator.Config{Seed: 1, Splits: 1, Count: 1})
	require.NoError(t, err)
	store, err := local.New(t.TempDir())
	require.NoError(t, err)
	fields := []decode.Field{
		{Name: "equipmentId", Path: []string{"equipmentId"}, Type: record.TypeString},
		{Name: "ts", Path: []string{"timestamp"}, Type: record.TypeTimestamp, TimeFormat: decode.TimeEpochMS},
	}
	job := func(parallelism, keyGroups int) Job {
		return Job{
			Name: "rules", Parallelism: parallelism, KeyGroups: keyGroups,
			Sources: []SourceSpec{{
				Name: "gen", Source: gen, Watermark: WatermarkConfig{SenderField: -1},
				NewDecoder: func() (Decoder, error) { return decode.NewJSON(decode.Config{Fields: fields, EventTimeField: "ts"}) },
			}},
			Stages:     []StageSpec{{Name: "r", Input: "gen", KeyBy: []string{"equipmentId"}, Rules: &RulesSpec{Options: rules.DefaultOptions()}}},
			Checkpoint: &CheckpointConfig{Store: store},
		}
	}
	_, err = New(job(4, 2), nil, nil)
	require.ErrorContains(t, err, `rule stage "r" runs 4 subtasks but the pipeline has 2 key groups`)
	_, err = New(job(2, 2), nil, nil)
	require.NoError(t, err)
}
