// Package memlimit gives the Go runtime a soft memory limit below the
// container's: without one, the garbage collector lets the heap grow to
// twice what is live before it collects, and a container whose live heap
// is over half its limit is killed for memory it did not need.
package memlimit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// Ratio is the share of the container's memory limit the runtime aims to
// stay under; the rest is for what the Go runtime does not count (thread
// stacks outside Go, the binary, page cache of the checkpoint files).
const Ratio = 0.9

// cgroupFiles are where cgroup v2 and v1 give the memory limit of the
// cgroup the process runs in (a container sees its own at these paths).
var cgroupFiles = []string{"memory.max", "memory/memory.limit_in_bytes"}

// unlimited is above any limit cgroup v1 reports when there is none.
const unlimited = 1 << 62

// Set sets the runtime's memory limit to Ratio of the cgroup's, unless
// GOMEMLIMIT is set (the runtime already follows it) or there is no
// cgroup limit. It returns the limit in force (math.MaxInt64: none) and
// where it came from.
func Set(root string) (limit int64, source string, err error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT", nil
	}
	cg, path, err := cgroupLimit(root)
	if err != nil || cg <= 0 {
		return debug.SetMemoryLimit(-1), "none", err
	}
	limit = int64(float64(cg) * Ratio)
	debug.SetMemoryLimit(limit)
	return limit, fmt.Sprintf("%.0f%% of %s (%d bytes)", Ratio*100, path, cg), nil
}

// cgroupLimit reads the memory limit under root (/sys/fs/cgroup); 0 when
// there is none.
func cgroupLimit(root string) (int64, string, error) {
	for _, name := range cgroupFiles {
		path := filepath.Join(root, name)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, path, err
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, path, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, path, fmt.Errorf("memory limit in %s: %w", path, err)
		}
		if n <= 0 || n >= unlimited {
			return 0, path, nil
		}
		return n, path, nil
	}
	return 0, "", nil
}
