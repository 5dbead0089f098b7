package pipeline_test

import (
	"os"
	"testing"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/pipeline"
)

func TestMain(m *testing.M) {
	if pipeline.DefaultCheckpointDir != testenv.DefaultCheckpointDir {
		panic("testenv.DefaultCheckpointDir is out of date")
	}
	os.Exit(testenv.RunWithoutLeftovers(m))
}
