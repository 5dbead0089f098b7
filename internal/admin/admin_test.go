package admin

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/streamd/streamd/pkg/rules"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	writeToken = "w-3f9c1a7e5b2d4c6e8a0b"
	readToken  = "r-7d2e4f6a8c0b1d3e5f7a"
)

// fakeRules records every state change it is asked for.
type fakeRules struct {
	mu      sync.Mutex
	rules   map[string]*rules.Rule
	changes int
}

func newFakeRules() *fakeRules { return &fakeRules{rules: map[string]*rules.Rule{}} }

func (f *fakeRules) Stages() []string { return []string{"alerts"} }
func (f *fakeRules) List(string) ([]*rules.Rule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*rules.Rule
	for _, r := range f.rules {
		out = append(out, r)
	}
	return out, nil
}
func (f *fakeRules) Put(_ context.Context, _ string, r *rules.Rule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[r.ID] = r
	f.changes++
	return nil
}
func (f *fakeRules) Delete(_ context.Context, _, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.rules, id)
	f.changes++
	return nil
}
func (f *fakeRules) Stats(string) []rules.RuleStats { return nil }

func (f *fakeRules) state() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.rules), f.changes
}

const ruleBody = `{"id":"hot","version":2,"select":"true","key":["m"],"signals":{"t":{"value":"v"}},"groups":[{"name":"hot","state":"WARNING","conditions":["t > 80"]}]}`

// harness is a running admin server with its fakes.
type harness struct {
	srv        *Server
	rules      *fakeRules
	savepoints *int
	logs       *observer.ObservedLogs
	reg        *prometheus.Registry
	base       string
	client     *http.Client
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	h := &harness{rules: newFakeRules(), savepoints: new(int), logs: logs, reg: prometheus.NewRegistry(), client: &http.Client{Timeout: 10 * time.Second}}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	cfg.Gatherer, cfg.Registerer = h.reg, h.reg
	cfg.Ready = func() bool { return true }
	cfg.Status = func() any { return map[string]any{"pipeline": "t"} }
	var mu sync.Mutex
	cfg.Savepoint = func(context.Context) (int64, error) {
		mu.Lock()
		defer mu.Unlock()
		*h.savepoints++
		return int64(*h.savepoints), nil
	}
	cfg.Rules = h.rules
	srv, err := New(cfg, zap.New(core))
	require.NoError(t, err)
	h.srv = srv
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		require.NoError(t, <-done)
		h.client.CloseIdleConnections()
	})
	h.base = "http://" + srv.Addr()
	if cfg.TLS != nil {
		h.base = "https://" + srv.Addr()
	}
	return h
}

func (h *harness) do(t *testing.T, method, path, body string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.base+path, strings.NewReader(body))
	require.NoError(t, err)
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := h.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(data)
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

// mutations are every endpoint that changes state.
var mutations = []struct {
	method, path, body string
	ok                 int
}{
	{http.MethodPut, "/v1/rules/hot", ruleBody, http.StatusOK},
	{http.MethodDelete, "/v1/rules/hot", "", http.StatusNoContent},
	{http.MethodPost, "/v1/savepoint", "", http.StatusOK},
}

var reads = []string{"/v1/status", "/v1/rules", "/v1/rules/hot", "/v1/rulestats"}

// TestMutationsNeedACredential: without a valid write credential every
// endpoint that changes state answers 401 (none or invalid) or 403 (read
// only) and changes nothing; with it, it works.
func TestMutationsNeedACredential(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), writeToken+"\n")
	writeFile(t, filepath.Join(dir, "read-token"), readToken)
	h := start(t, Config{Auth: Auth{TokenFile: filepath.Join(dir, "token"), ReadTokenFile: filepath.Join(dir, "read-token")}})

	denied := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"no credential", nil, http.StatusUnauthorized},
		{"wrong token", bearer("w-3f9c1a7e5b2d4c6e8a0c"), http.StatusUnauthorized},
		{"token prefix", bearer(writeToken[:10]), http.StatusUnauthorized},
		{"empty token", bearer(""), http.StatusUnauthorized},
		{"basic scheme", http.Header{"Authorization": {"Basic " + writeToken}}, http.StatusUnauthorized},
		{"no scheme", http.Header{"Authorization": {writeToken}}, http.StatusUnauthorized},
		{"two headers", http.Header{"Authorization": {"Bearer " + readToken, "Bearer " + writeToken}}, http.StatusUnauthorized},
		{"read-only token", bearer(readToken), http.StatusForbidden},
	}
	for _, m := range mutations {
		for _, d := range denied {
			t.Run(m.method+" "+m.path+" "+d.name, func(t *testing.T) {
				nRules, changes := h.rules.state()
				savepoints := *h.savepoints
				code, body := h.do(t, m.method, m.path, m.body, d.header)
				require.Equal(t, d.want, code, body)
				require.Contains(t, body, `"error"`)
				gotRules, gotChanges := h.rules.state()
				require.Equal(t, nRules, gotRules)
				require.Equal(t, changes, gotChanges, "a refused request must change nothing")
				require.Equal(t, savepoints, *h.savepoints, "a refused request must take no savepoint")
			})
		}
	}
	require.Equal(t, float64(len(mutations)*7), testutil.ToFloat64(h.srv.authDenied("unauthenticated")))
	require.Equal(t, float64(len(mutations)), testutil.ToFloat64(h.srv.authDenied("forbidden")))

	// With the write token every mutation works, in order: put, delete, savepoint.
	for _, m := range mutations {
		code, body := h.do(t, m.method, m.path, m.body, bearer(writeToken))
		require.Equal(t, m.ok, code, "%s %s: %s", m.method, m.path, body)
	}
	_, changes := h.rules.state()
	require.Equal(t, 2, changes)
	require.Equal(t, 1, *h.savepoints)

	// Reads need the read or the write token; probes and metrics none.
	for _, path := range reads {
		code, _ := h.do(t, http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusUnauthorized, code, path)
		for _, tok := range []string{readToken, writeToken} {
			code, body := h.do(t, http.MethodGet, path, "", bearer(tok))
			require.Contains(t, []int{http.StatusOK, http.StatusNotFound}, code, "%s: %s", path, body)
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		code, _ := h.do(t, http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusOK, code, path)
	}

	// No token reaches the logs.
	for _, e := range h.logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		require.NotContains(t, line, writeToken)
		require.NotContains(t, line, readToken)
	}
}

