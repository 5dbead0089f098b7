package sleep

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Timer
		start := time.Now()
		require.NoError(t, s.Sleep(context.Background(), time.Second))
		require.Equal(t, time.Second, time.Since(start))
		require.NoError(t, s.Sleep(context.Background(), 2*time.Second), "the timer is reused")
		require.Equal(t, 3*time.Second, time.Since(start))
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, s.Sleep(ctx, time.Hour), context.DeadlineExceeded)
		require.Equal(t, 3500*time.Millisecond, time.Since(start))
		s.Stop()
	})
}
