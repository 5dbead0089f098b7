// Package admin serves streamd's HTTP endpoints: /metrics, /healthz,
// /readyz and /v1/status.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/rules"
	"github.com/streamd/streamd/pkg/rules/control"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Config wires the server to the pipeline.
type Config struct {
	// Listen is the address, e.g. ":9249".
	Listen string
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Ready reports readiness for /readyz.
	Ready func() bool
	// Status returns the JSON body of /v1/status.
	Status func() any
	// Savepoint, when set, serves POST /v1/savepoint: take a savepoint now.
	Savepoint func(ctx context.Context) (int64, error)
	// Rules, when set, serves /v1/rules.
	Rules RuleAPI
}

// RuleAPI is what /v1/rules needs from the runtime's rule manager.
type RuleAPI interface {
	Stages() []string
	List(stage string) ([]*rules.Rule, error)
	Put(ctx context.Context, stage string, r *rules.Rule) error
	Delete(ctx context.Context, stage, id string) error
	Stats(stage string) []rules.RuleStats
}

// Server is the admin HTTP server.
type Server struct {
	srv *http.Server
	ln  net.Listener
	log *zap.Logger
}

// New listens on cfg.Listen; serving starts with Serve.
func New(cfg Config, logger *zap.Logger) (*Server, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(logger)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if cfg.Ready == nil || !cfg.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(cfg.Status())
	})
	if cfg.Savepoint != nil {
		mux.HandleFunc("POST /v1/savepoint", func(w http.ResponseWriter, r *http.Request) {
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
		registerRules(mux, cfg.Rules)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	return &Server{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ln:  ln,
		log: logger,
	}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until Shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve admin http: %w", err)
	}
	return nil
}

// Shutdown stops the server, waiting for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
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

func registerRules(mux *http.ServeMux, api RuleAPI) {
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
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
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
