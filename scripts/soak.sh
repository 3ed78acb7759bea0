#!/usr/bin/env bash
# The chaos soak (docs/RELIABILITY.md, "Chaos soak"; issue 19): a real system (its own
# redis-server with an append-only file on a free loopback port, web, beat, two workers -c 2)
# runs one long run at 60,000 jobs/min while a seeded chaos loop kills, freezes and restarts its
# parts; then every execution is accounted for. Prints the table, writes it to
# artifacts/soak-<seed>-<minutes>min.md and .json, and exits non-zero when a check failed.
#
#   scripts/soak.sh                          30 minutes, seed 337
#   scripts/soak.sh --minutes 2 --seed 7     (CI: 2 minutes, seed 337, tests/faults/test_soak.py)
#   scripts/soak.sh --no-setup ...           without scripts/setup.sh (done already)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--no-setup" ]; then
  shift
else
  scripts/setup.sh bench
  .venv/bin/python -m pip install -q -e ".[bench]"
fi
exec .venv/bin/python -m optio.testing.soak "$@"
