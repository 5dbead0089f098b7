#!/usr/bin/env bash
# Runs the local Kafka-protocol development server (internal/devserver/kafka:
# three in-memory brokers on 127.0.0.1:19092-19094) in the background.
#
#   scripts/kafka-dev.sh start [-topic logs:4 ...]   build, start, wait for the port
#   scripts/kafka-dev.sh stop                        stop the server started here
#   scripts/kafka-dev.sh status                      running or not
#
# The PID goes to .cache/kafka-dev.pid and output to .cache/kafka-dev.log;
# stop signals that PID only. KAFKA_DEV_PORT changes the first port.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache"
bin="$cache/bin/kafka-dev"
pidfile="$cache/kafka-dev.pid"
log="$cache/kafka-dev.log"
portfile="$cache/kafka-dev.port"
port="${KAFKA_DEV_PORT:-$(cat "$portfile" 2>/dev/null || echo 19092)}"

running() {
	[ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

cmd="${1:-status}"
shift || true
case "$cmd" in
start)
	if running; then
		echo "kafka dev server already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"
		exit 0
	fi
	mkdir -p "$cache/bin"
	(cd "$root" && go build -o "$bin" ./internal/devserver/kafka)
	nohup "$bin" -port "$port" "$@" >"$log" 2>&1 &
	echo $! >"$pidfile"
	echo "$port" >"$portfile"
	for _ in $(seq 1 100); do
		if port_open; then
			echo "kafka dev server running (pid $(cat "$pidfile")): brokers 127.0.0.1:$port,127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2))"
			exit 0
		fi
		if ! running; then
			echo "kafka dev server exited; log:" >&2
			cat "$log" >&2
			rm -f "$pidfile"
			exit 1
		fi
		sleep 0.1
	done
	echo "kafka dev server did not open port $port within 10s; see $log" >&2
	exit 1
	;;
stop)
	if ! running; then
		echo "kafka dev server not running"
		rm -f "$pidfile"
		exit 0
	fi
	pid=$(cat "$pidfile")
	kill -TERM "$pid"
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
	fi
	rm -f "$pidfile"
	echo "kafka dev server stopped"
	;;
status)
	if running; then
		echo "kafka dev server running (pid $(cat "$pidfile")) on 127.0.0.1:$port"
	else
		echo "kafka dev server not running"
		exit 1
	fi
	;;
*)
	echo "usage: $0 start [-topic name:partitions ...] | stop | status" >&2
	exit 2
	;;
esac
