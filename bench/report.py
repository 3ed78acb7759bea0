"""The tables of docs/BENCHMARKS.md from the results of one ``python -m bench`` run.

Code writes numbers only: the summary table (figure | measured | goal | verdict) and one block
of tables per section. Each block sits between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->`` in BENCHMARKS.md; the text around the blocks is written by hand (what
each figure measures, why it is what it is) and kept as it is when the blocks are written again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

MIB = 1024 * 1024
CEILING_GOAL = 0.9
#: The batched run must hold its asked rate within this share, processed keeping pace.
BATCHED_GOAL_SHARE = 0.99
BATCHED_MAX_LAG_S = 1.5
FIDELITY_GOAL_PCT = 1.0
LATENCY_GOAL_MS = 100.0
API_GOAL_MS = 10.0


def _n(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def _mib(v: int | None) -> str:
    return "n/a" if v is None else f"{v / MIB:,.1f} MiB"


def _verdict(ok: bool | None, miss: str = "") -> str:
    if ok is None:
        return "not measured"
    return "met" if ok else f"**missed**{': ' + miss if miss else ''}"


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """A Markdown table, then an empty line."""
    header = list(header)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*out, ""]


# -- the summary ------------------------------------------------------------------------------


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, measured, goal, verdict) for every measured figure that has a goal."""
    out: list[tuple[str, str, str, str]] = []
    c = r.get("ceiling")
    if c:
        ratio = c["ratio"]
        out.append(
            (
                "1. Throughput ceiling, one message per job: optio / bare Celery",
                f"{_n(c['optio_jobs_per_s'])} / {_n(c['bare_jobs_per_s'])} jobs/s "
                f"= **{ratio:.2f}**",
                f">= {CEILING_GOAL}",
                _verdict(ratio >= CEILING_GOAL, f"{100 * (CEILING_GOAL - ratio):.0f} points short"),
            )
        )
    b = r.get("batched")
    if b:
        goal = b["asked_per_s"]
        rate = b["processed_per_s_steady"] or 0
        ok = rate >= BATCHED_GOAL_SHARE * goal and b["max_lag_seconds"] <= BATCHED_MAX_LAG_S
        out.append(
            (
                f"2. Batched, y = {goal * 60:,.0f}/min: processed/s (enqueued/s) while enqueuing",
                f"**{_n(rate)}** ({_n(b['enqueued_per_s_steady'])}); {b['jobs']:,} jobs in "
                f"{b['seconds']:.1f} s (ideal {b['ideal_seconds']:.1f} s); processed at most "
                f"{b['max_lag_seconds']:.2f} s behind enqueued",
                f"{goal:,.0f}/s within {100 * (1 - BATCHED_GOAL_SHARE):.0f} %, at most "
                f"{BATCHED_MAX_LAG_S:g} s behind",
                _verdict(ok, f"{100 * (1 - rate / goal):.1f} % below"),
            )
        )
    a = r.get("api")
    if a and c:
        ceiling = a["ceiling_processed_per_s"] or 0
        out.append(
            (
                "2b. Batched ceiling (asked far above capacity)",
                f"**{_n(ceiling)} jobs/s** = {ceiling / c['bare_jobs_per_s']:.1f}x bare Celery",
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
                f"**{_n(f['achieved_per_min'], 2)}/min ({err:+.2f} %)**; fixed window "
                f"{_n(f['fixed_window_per_min'], 1)}/min; most in any 1 s: "
                f"{f['max_enqueued_in_1s']:,} (one tick: {f['per_tick_expected']:,.0f})",
                f"within {FIDELITY_GOAL_PCT:g} %",
                _verdict(ok, f"off by {abs(err or 0):.2f} %"),
            )
        )
    for count, row in (r.get("latency") or {}).items():
        busy, quiet = row["busy"], row["quiet"]
        judged = count == "1000"
        p99 = busy["p99_ms"] or 1e9
        out.append(
            (
                f"4. Live latency, {int(count):,} client(s): p50 / p99",
                f"busy **{_n(busy['p50_ms'], 1)} / {_n(busy['p99_ms'], 1)} ms**; quiet "
                f"{_n(quiet['p50_ms'], 1)} / {_n(quiet['p99_ms'], 1)} ms",
                f"busy p99 < {LATENCY_GOAL_MS:.0f} ms" if judged else "(goal at 1,000)",
                _verdict(p99 < LATENCY_GOAL_MS, f"{p99 - LATENCY_GOAL_MS:.0f} ms over")
                if judged
                else "",
            )
        )
    if a:
        p99 = a["at_ceiling"]["p99_ms"] or 1e9
        out.append(
            (
                "5. GET /api/status at the ceiling: p50 / p99",
                f"**{_n(a['at_ceiling']['p50_ms'], 2)} / {_n(p99, 2)} ms** (idle: "
                f"{_n(a['idle']['p50_ms'], 2)} / {_n(a['idle']['p99_ms'], 2)} ms)",
                f"p99 < {API_GOAL_MS:.0f} ms",
                _verdict(p99 < API_GOAL_MS, f"{p99 - API_GOAL_MS:.1f} ms over"),
            )
        )
    m = r.get("memory")
    if m:
        rss = m["rss_bytes"]
        jobs = m["results_fields"] or 1
        kb = m["key_bytes"]
        out.append(
            (
                f"6. Memory after {jobs:,} jobs: RSS web / worker (main + pool) / beat",
                f"{_mib(rss.get('web'))} / {_mib(m['worker_total_rss_bytes'])} / "
                f"{_mib(rss.get('beat'))}",
                "bounded",
                "",
            )
        )
        out.append(
            (
                "6. Redis: used_memory; the run's bitmap and results hash",
                f"{_mib(m['redis_used_memory'])}; bitmap {_n(kb['done bitmap'])} B "
                f"({_n(8 * kb['done bitmap'] / jobs, 2)} bit/job); results "
                f"{_mib(kb['results hash'])} ({_n(kb['results hash'] / jobs, 1)} B/job, "
                f"TTL {m['results_ttl_s'] / 86400:.0f} d)",
                "~1 bit/job; results capped or expiring",
                _verdict(m["results_ttl_s"] > 0, "results never expire"),
            )
        )
    return out


