#!/usr/bin/env bash
# Set up and run optio's tests. They start their own redis-server on a free port, and real
# celery worker, celery beat and web processes; nothing touches a Redis already running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
.venv/bin/python -m pytest "$@"
