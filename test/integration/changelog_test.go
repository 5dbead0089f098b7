package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/testenv"
)

// window is the identity of a window result in the reader contract: the
// key and both bounds (sessions need the end too).
type window struct{ key, start, end string }

// currentWindows applies the reader contract of docs/windows.md to a
// stage's rows in any order: per window, the row with the highest
// revision, unless it is a retraction. It fails on two rows of one window
// with the same revision.
func currentWindows(t *testing.T, rows []map[string]any) map[window]map[string]any {
	t.Helper()
	latest := map[window]map[string]any{}
	for _, r := range rows {
		w := window{fmt.Sprint(r["sensor"]), fmt.Sprint(r["window_start"]), fmt.Sprint(r["window_end"])}
		cur, ok := latest[w]
		if ok {
			require.NotEqual(t, cur["revision"], r["revision"], "two rows of %+v with revision %v", w, r["revision"])
		}
		if !ok || r["revision"].(float64) > cur["revision"].(float64) {
			latest[w] = r
		}
	}
	out := map[window]map[string]any{}
	for w, r := range latest {
		if r["retract"] != true {
			out[w] = r
		}
	}
	return out
}

// TestWindowUpdatesToKafka writes the results of a session stage with
// allowed lateness — updates and sessions withdrawn by merges — to a Kafka
// topic and to a JSON-lines file, consumes the topic back, and requires
// both, read with the reader contract, to give the same sessions, with
// retractions among the messages.
func TestWindowUpdatesToKafka(t *testing.T) {
	brokers := testenv.StartKafka(t, "readings:2", "sessions:3")
	cl := kafkaClient(t, brokers)
	const n = 3000
	values := make([][]byte, n)
	for i := range values {
		// Bursts of 30 readings (10 per sensor, 1.2 s apart) with 5 s of
		// silence between them: each burst is one session per sensor.
		ts := 1_767_258_000_000 + int64(i)*400 + int64(i/30)*5_000
		if i%37 == 5 {
			ts -= 20_000 // late, within the allowed lateness: updates or extends a fired session
		}
		values[i] = fmt.Appendf(nil, `{"ts":%d,"sensor":"s%d","value":%d}`, ts, i%3, i%100)
	}
	produceKafka(t, cl, "readings", 2, values)

	out := t.TempDir()
	p := startPipeline(t, `
name: changelog
parallelism: 2
batchSize: 16
http: {listen: "off"}
# Without checkpoints the stop drains: the open sessions fire.
checkpoint: {enabled: false}
sources:
  - name: readings
    type: kafka
    kafka: {brokers: ["${BROKER}"], topics: [readings], group: changelog, maxWait: 50ms}
    decode:
      fields:
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
        - {name: sensor, type: string, required: true}
        - {name: value, type: float, required: true}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 1s}
stages:
  - name: sessions
    keyBy: [sensor]
    window: {type: session, gap: 1300ms}
    allowedLateness: 1m
    aggregates:
      - {fn: count, as: n}
      - {fn: sum, field: value, as: total}
sinks:
  - {name: to-kafka, input: sessions, type: kafka, kafka: {brokers: ["${BROKER}"], topic: sessions, keyField: sensor}}
  - {name: to-file, input: sessions, type: file, file: {path: "${OUT}/sessions.jsonl"}}
`, map[string]string{"BROKER": brokers[0], "OUT": out})
	waitFor(t, "all readings read", func() bool { return p.read() >= n }, p)
	p.stop(t) // open sessions fire as the pipeline drains

	fromFile := readJSONLines(t, filepath.Join(out, "sessions.jsonl"))
	var fromKafka []map[string]any
	consumer := kafkaClient(t, brokers, kgo.ConsumeTopics("sessions"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for len(fromKafka) < len(fromFile) {
		fetches := consumer.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "messages in kafka: %d of %d", len(fromKafka), len(fromFile))
		require.Empty(t, fetches.Errors())
		fetches.EachRecord(func(r *kgo.Record) {
			var m map[string]any
			require.NoError(t, json.Unmarshal(r.Value, &m))
			require.Equal(t, m["sensor"], string(r.Key), "messages are keyed by the sensor")
			fromKafka = append(fromKafka, m)
		})
	}
	require.Len(t, fromKafka, len(fromFile), "one message per row")
	retractions := 0
	for _, m := range fromKafka {
		if m["retract"] == true {
			retractions++
		}
	}
	require.Positive(t, retractions, "late records updated fired sessions")

	viaKafka, viaFile := currentWindows(t, fromKafka), currentWindows(t, fromFile)
	require.Equal(t, viaFile, viaKafka)
	var total float64
	for _, r := range viaKafka {
		total += r["n"].(float64)
	}
	require.EqualValues(t, n, total, "the current sessions hold every reading exactly once")
}
