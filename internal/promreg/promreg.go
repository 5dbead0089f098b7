// Package promreg registers metrics that several instances of a component
// share: the first instance registers them, later ones (a second Kafka
// source in the same pipeline) reuse the registered collectors instead of
// panicking on a duplicate registration.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c, or returns the collector already registered under
// the same description. A nil registerer registers nothing.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
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

// Factory is promauto.Factory with Register's sharing.
type Factory struct{ reg prometheus.Registerer }

// With returns a factory registering with reg.
func With(reg prometheus.Registerer) Factory { return Factory{reg: reg} }

// NewCounter registers (or reuses) a counter.
func (f Factory) NewCounter(o prometheus.CounterOpts) prometheus.Counter {
	return Register(f.reg, prometheus.NewCounter(o))
}

// NewCounterVec registers (or reuses) a counter vector.
func (f Factory) NewCounterVec(o prometheus.CounterOpts, labels []string) *prometheus.CounterVec {
	return Register(f.reg, prometheus.NewCounterVec(o, labels))
}

// NewGauge registers (or reuses) a gauge.
func (f Factory) NewGauge(o prometheus.GaugeOpts) prometheus.Gauge {
	return Register(f.reg, prometheus.NewGauge(o))
}

// NewGaugeVec registers (or reuses) a gauge vector.
func (f Factory) NewGaugeVec(o prometheus.GaugeOpts, labels []string) *prometheus.GaugeVec {
	return Register(f.reg, prometheus.NewGaugeVec(o, labels))
}

// NewHistogramVec registers (or reuses) a histogram vector.
func (f Factory) NewHistogramVec(o prometheus.HistogramOpts, labels []string) *prometheus.HistogramVec {
	return Register(f.reg, prometheus.NewHistogramVec(o, labels))
}
