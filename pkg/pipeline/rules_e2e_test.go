package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

const rulesPipeline = `
name: line-rules
parallelism: 2
http: {listen: "off"}
checkpoint: {enabled: false}
sources:
  - name: points
    type: generator
    generator: {seed: 5, rate: 4000, splits: 2, machines: 6, tags: 4}
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
    rules:
      kafka: {brokers: [%q], topic: rules}
sinks:
  - name: rule-alerts
    input: line-rules
    type: kafka
    kafka: {brokers: [%q], topic: alerts, keyField: alert_id}
`

const hotRule = `{"id":"hot","version":%d,"select":"tag == \"water_temperature\"","key":["equipmentId"],
"signals":{"temperature":{"when":"tag == \"water_temperature\"","value":"value"}},
"states":["OK","WARNING"],
"groups":[{"name":"hot","state":"WARNING","weight":1,"conditions":["temperature > %g"],"clear":"temperature < %g"}],
"severity":"warning"}`

// TestRulesFromKafkaControlTopic publishes rules to a compacted control
// topic with kcat, reads the rule stage's alerts back from Kafka, and
// measures how long a rule change takes to reach every subtask.
func TestRulesFromKafkaControlTopic(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is not installed: run scripts/install-kcat.sh")
		}
		t.Skip("kcat is not installed: run scripts/install-kcat.sh")
	}
	brokers := testenv.StartKafka(t, "rules:1", "alerts:2")
	cfg, err := pipeline.Parse([]byte(fmt.Sprintf(rulesPipeline, brokers[0], brokers[0])), nil)
	require.NoError(t, err)
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	require.Eventually(t, rt.Ready, 20*time.Second, 10*time.Millisecond)

	produce := func(key, value string) {
		cmd := exec.Command(kcat, "-P", "-b", brokers[0], "-t", "rules", "-K", "\t")
		cmd.Stdin = strings.NewReader(key + "\t" + value + "\n")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "kcat: %s", out)
	}
	installed := func(version int64) func() bool {
		return func() bool {
			for _, s := range rt.Rules().Stats("line-rules") {
				if s.ID == "hot" && s.Version == version {
					return true
				}
			}
			return false
		}
	}
	// Water temperature swings between about 9 and 17 °C: a threshold of
	// 13 makes machines change state.
	start := time.Now()
	produce("hot", strings.ReplaceAll(fmt.Sprintf(hotRule, 1, 13.0, 12.5), "\n", ""))
	require.Eventually(t, installed(1), 10*time.Second, 5*time.Millisecond)
	t.Logf("rule v1 in effect on every subtask %s after kcat returned", time.Since(start))

	alerts := readAlerts(t, brokers[0], func(a map[string]any) bool { return a["rule_id"] == "hot" && a["new_state"] == "WARNING" })
	require.Equal(t, float64(1), alerts["rule_version"])

	// Raise the threshold out of reach: machines return to OK under v2.
	start = time.Now()
	produce("hot", strings.ReplaceAll(fmt.Sprintf(hotRule, 2, 1000.0, 999.0), "\n", ""))
	require.Eventually(t, installed(2), 10*time.Second, 5*time.Millisecond)
	took := time.Since(start)
	t.Logf("rule v2 in effect on every subtask %s after kcat returned", took)
	require.Less(t, took, 3*time.Second, "a rule change takes effect within about a second")
	back := readAlerts(t, brokers[0], func(a map[string]any) bool { return a["rule_version"] == float64(2) && a["new_state"] == "OK" })
	require.Equal(t, "WARNING", back["old_state"])

	// A tombstone deletes the rule everywhere.
	produce("hot", "")
	require.Eventually(t, func() bool { l, _ := rt.Rules().List("line-rules"); return len(l) == 0 }, 10*time.Second, 5*time.Millisecond)
}

// readAlerts reads the alerts topic until an alert matches.
func readAlerts(t *testing.T, broker string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for p := 0; ; p = (p + 1) % 2 {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: "alerts", Partition: p, MaxWait: 100 * time.Millisecond})
		_ = r.SetOffset(kafka.FirstOffset)
		for {
			rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
			m, err := r.ReadMessage(rctx)
			rcancel()
			if err != nil {
				break
			}
			var a map[string]any
			require.NoError(t, json.Unmarshal(m.Value, &a))
			if match(a) {
				_ = r.Close()
				return a
			}
		}
		_ = r.Close()
		if ctx.Err() != nil {
			t.Fatal("no matching alert on the alerts topic")
		}
	}
}
