package integration_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/pipeline"
)

// shippedPipelines are the pipeline files users start from: every example
// and the Kubernetes base.
func shippedPipelines(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 3, "examples/ holds the example pipelines")
	return append(files, filepath.Join("..", "..", "deploy", "kubernetes", "base", "pipeline.yaml"))
}

// TestExamplesValidate checks every shipped pipeline as `streamd validate`
// does, with no environment variables set, so the defaults in the files
// are what is checked.
func TestExamplesValidate(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, f := range shippedPipelines(t) {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			cfg, err := pipeline.Load(f, noEnv)
			require.NoError(t, err)
			require.Empty(t, pipeline.Check(cfg))
		})
	}
}

// Every shipped pipeline checkpoints with a block of its own (the log
// example had none: its Kafka offsets were committed whether or not the
// Parquet holding the records was published, and a kill lost data), and
// none of its sinks is weaker than at-least-once.
func TestExamplesCheckpoint(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, f := range shippedPipelines(t) {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			cfg, err := pipeline.Load(f, noEnv)
			require.NoError(t, err)
			require.NotNil(t, cfg.Checkpoint, "the file has a checkpoint block")
			require.NotEmpty(t, cfg.Checkpoint.Dir, "the block names its directory")
			require.True(t, cfg.Checkpoints(), "checkpoints are enabled")
			for _, d := range pipeline.Deliveries(cfg) {
				require.GreaterOrEqual(t, d.Delivery, pipeline.DeliveryAtLeastOnce, "%s", d)
			}
		})
	}
}
