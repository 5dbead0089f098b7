package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/source"
	kafkasource "github.com/streamd/streamd/pkg/source/kafka"
)

const testTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var alertSchema = record.MustSchema(
	record.Field{Name: "alert_id", Type: record.TypeString},
	record.Field{Name: "rule", Type: record.TypeString},
	record.Field{Name: "state", Type: record.TypeString},
	record.Field{Name: "value", Type: record.TypeFloat},
	record.Field{Name: "at", Type: record.TypeTimestamp},
)

func alerts(n int) *record.Batch {
	b := record.NewBatch(alertSchema.Len(), n)
	for i := range n {
		t := int64(1767225600000 + i)
		row := b.AppendRow(t)
		row[0] = record.String(fmt.Sprintf("alert-%d", i%5))
		row[1] = record.String("temp-high")
		row[2] = record.String("WARNING")
		row[3] = record.Float(float64(i) + 0.5)
		row[4] = record.TimestampMillis(t)
	}
	return b
}

func newSink(t testing.TB, cfg Config, reg prometheus.Registerer) *Sink {
	t.Helper()
	s, err := New(cfg, zaptest.NewLogger(t), reg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// consume reads n messages from every partition of topic with the Kafka
// source, in partition order.
func consume(t *testing.T, brokers []string, topic string, n int) map[string][]source.Message {
	t.Helper()
	cfg := kafkasource.DefaultConfig()
	cfg.Brokers, cfg.Topics = brokers, []string{topic}
	src, err := kafkasource.New(cfg, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	splits, err := src.Splits(ctx)
	require.NoError(t, err)
	out := map[string][]source.Message{}
	got := 0
	readers := map[string]source.Reader{}
	for _, sp := range splits {
		r, err := src.Open(ctx, sp, nil)
		require.NoError(t, err)
		readers[sp.ID] = r
		defer r.Close()
	}
	// Poll partitions in turn; a partition with nothing yet times out.
	for got < n {
		for id, r := range readers {
			rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			var b source.Batch
			err := r.Read(rctx, &b, n)
			rcancel()
			if err != nil && ctx.Err() != nil {
				t.Fatalf("consumed %d of %d: %v", got, n, err)
			}
			out[id] = append(out[id], b.Messages...)
			got += len(b.Messages)
		}
	}
	require.Equal(t, n, got)
	return out
}

func TestWriteAlertsAndConsumeThem(t *testing.T) {
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			brokers := testenv.StartKafka(t, "alerts:3")
			cfg := DefaultConfig()
			cfg.Name, cfg.Brokers, cfg.Topic, cfg.KeyField, cfg.Compression = "alerts", brokers, "alerts", "alert_id", codec
			reg := prometheus.NewRegistry()
			s := newSink(t, cfg, reg)
			w, err := s.NewWriter("rules-0", alertSchema)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			require.NoError(t, w.Write(ctx, alerts(50)))
			require.NoError(t, w.Write(ctx, alerts(50)))
			require.NoError(t, w.Close(ctx))
			require.Equal(t, 100.0, testutil.ToFloat64(s.produced))

			got := consume(t, brokers, "alerts", 100)
			partitionOf := map[string]string{}
			for split, msgs := range got {
				for _, m := range msgs {
					var a struct {
						AlertID string  `json:"alert_id"`
						Rule    string  `json:"rule"`
						State   string  `json:"state"`
						Value   float64 `json:"value"`
						At      string  `json:"at"`
					}
					require.NoError(t, json.Unmarshal(m.Value, &a), string(m.Value))
					require.Equal(t, a.AlertID, string(m.Key))
					require.Equal(t, "temp-high", a.Rule)
					require.NotEmpty(t, a.At)
					require.NotZero(t, m.Timestamp)
					// One key, one partition: alert state changes stay ordered.
					if p, ok := partitionOf[a.AlertID]; ok {
						require.Equal(t, p, split, a.AlertID)
					}
					partitionOf[a.AlertID] = split
				}
			}
			require.Len(t, partitionOf, 5)
		})
	}
}

func TestNewWriterUnknownKeyField(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic, cfg.KeyField = []string{"127.0.0.1:1"}, "alerts", "key"
	s := newSink(t, cfg, nil)
	_, err := s.NewWriter("rules-0", alertSchema)
	require.ErrorContains(t, err, `keyField "key" is not in the schema`)
}

func TestCheck(t *testing.T) {
	brokers := testenv.StartKafka(t, "alerts:1")
	tests := []struct {
		name    string
		brokers []string
		topic   string
		want    string
	}{
		{name: "ok", brokers: brokers, topic: "alerts"},
		{name: "unreachable", brokers: []string{"127.0.0.1:1"}, topic: "alerts", want: "broker 127.0.0.1:1"},
		{name: "missing topic", brokers: brokers, topic: "nope", want: `topic "nope" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Brokers, cfg.Topic = tt.brokers, tt.topic
			s := newSink(t, cfg, nil)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			err := s.Check(ctx)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestWriteFailsOnMissingTopic(t *testing.T) {
	brokers := testenv.StartKafka(t)
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic, cfg.MaxRetries = brokers, "missing", 1
	reg := prometheus.NewRegistry()
	s := newSink(t, cfg, reg)
	w, err := s.NewWriter("rules-0", alertSchema)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	err = w.Write(ctx, alerts(3))
	require.ErrorContains(t, err, "write kafka missing")
	require.Equal(t, 3.0, testutil.ToFloat64(s.failed))
}

func TestConfigValidate(t *testing.T) {
	ok := func(mod func(*Config)) Config {
		c := DefaultConfig()
		c.Brokers, c.Topic = []string{"127.0.0.1:9092"}, "alerts"
		mod(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "defaults", cfg: ok(func(*Config) {})},
		{name: "no name", cfg: ok(func(c *Config) { c.Name = "" }), want: "name:"},
		{name: "no brokers", cfg: ok(func(c *Config) { c.Brokers = nil }), want: "brokers:"},
		{name: "no topic", cfg: ok(func(c *Config) { c.Topic = "" }), want: "topic:"},
		{name: "bad compression", cfg: ok(func(c *Config) { c.Compression = "brotli" }), want: "compression:"},
		{name: "negative retries", cfg: ok(func(c *Config) { c.MaxRetries = -1 }), want: "maxRetries:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// BenchmarkKafkaSink produces batches of 1000 alert rows to an in-process
// broker.
func BenchmarkKafkaSink(b *testing.B) {
	brokers := testenv.StartKafka(b, "alerts:4")
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic, cfg.KeyField = brokers, "alerts", "alert_id"
	s, err := New(cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	w, err := s.NewWriter("bench", alertSchema)
	if err != nil {
		b.Fatal(err)
	}
	batch := alerts(1000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if err := w.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "records/s")
}
