#!/usr/bin/env bash
# Set up and run optio: web (port ${PORT:-3000}), worker and beat under honcho.
# honcho hands each process its own PORT (5000 unless told): -p makes the web's 3000, or $PORT.
# Starts a local Redis (append-only, data in var/redis) only when none answers at REDIS_URL,
# and stops it after the three processes have shut down.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export REDIS_URL=${REDIS_URL:-redis://localhost:6379/0}
export PORT=${PORT:-3000}
.venv/bin/python -m optio.testing.devredis up
trap '.venv/bin/python -m optio.testing.devredis down' EXIT
PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m honcho start -p "$PORT" "$@" &
honcho=$!
trap 'kill -TERM "$honcho" 2>/dev/null || true' INT TERM
wait "$honcho" || true  # returns early when Ctrl-C or TERM arrives...
wait "$honcho" || true  # ...then waits for the processes to finish their shutdown
