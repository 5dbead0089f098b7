// Package filestamp tells whether a file changed without reading it: size,
// modification time and the file's identity (device and inode), so a file
// replaced by a rename (a Kubernetes ConfigMap or Secret update swaps a
// symlink) is noticed even with the same size and time.
package filestamp

import (
	"fmt"
	"os"
)

// Stamp identifies one version of a file. Equal stamps mean unchanged.
type Stamp struct {
	size  int64
	mtime int64
	id    [2]uint64
}

// Of returns the stamp of st.
func Of(st os.FileInfo) Stamp {
	return Stamp{size: st.Size(), mtime: st.ModTime().UnixNano(), id: identity(st)}
}

// Stat returns the stamp and size of the file at path.
func Stat(path string) (Stamp, int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Stamp{}, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return Of(st), st.Size(), nil
}