// TestNoCredentialConfigured: with no credential configured reads are open
// (the default address is loopback) and no one can change state.
func TestNoCredentialConfigured(t *testing.T) {
	h := start(t, Config{})
	for _, m := range mutations {
		code, body := h.do(t, m.method, m.path, m.body, bearer("anything"))
		require.Equal(t, http.StatusUnauthorized, code)
		require.Contains(t, body, "no credential that may change state is configured")
	}
	n, changes := h.rules.state()
	require.Zero(t, n+changes+*h.savepoints)
	for _, path := range reads {
		code, _ := h.do(t, http.MethodGet, path, "", nil)
		require.NotEqual(t, http.StatusUnauthorized, code, path)
	}
}

func TestOpenReads(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), writeToken)
	h := start(t, Config{Auth: Auth{TokenFile: filepath.Join(dir, "token"), OpenReads: true}})
	for _, path := range reads {
		code, _ := h.do(t, http.MethodGet, path, "", nil)
		require.NotEqual(t, http.StatusUnauthorized, code, path)
	}
	code, _ := h.do(t, http.MethodPost, "/v1/savepoint", "", nil)
	require.Equal(t, http.StatusUnauthorized, code)
	// Without a read token, the write token still reads.
	code, _ = h.do(t, http.MethodGet, "/v1/status", "", bearer(writeToken))
	require.Equal(t, http.StatusOK, code)
}

// TestTokenFileReread: a rotated Secret takes effect without a restart,
// and a missing file is logged once, not per request.
func TestTokenFileReread(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	writeFile(t, path, writeToken)
	h := start(t, Config{Auth: Auth{TokenFile: path}})
	code, _ := h.do(t, http.MethodPost, "/v1/savepoint", "", bearer(writeToken))
	require.Equal(t, http.StatusOK, code)

	// Kubernetes updates a Secret volume by swapping a symlink.
	next := filepath.Join(dir, "token.next")
	writeFile(t, next, "rotated-token-value")
	require.NoError(t, os.Rename(next, path))
	code, _ = h.do(t, http.MethodPost, "/v1/savepoint", "", bearer(writeToken))
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = h.do(t, http.MethodPost, "/v1/savepoint", "", bearer("rotated-token-value"))
	require.Equal(t, http.StatusOK, code)

	require.NoError(t, os.Remove(path))
	for range 5 {
		code, _ = h.do(t, http.MethodPost, "/v1/savepoint", "", bearer("rotated-token-value"))
		require.Equal(t, http.StatusUnauthorized, code)
	}
	require.Equal(t, 1, h.logs.FilterMessage("admin token file unusable; requests with this token are refused").Len())
	writeFile(t, path, "third")
	code, _ = h.do(t, http.MethodPost, "/v1/savepoint", "", bearer("third"))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1, h.logs.FilterMessage("admin token file readable again").Len())
	require.Equal(t, 3, *h.savepoints)
}

// TestRuleBodyLimit: a body over the limit is 413 naming the limit, with
// or without a Content-Length, and is not applied.
func TestRuleBodyLimit(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), writeToken)
	h := start(t, Config{Auth: Auth{TokenFile: filepath.Join(dir, "token")}, MaxRuleBytes: 512})
	big := `{"id":"hot","version":2,"description":"` + strings.Repeat("x", 600) + `"}`

	code, body := h.do(t, http.MethodPut, "/v1/rules/hot", big, bearer(writeToken))
	require.Equal(t, http.StatusRequestEntityTooLarge, code)
	require.Contains(t, body, "over the limit of 512 bytes")

	// Chunked: no Content-Length, so the handler's read hits the limit.
	req, err := http.NewRequest(http.MethodPut, h.base+"/v1/rules/hot", io.MultiReader(strings.NewReader(big)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+writeToken)
	req.ContentLength = -1
	resp, err := h.client.Do(req)
	require.NoError(t, err)
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	require.Contains(t, string(data), "over the limit of 512 bytes")

	code, body = h.do(t, http.MethodPut, "/v1/rules/hot", ruleBody, bearer(writeToken))
	require.Equal(t, http.StatusOK, code, body)
	_, changes := h.rules.state()
	require.Equal(t, 1, changes)
}

