package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/streamd/streamd/internal/filestamp"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/rules"
	"github.com/streamd/streamd/pkg/rules/control"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// DefaultMaxRuleBytes bounds a rule body in PUT /v1/rules/{id}.
const DefaultMaxRuleBytes = 1 << 20

// Config wires the server to the pipeline.
type Config struct {
	// Listen is the address of the API, e.g. "127.0.0.1:9249".
	Listen string
	// ProbeListen, when set, serves /healthz, /readyz and /metrics on an
	// address of their own (for the kubelet and Prometheus), and Listen
	// serves only the /v1 API, which can then stay on loopback or behind
	// a NetworkPolicy. Empty serves everything on Listen.
	ProbeListen string
	// Auth says who may read and who may change state.
	Auth Auth
	// TLS, when set, serves the API over HTTPS, with client certificates
	// verified against TLS.ClientCAFile (mTLS) when that is set.
	TLS *TLSConfig
	// MaxRuleBytes bounds a request body; larger ones get 413. Default
	// DefaultMaxRuleBytes.
	MaxRuleBytes int64
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Registerer receives the server's own metrics; nil registers none.
	Registerer prometheus.Registerer
	// Ready reports readiness for /readyz.
	Ready func() bool
	// Stalled, when set, reports why the process is stuck, nil while it
	// makes progress: /healthz (liveness) answers 503 with the reason.
	Stalled func() error
	// Status returns the JSON body of /v1/status.
	Status func() any
	// Savepoint, when set, serves POST /v1/savepoint: take a savepoint now.
	Savepoint func(ctx context.Context) (int64, error)
	// Rules, when set, serves /v1/rules.
	Rules RuleAPI
}

// TLSConfig is the API's server certificate and, for mTLS, the CAs that
// sign client certificates.
type TLSConfig struct {
	// CertFile and KeyFile are the PEM server certificate and key; they
	// are read again when they change, so a renewed certificate is served
	// without a restart.
	CertFile, KeyFile string
	// ClientCAFile, when set, verifies client certificates (a client
	// without one can still use a bearer token).
	ClientCAFile string
}

// RuleAPI is what /v1/rules needs from the runtime's rule manager.
type RuleAPI interface {
	Stages() []string
	List(stage string) ([]*rules.Rule, error)
	Put(ctx context.Context, stage string, r *rules.Rule) error
	Delete(ctx context.Context, stage, id string) error
	Stats(stage string) []rules.RuleStats
}

// Server is the admin HTTP server: the API listener and, when configured,
// the probe listener.
type Server struct {
	srv   *http.Server
	ln    net.Listener
	probe *http.Server
	pln   net.Listener
	auth  *authenticator
	log   *zap.Logger
}

// guard registers handlers behind the authenticator: GET and HEAD
// patterns are read-only, every other method changes state, so an
// endpoint added later is protected by default.
type guard struct {
	mux      *http.ServeMux
	auth     *authenticator
	maxBytes int64
}

// HandleFunc registers h for pattern ("METHOD /path").
func (g guard) HandleFunc(pattern string, h http.HandlerFunc) {
	need := accessWrite
	if m, _, _ := strings.Cut(pattern, " "); m == http.MethodGet || m == http.MethodHead {
		need = accessRead
	}
	g.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if !g.auth.check(w, r, need) {
			return
		}
		if need == accessWrite {
			if r.ContentLength > g.maxBytes {
				writeTooLarge(w, g.maxBytes)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, g.maxBytes)
		}
		h(w, r)
	})
}

func writeTooLarge(w http.ResponseWriter, limit int64) {
	writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{
		"error": fmt.Sprintf("request body is over the limit of %d bytes (http.maxRuleBytes)", limit),
	})
}

// New listens on cfg.Listen (and cfg.ProbeListen); serving starts with Serve.
func New(cfg Config, logger *zap.Logger) (*Server, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if cfg.MaxRuleBytes <= 0 {
		cfg.MaxRuleBytes = DefaultMaxRuleBytes
	}
	tlsCfg, err := serverTLS(cfg.TLS)
	if err != nil {
		return nil, err
	}
	if cfg.TLS == nil && len(cfg.Auth.WriteClients) > 0 {
		return nil, errors.New("new admin server: writeClients need client certificates: set tls with a clientCAFile")
	}
	auth := newAuthenticator(cfg.Auth, tlsCfg != nil && tlsCfg.ClientCAs != nil, logger, cfg.Registerer)

	probes := http.NewServeMux()
	probes.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(logger)}))
	probes.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if cfg.Stalled != nil {
			if err := cfg.Stalled(); err != nil {
				http.Error(w, "stalled: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	probes.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if cfg.Ready == nil || !cfg.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ready")
	})
	mux := http.NewServeMux()
	if cfg.ProbeListen == "" {
		mux.Handle("GET /metrics", probes)
		mux.Handle("GET /healthz", probes)
		mux.Handle("GET /readyz", probes)
	}
	g := guard{mux: mux, auth: auth, maxBytes: cfg.MaxRuleBytes}
	g.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(cfg.Status())
	})
	if cfg.Savepoint != nil {
		g.HandleFunc("POST /v1/savepoint", func(w http.ResponseWriter, r *http.Request) {
			id, err := cfg.Savepoint(r.Context())
			w.Header().Set("Content-Type", "application/json")
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]int64{"savepoint": id})
		})
	}
	if cfg.Rules != nil {
		registerRules(g, cfg.Rules)
	}
	s := &Server{log: logger, auth: auth}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(logger)}
	if cfg.ProbeListen != "" {
		pln, err := net.Listen("tcp", cfg.ProbeListen)
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("listen on %s: %w", cfg.ProbeListen, err)
		}
		s.pln = pln
		s.probe = &http.Server{Handler: probes, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(logger)}
	}
	return s, nil
}

