package crash_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/modroot"
)

// Time limits, generous for a loaded 2-core machine but bounded.
const (
	// startTimeout bounds a start until every split is being read; it
	// covers a consumer-group rebalance that waits out the session timeout
	// of the killed member.
	startTimeout = 90 * time.Second
	// finishTimeout bounds reading the rest of the input after the last
	// start, plus the checkpoints that publish it.
	finishTimeout = 3 * time.Minute
	// publishTimeout bounds the wait for staged files to be published
	// after the last window fired: rollAge plus a few checkpoints.
	publishTimeout = 30 * time.Second
	// stopTimeout bounds the savepoint and exit after SIGTERM.
	stopTimeout = time.Minute
)

// daemonBuild builds cmd/streamd once per test binary.
var daemonBuild struct {
	once sync.Once
	path string
	err  error
	dir  string
}

// buildDaemon returns the path of a freshly built streamd binary, or of
// the binary CRASH_STREAMD names (to test a given build).
func buildDaemon(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("CRASH_STREAMD"); bin != "" {
		return bin
	}
	daemonBuild.once.Do(func() {
		root, err := modroot.Dir()
		if err != nil {
			daemonBuild.err = err
			return
		}
		dir, err := os.MkdirTemp("", "streamd-crash-")
		if err != nil {
			daemonBuild.err = fmt.Errorf("create build dir: %w", err)
			return
		}
		daemonBuild.dir = dir
		daemonBuild.path = filepath.Join(dir, "streamd")
		cmd := exec.Command("go", "build", "-o", daemonBuild.path, "./cmd/streamd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			daemonBuild.err = fmt.Errorf("build streamd: %w: %s", err, out)
		}
	})
	require.NoError(t, daemonBuild.err)
	return daemonBuild.path
}

// daemon is one streamd process, in its own process group.
type daemon struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	log  string
	done chan struct{}
	err  error // exit status, valid once done is closed
}

// startDaemon runs `streamd run` on cfg with its admin endpoint on a free
// loopback port, appending its output to logPath. The process is killed at
// the end of the test if it is still running.
func startDaemon(t *testing.T, bin, cfg, logPath string, env []string) *daemon {
	t.Helper()
	addr := freeAddr(t)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	cmd := exec.Command(bin, "run", "--config", cfg, "--listen", addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	// Its own process group, so a kill reaches anything it might start.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start(), "start streamd")
	d := &daemon{t: t, cmd: cmd, addr: addr, log: logPath, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		_ = logf.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		if !d.exited() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	})
	return d
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the daemon's process group and waits for it to die.
func (d *daemon) kill() {
	d.t.Helper()
	require.NoError(d.t, syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL), "kill streamd")
	select {
	case <-d.done:
	case <-time.After(stopTimeout):
		d.t.Fatalf("streamd (pid %d) did not die within %s of SIGKILL", d.cmd.Process.Pid, stopTimeout)
	}
}

// stop sends SIGTERM and requires a clean exit (savepoint, status 0).
func (d *daemon) stop() {
	d.t.Helper()
	require.NoError(d.t, d.cmd.Process.Signal(syscall.SIGTERM), "signal streamd")
	select {
	case <-d.done:
	case <-time.After(stopTimeout):
		d.t.Fatalf("streamd did not exit within %s of SIGTERM\n%s", stopTimeout, d.logTail())
	}
	require.NoError(d.t, d.err, "streamd exit status after SIGTERM\n%s", d.logTail())
}

