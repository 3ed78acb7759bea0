#!/usr/bin/env bash
# Set up and run optio's tests. They start their own redis-server on a free port, and real
# celery worker, celery beat and web processes; nothing touches a Redis already running.
#
#   scripts/test.sh            the fast stage below, stopping when it fails; then every other tier
#                              (about 20 minutes); this is CI's command (.ci/run)
#   scripts/test.sh --fast     ruff, mypy, then tests/unit alone, stopping at the first failure: no
#                              optio process, well under 2 minutes
#   scripts/test.sh --slow     every tier but tests/unit: system, browser, processes, faults
#   scripts/test.sh --no-setup ...   without scripts/setup.sh (done already)
#
# Further arguments go to pytest (one session over every tier, or the stage named):
# scripts/test.sh -q -k api, scripts/test.sh --fast -k lease.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=all
setup=1
while [ $# -gt 0 ]; do
  case "$1" in
    --fast) stage=fast ;;
    --slow) stage=slow ;;
    --no-setup) setup=0 ;;
    *) break ;;
  esac
  shift
done
if [ "$setup" = 1 ]; then
  scripts/setup.sh test
fi
fast() {
  .venv/bin/ruff check optio tests bench
  .venv/bin/ruff format --check optio tests bench
  .venv/bin/mypy
  .venv/bin/python -m pytest -x -q tests/unit "$@"
}
slow() {
  .venv/bin/python -m pytest tests/system tests/browser tests/processes tests/faults "$@"
}
case "$stage" in
  fast) fast "$@" ;;
  slow) slow "$@" ;;
  *)
    if [ $# -eq 0 ]; then
      fast  # stops here when it fails (set -e)
      slow
    else
      exec .venv/bin/python -m pytest "$@"
    fi
    ;;
esac
