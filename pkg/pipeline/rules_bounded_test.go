package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

// boundedRulesPipeline reads rule input from a file once (or stdin) into a
// rule stage whose alerts go to a JSON lines file.
const boundedRulesPipeline = `
name: bounded-rules
parallelism: 2
http: {listen: "off"}
# Without checkpoints a stop drains the rule stage, like an end of input.
checkpoint: {enabled: false}
sources:
  - name: points
    %s
    decode:
      fields:
        - {name: equipmentId, type: string, required: true}
        - {name: tag, type: string, required: true}
        - {name: value, type: float, required: true}
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
    eventTime: {field: ts, maxFuture: -1s}
    watermark: {maxOutOfOrderness: 1s}
stages:
  - name: line-rules
    keyBy: [equipmentId]
    rules: {files: [%q]}
sinks:
  - {name: rule-alerts, input: line-rules, type: file, file: {path: %q}}
`

const boundedHotRule = `{"id":"hot","version":1,"select":"tag == \"water_temperature\"","key":["equipmentId"],
"signals":{"temperature":{"value":"value"}},
"groups":[{"name":"hot","state":"WARNING","conditions":["temperature > 80"],"for":"5m"}]}`

// boundedInput: m1 turns hot at T0+2m and the input ends (its last event
// time is T0+6m) before m1's five minutes are up; m2 is hot on [T0, T0+5m)
// and cools at exactly T0+5m; m3 stays hot past T0+5m within the input.
func boundedInput() (string, int64) {
	t0 := time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC).UnixMilli()
	var b strings.Builder
	rec := func(m string, dt time.Duration, v float64) {
		fmt.Fprintf(&b, `{"equipmentId":%q,"tag":"water_temperature","value":%g,"ts":%d}`+"\n", m, v, t0+dt.Milliseconds())
	}
	rec("m2", 0, 85)
	rec("m3", 0, 90)
	rec("m1", 2*time.Minute, 85)
	rec("m1", 4*time.Minute, 86)
	rec("m2", 5*time.Minute, 70)
	rec("m3", 6*time.Minute, 95)
	return b.String(), t0
}

// boundedWant: m3 fires at T0+5m while the input is read; m1 fires at
// T0+7m only because the end of the input resolves its pending duration
// at the end-of-input watermark; m2 never held for five minutes.
func boundedWant(t0 int64) []string {
	m := func(d time.Duration) int64 { return t0 + d.Milliseconds() }
	return []string{fmt.Sprintf("hot m1 OK->WARNING %d", m(7*time.Minute)), fmt.Sprintf("hot m3 OK->WARNING %d", m(5*time.Minute))}
}

