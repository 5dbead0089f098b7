package filestamp

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStamp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(p, []byte("one"), 0o600))
	a, size, err := Stat(p)
	require.NoError(t, err)
	require.EqualValues(t, 3, size)
	b, _, err := Stat(p)
	require.NoError(t, err)
	require.Equal(t, a, b, "unchanged file, same stamp")

	// Same size and modification time, another file: a rename is noticed.
	st, err := os.Stat(p)
	require.NoError(t, err)
	q := filepath.Join(dir, "g")
	require.NoError(t, os.WriteFile(q, []byte("two"), 0o600))
	require.NoError(t, os.Chtimes(q, st.ModTime(), st.ModTime()))
	require.NoError(t, os.Rename(q, p))
	c, _, err := Stat(p)
	require.NoError(t, err)
	require.NotEqual(t, a, c)

	_, _, err = Stat(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
