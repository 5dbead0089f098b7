#!/usr/bin/env bash
# Installs kcat (formerly kafkacat), the Kafka command-line client used by
# the Kafka source test that produces its input from the CLI.
#
# Idempotent: does nothing when kcat (or the older kafkacat name) is on PATH.
set -euo pipefail

if command -v kcat >/dev/null 2>&1; then
	echo "kcat already installed: $(command -v kcat)"
	exit 0
fi
if command -v kafkacat >/dev/null 2>&1; then
	echo "kafkacat already installed: $(command -v kafkacat) (tests accept it as kcat)"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq kcat
echo "kcat installed: $(command -v kcat)"
