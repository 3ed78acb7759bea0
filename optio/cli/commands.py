"""The ``optio`` command: control runs over the HTTP API, follow one live, or serve.

``optio run X Y``, ``status``, ``update``, ``pause``, ``resume``, ``stop``, ``runs`` and
``retry-failed`` make one API call each and print one line (``runs``: a table), or with
``--json`` the server's JSON answer on one line. Several runs may be active at once: ``update``,
``pause``, ``resume`` and ``stop`` take a run id (without one they act on the one active run,
and the server refuses when several are). ``optio results`` streams a run's outcomes to
stdout; ``optio watch`` follows a run's progress over Socket.IO (``optio.cli.watch``);
``optio serve`` runs the web process.

Exit codes: 0 ok; 1 the server refused (its error is printed to stderr); 2 bad arguments;
3 cannot connect to the server (or what answers is not optio); 130 interrupted (Ctrl-C).
``optio watch`` exits 0 when the run completes and 1 when it is stopped or replaced.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import datetime
from typing import Any
from urllib.parse import quote

from optio import config
from optio.cli.client import Answer, Api, Refused, Unreachable
from optio.cli.format import runs_table, summary

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NO_CONNECTION, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES = """\
exit codes:
  0    ok
  1    the server refused (its error is printed on stderr)
  2    bad arguments
  3    cannot connect to the server (the message says which address and why)
  130  interrupted (Ctrl-C)"""

WATCH_EXIT_CODES = """\
exit codes:
  0    the run completed (or --once printed the state)
  1    the run was stopped, or another run replaced it
  2    bad arguments
  3    cannot connect to the server
  130  interrupted (Ctrl-C)"""

_GROUPED = re.compile(r"[0-9]{1,3}(,[0-9]{3})+")
_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def _digits(text: str) -> str:
    """``text`` without thousands separators ("1,500.5" -> "1500.5"); misplaced commas stay."""
    whole, dot, fraction = text.strip().partition(".")
    if _GROUPED.fullmatch(whole):
        whole = whole.replace(",", "")
    return whole + dot + fraction


def jobs(text: str) -> int:
    """X: a whole number of jobs, at least 1 (argparse type)."""
    digits = _digits(text)
    if not _WHOLE.fullmatch(digits) or int(digits) < 1:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of jobs, at least 1 (1,500 is fine), got {text!r}"
        )
    return int(digits)


def per_minute(text: str) -> float:
    """Y: jobs per minute, a number above 0 (argparse type)."""
    digits = _digits(text)
    if not _DECIMAL.fullmatch(digits) or float(digits) <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a number of jobs per minute above 0 (0.5 and 1,500 are fine), got {text!r}"
        )
    return float(digits)


def weight(text: str) -> float:
    """--weight of ``optio run``: a number above 0."""
    digits = _digits(text)
    if not _DECIMAL.fullmatch(digits) or float(digits) <= 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0 (0.5 is fine), got {text!r}")
    return float(digits)


def in_flight(text: str) -> int:
    """--max-in-flight of ``optio run``: a whole number of jobs, at least 1."""
    digits = _digits(text)
    if not _WHOLE.fullmatch(digits) or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number, at least 1, got {text!r}")
    return int(digits)


def deadline(text: str) -> float | str:
    """--deadline of ``optio run``: seconds from now (above 0), or an ISO 8601 time with a
    timezone (2026-12-05T06:00:00Z), sent as given."""
    digits = _digits(text)
    if _DECIMAL.fullmatch(digits):
        if float(digits) <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0 seconds from now, got {text!r}")
        return float(digits)
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise argparse.ArgumentTypeError(
            "must be seconds from now or an ISO 8601 time with a timezone "
            f"(2026-12-05T06:00:00Z), got {text!r}"
        )
    return text.strip()


def page_size(text: str) -> int:
    """--limit of ``optio runs``: 1 to 100 runs."""
    if not _WHOLE.fullmatch(text.strip()) or not 1 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 100, got {text!r}")
    return int(text)


def server_url(text: str) -> str:
    if not re.match(r"https?://[^/]", text):
        raise argparse.ArgumentTypeError(
            f"must be an http:// or https:// address, got {text!r} (from --url or OPTIO_URL)"
        )
    return text.rstrip("/")


def _wire(y: float) -> float | int:
    return int(y) if y.is_integer() else y


def _run_rate(args: argparse.Namespace) -> float:
    """Y of ``optio run``: the second number, or -y."""
    return args.rate if args.y is None else args.y


def _run_terms(args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``optio run`` besides x: y or deadline, weight, maxInFlight."""
    y = _run_rate(args)
    terms: dict[str, Any] = {"y": None if y is None else _wire(y)}
    if args.deadline is not None:
        terms["deadline"] = (
            _wire(args.deadline) if isinstance(args.deadline, float) else args.deadline
        )
    if args.weight is not None:
        terms["weight"] = _wire(args.weight)
    if args.max_in_flight is not None:
        terms["maxInFlight"] = args.max_in_flight
    return {name: value for name, value in terms.items() if value is not None}


