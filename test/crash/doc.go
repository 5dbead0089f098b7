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
// The short form (20 kills) runs with the other tests; the long form is
// scripts/crash-test.sh [kills]. CRASH_KILLS sets the number of kills and
// CRASH_SEED the random seed that picks the kill moments.
package crash