// serverTLS builds the listener's TLS configuration, or nil without TLS.
func serverTLS(c *TLSConfig) (*tls.Config, error) {
	if c == nil {
		return nil, nil
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("new admin server: tls needs certFile and keyFile")
	}
	certs := &certFile{cert: c.CertFile, key: c.KeyFile}
	if _, err := certs.get(nil); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("new admin server: read clientCAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("new admin server: clientCAFile %s holds no PEM certificate", c.ClientCAFile)
		}
		// A client without a certificate may still present a bearer token.
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.ClientCAs = pool
	}
	return cfg, nil
}

// certFile serves a certificate and key pair, loaded again when either
// file changes.
type certFile struct {
	cert, key string

	mu    sync.Mutex
	stamp [2]filestamp.Stamp
	pair  *tls.Certificate
}

func (c *certFile) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var stamp [2]filestamp.Stamp
	for i, p := range []string{c.cert, c.key} {
		st, err := os.Stat(p)
		if err != nil {
			if c.pair != nil {
				return c.pair, nil // keep serving the last good pair
			}
			return nil, fmt.Errorf("load admin certificate: %w", err)
		}
		stamp[i] = filestamp.Of(st)
	}
	if c.pair != nil && stamp == c.stamp {
		return c.pair, nil
	}
	pair, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		if c.pair != nil {
			return c.pair, nil
		}
		return nil, fmt.Errorf("load admin certificate: %w", err)
	}
	c.pair, c.stamp = &pair, stamp
	return c.pair, nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// ProbeAddr is the address of the probe listener, or "" without one.
func (s *Server) ProbeAddr() string {
	if s.pln == nil {
		return ""
	}
	return s.pln.Addr().String()
}

// Serve serves until Shutdown.
func (s *Server) Serve() error {
	errc := make(chan error, 1)
	if s.probe != nil {
		go func() { errc <- s.probe.Serve(s.pln) }()
	} else {
		errc <- http.ErrServerClosed
	}
	err := s.srv.Serve(s.ln)
	perr := <-errc
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		err = perr
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve admin http: %w", err)
	}
	return nil
}

// Shutdown stops the server, waiting for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if s.probe != nil {
		err = errors.Join(err, s.probe.Shutdown(ctx))
	}
	if err != nil {
		return fmt.Errorf("shut down admin http: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// router registers handlers; guard puts them behind the authenticator.
type router interface {
	HandleFunc(pattern string, h http.HandlerFunc)
}

func registerRules(mux router, api RuleAPI) {
	// stage picks the rule stage: ?stage=, or the only one.
	stage := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		if s := r.URL.Query().Get("stage"); s != "" {
			return s, true
		}
		stages := api.Stages()
		if len(stages) == 1 {
			return stages[0], true
		}
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "several rule stages: name one with ?stage=", "stages": stages})
		return "", false
	}
	mux.HandleFunc("GET /v1/rules", func(w http.ResponseWriter, r *http.Request) {
		out := map[string][]*rules.Rule{}
		for _, s := range api.Stages() {
			list, err := api.List(s)
			if err != nil {
				writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
				return
			}
			out[s] = list
		}
		writeJSON(w, http.StatusOK, out)
	})
	// Per-rule counters and states, with the reason of a quarantine.
	mux.HandleFunc("GET /v1/rulestats", func(w http.ResponseWriter, r *http.Request) {
		out := map[string][]rules.RuleStats{}
		for _, s := range api.Stages() {
			out[s] = api.Stats(s)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /v1/rules/{id}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := stage(w, r)
		if !ok {
			return
		}
		list, err := api.List(st)
		if err != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		for _, rule := range list {
			if rule.ID == r.PathValue("id") {
				writeJSON(w, http.StatusOK, rule)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no rule %q", r.PathValue("id"))})
	})
	mux.HandleFunc("PUT /v1/rules/{id}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := stage(w, r)
		if !ok {
			return
		}
		body, err := io.ReadAll(r.Body) // bounded by the guard's MaxBytesReader
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeTooLarge(w, tooLarge.Limit)
				return
			}
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		rule, err := rules.Parse(body, control.FormatOf(body))
		if err == nil && rule.ID != r.PathValue("id") {
			err = fmt.Errorf("the body's id %q does not match the path's %q", rule.ID, r.PathValue("id"))
		}
		if err == nil {
			err = api.Put(r.Context(), st, rule)
		}
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, map[string]any{"id": rule.ID, "version": rule.Version, "stage": st})
		case errors.Is(err, operator.ErrStaleRule):
			// An older version, or another document under the version in
			// place: the rule in force is not what the caller thinks.
			writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		case errors.Is(err, operator.ErrNoRuleStage):
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		case errors.Is(err, operator.ErrNotRunning):
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		default:
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		}
	})
	mux.HandleFunc("DELETE /v1/rules/{id}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := stage(w, r)
		if !ok {
			return
		}
		err := api.Delete(r.Context(), st, r.PathValue("id"))
		switch {
		case err == nil:
			w.WriteHeader(http.StatusNoContent)
		case errors.Is(err, rules.ErrNoRule), errors.Is(err, operator.ErrNoRuleStage):
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		default:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		}
	})
}
