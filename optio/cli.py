"""The ``optio`` command. ``optio watch`` follows a run's progress over Socket.IO;
``optio serve`` runs the web process.

Exit codes of ``optio watch``: 0 the run completed (or ``--once`` printed the state),
1 the run was stopped or replaced by another, 2 bad arguments, 3 no connection to the server,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import sys
import time
from collections import deque
from typing import Any, TextIO

from optio import config

EXIT_OK, EXIT_ENDED, EXIT_USAGE, EXIT_NO_CONNECTION, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: Seconds to wait for the server to accept the connection and send the first state.
CONNECT_TIMEOUT = 10.0
#: Seconds over which the throughput is measured.
RATE_WINDOW = 10.0
#: Seconds between two progress lines when the output is not a terminal.
LINE_INTERVAL = 1.0
#: Seconds between two redraws of the progress bar.
BAR_INTERVAL = 0.1
BAR_WIDTH = 24


class Throughput:
    """Jobs per minute over a trailing window, measured from the events' ``processed``."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, processed: int) -> None:
        self.samples.append((now, processed))
        # keep one sample at or before the window's start as the baseline
        while len(self.samples) > 1 and self.samples[1][0] <= now - self.window:
            self.samples.popleft()

    def per_minute(self, now: float) -> float | None:
        if len(self.samples) < 2:
            return None
        first_t, first_n = self.samples[0]
        span = now - first_t
        if span < 1.0:
            return None
        return (self.samples[-1][1] - first_n) * 60.0 / span


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def rate_text(per_minute: float) -> str:
    if per_minute >= 100:
        return f"{per_minute:,.0f}"
    return f"{per_minute:,.1f}".rstrip("0").rstrip(".")


def percent(state: dict[str, Any]) -> float:
    total = state.get("xTotal") or 0
    return int(state["processed"] * 1000 / total) / 10 if total else 0.0


def summary(state: dict[str, Any]) -> str:
    """One line describing any state, for ``--once`` and the final line."""
    if not state.get("runId"):
        return "idle: no run has been started"
    total = state["xTotal"]
    text = (
        f"run {state['runId']} {state['status']}: processed {state['processed']:,}/{total:,} "
        f"({percent(state):.1f}%), enqueued {state['enqueued']:,}, "
        f"rate {rate_text(state['yMinute'])}/min"
    )
    if state.get("failed"):
        text += f", failed {state['failed']:,}"
    if state.get("running") and state.get("heldBack"):
        text += (
            f", held back: enqueuing {rate_text(state.get('rateEnqueued', 0))}/min "
            "(the workers are behind)"
        )
    return text


class Display:
    """A redrawn progress bar on a terminal, plain throttled lines otherwise."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self.rate = Throughput()
        self.last_draw = 0.0
        self.bar_shown = False

    def show(self, state: dict[str, Any], force: bool = False) -> None:
        now = time.monotonic()
        self.rate.add(now, state["processed"])
        interval = BAR_INTERVAL if self.tty else LINE_INTERVAL
        if not force and now - self.last_draw < interval:
            return
        self.last_draw = now
        if self.tty:
            self._bar(state, now)
        else:
            self.out.write(f"{time.strftime('%H:%M:%S')} {self._numbers(state, now)}\n")
            self.out.flush()

    def _numbers(self, state: dict[str, Any], now: float) -> str:
        total = state["xTotal"]
        parts = [
            f"processed {state['processed']:,}/{total:,} ({percent(state):.1f}%)",
            f"enqueued {state['enqueued']:,}",
        ]
        measured = self.rate.per_minute(now)
        if measured is not None:
            parts.append(f"{rate_text(measured)} jobs/min")
            left = total - state["processed"]
            if state["running"] and measured > 0 and left > 0:
                parts.append(f"ETA {duration(left * 60 / measured)}")
        if state.get("failed"):
            parts.append(f"failed {state['failed']:,}")
        if state.get("running") and state.get("heldBack"):
            parts.append(f"HELD BACK: enqueuing {rate_text(state.get('rateEnqueued', 0))}/min")
        return " · ".join(parts)

    def _bar(self, state: dict[str, Any], now: float) -> None:
        total = state["xTotal"] or 1
        filled = min(BAR_WIDTH, state["processed"] * BAR_WIDTH // total)
        bar = "█" * filled + "░" * (BAR_WIDTH - filled)
        line = f"[{bar}] {self._numbers(state, now)}"
        width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
        self.out.write("\r" + line[:width].ljust(width))
        self.out.flush()
        self.bar_shown = True

    def end_line(self) -> None:
        """Leave the bar's line before printing anything else."""
        if self.bar_shown:
            self.out.write("\n")
            self.out.flush()
            self.bar_shown = False