def summary_table(r: dict[str, Any]) -> str:
    return "\n".join(table(("figure", "measured", "goal", "verdict"), rows(r))).rstrip("\n")


# -- the tables of each section ---------------------------------------------------------------


def _cpu(named: dict[str, dict[str, Any]]) -> list[str]:
    """CPU in cores of each process, one column per measured interval."""
    procs = list(dict.fromkeys(p for cpu in named.values() for p in cpu["core_share"]))
    body = [[p, *(_n(cpu["core_share"].get(p), 2) for cpu in named.values())] for p in procs]
    body.append(["whole machine", *(_n(c["machine_busy_cores"], 2) for c in named.values())])
    body.append(["of which others", *(_n(c["others_busy_cores"], 2) for c in named.values())])
    body.append(["interval (s)", *(_n(c["wall_s"], 1) for c in named.values())])
    return table(["CPU (cores)", *named], body)


def _commandstats(named: dict[str, tuple[dict[str, Any], int]], top: int = 6) -> list[str]:
    """Redis commands by server time: calls per job and µs per call, per measured run."""
    body = []
    for name, (stats, jobs) in named.items():
        for command, v in list(stats.items())[:top]:
            body.append([name, command, f"{v['calls'] / jobs:.2f}", f"{v['usec_per_call']:.1f}"])
    return table(("run", "Redis command", "calls/job", "µs/call"), body)


def _profile(prof: dict[str, Any] | None, title: str) -> list[str]:
    if not prof:
        return []
    body = []
    for name, p in prof.items():
        if not p.get("samples"):
            continue
        incl = "; ".join(f"`{f}` {s}" for f, s in p["inclusive"][:8])
        own = "; ".join(f"`{f}` {s}" for f, s in p["self"][:5])
        body.append([name, p["idle_pct"], incl, own])
    header = (f"{title}: process", "idle %", "inclusive % of samples", "innermost % of samples")
    return table(header, body)


