// Package pace holds a reader to a rate of events per second, for the
// sources that generate their events (the demo generator, Nexmark).
package pace

import (
	"context"
	"time"
)

// Pacer schedules events at a constant rate from the first Wait. It is used
// by one goroutine.
type Pacer struct {
	rate    float64 // events per second; > 0
	now     func() time.Time
	t0      time.Time
	emitted int64 // events since t0
	timer   *time.Timer
}

// New returns a pacer of rate events per second (rate > 0) on the clock now.
func New(rate float64, now func() time.Time) *Pacer {
	return &Pacer{rate: rate, now: now}
}

// Wait waits until at least one event is due and returns how many are.
// More than a second behind (the pipeline was blocked), it restarts the
// schedule instead of bursting to catch up.
func (p *Pacer) Wait(ctx context.Context) (int64, error) {
	now := p.now()
	if p.t0.IsZero() {
		p.t0 = now
	}
	for {
		due := int64(now.Sub(p.t0).Seconds()*p.rate) + 1 - p.emitted
		if due > 0 {
			if float64(due) > max(p.rate, 1) {
				p.t0, p.emitted = now, 0
				return 1, nil
			}
			return due, nil
		}
		// At least a microsecond, so float rounding cannot spin the loop.
		wait := max(p.t0.Add(time.Duration(float64(p.emitted)/p.rate*float64(time.Second))).Sub(now), time.Microsecond)
		if p.timer == nil {
			p.timer = time.NewTimer(wait)
		} else {
			p.timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			p.timer.Stop()
			return 0, ctx.Err()
		case <-p.timer.C:
		}
		now = p.now()
	}
}

// Emitted records that n events went out.
func (p *Pacer) Emitted(n int64) { p.emitted += n }

// Stop releases the pacer's timer.
func (p *Pacer) Stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}
