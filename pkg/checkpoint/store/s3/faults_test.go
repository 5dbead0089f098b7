package s3_test

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/s3proxy"
	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	s3store "github.com/streamd/streamd/pkg/checkpoint/store/s3"
)

// behindProxy returns a store that reaches endpoint through a fault proxy.
func behindProxy(t *testing.T, endpoint, ak, sk, bucket string, cfg s3proxy.Config, opts ...func(*s3store.Config)) (*s3store.Store, *s3proxy.Proxy) {
	t.Helper()
	cfg.Target = endpoint
	p, err := s3proxy.New(cfg)
	require.NoError(t, err)
	front := httptest.NewServer(p)
	t.Cleanup(func() { front.Close(); p.Close() })
	sc := s3store.DefaultConfig()
	sc.Bucket, sc.Endpoint, sc.PathStyle, sc.AccessKey, sc.SecretKey = bucket, front.URL, true, ak, sk
	sc.MaxAttempts, sc.MaxBackoff = 10, 20*time.Millisecond
	for _, o := range opts {
		o(&sc)
	}
	s, err := s3store.New(sc, nil, nil)
	require.NoError(t, err)
	return s, p
}

// exercise runs every kind of operation once and returns the first error.
func exercise(ctx context.Context, s store.Store, round int) error {
	key := func(name string) string { return "r" + string(rune('a'+round%26)) + "/" + name }
	data := bytes.Repeat([]byte{byte(round)}, 1000)
	if err := s.Put(ctx, key("blob"), bytes.NewReader(data), int64(len(data))); err != nil {
		return err
	}
	rc, err := s.Get(ctx, key("blob"))
	if err != nil {
		return err
	}
	got, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return io.ErrUnexpectedEOF
	}
	if err := s.PutIfAbsent(ctx, key("manifest"), data); err != nil {
		return err
	}
	id, err := s.CreateUpload(ctx, key("file"))
	if err != nil {
		return err
	}
	big := bytes.Repeat([]byte{byte(round)}, store.MinPartSize)
	e1, err := s.UploadPart(ctx, key("file"), id, 1, bytes.NewReader(big), int64(len(big)))
	if err != nil {
		return err
	}
	e2, err := s.UploadPart(ctx, key("file"), id, 2, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return err
	}
	if err := s.CompleteUpload(ctx, key("file"), id, []store.Part{{Num: 1, ETag: e1}, {Num: 2, ETag: e2}}); err != nil {
		return err
	}
	if _, err := s.List(ctx, key("")); err != nil {
		return err
	}
	return s.Delete(ctx, key("blob"))
}

func TestFaults(t *testing.T) {
	targets := []struct {
		name  string
		start func(t *testing.T) (endpoint, ak, sk, bucket string)
	}{
		{"gofakes3", func(t *testing.T) (string, string, string, string) {
			return startFake(t, "faults"), "ak", "sk", "faults"
		}},
		{"minio", func(t *testing.T) (string, string, string, string) {
			endpoint, ak, sk := testenv.StartMinIO(t)
			testenv.MinIOBucket(t, endpoint, ak, sk, "faults")
			return endpoint, ak, sk, "faults"
		}},
	}
	for _, target := range targets {
		t.Run(target.name, func(t *testing.T) {
			endpoint, ak, sk, bucket := target.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
			defer cancel()

			t.Run("transient faults are retried", func(t *testing.T) {
				s, p := behindProxy(t, endpoint, ak, sk, bucket, s3proxy.Config{
					Seed: 7, ErrorRate: 0.2, ResetRate: 0.1, LostResponseRate: 0.1, DelayRate: 0.1, Delay: 5 * time.Millisecond,
				})
				for round := range 6 {
					require.NoError(t, exercise(ctx, s, round), "round %d", round)
				}
				c := p.Counts()
				t.Logf("proxy: %+v", c)
				require.Positive(t, c.Errors)
				require.Positive(t, c.Resets)
				require.Positive(t, c.LostResponses)
			})
			t.Run("permanent faults fail without hanging", func(t *testing.T) {
				s, p := behindProxy(t, endpoint, ak, sk, bucket, s3proxy.Config{Seed: 1})
				p.SetRates(0.5, 0.5, 0, 0)
				start := time.Now()
				require.Error(t, exercise(ctx, s, 20))
				_, err := s.Get(ctx, "x")
				require.Error(t, err)
				require.NotErrorIs(t, err, store.ErrNotFound)
				require.Error(t, s.PutIfAbsent(ctx, "y", []byte("y")))
				_, err = s.CreateUpload(ctx, "z")
				require.Error(t, err)
				require.Less(t, time.Since(start), 20*time.Second)
				require.Equal(t, int64(0), p.Counts().Forwarded)
			})
		})
	}
}

// With retryFor a request is retried through an outage of the endpoint
// that outlasts its attempts, and Retrying says so meanwhile; past the
// budget it fails, saying why.
func TestRetryForRidesOutAnOutage(t *testing.T) {
	endpoint, ak, sk := testenv.StartMinIO(t)
	testenv.MinIOBucket(t, endpoint, ak, sk, "outage")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data := bytes.Repeat([]byte("x"), 1000)

	s, p := behindProxy(t, endpoint, ak, sk, "outage", s3proxy.Config{Seed: 3}, func(c *s3store.Config) {
		c.MaxAttempts, c.MaxBackoff, c.RetryFor = 3, 50*time.Millisecond, 30*time.Second
	})
	require.NoError(t, s.Retrying())
	p.SetRates(1, 0, 0, 0) // every request answers 503 SlowDown
	done := make(chan error, 1)
	go func() { done <- s.Put(ctx, "during", bytes.NewReader(data), int64(len(data))) }()
	require.Eventually(t, func() bool { return p.Counts().Errors > 10 }, 20*time.Second, 10*time.Millisecond, "attempts beyond maxAttempts")
	require.ErrorContains(t, s.Retrying(), "SlowDown", "retrying while the endpoint fails")
	select {
	case err := <-done:
		t.Fatalf("put returned during the outage: %v", err)
	default:
	}
	p.SetRates(0, 0, 0, 0)
	require.NoError(t, <-done, "the put started during the outage")
	require.NoError(t, s.Retrying())
	rc, err := s.Get(ctx, "during")
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	_ = rc.Close()
	require.Equal(t, data, got)

	short, p2 := behindProxy(t, endpoint, ak, sk, "outage", s3proxy.Config{Seed: 4}, func(c *s3store.Config) {
		c.MaxAttempts, c.MaxBackoff, c.RetryFor = 3, 50*time.Millisecond, time.Second
	})
	p2.SetRates(1, 0, 0, 0)
	start := time.Now()
	_, err = short.CreateUpload(ctx, "past-budget")
	require.ErrorIs(t, err, store.ErrRetryLimit)
	require.ErrorContains(t, err, "s3.retryFor 1s")
	require.ErrorContains(t, err, "SlowDown")
	require.Less(t, time.Since(start), 20*time.Second)
	require.Greater(t, p2.Counts().Errors, int64(3), "more attempts than maxAttempts")
	require.NoError(t, short.Retrying(), "nothing is retried once the request failed")
}
