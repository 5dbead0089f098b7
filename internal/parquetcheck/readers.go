package parquetcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/streamd/streamd/internal/modroot"
)

// installHint is the message tests give when a reader is not installed.
const installHint = "parquet readers not installed: run scripts/install-test-deps.sh (make deps)"

// File is what one reader sees of one Parquet file.
type File struct {
	Path      string     `json:"path"`
	Error     string     `json:"error"`
	NumRows   int64      `json:"numRows"`
	CreatedBy *string    `json:"createdBy"`
	Schema    []Leaf     `json:"schema"`
	RowGroups []RowGroup `json:"rowGroups"`
}

// Leaf is one leaf column of a file's schema. Readers fill what they
// expose: hyparquet the Parquet types, arrow the Arrow type, DuckDB the
// Parquet types and its own type.
type Leaf struct {
	Name       string  `json:"name"`
	Physical   string  `json:"physical"`
	Repetition *string `json:"repetition"`
	Logical    *string `json:"logical"`
	Arrow      string  `json:"arrow"`
	DuckDB     string  `json:"duckdb"`
}

// RowGroup is one row group: its column chunks' metadata and its rows,
// each value in the canonical form of Canon (nil for null).
type RowGroup struct {
	NumRows int64       `json:"numRows"`
	Columns []Chunk     `json:"columns"`
	Rows    [][]*string `json:"rows"`
	// Sorting is the row group's sorting_columns (hyparquet only).
	Sorting []SortingColumn `json:"sorting"`
}

// SortingColumn is one entry of a row group's sorting_columns.
type SortingColumn struct {
	Column     int  `json:"column"`
	Descending bool `json:"descending"`
	NullsFirst bool `json:"nullsFirst"`
}

// Chunk is the metadata of one column chunk. Fields a reader does not
// expose stay zero (arrow has no statistics or physical type).
type Chunk struct {
	Path      []string `json:"path"`
	Physical  string   `json:"physical"`
	Encodings []string `json:"encodings"`
	Codec     string   `json:"codec"`
	NumValues int64    `json:"numValues"`
	Min       *string  `json:"min"`
	Max       *string  `json:"max"`
	NullCount *int64   `json:"nullCount"`
	PageTypes []string `json:"pageTypes"`
	// WantMin, WantMax and WantNulls are, for DuckDB, the statistics
	// DuckDB computes from the values it read, in its own formatting.
	WantMin   *string `json:"-"`
	WantMax   *string `json:"-"`
	WantNulls int64   `json:"-"`
}

// Available reports why the readers cannot run, or nil when they can.
func Available() error {
	root, err := modroot.Dir()
	if err != nil {
		return err
	}
	for _, p := range []string{
		"scripts/parquet-readers/node_modules/hyparquet",
		"scripts/parquet-readers/node_modules/parquet-wasm",
		"scripts/parquet-readers/node_modules/apache-arrow",
		"scripts/duckdb/node_modules/@duckdb/node-api",
	} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			return fmt.Errorf("%s is missing", p)
		}
	}
	if _, err := exec.LookPath("node"); err != nil {
		return err
	}
	return nil
}

// Require skips the test when the readers are not installed, or fails it
// when the CI environment variable is set, so CI cannot skip the checks.
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s (%v)", installHint, err)
		}
		t.Skipf("%s (%v)", installHint, err)
	}
}

// node runs script (relative to the module root) with args and returns
// its standard output.
func node(t testing.TB, script string, args ...string) []byte {
	t.Helper()
	Require(t)
	root, err := modroot.Dir()
	if err != nil {
		t.Fatalf("run %s: %v", script, err)
	}
	path := filepath.Join(root, script)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("node", append([]string{path}, args...)...)
	cmd.Dir = filepath.Dir(path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run %s: %v: %s", script, err, stderr.String())
	}
	return stdout.Bytes()
}

// ReadJS reads files with "hyparquet" or "arrow" (parquet-wasm). A file the
// reader cannot read has Error set.
func ReadJS(t testing.TB, reader string, files []string) []File {
	t.Helper()
	var out []File
	if err := json.Unmarshal(node(t, "scripts/parquet-readers/read.mjs", append([]string{reader}, files...)...), &out); err != nil {
		t.Fatalf("read parquet with %s: decode output: %v", reader, err)
	}
	return out
}

// duckQuery runs SQL with the DuckDB harness and decodes the rows.
func duckQuery(t testing.TB, sql string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	if err := json.Unmarshal(node(t, "scripts/duckdb/query.mjs", sql), &rows); err != nil {
		t.Fatalf("duckdb query: decode output: %v", err)
	}
	return rows
}

// NestedFile is what a reader's -nested form (scripts/parquet-readers)
// sees of one file: rows as trees of their top-level columns (structs as
// objects, lists as arrays, maps as objects or {"$map": pairs}, leaves in
// Canon form), decoded with json.Number.
type NestedFile struct {
	Path      string `json:"path"`
	Error     string `json:"error"`
	NumRows   int64  `json:"numRows"`
	Schema    []Leaf `json:"schema"`
	RowGroups []struct {
		NumRows int64   `json:"numRows"`
		Columns []Chunk `json:"columns"`
		Rows    [][]any `json:"rows"`
	} `json:"rowGroups"`
}

// ReadJSNested reads files with "hyparquet" or "arrow" in their -nested
// form.
func ReadJSNested(t testing.TB, reader string, files []string) []NestedFile {
	t.Helper()
	var out []NestedFile
	dec := json.NewDecoder(bytes.NewReader(node(t, "scripts/parquet-readers/read.mjs", append([]string{reader + "-nested"}, files...)...)))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("read parquet with %s: decode output: %v", reader, err)
	}
	return out
}
