#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's packages so the alert-rule
# tests and the end-to-end dashboard test in deploy/ can run.
#
# Idempotent: does nothing when both binaries are already on PATH. The
# Debian package registers a system service; the tests start their own
# Prometheus on a loopback port with a temporary config, so a service the
# package may have started is stopped again (by the PID in its pidfile) and
# never left running.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
	echo "prometheus and promtool already installed: $(command -v prometheus), $(command -v promtool)"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Captured first: grep -q closing the pipe early would fail it under pipefail.
policy_out=$(apt-cache policy prometheus)
if ! grep -q 'Candidate: [0-9]' <<<"$policy_out"; then
	echo "install-prometheus: no 'prometheus' package available from apt" >&2
	exit 1
fi

# policy-rc.d exit 101 tells invoke-rc.d not to start services during this
# install; it is removed again on exit so other packages behave as usual.
policy=/usr/sbin/policy-rc.d
created_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 0755 "$policy"
	created_policy=1
fi
cleanup() {
	if [ -n "$created_policy" ]; then
		$SUDO rm -f "$policy"
	fi
}
trap cleanup EXIT

$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# Belt and braces: if a service started anyway, stop exactly that process.
for pidfile in /run/prometheus/prometheus.pid /run/prometheus.pid /var/run/prometheus.pid; do
	if [ -s "$pidfile" ]; then
		pid=$(cat "$pidfile")
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			echo "stopping prometheus service started by the package (pid $pid)"
			$SUDO kill -TERM "$pid" || true
		fi
	fi
done

command -v prometheus >/dev/null
command -v promtool >/dev/null
echo "installed: $(prometheus --version 2>&1 | head -n1)"
