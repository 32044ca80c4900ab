#!/usr/bin/env bash
# The README's test command (`make test`, also run by .ci/run):
#   1. install what is missing (Python packages only when an import fails: torch is huge;
#      Java/Maven from Debian; redis-server and prometheus are installed by `infra up`),
#   2. start Kafka, Redis and Prometheus on loopback (`cardiostream infra up --with-prometheus`),
#   3. run pytest (extra arguments are passed on, e.g. `make test ARGS="-m 'not slow'"`),
#   4. ALWAYS stop the infrastructure again, and exit with pytest's status.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python3}"
# Import this checkout's code even where an editable install points at another clone.
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
say() { echo "[make test] $*" >&2; }
cli() { "$PYTHON" -m cardiostream.cli "$@"; }

source "$REPO/scripts/ensure-deps.sh"
# `docker compose config` (tests/test_compose.py; no engine needed) when the Docker client is here.
if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1 \
        && [ -x scripts/install-docker-compose.sh ]; then
    say "installing the docker compose plugin (scripts/install-docker-compose.sh)"
    mkdir -p .run
    scripts/install-docker-compose.sh >.run/install-docker-compose.log 2>&1 \
        || say "warning: docker compose plugin not installed; see .run/install-docker-compose.log"
fi

stop_infra() {
    trap '' INT TERM          # a second Ctrl-C while stopping must not leave the broker running
    local log="$REPO/.run/infra-down.log"
    mkdir -p "$REPO/.run"
    cli infra down >"$log" 2>&1 || say "warning: infra down failed; see $log"
}
trap stop_infra EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
cli infra up --with-prometheus || { say "error: infra up failed"; exit 1; }
say "infrastructure up in $(( $(date +%s) - start )) s"

"$PYTHON" -m pytest -p no:cacheprovider "$@"
status=$?
if [ "$status" -eq 5 ]; then
    say "pytest selected no tests: nothing failed, exiting 0"
    status=0
fi
# Stop now (quietly) so that pytest's summary line stays the last line printed.
trap - EXIT
stop_infra
exit "$status"
