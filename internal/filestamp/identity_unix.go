//go:build unix

package filestamp

import (
	"os"
	"syscall"
)

func identity(st os.FileInfo) [2]uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return [2]uint64{uint64(s.Dev), s.Ino} //nolint:unconvert,gosec // Dev's type varies by platform; it is an identifier
	}
	return [2]uint64{}
}
