package admin

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// FuzzAPI sends arbitrary methods, paths, Authorization headers and
// bodies (rule documents among them) to the API. It must never panic or
// fail with a 500, and a request without the write token must never
// change a rule or take a savepoint.
func FuzzAPI(f *testing.F) {
	seeds := []struct {
		method, path, auth string
		body               []byte
	}{
		{"PUT", "/v1/rules/hot", "Bearer " + writeToken, []byte(ruleBody)},
		{"PUT", "/v1/rules/hot", "Bearer " + readToken, []byte(ruleBody)},
		{"PUT", "/v1/rules/hot?stage=alerts", "", []byte(ruleBody)},
		{"PUT", "/v1/rules/h%00t", "Bearer " + writeToken, []byte("id: h\x00t\nversion: 1\n")},
		{"PUT", "/v1/rules/k\xff", "Bearer " + writeToken, []byte("{\"id\":\"k\xff\xfe\",\"version\":1}")},
		{"PUT", "/v1/rules/x", "Bearer " + writeToken, []byte("{\"id\":\"x\",\"version\":1,\"select\":\"\xff\"}")},
		{"PUT", "/v1/rules/x", "Bearer " + writeToken, []byte("&a [*a,*a,*a,*a]")},
		{"DELETE", "/v1/rules/hot", "Bearer " + writeToken, nil},
		{"DELETE", "/v1/rules/../savepoint", "bearer " + writeToken, nil},
		{"POST", "/v1/savepoint", "Bearer  " + writeToken + " ", nil},
		{"POST", "/v1/savepoint", "Basic d3JpdGU6dG9rZW4=", nil},
		{"GET", "/v1/status", "Bearer \xff\xfe", nil},
		{"GET", "/v1/rules/%ff", "", nil},
		{"PATCH", "/v1/rules/hot", "Bearer " + writeToken, []byte("{}")},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.auth, s.body)
	}
	dir := f.TempDir()
	require.NoError(f, os.WriteFile(filepath.Join(dir, "token"), []byte(writeToken), 0o600))
	require.NoError(f, os.WriteFile(filepath.Join(dir, "read"), []byte(readToken), 0o600))
	fr := newFakeRules()
	savepoints := 0
	srv, err := New(Config{
		Listen:       "127.0.0.1:0",
		Auth:         Auth{TokenFile: filepath.Join(dir, "token"), ReadTokenFile: filepath.Join(dir, "read")},
		MaxRuleBytes: 4096,
		Status:       func() any { return map[string]int{"ok": 1} },
		Savepoint:    func(context.Context) (int64, error) { savepoints++; return 1, nil },
		Rules:        fr,
	}, zap.NewNop())
	require.NoError(f, err)
	f.Cleanup(func() { _ = srv.ln.Close() })
	h := srv.srv.Handler

	f.Fuzz(func(t *testing.T, method, path, auth string, body []byte) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://streamd"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		_, before := fr.state()
		sp := savepoints
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Less(t, rec.Code, 500, "%s %s: %s", method, path, rec.Body.String())
		_, after := fr.state()
		scheme, token, _ := strings.Cut(auth, " ")
		if !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) != writeToken {
			require.Equal(t, before, after, "a request without the write token changed a rule")
			require.Equal(t, sp, savepoints, "a request without the write token took a savepoint")
			if after == before && rec.Code == http.StatusOK && method != http.MethodGet && method != http.MethodHead {
				t.Fatalf("%s %s answered 200 without the write token", method, path)
			}
		}
	})
}
