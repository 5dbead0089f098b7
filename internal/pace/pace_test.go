package pace

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPacerKeepsTheRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(100, time.Now)
		defer p.Stop()
		start := time.Now()
		var total int64
		for total < 300 {
			n, err := p.Wait(context.Background())
			require.NoError(t, err)
			p.Emitted(n)
			total += n
		}
		// 300 events at 100/s: the 300th is due at 2.99 s.
		require.InDelta(t, 2.99, time.Since(start).Seconds(), 0.02)
	})
}

func TestPacerRestartsWhenFarBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(10, time.Now)
		defer p.Stop()
		n, err := p.Wait(context.Background())
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		p.Emitted(n)
		time.Sleep(5 * time.Second) // the pipeline was blocked
		n, err = p.Wait(context.Background())
		require.NoError(t, err)
		require.Equal(t, int64(1), n, "no burst of 50 events")
	})
}

func TestPacerHonoursTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(0.001, time.Now)
		defer p.Stop()
		n, err := p.Wait(context.Background())
		require.NoError(t, err)
		p.Emitted(n)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = p.Wait(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}