def _run_path(args: argparse.Namespace, verb: str = "") -> str:
    """``/api/runs/<id>[/verb]`` when the command names a run; else the unnamed control."""
    if args.run_id is None:
        return f"/api/{verb}" if verb else "/api/run"
    return f"/api/runs/{quote(args.run_id, safe='')}" + (f"/{verb}" if verb else "")


def request_for(args: argparse.Namespace) -> tuple[str, str, dict | None, dict | None]:
    """The API call of a command: method, path, JSON body, query."""
    command = args.command
    if command == "run":
        return "POST", "/api/run", {"x": args.x, **_run_terms(args)}, None
    if command == "update":
        body: dict[str, Any] = {}
        if args.x is not None:
            body["x"] = args.x
        if args.y is not None:
            body["y"] = _wire(args.y)
        return "PUT", _run_path(args), body, None
    if command == "runs":
        if args.active:
            return "GET", "/api/runs", None, {"active": 1}
        return "GET", "/api/runs", None, {"limit": args.limit, "before": args.before}
    if command == "retry-failed":
        return "POST", f"/api/runs/{quote(args.run_id, safe='')}/retry-failed", None, None
    if command == "status":
        return "GET", "/api/status", None, None
    return "POST", _run_path(args, command), None, None  # pause, resume, stop


#: Bytes of an items file read and sent at a time.
UPLOAD_BYTES = 64 * 1024


def items_media(path: str, csv: bool) -> str:
    """The Content-Type of an items file: CSV for ``--csv`` or a ``.csv`` name, else NDJSON
    (standard input, ``-``, too)."""
    if csv or (path != "-" and path.lower().endswith(".csv")):
        return "text/csv"
    return "application/x-ndjson"


def _send(args: argparse.Namespace) -> Answer:
    api = Api(args.url, args.token)
    if args.command == "run" and args.items is not None:
        source = args.items_source
        chunks = iter(lambda: source.read(UPLOAD_BYTES), b"")
        media = items_media(args.items, args.csv)
        return api.upload("/api/runs", chunks, media, _run_terms(args))
    method, path, body, query = request_for(args)
    return api.call(method, path, body, query)


def call(args: argparse.Namespace) -> int:
    """Make the command's API call and print its answer; return the exit code."""
    name = f"optio {args.command}"
    try:
        answer = _send(args)
    except Refused as exc:
        print(f"{name}: {exc.message}", file=sys.stderr)
        if exc.status == 401 and not args.token:
            print("Pass the API token with --token or OPTIO_API_TOKEN.", file=sys.stderr)
        return EXIT_REFUSED
    except Unreachable as exc:
        print(
            f"{name}: cannot connect to {args.url}: {exc}.\n"
            "Is the web process running there? Pass another address with --url or OPTIO_URL.",
            file=sys.stderr,
        )
        return EXIT_NO_CONNECTION
    if args.json:
        print(answer.text)
    elif args.command == "runs":
        runs = answer.data.get("runs") or []
        none = "no active runs" if args.active else "no runs"
        print("\n".join(runs_table(runs)) if runs else none)
        if answer.data.get("next"):
            print(f"older runs: optio runs --before {answer.data['next']}")
    else:
        print(summary(answer.data))
    return EXIT_OK


def serve(host: str | None, port: int | None) -> int:
    """Become the web process. A fresh interpreter, because eventlet must monkey-patch before
    anything else is imported (this module already imported threading)."""
    env = dict(os.environ)
    if host:
        env["OPTIO_HOST"] = host
    if port:
        env["PORT"] = str(port)
    os.execve(sys.executable, [sys.executable, "-m", "optio.serve"], env)
    return EXIT_OK  # not reached


