package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/pkg/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var schema = record.MustSchema(
	record.Field{Name: "alert_id", Type: record.TypeString},
	record.Field{Name: "n", Type: record.TypeInt},
)

// failure is what the server does with one attempt.
type failure int

const (
	ok failure = iota
	unavailable
	reset
	tooMany
	badRequest
)

// server answers attempts from a script, then succeeds, and records every
// accepted row and the keys it saw.
type server struct {
	mu       sync.Mutex
	script   []failure
	attempts int
	rows     map[string]int // alert_id → deliveries
	keys     map[string]int // Idempotency-Key → accepted requests
	auth     []string
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	f := ok
	if s.attempts < len(s.script) {
		f = s.script[s.attempts]
	}
	s.attempts++
	switch f {
	case unavailable:
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case reset:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.(*net.TCPConn).SetLinger(0)
			_ = conn.Close()
		}
		return
	case tooMany:
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	case badRequest:
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "schema mismatch")
		return
	}
	key := r.Header.Get("Idempotency-Key")
	s.keys[key]++
	if s.keys[key] > 1 {
		return // a duplicate: acknowledged, not applied
	}
	var rows []map[string]any
	if err := json.Unmarshal(body, &rows); err != nil || r.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	for _, row := range rows {
		s.rows[row["alert_id"].(string)]++
	}
}

func newSink(t *testing.T, url string, reg prometheus.Registerer, mutate func(*Config)) (*Sink, *[]time.Duration) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.URL = "alerts", url
	cfg.Headers = map[string]string{"Authorization": "Bearer s3cret"}
	cfg.MaxRows = 3
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg, nil, reg)
	require.NoError(t, err)
	var waits []time.Duration
	s.sleep = func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, &waits
}

func batch(from, n int) *record.Batch {
	b := record.NewBatch(schema.Len(), n)
	for i := from; i < from+n; i++ {
		r := b.AppendRow(int64(i))
		r[0] = record.String("alert-" + strconv.Itoa(i))
		r[1] = record.Int(int64(i))
	}
	return b
}

func TestDelivery(t *testing.T) {
	tests := []struct {
		name      string
		script    []failure
		wantErr   string
		wantRetry int
		wantWaits func(t *testing.T, waits []time.Duration)
	}{
		{name: "no failures", script: nil},
		// Go's transport itself resends a request with an Idempotency-Key
		// whose reused connection was reset, so the reset may cost no retry
		// of the sink's own: -1 accepts 2 or 3.
		{name: "503, reset, 429 then success", script: []failure{unavailable, reset, tooMany}, wantRetry: -1,
			wantWaits: func(t *testing.T, waits []time.Duration) {
				require.GreaterOrEqual(t, waits[len(waits)-1], 2*time.Second, "Retry-After is honoured")
			}},
		{name: "permanent 400", script: []failure{badRequest}, wantErr: "status 400: schema mismatch"},
		{name: "retries run out", script: []failure{unavailable, unavailable, unavailable, unavailable}, wantErr: "gave up after 4 attempts", wantRetry: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := &server{script: tc.script, rows: map[string]int{}, keys: map[string]int{}}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			reg := prometheus.NewRegistry()
			s, waits := newSink(t, hs.URL+"/hook?token=querysecret", reg, func(c *Config) { c.MaxAttempts = 4 })
			w, err := s.NewWriter("rules-0", schema)
			require.NoError(t, err)
			ctx := context.Background()
			err = w.Write(ctx, batch(0, 7))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.NotContains(t, err.Error(), "querysecret")
				require.NotContains(t, err.Error(), "s3cret")
				require.Equal(t, float64(tc.wantRetry), testutil.ToFloat64(s.metrics.retries))
				return
			}
			require.NoError(t, err)
			require.NoError(t, w.Write(ctx, batch(7, 2)))
			require.NoError(t, w.Close(ctx))
			require.Len(t, srv.rows, 9)
			for id, n := range srv.rows {
				require.Equal(t, 1, n, "row %s delivered once", id)
			}
			for _, a := range srv.auth {
				require.Equal(t, "Bearer s3cret", a)
			}
			retries := testutil.ToFloat64(s.metrics.retries)
			if tc.wantRetry == -1 {
				require.Contains(t, []float64{2, 3}, retries)
				require.Len(t, *waits, int(retries))
				require.Equal(t, 4+3, srv.attempts, "every scripted failure was seen")
			} else {
				require.Equal(t, float64(tc.wantRetry), retries)
			}
			require.Equal(t, float64(4), testutil.ToFloat64(s.metrics.requests.WithLabelValues("200")), "7 rows in 3 requests, 2 in 1")
			if tc.wantWaits != nil {
				tc.wantWaits(t, *waits)
			}
		})
	}
}

