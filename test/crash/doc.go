// Package crash proves exactly-once recovery with real process kills. Its
// tests build the streamd binary, run a Kafka (or Kinesis) → window →
// Parquet pipeline once undisturbed as the reference, then run it again
// while killing the process with SIGKILL many times at random moments and
// restarting it from its checkpoints, and finally require that both runs
// published exactly the same window results, row for row, read back with
// DuckDB: no duplicates, nothing missing.
//
// The input lives in a server that outlives every daemon process (Kafka in
// process, or kinesis-local), holds a fixed, deterministic set of sensor
// records whose event times never fall behind the watermark, and ends every
// partition with a sentinel record far enough ahead to close every window,
// so the expected result is known exactly and is also computed by the test.
//
// TestFaultMatrix does the same for every shipped example pipeline — the
// Kafka logs to Parquet pipeline, the Kinesis sensor alerts, the
// line-monitoring demo, each run from its own file with its checkpoint
// block — under every fault that applies to it: kill -9 and SIGTERM at
// random moments, a second process joining the consumer group, a 20 s
// broker outage, S3 errors, resets, lost answers and delays and a 20 s S3
// outage, a full output disk; with output in a local directory and in
// MinIO. Each cell's published rows are compared with an uninterrupted
// reference run of the same input: 0 lost, 0 duplicated.
//
// The short forms (20 kills of the crash tests, a few cells of the matrix
// with 3 kills) run with the other tests; the long form is
// scripts/crash-test.sh [kills], every matrix cell included. CRASH_KILLS
// and MATRIX_KILLS set the kills, CRASH_SEED the random seed that picks the
// kill moments, MATRIX_CELLS the matrix cells.
package crash
