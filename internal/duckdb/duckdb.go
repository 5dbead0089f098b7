package duckdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/streamd/streamd/internal/modroot"
)

// installHint is the message tests give when the harness is not installed.
const installHint = "duckdb harness not installed: run scripts/install-test-deps.sh"

// Query runs sql in an in-memory DuckDB and returns the result rows, one map
// per row keyed by column name. Values are decoded as encoding/json decodes
// them: numbers are float64 (integers outside ±2^53 arrive as decimal
// strings), timestamps are RFC 3339 strings with microseconds in UTC, and
// NULL is nil.
//
// When the harness is not installed the test is skipped, or fails when the
// CI environment variable is set, so CI cannot silently skip the checks.
func Query(t testing.TB, sql string) []map[string]any {
	t.Helper()
	script, err := harness()
	if err != nil {
		missing(t, err)
		return nil
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, err)
		return nil
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(node, script, sql)
	cmd.Dir = filepath.Dir(script)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("duckdb query %q: %v: %s", sql, err, stderr.String())
		return nil
	}
	var rows []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("duckdb query %q: decode output: %v", sql, err)
	}
	return rows
}

func missing(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (%v)", installHint, err)
	}
	t.Skipf("%s (%v)", installHint, err)
}

// harness finds scripts/duckdb/query.mjs under the module root.
func harness() (string, error) {
	dir, err := modroot.Dir()
	if err != nil {
		return "", err
	}
	script := filepath.Join(dir, "scripts", "duckdb", "query.mjs")
	if _, err := os.Stat(filepath.Join(dir, "scripts", "duckdb", "node_modules", "@duckdb", "node-api")); err != nil {
		return "", errors.New("find harness: scripts/duckdb/node_modules is missing")
	}
	return script, nil
}