func writeBoundedConfig(t *testing.T, sourceBlock string) (cfgPath, alerts string) {
	t.Helper()
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	require.NoError(t, os.MkdirAll(rulesDir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(rulesDir, "hot.json"), []byte(boundedHotRule), 0o644))
	alerts = filepath.Join(dir, "alerts.jsonl")
	cfgPath = filepath.Join(dir, "pipeline.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(boundedRulesPipeline, sourceBlock, rulesDir, alerts)), 0o644))
	return cfgPath, alerts
}

// readRuleAlerts renders the alert rows of a JSON lines file as
// "rule key old->new event_time", sorted.
func readRuleAlerts(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var a struct {
			RuleID    string `json:"rule_id"`
			Key       string `json:"key"`
			OldState  string `json:"old_state"`
			NewState  string `json:"new_state"`
			EventTime string `json:"event_time"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &a), line)
		ts, err := time.Parse(time.RFC3339Nano, a.EventTime)
		require.NoError(t, err, line)
		out = append(out, fmt.Sprintf("%s %s %s->%s %d", a.RuleID, a.Key, a.OldState, a.NewState, ts.UnixMilli()))
	}
	sort.Strings(out)
	return out
}

// TestRuleStageFinishesOnBoundedInput runs a rule stage over a file read
// once in the runtime: Run returns when the input ends, and a key still
// pending at the end is decided at the end-of-input watermark.
func TestRuleStageFinishesOnBoundedInput(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	input, t0 := boundedInput()
	dir := t.TempDir()
	points := filepath.Join(dir, "points.jsonl")
	require.NoError(t, os.WriteFile(points, []byte(input), 0o644))
	cfgPath, alerts := writeBoundedConfig(t, fmt.Sprintf("type: file\n    file: {paths: [%q]}", points))
	cfg, err := pipeline.Load(cfgPath, nil)
	require.NoError(t, err)
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- rt.Run(context.Background()) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("the rule stage did not finish after the end of its bounded input")
	}
	require.Equal(t, boundedWant(t0), readRuleAlerts(t, alerts))
}

// streamdBinary builds cmd/streamd once per test binary.
var streamdBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "streamd-pipeline-test-")
	if err != nil {
		return "", fmt.Errorf("create build dir: %w", err)
	}
	bin := filepath.Join(dir, "streamd")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/streamd/streamd/cmd/streamd")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build streamd: %w: %s", err, out)
	}
	return bin, nil
})

// runStreamd starts the binary on cfgPath with stdin fed from the returned
// writer; wait returns its exit error, or fails the test after timeout.
func runStreamd(t *testing.T, cfgPath string) (*exec.Cmd, io.WriteCloser, func(time.Duration) error) {
	t.Helper()
	bin, err := streamdBinary()
	require.NoError(t, err)
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited //nolint:errcheck // killed: its error is the kill
	})
	wait := func(timeout time.Duration) error {
		select {
		case err := <-exited:
			exited <- err
			if err != nil {
				t.Logf("streamd output:\n%s", logs.String())
			}
			return err
		case <-time.After(timeout):
			t.Fatalf("streamd did not exit within %s; output:\n%s", timeout, logs.String())
			return nil
		}
	}
	return cmd, stdin, wait
}

// TestStreamdRulesExitAtEndOfStdin: the binary reading stdin into a rule
// stage exits 0 once stdin is at its end, with the pending key decided.
func TestStreamdRulesExitAtEndOfStdin(t *testing.T) {
	input, t0 := boundedInput()
	cfgPath, alerts := writeBoundedConfig(t, "type: stdin")
	_, stdin, wait := runStreamd(t, cfgPath)
	_, err := io.WriteString(stdin, input)
	require.NoError(t, err)
	require.NoError(t, stdin.Close())
	require.NoError(t, wait(60*time.Second))
	require.Equal(t, boundedWant(t0), readRuleAlerts(t, alerts))
}

// TestStreamdRulesHonourSIGTERM: SIGTERM while the input is still open
// (stdin, a followed file) and a key is pending stops the binary with
// status 0; without a checkpoint block the stop drains the rule stage like
// an end of input, which decides the pending key.
func TestStreamdRulesHonourSIGTERM(t *testing.T) {
	for _, viaStdin := range []bool{true, false} {
		t.Run(map[bool]string{true: "stdin", false: "followed file"}[viaStdin], func(t *testing.T) {
			input, t0 := boundedInput()
			block := "type: stdin"
			if !viaStdin {
				points := filepath.Join(t.TempDir(), "points.jsonl")
				require.NoError(t, os.WriteFile(points, []byte(input), 0o644))
				block = fmt.Sprintf("type: file\n    file: {paths: [%q], follow: true, pollInterval: 20ms}", points)
			}
			cfgPath, alerts := writeBoundedConfig(t, block)
			cmd, stdin, wait := runStreamd(t, cfgPath)
			defer stdin.Close()
			if viaStdin {
				// Stdin stays open: the reader is waiting for more.
				_, err := io.WriteString(stdin, input)
				require.NoError(t, err)
			}
			// m3's alert is written while the input is still open: everything
			// has been read once it is there, and m1 is pending.
			deadline := time.Now().Add(60 * time.Second)
			for {
				data, err := os.ReadFile(alerts)
				if err == nil && bytes.Contains(data, []byte(`"m3"`)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no alert for m3 while the input is open")
				}
				time.Sleep(20 * time.Millisecond)
			}
			require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
			err := wait(30 * time.Second)
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				t.Fatalf("streamd exited with status %d after SIGTERM", exit.ExitCode())
			}
			require.NoError(t, err)
			require.Equal(t, boundedWant(t0), readRuleAlerts(t, alerts))
		})
	}
}
