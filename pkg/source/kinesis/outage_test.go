package kinesis

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/source"
)

// failed classifies a Read error as the runtime does: a failure, or ctx's
// deadline on a reachable split with no message.
func failed(err error) bool {
	return err != nil && !errors.Is(err, source.ErrEndOfSplit) &&
		(errors.Is(err, source.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded))
}

// An endpoint that goes away makes every read of its shards fail — none
// passes for a quiet shard, which could go idle — and once it is back the
// shard is read on from where it was, by itself.
func TestEndpointOutage(t *testing.T) {
	client, stream := newStream(t, 1)
	u, err := url.Parse(endpoint(t))
	require.NoError(t, err)
	g := testenv.NewGate()
	cfg := testConfig(t, stream)
	cfg.Endpoint = "http://" + g.Forward(t, u.Host)
	// Longer than a read's deadline, as the defaults are: most reads wait
	// for the next call and end with their deadline.
	cfg.PollInterval = 500 * time.Millisecond
	src := newTestSource(t, cfg, nil)
	splits, err := src.Splits(context.Background())
	require.NoError(t, err)
	require.Len(t, splits, 1)
	r, err := src.Open(context.Background(), splits[0], nil)
	require.NoError(t, err)
	defer r.Close()
	read := func(b *source.Batch) error {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		return r.Read(ctx, b, 100)
	}
	var b source.Batch
	put(t, client, stream, "k", "a", "b")
	for deadline := time.Now().Add(40 * time.Second); len(b.Messages) < 2; {
		require.False(t, failed(read(&b)))
		require.True(t, time.Now().Before(deadline), "the first records")
	}
	g.Close()
	for deadline := time.Now().Add(40 * time.Second); !failed(read(&b)); {
		require.True(t, time.Now().Before(deadline), "no failure reported during the outage")
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		err := read(&b)
		require.True(t, failed(err), "a read during the outage: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
	g.Open()
	put(t, client, stream, "k", "c")
	for deadline := time.Now().Add(40 * time.Second); len(b.Messages) < 3; {
		_ = read(&b)
		require.True(t, time.Now().Before(deadline), "the record put after the outage")
	}
	var values []string
	for _, m := range b.Messages {
		values = append(values, string(m.Value))
	}
	require.Equal(t, []string{"a", "b", "c"}, values, "read on after the outage, exactly once")
}
