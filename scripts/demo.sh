#!/usr/bin/env bash
# The README's demo command (`make demo`): start Kafka, Redis and Prometheus on loopback, run
# `cardiostream demo` (simulated devices -> processor -> inference -> alarms), and stop the
# infrastructure again when the demo ends or is interrupted (Ctrl-C).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
say() { echo "[make demo] $*" >&2; }
cli() { "$PYTHON" -m cardiostream.cli "$@"; }
source "$REPO/scripts/ensure-deps.sh"

# A second Ctrl-C during shutdown must not leave the broker running: ignore it while stopping.
trap 'trap "" INT TERM; cli infra down' EXIT
trap 'exit 130' INT TERM
cli infra up --with-prometheus || exit 1
cli demo "$@"
