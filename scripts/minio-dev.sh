#!/usr/bin/env bash
# Runs a MinIO server for local development on 127.0.0.1:9000 (console on
# 127.0.0.1:9001) with its data in .cache/minio-data, so a pipeline with an
# s3 block can be tried by hand:
#
#   bash scripts/minio-dev.sh start   # installs MinIO first if needed
#   bash scripts/minio-dev.sh stop
#
# Credentials: MINIO_ROOT_USER / MINIO_ROOT_PASSWORD from the environment,
# default minioadmin / minioadmin. The PID is kept in .cache/minio-dev.pid
# and stop kills exactly that process.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$root/.cache"
pidfile="$cache/minio-dev.pid"
logfile="$cache/minio-dev.log"
bin="$cache/bin/minio"

running() {
	[ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

case "${1:-}" in
start)
	if running; then
		echo "minio already running (pid $(cat "$pidfile")) on http://127.0.0.1:9000"
		exit 0
	fi
	bash "$root/scripts/install-minio.sh"
	mkdir -p "$cache/minio-data"
	MINIO_ROOT_USER="${MINIO_ROOT_USER:-minioadmin}" \
		MINIO_ROOT_PASSWORD="${MINIO_ROOT_PASSWORD:-minioadmin}" \
		MINIO_UPDATE=off \
		nohup "$bin" server "$cache/minio-data" --address 127.0.0.1:9000 \
		--console-address 127.0.0.1:9001 >"$logfile" 2>&1 &
	echo $! >"$pidfile"
	for _ in $(seq 1 300); do
		if curl -fsS http://127.0.0.1:9000/minio/health/live >/dev/null 2>&1; then
			echo "minio running (pid $(cat "$pidfile")) on http://127.0.0.1:9000, log $logfile"
			exit 0
		fi
		if ! running; then
			echo "minio exited; see $logfile" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "minio not live after 30s; see $logfile" >&2
	exit 1
	;;
stop)
	if running; then
		pid=$(cat "$pidfile")
		kill "$pid"
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		echo "minio stopped (pid $pid)"
	else
		echo "minio not running"
	fi
	rm -f "$pidfile"
	;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
