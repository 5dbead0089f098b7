package crash_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/s3proxy"
	"github.com/streamd/streamd/internal/testenv"
)

// startGatedKafka runs a three-broker kfake cluster behind a gate.
func startGatedKafka(t *testing.T) ([]string, *testenv.Gate) {
	t.Helper()
	c, g := testenv.StartGatedKafka(t)
	return c.ListenAddrs(), g
}

// faultyS3 is an S3 proxy with injected faults in front of MinIO, served
// from the test process.
type faultyS3 struct {
	proxy *s3proxy.Proxy
	url   string
}

func startFaultyS3(t *testing.T, target string, seed uint64) *faultyS3 {
	t.Helper()
	p, err := s3proxy.New(s3proxy.Config{Target: target, Seed: seed, Delay: 300 * time.Millisecond})
	require.NoError(t, err)
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.Close()
	})
	return &faultyS3{proxy: p, url: srv.URL}
}

// disk is a small filesystem for a daemon's output that can be filled up
// and freed again: a tmpfs mounted for the test when the process may mount
// (root in a container, as in CI), else a file-size limit (RLIMIT_FSIZE,
// set and lifted with prlimit(1) on the daemon) that makes every write
// past the limit fail as a full disk's would.
type disk struct {
	t    *testing.T
	dir  string
	kind string // "tmpfs" or "rlimit"
	fill string
}

const diskSize = 256 << 20

func newDisk(t *testing.T, parent string) *disk {
	t.Helper()
	dir := filepath.Join(parent, "disk")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	d := &disk{t: t, dir: dir, fill: filepath.Join(dir, ".fill")}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(diskSize), "tmpfs", dir).CombinedOutput()
	if err == nil {
		d.kind = "tmpfs"
		t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
		return d
	}
	if _, perr := exec.LookPath("prlimit"); perr != nil {
		t.Skipf("disk full needs a tmpfs (mount: %v: %s) or prlimit(1)", err, out)
	}
	t.Logf("cannot mount a tmpfs (%v: %s): a full disk is a file-size limit instead", err, out)
	d.kind = "rlimit"
	return d
}

// full leaves no free space (tmpfs) or lets no file of pid grow (rlimit).
func (d *disk) full(pid int) {
	d.t.Helper()
	if d.kind == "rlimit" {
		out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), "--fsize=1024:unlimited").CombinedOutput()
		require.NoError(d.t, err, "prlimit: %s", out)
		return
	}
	var st syscall.Statfs_t
	require.NoError(d.t, syscall.Statfs(d.dir, &st))
	free := int64(st.Bavail) * st.Bsize
	f, err := os.Create(d.fill)
	require.NoError(d.t, err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	for free > 0 {
		n := min(int64(len(buf)), free)
		w, err := f.Write(buf[:n])
		free -= int64(w)
		if err != nil {
			break // ENOSPC: full
		}
	}
}

// free gives the space back.
func (d *disk) free(pid int) {
	d.t.Helper()
	if d.kind == "rlimit" {
		if pid > 0 {
			_ = exec.Command("prlimit", "--pid", strconv.Itoa(pid), "--fsize=unlimited:unlimited").Run()
		}
		return
	}
	require.NoError(d.t, os.Remove(d.fill))
}

// retry runs fn until it succeeds or ctx ends, pausing between attempts:
// producing to a broker behind a closed gate fails until it opens.
func retry(ctx context.Context, what string, fn func(context.Context) error) error {
	var err error
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %w)", what, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var errIncomplete = errors.New("output incomplete")
