"""The tables of docs/BENCHMARKS.md from the results of one ``python -m bench`` run.

Code writes numbers only: the summary table (figure | measured | goal | verdict) and one block
of tables per section. Each block sits between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->`` in BENCHMARKS.md; the text around the blocks is written by hand (what
each figure measures, why it is what it is) and kept as it is when the blocks are written again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bench import tables
from bench.tables import mib, num, refused_share, table
from optio.testing.soak import report as soak_report

CEILING_GOAL = 0.9
#: The batched run must hold its asked rate within this share, processed keeping pace.
BATCHED_GOAL_SHARE = 0.99
BATCHED_MAX_LAG_S = 1.5
FIDELITY_GOAL_PCT = 1.0
LATENCY_GOAL_MS = 100.0
API_GOAL_MS = 10.0
#: Throttled runs, the goals of issue 20 for every server, whatever its burst: at least this
#: share of the server's capacity used after the warm-up, 429s under this share of the calls
#: made in the window (refused / (accepted + refused)), and no job accepted twice.
THROTTLE_GOAL_SHARE = 0.9
THROTTLE_GOAL_429_SHARE = 0.05


def _verdict(ok: bool | None, miss: str = "") -> str:
    if ok is None:
        return "not measured"
    return "met" if ok else f"**missed**{': ' + miss if miss else ''}"


# -- the summary ------------------------------------------------------------------------------


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, measured, goal, verdict) for every measured figure that has a goal."""
    out: list[tuple[str, str, str, str]] = []
    c = r.get("ceiling")
    if c:
        out.append(_ceiling_row("1. Throughput ceiling", c))
    b = r.get("batched")
    if b:
        out.append(_batched_row("2. Batched", b, " while enqueuing"))
    a = r.get("api")
    if a and c:
        ceiling = a["ceiling_processed_per_s"] or 0
        out.append(
            (
                "2b. Batched ceiling (asked far above capacity)",
                f"**{num(ceiling)} jobs/s** = {ceiling / c['bare_jobs_per_s']:.1f}x bare Celery",
                ">= 3x bare Celery",
                _verdict(ceiling >= 3 * c["bare_jobs_per_s"]),
            )
        )
    for f in r.get("fidelity", []):
        err = f["error_pct"]
        ok = err is not None and abs(err) <= FIDELITY_GOAL_PCT
        out.append(
            (
                f"3. Rate fidelity, y = {f['asked_per_min']:,.0f}/min "
                f"({f['window_s']:.0f} s window)",
                f"**{num(f['achieved_per_min'], 2)}/min ({err:+.2f} %)**; fixed window "
                f"{num(f['fixed_window_per_min'], 1)}/min; most in any 1 s: "
                f"{f['max_enqueued_in_1s']:,} (one tick: {f['per_tick_expected']:,g})",
                f"within {FIDELITY_GOAL_PCT:g} %",
                _verdict(ok, f"off by {abs(err or 0):.2f} %"),
            )
        )
    out += _latency_rows(r.get("latency"))
    if a:
        p99 = a["at_ceiling"]["p99_ms"] or 1e9
        out.append(
            (
                "5. GET /api/status at the ceiling: p50 / p99",
                f"**{num(a['at_ceiling']['p50_ms'], 2)} / {num(p99, 2)} ms** (idle: "
                f"{num(a['idle']['p50_ms'], 2)} / {num(a['idle']['p99_ms'], 2)} ms)",
                f"p99 < {API_GOAL_MS:.0f} ms",
                _verdict(p99 < API_GOAL_MS, f"{p99 - API_GOAL_MS:.1f} ms over"),
            )
        )
    out += _memory_rows(r.get("memory"))
    out += [_throttle_row(t) for t in r.get("throttle", [])]
    q = r.get("rabbitmq") or {}
    if q.get("ceiling"):
        out.append(_ceiling_row("8. RabbitMQ broker: throughput ceiling", q["ceiling"]))
    if q.get("batched"):
        out.append(_batched_row("8. RabbitMQ broker: batched", q["batched"]))
    if r.get("soak"):
        out.append(_soak_row(r["soak"]))
    out += [_pacing_row(p) for p in r.get("pacing", [])]
    return out


