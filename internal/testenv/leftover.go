package testenv

import (
	"fmt"
	"os"
	"testing"
)

// DefaultCheckpointDir is where a pipeline without a checkpoint block
// checkpoints: relative to the working directory (pipeline.DefaultCheckpointDir,
// repeated here so this package does not import the pipeline package).
const DefaultCheckpointDir = "checkpoints"

// RunWithoutLeftovers runs m and fails the run when a test left
// DefaultCheckpointDir in the package directory: a pipeline without a
// checkpoint block checkpoints there, and a later test (or run) with the
// same pipeline name would restore it and check the wrong output. Tests
// give their pipelines a checkpoint directory under a temporary directory,
// or disable checkpoints. Use it from TestMain: os.Exit(RunWithoutLeftovers(m)).
func RunWithoutLeftovers(m *testing.M) int {
	_, before := os.Stat(DefaultCheckpointDir)
	code := m.Run()
	if _, err := os.Stat(DefaultCheckpointDir); err == nil && before != nil {
		fmt.Fprintf(os.Stderr, "a test left %s/ in the package directory: give its pipeline a checkpoint dir under its temporary directory, or checkpoint: {enabled: false}\n", DefaultCheckpointDir)
		_ = os.RemoveAll(DefaultCheckpointDir)
		code = 1
	}
	return code
}
