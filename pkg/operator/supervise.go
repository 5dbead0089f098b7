package operator

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/retry"
	"github.com/streamd/streamd/pkg/checkpoint/store"
)

// RestartPolicy says how a failed pipeline is restarted inside the process
// (as Flink's restart strategies do): after a sink's disk fills up, its
// object store goes away or a broker is unreachable, the pipeline is built
// again and restored from its last completed checkpoint, after a pause that
// doubles with every failure in a row. Nothing is lost — the sources are
// read again from the checkpoint — and nothing is published twice, and the
// pipeline recovers by itself once the store is back, without a crash loop
// of the process.
type RestartPolicy struct {
	// InitialBackoff is the pause after the first failure (default 1s).
	InitialBackoff time.Duration
	// MaxBackoff bounds the pause (default 1m).
	MaxBackoff time.Duration
	// ResetAfter: an attempt that ran at least this long before failing
	// starts the pauses over (default 5m).
	ResetAfter time.Duration
}

// DefaultRestartPolicy returns the defaults documented on RestartPolicy.
func DefaultRestartPolicy() RestartPolicy {
	return RestartPolicy{InitialBackoff: time.Second, MaxBackoff: time.Minute, ResetAfter: 5 * time.Minute}
}

// permanentError marks an error a restart cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one a restart cannot fix (an invalid pipeline, a
// checkpoint that does not fit it): Supervise returns it at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Supervise runs attempt until it returns nil (the input ended), ctx is
// done (a stop), or it returns a Permanent error or one wrapping
// store.ErrRetryLimit (an outage longer than its retry limit); after any other error it
// waits out the policy's backoff and runs attempt again, with n counting
// the attempts from 0. It returns the last attempt's error. reg, if not
// nil, gets streamd_pipeline_restarts_total.
func Supervise(ctx context.Context, policy RestartPolicy, logger *zap.Logger, reg prometheus.Registerer, attempt func(ctx context.Context, n int) error) error {
	d := DefaultRestartPolicy()
	if policy.InitialBackoff <= 0 {
		policy.InitialBackoff = d.InitialBackoff
	}
	if policy.MaxBackoff <= 0 {
		policy.MaxBackoff = d.MaxBackoff
	}
	if policy.ResetAfter <= 0 {
		policy.ResetAfter = d.ResetAfter
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	restarts := promauto.With(reg).NewCounter(prometheus.CounterOpts{
		Name: "streamd_pipeline_restarts_total",
		Help: "Times the pipeline failed and was restarted from its last completed checkpoint.",
	})
	backoff := retry.Exponential(policy.InitialBackoff, policy.MaxBackoff, 0)
	for n := 0; ; n++ {
		started := time.Now()
		err := attempt(ctx, n)
		var perm permanentError
		if err == nil || ctx.Err() != nil || errors.As(err, &perm) {
			return err
		}
		if errors.Is(err, store.ErrRetryLimit) {
			// An outage that outlasted its retry limit (s3.retryFor): the
			// pipeline kept its state through it, a restart would lose
			// that state and wait for the same endpoint.
			return err
		}
		if time.Since(started) >= policy.ResetAfter {
			backoff.Reset()
		}
		pause := backoff.Next()
		logger.Error("pipeline failed; restarting it from its last completed checkpoint",
			zap.Error(err), zap.Int("attempt", n+1), zap.Duration("backoff", pause))
		restarts.Inc()
		if !retry.Wait(ctx, pause) {
			return err
		}
	}
}
