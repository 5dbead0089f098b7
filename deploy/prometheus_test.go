package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lookTool finds an external tool. Missing tools skip the test on a
// developer machine but fail it in CI (CI set), where
// scripts/install-prometheus.sh is expected to have run.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s not installed: run scripts/install-prometheus.sh", name)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// TestAlertRulesPromtool runs promtool's checks and the rule unit tests.
func TestAlertRulesPromtool(t *testing.T) {
	promtool := lookTool(t, "promtool")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(rulesPath)},
		{"test", "rules", filepath.Base(rulesTestPath)},
	} {
		cmd := exec.CommandContext(ctx, promtool, args...)
		cmd.Dir = filepath.Dir(rulesPath)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// e2ePipeline is a pipeline that exercises every metric the dashboard
// reads within seconds: a fast generator with out-of-order, late and
// malformed records, one-second windows with allowed lateness (late
// updates and late records), an alert that fires on every window, every
// built-in stream written to a file, one-second checkpoints, a Kafka
// source in a consumer group (lag, fetches, offset commits on checkpoint)
// mirrored to a Kafka sink, a rule stage reading the rule files of
// e2eRules, and a Kinesis source (%[4]s, %[5]s: left out when
// kinesis-local is not installed outside CI).
const e2ePipeline = `
name: e2e
parallelism: 2
http:
  listen: "127.0.0.1:%[1]d"
checkpoint:
  interval: 1s
  dir: %[2]s/checkpoints
sources:
  - name: sensors
    type: generator
    generator:
      seed: 7
      rate: 2000
      splits: 2
      machines: 5
      tags: 3
      outOfOrderness: 1500ms
      lateFraction: 0.02
      lateBy: 30s
      malformedFraction: 0.02
    decode:
      format: json
      fields:
        - {name: timestamp, type: timestamp, format: epoch_ms, required: true}
        - {name: equipmentId, type: string, required: true}
        - {name: tag, type: string, required: true}
        - {name: value, type: float, required: true}
    eventTime:
      field: timestamp
    watermark:
      strategy: bounded
      maxOutOfOrderness: 200ms
      idleTimeout: 5s
  - name: kafka-sensors
    type: kafka
    kafka:
      brokers: ["%[3]s"]
      topics: [sensors]
      group: e2e
      startOffset: earliest
    decode:
      fields:
        - {name: timestamp, type: timestamp, format: epoch_ms, required: true}
        - {name: equipmentId, type: string, required: true}
        - {name: tag, type: string, required: true}
        - {name: value, type: float, required: true}
    eventTime: {field: timestamp}
    watermark: {maxOutOfOrderness: 1s, idleTimeout: 2s}
%[4]s
stages:
  - name: stats
    input: sensors
    keyBy: [equipmentId, tag]
    window: {type: tumbling, size: 1s}
    allowedLateness: 1s
    stateBudget: 64MiB
    aggregates:
      - {fn: count, as: n}
      - {fn: avg, field: value, as: avg_value}
    alerts:
      - name: every_window
        when: n > 0
        severity: info
  - name: line-rules
    input: sensors
    keyBy: [equipmentId]
    rules:
      files: [%[2]s/rules]
sinks:
  - name: stats
    input: stats
    type: parquet
    parquet:
      path: %[2]s/parquet
      partition: "dt={date}/hour={hour}"
      rollRows: 200
      rollAge: 1s
  - {name: alerts, input: alerts, type: file, file: {path: %[2]s/alerts.jsonl}}
  - {name: deadletters, input: deadletters, type: file, file: {path: %[2]s/deadletters.jsonl}}
  - {name: late, input: late, type: file, file: {path: %[2]s/late.jsonl}}
  - {name: rule-alerts, input: line-rules, type: file, file: {path: %[2]s/rule-alerts.jsonl}}
  - name: kafka-mirror
    input: kafka-sensors
    type: kafka
    kafka: {brokers: ["%[3]s"], topic: mirror, batchTimeout: 50ms}
%[5]s`

// e2eKinesisSource and e2eKinesisSink add the Kinesis source and a sink
// that reads it to e2ePipeline; %[1]s is the endpoint, %[2]s the stream,
// %[3]s the output directory.
const (
	e2eKinesisSource = `  - name: kinesis-sensors
    type: kinesis
    kinesis:
      stream: %[2]s
      region: us-east-1
      endpoint: %[1]s
      startPosition: TRIM_HORIZON
    decode:
      fields:
        - {name: timestamp, type: timestamp, format: epoch_ms, required: true}
        - {name: equipmentId, type: string, required: true}
        - {name: tag, type: string, required: true}
        - {name: value, type: float, required: true}
    eventTime: {field: timestamp}
    watermark: {maxOutOfOrderness: 1s, idleTimeout: 2s}`
	e2eKinesisSink = `  - {name: kinesis-sensors, input: kinesis-sensors, type: file, file: {path: %[3]s/kinesis.jsonl}}`
)

// e2eRules are the rule files of the test pipeline's rule stage, by file
// name. The generator's water temperature stays between about 9 and 17, so
// "hot" moves every machine to WARNING at its first reading (alerts and
// keys in a non-resting state within seconds); "hot-candidate" is the same
// rule as a dry run; "broken" converts the tag, a string, to a number,
// which fails on every record: it counts errors and is quarantined after
// quarantineAfter (100) of them.
var e2eRules = map[string]string{
	"hot.json": `{"id":"hot","version":1,"select":"tag == \"water_temperature\"","key":["equipmentId"],
"signals":{"temperature":{"when":"tag == \"water_temperature\"","value":"value"}},"states":["OK","WARNING"],
"groups":[{"name":"hot","state":"WARNING","weight":1,"conditions":["temperature > 5"],"clear":"temperature < 4.5"}],"severity":"warning"}`,
	"hot-candidate.yaml": `id: hot-candidate
version: 1
dryRun: true
select: tag == "water_temperature"
key: [equipmentId]
signals:
  temperature: {value: value}
states: [OK, WARNING]
groups:
  - {name: hot, state: WARNING, conditions: ["temperature > 5"]}
`,
	"broken.json": `{"id":"broken","version":1,"select":"tag == \"water_temperature\"","key":["equipmentId"],
"signals":{"code":{"value":"int(tag)"}},"groups":[{"name":"coded","state":"WARNING","conditions":["code > 0"]}]}`,
}

// e2eRuleChecks are conditions on the rule metrics that show the rule
// stage at work, beyond the series existing: each must return a series.
var e2eRuleChecks = []string{
	`streamd_rule_alerts_total{rule="hot"} > 0`,
	`streamd_rule_keys{rule="hot", state="WARNING"} > 0`,
	`streamd_rule_dry_run_alerts_total{stage="line-rules"} > 0`,
	`streamd_rule_alerts_total{rule="hot-candidate"} == 0`,
	`streamd_rule_errors_total{rule="broken"} > 0`,
	`streamd_rule_quarantined{rule="broken"} == 1`,
}

const e2ePrometheusConfig = `
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %[2]s
scrape_configs:
  - job_name: streamd
    static_configs:
      - targets: ["127.0.0.1:%[1]d"]
`

// TestDashboardAgainstDaemon runs streamd with a demo pipeline, scrapes it
// with a real Prometheus and requires every dashboard query to return
// data; it also lints the exposition with promtool, loads the alert rules
// into Prometheus, and checks that SIGTERM drains streamd to exit code 0.
func TestDashboardAgainstDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	promtool := lookTool(t, "promtool")
	prometheus := lookTool(t, "prometheus")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	// kinesis-local takes seconds to boot: it starts while Go builds.
	kinesisServer := startKinesisServer(ctx, t)

	// STREAMD_BIN tests a prebuilt binary (e.g. the one a release ships)
	// instead of building ./cmd/streamd. The Kafka development server is
	// always built, in the same go build so both compile in parallel.
	bin := os.Getenv("STREAMD_BIN")
	pkgs := []string{"./internal/devserver/kafka"}
	if bin == "" {
		if _, err := os.Stat("../cmd/streamd"); err != nil {
			t.Skip("cmd/streamd does not exist yet: nothing to run the dashboard against")
		}
		bin = filepath.Join(dir, "streamd")
		pkgs = append(pkgs, "./cmd/streamd")
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.CommandContext(ctx, "go", append(args, pkgs...)...)
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		msg := fmt.Sprintf("go build %s failed, the daemon is not wired yet:\n%s", strings.Join(pkgs, " "), out)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	kafkaBin := filepath.Join(dir, "kafka")

	// The Kubernetes pipeline is valid for this build too.
	out, err := exec.CommandContext(ctx, bin, "validate", "--config", filepath.Join(baseDir, "pipeline.yaml")).CombinedOutput()
	require.NoError(t, err, "streamd validate %s/pipeline.yaml:\n%s", baseDir, out)

	// Records wait in Kafka and Kinesis before streamd starts, so lag,
	// fetch and offset-commit metrics appear as soon as it reads them.
	broker := startKafkaDev(ctx, t, dir, kafkaBin, "sensors:2", "mirror:1")
	produceKafka(ctx, t, broker, "sensors", 2000)
	var kinesisSource, kinesisSink string
	kin := kinesisStream(ctx, t, kinesisServer, "sensors", 2, 500)
	if kin != nil {
		kinesisSource = fmt.Sprintf(e2eKinesisSource, kin.Endpoint, kin.Stream, dir)
		kinesisSink = fmt.Sprintf(e2eKinesisSink, kin.Endpoint, kin.Stream, dir)
		// The standard AWS credential chain reads these; kinesis-local
		// accepts any key.
		t.Setenv("AWS_ACCESS_KEY_ID", "streamdtest")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "streamdtest")
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	}

	rulesDir := filepath.Join(dir, "rules")
	require.NoError(t, os.Mkdir(rulesDir, 0o700))
	for name, doc := range e2eRules {
		require.NoError(t, os.WriteFile(filepath.Join(rulesDir, name), []byte(doc), 0o600))
	}

	streamdPort, promPort := freePort(t), freePort(t)
	pipelinePath := filepath.Join(dir, "pipeline.yaml")
	require.NoError(t, os.WriteFile(pipelinePath, fmt.Appendf(nil, e2ePipeline, streamdPort, dir, broker, kinesisSource, kinesisSink), 0o600))
	out, err = exec.CommandContext(ctx, bin, "validate", "--config", pipelinePath).CombinedOutput()
	require.NoError(t, err, "streamd validate (test pipeline):\n%s", out)

	streamd := start(ctx, t, dir, "streamd", bin, "run", "--config", pipelinePath)
	streamdURL := fmt.Sprintf("http://127.0.0.1:%d", streamdPort)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(ctx, t, streamd, 60*time.Second, "streamd /readyz", func() error {
		_, err := httpGet(ctx, client, streamdURL+"/readyz")
		return err
	})
	for _, path := range []string{"/healthz", "/v1/status"} {
		_, err := httpGet(ctx, client, streamdURL+path)
		require.NoError(t, err, path)
	}

	rules, err := filepath.Abs(rulesPath)
	require.NoError(t, err)
	promConfig := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(promConfig, fmt.Appendf(nil, e2ePrometheusConfig, streamdPort, rules), 0o600))
	prom := start(ctx, t, dir, "prometheus", prometheus,
		"--config.file="+promConfig,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+fmt.Sprintf("127.0.0.1:%d", promPort),
	)
	promURL := fmt.Sprintf("http://127.0.0.1:%d", promPort)

	// Lint the exposition while Prometheus collects samples.
	body, err := httpGet(ctx, client, streamdURL+"/metrics")
	require.NoError(t, err)
	lint := exec.CommandContext(ctx, promtool, "check", "metrics")
	lint.Stdin = strings.NewReader(body)
	lintOut, err := lint.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", lintOut)
	require.Empty(t, strings.TrimSpace(string(lintOut)), "promtool check metrics")
	// Every streamd metric the daemon exposes is in the reference.
	documented := documentedMetrics(t)
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (streamd_[a-z0-9_]+) `).FindAllStringSubmatch(body, -1) {
		require.True(t, documented[m[1]], "%s is exposed but not documented in docs/metrics.md", m[1])
	}

	queries := dashboardQueries(loadDashboard(t))
	require.NotEmpty(t, queries)
	if kin == nil {
		// Without kinesis-local there is no Kinesis source to report on.
		queries = slices.DeleteFunc(queries, func(q dashboardQuery) bool { return q.Row == "Kinesis" })
	}
	var empty []string
	waitFor(ctx, t, prom, 90*time.Second, "data for every dashboard query", func() error {
		empty = empty[:0]
		for _, q := range queries {
			n, err := instantQuery(ctx, client, promURL, evaluable(q.Expr))
			if err != nil {
				return fmt.Errorf("panel %q: %w", q.Panel, err)
			}
			if n == 0 {
				empty = append(empty, fmt.Sprintf("%q: %s", q.Panel, evaluable(q.Expr)))
			}
		}
		if len(empty) > 0 {
			return fmt.Errorf("no data yet for %d queries:\n%s", len(empty), strings.Join(empty, "\n"))
		}
		return nil
	})

	// The rule stage evaluates, alerts, runs the dry-run rule and
	// quarantines the failing one.
	waitFor(ctx, t, prom, 30*time.Second, "rule stage metrics", func() error {
		for _, expr := range e2eRuleChecks {
			n, err := instantQuery(ctx, client, promURL, expr)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("no series for %s", expr)
			}
		}
		return nil
	})

	// The template variables find the instance.
	jobs, err := httpGet(ctx, client, promURL+"/api/v1/label/job/values?match[]=streamd_build_info")
	require.NoError(t, err)
	require.Contains(t, jobs, `"streamd"`)

	// The alert rules load and evaluate without errors against real series.
	waitFor(ctx, t, prom, 30*time.Second, "alert rules evaluated", func() error { return rulesHealthy(ctx, client, promURL) })

	// Drain: SIGTERM, then exit code 0 and committed Parquet files.
	require.NoError(t, streamd.stop(90*time.Second), "streamd must exit 0 on SIGTERM; log:\n%s", streamd.log())
	var parquetFiles int
	_ = filepath.WalkDir(filepath.Join(dir, "parquet"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".parquet") {
			parquetFiles++
		}
		return nil
	})
	require.Positive(t, parquetFiles, "no Parquet file committed")
	_ = prom.stop(30 * time.Second)
}

// process is a started command whose exit is observed once.
type process struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// start runs a command with its output in a log file. Cleanup stops it
// (SIGTERM, then SIGKILL after a grace period) if the test has not.
func start(ctx context.Context, t *testing.T, dir, name, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	t.Cleanup(func() { _ = logFile.Close() })
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	require.NoError(t, cmd.Start(), "start %s", name)
	p := &process{t: t, name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.stop(30 * time.Second); err != nil && t.Failed() {
			t.Logf("%s log:\n%s", name, p.log())
		}
	})
	return p
}

// stop sends SIGTERM to the process (by its PID) and waits for it to exit,
// killing it after grace. It returns the exit error (nil for exit code 0).
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %s of SIGTERM: %w", p.name, grace, p.err)
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) log() string {
	data, _ := os.ReadFile(p.logPath)
	const tail = 8 << 10
	if len(data) > tail {
		data = data[len(data)-tail:]
	}
	return string(data)
}

// waitFor retries check every 500ms until it succeeds or timeout passes;
// a process that exits meanwhile fails the test at once with its log.
func waitFor(ctx context.Context, t *testing.T, p *process, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if p.exited() {
			t.Fatalf("%s exited while waiting for %s (%v); log:\n%s", p.name, what, p.err, p.log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %v)", what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func httpGet(ctx context.Context, c *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("build request: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("get %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("get %s: status %d: %s", u, resp.StatusCode, body)
	}
	return string(body), nil
}

// instantQuery evaluates expr now and returns the number of result series
// (or 1 for a scalar), failing on any query error.
func instantQuery(ctx context.Context, c *http.Client, promURL, expr string) (int, error) {
	body, err := httpGet(ctx, c, promURL+"/api/v1/query?query="+url.QueryEscape(expr))
	if err != nil {
		return 0, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return 0, fmt.Errorf("decode query response: %w", err)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query %s: %s", expr, r.Error)
	}
	if r.Data.ResultType != "vector" && r.Data.ResultType != "matrix" {
		return 1, nil
	}
	var series []json.RawMessage
	if err := json.Unmarshal(r.Data.Result, &series); err != nil {
		return 0, fmt.Errorf("decode query result: %w", err)
	}
	return len(series), nil
}

// rulesHealthy reports whether every loaded alert rule has been evaluated
// without error.
func rulesHealthy(ctx context.Context, c *http.Client, promURL string) error {
	body, err := httpGet(ctx, c, promURL+"/api/v1/rules?type=alert")
	if err != nil {
		return err
	}
	var r struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return fmt.Errorf("decode rules: %w", err)
	}
	var n int
	var errs []error
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			n++
			if rule.Health != "ok" {
				errs = append(errs, fmt.Errorf("rule %s: health %q %s", rule.Name, rule.Health, rule.LastError))
			}
		}
	}
	if n == 0 {
		errs = append(errs, errors.New("no alert rules loaded"))
	}
	return errors.Join(errs...)
}
