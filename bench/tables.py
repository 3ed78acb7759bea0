"""Markdown tables of the measured numbers, one list of lines per section of BENCHMARKS.md."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench.sampling import share_of_calls

MIB = 1024 * 1024


def num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def mib(v: int | None) -> str:
    return "n/a" if v is None else f"{v / MIB:,.1f} MiB"


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """A Markdown table, then an empty line."""
    header = list(header)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*out, ""]


def _cpu(named: dict[str, dict[str, Any]]) -> list[str]:
    """CPU in cores of each process, one column per measured interval."""
    procs = list(dict.fromkeys(p for cpu in named.values() for p in cpu["core_share"]))
    body = [[p, *(num(cpu["core_share"].get(p), 2) for cpu in named.values())] for p in procs]
    body.append(["whole machine", *(num(c["machine_busy_cores"], 2) for c in named.values())])
    body.append(["of which others", *(num(c["others_busy_cores"], 2) for c in named.values())])
    body.append(["interval (s)", *(num(c["wall_s"], 1) for c in named.values())])
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


def ceiling(c: dict[str, Any]) -> list[str]:
    out = table(
        ("round", "optio jobs/s", "optio steady 20-80 % jobs/s", "bare jobs/s", "bare publish/s"),
        [
            [
                i + 1,
                num(o["jobs_per_s"]),
                num(o["steady_jobs_per_s"]),
                num(b["jobs_per_s"]),
                num(b["publish_per_s"]),
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


def batched(b: dict[str, Any], a: dict[str, Any] | None) -> list[str]:
    figures = [
        ("jobs", f"{b['jobs']:,}"),
        ("asked jobs/s", num(b["asked_per_s"])),
        ("run time s (ideal)", f"{b['seconds']:.1f} ({b['ideal_seconds']:.1f})"),
        ("jobs/s over the whole run", num(b["jobs_per_s"])),
        ("enqueued/s, 5 s in to the last enqueue", num(b["enqueued_per_s_steady"])),
        ("processed/s, 5 s in to the last enqueue", num(b["processed_per_s_steady"])),
        ("most enqueued but not processed (jobs)", f"{b['max_enqueued_minus_processed']:,}"),
        ("the same in seconds of the rate", f"{b['max_lag_seconds']:.2f}"),
        ("most due but not enqueued (jobs)", f"{b['max_enqueued_behind_schedule']:,}"),
    ]
    if a:
        figures += [
            (
                f"ceiling, asked {a['asked_per_min']:,.0f}/min: processed/s",
                num(a["ceiling_processed_per_s"]),
            ),
            ("ceiling: enqueued/s", num(a["ceiling_enqueued_per_s"])),
        ]
    out = table(("figure", "value"), figures)
    out += _cpu({"batched run": b["cpu"], **({"ceiling": a["cpu"]} if a else {})})
    out += _commandstats({"batched run": (b["redis_commandstats"], b["jobs"])})
    out += _profile(b.get("profile"), f"y = {b['asked_per_s'] * 60:,.0f}/min")
    return out


def fidelity(fs: list[dict[str, Any]]) -> list[str]:
    header = (
        "asked/min",
        "achieved/min",
        "error",
        "fixed window/min",
        "most enqueued in any 1 s",
        "largest tick (expected: y/60 × tick)",
        "ticks in window",
    )
    body = [
        [
            f"{f['asked_per_min']:,.0f}",
            num(f["achieved_per_min"], 2),
            "n/a" if f["error_pct"] is None else f"{f['error_pct']:+.3f} %",
            num(f["fixed_window_per_min"], 1),
            f"{f['max_enqueued_in_1s']:,}",
            f"{f.get('largest_tick', 0):,} ({f['per_tick_expected']:,g})",
            f["ticks_in_window"],
        ]
        for f in fs
    ]
    return table(header, body)


def latency(lat: dict[str, Any]) -> list[str]:
    header = (
        "clients",
        "web processes",
        "optio's web process",
        "WebSocket extensions (connections)",
        "p50 / p99 / max ms",
        "samples (missing)",
        "CPU cores: web processes / clients",
        "web RSS (each)",
        "load average (1 min) before; others' CPU cores during",
    )
    body = []
    for row in lat["rows"]:
        shares = row["cpu"]["core_share"]
        webs = [v for k, v in shares.items() if k.startswith("web")]
        rss = " / ".join(mib(v) for v in row["web_rss_bytes"].values())
        body.append(
            [
                f"{row['clients']:,}",
                row["webs"],
                row["variant"],
                ", ".join(f"{ext} ({n:,})" for ext, n in row["extensions"].items()),
                f"**{num(row['p50_ms'], 1)} / {num(row['p99_ms'], 1)}** / {num(row['max_ms'], 1)}",
                f"{row['n']:,} ({row['missing']})",
                f"{' + '.join(f'{v:.2f}' for v in webs)} / {shares.get('clients', 0):.2f}",
                rss,
                f"{row['load_average_1m']:.2f}; {row['cpu']['others_busy_cores']:.2f}",
            ]
        )
    out = table(header, body)
    out += [
        f"{lat['states_per_s']} states/s for {lat['seconds']:.0f} s per row; Node.js "
        f"{lat['node']}, socket.io-client {lat['socket.io-client']}; load average at start / "
        f"end {lat['load_average_at_start']} / {lat['load_average_at_end']}.",
        "",
    ]
    for row in lat["rows"]:
        title = f"{row['clients']:,} clients on {row['webs']} web process, {row['variant']}"
        out += _profile(row.get("web_profile"), title)
    return out


def api(a: dict[str, Any]) -> list[str]:
    out = table(
        ("pipeline", "requests", "p50 ms", "p99 ms", "max ms", "errors"),
        [
            [
                name,
                s["n"],
                num(s["p50_ms"], 2),
                num(s["p99_ms"], 2),
                num(s["max_ms"], 2),
                s["errors"],
            ]
            for name, s in (("idle", a["idle"]), ("at its ceiling", a["at_ceiling"]))
        ],
    )
    out += _cpu({"at its ceiling": a["cpu"]})
    out += _profile(a.get("web_profile"), "web at the ceiling")
    return out


def memory(m: dict[str, Any]) -> list[str]:
    jobs = m["results_fields"] or 1
    kb = m["key_bytes"]
    before = m.get("rss_bytes_before_run", {})
    out = table(
        ("process", "RSS before the run", "RSS after"),
        [[name, mib(before.get(name)), mib(v)] for name, v in m["rss_bytes"].items()],
    )
    out += table(
        ("Redis", "before the run", "after"),
        [
            ["used_memory", mib(m["redis_used_memory_before_run"]), mib(m["redis_used_memory"])],
            ["used_memory_rss", "", mib(m["redis_used_memory_rss"])],
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


def _percent(share: float | None, digits: int = 1) -> str:
    return "n/a" if share is None else f"{100 * share:.{digits}f} %"


def throttle(ts: list[dict[str, Any]]) -> list[str]:
    header = (
        "server allows",
        "bucket (most calls at once)",
        "y asked",
        "accepted/s (of capacity)",
        "429s: share of calls (per 1,000 accepted)",
        "rateNow min / mean / max, /min",
        "mean rateNow / limit",
        "accepted more than once",
        "window (samples)",
    )
    body = [
        [
            f"{t['limit_per_s']:g}/s ({t['limit_per_s'] * 60:,.0f}/min)",
            f"{t.get('burst', t['limit_per_s']):g}",
            f"{t['asked_per_min']:,.0f}/min",
            f"{num(t['accepted_per_s'], 1)} ({100 * t['capacity_used']:.1f} %)",
            f"{_percent(refused_share(t), 2)} ({num(t['refused_per_1000_accepted'], 1)})",
            f"{num(t['rate_now_min'])} / {num(t['rate_now_mean'])} / {num(t['rate_now_max'])}",
            num(t["rate_now_mean_over_limit"], 2),
            f"{t['accepted_more_than_once']} of {t['run_accepted']:,} jobs",
            f"{t['window_s']:.0f} s ({t['rate_now_samples']})",
        ]
        for t in ts
    ]
    out = table(header, body)
    out += _cpu(
        {
            f"{t['limit_per_s']:g}/s, burst {t.get('burst', t['limit_per_s']):g}": t["cpu"]
            for t in ts
        }
    )
    return out


def refused_share(t: dict[str, Any]) -> float | None:
    """The 429s' share of the calls in a throttled run's window (computed from its counts for
    results written before it was recorded)."""
    if "refused_share_of_calls" in t:
        return t["refused_share_of_calls"]
    return share_of_calls(t["accepted"], t["refused_429"])


def pacing(ps: list[dict[str, Any]]) -> list[str]:
    header = (
        "asked/min",
        "most starts in any 100 ms: window (bound)",
        "the same over the whole run",
        "starts/min in the window (error)",
        "starts: window / run",
        "first start after POST /api/run",
        "state samples heldBack (by)",
        "warm-up + window",
    )
    body = [
        [
            f"{p['asked_per_min']:,.0f}",
            f"**{p['most_in_100ms']:,}** ({p['bound']:,})",
            f"{p['most_in_100ms_whole_run']:,}",
            f"{num(p['starts_per_min'], 1)} ({p['error_pct']:+.2f} %)",
            f"{p['starts_in_window']:,} / {p['starts']:,}",
            f"{num(p['first_start_after_post_ms'])} ms",
            f"{p['held_back_samples']} of {p['state_samples']}"
            + "".join(f"; {why} {n}" for why, n in p["held_back_by"].items()),
            f"{p['warm_up_s']:g} + {p['window_s']:g} s",
        ]
        for p in ps
    ]
    out = table(header, body)
    out += _cpu({f"{p['asked_per_min']:,.0f}/min": p["cpu"] for p in ps})
    return out


def machine(r: dict[str, Any]) -> list[str]:
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
            ["Redis persistence", persistence(r["settings"])],
            ["packages", f"{versions}, py-spy {mach['py_spy']}"],
            ["optio commit", commit],
            ["started, took", f"{r['started_at']}, {r['duration_s']:.0f} s"],
            [
                "load average at start / end",
                f"{r['load_average_at_start']} / {r['load_average_at_end']}",
            ],
            *(_separately(part, s) for part, s in r.get("separately", {}).items()),
        ],
    )


#: Parts that run on a redis-server of their own, not the bench's: how it keeps its data.
OWN_REDIS = {"soak": "aof everysec (the soak's own redis-server)"}


def _separately(part: str, s: dict[str, Any]) -> list[str]:
    """A row for a part measured by a later run of its own (``--only``)."""
    commit = s["optio_commit"] + (" (+ changes)" if s["optio_uncommitted_changes"] else "")
    quick = ", `--quick`" if s["settings"].get("quick") else ""
    return [
        f"{part}: measured separately",
        f"started {s['started_at']}, took {s['duration_s']:.0f} s{quick}; commit {commit}; "
        f"Redis persistence {OWN_REDIS.get(part) or persistence(s['settings'])}; "
        f"load average {s['load_average_at_start']} / {s['load_average_at_end']}",
    ]


def persistence(settings: dict[str, Any]) -> str:
    """How the run's redis-server kept its data (runs before it was recorded had none)."""
    return settings.get("redis_persistence", "off")


