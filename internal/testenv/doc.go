// Package testenv starts the real servers that integration tests talk to
// (Kafka, Kinesis, S3-compatible stores) as subprocesses or in-process on
// loopback, and stops them when the test ends. Each server lives in its own
// file, and its exported names start with the server's name. A test whose
// server is not installed is skipped, or fails with the install command when
// the CI environment variable is set.
package testenv
