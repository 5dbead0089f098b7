package integration_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/pipeline"
)

// TestExamplesValidate checks every pipeline in examples/ as `streamd
// validate` does, with no environment variables set, so the defaults in
// the files are what is checked.
func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 3, "examples/ holds the example pipelines")
	noEnv := func(string) (string, bool) { return "", false }
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := pipeline.Load(f, noEnv)
			require.NoError(t, err)
			require.Empty(t, pipeline.Check(cfg))
		})
	}
}