#: (block name, heading used when the hand-written text has no such block, tables).


def rabbitmq(r: dict[str, Any]) -> list[str]:
    """The ceiling and batched figures on RabbitMQ beside those on Redis (the last run of those
    parts), each against bare Celery on the same broker."""
    q = r["rabbitmq"]
    rows = []
    for broker, c, when in (
        ("Redis", r.get("ceiling"), r.get("started_at")),
        ("RabbitMQ", q.get("ceiling"), q.get("started_at")),
    ):
        if c:
            rounds = " / ".join(num(o["jobs_per_s"]) for o in c["optio_runs"])
            bare = " / ".join(num(b["jobs_per_s"]) for b in c["bare_runs"])
            publish = " / ".join(num(b["publish_per_s"]) for b in c["bare_runs"])
            rows.append([broker, rounds, bare, f"**{c['ratio']:.2f}**", publish, when or "n/a"])
    out = table(
        (
            "broker: one message per job",
            "optio jobs/s (rounds)",
            "bare Celery jobs/s (rounds)",
            "optio / bare (medians)",
            "bare publish/s",
            "measured",
        ),
        rows,
    )
    rows = []
    for broker, b, when in (
        ("Redis", r.get("batched"), r.get("started_at")),
        ("RabbitMQ", q.get("batched"), q.get("started_at")),
    ):
        if b:
            rows.append(
                [
                    broker,
                    num(b["asked_per_s"]),
                    f"**{num(b['processed_per_s_steady'])}**",
                    num(b["enqueued_per_s_steady"]),
                    f"{b['seconds']:.1f} ({b['ideal_seconds']:.1f})",
                    f"{b['max_lag_seconds']:.2f}",
                    when or "n/a",
                ]
            )
    out += table(
        (
            f"broker: batched, {q['settings']['batched_jobs']:,} jobs",
            "asked jobs/s",
            "processed/s while enqueuing",
            "enqueued/s",
            "run time s (ideal)",
            "most processed lags enqueued (s)",
            "measured",
        ),
        rows,
    )
    cpus = {}
    if q.get("ceiling"):
        cpus["optio, one message per job"] = q["ceiling"]["optio_runs"][-1]["cpu"]
        cpus["bare Celery"] = q["ceiling"]["bare_runs"][-1]["cpu"]
    if q.get("batched"):
        cpus["optio, batched"] = q["batched"]["cpu"]
    if cpus:
        out += _cpu(cpus)
    out += _rabbitmq_run(q)
    return out


def _rabbitmq_run(q: dict[str, Any]) -> list[str]:
    m = q["machine"]
    return table(
        ("RabbitMQ run", "value"),
        [
            ("RabbitMQ server", m.get("rabbitmq_server", "n/a")),
            ("node start-up s", num(q.get("node_start_s"), 1)),
            ("load average at start", " / ".join(num(v, 2) for v in q["load_average_at_start"])),
            ("tick s", num(q["settings"].get("tick_seconds"), 2)),
            ("Redis persistence", persistence(q["settings"])),
            ("optio commit", m.get("optio_commit", "n/a")),
            ("duration s", num(q.get("duration_s"), 1)),
        ],
    )
