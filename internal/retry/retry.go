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
// calls. It returns fn's last error (nil on success): Loop without its
// marks, for callers that only need the last error.
func Do(ctx context.Context, attempts int, b *Backoff, final func(error) bool, fn func() error) error {
	if attempts <= 0 {
		return nil
	}
	var last error
	_ = Loop{Retries: attempts - 1, Backoff: b}.Run(ctx, func() error {
		last = fn()
		if last != nil && final != nil && final(last) {
			return Permanent(last)
		}
		return last
	})
	return last
}

// Loop is the policy of one retried operation: how many retries may follow
// a failed first attempt, the pauses between attempts, how to pause, and
// what to note before each retry.
type Loop struct {
	// Retries is how many attempts may follow the first.
	Retries int
	// Backoff gives the pauses; it is reset when Run starts.
	Backoff *Backoff
	// Pause waits d or until ctx is done, returning ctx's error then; nil
	// means a timer. Tests replace it to run without waiting.
	Pause func(ctx context.Context, d time.Duration) error
	// OnRetry, optional, is called before each pause with the number of
	// the retry to come (1 for the first), the pause and the failed
	// attempt's error: where callers log and count retries.
	OnRetry func(retry int, pause time.Duration, err error)
}

// Permanent marks an attempt's error as one that no retry can cure: Run
// returns err at once, without the mark. Marks count only on the error an
// attempt returns, not wrapped in another.
func Permanent(err error) error { return &mark{err: err, final: true} }

// After marks an attempt's error as retryable after at least d (a
// server's Retry-After); a longer pause of the backoff is kept.
func After(d time.Duration, err error) error { return &mark{err: err, after: d} }

type mark struct {
	err   error
	final bool
	after time.Duration
}

func (m *mark) Error() string { return m.err.Error() }
func (m *mark) Unwrap() error { return m.err }

// Exhausted is Run's error when every retry failed: how many attempts were
// made and the last one's error.
type Exhausted struct {
	Attempts int
	Err      error
}

func (e *Exhausted) Error() string { return e.Err.Error() }
func (e *Exhausted) Unwrap() error { return e.Err }

// Run calls attempt until it returns nil. It stops and returns the error
// of an attempt marked Permanent or made when ctx was already done, an
// *Exhausted when the retries ran out, or the pause's error when ctx ended
// during a pause.
func (l Loop) Run(ctx context.Context, attempt func() error) error {
	pause := l.Pause
	if pause == nil {
		pause = func(ctx context.Context, d time.Duration) error {
			if !Wait(ctx, d) {
				return ctx.Err()
			}
			return nil
		}
	}
	l.Backoff.Reset()
	for n := 1; ; n++ {
		err := attempt()
		if err == nil {
			return nil
		}
		m, _ := err.(*mark) //nolint:errorlint // a mark counts only on the error an attempt returns
		if m != nil && m.final {
			return m.err
		}
		var after time.Duration
		if m != nil {
			after, err = m.after, m.err
		}
		if ctx.Err() != nil {
			return err
		}
		if n > l.Retries {
			return &Exhausted{Attempts: n, Err: err}
		}
		d := max(l.Backoff.Next(), after)
		if l.OnRetry != nil {
			l.OnRetry(n, d, err)
		}
		if err := pause(ctx, d); err != nil {
			return err
		}
	}
}