func TestDuplicateRequestsShareKey(t *testing.T) {
	srv := &server{rows: map[string]int{}, keys: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	s, _ := newSink(t, hs.URL, nil, nil)
	w, err := s.NewWriter("t", schema)
	require.NoError(t, err)
	// Replaying the same batch, as after a restart from a checkpoint, sends
	// the same keys, and the receiver drops the duplicates.
	require.NoError(t, w.Write(context.Background(), batch(0, 3)))
	require.NoError(t, w.Write(context.Background(), batch(0, 3)))
	require.Equal(t, 1, srv.rows["alert-0"])
	require.Len(t, srv.keys, 1)
}

func TestCanceledContextStopsRetrying(t *testing.T) {
	srv := &server{script: []failure{unavailable, unavailable, unavailable}, rows: map[string]int{}, keys: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	s, _ := newSink(t, hs.URL, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	s.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	w, err := s.NewWriter("t", schema)
	require.NoError(t, err)
	require.ErrorIs(t, w.Write(ctx, batch(0, 1)), context.Canceled)
	require.Equal(t, 1, srv.attempts)
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 5, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"-1", 0},
		{"junk", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, retryAfter(tc.in, now), tc.in)
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "Sat, 21 Nov 2026 05:00:00 GMT", "-5", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		require.GreaterOrEqual(t, retryAfter(v, time.Unix(0, 0)), time.Duration(0))
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"ok", func(*Config) {}, ""},
		{"no url", func(c *Config) { c.URL = "" }, "url"},
		{"relative url", func(c *Config) { c.URL = "/hook" }, "url"},
		{"secret in url is not echoed", func(c *Config) { c.URL = "ftp://u:pw@h/x?token=t0k" }, "ftp://h/<redacted>?<redacted>"},
		{"secret in path is not echoed", func(c *Config) { c.URL = "ftp://hooks.slack.com/services/T0/B0/t0k" }, "ftp://hooks.slack.com/<redacted>"},
		{"header set by sink", func(c *Config) { c.Headers = map[string]string{"content-type": "x"} }, "headers"},
		{"timeout", func(c *Config) { c.Timeout = 0 }, "timeout"},
		{"attempts", func(c *Config) { c.MaxAttempts = 0 }, "maxAttempts"},
		{"backoff order", func(c *Config) { c.MaxBackoff = time.Millisecond }, "maxBackoff"},
		{"rows", func(c *Config) { c.MaxRows = 0 }, "maxRows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.URL = "https://hooks.example/alerts"
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.False(t, strings.Contains(err.Error(), "t0k") || strings.Contains(err.Error(), "pw"))
		})
	}
}

func BenchmarkWrite(b *testing.B) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer hs.Close()
	cfg := DefaultConfig()
	cfg.URL = hs.URL
	s, err := New(cfg, nil, nil)
	require.NoError(b, err)
	defer s.Close(context.Background())
	w, err := s.NewWriter("t", schema)
	require.NoError(b, err)
	bt := batch(0, 500)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := w.Write(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*bt.Len())/b.Elapsed().Seconds(), "rows/s")
}
