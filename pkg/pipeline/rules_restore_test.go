package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/internal/admin"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
	"github.com/streamd/streamd/pkg/rules"
)

const restoreRulesPipeline = `
name: rules-restore
parallelism: 2
http: {listen: "off"}
checkpoint: {dir: %q, interval: 100ms}
sources:
  - name: points
    type: generator
    generator: {seed: 5, rate: 2000, splits: 2, machines: 6, tags: 2, step: 1s, startTime: "2026-01-01T00:00:00Z"}
    decode:
      fields:
        - {name: equipmentId, type: string, required: true}
        - {name: tag, type: string, required: true}
        - {name: value, type: float, required: true}
        - {name: ts, path: timestamp, type: timestamp, format: epoch_ms}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 1s}
stages:
  - name: line-rules
    keyBy: [equipmentId]
    rules: {files: [%q], pollInterval: 50ms}
sinks:
  - {name: rule-alerts, input: line-rules, type: file, file: {path: %q}}
`

// thresholdRule: water temperature swings between about 9 and 17 °C, so
// thresholds in that range make machines change state.
func thresholdRule(id string, version int64, threshold float64) string {
	return fmt.Sprintf(`{"id":%q,"version":%d,"select":"tag == \"water_temperature\"","key":["equipmentId"],`+
		`"signals":{"temperature":{"value":"value"}},"states":["OK","WARNING"],`+
		`"groups":[{"name":"hot","state":"WARNING","conditions":["temperature > %g"]}]}`, id, version, threshold)
}

// ruleRunToken is the bearer token of the rule runs' admin API.
const ruleRunToken = "rule-run-token"

// ruleRun is one run of the pipeline with its admin API.
type ruleRun struct {
	t    *testing.T
	rt   *operator.Runtime
	url  string
	stop func()
}

func startRuleRun(t *testing.T, doc string) *ruleRun {
	t.Helper()
	cfg, err := pipeline.Parse([]byte(doc), nil)
	require.NoError(t, err)
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	// Changing rules needs the admin token, as in production.
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(ruleRunToken+"\n"), 0o600))
	srv, err := admin.New(admin.Config{Listen: "127.0.0.1:0", Gatherer: prometheus.NewRegistry(), Ready: rt.Ready, Status: func() any { return rt.Status() }, Rules: rt.Rules(),
		Auth: admin.Auth{TokenFile: tokenFile}}, nil)
	require.NoError(t, err)
	go func() { _ = srv.Serve() }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	require.Eventually(t, rt.Ready, 30*time.Second, 10*time.Millisecond)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel() // as SIGTERM: savepoint, then stop
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(60 * time.Second):
			t.Fatal("pipeline did not stop")
		}
		require.NoError(t, srv.Shutdown(context.Background()))
	}
	t.Cleanup(stop)
	return &ruleRun{t: t, rt: rt, url: "http://" + srv.Addr(), stop: stop}
}

