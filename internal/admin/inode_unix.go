//go:build unix

package admin

import (
	"os"
	"syscall"
)

// inode identifies the file behind a path, so a replaced file with the
// same size and modification time is still noticed.
func inode(st os.FileInfo) any {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return [2]uint64{uint64(s.Dev), s.Ino} //nolint:unconvert // Dev is int32 on some platforms
	}
	return nil
}
