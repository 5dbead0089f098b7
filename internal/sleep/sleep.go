// Package sleep provides a context-aware pause that reuses one timer, for
// loops that wait between polls or retries without allocating a timer each
// time.
package sleep

import (
	"context"
	"time"
)

// Timer pauses one goroutine at a time. The zero value is ready to use.
type Timer struct{ t *time.Timer }

// Sleep waits for d or until ctx is done, whichever comes first, and
// returns ctx's error in the latter case.
func (s *Timer) Sleep(ctx context.Context, d time.Duration) error {
	if s.t == nil {
		s.t = time.NewTimer(d)
	} else {
		s.t.Reset(d)
	}
	select {
	case <-ctx.Done():
		s.t.Stop()
		return ctx.Err()
	case <-s.t.C:
		return nil
	}
}

// Stop releases the timer.
func (s *Timer) Stop() {
	if s.t != nil {
		s.t.Stop()
	}
}
