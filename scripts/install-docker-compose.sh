#!/usr/bin/env bash
# Install the Docker Compose v2 CLI plugin (needed by tests/test_compose.py for
# `docker compose config`; no Docker engine is needed). Builds it from its Go
# module with the local Go toolchain, so it needs Go >= 1.21 and the Go module proxy.
set -euo pipefail
VERSION="${COMPOSE_VERSION:-v2.29.7}"
PLUGIN_DIR="${DOCKER_CLI_PLUGINS:-/usr/local/lib/docker/cli-plugins}"
if docker compose version >/dev/null 2>&1; then
  docker compose version
  exit 0
fi
command -v go >/dev/null || { echo "go is required to build docker compose" >&2; exit 1; }
GOBIN="$(mktemp -d)"
GOBIN="$GOBIN" GOFLAGS=-mod=mod nice -n 10 go install \
  -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=${VERSION}" \
  "github.com/docker/compose/v2/cmd@${VERSION}"
mkdir -p "$PLUGIN_DIR"
install -m 0755 "$GOBIN/cmd" "$PLUGIN_DIR/docker-compose"
rm -rf "$GOBIN"
docker compose version