def _ceiling(c: dict[str, Any]) -> list[str]:
    out = table(
        ("round", "optio jobs/s", "optio steady 20-80 % jobs/s", "bare jobs/s", "bare publish/s"),
        [
            [
                i + 1,
                _n(o["jobs_per_s"]),
                _n(o["steady_jobs_per_s"]),
                _n(b["jobs_per_s"]),
                _n(b["publish_per_s"]),
            ]
            for i, (o, b) in enumerate(zip(c["optio_runs"], c["bare_runs"], strict=True))
        ],
    )
    o, b = c["optio_runs"][-1], c["bare_runs"][-1]
    out += _cpu({"optio": o["cpu"], "bare Celery": b["cpu"]})
    out += _commandstats(
        {
            "optio": (o["redis_commandstats"], o["jobs"]),
            "bare": (b["redis_commandstats"], b["jobs"]),
        }
    )
    out += _profile(o.get("profile"), "optio, one message per job")
    out += _profile(b.get("profile"), "bare Celery")
    return out


def _batched(b: dict[str, Any], a: dict[str, Any] | None) -> list[str]:
    figures = [
        ("jobs", f"{b['jobs']:,}"),
        ("asked jobs/s", _n(b["asked_per_s"])),
        ("run time s (ideal)", f"{b['seconds']:.1f} ({b['ideal_seconds']:.1f})"),
        ("jobs/s over the whole run", _n(b["jobs_per_s"])),
        ("enqueued/s, 5 s in to the last enqueue", _n(b["enqueued_per_s_steady"])),
        ("processed/s, 5 s in to the last enqueue", _n(b["processed_per_s_steady"])),
        ("most enqueued but not processed (jobs)", f"{b['max_enqueued_minus_processed']:,}"),
        ("the same in seconds of the rate", f"{b['max_lag_seconds']:.2f}"),
        ("most due but not enqueued (jobs)", f"{b['max_enqueued_behind_schedule']:,}"),
    ]
    if a:
        figures += [
            (
                f"ceiling, asked {a['asked_per_min']:,.0f}/min: processed/s",
                _n(a["ceiling_processed_per_s"]),
            ),
            ("ceiling: enqueued/s", _n(a["ceiling_enqueued_per_s"])),
        ]
    out = table(("figure", "value"), figures)
    out += _cpu({"batched run": b["cpu"], **({"ceiling": a["cpu"]} if a else {})})
    out += _commandstats({"batched run": (b["redis_commandstats"], b["jobs"])})
    out += _profile(b.get("profile"), f"y = {b['asked_per_s'] * 60:,.0f}/min")
    return out


def _fidelity(fs: list[dict[str, Any]]) -> list[str]:
    header = (
        "asked/min",
        "achieved/min",
        "error",
        "fixed window/min",
        "most enqueued in any 1 s",
        "largest tick (y/60 expected)",
        "ticks in window",
    )
    body = [
        [
            f"{f['asked_per_min']:,.0f}",
            _n(f["achieved_per_min"], 2),
            "n/a" if f["error_pct"] is None else f"{f['error_pct']:+.3f} %",
            _n(f["fixed_window_per_min"], 1),
            f"{f['max_enqueued_in_1s']:,}",
            f"{f.get('largest_tick', 0):,} ({f['per_tick_expected']:,.0f})",
            f["ticks_in_window"],
        ]
        for f in fs
    ]
    return table(header, body)


def _latency(lat: dict[str, Any]) -> list[str]:
    header = (
        "clients",
        "quiet p50 / p99 / max ms",
        "busy p50 / p99 / max ms",
        "samples (busy)",
        "web CPU (busy)",
        "clients' CPU (busy)",
    )
    body = []
    for count, row in lat.items():
        q, b = row["quiet"], row["busy"]
        shares = b["cpu"]["core_share"]
        clients = sum(v for k, v in shares.items() if k.startswith("clients"))
        body.append(
            [
                f"{int(count):,}",
                f"{_n(q['p50_ms'], 1)} / {_n(q['p99_ms'], 1)} / {_n(q['max_ms'], 1)}",
                f"{_n(b['p50_ms'], 1)} / {_n(b['p99_ms'], 1)} / {_n(b['max_ms'], 1)}",
                f"{b['n']:,} ({b['missing']} missing)",
                f"{shares.get('web', 0):.2f}",
                f"{clients:.2f}",
            ]
        )
    out = table(header, body)
    for count, row in lat.items():
        out += _profile(row.get("web_profile"), f"{int(count):,} clients, busy")
    return out


