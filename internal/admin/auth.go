package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/filestamp"
	"github.com/streamd/streamd/internal/promreg"
)

// Auth says who may call the API. Probes and /metrics are always open;
// read-only endpoints (/v1/status, GET /v1/rules, /v1/rulestats) need a
// read or write credential unless OpenReads is set or no credential is
// configured at all; every endpoint that changes state needs a write
// credential, and with none configured no one can change state.
type Auth struct {
	// TokenFile holds the bearer token that may change state (a Kubernetes
	// Secret mounted as a file). It is read again whenever it changes, so a
	// rotated Secret takes effect without a restart.
	TokenFile string
	// ReadTokenFile holds a bearer token for the read-only endpoints only:
	// with it, a state change is 403 Forbidden.
	ReadTokenFile string
	// OpenReads serves the read-only endpoints without a credential.
	OpenReads bool
	// WriteClients are the client-certificate names (common name or DNS
	// name) that may change state over mTLS; other verified client
	// certificates may only read. Empty means every verified client
	// certificate may change state.
	WriteClients []string
}

// role is what a request is allowed to do.
type role uint8

const (
	roleNone  role = iota // no credential presented
	roleBad               // a credential that is not valid
	roleRead              // may call read-only endpoints
	roleWrite             // may change state
)

// access is what an endpoint needs.
type access uint8

const (
	accessOpen  access = iota // probes and metrics
	accessRead                // read-only API
	accessWrite               // changes state
)

// authenticator checks requests against the configured credentials.
type authenticator struct {
	cfg           Auth
	mtls          bool // client certificates are verified by the listener
	write, read   *tokenFile
	log           *zap.Logger
	denied        *prometheus.CounterVec
	hasCredential bool
}

func newAuthenticator(cfg Auth, mtls bool, log *zap.Logger, reg prometheus.Registerer) *authenticator {
	a := &authenticator{cfg: cfg, mtls: mtls, log: log}
	if cfg.TokenFile != "" {
		a.write = &tokenFile{path: cfg.TokenFile, log: log}
	}
	if cfg.ReadTokenFile != "" {
		a.read = &tokenFile{path: cfg.ReadTokenFile, log: log}
	}
	a.hasCredential = a.write != nil || a.read != nil || mtls
	a.denied = promreg.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "streamd_admin_requests_denied_total",
		Help: "Admin API requests refused, by reason: unauthenticated (401, no or invalid credential) or forbidden (403, a read-only credential on an endpoint that changes state).",
	}, []string{"reason"})
	return a
}

// check reports whether r may proceed; when not, it has written the 401 or
// 403 response.
func (a *authenticator) check(w http.ResponseWriter, r *http.Request, need access) bool {
	if need == accessOpen {
		return true
	}
	if need == accessRead && (a.cfg.OpenReads || !a.hasCredential) {
		return true
	}
	got := a.authenticate(r)
	switch {
	case got == roleWrite, got == roleRead && need == accessRead:
		return true
	case got == roleRead:
		a.denied.WithLabelValues("forbidden").Inc()
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "forbidden: this credential may only read; changing state needs the write token (http.auth.tokenFile) or a client certificate listed in http.auth.writeClients"})
		return false
	}
	a.denied.WithLabelValues("unauthenticated").Inc()
	msg := "unauthenticated: send Authorization: Bearer <token>"
	switch {
	case !a.hasCredential || need == accessWrite && a.write == nil && !a.mtls:
		msg = "unauthenticated: no credential that may change state is configured (http.auth.tokenFile or client certificates with http.tls.clientCAFile), so no one can"
	case got == roleBad:
		msg = "unauthenticated: the credential is not valid"
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="streamd"`)
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": msg})
	return false
}

// authenticate finds the role of r's credential: a bearer token, or a
// verified client certificate.
func (a *authenticator) authenticate(r *http.Request) role {
	if h := r.Header.Values("Authorization"); len(h) > 0 {
		if len(h) > 1 {
			return roleBad
		}
		scheme, token, ok := strings.Cut(h[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return roleBad
		}
		token = strings.TrimSpace(token)
		// Both files are compared, whatever the first says, so timing
		// does not tell which token a guess came close to.
		isWrite := a.write.matches(token)
		isRead := a.read.matches(token)
		switch {
		case isWrite:
			return roleWrite
		case isRead:
			return roleRead
		}
		return roleBad
	}
	if a.mtls && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		if clientMayWrite(r.TLS.VerifiedChains[0][0], a.cfg.WriteClients) {
			return roleWrite
		}
		return roleRead
	}
	return roleNone
}

func clientMayWrite(cert *x509.Certificate, allowed []string) bool {
	if len(allowed) == 0 {
		return true
	}
	return slices.Contains(allowed, cert.Subject.CommonName) || slices.ContainsFunc(cert.DNSNames, func(n string) bool { return slices.Contains(allowed, n) })
}

// tokenFile is a bearer token kept in a file and read again when the
// file changes (size, modification time or inode, as a Kubernetes Secret
// update swaps a symlink). Only a SHA-256 of the token is kept, and it is
// compared in constant time.
type tokenFile struct {
	path string
	log  *zap.Logger

	mu      sync.Mutex
	stamp   filestamp.Stamp
	sum     [sha256.Size]byte
	valid   bool
	lastErr string
}

// maxTokenBytes bounds a token file: a token is a short secret, and a
// mistaken mount of a large file must not be read whole on every request.
const maxTokenBytes = 4096

// matches reports whether token is the file's token. A nil tokenFile, an
// unreadable or empty file match nothing.
func (f *tokenFile) matches(token string) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	f.refresh()
	sum, valid := f.sum, f.valid
	f.mu.Unlock()
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], sum[:]) == 1 && valid && token != ""
}

// refresh re-reads the file when it changed; f.mu is held.
func (f *tokenFile) refresh() {
	st, err := os.Stat(f.path)
	if err != nil {
		f.fail(fmt.Errorf("stat token file: %w", err))
		return
	}
	stamp := filestamp.Of(st)
	if f.stamp == stamp && (f.valid || f.lastErr != "") {
		return
	}
	f.stamp = stamp
	if st.Size() > maxTokenBytes {
		f.fail(fmt.Errorf("read token file: %d bytes, over the limit of %d", st.Size(), maxTokenBytes))
		return
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		f.fail(fmt.Errorf("read token file: %w", err))
		return
	}
	token := bytes.TrimSpace(data)
	if len(token) == 0 {
		f.fail(errors.New("read token file: the file is empty"))
		return
	}
	f.sum, f.valid = sha256.Sum256(token), true
	if f.lastErr != "" {
		f.log.Info("admin token file readable again", zap.String("file", f.path))
	}
	f.lastErr = ""
}

// fail invalidates the token and logs the error once per distinct error,
// never the file's content.
func (f *tokenFile) fail(err error) {
	f.valid = false
	f.sum = [sha256.Size]byte{}
	if msg := err.Error(); msg != f.lastErr {
		f.lastErr = msg
		f.log.Error("admin token file unusable; requests with this token are refused", zap.String("file", f.path), zap.Error(err))
	}
}

// authDenied is the denial counter for reason; for tests.
func (s *Server) authDenied(reason string) prometheus.Counter {
	return s.auth.denied.WithLabelValues(reason)
}
