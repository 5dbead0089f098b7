package integration_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/testenv"
)

// alertThreshold is the alert condition's bound on a window's maximum;
// about a third of the windows exceed it.
const alertThreshold = 99.5

// sensorStage is the window stage of the alert tests: per sensor and
// minute the maximum reading, with a threshold alert.
const sensorStage = `
stages:
  - name: per-sensor
    keyBy: [sensor]
    window: {type: tumbling, size: 1m}
    aggregates:
      - {fn: max, field: value, as: max_value}
      - {fn: count, as: n}
    alerts:
      - {name: too-hot, when: 'max_value > 99.5', severity: critical}
`

const sensorDecode = `
    decode:
      fields:
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
        - {name: sensor, type: string, required: true}
        - {name: seq, type: int}
        - {name: value, type: float, required: true}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 1s}
`

type alertKey struct {
	sensor string
	start  int64
}

// sensorAlerts makes the readings of the alert tests and the alerts they
// must raise: window maximum per sensor and minute above alertThreshold.
func sensorAlerts(n int) ([]sensorRecord, map[alertKey]float64) {
	start := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	recs := make([]sensorRecord, n)
	maxima := map[alertKey]float64{}
	for i := range recs {
		r := makeSensor(i, 12, start, 50*time.Millisecond)
		recs[i] = r
		k := alertKey{r.Sensor, r.TS - r.TS%60_000}
		if m, ok := maxima[k]; !ok || r.Value > m {
			maxima[k] = r.Value
		}
	}
	want := map[alertKey]float64{}
	for k, m := range maxima {
		if m > alertThreshold {
			want[k] = m
		}
	}
	return recs, want
}

// checkAlert compares one alert row with the expected alerts and returns
// its key.
func checkAlert(t testing.TB, a map[string]any, want map[alertKey]float64) alertKey {
	t.Helper()
	require.Equal(t, "too-hot", a["alert"])
	require.Equal(t, "critical", a["severity"])
	require.Equal(t, "per-sensor", a["stage"])
	require.EqualValues(t, 0, a["revision"])
	start, err := time.Parse(time.RFC3339Nano, a["window_start"].(string))
	require.NoError(t, err)
	k := alertKey{a["key"].(string), start.UnixMilli()}
	m, ok := want[k]
	require.True(t, ok, "unexpected alert %+v", a)
	var values map[string]any
	require.NoError(t, json.Unmarshal([]byte(a["values"].(string)), &values))
	require.InDelta(t, m, values["max_value"], 1e-9, "max of %+v", k)
	require.Equal(t, k.sensor, values["sensor"])
	return k
}

