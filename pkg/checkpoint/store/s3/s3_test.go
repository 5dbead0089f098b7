package s3_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	s3store "github.com/streamd/streamd/pkg/checkpoint/store/s3"
	"github.com/streamd/streamd/pkg/checkpoint/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The SDK's HTTP transport keeps idle connections with their
		// read/write loops until the process ends.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

// startFake runs gofakes3 in process with one bucket and returns its URL.
func startFake(t testing.TB, bucket string) string {
	t.Helper()
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket(bucket))
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return srv.URL
}

func newStore(t testing.TB, endpoint, ak, sk, bucket, prefix string, reg prometheus.Registerer) *s3store.Store {
	t.Helper()
	cfg := s3store.DefaultConfig()
	cfg.Bucket, cfg.Prefix, cfg.Endpoint, cfg.PathStyle = bucket, prefix, endpoint, true
	cfg.AccessKey, cfg.SecretKey = ak, sk
	cfg.MaxBackoff = 100 * time.Millisecond
	s, err := s3store.New(cfg, nil, reg)
	require.NoError(t, err)
	return s
}

func TestConformanceGoFakeS3(t *testing.T) {
	endpoint := startFake(t, "fake")
	s := newStore(t, endpoint, "ak", "sk", "fake", "root", nil)
	require.NoError(t, s.Check(context.Background()))
	// gofakes3 honours If-None-Match on PutObject but ignores it on
	// CompleteMultipartUpload, so only the never-replace case is skipped.
	storetest.Run(t, func(*testing.T) store.Store { return s },
		storetest.Options{SkipConditionalComplete: true, ListPagingKeys: 1005})
}

func TestConformanceMinIO(t *testing.T) {
	endpoint, ak, sk := testenv.StartMinIO(t)
	testenv.MinIOBucket(t, endpoint, ak, sk, "conformance")
	s := newStore(t, endpoint, ak, sk, "conformance", "p/q", nil)
	require.NoError(t, s.Check(context.Background()))
	// MinIO lists multipart uploads only by exact object name.
	storetest.Run(t, func(*testing.T) store.Store { return s }, storetest.Options{ListPagingKeys: 1005, ListUploadsExactKey: true})
}

func TestCheck(t *testing.T) {
	endpoint := startFake(t, "exists")
	tests := []struct {
		name   string
		bucket string
		want   []string
	}{
		{"existing bucket", "exists", nil},
		{"missing bucket", "missing", []string{`"missing"`, endpoint, "does not exist"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, endpoint, "ak", "sk", tc.bucket, "", nil)
			err := s.Check(context.Background())
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
	t.Run("unreachable endpoint", func(t *testing.T) {
		cfg := s3store.DefaultConfig()
		cfg.Bucket, cfg.Endpoint, cfg.PathStyle, cfg.MaxAttempts = "b", "http://127.0.0.1:1", true, 1
		cfg.AccessKey, cfg.SecretKey = "ak", "sk"
		s, err := s3store.New(cfg, nil, nil)
		require.NoError(t, err)
		err = s.Check(context.Background())
		require.ErrorContains(t, err, "http://127.0.0.1:1")
		require.ErrorContains(t, err, "credentials")
	})
}

func TestMetrics(t *testing.T) {
	endpoint := startFake(t, "m")
	reg := prometheus.NewRegistry()
	s := newStore(t, endpoint, "ak", "sk", "m", "", reg)
	// A second store on the same registry shares the collectors.
	s2 := newStore(t, endpoint, "ak", "sk", "m", "other", reg)
	ctx := context.Background()
	require.NoError(t, s.PutIfAbsent(ctx, "a", []byte("1")))
	require.ErrorIs(t, s.PutIfAbsent(ctx, "a", []byte("2")), store.ErrExists)
	_, err := s2.Get(ctx, "a")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP streamd_store_requests_total Object store operations by store, operation and result (ok, not_found, exists, error).
# TYPE streamd_store_requests_total counter
streamd_store_requests_total{op="get",result="not_found",store="s3"} 1
streamd_store_requests_total{op="put_if_absent",result="exists",store="s3"} 1
streamd_store_requests_total{op="put_if_absent",result="ok",store="s3"} 1
`), "streamd_store_requests_total"))
	require.Equal(t, 2, testutil.CollectAndCount(reg, "streamd_store_request_duration_seconds"))
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*s3store.Config)
		want   string
	}{
		{"ok", func(*s3store.Config) {}, ""},
		{"no bucket", func(c *s3store.Config) { c.Bucket = "" }, "bucket"},
		{"bad endpoint", func(c *s3store.Config) { c.Endpoint = "localhost:9000" }, "endpoint"},
		{"half credentials", func(c *s3store.Config) { c.SecretKey = "" }, "accessKey and secretKey"},
		{"attempts", func(c *s3store.Config) { c.MaxAttempts = -1 }, "maxAttempts"},
		{"absolute prefix", func(c *s3store.Config) { c.Prefix = "/x" }, "prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := s3store.DefaultConfig()
			c.Bucket, c.AccessKey, c.SecretKey = "b", "a", "s"
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct{ in, bucket, prefix, err string }{
		{"s3://b/p/q/", "b", "p/q", ""},
		{"s3://b", "b", "", ""},
		{"s3:///p", "", "", "bucket is empty"},
		{"/tmp/x", "", "", "want s3://"},
	}
	for _, tc := range tests {
		b, p, err := s3store.ParseURL(tc.in)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.bucket, b)
		require.Equal(t, tc.prefix, p)
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://b/p", "s3://", "s3://b", "x", "s3:///"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, p, err := s3store.ParseURL(s)
		if err == nil {
			require.NotEmpty(t, b)
			require.False(t, strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"))
		}
	})
}
