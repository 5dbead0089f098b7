#!/usr/bin/env bash
# The project's test command (after `make deps`): formatting, vet,
# golangci-lint, the race test suite, the soak test, the window
# differential tests at full size, and every benchmark compiled and run once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
# golangci-lint at the pinned version (built into .cache/bin on first use),
# with the checked-in .golangci.yml.
bash scripts/install-golangci-lint.sh
.cache/bin/golangci-lint run ./...
# The soak test (test/soak) runs on its own after the suite: it measures the
# daemon's memory, and it loads both cores. Its short form takes 2 minutes;
# CI runs the long form (10 minutes), or STREAMD_SOAK sets the duration.
go test -race -count=1 -timeout 20m $(go list ./... | grep -v '/test/soak$')
if [ -z "${STREAMD_SOAK:-}" ] && [ -n "${CI:-}" ]; then
	export STREAMD_SOAK=10m
fi
go test -count=1 -v -timeout 20m ./test/soak
# The window differential tests at full size: without the race detector they
# run ten times as many random workloads in the same time.
STREAMD_DIFF_CASES=3000 go test -count=1 -timeout 10m -run 'TestDifferentialWindows' ./pkg/operator
go test -run '^$' -bench . -benchtime 1x -timeout 10m ./... >/dev/null
echo "benchmarks: compiled and ran once"