// TestAlertsToKafkaAndKinesis raises threshold alerts from windows over a
// Kafka topic and writes them to a Kafka topic (keyed by alert id) and a
// Kinesis stream, then consumes both and checks every alert.
func TestAlertsToKafkaAndKinesis(t *testing.T) {
	endpoint := testenv.StartKinesis(t)
	kinesisEnv(t)
	kc := testenv.KinesisClient(endpoint)
	testenv.KinesisCreateStream(t, kc, "alerts", 2)
	brokers := testenv.StartKafka(t, "sensors:4", "alerts:2")
	cl := kafkaClient(t, brokers)

	const n = 6000
	recs, want := sensorAlerts(n)
	require.NotEmpty(t, want)
	values := make([][]byte, n)
	for i, r := range recs {
		values[i] = r.JSON()
	}
	produceKafka(t, cl, "sensors", 4, values)

	p := startPipeline(t, `
name: alerts-back
parallelism: 2
http: {listen: "off"}
checkpoint: {dir: "${CHK}", interval: 200ms, savepointOnStop: false}
sources:
  - name: readings
    type: kafka
    kafka: {brokers: ["${BROKER}"], topics: [sensors], group: alerts-back, maxWait: 50ms}
`+sensorDecode+sensorStage+`
sinks:
  - name: alerts-kafka
    input: alerts
    type: kafka
    kafka: {brokers: ["${BROKER}"], topic: alerts, keyField: alert_id}
  - name: alerts-kinesis
    input: alerts
    type: kinesis
    kinesis: {stream: alerts, endpoint: "${ENDPOINT}", region: us-east-1, partitionKey: alert_id}
`, map[string]string{"BROKER": brokers[0], "ENDPOINT": endpoint})
	waitFor(t, "all readings read", func() bool { return p.read() >= n }, p)
	p.stop(t) // the windows fire as the pipeline drains

	// Kafka: one message per alert, keyed by its id.
	fromKafka := map[string]alertKey{}
	consumer := kafkaClient(t, brokers, kgo.ConsumeTopics("alerts"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for len(fromKafka) < len(want) {
		fetches := consumer.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "alerts in kafka: %d of %d", len(fromKafka), len(want))
		require.Empty(t, fetches.Errors())
		fetches.EachRecord(func(r *kgo.Record) {
			var a map[string]any
			require.NoError(t, json.Unmarshal(r.Value, &a))
			id := a["alert_id"].(string)
			require.Equal(t, id, string(r.Key), "message key is the alert id")
			_, dup := fromKafka[id]
			require.False(t, dup, "alert %s twice in kafka", id)
			fromKafka[id] = checkAlert(t, a, want)
		})
	}
	require.Len(t, fromKafka, len(want))

	// Kinesis: the same alerts, with the alert id as partition key.
	fromKinesis := map[string]alertKey{}
	shards, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("alerts")})
	require.NoError(t, err)
	for _, s := range shards.Shards {
		it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("alerts"), ShardId: s.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		require.NoError(t, err)
		iter := it.ShardIterator
		for iter != nil {
			out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			require.NoError(t, err)
			for _, r := range out.Records {
				var a map[string]any
				require.NoError(t, json.Unmarshal(r.Data, &a))
				id := a["alert_id"].(string)
				require.Equal(t, id, aws.ToString(r.PartitionKey))
				_, dup := fromKinesis[id]
				require.False(t, dup, "alert %s twice in kinesis", id)
				fromKinesis[id] = checkAlert(t, a, want)
			}
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	require.Equal(t, fromKafka, fromKinesis, "the same alerts in both")
}

// TestAlertsToFlakyWebhook sends alerts to a webhook that fails its first
// requests; the retries must deliver every alert exactly once.
func TestAlertsToFlakyWebhook(t *testing.T) {
	const n = 6000
	recs, want := sensorAlerts(n)
	dir := t.TempDir()
	in := filepath.Join(dir, "readings.jsonl")
	var buf []byte
	for _, r := range recs {
		buf = append(append(buf, r.JSON()...), '\n')
	}
	require.NoError(t, os.WriteFile(in, buf, 0o644))

	var (
		mu       sync.Mutex
		requests int
		got      = map[string]int{}
		rows     []map[string]any
		keys     = map[string]bool{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		requests++
		if requests <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable) // refused: not received
			return
		}
		var batch []map[string]any
		if json.Unmarshal(body, &batch) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		keys[r.Header.Get("Idempotency-Key")] = true
		for _, a := range batch {
			id, _ := a["alert_id"].(string)
			got[id]++
		}
		rows = append(rows, batch...)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	p := startPipeline(t, `
name: alerts-webhook
http: {listen: "off"}
checkpoint: {dir: "${CHK}", interval: 200ms, savepointOnStop: false}
sources:
  - name: readings
    type: file
    file: {paths: ["${IN}"]}
`+sensorDecode+sensorStage+`
sinks:
  - name: pager
    input: alerts
    type: webhook
    webhook:
      url: "${URL}/alerts"
      timeout: 5s
      maxAttempts: 8
      initialBackoff: 20ms
      maxBackoff: 200ms
      maxRows: 4
`, map[string]string{"IN": in, "URL": srv.URL})
	select {
	case err := <-p.done: // a bounded file: the pipeline ends by itself
		p.stopped = true
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("the pipeline did not finish")
	}

	mu.Lock()
	defer mu.Unlock()
	require.Greater(t, requests, 3, "requests after the failures")
	require.Len(t, got, len(want), "every alert delivered")
	for _, a := range rows {
		checkAlert(t, a, want)
	}
	for id, c := range got {
		require.Equal(t, 1, c, "alert %s delivered once", id)
	}
	require.Len(t, keys, requests-3, "one idempotency key per accepted request")
}