// logTail is the end of the daemon's log, for failure messages.
func (d *daemon) logTail() string {
	data, err := os.ReadFile(d.log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return "log " + d.log + " (last lines):\n" + strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// status is the part of /v1/status the harness reads.
type status struct {
	Ready  bool `json:"ready"`
	Splits []struct {
		Split    string `json:"split"`
		Position int64  `json:"position"`
		Records  int64  `json:"records"`
	} `json:"splits"`
	Subtasks []struct {
		Stage     string     `json:"stage"`
		Index     int        `json:"index"`
		Watermark *time.Time `json:"watermark"`
	} `json:"subtasks"`
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func (d *daemon) get(path string) ([]byte, error) {
	resp, err := httpClient.Get("http://" + d.addr + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return buf.Bytes(), nil
}

func (d *daemon) status() (status, error) {
	var st status
	data, err := d.get("/v1/status")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(data, &st)
}

// lastCheckpoint reads streamd_checkpoint_last_id from /metrics.
func (d *daemon) lastCheckpoint() (int64, error) {
	data, err := d.get("/metrics")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "streamd_checkpoint_last_id "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	return 0, errors.New("metric streamd_checkpoint_last_id not found")
}

// waitFor polls cond until it holds, the daemon exits, or timeout passes.
// cond's error is the reason it does not hold yet, reported on timeout.
func (d *daemon) waitFor(what string, timeout time.Duration, cond func() error) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-d.done:
			d.t.Fatalf("streamd exited (%v) while waiting for %s\n%s", d.err, what, d.logTail())
		case <-ctx.Done():
			d.t.Fatalf("timed out after %s waiting for %s: %v\n%s", timeout, what, err, d.logTail())
		case <-tick.C:
		}
	}
}

// waitReading waits until every one of splits splits is being read.
func (d *daemon) waitReading(splits int) {
	d.t.Helper()
	d.waitFor("every split to be read", startTimeout, func() error {
		st, err := d.status()
		if err != nil {
			return err
		}
		if len(st.Splits) < splits {
			return fmt.Errorf("%d of %d splits assigned", len(st.Splits), splits)
		}
		return nil
	})
}

// waitWorking waits until every split is being read and the process has
// completed a checkpoint of its own (the metric counts only checkpoints
// this process completed), so a kill lands while it makes progress.
func (d *daemon) waitWorking(splits int) {
	d.t.Helper()
	d.waitReading(splits)
	d.waitFor("a checkpoint of this process", startTimeout, func() error {
		id, err := d.lastCheckpoint()
		if err != nil {
			return err
		}
		if id == 0 {
			return errors.New("no checkpoint completed yet")
		}
		return nil
	})
}

// finish waits until the input is consumed and every data window has
// fired (every subtask's watermark is at least done, and each split's
// position reached ends when known), then until no staged file is left in
// outDir (bounded by publishTimeout) and two more checkpoints have
// completed, and stops the daemon with SIGTERM.
func (d *daemon) finish(done time.Time, ends map[string]int64, outDir string) {
	d.t.Helper()
	d.waitFor("the input to be consumed and every window to fire", finishTimeout, func() error {
		st, err := d.status()
		if err != nil {
			return err
		}
		if len(st.Subtasks) == 0 {
			return errors.New("no subtasks")
		}
		for split, end := range ends {
			found := false
			for _, s := range st.Splits {
				if s.Split == split {
					found = true
					if s.Position < end-1 {
						return fmt.Errorf("split %s at %d, ends at %d", split, s.Position, end-1)
					}
				}
			}
			if !found {
				return fmt.Errorf("split %s not assigned", split)
			}
		}
		for _, s := range st.Subtasks {
			if s.Watermark == nil || s.Watermark.Before(done) {
				return fmt.Errorf("subtask %s/%d watermark %v, want ≥ %s", s.Stage, s.Index, s.Watermark, done)
			}
		}
		return nil
	})
	// Open files stay staged across checkpoints (and across a stop with a
	// savepoint) until they roll by age; once every file has rolled and a
	// checkpoint has published it, no hidden file is left. Staged files
	// that never go away are reported by the comparison, so waiting for
	// them is bounded and not an assertion.
	deadline := time.Now().Add(publishTimeout)
	for staged(outDir) > 0 && time.Now().Before(deadline) && !d.exited() {
		time.Sleep(100 * time.Millisecond)
	}
	d.waitTwoMoreCheckpoints()
	d.stop()
}

// staged counts the hidden files under dir: Parquet files not published
// (yet).
func staged(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasPrefix(e.Name(), ".") {
			n++
		}
		return nil
	})
	return n
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// waitTwoMoreCheckpoints waits until two checkpoints have completed after
// the latest one now: everything published before it is then committed.
func (d *daemon) waitTwoMoreCheckpoints() {
	d.t.Helper()
	var last int64
	d.waitFor("the checkpoint metric", finishTimeout, func() error {
		var err error
		last, err = d.lastCheckpoint()
		return err
	})
	d.waitFor("two more checkpoints", finishTimeout, func() error {
		id, err := d.lastCheckpoint()
		if err != nil {
			return err
		}
		if id < last+2 {
			return fmt.Errorf("last checkpoint %d, want ≥ %d", id, last+2)
		}
		return nil
	})
}
