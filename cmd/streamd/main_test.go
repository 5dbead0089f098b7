package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/testenv"
)

// TestValidateAndRunRefuseAlike: for every invalid fixture, `streamd
// validate` and `streamd run` both exit 1 with the same problems.
func TestValidateAndRunRefuseAlike(t *testing.T) {
	files, err := filepath.Glob("../../pkg/pipeline/testdata/invalid-*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 5)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			f, err := filepath.Abs(f)
			require.NoError(t, err)
			// run creates output directories; keep them out of the tree.
			t.Chdir(t.TempDir())
			var vOut, vErr, rErr bytes.Buffer
			require.Equal(t, 1, run([]string{"validate", "--config", f}, &vOut, &vErr))
			require.Equal(t, 1, run([]string{"run", "--config", f, "--listen", "off"}, io.Discard, &rErr))
			require.Contains(t, vErr.String(), "invalid pipeline:\nline ")
			require.Equal(t, vErr.String(), rErr.String())
		})
	}
}

func TestMain(m *testing.M) { os.Exit(testenv.RunWithoutLeftovers(m)) }
