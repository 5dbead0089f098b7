#!/usr/bin/env bash
# Installs what the test suite needs beyond Go: Node.js and the Parquet
# readers used to read output back: DuckDB (scripts/duckdb), hyparquet and
# Apache Arrow's Rust reader, parquet-wasm (scripts/parquet-readers), at the
# versions of their package-lock.json files. Safe to run repeatedly: it does
# nothing when everything is already in place.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "install-test-deps: installing nodejs and npm" >&2
	export DEBIAN_FRONTEND=noninteractive
	sudo_cmd=""
	if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
	$sudo_cmd apt-get update -qq
	$sudo_cmd apt-get install -y -qq nodejs npm
fi

# install_harness DIR PACKAGE runs npm ci in DIR unless node_modules holds
# PACKAGE and was installed from the current lock file. The stamp records
# which lock file node_modules was installed from, so a changed lock file
# triggers a clean reinstall and an unchanged one none.
install_harness() {
	local harness="$root/$1" probe="$2"
	local stamp="$harness/node_modules/.package-lock.sha256"
	local want have
	want="$(sha256sum "$harness/package-lock.json" | cut -d' ' -f1)"
	have="$(cat "$stamp" 2>/dev/null || true)"
	if [ ! -d "$harness/node_modules/$probe" ] || [ "$want" != "$have" ]; then
		echo "install-test-deps: npm ci in $1" >&2
		(cd "$harness" && npm ci --no-audit --no-fund --loglevel=error)
		echo "$want" >"$stamp"
	fi
}
install_harness scripts/duckdb @duckdb/node-api
install_harness scripts/parquet-readers parquet-wasm

# Fail here rather than in the middle of the tests if a reader cannot load
# on this machine (DuckDB's native binding, parquet-wasm's WebAssembly).
(cd "$root/scripts/duckdb" && node query.mjs "SELECT 42 AS answer" >/dev/null)
(cd "$root/scripts/parquet-readers" && node -e "await import('parquet-wasm'); await import('hyparquet'); await import('hyparquet-compressors'); await import('apache-arrow')" --input-type=module)
echo "install-test-deps: ok" >&2
