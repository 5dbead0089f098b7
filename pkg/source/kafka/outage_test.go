package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/source"
)

// readFor reads once with a deadline of d.
func readFor(r source.Reader, b *source.Batch, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return r.Read(ctx, b, 100)
}

// failed classifies a Read error as the runtime does: a failure, or ctx's
// deadline on a reachable split with no message.
func failed(err error) bool {
	return err != nil && (errors.Is(err, source.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded))
}

// openOutage opens a reader of a one-partition topic on a gated cluster
// and reads its first n records.
func openOutage(t *testing.T, n int) (source.Reader, *testenv.Gate, []string, *Source) {
	t.Helper()
	c, g := testenv.StartGatedKafka(t, kfake.SeedTopics(1, "t"))
	brokers := c.ListenAddrs()
	produce(t, brokers, records("t", 1, n))
	src := newSource(t, testConfig(brokers, "t"), prometheus.NewRegistry())
	r, err := src.Open(context.Background(), source.Split{ID: "t/0"}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	var b source.Batch
	deadline := time.Now().Add(testTimeout)
	for len(b.Messages) < n && time.Now().Before(deadline) {
		if err := readFor(r, &b, time.Second); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			require.NoError(t, err)
		}
	}
	require.Len(t, b.Messages, n)
	return r, g, brokers, src
}

// After an outage a reader reports no failure older than the read: kafka-go
// queues the failures of its background retries and hands out one per
// fetch, so a split read every few seconds (a runtime backing off) went on
// reporting a broker outage for minutes after the broker was back.
func TestNoStaleFailuresAfterOutage(t *testing.T) {
	r, g, brokers, src := openOutage(t, 10)
	var b source.Batch
	g.Close()
	// Not read meanwhile, like a split waiting out its retry backoff: on
	// its own, kafka-go queues about one failure a second now.
	time.Sleep(8 * time.Second)
	err := readFor(r, &b, time.Second)
	require.True(t, failed(err), "a read during the outage fails: %v", err)
	g.Open()
	produce(t, brokers, records("t", 1, 10)) // the broker serves again
	var failures, inARow, maxInARow int
	deadline := time.Now().Add(testTimeout)
	for len(b.Messages) < 10 && time.Now().Before(deadline) {
		err := readFor(r, &b, time.Second)
		if !failed(err) {
			inARow = 0
		} else {
			failures++
			inARow++
			maxInARow = max(maxInARow, inARow)
			t.Logf("read after the outage: %v", err)
		}
	}
	require.Len(t, b.Messages, 10, "the records produced after the outage")
	// One failure may be fresh: a retry that failed just before the
	// broker came back. A second one in a row is from the outage.
	require.LessOrEqual(t, maxInARow, 1, "failures reported in a row after the broker was back (%d in all)", failures)
	require.Positive(t, testutil.ToFloat64(src.restarts), "readers restarted after failed fetches")
}

// While its broker is unreachable a partition's reads fail — none passes
// for a quiet partition (which may go idle) — and once the broker answers
// a quiet partition is quiet again.
func TestUnavailableUntilLeaderAnswers(t *testing.T) {
	r, g, _, _ := openOutage(t, 5)
	var b source.Batch
	g.Close()
	// kafka-go retries quietly at first: wait for the first failure.
	deadline := time.Now().Add(testTimeout)
	for {
		err := readFor(r, &b, 200*time.Millisecond)
		if failed(err) {
			break
		}
		require.True(t, time.Now().Before(deadline), "no failure reported during the outage")
	}
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); {
		err := readFor(r, &b, 200*time.Millisecond)
		require.True(t, failed(err), "a read during the outage: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	g.Open()
	deadline = time.Now().Add(testTimeout)
	for {
		err := readFor(r, &b, 200*time.Millisecond)
		if !failed(err) {
			break
		}
		require.True(t, time.Now().Before(deadline), "still failing after the broker came back: %v", err)
	}
	require.Empty(t, b.Messages)
}
