// Package duckdb reads files back with DuckDB in tests, so what streamd
// writes is checked by an independent reader rather than by the library that
// wrote it. It runs scripts/duckdb/query.mjs with Node.js; run
// scripts/install-test-deps.sh once to install its dependencies.
package duckdb