def _client_options(parser: argparse.ArgumentParser, json_help: str | None) -> None:
    parser.add_argument(
        "--url",
        type=server_url,
        default=config.SETTINGS.url,
        help=f"server address (default from OPTIO_URL: {config.SETTINGS.url})",
    )
    parser.add_argument(
        "--token",
        default=config.SETTINGS.api_token,
        help="API token, when the server wants one (default from OPTIO_API_TOKEN)",
    )
    if json_help:
        parser.add_argument("--json", action="store_true", help=json_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optio",
        description="optio command-line tools",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help,
            description=description,
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _client_options(sub, "print the server's JSON answer on one line")
        return sub

    _api_commands(command)
    _results_command(commands)
    _watch_command(commands)
    _serve_command(commands)
    return parser


def _api_commands(command) -> None:
    """The commands that make one API call: ``command(name, help, description)`` adds one."""
    _run_command(command)
    _control_commands(command)
    runs = command(
        "runs",
        "list runs, newest first",
        "List runs, newest first: status, processed/x, failed jobs, rate,\n"
        "how long each ran (paused time left out) and when it started (local time).",
    )
    runs.add_argument(
        "--limit", metavar="N", type=page_size, help="runs per page (1 to 100; default 20)"
    )
    runs.add_argument("--before", metavar="RUN_ID", help="list the runs older than this one")
    runs.add_argument(
        "--active", action="store_true", help="only the active runs (running or paused), all"
    )
    runs.set_defaults(usage_error=runs.error)
    retry = command(
        "retry-failed",
        "run a completed run's failed jobs again",
        "Put a completed run's failed jobs back in its schedule: the run runs\n"
        "again until they are done.",
    )
    retry.add_argument("run_id", metavar="RUN_ID")


def _run_command(command) -> None:
    run = command(
        "run",
        "start a run of X jobs, or of one job per item, at Y jobs/min",
        "Start a run: `optio run X Y`, or `optio run --items FILE -y Y` for one job per\n"
        "item of FILE (job k gets the k-th item: f(run_id, job_id, item)). FILE is\n"
        "NDJSON (one JSON value a line) or, named *.csv or with --csv, CSV with a header\n"
        "row (each row an object keyed by it); - reads standard input. The file is\n"
        "streamed: any size works, up to the server's OPTIO_MAX_ITEMS.\n"
        "The run starts beside the runs already active. Instead of Y, --deadline WHEN\n"
        "(seconds from now, or an ISO 8601 time with a timezone) derives the rate from\n"
        "the jobs left and the time left.",
    )
    run.add_argument(
        "x", metavar="X", type=jobs, nargs="?", help="jobs to run (a whole number, 1,500 is ok)"
    )
    run.add_argument(
        "rate", metavar="Y", type=per_minute, nargs="?", help="jobs per minute (above 0)"
    )
    run.add_argument("--items", metavar="FILE", help="one job per item of FILE (- for stdin)")
    run.add_argument("-y", dest="y", metavar="Y", type=per_minute, help="jobs per minute")
    run.add_argument("--csv", action="store_true", help="FILE is CSV whatever its name")
    run.add_argument(
        "--deadline",
        metavar="WHEN",
        type=deadline,
        help="instead of Y: done by WHEN, seconds from now (3600) or an ISO 8601 time "
        "with a timezone (2026-12-05T06:00:00Z)",
    )
    run.add_argument(
        "--weight",
        metavar="W",
        type=weight,
        help="the run's share of the server's OPTIO_MAX_RATE against the others' (default 1)",
    )
    run.add_argument(
        "--max-in-flight",
        metavar="N",
        type=in_flight,
        help="most of the run's jobs out at once (default: no bound of its own)",
    )
    run.set_defaults(usage_error=run.error)


def _control_commands(command) -> None:
    """status, and the controls that take a run id (the one active run without it)."""
    command(
        "status",
        "print the current state",
        "Print the newest active run's state (or the last run's).",
    )
    update = command(
        "update",
        "change a running run's X and/or Y",
        "Change a running (or paused) run's total or rate: RUN_ID's, or the one\n"
        "active run's when none is given.",
    )
    _run_id_argument(update)
    update.add_argument("--x", metavar="N", type=jobs, help="new total of jobs")
    update.add_argument("--y", metavar="N", type=per_minute, help="new rate, jobs per minute")
    update.set_defaults(usage_error=update.error)
    _run_id_argument(
        command(
            "pause",
            "pause a running run",
            "Pause a running run (RUN_ID, or the one active run): no job of it starts\n"
            "until it is resumed.",
        )
    )
    _run_id_argument(
        command(
            "resume",
            "resume a paused run",
            "Resume a paused run (RUN_ID, or the one active run) where it stopped.",
        )
    )
    _run_id_argument(
        command(
            "stop",
            "stop a running run",
            "Stop a running (or paused) run for good (RUN_ID, or the one active run).",
        )
    )


def _run_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_id",
        metavar="RUN_ID",
        nargs="?",
        help="the run (see optio runs --active); needed when several runs are active",
    )


