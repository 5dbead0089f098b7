package soak_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildDaemon builds cmd/streamd into a temporary directory.
func buildDaemon(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "streamd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/streamd/streamd/cmd/streamd").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// daemon is a streamd process a test started, in its own directory with
// its log in streamd.log there; it is killed when the test ends if it is
// still running.
type daemon struct {
	cmd    *exec.Cmd
	dir    string
	exited chan error
}

// startDaemon runs bin with config in dir, env added to the environment.
func startDaemon(t testing.TB, bin, config, dir string, env ...string) *daemon {
	t.Helper()
	cmd := exec.Command(bin, "run", "--config", config, "--log-level", "warn")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	logs, err := os.Create(filepath.Join(dir, "streamd.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	d := &daemon{cmd: cmd, dir: dir, exited: make(chan error, 1)}
	go func() {
		d.exited <- cmd.Wait()
		logs.Close()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			t.Logf("streamd killed: %v", <-d.exited)
		}
	})
	return d
}

// log returns what the daemon logged so far.
func (d *daemon) log() string { return readFile(filepath.Join(d.dir, "streamd.log")) }

// stop sends SIGTERM and requires the daemon to exit 0 within timeout.
func (d *daemon) stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-d.exited:
		require.NoError(t, err, "streamd exits 0 after SIGTERM; log:\n%s", d.log())
	case <-time.After(timeout):
		t.Fatalf("streamd did not stop within %s of SIGTERM", timeout)
	}
}
