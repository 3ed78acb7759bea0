"""``optio watch``: follow a run's progress over Socket.IO until it ends.

Exit codes: 0 the run completed (or ``--once`` printed the state), 1 the run was stopped or
replaced by another, 3 no connection to the server, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import sys
import time
from collections import deque
from typing import Any, TextIO
from urllib.parse import urlencode

from optio.cli.format import (
    active_seconds,
    duration,
    held_back_why,
    percent,
    rate_text,
    summary,
    throttled_below_y,
)

EXIT_OK, EXIT_ENDED, EXIT_NO_CONNECTION, EXIT_INTERRUPTED = 0, 1, 3, 130
#: Seconds to wait for the server to accept the connection and send the first state.
CONNECT_TIMEOUT = 10.0
#: Seconds over which the throughput is measured (paused time does not count).
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


class ActiveClock:
    """Monotonic seconds that stand still while the run is paused, so that the measured rate
    and the ETA leave paused time out."""

    def __init__(self) -> None:
        self.paused_since: float | None = None
        self.paused_total = 0.0

    def track(self, paused: bool, now: float) -> None:
        if paused and self.paused_since is None:
            self.paused_since = now
        elif not paused and self.paused_since is not None:
            self.paused_total += now - self.paused_since
            self.paused_since = None

    def read(self, now: float) -> float:
        current = now - self.paused_since if self.paused_since is not None else 0.0
        return now - self.paused_total - current


class Display:
    """A redrawn progress bar on a terminal, plain throttled lines otherwise."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self.rate = Throughput()
        self.clock = ActiveClock()
        self.last_draw = 0.0
        self.last_status: str | None = None
        self.bar_shown = False

    def show(self, state: dict[str, Any], force: bool = False, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.clock.track(state.get("status") == "paused", now)
        active = self.clock.read(now)
        self.rate.add(active, state["processed"])
        changed, self.last_status = state.get("status") != self.last_status, state.get("status")
        interval = BAR_INTERVAL if self.tty else LINE_INTERVAL
        if not (force or changed) and now - self.last_draw < interval:
            return
        self.last_draw = now
        if self.tty:
            self._bar(state, active)
        else:
            self.out.write(f"{time.strftime('%H:%M:%S')} {self.numbers(state, active)}\n")
            self.out.flush()

    def numbers(self, state: dict[str, Any], active: float) -> str:
        total = state["xTotal"]
        paused = state.get("status") == "paused"
        parts = ["PAUSED"] if paused else []
        parts += [
            f"processed {state['processed']:,}/{total:,} ({percent(state):.1f}%)",
            f"enqueued {state['enqueued']:,}",
        ]
        measured = self.rate.per_minute(active)
        if measured is not None:
            parts.append(f"{rate_text(measured)} jobs/min")
            left = total - state["processed"]
            if state["running"] and not paused and measured > 0 and left > 0:
                parts.append(f"ETA {duration(left * 60 / measured)}")
        if state.get("failed"):
            parts.append(f"failed {state['failed']:,}")
        if throttled_below_y(state):
            parts.append(f"THROTTLED: rate now {rate_text(state['rateNow'])}/min")
        if state.get("status") == "running" and state.get("heldBack"):
            parts.append(
                f"HELD BACK ({held_back_why(state)}): enqueuing "
                f"{rate_text(state.get('rateEnqueued', 0))}/min"
            )
        return " · ".join(parts)

    def _bar(self, state: dict[str, Any], active: float) -> None:
        total = state["xTotal"] or 1
        filled = min(BAR_WIDTH, state["processed"] * BAR_WIDTH // total)
        bar = "█" * filled + "░" * (BAR_WIDTH - filled)
        line = f"[{bar}] {self.numbers(state, active)}"
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

    def __init__(
        self, out: TextIO, err: TextIO, once: bool, as_json: bool, chosen: bool = False
    ) -> None:
        self.out, self.err = out, err
        #: the run was named: its states alone come, and an ended one is shown as such
        self.chosen = chosen
        self.once, self.as_json = once, as_json
        self.display = Display(out, tty=out.isatty() and not as_json)
        self.run_id: str | None = None
        self.started_at = 0
        self.seen_state = False
        self.last_seq: dict[str, int] = {}

    def say(self, text: str) -> None:
        self.display.end_line()
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        self.display.end_line()
        print(f"optio watch: {text}", file=self.err, flush=True)

    def stale(self, state: dict[str, Any]) -> bool:
        """Whether ``state`` is older than one already taken: a lower ``seq`` of the same run,
        or a state of a run that started before the one followed. Pub/sub and reconnects can
        deliver late; skipping these keeps the display from going backwards."""
        run_id, seq = state.get("runId"), state.get("seq")
        if not run_id:
            return False
        if (
            self.run_id
            and run_id != self.run_id
            and (state.get("startedAt") or 0) < self.started_at
        ):
            return True
        if isinstance(seq, int) and not isinstance(seq, bool):
            if seq < self.last_seq.get(run_id, seq):
                return True
            self.last_seq[run_id] = seq
        return False

    def take(self, state: dict[str, Any]) -> int | None:
        """Handle one state; return an exit code once the watch is over."""
        if self.stale(state):
            return None
        first, self.seen_state = not self.seen_state, True
        if self.as_json:
            self.out.write(json.dumps(state, separators=(",", ":")) + "\n")
            self.out.flush()
        if self.once:
            if not self.as_json:
                self.say(summary(state))
            return EXIT_OK
        if self.run_id is None:
            if not state.get("running") and not self.chosen:
                if first:
                    last = f" (last: {summary(state)})" if state.get("runId") else ""
                    self.say(f"No run is running{last}. Waiting for the next one; Ctrl-C to quit.")
                return None
            self.run_id, self.started_at = state["runId"], state.get("startedAt") or 0
            if not self.as_json:
                paused = " (paused)" if state.get("status") == "paused" else ""
                self.say(
                    f"Watching run {self.run_id}: {state['xTotal']:,} jobs at "
                    f"{rate_text(state['yMinute'])}/min{paused}"
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
            self.say(
                f"Run {self.run_id} completed: {state['processed']:,} jobs processed "
                f"in {duration(active_seconds(state))}."
            )
        return EXIT_OK


def watch(
    url: str,
    once: bool = False,
    as_json: bool = False,
    token: str | None = None,
    run_id: str | None = None,
) -> int:
    """Follow the current (or next) run until it ends, or run ``run_id`` when given (the
    server sends that run's states alone: ``?run=<id>``); return the exit code."""
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    client = _connect(url, token, run_id, events)
    if client is None:
        return EXIT_NO_CONNECTION

    follower = Follower(sys.stdout, sys.stderr, once, as_json, chosen=run_id is not None)
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
            elif kind == "unknown_run":
                follower.warn(f"{url} has no run {run_id}")
                return EXIT_ENDED
            elif kind == "progress":
                code = follower.take(data)
                if code is not None:
                    return code
    except KeyboardInterrupt:
        follower.display.end_line()
        return EXIT_INTERRUPTED
    finally:
        client.disconnect()


def _connect(url: str, token: str | None, run_id: str | None, events: queue.Queue) -> Any:
    """A Socket.IO client connected to ``url`` (following run ``run_id`` when given) that puts
    what it hears in ``events``; None, with the reason on stderr, when it cannot connect."""
    import socketio  # imported here: the other commands should not pay for it

    client = socketio.Client(reconnection=True, reconnection_delay=0.5, reconnection_delay_max=3)
    client.on("connect", lambda: events.put(("connect", None)))
    client.on("disconnect", lambda *_: events.put(("disconnect", None)))
    client.on("progress", lambda data: events.put(("progress", data)))
    client.on("unknown_run", lambda data: events.put(("unknown_run", data)))
    where = f"{url.rstrip('/')}/?{urlencode({'run': run_id})}" if run_id else url
    try:
        client.connect(
            where, auth={"token": token} if token else None, wait_timeout=CONNECT_TIMEOUT
        )
    except socketio.exceptions.ConnectionError as exc:
        reason = _reason(exc)
        if "namespace" in reason.lower():  # the server answered and refused us
            hint = "The server refused the connection: does it want a token (--token)?"
        else:
            hint = "Is the web process running there? Pass another address with --url or OPTIO_URL."
        print(f"optio watch: cannot connect to {url}: {reason}.\n{hint}", file=sys.stderr)
        return None
    return client


def _reason(exc: Exception) -> str:
    """The useful part of a connection error (requests nests the OS error deep inside)."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^\"')(]+)", text)
    if found:
        return found.group(1).strip().rstrip(".").lower()
    return text[:200] or "no answer"
