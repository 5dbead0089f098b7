// Package retry is how streamd waits between attempts: exponential
// backoff (cenkalti/backoff) with optional jitter, a wait that ends with
// its context, and a loop for the "try a few times" case. Jitter spreads
// the retries of many splits or tasks that failed together (a broker
// restart), so they do not all come back in the same instant.
package retry

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Backoff is a schedule of pauses that double from an initial pause up to
// a maximum. It is not safe for concurrent use.
type Backoff struct {
	b *backoff.ExponentialBackOff
}

// Exponential returns a schedule from initial to max, doubling; jitter in
// [0, 1) randomizes each pause by up to that fraction either way (0: the
// exact schedule, which tests under testing/synctest rely on).
func Exponential(initial, max time.Duration, jitter float64) *Backoff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = initial
	b.MaxInterval = max
	b.Multiplier = 2
	b.RandomizationFactor = jitter
	b.Reset()
	return &Backoff{b: b}
}

// Next returns the next pause.
func (b *Backoff) Next() time.Duration { return b.b.NextBackOff() }

// Reset starts the schedule again from its initial pause.
func (b *Backoff) Reset() { b.b.Reset() }

// Wait pauses for d, or until ctx is done; it reports whether the whole
// pause passed.
func Wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Do calls fn until it returns nil, final says its error ends the
// attempts, attempts calls were made, or ctx is done, pausing by b between
// calls. It returns fn's last error (nil on success).
func Do(ctx context.Context, attempts int, b *Backoff, final func(error) bool, fn func() error) error {
	var err error
	for n := 0; n < attempts; n++ {
		if err = fn(); err == nil || final != nil && final(err) {
			return err
		}
		if n == attempts-1 || !Wait(ctx, b.Next()) {
			return err
		}
	}
	return err
}