def _results_command(commands) -> None:
    r = commands.add_parser(
        "results",
        help="write every job's outcome of a run to stdout (JSON Lines or CSV)",
        description=(
            "Write one row per job of a run, in job order, to standard output as the server\n"
            "streams it: job, item, status, result, error, attempts, ms, finishedAt.\n"
            "Finished jobs (processed and failed) unless --failed or --all says otherwise;\n"
            "works while the run runs.\n\n"
            "  optio results 5f0c2a91be3d --failed --csv > failed.csv"
        ),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _client_options(r, None)
    r.add_argument("run_id", metavar="RUN_ID")
    which = r.add_mutually_exclusive_group()
    which.add_argument("--failed", action="store_true", help="only the jobs that failed for good")
    which.add_argument(
        "--all", action="store_true", help="every job, those not finished yet as pending"
    )
    r.add_argument("--csv", action="store_true", help="CSV with a header row (default: JSON Lines)")


def results(args: argparse.Namespace) -> int:
    """Stream run ``args.run_id``'s export to stdout; return the exit code."""
    status = "failed" if args.failed else "all" if args.all else None
    query = {"format": "csv" if args.csv else None, "status": status}
    path = f"/api/runs/{quote(args.run_id, safe='')}/results"
    try:
        Api(args.url, args.token).stream(path, query, sys.stdout.buffer)
        sys.stdout.flush()
    except Refused as exc:
        print(f"optio results: {exc.message}", file=sys.stderr)
        if exc.status == 401 and not args.token:
            print("Pass the API token with --token or OPTIO_API_TOKEN.", file=sys.stderr)
        return EXIT_REFUSED
    except Unreachable as exc:
        print(f"optio results: {args.url}: {exc}.", file=sys.stderr)
        return EXIT_NO_CONNECTION
    except BrokenPipeError:  # `optio results ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def _watch_command(commands) -> None:
    w = commands.add_parser(
        "watch",
        help="follow a run's progress live",
        description=(
            "Follow the running run (or, when none is running, the next one to start)\n"
            "until it ends; with RUN_ID, that run (several may be active). A paused run\n"
            "is still followed (shown as PAUSED)."
        ),
        epilog=WATCH_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _client_options(w, "print every state received as JSON")
    w.add_argument("--once", action="store_true", help="print the current state and exit")
    w.add_argument(
        "run_id",
        nargs="?",
        metavar="RUN_ID",
        help="follow this run (default: the one clients are shown)",
    )


def _serve_command(commands) -> None:
    s = commands.add_parser(
        "serve",
        help="run the web process (HTTP API, dashboard, Socket.IO)",
        description=(
            "Run optio's web process. Workers and the scheduler run as "
            "`celery -A optio.tasks worker` and `celery -A optio.tasks beat`, "
            "all with the same REDIS_URL."
        ),
    )
    s.add_argument(
        "--host", help=f"interface to bind (default from OPTIO_HOST: {config.SETTINGS.host})"
    )
    s.add_argument("--port", type=int, help=f"port (default from PORT: {config.SETTINGS.port})")


def _check_run(args: argparse.Namespace) -> None:
    """``run X Y`` (or ``run X -y Y``), or ``run --items FILE -y Y``; opens FILE (usage errors
    exit 2)."""
    if args.y is not None and args.rate is not None:
        args.usage_error("give Y once: as the second number or as -y")
    args.y = _run_rate(args)
    if args.deadline is not None:
        if args.y is not None:
            args.usage_error("give Y or --deadline, not both")
        args.y = args.rate = None
    if args.items is None:
        if args.x is None or (args.y is None and args.deadline is None):
            args.usage_error(
                "give X and Y (optio run 100 60) or X --deadline WHEN, or --items FILE -y Y"
            )
        if args.csv:
            args.usage_error("--csv goes with --items")
        return
    if args.x is not None:
        args.usage_error("with --items the items are the jobs: give no X, and Y as -y Y")
    if args.y is None and args.deadline is None:
        args.usage_error("give the rate with -y Y (jobs per minute), or --deadline WHEN")
    try:
        args.items_source = (
            sys.stdin.buffer if args.items == "-" else open(args.items, "rb")  # noqa: SIM115
        )
    except OSError as exc:
        args.usage_error(f"cannot read {args.items}: {exc.strerror or exc}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "serve":
        return serve(args.host, args.port)
    if args.command == "update" and args.x is None and args.y is None:
        args.usage_error("give --x, --y or both")  # exits 2
    if args.command == "run":
        _check_run(args)
    if args.command == "runs" and args.active and (args.limit or args.before):
        args.usage_error("--active lists every active run: no --limit or --before with it")
    try:
        if args.command == "results":
            return results(args)
        if args.command == "watch":
            from optio.cli.watch import watch

            return watch(
                args.url, once=args.once, as_json=args.json, token=args.token, run_id=args.run_id
            )
        return call(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
