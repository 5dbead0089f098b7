package kinesis

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	behind    *prometheus.GaugeVec
	throttles *prometheus.CounterVec
	records   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		behind: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamd_kinesis_behind_latest_seconds",
			Help: "How far the last GetRecords response of a shard was behind the tip of the stream, in seconds (MillisBehindLatest / 1000).",
		}, []string{"stream", "shard"})),
		throttles: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_kinesis_throttles_total",
			Help: "GetRecords and GetShardIterator calls refused by Kinesis throughput limits and retried with backoff.",
		}, []string{"stream"})),
		records: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_kinesis_records_total",
			Help: "Kinesis records received, counted before KPL de-aggregation.",
		}, []string{"stream"})),
	}
}

// register registers c, or returns the collector already registered under
// the same description: several Kinesis sources in one pipeline share a
// registry and differ only in their label values.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
