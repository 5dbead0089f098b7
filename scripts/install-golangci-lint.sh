#!/usr/bin/env bash
# Installs golangci-lint at the pinned version into .cache/bin, built from
# source with the Go toolchain through the module proxy (no prebuilt
# binary download). Safe to run repeatedly: it does nothing when the
# pinned version is already there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="v2.15.0"
bin="$root/.cache/bin"
mkdir -p "$bin"
if [ -x "$bin/golangci-lint" ] && "$bin/golangci-lint" version 2>/dev/null | grep -q "version ${version#v} "; then
	exit 0
fi
echo "install-golangci-lint: go install golangci-lint $version" >&2
GOBIN="$bin" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
"$bin/golangci-lint" version >&2
