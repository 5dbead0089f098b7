// Package parquetcheck reads Parquet files back in tests with three readers
// that share no code with parquet-go, the library streamd writes with:
// DuckDB (parquet_metadata, parquet_schema, read_parquet), hyparquet (a
// pure JavaScript reader that, like parquet-mr in Spark and Hive, finds a
// column chunk by its path_in_schema) and Apache Arrow's Rust reader
// (arrow-rs as npm parquet-wasm). Check compares what every reader sees —
// schema, every column chunk's path, types, encodings, codec, statistics and
// row counts, and every value — with what the test wrote.
//
// The readers run under Node.js from scripts/duckdb and
// scripts/parquet-readers, installed by scripts/install-test-deps.sh (make
// deps). Without them a test is skipped, or fails when CI is set.
package parquetcheck