def _latency_rows(lat: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    for row in (lat or {}).get("rows", []):
        if row["variant"] != "now":
            continue  # the figures of the web process as it was before are in section 4
        judged = row["clients"] == 1000
        p99 = row["p99_ms"] if row["p99_ms"] is not None else 1e9
        out.append(
            (
                f"4. Live latency, {row['clients']:,} clients on {row['webs']} web "
                f"process(es), {lat['states_per_s']} states/s: p50 / p99",
                f"**{num(row['p50_ms'], 1)} / {num(row['p99_ms'], 1)} ms** (load average "
                f"{row['load_average_1m']:.2f})",
                f"p99 < {LATENCY_GOAL_MS:.0f} ms" if judged else "(goal at 1,000)",
                _verdict(p99 < LATENCY_GOAL_MS, f"{p99 - LATENCY_GOAL_MS:.0f} ms over")
                if judged
                else "",
            )
        )
    return out


def _memory_rows(m: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    if not m:
        return []
    out: list[tuple[str, str, str, str]] = []
    rss = m["rss_bytes"]
    jobs = m["results_fields"] or 1
    kb = m["key_bytes"]
    out.append(
        (
            f"6. Memory after {jobs:,} jobs: RSS web / worker (main + pool) / beat",
            f"{mib(rss.get('web'))} / {mib(m['worker_total_rss_bytes'])} / {mib(rss.get('beat'))}",
            "bounded",
            "",
        )
    )
    out.append(
        (
            "6. Redis: used_memory; the run's bitmap and results hash",
            f"{mib(m['redis_used_memory'])}; bitmap {num(kb['done bitmap'])} B "
            f"({num(8 * kb['done bitmap'] / jobs, 2)} bit/job); results "
            f"{mib(kb['results hash'])} ({num(kb['results hash'] / jobs, 1)} B/job, "
            f"TTL {m['results_ttl_s'] / 86400:.0f} d)",
            "~1 bit/job; results capped or expiring",
            _verdict(m["results_ttl_s"] > 0, "results never expire"),
        )
    )
    return out


def _throttle_row(t: dict[str, Any]) -> tuple[str, str, str, str]:
    share, refused, twice = t["capacity_used"], refused_share(t), t["accepted_more_than_once"]
    misses = []
    if share < THROTTLE_GOAL_SHARE:
        misses.append(f"{100 * (THROTTLE_GOAL_SHARE - share):.1f} points of capacity short")
    if refused is None or refused >= THROTTLE_GOAL_429_SHARE:
        misses.append(f"429s {'n/a' if refused is None else f'{100 * refused:.1f} %'} of calls")
    if twice:
        misses.append(f"{twice} jobs accepted twice")
    burst = t.get("burst", t["limit_per_s"])  # before bursts were chosen: one second's worth
    return (
        f"7. Throttled, server {t['limit_per_s']:g}/s with bursts of {burst:g}, "
        f"y = {t['asked_per_min']:,.0f}/min ({t['window_s']:.0f} s window): capacity used; "
        "429s as a share of calls (per 1,000 accepted); jobs accepted twice",
        f"**{100 * share:.1f} %** ({num(t['accepted_per_s'], 1)}/s); "
        f"**{'n/a' if refused is None else f'{100 * refused:.2f} %'}** "
        f"({num(t['refused_per_1000_accepted'], 1)}); {twice} "
        f"(rateNow mean {num(t['rate_now_mean'])}/min)",
        f">= {100 * THROTTLE_GOAL_SHARE:.0f} %; < {100 * THROTTLE_GOAL_429_SHARE:.0f} % of "
        "calls; 0",
        _verdict(not misses, "; ".join(misses)),
    )


def _pacing_row(p: dict[str, Any]) -> tuple[str, str, str, str]:
    most, limit = p["most_in_100ms"], p["bound"]
    return (
        f"10. Pacing, y = {p['asked_per_min']:,.0f}/min ({p['window_s']:.0f} s window after "
        f"{p['warm_up_s']:g} s): most job starts in any 100 ms (whole run from its first "
        "start); starts/min in the window",
        f"**{most:,}** ({p['most_in_100ms_whole_run']:,}); {num(p['starts_per_min'], 1)}/min "
        f"({p['error_pct']:+.2f} %), {p['starts_in_window']:,} starts",
        f"<= {limit:,} in any 100 ms window",
        _verdict(most <= limit, f"{most - limit:,} over"),
    )


def _soak_row(s: dict[str, Any]) -> tuple[str, str, str, str]:
    ex = s["executions"]
    failed = [c["name"] for c in s["checks"] if not c["ok"]]
    faults = sum(row["count"] for row in s["faults"].values())
    return (
        f"9. Chaos soak, {s['minutes']:g} min at y = {s['y']:,.0f}/min (seed {s['seed']}): "
        "faults; executions; extra (explained); lost jobs",
        f"**{faults}**; {ex['executions']:,} for {s['x']:,} jobs; {ex['extra']} "
        f"({sum(ex['explained'].values())}); {s['lost_count']}",
        "every check passes: counted once, every extra execution explained, memory bounded",
        _verdict(not failed, "; ".join(failed)),
    )


def _ceiling_row(label: str, c: dict[str, Any]) -> tuple[str, str, str, str]:
    ratio = c["ratio"]
    return (
        f"{label}, one message per job: optio / bare Celery",
        f"{num(c['optio_jobs_per_s'])} / {num(c['bare_jobs_per_s'])} jobs/s = **{ratio:.2f}**",
        f">= {CEILING_GOAL}",
        _verdict(ratio >= CEILING_GOAL, f"{100 * (CEILING_GOAL - ratio):.0f} points short"),
    )


def _batched_row(label: str, b: dict[str, Any], suffix: str = "") -> tuple[str, str, str, str]:
    goal = b["asked_per_s"]
    rate = b["processed_per_s_steady"] or 0
    ok = rate >= BATCHED_GOAL_SHARE * goal and b["max_lag_seconds"] <= BATCHED_MAX_LAG_S
    return (
        f"{label}, y = {goal * 60:,.0f}/min: processed/s (enqueued/s){suffix}",
        f"**{num(rate)}** ({num(b['enqueued_per_s_steady'])}); {b['jobs']:,} jobs in "
        f"{b['seconds']:.1f} s (ideal {b['ideal_seconds']:.1f} s); processed at most "
        f"{b['max_lag_seconds']:.2f} s behind enqueued",
        f"{goal:,.0f}/s within {100 * (1 - BATCHED_GOAL_SHARE):.0f} %, at most "
        f"{BATCHED_MAX_LAG_S:g} s behind",
        _verdict(ok, f"{100 * (1 - rate / goal):.1f} % below"),
    )


def summary_table(r: dict[str, Any]) -> str:
    return "\n".join(table(("figure", "measured", "goal", "verdict"), rows(r))).rstrip("\n")


BLOCKS: list[tuple[str, str, Callable[[dict[str, Any]], list[str]] | None]] = [
    ("summary", "## Summary", None),
    ("machine", "## Machine and versions", tables.machine),
    ("ceiling", "## 1. Throughput ceiling", lambda r: tables.ceiling(r["ceiling"])),
    ("batched", "## 2. Batched", lambda r: tables.batched(r["batched"], r.get("api"))),
    ("fidelity", "## 3. Rate fidelity", lambda r: tables.fidelity(r["fidelity"])),
    ("latency", "## 4. Live latency", lambda r: tables.latency(r["latency"])),
    ("api", "## 5. API under load", lambda r: tables.api(r["api"])),
    ("memory", "## 6. Memory", lambda r: tables.memory(r["memory"])),
    ("throttle", "## 7. Throttling", lambda r: tables.throttle(r["throttle"])),
    ("rabbitmq", "## 8. RabbitMQ as the broker", tables.rabbitmq),
    ("soak", "## 9. Chaos soak", lambda r: soak_report.tables(r["soak"])),
    ("pacing", "## 10. Pacing", lambda r: tables.pacing(r["pacing"])),
]


def blocks(r: dict[str, Any]) -> dict[str, str]:
    """The generated text of every block; a part this run did not measure says so."""
    out = {}
    for name, _, make in BLOCKS:
        if make is None:
            quick = (
                "Quick run (`--quick`): short windows.\n\n" if r["settings"].get("quick") else ""
            )
            out[name] = quick + summary_table(r)
        elif name == "machine" or r.get(name):
            out[name] = "\n".join(make(r)).rstrip("\n")
        else:
            out[name] = "Not measured in this run."
    return out


def _marked(name: str, text: str) -> str:
    return f"<!-- bench:{name} -->\n{text}\n<!-- /bench:{name} -->"


def render(r: dict[str, Any], written: str | None = None) -> str:
    """BENCHMARKS.md: ``written`` (the hand-written file) with its blocks filled from ``r``;
    blocks it lacks go at the end under their own heading."""
    text = written or "# Benchmarks\n"
    for (name, heading, _), generated in zip(BLOCKS, blocks(r).values(), strict=True):
        block = _marked(name, generated)
        pattern = re.compile(rf"<!-- bench:{name} -->\n.*?<!-- /bench:{name} -->", re.S)
        found = pattern.search(text)
        if found:
            text = text[: found.start()] + block + text[found.end() :]
        else:
            text = text.rstrip("\n") + f"\n\n{heading}\n\n{block}\n"
    return text
