package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/sink/hold"
)

// failProduce makes the cluster answer every produce request after the
// first allow with a non-retriable error while fail is set: a hand-over
// cut short after part of its messages are in the topic, as a crash cuts
// it.
func failProduce(c *kfake.Cluster, allow int64, fail *atomic.Bool) {
	var seen atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !fail.Load() || seen.Add(1) <= allow {
			return nil, nil, false
		}
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// numbered returns rows whose alert_id is "<prefix>-<i>", each unique.
func numbered(prefix string, n int) *record.Batch {
	b := record.NewBatch(alertSchema.Len(), n)
	for i := range n {
		t := int64(1767225600000 + i)
		row := b.AppendRow(t)
		row[0] = record.String(fmt.Sprintf("%s-%d", prefix, i))
		row[1] = record.String("temp-high")
		row[2] = record.String("WARNING")
		row[3] = record.Float(float64(i))
		row[4] = record.TimestampMillis(t)
	}
	return b
}

// inTopic is how many messages the topic's partitions hold.
func inTopic(t *testing.T, brokers []string, topic string, partitions int) int {
	t.Helper()
	total := 0
	for p := range partitions {
		conn, err := kafka.DialLeader(context.Background(), "tcp", brokers[0], topic, p)
		require.NoError(t, err)
		first, last, err := conn.ReadOffsets()
		require.NoError(t, conn.Close())
		require.NoError(t, err)
		total += int(last - first)
	}
	return total
}

// countIDs reads the whole topic (of three partitions) and counts each
// alert_id.
func countIDs(t *testing.T, brokers []string, topic string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, msgs := range consume(t, brokers, topic, inTopic(t, brokers, topic, 3)) {
		for _, m := range msgs {
			var a struct {
				AlertID string `json:"alert_id"`
			}
			require.NoError(t, json.Unmarshal(m.Value, &a))
			got[a.AlertID]++
		}
	}
	return got
}

// A hand-over of held rows to Kafka that a crash cuts short is done again
// on restore without the messages the topic already has: each row once.
func TestInterruptedHandoverDeliversOnce(t *testing.T) {
	const rows = 10000
	c := testenv.StartKafkaCluster(t, testenv.MustKafkaTopicOpts(t, "alerts:3")...)
	brokers := c.ListenAddrs()
	var fail atomic.Bool
	failProduce(c, 4, &fail)
	cfg := DefaultConfig()
	cfg.Name, cfg.Brokers, cfg.Topic, cfg.KeyField, cfg.MaxRetries = "alerts", brokers, "alerts", "alert_id", 1
	ctx := context.Background()

	// The first process: rows held, checkpoint 1 prepared and marked, its
	// hand-over fails part-way — the process dies there.
	first := hold.NewWith(newSink(t, cfg, nil), hold.Config{Name: "alerts"}, prometheus.NewRegistry())
	w, err := first.NewWriter("rules-0", alertSchema)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, numbered("a", rows)))
	st, err := w.(sink.Preparer).Prepare(ctx, 1)
	require.NoError(t, err)
	mark := first.HandoverMark(ctx, 1)
	require.NotNil(t, mark)
	fail.Store(true)
	require.Error(t, first.CommitCheckpoint(ctx, 1, "rules-0", st))
	fail.Store(false)
	partial := countIDs(t, brokers, "alerts")
	require.Less(t, len(partial), rows, "the hand-over was cut short")

	// The restarted process recovers checkpoint 1 with its mark.
	second := hold.NewWith(newSink(t, cfg, nil), hold.Config{Name: "alerts"}, prometheus.NewRegistry())
	require.NoError(t, second.RecoverCheckpoint(ctx, 1, map[string][]byte{"rules-0": st}, mark))
	got := countIDs(t, brokers, "alerts")
	require.Len(t, got, rows)
	for id, n := range got {
		require.Equal(t, 1, n, "alert %s delivered %d times", id, n)
	}
	require.NoError(t, second.Close(ctx))
}

// A hand-over that fails part-way (the broker refused a batch) is
// retried with the next checkpoint in the same process without repeating
// the messages that made it.
func TestFailedHandoverRetriedOnce(t *testing.T) {
	const rows = 10000
	c := testenv.StartKafkaCluster(t, testenv.MustKafkaTopicOpts(t, "alerts:3")...)
	brokers := c.ListenAddrs()
	var fail atomic.Bool
	failProduce(c, 4, &fail)
	cfg := DefaultConfig()
	cfg.Name, cfg.Brokers, cfg.Topic, cfg.KeyField, cfg.MaxRetries = "alerts", brokers, "alerts", "alert_id", 1
	ctx := context.Background()

	s := hold.NewWith(newSink(t, cfg, nil), hold.Config{Name: "alerts"}, prometheus.NewRegistry())
	w, err := s.NewWriter("rules-0", alertSchema)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, numbered("a", rows)))
	st1, err := w.(sink.Preparer).Prepare(ctx, 1)
	require.NoError(t, err)
	require.NotNil(t, s.HandoverMark(ctx, 1))
	fail.Store(true)
	require.Error(t, s.CommitCheckpoint(ctx, 1, "rules-0", st1))
	fail.Store(false)

	// Checkpoint 2 carries checkpoint 1's rows again, and new ones.
	require.NoError(t, w.Write(ctx, numbered("b", 100)))
	st2, err := w.(sink.Preparer).Prepare(ctx, 2)
	require.NoError(t, err)
	require.NotNil(t, s.HandoverMark(ctx, 2))
	require.NoError(t, s.CommitCheckpoint(ctx, 2, "rules-0", st2))
	got := countIDs(t, brokers, "alerts")
	require.Len(t, got, rows+100)
	for id, n := range got {
		require.Equal(t, 1, n, "alert %s delivered %d times", id, n)
	}
	require.NoError(t, s.Close(ctx))
}

func TestRowNameRoundTrip(t *testing.T) {
	for _, id := range []sink.RowID{
		{Nonce: 1, Task: "rules-0", Segment: 7, Index: 0},
		{Nonce: ^uint64(0), Task: "", Segment: 1 << 62, Index: 1 << 31},
		{Nonce: 42, Task: "split-points-3/x", Segment: 3, Index: 4095},
	} {
		got, ok := parseRowName(appendRowName(nil, id))
		require.True(t, ok)
		require.Equal(t, id, got)
	}
	_, ok := parseRowName([]byte{1, 2, 3})
	require.False(t, ok)
}

func FuzzParseRowName(f *testing.F) {
	f.Add(appendRowName(nil, sink.RowID{Nonce: 9, Task: "t", Segment: 2, Index: 3}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, ok := parseRowName(b)
		if ok {
			again, ok2 := parseRowName(appendRowName(nil, id))
			require.True(t, ok2)
			require.Equal(t, id, again)
		}
	})
}

func FuzzDecodePosition(f *testing.F) {
	f.Add(encodePosition(map[int]int64{0: 5, 2: 1 << 40}))
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := decodePosition(b); err == nil {
			again, err := decodePosition(encodePosition(m))
			require.NoError(t, err)
			require.Equal(t, m, again)
		}
	})
}