// TestProbeListener: probes and metrics on their own address; the API
// address serves only the API.
func TestProbeListener(t *testing.T) {
	h := start(t, Config{ProbeListen: "127.0.0.1:0"})
	probe := "http://" + h.srv.ProbeAddr()
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := h.client.Get(probe + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		code, _ := h.do(t, http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusNotFound, code, "%s must not be on the API address", path)
	}
	resp, err := h.client.Get(probe + "/v1/status")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "the API must not be on the probe address")
}

// TestMutualTLS: a verified client certificate authenticates; one not in
// writeClients may only read; one from another CA is refused in the
// handshake; a client without a certificate can still use the token.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t, "streamd admin CA")
	other, otherKey := newCA(t, "someone else")
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	server := issue(t, ca, caKey, "streamd", false)
	writeKeyPair(t, dir, "server", server)
	writeFile(t, filepath.Join(dir, "token"), writeToken)

	h := start(t, Config{
		TLS:  &TLSConfig{CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server-key.pem"), ClientCAFile: filepath.Join(dir, "ca.pem")},
		Auth: Auth{TokenFile: filepath.Join(dir, "token"), WriteClients: []string{"ci-deployer"}},
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	client := func(cert *tls.Certificate) *http.Client {
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	deployer := issue(t, ca, caKey, "ci-deployer", true)
	viewer := issue(t, ca, caKey, "console-viewer", true)
	stranger := issue(t, other, otherKey, "ci-deployer", true)

	cases := []struct {
		name string
		cert *tls.Certificate
		hdr  http.Header
		want int // for POST /v1/savepoint; 0 means refused: a failed handshake or 401
	}{
		{"writer certificate", &deployer, nil, http.StatusOK},
		{"reader certificate", &viewer, nil, http.StatusForbidden},
		{"no certificate", nil, nil, http.StatusUnauthorized},
		{"no certificate, token", nil, bearer(writeToken), http.StatusOK},
		{"other CA", &stranger, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := client(tc.cert)
			defer c.CloseIdleConnections()
			req, err := http.NewRequest(http.MethodPost, h.base+"/v1/savepoint", nil)
			require.NoError(t, err)
			for k, v := range tc.hdr {
				req.Header[k] = v
			}
			resp, err := c.Do(req)
			if tc.want == 0 {
				// Go's client sends no certificate the server's CAs did not
				// sign, so the request arrives unauthenticated.
				if err == nil {
					resp.Body.Close()
					require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
				}
				return
			}
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, tc.want, resp.StatusCode)
			if tc.cert == &viewer {
				resp, err := c.Get(h.base + "/v1/status")
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode, "a reader certificate reads")
			}
		})
	}
	require.Equal(t, 2, *h.savepoints)
}

func TestNewRefusesBadTLS(t *testing.T) {
	_, err := New(Config{Listen: "127.0.0.1:0", TLS: &TLSConfig{CertFile: "x"}}, nil)
	require.ErrorContains(t, err, "certFile and keyFile")
	_, err = New(Config{Listen: "127.0.0.1:0", Auth: Auth{WriteClients: []string{"a"}}}, nil)
	require.ErrorContains(t, err, "writeClients need client certificates")
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key
}

var serial int64 = 100

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, client bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	if client {
		tmpl.ExtKeyUsage, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, pem.Encode(&b, &pem.Block{Type: typ, Bytes: der}))
	writeFile(t, path, b.String())
}

func writeKeyPair(t *testing.T, dir, name string, c tls.Certificate) {
	t.Helper()
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", c.Certificate[0])
	der, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	require.NoError(t, err)
	writePEM(t, filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", der)
}

// /healthz fails, with the reason, exactly while Stalled reports one.
func TestHealthzReportsStall(t *testing.T) {
	var stalled atomic.Pointer[error]
	h := start(t, Config{Stalled: func() error {
		if err := stalled.Load(); err != nil {
			return *err
		}
		return nil
	}})
	code, body := h.do(t, http.MethodGet, "/healthz", "", nil)
	require.Equal(t, http.StatusOK, code, body)
	err := errors.New("subtask w/0 has not processed for 15m0s")
	stalled.Store(&err)
	code, body = h.do(t, http.MethodGet, "/healthz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "stalled: subtask w/0 has not processed for 15m0s")
	stalled.Store(nil)
	code, _ = h.do(t, http.MethodGet, "/healthz", "", nil)
	require.Equal(t, http.StatusOK, code)
}
