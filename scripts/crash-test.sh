#!/usr/bin/env bash
# Long form of the crash harness (test/crash), [kills] per cell (default 200):
#
#  - TestCrash*: a Kafka and a Kinesis → window → Parquet pipeline with
#    [kills] SIGKILLs at random moments, restarting from checkpoints;
#  - TestFaultMatrix: every shipped example pipeline × every fault that
#    applies (kill -9 and SIGTERM at random moments, a second process in the
#    consumer group, a 20 s broker outage, S3 errors and a 20 s S3 outage, a
#    full output disk) × local directory and MinIO, each against an
#    uninterrupted reference.
#
# Every published row must equal the reference: 0 lost, 0 duplicated. The
# matrix's per-cell counts are printed at the end and written to
# ${MATRIX_REPORT:-crash-matrix.txt}. CRASH_SEED=<n> replays a run's random
# moments; CRASH_KEEP=1 keeps the work directories; MATRIX_CELLS picks
# cells (example/fault/store globs, comma-separated).
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-200}"
export CRASH_KILLS="$kills" MATRIX_KILLS="$kills"
export MATRIX_REPORT="${MATRIX_REPORT:-$PWD/crash-matrix.txt}"
exec go test -run 'TestCrash|TestFaultMatrix' -timeout 8h -v ./test/crash/
