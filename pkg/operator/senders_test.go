package operator

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

var senderSchema = record.MustSchema(
	record.Field{Name: "sender", Type: record.TypeString},
	record.Field{Name: "value", Type: record.TypeFloat},
)

func senderBatch(t0, step int64, ids ...string) *record.Batch {
	b := record.NewBatch(senderSchema.Len(), len(ids))
	for i, id := range ids {
		row := b.AppendRow(t0 + int64(i)*step)
		row[0], row[1] = record.String(id), record.Float(1)
	}
	return b
}

// With the default senderIdleTimeout of 0, every sender used to be kept
// forever. Senders now go once they are further than the sender TTL (an
// hour) behind the newest one — then they no longer hold the watermark
// back either — so a split that sees a new device every second for a day
// tracks about an hour's worth of them, not all.
func TestSenderTTLBoundsPerSenderWatermark(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	now := time.Unix(0, 0)
	w := newWatermarker(WatermarkConfig{SenderField: 0}, now)
	w.senders.bind(m, nil, "src", "0")
	// A device that sends once at the start and then goes silent holds
	// the watermark back for an hour of everybody else's event time.
	w.observe(senderBatch(0, 0, "dead"), now)
	const day = 24 * 3600
	for i := 1; i <= day; i += 100 {
		ids := make([]string, 100)
		for j := range ids {
			ids[j] = fmt.Sprintf("dev-%d", i+j)
		}
		w.observe(senderBatch(int64(i)*1000, 1000, ids...), now)
		wm, idle := w.current(now)
		require.False(t, idle)
		newest := int64(i+99) * 1000
		if newest <= DefaultSenderTTL {
			require.Equal(t, int64(-1), wm, "the silent device holds the watermark at %d", newest)
		} else {
			require.Greater(t, wm, newest-DefaultSenderTTL-100_000, "forgotten after an hour")
		}
	}
	require.LessOrEqual(t, len(w.senders.byID), 3700)
	require.Equal(t, float64(len(w.senders.byID)), testutil.ToFloat64(m.senders.WithLabelValues("src", "0")))
	forgotten := testutil.ToFloat64(m.sendersForgotten.WithLabelValues("src", "0", senderForgetTTL))
	require.Equal(t, float64(day+1-len(w.senders.byID)), forgotten, "every sender seen is tracked or counted as forgotten")
}

// Past maxSenders, the senders furthest behind are forgotten first — the
// ones holding the watermark back — and counted.
func TestMaxSendersForgetsThoseFurthestBehind(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	now := time.Unix(0, 0)
	w := newWatermarker(WatermarkConfig{SenderField: 0, MaxSenders: 1000}, now)
	w.senders.bind(m, nil, "src", "0")
	ids := make([]string, 1500)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%04d", i)
	}
	w.observe(senderBatch(0, 1, ids...), now)
	require.Len(t, w.senders.byID, 900, "trimmed to nine tenths of the limit")
	for i := 600; i < 1500; i++ {
		require.Contains(t, w.senders.byID, ids[i])
	}
	wm, _ := w.current(now)
	require.Equal(t, int64(600-1), wm, "the oldest remaining sender holds the watermark")
	require.Equal(t, 600.0, testutil.ToFloat64(m.sendersForgotten.WithLabelValues("src", "0", senderForgetLimit)))
	// Below the limit nothing more goes.
	w.observe(senderBatch(2000, 1, "a", "b"), now)
	require.Len(t, w.senders.byID, 902)
}

// With a sender idle timeout, silent senders stop holding the watermark
// and are forgotten after ten timeouts, counted as idle.
func TestSenderIdleForgetsLongGoneSenders(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	now := time.Unix(0, 0)
	w := newWatermarker(WatermarkConfig{SenderField: 0, SenderIdleTimeout: time.Second}, now)
	w.senders.bind(m, nil, "src", "0")
	w.observe(senderBatch(0, 1, "a", "b"), now)
	later := now.Add(2 * time.Second)
	w.observe(senderBatch(10, 1, "b"), later)
	wm, idle := w.current(later)
	require.False(t, idle)
	require.Equal(t, int64(9), wm, "a is idle: b alone holds the watermark")
	require.Len(t, w.senders.byID, 2)
	w.current(now.Add(10 * time.Second))
	require.Len(t, w.senders.byID, 1, "a is forgotten after ten idle timeouts")
	require.Equal(t, 1.0, testutil.ToFloat64(m.sendersForgotten.WithLabelValues("src", "0", senderForgetIdle)))
}
