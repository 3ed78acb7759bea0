"""The benchmark's pure parts (bench/): the verdicts of the summary from hand-made results, the
pacing and 429 figures, the Redis persistence it records, and how ``--only`` merges a part in."""

from __future__ import annotations

from typing import Any

from bench import cli, report, tables
from bench.pacing import analyse
from bench.sampling import share_of_calls

CPU = {"machine_busy_cores": 1.0, "others_busy_cores": 0.2, "wall_s": 13.0, "core_share": {}}


def pacing_result(y: float, most: int, **extra: Any) -> dict[str, Any]:
    return {
        "asked_per_min": y,
        "warm_up_s": 3.0,
        "window_s": 10.0,
        "bound": int(y // 600) + 1,
        "most_in_100ms": most,
        "most_in_100ms_whole_run": most + 3,
        "starts_in_window": int(y / 6),
        "starts": int(y / 6 * 1.3),
        "starts_per_min": y,
        "error_pct": 0.0,
        "first_start_after_post_ms": 12.5,
        "held_back_samples": 1,
        "state_samples": 52,
        "held_back_by": {"workers": 1},
        "cpu": CPU,
        **extra,
    }


def throttle_result(share: float, accepted: int, refused: int, **extra: Any) -> dict[str, Any]:
    return {
        "limit_per_s": 20.0,
        "burst": 5.0,
        "asked_per_min": 6000.0,
        "window_s": 20.0,
        "capacity_used": share,
        "accepted": accepted,
        "accepted_per_s": accepted / 20,
        "refused_429": refused,
        "refused_per_1000_accepted": 1000 * refused / accepted,
        "refused_share_of_calls": share_of_calls(accepted, refused),
        "accepted_more_than_once": 0,
        "run_accepted": accepted + 200,
        "rate_now_min": 900.0,
        "rate_now_mean": 1180.0,
        "rate_now_max": 1500.0,
        "rate_now_mean_over_limit": 0.98,
        "rate_now_samples": 80,
        "cpu": CPU,
        **extra,
    }


def summary(results: dict[str, Any]) -> dict[str, tuple[str, str, str, str]]:
    return {row[0].split(":")[0]: row for row in report.rows(results)}


def test_pacing_is_met_at_the_bound_and_missed_above_it():
    rows = report.rows({"pacing": [pacing_result(6000, 11), pacing_result(60000, 130)]})
    (figure, measured, goal, verdict), missed = rows
    assert figure.startswith("10. Pacing, y = 6,000/min (10 s window after 3 s)")
    assert measured.startswith("**11** (14); 6,000.0/min (+0.00 %), 1,000 starts")
    assert (goal, verdict) == ("<= 11 in any 100 ms window", "met")
    assert missed[2] == "<= 101 in any 100 ms window"
    assert missed[3] == "**missed**: 29 over"


def test_the_pacing_table_shows_each_rate_with_its_bound():
    text = "\n".join(tables.pacing([pacing_result(600, 2)]))
    assert (
        "| 600 | **2** (2) | 5 | 600.0 (+0.00 %) | 100 / 130 | 12 ms | 1 of 52; workers 1 |" in text
    )
    assert "| 600/min |" in text  # the CPU table's column


def test_the_pacing_figures_of_evenly_spaced_starts():
    y = 6000.0  # 100 a second: one every 10 ms
    times = [1000 + i / 100 for i in range(1300)]  # 13 s from the first start
    out = analyse(times, 1003.0, 1013.0, y)
    assert out["bound"] == 11
    assert out["most_in_100ms"] == 11  # a closed 100 ms interval holds both ends
    assert out["starts_in_window"] == 1000 and out["starts"] == 1300
    assert (out["starts_per_min"], out["error_pct"]) == (6000.0, 0.0)
    burst = sorted([*times, *[1001.5] * 40])  # 40 at once during the warm-up
    assert analyse(burst, 1003.0, 1013.0, y)["most_in_100ms"] == 11
    assert analyse(burst, 1003.0, 1013.0, y)["most_in_100ms_whole_run"] == 51


def test_the_429_share_is_of_all_calls():
    assert share_of_calls(950, 50) == 0.05
    assert share_of_calls(0, 0) is None
    assert share_of_calls(0, 3) == 1.0
    older = {"accepted": 300, "refused_429": 100}  # results from before the share was kept
    assert tables.refused_share(older) == 0.25


def test_a_throttled_run_meets_the_goals_or_says_what_it_missed():
    met = throttle_result(0.95, 1140, 20)
    short = throttle_result(0.85, 1020, 80, accepted_more_than_once=2)
    (figure, measured, goal, verdict), missed = report.rows({"throttle": [met, short]})
    assert figure.startswith("7. Throttled, server 20/s with bursts of 5, y = 6,000/min")
    assert measured.startswith("**95.0 %** (57.0/s); **1.72 %** (17.5); 0")
    assert (goal, verdict) == (">= 90 %; < 5 % of calls; 0", "met")
    assert missed[3] == (
        "**missed**: 5.0 points of capacity short; 429s 7.3 % of calls; 2 jobs accepted twice"
    )
    # exactly the bar is a miss: fewer than 5 %
    assert report.rows({"throttle": [throttle_result(0.95, 950, 50)]})[0][3].startswith("**missed")


def test_the_throttle_table_says_each_servers_burst():
    older = throttle_result(0.97, 1160, 10)
    del older["burst"], older["refused_share_of_calls"]  # results from before bursts were chosen
    text = "\n".join(tables.throttle([throttle_result(0.95, 1140, 20), older]))
    assert "| 20/s (1,200/min) | 5 | 6,000/min | 57.0 (95.0 %) | 1.72 % (17.5) |" in text
    assert "| 20/s (1,200/min) | 20 | 6,000/min | 58.0 (97.0 %) | 0.85 % (8.6) |" in text


def test_the_bench_redis_persists_as_scripts_run_sh_unless_told_not_to():
    assert cli.settings(True)["redis_persistence"] == "aof everysec"
    assert cli.settings(True, persistent=False)["redis_persistence"] == "off"
    assert tables.persistence({"redis_persistence": "aof everysec"}) == "aof everysec"
    assert tables.persistence({}) == "off"  # every run before it was recorded


def test_pacing_is_a_default_part_that_only_merges_in():
    assert "pacing" in cli.DEFAULT_PARTS and "pacing" not in cli.OPT_IN
    assert report.BLOCKS[-1][:2] == ("pacing", "## 10. Pacing")
    earlier = {"parts": ["ceiling", "throttle"], "ceiling": {"ratio": 0.8}, "throttle": [1]}
    machine = {"optio_commit": "abc", "optio_uncommitted_changes": False}
    run = {
        "pacing": [pacing_result(600, 2)],
        "machine": machine,
        "started_at": "now",
        "duration_s": 60.0,
        "load_average_at_start": [1.0],
        "load_average_at_end": [1.5],
        "work_dir": "/tmp/x",
        "settings": cli.settings(True, persistent=False),
    }
    merged = cli.merge(earlier, run, ["pacing"])
    assert merged["parts"] == ["ceiling", "throttle", "pacing"]
    assert (merged["ceiling"], merged["throttle"]) == ({"ratio": 0.8}, [1])
    assert merged["pacing"] == run["pacing"]
    row = tables._separately("pacing", merged["separately"]["pacing"])
    assert row[0] == "pacing: measured separately" and "Redis persistence off" in row[1]
    soak = tables._separately("soak", merged["separately"]["pacing"])
    assert "Redis persistence aof everysec (the soak's own redis-server)" in soak[1]
