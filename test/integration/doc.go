// Package integration holds the end-to-end tests of the connectors: real
// pipelines, built from YAML exactly as streamd runs them, against real
// servers (Kafka on kfake, kinesis-local, MinIO) started by the tests. Its
// results are checked value by value against what was produced, Parquet
// output through DuckDB. It also validates every pipeline in examples/ and
// holds the Kafka → Parquet on S3 throughput benchmark.
//
// A test whose server is not installed is skipped, or fails with the
// install command when the CI environment variable is set.
package integration
