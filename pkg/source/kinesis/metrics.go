package kinesis

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/internal/promreg"
)

type metrics struct {
	behind    *prometheus.GaugeVec
	throttles *prometheus.CounterVec
	records   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		behind: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamd_kinesis_behind_latest_seconds",
			Help: "How far the last GetRecords response of a shard was behind the tip of the stream, in seconds (MillisBehindLatest / 1000).",
		}, []string{"stream", "shard"})),
		throttles: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_kinesis_throttles_total",
			Help: "GetRecords and GetShardIterator calls refused by Kinesis throughput limits and retried with backoff.",
		}, []string{"stream"})),
		records: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_kinesis_records_total",
			Help: "Kinesis records received, counted before KPL de-aggregation.",
		}, []string{"stream"})),
	}
}
