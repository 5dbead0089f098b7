#!/usr/bin/env bash
# Installs what the test suite needs beyond Go: Node.js and the DuckDB reader
# used to read Parquet output back (scripts/duckdb). Safe to run repeatedly:
# it does nothing when everything is already in place.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
harness="$root/scripts/duckdb"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "install-test-deps: installing nodejs and npm" >&2
	export DEBIAN_FRONTEND=noninteractive
	sudo_cmd=""
	if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
	$sudo_cmd apt-get update -qq
	$sudo_cmd apt-get install -y -qq nodejs npm
fi

# The stamp records which lock file node_modules was installed from, so a
# changed lock file triggers a clean reinstall and an unchanged one none.
stamp="$harness/node_modules/.package-lock.sha256"
want="$(sha256sum "$harness/package-lock.json" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ ! -d "$harness/node_modules/@duckdb/node-api" ] || [ "$want" != "$have" ]; then
	echo "install-test-deps: npm ci in scripts/duckdb" >&2
	(cd "$harness" && npm ci --no-audit --no-fund --loglevel=error)
	echo "$want" >"$stamp"
fi

# Fail here rather than in the middle of the tests if the native binding
# cannot load on this machine.
(cd "$harness" && node query.mjs "SELECT 42 AS answer" >/dev/null)
echo "install-test-deps: ok" >&2
