package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/streamd/streamd/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newSource(t testing.TB, cfg Config, reg prometheus.Registerer) *Source {
	t.Helper()
	s, err := New(cfg, zaptest.NewLogger(t), reg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func TestGroupReadsEveryRecordOnceInOrder(t *testing.T) {
	const perPartition = 500
	brokers := testenv.StartKafka(t, "events:4")
	produce(t, brokers, records("events", 4, perPartition))

	cfg := testConfig(brokers, "events")
	cfg.Group = "g1"
	reg := prometheus.NewRegistry()
	src := newSource(t, cfg, reg)
	ctx, cancel := context.WithCancel(context.Background())
	out := newSeen()
	r := startRunner(ctx, t, src, out)
	out.waitFor(t, "all records", func(s *seen) bool { return s.total >= 4*perPartition })
	cancel()
	r.wg.Wait()

	require.Equal(t, 4*perPartition, out.total, "every record exactly once")
	require.Len(t, out.offsets, 4)
	for p := range 4 {
		split := SplitID("events", p)
		offs := out.offsets[split]
		require.Len(t, offs, perPartition, split)
		for i, off := range offs {
			require.Equal(t, int64(i), off, "%s in offset order", split)
			require.Equal(t, fmt.Sprintf("p%d-%d", p, i), out.values[split][i])
		}
	}
	require.GreaterOrEqual(t, testutil.ToFloat64(src.rebalances), 1.0)
	// Leaving the group committed what was read.
	require.Equal(t, map[string]int64{"events/0": perPartition, "events/1": perPartition, "events/2": perPartition, "events/3": perPartition},
		fetchCommitted(t, brokers, "g1", "events", 4))
}

// fetchCommitted reads the group's committed offsets the way lag tooling
// does, with an OffsetFetch request.
func fetchCommitted(t testing.TB, brokers []string, group, topic string, partitions int) map[string]int64 {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 10 * time.Second}
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	res, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	require.NoError(t, err)
	require.NoError(t, res.Error)
	out := map[string]int64{}
	for _, p := range res.Topics[topic] {
		require.NoError(t, p.Error)
		if p.CommittedOffset >= 0 {
			out[SplitID(topic, p.Partition)] = p.CommittedOffset
		}
	}
	return out
}
