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
