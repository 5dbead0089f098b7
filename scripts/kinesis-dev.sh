#!/usr/bin/env bash
# Starts or stops a local Kinesis server (kinesis-local) for development:
# plain HTTP on 127.0.0.1:4567 (KINESIS_DEV_PORT), TLS on the next port.
# Point a pipeline at it with `endpoint: http://127.0.0.1:4567` and any
# credentials (for example AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=dev).
#   scripts/kinesis-dev.sh start|stop|status
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache"
pkg="$cache/kinesis-local/node_modules/kinesis-local"
pidfile="$cache/kinesis-dev.pid"
logfile="$cache/kinesis-dev.log"
port="${KINESIS_DEV_PORT:-4567}"

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "${1:-}" in
start)
	if running; then
		echo "kinesis-dev: already running (pid $(cat "$pidfile")) on http://127.0.0.1:$port"
		exit 0
	fi
	bash "$root/scripts/install-kinesis-local.sh"
	mkdir -p "$cache"
	(
		cd "$pkg"
		KINESIS_MOCK_CERT_PATH="$pkg/server.json" \
			KINESIS_MOCK_PLAIN_PORT="$port" \
			KINESIS_MOCK_TLS_PORT="$((port + 1))" \
			CREATE_STREAM_DURATION=200ms DELETE_STREAM_DURATION=200ms \
			MERGE_SHARDS_DURATION=200ms SPLIT_SHARD_DURATION=200ms \
			UPDATE_SHARD_COUNT_DURATION=200ms \
			nohup node main.js >"$logfile" 2>&1 &
		echo $! >"$pidfile"
	)
	for _ in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "kinesis-dev: running (pid $(cat "$pidfile")) on http://127.0.0.1:$port, log $logfile"
			exit 0
		fi
		running || { echo "kinesis-dev: exited, see $logfile" >&2; exit 1; }
		sleep 0.1
	done
	echo "kinesis-dev: not listening after 30s, see $logfile" >&2
	exit 1
	;;
stop)
	if running; then
		kill "$(cat "$pidfile")"
		echo "kinesis-dev: stopped pid $(cat "$pidfile")"
	else
		echo "kinesis-dev: not running"
	fi
	rm -f "$pidfile"
	;;
status)
	if running; then echo "kinesis-dev: running (pid $(cat "$pidfile"))"; else echo "kinesis-dev: not running"; exit 1; fi
	;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
