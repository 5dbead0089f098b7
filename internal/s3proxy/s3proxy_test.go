package s3proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/internal/s3proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		cfg    s3proxy.Config
		status int // 0: the request fails at the transport
		want   s3proxy.Counts
	}{
		{"forward", s3proxy.Config{}, http.StatusOK, s3proxy.Counts{Requests: 1, Forwarded: 1}},
		{"slow down", s3proxy.Config{ErrorRate: 1}, http.StatusServiceUnavailable, s3proxy.Counts{Requests: 1, Errors: 1}},
		{"reset", s3proxy.Config{ResetRate: 1}, 0, s3proxy.Counts{Requests: 1, Resets: 1}},
		{"lost response", s3proxy.Config{LostResponseRate: 1}, 0, s3proxy.Counts{Requests: 1, Forwarded: 1, LostResponses: 1}},
		{"delay", s3proxy.Config{DelayRate: 1, Delay: 1}, http.StatusOK, s3proxy.Counts{Requests: 1, Forwarded: 1, Delays: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var served atomic.Int64
			var path atomic.Value
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				path.Store(r.URL.Path)
				_, _ = io.WriteString(w, "ok")
			}))
			defer backend.Close()
			tc.cfg.Target = backend.URL
			p, err := s3proxy.New(tc.cfg)
			require.NoError(t, err)
			defer p.Close()
			front := httptest.NewServer(p)
			defer front.Close()
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()

			resp, err := client.Get(front.URL + "/bucket/key")
			if tc.status == 0 {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				require.Equal(t, tc.status, resp.StatusCode)
			}
			require.Equal(t, tc.want, p.Counts())
			require.Equal(t, tc.want.Forwarded, served.Load())
			if served.Load() > 0 {
				require.Equal(t, "/bucket/key", path.Load())
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	run := func() s3proxy.Counts {
		backend := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		defer backend.Close()
		p, err := s3proxy.New(s3proxy.Config{Target: backend.URL, Seed: 42, ErrorRate: 0.3, DelayRate: 0.3, Delay: 1})
		require.NoError(t, err)
		defer p.Close()
		front := httptest.NewServer(p)
		defer front.Close()
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		for range 50 {
			resp, err := client.Get(front.URL)
			require.NoError(t, err)
			_ = resp.Body.Close()
		}
		return p.Counts()
	}
	first := run()
	require.Equal(t, first, run())
	require.Positive(t, first.Errors)
	require.Positive(t, first.Delays)
}

func TestNewRejectsBadTarget(t *testing.T) {
	_, err := s3proxy.New(s3proxy.Config{Target: "127.0.0.1:9000"})
	require.Error(t, err)
}
