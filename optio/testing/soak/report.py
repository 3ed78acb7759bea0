"""The soak's table, as Markdown: the run, faults by kind, executions, memory, the checks,
and every unexplained extra execution or lost job with its faults."""

from __future__ import annotations

from typing import Any

MIB = 1024 * 1024


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def run_lines(r: dict[str, Any]) -> list[str]:
    run = r["run"]
    return _table(
        (
            "seed",
            "minutes",
            "x",
            "y/min",
            "lease s",
            "status",
            "took s (schedule + limit)",
            "processed",
            "failed",
            "bits",
        ),
        [
            (
                r["seed"],
                f"{r['minutes']:g}",
                f"{r['x']:,}",
                f"{r['y']:,.0f}",
                f"{r['lease_s']:g}",
                run["status"],
                f"{run['took_s']} ({run['schedule_s']:g} + {run['drain_limit_s']:g})",
                f"{run['processed']:,}",
                f"{run['failed']:,}",
                f"{run['bits']:,}",
            )
        ],
    )


def _or_dash(value: Any) -> str:
    return "—" if value is None else str(value)


def fault_lines(r: dict[str, Any]) -> list[str]:
    rows = [
        (
            kind,
            row["count"],
            _or_dash(row["recovery_median_s"]),
            _or_dash(row["recovery_max_s"]),
            row["explained_extra"],
        )
        for kind, row in r["faults"].items()
    ]
    total = sum(row["count"] for row in r["faults"].values())
    rows.append(("**all**", total, "", "", sum(r["executions"]["explained"].values())))
    return _table(
        ("fault", "count", "recovery median s", "recovery max s", "extra executions it explains"),
        rows,
    )


def execution_lines(r: dict[str, Any]) -> list[str]:
    e = r["executions"]
    return _table(
        (
            "executions",
            "succeeded",
            "planned raises (fail once, throttle)",
            "never ended (killed)",
            "extra",
            "explained",
            "unexplained jobs",
            "lost jobs",
        ),
        [
            (
                f"{e['executions']:,}",
                f"{e['succeeded']:,}",
                f"{e['planned_raises']:,}",
                e["never_ended"],
                e["extra"],
                sum(e["explained"].values()),
                len(r["unexplained"]),
                r["lost_count"],
            )
        ],
    )


def memory_lines(r: dict[str, Any]) -> list[str]:
    rows = []
    for name, m in r["memory"].items():
        within = "yes" if m["bounded"] else "**no**"
        if name not in r["memory_judged"]:
            within = "not judged (holds the run's results)"
        first, last = m["first_third_max"] / MIB, m["last_third_max"] / MIB
        rows.append((name, f"{first:.1f}", f"{last:.1f}", m["ratio"], within))
    header = ("memory", "first third max MiB", "last third max MiB", "ratio")
    return _table((*header, f"last within {r['memory_factor']:g}x first"), rows)


def incident_lines(r: dict[str, Any]) -> list[str]:
    """Processes that exited on their own (the supervisor started them again)."""
    rows = [
        (
            i["at_s"],
            i["process"],
            i["pid"],
            i["exit_code"],
            i["restart_s"],
            i["last_error"].replace("|", "/"),
        )
        for i in r["incidents"]
    ]
    if not rows:
        return ["No process exited on its own.", ""]
    header = ("at s", "exited on its own", "pid", "exit code", "restart took s", "last error")
    return _table(header, rows)


def check_lines(r: dict[str, Any]) -> list[str]:
    rows = [(c["name"], "ok" if c["ok"] else "**FAILED**", c["detail"]) for c in r["checks"]]
    return _table(("check", "verdict", "figures"), rows)


def detail_lines(r: dict[str, Any]) -> list[str]:
    lines = []
    for item in r["unexplained"]:
        runs = "; ".join(
            f"pid {e['pid']} (group {e['pgid']}) {e['start_s']}–{e['end_s']} s {e['outcome']}"
            for e in item["executions"]
        )
        near = "; ".join(
            f"{f['kind']} {f['target']} pid {f['pid']} {f['start_s']}–{f['end_s']} s"
            for f in item["faults_near"]
        )
        lines.append(
            f"- unexplained: job {item['job']} ({item['extra']} extra): {runs}. "
            f"Faults within 30 s: {near or 'none'}"
        )
    if r["lost_count"]:
        lines.append(f"- lost (never succeeded): {r['lost_count']} job(s): {r['lost'][:20]}")
    return lines + ([""] if lines else [])


def tables(r: dict[str, Any]) -> list[str]:
    """Every table of the report, and the unexplained executions and lost jobs."""
    lines: list[str] = []
    parts = (run_lines, fault_lines, execution_lines, incident_lines, memory_lines, check_lines)
    for part in parts:
        lines += part(r)
    return lines + detail_lines(r)


def render(r: dict[str, Any]) -> str:
    verdict = "PASSED" if r["ok"] else "FAILED"
    lines = [f"Chaos soak: {verdict} (seed {r['seed']}, {r['minutes']:g} min)", ""]
    return "\n".join(lines + tables(r)).rstrip("\n")
