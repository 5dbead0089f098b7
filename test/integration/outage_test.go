package integration_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamd/streamd/internal/testenv"
)

// A Kafka broker that goes away for 20 s and comes back with its data
// changes no result: its partitions are read again by themselves, from
// where they were, and while they cannot be read they hold event time
// back — they are failing, not idle — so no window fires without their
// records and none of what they deliver after the outage is late.
//
// Before, kafka-go's readers of those partitions gave up and went on
// reporting stale failures, and the partitions went idle after
// idleTimeout: event time jumped to the other partitions', the windows
// fired with half their data and the records produced meanwhile went to
// late once the broker was back.
func TestKafkaBrokerOutage(t *testing.T) {
	c, gate := testenv.StartGatedKafka(t, kfake.SeedTopics(4, "events"))
	addrs := c.ListenAddrs()
	// Partitions 0 and 1 on broker 0, 2 and 3 on broker 2, which goes away.
	for p, node := range []int32{0, 0, 2, 2} {
		require.NoError(t, c.MoveTopicPartition("events", int32(p), node))
	}
	cl := kafkaClient(t, addrs)
	out := t.TempDir()

	const step = 100 // ms of event time between the records of a partition
	type rec struct {
		partition int32
		ts        int64
		key       string
	}
	var all []rec
	produce := func(partitions []int32, from, to int64) {
		t.Helper()
		var recs []*kgo.Record
		for _, p := range partitions {
			for ts := from; ts < to; ts += step {
				r := rec{partition: p, ts: ts, key: fmt.Sprintf("k%d", (ts/step)%3)}
				all = append(all, r)
				recs = append(recs, &kgo.Record{Topic: "events", Partition: p,
					Value: fmt.Appendf(nil, `{"ts":%d,"key":%q,"p":%d}`, r.ts, r.key, p)})
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
	}

	produce([]int32{0, 1, 2, 3}, 0, 30_000)
	p := startPipeline(t, `
name: outage
parallelism: 2
http: {listen: "off"}
checkpoint: {enabled: false}
sources:
  - name: events
    type: kafka
    kafka: {brokers: ["${B0}", "${B1}", "${B2}"], topics: [events], startOffset: earliest, maxWait: 50ms}
    decode:
      fields:
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
        - {name: key, type: string, required: true}
        - {name: p, type: int, required: true}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 0s, idleTimeout: 2s}
stages:
  - name: counts
    keyBy: [key]
    window: {type: tumbling, size: 10s}
    aggregates:
      - {fn: count, as: n}
sinks:
  - {name: results, input: counts, type: file, file: {path: "${OUT}/counts.jsonl"}}
  - {name: late, input: counts.late, type: file, file: {path: "${OUT}/late.jsonl"}}
`, map[string]string{"B0": addrs[0], "B1": addrs[1], "B2": addrs[2], "OUT": out})
	waitFor(t, "the first 30 s of every partition read", func() bool { return p.read() >= int64(len(all)) }, p)

	gate.CloseAddr(addrs[2])
	// Partitions 0 and 1 go on for a minute of event time; 2 and 3 cannot
	// be read. Twenty seconds of outage are ten times idleTimeout.
	produce([]int32{0, 1}, 30_000, 90_000)
	outage := time.NewTimer(20 * time.Second)
	<-outage.C
	gate.Open()
	// What the producers of partitions 2 and 3 held back during the outage.
	produce([]int32{2, 3}, 30_000, 90_000)
	waitFor(t, "every record read once the broker is back", func() bool { return p.read() >= int64(len(all)) }, p)
	require.EqualValues(t, len(all), p.read(), "every record read once")
	p.stop(t) // open windows fire as the pipeline drains

	type win struct {
		key   string
		start int64
	}
	want := map[win]int64{}
	for _, r := range all {
		want[win{r.key, r.ts - r.ts%10_000}]++
	}
	require.Empty(t, readJSONLines(t, filepath.Join(out, "late.jsonl")), "records late after the outage")
	got := map[win]int64{}
	for _, row := range readJSONLines(t, filepath.Join(out, "counts.jsonl")) {
		require.NotEqual(t, true, row["retract"], "a result withdrawn: %v", row)
		start, err := time.Parse(time.RFC3339Nano, row["window_start"].(string))
		require.NoError(t, err)
		k := win{row["key"].(string), start.UnixMilli()}
		require.NotContains(t, got, k, "one result per window and key")
		got[k] = int64(row["n"].(float64))
	}
	require.Equal(t, want, got, "counts per key and window: every record counted once, in its window")
}

// The consumer group's coordinator going away for 20 s, while every
// partition's leader stays up, changes no result and loses no commit: the
// pipeline keeps its partitions (or gets them back), every record is
// counted once in its window, none is late, and once the coordinator is
// back the group's committed offsets reach the end of every partition.
func TestKafkaCoordinatorOutage(t *testing.T) {
	c, gate := testenv.StartGatedKafka(t, kfake.SeedTopics(4, "events"))
	addrs := c.ListenAddrs()
	coord := c.CoordinatorFor("g")
	other := (coord + 1) % 3
	for p := range int32(4) {
		require.NoError(t, c.MoveTopicPartition("events", p, other))
	}
	cl := kafkaClient(t, addrs)
	out := t.TempDir()

	const step = 100
	type win struct {
		key   string
		start int64
	}
	want := map[win]int64{}
	total := 0
	produce := func(from, to int64) {
		t.Helper()
		var recs []*kgo.Record
		for p := range int32(4) {
			for ts := from; ts < to; ts += step {
				key := fmt.Sprintf("k%d", (ts/step)%3)
				want[win{key, ts - ts%10_000}]++
				total++
				recs = append(recs, &kgo.Record{Topic: "events", Partition: p,
					Value: fmt.Appendf(nil, `{"ts":%d,"key":%q,"p":%d}`, ts, key, p)})
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
	}

	produce(0, 30_000)
	p := startPipeline(t, `
name: coordinator
parallelism: 2
http: {listen: "off"}
checkpoint: {dir: "${CHK}", interval: 1s, savepointOnStop: false}
sources:
  - name: events
    type: kafka
    kafka: {brokers: ["${B0}", "${B1}", "${B2}"], topics: [events], group: g, startOffset: earliest, maxWait: 50ms}
    decode:
      fields:
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
        - {name: key, type: string, required: true}
        - {name: p, type: int, required: true}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 0s, idleTimeout: 2s}
stages:
  - name: counts
    keyBy: [key]
    window: {type: tumbling, size: 10s}
    aggregates:
      - {fn: count, as: n}
sinks:
  - {name: results, input: counts, type: file, delivery: exactlyOnce, file: {path: "${OUT}/counts.jsonl"}}
  - {name: late, input: counts.late, type: file, file: {path: "${OUT}/late.jsonl"}}
`, map[string]string{"B0": addrs[0], "B1": addrs[1], "B2": addrs[2], "OUT": out})
	waitFor(t, "the first 30 s of every partition read", func() bool { return p.read() >= int64(total) }, p)

	gate.CloseAddr(addrs[coord])
	produce(30_000, 60_000)
	outage := time.NewTimer(20 * time.Second)
	<-outage.C
	gate.Open()
	produce(60_000, 90_000)
	// Offsets are committed by completed checkpoints, once the group
	// answers again; at the end of every partition, everything was read.
	// (The splits' record counts start again when the group hands the
	// partitions back.)
	waitFor(t, "the group's offsets at the end of every partition", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = "g"
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = "events", []int32{0, 1, 2, 3}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || resp.ErrorCode != 0 || len(resp.Topics) != 1 {
			return false
		}
		at := 0
		for _, part := range resp.Topics[0].Partitions {
			if part.ErrorCode == 0 && part.Offset == 900 {
				at++
			}
		}
		return at == 4
	}, p)
	p.stop(t)

	require.Empty(t, readJSONLines(t, filepath.Join(out, "late.jsonl")), "records late after the outage")
	got := map[win]int64{}
	for _, row := range readJSONLines(t, filepath.Join(out, "counts.jsonl")) {
		start, err := time.Parse(time.RFC3339Nano, row["window_start"].(string))
		require.NoError(t, err)
		k := win{row["key"].(string), start.UnixMilli()}
		require.NotContains(t, got, k, "one result per window and key")
		got[k] = int64(row["n"].(float64))
	}
	require.Equal(t, want, got, "counts per key and window: every record counted once, in its window")
}
