package operator

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint/store"
)

func TestSupervise(t *testing.T) {
	errRetryLimit := fmt.Errorf("create upload: %w: retried 80 times for 10m0s (s3.retryFor 10m0s)", store.ErrRetryLimit)
	errFull := errors.New("write sink \"out\": no space left on device")
	policy := RestartPolicy{InitialBackoff: time.Second, MaxBackoff: 4 * time.Second, ResetAfter: time.Minute}
	tests := []struct {
		name string
		// runs is how long each attempt runs and what it returns.
		runs []struct {
			d   time.Duration
			err error
		}
		cancelAfter time.Duration
		wantErr     error
		// wantStarts are the attempts' start times.
		wantStarts []time.Duration
	}{
		{
			name: "backoff doubles up to the maximum, then the input ends",
			runs: []struct {
				d   time.Duration
				err error
			}{{0, errFull}, {0, errFull}, {0, errFull}, {0, errFull}, {0, nil}},
			wantStarts: []time.Duration{0, 1 * time.Second, 3 * time.Second, 7 * time.Second, 11 * time.Second},
		},
		{
			name: "a long healthy attempt starts the backoff over",
			runs: []struct {
				d   time.Duration
				err error
			}{{0, errFull}, {0, errFull}, {2 * time.Minute, errFull}, {0, nil}},
			wantStarts: []time.Duration{0, 1 * time.Second, 3 * time.Second, 3*time.Second + 2*time.Minute + time.Second},
		},
		{
			name: "a permanent error is not retried",
			runs: []struct {
				d   time.Duration
				err error
			}{{0, errFull}, {0, Permanent(errFull)}},
			wantErr:    errFull,
			wantStarts: []time.Duration{0, time.Second},
		},
		{
			name: "an outage past its retry limit is not retried",
			runs: []struct {
				d   time.Duration
				err error
			}{{0, errFull}, {10 * time.Minute, fmt.Errorf("write sink \"out\": %w", errRetryLimit)}},
			wantErr:    store.ErrRetryLimit,
			wantStarts: []time.Duration{0, time.Second},
		},
		{
			name: "a stop during the backoff ends it",
			runs: []struct {
				d   time.Duration
				err error
			}{{0, errFull}, {0, errFull}},
			cancelAfter: 2 * time.Second,
			wantErr:     errFull,
			wantStarts:  []time.Duration{0, time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if tt.cancelAfter > 0 {
					time.AfterFunc(tt.cancelAfter, cancel)
				}
				begin := time.Now()
				var starts []time.Duration
				reg := prometheus.NewRegistry()
				err := Supervise(ctx, policy, nil, reg, func(ctx context.Context, n int) error {
					require.Equal(t, len(starts), n)
					starts = append(starts, time.Since(begin))
					run := tt.runs[n]
					time.Sleep(run.d)
					return run.err
				})
				if tt.wantErr == nil {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, tt.wantErr)
				}
				require.Equal(t, tt.wantStarts, starts)
				mfs, gerr := reg.Gather()
				require.NoError(t, gerr)
				var restarts float64
				for _, mf := range mfs {
					if mf.GetName() == "streamd_pipeline_restarts_total" {
						restarts = mf.GetMetric()[0].GetCounter().GetValue()
					}
				}
				wantRestarts := len(tt.wantStarts) - 1
				if tt.cancelAfter > 0 {
					wantRestarts = len(tt.wantStarts)
				}
				require.InDelta(t, float64(wantRestarts), restarts, 0)
			})
		})
	}
}
