#!/usr/bin/env bash
# Run optio's benchmark suite and write docs/BENCHMARKS.md and docs/benchmarks.json.
# Starts its own redis-server on a free loopback port and real web, worker and beat processes.
# Arguments go to `python -m bench` (--quick, --only PARTS, --no-profile, --no-persistence,
# --wait-quiet MINUTES).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh bench
.venv/bin/python -m pip install -q -e ".[bench]"
exec .venv/bin/python -m bench "$@"
