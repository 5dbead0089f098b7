package store

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/internal/promreg"
)

// Metrics counts and times store requests. Several stores may share one
// registry: the collectors are registered once and reused, the store label
// tells them apart.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the store metrics with reg, or reuses the ones
// already registered there. A nil reg registers nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_store_requests_total",
			Help: "Object store operations by store, operation and result (ok, not_found, exists, error).",
		}, []string{"store", "op", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "streamd_store_request_duration_seconds",
			Help:    "Duration of object store operations, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"store", "op"}),
	}
	if reg == nil {
		return m
	}
	m.requests = promreg.Register(reg, m.requests)
	m.duration = promreg.Register(reg, m.duration)
	return m
}

// Observe records one operation that started at start and ended with err.
func (m *Metrics) Observe(store, op string, start time.Time, err error) {
	m.requests.WithLabelValues(store, op, Result(err)).Inc()
	m.duration.WithLabelValues(store, op).Observe(time.Since(start).Seconds())
}

// Result is the result label of an operation's error.
func Result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrExists):
		return "exists"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "error"
	}
}
