#!/usr/bin/env bash
# Install what the README's commands need when it is missing (sourced by test.sh and demo.sh):
# Python packages only when an import fails (torch is huge: installed once per machine and
# reused), Java and Maven from Debian; redis-server and prometheus are installed by `infra up`.
# Expects REPO, PYTHON and say() from the caller.

apt_install() {
    command -v apt-get >/dev/null || { say "error: $1 is missing and apt-get is not available"; exit 1; }
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null \
        || { DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null; } \
        || { say "error: apt-get install $* failed"; exit 1; }
}

MODULES="numpy scipy wfdb pydantic pydantic_settings typer rich kafka aiokafka faust redis
         prometheus_client grafana_client matplotlib torch pytest pytest_timeout hypothesis"
if ! "$PYTHON" - $MODULES <<'PY'
import importlib.util, sys
missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]
if missing:
    print("[make test] missing Python modules: " + " ".join(missing), file=sys.stderr)
    sys.exit(1)
PY
then
    say "pip install -e '.[dev]'"
    "$PYTHON" -m pip install -q -e '.[dev]' || { say "error: pip install failed"; exit 1; }
fi
command -v java >/dev/null || apt_install openjdk-17-jre-headless
command -v mvn >/dev/null || apt_install maven
