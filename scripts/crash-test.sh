#!/usr/bin/env bash
# Long form of the crash harness (test/crash): the reference run, then the
# same input with [kills] SIGKILLs at random moments (default 200) and
# restarts from checkpoints, for Kafka and Kinesis; the published Parquet
# output must equal the reference row for row. CRASH_SEED=<n> replays a
# run's kill moments; CRASH_KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
CRASH_KILLS="${1:-200}" exec go test -run TestCrash -timeout 60m -v ./test/crash/
