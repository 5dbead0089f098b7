package fileutil

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteSyncedAndReplace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	require.NoError(t, WriteSynced(p, []byte("first, longer content"), 0o600))
	require.NoError(t, WriteSynced(p, []byte("second"), 0o600))
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "second", string(got), "a rewrite truncates")

	require.NoError(t, ReplaceAtomic(p, []byte("third"), 0o640))
	got, err = os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "third", string(got))
	info, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), info.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left behind")
	require.NoError(t, SyncDir(dir))
}

func TestErrorsNameThePath(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no", "such")
	require.ErrorContains(t, SyncDir(missing), "sync directory")
	require.ErrorContains(t, WriteSynced(filepath.Join(missing, "f"), nil, 0o600), "write synced")
	require.ErrorContains(t, ReplaceAtomic(filepath.Join(missing, "f"), nil, 0o600), "replace")
}
