"""``optio watch`` with a run id (``watch(url, run_id=...)``): it follows that run over
``?run=<id>``, not the newer one the default clients are shown. A web process alone, runs
changed by the test through the store."""

from __future__ import annotations

import subprocess
import sys

import pytest

from optio.redis_state import RunStore
from optio.testing import ROOT, wait_for

pytestmark = pytest.mark.slow

SCRIPT = (
    "import sys; from optio.cli.watch import watch; "
    "sys.exit(watch(sys.argv[1], run_id=sys.argv[2]))"
)


def test_watch_follows_the_named_run_to_its_end(fault_system, tmp_path):
    web = fault_system
    web.start_web()
    older = web.post("/api/runs", {"x": 50, "y": 60}).json()["runId"]
    newer = web.post("/api/runs", {"x": 70, "y": 120}).json()["runId"]
    out = tmp_path / "out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, web.base, older],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: f"Watching run {older}: 50 jobs" in out.read_text(), 15, "the start")
        store = RunStore(web.redis).runs
        store.update_run(y=90, run_id=newer)  # the newer run changes: not this watch's business
        store.stop_run(older)
        assert proc.wait(15) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    text = out.read_text()
    assert f"run {older} was stopped at 0 of 50 jobs processed" in text, text
    assert newer not in text, text
