package integration_test

import (
	"context"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/testenv"
)

// kinesisEnv points the AWS credential chain of the pipeline's Kinesis
// clients at the static test credentials the local server accepts.
func kinesisEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "streamdtest")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "streamdtest")
	t.Setenv("AWS_REGION", testenv.KinesisRegion)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

// putSensors writes readings with the sensor as partition key.
func putSensors(t testing.TB, client *kinesis.Client, stream string, recs []sensorRecord) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for len(recs) > 0 {
		n := min(len(recs), 500)
		entries := make([]types.PutRecordsRequestEntry, n)
		for i, r := range recs[:n] {
			entries[i] = types.PutRecordsRequestEntry{Data: r.JSON(), PartitionKey: aws.String(r.Sensor)}
		}
		out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(out.FailedRecordCount), "failed puts")
		recs = recs[n:]
	}
}

// TestKinesisReshardThroughPipeline reads a stream through a pipeline
// while one shard is split and two are merged: every record must be
// written exactly once, and each sensor's readings in order.
func TestKinesisReshardThroughPipeline(t *testing.T) {
	endpoint := testenv.StartKinesis(t)
	kinesisEnv(t)
	client := testenv.KinesisClient(endpoint)
	testenv.KinesisCreateStream(t, client, "sensors", 2)

	const sensors, perPhase = 12, 1200
	start := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	var all []sensorRecord
	phase := func() {
		recs := make([]sensorRecord, perPhase)
		for i := range recs {
			recs[i] = makeSensor(len(all)+i, sensors, start, 10*time.Millisecond)
		}
		putSensors(t, client, "sensors", recs)
		all = append(all, recs...)
	}

	out := filepath.Join(t.TempDir(), "readings.jsonl")
	p := startPipeline(t, `
name: kinesis-reshard
http: {listen: "off"}
checkpoint: {dir: "${CHK}", interval: 200ms, savepointOnStop: false}
sources:
  - name: readings
    type: kinesis
    kinesis:
      stream: sensors
      endpoint: "${ENDPOINT}"
      region: us-east-1
      pollInterval: 50ms
      shardSyncInterval: 500ms
    decode:
      fields:
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
        - {name: sensor, type: string, required: true}
        - {name: seq, type: int, required: true}
        - {name: value, type: float}
    eventTime: {field: ts}
sinks:
  - {name: raw, input: readings, type: file, file: {path: "${OUT}"}}
`, map[string]string{"ENDPOINT": endpoint, "OUT": out})

	openShards := func() []types.Shard {
		res, err := client.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("sensors")})
		require.NoError(t, err)
		var o []types.Shard
		for _, s := range res.Shards {
			if s.SequenceNumberRange.EndingSequenceNumber == nil {
				o = append(o, s)
			}
		}
		return o
	}
	hashKey := func(s *string) *big.Int {
		v, ok := new(big.Int).SetString(aws.ToString(s), 10)
		require.True(t, ok)
		return v
	}

	phase()
	waitFor(t, "the first records read", func() bool { return countLines(out) > 0 }, p)

	// Split the first shard in the middle of its hash range.
	first := openShards()[0]
	mid := new(big.Int).Rsh(new(big.Int).Add(hashKey(first.HashKeyRange.StartingHashKey), hashKey(first.HashKeyRange.EndingHashKey)), 1)
	_, err := client.SplitShard(context.Background(), &kinesis.SplitShardInput{
		StreamName: aws.String("sensors"), ShardToSplit: first.ShardId, NewStartingHashKey: aws.String(mid.String()),
	})
	require.NoError(t, err)
	testenv.KinesisWaitActive(t, client, "sensors")
	phase()

	// Merge two adjacent open shards.
	open := openShards()
	require.Len(t, open, 3)
	var a, b *types.Shard
	for i := range open {
		for j := range open {
			end := hashKey(open[i].HashKeyRange.EndingHashKey)
			if new(big.Int).Add(end, big.NewInt(1)).Cmp(hashKey(open[j].HashKeyRange.StartingHashKey)) == 0 {
				a, b = &open[i], &open[j]
			}
		}
	}
	require.NotNil(t, a, "two adjacent shards")
	_, err = client.MergeShards(context.Background(), &kinesis.MergeShardsInput{
		StreamName: aws.String("sensors"), ShardToMerge: a.ShardId, AdjacentShardToMerge: b.ShardId,
	})
	require.NoError(t, err)
	testenv.KinesisWaitActive(t, client, "sensors")
	phase()

	waitFor(t, "every record written", func() bool { return countLines(out) >= len(all) }, p)
	p.stop(t)

	rows := readJSONLines(t, out)
	require.Len(t, rows, len(all), "every record exactly once")
	next := map[string]int{}
	for _, r := range rows {
		sensor, seq := r["sensor"].(string), int(r["seq"].(float64))
		require.Equal(t, next[sensor], seq, "sensor %s: reading %d out of order", sensor, seq)
		next[sensor]++
		want := all[seq*sensors+sensorIndex(sensor)]
		require.InDelta(t, want.Value, r["value"], 1e-9, "value of %s/%d", sensor, seq)
	}
	require.Len(t, next, sensors)
}