func (r *ruleRun) do(method, path, body string) (int, string) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	require.NoError(r.t, err)
	req.Header.Set("Authorization", "Bearer "+ruleRunToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(r.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(r.t, err)
	return resp.StatusCode, string(data)
}

// listed is what GET /v1/rules serves for the stage: id → version.
func (r *ruleRun) listed() map[string]int64 {
	r.t.Helper()
	code, body := r.do("GET", "/v1/rules", "")
	require.Equal(r.t, http.StatusOK, code, body)
	var out map[string][]*rules.Rule
	require.NoError(r.t, json.Unmarshal([]byte(body), &out), body)
	got := map[string]int64{}
	for _, rule := range out["line-rules"] {
		got[rule.ID] = rule.Version
	}
	return got
}

// inForce is what every subtask's engine holds: id → version.
func (r *ruleRun) inForce() map[string]int64 {
	got := map[string]int64{}
	for _, s := range r.rt.Rules().Stats("line-rules") {
		got[s.ID] = s.Version
	}
	return got
}

// agree waits until the engines hold want and checks the API serves it.
func (r *ruleRun) agree(want map[string]int64) {
	r.t.Helper()
	require.Eventually(r.t, func() bool {
		got := r.inForce()
		if len(got) != len(want) {
			return false
		}
		for id, v := range want {
			if got[id] != v {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "engines hold %v, want %v", r.inForce(), want)
	require.Equal(r.t, want, r.listed(), "GET /v1/rules")
}

// checkpointed waits for two more completed checkpoints, so the last one
// was cut after everything applied so far.
func (r *ruleRun) checkpointed() {
	r.t.Helper()
	c := r.rt.Coordinator()
	from := c.LastCompleted()
	require.Eventually(r.t, func() bool { return c.LastCompleted() >= from+2 }, 30*time.Second, 10*time.Millisecond)
}

// TestRulesAgreeAfterRestore changes rules through the admin API, restarts
// from the savepoint, and requires the rule manager (GET /v1/rules), the
// engines and the alerts to agree on the restored rule set — with rule
// files applied on top by version — and the API's status codes to follow
// the documentation.
func TestRulesAgreeAfterRestore(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"), goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"), goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	require.NoError(t, os.MkdirAll(rulesDir, 0o755))
	writeRule := func(doc string) {
		require.NoError(t, os.WriteFile(filepath.Join(rulesDir, "hot.json"), []byte(doc), 0o644))
	}
	writeRule(thresholdRule("hot", 1, 13))
	doc := func(run int) string {
		return fmt.Sprintf(restoreRulesPipeline, filepath.Join(dir, "checkpoints"), rulesDir, filepath.Join(dir, fmt.Sprintf("alerts-%d.jsonl", run)))
	}

	// Run 1: the file holds hot v1; the API raises it to v2 and adds extra.
	r1 := startRuleRun(t, doc(1))
	r1.agree(map[string]int64{"hot": 1})
	code, body := r1.do("PUT", "/v1/rules/hot", thresholdRule("hot", 2, 12))
	require.Equal(t, http.StatusOK, code, body)
	code, body = r1.do("PUT", "/v1/rules/extra", thresholdRule("extra", 1, 14))
	require.Equal(t, http.StatusOK, code, body)
	r1.agree(map[string]int64{"hot": 2, "extra": 1})
	r1.checkpointed()
	r1.stop()

	// Run 2 restores: the checkpoint's rules are in force, not the file's
	// older hot v1, and GET /v1/rules says so.
	r2 := startRuleRun(t, doc(2))
	r2.agree(map[string]int64{"hot": 2, "extra": 1})
	alerts := filepath.Join(dir, "alerts-2.jsonl")
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(alerts)
		return err == nil && strings.Contains(string(data), `"rule_id":"hot"`)
	}, 30*time.Second, 10*time.Millisecond, "run 2 raises alerts")
	data, err := os.ReadFile(alerts)
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var a struct {
			RuleID  string `json:"rule_id"`
			Version int64  `json:"rule_version"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &a), line)
		require.Equal(t, r2.listed()[a.RuleID], a.Version, "alert %s carries the version GET /v1/rules shows", line)
	}

	// Same version, other definition: a conflict, not a silent success.
	code, body = r2.do("PUT", "/v1/rules/hot", thresholdRule("hot", 2, 11))
	require.Equal(t, http.StatusConflict, code, body)
	// The same document again is a replay: accepted, nothing changes.
	code, body = r2.do("PUT", "/v1/rules/hot", thresholdRule("hot", 2, 12))
	require.Equal(t, http.StatusOK, code, body)
	code, body = r2.do("PUT", "/v1/rules/hot", thresholdRule("hot", 1, 12))
	require.Equal(t, http.StatusConflict, code, body)

	// A rule known only from the checkpoint can be deleted.
	code, body = r2.do("DELETE", "/v1/rules/extra", "")
	require.Equal(t, http.StatusNoContent, code, body)
	r2.agree(map[string]int64{"hot": 2})
	code, body = r2.do("DELETE", "/v1/rules/extra", "")
	require.Equal(t, http.StatusNotFound, code, body)
	code, body = r2.do("DELETE", "/v1/rules/nope", "")
	require.Equal(t, http.StatusNotFound, code, body)
	r2.checkpointed()
	r2.stop()

	// While stopped, the rule file moves to v3: it applies on top of the
	// checkpoint's v2. The deletion of extra is restored too.
	writeRule(thresholdRule("hot", 3, 15))
	r3 := startRuleRun(t, doc(3))
	r3.agree(map[string]int64{"hot": 3})
	code, body = r3.do("PUT", "/v1/rules/extra", thresholdRule("extra", 1, 14))
	require.Equal(t, http.StatusConflict, code, "version 1 of extra was deleted: %s", body)
	code, body = r3.do("PUT", "/v1/rules/extra", thresholdRule("extra", 2, 14))
	require.Equal(t, http.StatusOK, code, body)
	r3.agree(map[string]int64{"hot": 3, "extra": 2})
	r3.stop()
}