class Follower:
    """Decides, state by state, what to print and when the watch is over."""

    def __init__(self, out: TextIO, err: TextIO, once: bool, as_json: bool) -> None:
        self.out, self.err = out, err
        self.once, self.as_json = once, as_json
        self.display = Display(out, tty=out.isatty() and not as_json)
        self.run_id: str | None = None
        self.seen_state = False

    def say(self, text: str) -> None:
        self.display.end_line()
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        self.display.end_line()
        print(f"optio watch: {text}", file=self.err, flush=True)

    def take(self, state: dict[str, Any]) -> int | None:
        """Handle one state; return an exit code once the watch is over."""
        first, self.seen_state = not self.seen_state, True
        if self.as_json:
            self.out.write(json.dumps(state, separators=(",", ":")) + "\n")
            self.out.flush()
        if self.once:
            if not self.as_json:
                self.say(summary(state))
            return EXIT_OK
        if self.run_id is None:
            if not state.get("running"):
                if first:
                    last = f" (last: {summary(state)})" if state.get("runId") else ""
                    self.say(f"No run is running{last}. Waiting for the next one; Ctrl-C to quit.")
                return None
            self.run_id = state["runId"]
            if not self.as_json:
                self.say(
                    f"Watching run {self.run_id}: {state['xTotal']:,} jobs at "
                    f"{rate_text(state['yMinute'])}/min"
                )
        if state.get("runId") != self.run_id:
            self.warn(f"run {self.run_id} was replaced by run {state['runId']}")
            return EXIT_ENDED
        if not self.as_json:
            self.display.show(state, force=not state["running"])
        if state["running"]:
            return None
        if state["status"] != "completed":
            self.warn(
                f"run {self.run_id} was {state['status']} at {state['processed']:,} of "
                f"{state['xTotal']:,} jobs processed"
            )
            return EXIT_ENDED
        if not self.as_json:
            took = ((state.get("finishedAt") or 0) - (state.get("startedAt") or 0)) / 1000
            self.say(
                f"Run {self.run_id} completed: {state['processed']:,} jobs processed "
                f"in {duration(took)}."
            )
        return EXIT_OK


def watch(url: str, once: bool = False, as_json: bool = False, token: str | None = None) -> int:
    """Follow the current (or next) run until it ends; return the exit code."""
    import socketio  # imported here: the other commands should not pay for it

    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    client = socketio.Client(reconnection=True, reconnection_delay=0.5, reconnection_delay_max=3)
    client.on("connect", lambda: events.put(("connect", None)))
    client.on("disconnect", lambda *_: events.put(("disconnect", None)))
    client.on("progress", lambda data: events.put(("progress", data)))
    try:
        client.connect(url, auth={"token": token} if token else None, wait_timeout=CONNECT_TIMEOUT)
    except socketio.exceptions.ConnectionError as exc:
        reason = _reason(exc)
        if "namespace" in reason.lower():  # the server answered and refused us
            hint = "The server refused the connection: does it want a token (--token)?"
        else:
            hint = "Is the web process running there? Pass another address with --url or OPTIO_URL."
        print(f"optio watch: cannot connect to {url}: {reason}.\n{hint}", file=sys.stderr)
        return EXIT_NO_CONNECTION

    follower = Follower(sys.stdout, sys.stderr, once, as_json)
    lost = False  # the connection dropped and has not come back yet
    deadline = time.monotonic() + CONNECT_TIMEOUT
    try:
        while True:
            try:
                kind, data = events.get(timeout=0.5)
            except queue.Empty:
                if not follower.seen_state and time.monotonic() > deadline:
                    follower.warn(f"{url} sent no state after connecting; is it optio?")
                    return EXIT_NO_CONNECTION
                continue
            if kind == "disconnect":
                lost = True
                follower.warn("connection lost; reconnecting…")
            elif kind == "connect" and lost:
                lost = False
                follower.warn("reconnected")
            elif kind == "progress":
                code = follower.take(data)
                if code is not None:
                    return code
    except KeyboardInterrupt:
        follower.display.end_line()
        return EXIT_INTERRUPTED
    finally:
        client.disconnect()


def _reason(exc: Exception) -> str:
    """The useful part of a connection error (requests nests the OS error deep inside)."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^\"')(]+)", text)
    if found:
        return found.group(1).strip().rstrip(".").lower()
    return text[:200] or "no answer"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="optio", description="optio command-line tools")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    w = commands.add_parser(
        "watch",
        help="follow a run's progress live",
        description=(
            "Follow the running run (or, when none is running, the next one to start) until it "
            "ends. Exit 0 when it completes, 1 when it is stopped, 3 when the server cannot be "
            "reached."
        ),
    )
    w.add_argument(
        "--url", default=config.URL, help=f"server address (default from OPTIO_URL: {config.URL})"
    )
    w.add_argument(
        "--token",
        default=config.API_TOKEN,
        help="API token, when the server protects reads (default from OPTIO_API_TOKEN)",
    )
    w.add_argument("--once", action="store_true", help="print the current state and exit")
    w.add_argument("--json", action="store_true", help="print every state received as JSON")
    s = commands.add_parser(
        "serve",
        help="run the web process (HTTP API, dashboard, Socket.IO)",
        description=(
            "Run optio's web process. Workers and the scheduler run as "
            "`celery -A optio.tasks worker` and `celery -A optio.tasks beat`, "
            "all with the same REDIS_URL."
        ),
    )
    s.add_argument("--host", help=f"interface to bind (default from OPTIO_HOST: {config.HOST})")
    s.add_argument("--port", type=int, help=f"port (default from PORT: {config.PORT})")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port)
    if args.command != "watch":
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return watch(args.url.rstrip("/"), once=args.once, as_json=args.json, token=args.token)


if __name__ == "__main__":
    sys.exit(main())
