"""The chaos soak, two minutes with a fixed seed (issue 19): a real system (its own redis-server
with an append-only file, web, beat, two workers -c 2) runs one run at 60,000 jobs/min while a
seeded chaos loop kills, freezes and restarts its parts, makes Redis refuse writes, pauses,
changes the rate and returns undecodable text; then every execution is accounted for
(docs/RELIABILITY.md, "Chaos soak"). The 30-minute soak is ``scripts/soak.sh``.
"""

from __future__ import annotations

from optio.testing.soak import report
from optio.testing.soak.run import run_soak

#: The CI soak's seed and length (its chaos plan is a function of the seed alone).
CI_SEED = 337
CI_MINUTES = 2.0


def test_a_two_minute_chaos_soak_loses_nothing_and_explains_every_extra_run(tmp_path, record):
    result = run_soak(CI_MINUTES, CI_SEED, work=tmp_path / "soak", out=tmp_path)
    failed = [c for c in result["checks"] if not c["ok"]]
    assert not failed, report.render(result)
    run, ex = result["run"], result["executions"]
    record(
        "chaos soak, 2 minutes (CI)",
        f"seed {CI_SEED}, x={result['x']:,} at 60,000/min, "
        f"{sum(k['count'] for k in result['faults'].values())} faults of "
        f"{len(result['faults'])} kinds; AOF Redis, web, beat, two workers -c 2",
        processed=run["processed"],
        bits=run["bits"],
        extra=ex["extra"],
        unexplained=len(result["unexplained"]),
        lost=result["lost_count"],
        exited_on_their_own=len(result["incidents"]),
    )
