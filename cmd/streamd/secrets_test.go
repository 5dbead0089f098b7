package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamd/streamd/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const secretsPipeline = `
name: secrets
http:
  listen: 127.0.0.1:0
  auth: {tokenFile: %[1]q}
sources:
  - name: points
    type: generator
    generator: {seed: 1, rate: 1000, count: 3000, machines: 3, tags: 2}
    decode:
      fields:
        - {name: equipmentId, type: string, required: true}
        - {name: value, type: float}
        - {name: ts, path: timestamp, type: timestamp, format: epoch_ms, required: true}
    eventTime: {field: ts}
sinks:
  - name: hook
    input: points
    type: webhook
    webhook: {url: %[2]q, maxAttempts: 6, initialBackoff: 10ms, maxBackoff: 20ms, maxRows: 1000}
  - name: out
    input: points
    type: kafka
    kafka:
      brokers: [%[3]q]
      topic: out
      sasl: {mechanism: plain, username: streamd, password: %[4]q, allowPlaintext: true}
checkpoint: {enabled: false}
`

// TestSecretsNeverLeak runs validate and run on a pipeline full of secrets
// (the admin token, a SASL password, a webhook URL with a secret path,
// query and user info) and scans everything a person or a scraper sees —
// log lines, validate's output, /v1/status and /metrics — for the literal
// secret values.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		adminToken  = "tok-admin-6f1d2c9b8a7e"
		saslPass    = "sasl-pw-4a9c3e7f1b2d"
		hookPath    = "hookpath-8e2f6a1c5d9b"
		hookQuery   = "hookquery-3b7d1f9e2c6a"
		hookUser    = "hookuser-9c5a2e8f4d1b"
		hookUserPwd = "hookpw-1f7b3d9a5c2e"
	)
	secrets := []string{adminToken, saslPass, hookPath, hookQuery, hookUser, hookUserPwd}

	var hookCalls atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		// The first attempts fail, so the sink logs its retries.
		if hookCalls.Add(1) <= 2 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	hookURL := strings.Replace(hook.URL, "http://", "http://"+hookUser+":"+hookUserPwd+"@", 1) + "/services/T0/B0/" + hookPath + "?token=" + hookQuery

	cluster := testenv.StartKafkaCluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "streamd", saslPass), kfake.SeedTopics(1, "out"))
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600))
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(secretsPipeline, tokenFile, hookURL, cluster.ListenAddrs()[0], saslPass)), 0o600))

	var seen []string // everything scanned
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"validate", "--config", cfgPath}, &out, &errOut), errOut.String())
	require.Contains(t, errOut.String(), "warning: line 27: sinks[1].kafka.sasl.allowPlaintext")
	seen = append(seen, out.String(), errOut.String())

	// An invalid variant: the problem is reported, the secret is not.
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(fmt.Sprintf(secretsPipeline, tokenFile, hookURL, cluster.ListenAddrs()[0], saslPass), "mechanism: plain", "mechanism: pl4in", 1)), 0o600))
	out.Reset()
	errOut.Reset()
	require.Equal(t, 1, run([]string{"validate", "--config", bad}, &out, &errOut))
	require.Contains(t, errOut.String(), `sinks[1].kafka.sasl.mechanism: unknown mechanism "pl4in"`)
	seen = append(seen, out.String(), errOut.String())

	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run([]string{"run", "--config", cfgPath, "--log-level", "debug"}, io.Discard, logs) }()
	addr := waitForAddr(t, logs, done)
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path string, token string) string {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
		return string(body)
	}
	status := get("/v1/status", adminToken)
	require.True(t, json.Valid([]byte(status)))
	seen = append(seen, status, get("/metrics", ""))
	// A wrong guess is refused and not echoed.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken+"x")
	resp, err := client.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	seen = append(seen, string(body))

	select {
	case code := <-done:
		require.Equal(t, 0, code, logs.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("pipeline did not stop")
	}
	require.GreaterOrEqual(t, hookCalls.Load(), int64(3), "the webhook retried")
	require.Contains(t, logs.String(), "webhook request failed, retrying")
	require.Contains(t, logs.String(), "SASL plain credentials are sent to the brokers without TLS")
	seen = append(seen, logs.String())

	for _, text := range seen {
		for _, s := range secrets {
			require.NotContains(t, text, s, "a secret leaked into:\n%s", text)
		}
	}
}

var listeningLine = regexp.MustCompile(`"admin http listening","addr":"([^"]+)"`)

// waitForAddr waits for the admin server's address in the log.
func waitForAddr(t *testing.T, logs *syncBuffer, done chan int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := listeningLine.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-done:
			t.Fatalf("run exited with %d before listening:\n%s", code, logs.String())
		case <-ctx.Done():
			t.Fatalf("no admin address in the log:\n%s", logs.String())
		case <-tick.C:
		}
	}
}
