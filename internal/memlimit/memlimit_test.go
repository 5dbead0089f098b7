package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func write(t *testing.T, root, name, v string) {
	t.Helper()
	p := filepath.Join(root, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o750))
	require.NoError(t, os.WriteFile(p, []byte(v), 0o600))
}

func TestSetFollowsTheCgroup(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(math.MaxInt64)
	for _, tc := range []struct {
		name, file, value string
		want              int64
	}{
		{"v2", "memory.max", "1073741824\n", 966367641},
		{"v1", "memory/memory.limit_in_bytes", "536870912\n", 483183820},
		{"v2 unlimited", "memory.max", "max\n", math.MaxInt64},
		{"v1 unlimited", "memory/memory.limit_in_bytes", "9223372036854771712\n", math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			root := t.TempDir()
			write(t, root, tc.file, tc.value)
			got, _, err := Set(root)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.want, debug.SetMemoryLimit(-1))
		})
	}
}

func TestSetLeavesGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "100MiB")
	root := t.TempDir()
	write(t, root, "memory.max", "1073741824\n")
	before := debug.SetMemoryLimit(-1)
	_, source, err := Set(root)
	require.NoError(t, err)
	require.Equal(t, "GOMEMLIMIT", source)
	require.Equal(t, before, debug.SetMemoryLimit(-1))
}

func TestSetRejectsGarbage(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	root := t.TempDir()
	write(t, root, "memory.max", "lots\n")
	_, _, err := Set(root)
	require.Error(t, err)
}
