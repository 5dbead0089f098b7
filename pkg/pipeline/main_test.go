package pipeline_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/streamd/streamd/pkg/pipeline"
)

// TestMain fails the run when a test left state in the package directory:
// a pipeline without a checkpoint block checkpoints to a directory relative
// to the working directory, and a later test (or run) restoring it would
// check the wrong output. Tests give their pipelines a checkpoint
// directory of their own, or disable checkpoints.
func TestMain(m *testing.M) {
	_, before := os.Stat(pipeline.DefaultCheckpointDir)
	code := m.Run()
	if _, err := os.Stat(pipeline.DefaultCheckpointDir); err == nil && before != nil {
		fmt.Fprintf(os.Stderr, "a test left %s/ in the package directory: give its pipeline a checkpoint dir under its temporary directory\n", pipeline.DefaultCheckpointDir)
		if err := os.Rename(pipeline.DefaultCheckpointDir, os.TempDir()+"/streamd-left-checkpoints"); err != nil {
			_ = os.RemoveAll(pipeline.DefaultCheckpointDir)
		}
		code = 1
	}
	os.Exit(code)
}
