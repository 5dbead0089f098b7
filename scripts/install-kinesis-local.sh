#!/usr/bin/env bash
# Installs kinesis-local, a local Kinesis API server (a kinesis-mock build),
# into .cache/kinesis-local for the Kinesis source and sink tests and for
# scripts/kinesis-dev.sh. Safe to run repeatedly: it does nothing when the
# pinned version is already installed.
set -euo pipefail

version="0.6.2"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.cache/kinesis-local"
pkg="$dir/node_modules/kinesis-local"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "install-kinesis-local: installing nodejs and npm" >&2
	export DEBIAN_FRONTEND=noninteractive
	sudo_cmd=""
	if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
	$sudo_cmd apt-get update -qq
	$sudo_cmd apt-get install -y -qq nodejs npm
fi

have="$(node -p "require('$pkg/package.json').version" 2>/dev/null || true)"
if [ "$have" != "$version" ]; then
	echo "install-kinesis-local: installing kinesis-local@$version" >&2
	mkdir -p "$dir"
	[ -f "$dir/package.json" ] || echo '{"name":"streamd-kinesis-local","private":true}' >"$dir/package.json"
	(cd "$dir" && npm install --no-audit --no-fund --loglevel=error --save-exact "kinesis-local@$version")
fi
echo "install-kinesis-local: ok ($pkg)" >&2
