package modroot

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDirFindsGoMod(t *testing.T) {
	dir, err := Dir()
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "go.mod"))
	require.NoError(t, err)
	require.Equal(t, dir, filepath.Dir(filepath.Dir(mustWd(t))), "two levels above internal/modroot")

	t.Chdir(t.TempDir())
	_, err = Dir()
	require.ErrorContains(t, err, "no go.mod")
}

func mustWd(t *testing.T) string {
	wd, err := os.Getwd()
	require.NoError(t, err)
	return wd
}
