package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestSecondInstanceSharesTheCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "x_total", Help: "x"}
	a := With(reg).NewCounter(opts)
	b := With(reg).NewCounter(opts)
	a.Inc()
	b.Inc()
	require.Equal(t, 2.0, testutil.ToFloat64(a))
	require.Equal(t, 1, testutil.CollectAndCount(reg))
}
