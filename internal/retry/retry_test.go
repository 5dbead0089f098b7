package retry

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestExponentialDoublesUpToTheMaximum(t *testing.T) {
	b := Exponential(100*time.Millisecond, time.Second, 0)
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next())
	}
	require.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}, got)
	b.Reset()
	require.Equal(t, 100*time.Millisecond, b.Next())
}

func TestJitterStaysWithinItsFraction(t *testing.T) {
	b := Exponential(time.Second, time.Second, 0.5)
	seen := map[time.Duration]bool{}
	for range 200 {
		d := b.Next()
		require.GreaterOrEqual(t, d, 500*time.Millisecond)
		require.LessOrEqual(t, d, 1500*time.Millisecond)
		seen[d] = true
	}
	require.Greater(t, len(seen), 1, "jittered pauses differ")
}

func TestDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		fail := errors.New("fail")
		calls := 0
		start := time.Now()
		err := Do(ctx, 4, Exponential(50*time.Millisecond, time.Second, 0), nil, func() error { calls++; return fail })
		require.ErrorIs(t, err, fail)
		require.Equal(t, 4, calls)
		require.Equal(t, 350*time.Millisecond, time.Since(start), "three pauses: 50+100+200 ms")

		calls = 0
		final := errors.New("not found")
		err = Do(ctx, 4, Exponential(50*time.Millisecond, time.Second, 0), func(err error) bool { return errors.Is(err, final) }, func() error { calls++; return final })
		require.ErrorIs(t, err, final)
		require.Equal(t, 1, calls)

		calls = 0
		require.NoError(t, Do(ctx, 4, Exponential(50*time.Millisecond, time.Second, 0), nil, func() error {
			calls++
			if calls < 3 {
				return fail
			}
			return nil
		}))
		require.Equal(t, 3, calls)

		cctx, cancel := context.WithCancel(ctx)
		calls = 0
		go func() { time.Sleep(75 * time.Millisecond); cancel() }()
		err = Do(cctx, 10, Exponential(50*time.Millisecond, time.Second, 0), nil, func() error { calls++; return fail })
		require.ErrorIs(t, err, fail)
		require.Equal(t, 2, calls, "the pause after the second call ends with the context")
	})
}

// A loop retries until success, pausing by the backoff or by the longer
// pause an attempt asks for, and notes each retry before its pause.
func TestLoopPausesAndNotesEachRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fail := errors.New("fail")
		var notes []time.Duration
		calls := 0
		l := Loop{Retries: 5, Backoff: Exponential(100*time.Millisecond, time.Second, 0),
			OnRetry: func(n int, d time.Duration, err error) {
				require.Equal(t, len(notes)+1, n)
				require.ErrorIs(t, err, fail)
				notes = append(notes, d)
			}}
		start := time.Now()
		err := l.Run(context.Background(), func() error {
			calls++
			switch calls {
			case 1:
				return fail
			case 2:
				return After(3*time.Second, fail) // a server's Retry-After
			case 3:
				return After(time.Millisecond, fail) // shorter than the backoff
			}
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, 4, calls)
		require.Equal(t, []time.Duration{100 * time.Millisecond, 3 * time.Second, 400 * time.Millisecond}, notes)
		require.Equal(t, 3500*time.Millisecond, time.Since(start), "the pauses were waited")
	})
}

// Retries run out into an *Exhausted with the attempts made; a permanent
// error ends the loop at once, without its mark; so does an attempt made
// after the context ended, and a context that ends during a pause.
func TestLoopEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fail := errors.New("fail")
		l := Loop{Retries: 2, Backoff: Exponential(time.Second, time.Second, 0)}
		calls := 0
		err := l.Run(context.Background(), func() error { calls++; return fail })
		var ex *Exhausted
		require.ErrorAs(t, err, &ex)
		require.Equal(t, 3, ex.Attempts)
		require.Equal(t, 3, calls)
		require.ErrorIs(t, err, fail)

		calls = 0
		err = l.Run(context.Background(), func() error { calls++; return Permanent(fail) })
		require.Equal(t, fail, err, "the mark is removed")
		require.Equal(t, 1, calls)

		ctx, cancel := context.WithCancel(context.Background())
		calls = 0
		err = l.Run(ctx, func() error { calls++; cancel(); return fail })
		require.Equal(t, fail, err)
		require.Equal(t, 1, calls, "no retry once the context is done")

		ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		calls = 0
		err = l.Run(ctx, func() error { calls++; return fail })
		require.ErrorIs(t, err, context.DeadlineExceeded, "the pause ended with the context")
		require.Equal(t, 1, calls)
	})
}
