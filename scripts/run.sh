#!/usr/bin/env bash
# Set up and run optio: web (port ${PORT:-3000}), worker and beat under honcho.
# Starts a local Redis (append-only, data in var/redis) only when none answers at REDIS_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export REDIS_URL=${REDIS_URL:-redis://localhost:6379/0}
.venv/bin/python -m optio.devredis up
trap '.venv/bin/python -m optio.devredis down' EXIT
PATH="$PWD/.venv/bin:$PATH" .venv/bin/honcho start "$@"