def _api(a: dict[str, Any]) -> list[str]:
    out = table(
        ("pipeline", "requests", "p50 ms", "p99 ms", "max ms", "errors"),
        [
            [name, s["n"], _n(s["p50_ms"], 2), _n(s["p99_ms"], 2), _n(s["max_ms"], 2), s["errors"]]
            for name, s in (("idle", a["idle"]), ("at its ceiling", a["at_ceiling"]))
        ],
    )
    out += _cpu({"at its ceiling": a["cpu"]})
    out += _profile(a.get("web_profile"), "web at the ceiling")
    return out


def _memory(m: dict[str, Any]) -> list[str]:
    jobs = m["results_fields"] or 1
    kb = m["key_bytes"]
    before = m.get("rss_bytes_before_run", {})
    out = table(
        ("process", "RSS before the run", "RSS after"),
        [[name, _mib(before.get(name)), _mib(v)] for name, v in m["rss_bytes"].items()],
    )
    out += table(
        ("Redis", "before the run", "after"),
        [
            ["used_memory", _mib(m["redis_used_memory_before_run"]), _mib(m["redis_used_memory"])],
            ["used_memory_rss", "", _mib(m["redis_used_memory_rss"])],
        ],
    )
    out += table(
        ("key of the run", "bytes (MEMORY USAGE)", "per job", "size", "TTL"),
        [
            [
                "done bitmap",
                f"{kb['done bitmap']:,}",
                f"{8 * kb['done bitmap'] / jobs:.2f} bit",
                f"STRLEN {m['bitmap_strlen']:,}",
                "",
            ],
            [
                "results hash",
                f"{kb['results hash']:,}",
                f"{kb['results hash'] / jobs:.1f} B",
                f"{m['results_fields']:,} fields, {m['results_encoding']}",
                f"{m['results_ttl_s'] / 86400:.0f} d",
            ],
            ["run hash", f"{kb['run hash']:,}", "", "", ""],
        ],
    )
    return out


def _machine(r: dict[str, Any]) -> list[str]:
    mach = r["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in mach["packages"].items() if v)
    commit = mach["optio_commit"] + (" (+ changes)" if mach["optio_uncommitted_changes"] else "")
    return table(
        ("machine", "value"),
        [
            ["cores, RAM", f"{mach['cores']}, {mach['mem_gib']} GiB"],
            ["CPU", mach["cpu_model"]],
            ["Linux, open-file limit", f"{mach['kernel']}, {r['settings'].get('fd_limit')}"],
            ["Python, Redis server", f"{mach['python']}, {mach['redis_server']}"],
            ["packages", f"{versions}, py-spy {mach['py_spy']}"],
            ["optio commit", commit],
            ["started, took", f"{r['started_at']}, {r['duration_s']:.0f} s"],
            [
                "load average at start / end",
                f"{r['load_average_at_start']} / {r['load_average_at_end']}",
            ],
        ],
    )


#: (block name, heading used when the hand-written text has no such block, tables).
BLOCKS: list[tuple[str, str, Callable[[dict[str, Any]], list[str]] | None]] = [
    ("summary", "## Summary", None),
    ("machine", "## Machine and versions", _machine),
    ("ceiling", "## 1. Throughput ceiling", lambda r: _ceiling(r["ceiling"])),
    ("batched", "## 2. Batched", lambda r: _batched(r["batched"], r.get("api"))),
    ("fidelity", "## 3. Rate fidelity", lambda r: _fidelity(r["fidelity"])),
    ("latency", "## 4. Live latency", lambda r: _latency(r["latency"])),
    ("api", "## 5. API under load", lambda r: _api(r["api"])),
    ("memory", "## 6. Memory", lambda r: _memory(r["memory"])),
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
