"""The chaos soak of issue 19, two minutes with a fixed seed (docs/RELIABILITY.md, "Chaos soak";
the long one is ``scripts/soak.sh``): every job counted once, every extra execution explained by
a kill or freeze of the process that ran it or by Redis going away, memory bounded."""

from __future__ import annotations

from optio.testing import ROOT
from optio.testing.soak import report
from optio.testing.soak.run import SEED, run_soak

#: CI's soak: two minutes with the seed whose first events cover nine kinds of fault of ten.
MINUTES = 2.0


def test_a_two_minute_chaos_soak_counts_every_job_once_and_explains_every_extra_run(
    tmp_path, record
):
    result = run_soak(MINUTES, SEED, work=tmp_path, out=ROOT / "artifacts")
    ex = result["executions"]
    kinds = ", ".join(f"{kind} {row['count']}" for kind, row in result["faults"].items())
    record(
        "chaos soak, 2 minutes",
        f"seed {SEED}, x={result['x']:,}, y=60000/min, two workers -c 2, lease "
        f"{result['lease_s']:g} s; faults: {kinds}",
        took_s=result["run"]["took_s"],
        executions=ex["executions"],
        extra=ex["extra"],
        explained=sum(ex["explained"].values()),
        unexplained_jobs=len(result["unexplained"]),
        lost=result["lost_count"],
    )
    failed = [check["name"] for check in result["checks"] if not check["ok"]]
    assert not failed, report.render(result)
