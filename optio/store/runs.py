"""The run verbs of the web process: start, change, pause, resume, stop, retry failed jobs, and
the reads of the API (the history, a run's errors and results)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from optio.names import CURRENT_KEY, RUNS_KEY, errors_key, results_key, run_key, run_keys
from optio.store.connection import retrying
from optio.store.errors import (
    DeadlineRunError,
    NoActiveRunError,
    NotPausedError,
    RetryRefusedError,
    RunActiveError,
    SeveralActiveError,
    UnknownRunError,
    XBelowEnqueuedError,
    XFixedByItemsError,
)
from optio.store.outcomes import parse
from optio.store.scripts import Part, now_arg, num_arg


def new_run_id() -> str:
    return secrets.token_hex(6)


class Runs(Part):
    """Runs: ``settings.keep_runs`` of them are kept in the history; a run started while
    ``settings.webhook_url`` is set has its completion webhook delivered."""

    SCRIPTS = ("start_run", "pause_run", "resume_run", "retry_failed", "update_run", "stop_run")

    @retrying
    def start_run(
        self,
        x: int,
        y: float | None = None,
        *,
        run_id: str | None = None,
        weight: float = 1.0,
        max_in_flight: int = 0,
        deadline_ms: int | None = None,
        now_ms: int | None = None,
    ) -> str:
        """Start a run of x jobs at y jobs/min, beside the runs already active; it becomes the
        run clients are shown by default. ``run_id``: the id whose items
        (``optio/store/items.py``) were written already, one per job; None: a new id, jobs
        without items. ``weight``: its share of a binding ceiling against the other runs';
        ``max_in_flight``: most of its jobs out at once (0: no bound). ``deadline_ms`` instead
        of y: the rate is derived every tick from the jobs left and the time left (the first
        tick's rate is given as y, when None: x over the time left)."""
        with_items = run_id is not None
        run_id = run_id or new_run_id()
        if deadline_ms is not None and y is None:
            start = self.server_time_ms() if now_ms is None else now_ms
            y = x * 60_000 / max(1, deadline_ms - start)
        if y is None:
            raise ValueError("a run needs y or a deadline")
        started, _ = self._run(
            "start_run",
            run_id,
            [
                run_id,
                x,
                num_arg(float(y)),
                now_arg(now_ms),
                int(bool(self.settings.webhook_url)),
                int(with_items),
                num_arg(float(weight)),
                int(max_in_flight),
                "" if deadline_ms is None else int(deadline_ms),
            ],
        )
        if not started:
            raise RunActiveError(run_id)
        self.prune_runs()
        return run_id

    def the_active(self, run_id: str | None = None) -> str:
        """``run_id`` when given; else the one active run: NoActiveRunError when none is,
        SeveralActiveError when several are (the caller must name one)."""
        if run_id is not None:
            if not self.client.exists(run_key(run_id)):
                raise UnknownRunError(run_id)
            return run_id
        active = self.active_run_ids()
        if not active:
            raise NoActiveRunError()
        if len(active) > 1:
            raise SeveralActiveError(active)
        return active[0]

    @retrying
    def prune_runs(self) -> list[str]:
        """Delete the runs older than the newest ``keep_runs`` (their keys and history entry);
        returns their ids."""
        old = self.client.zrange(RUNS_KEY, 0, -(self.settings.keep_runs + 1))
        if old:
            with self.client.pipeline(transaction=False) as pipe:
                for run_id in old:
                    pipe.delete(*run_keys(run_id))
                pipe.zrem(RUNS_KEY, *old)
                pipe.execute()
        return old

    @retrying
    def pause_run(self, run_id: str | None = None, *, now_ms: int | None = None) -> str:
        """Pause run ``run_id`` (None: the one active run, see the_active) and return its id
        (NoActiveRunError when it is not running)."""
        run_id = self.the_active(run_id)
        done, *why = self._run("pause_run", run_id, [run_id, now_arg(now_ms)])
        if not done:
            raise NoActiveRunError(
                f"run {run_id} is already paused"
                if why == ["paused"]
                else f"run {run_id} is not running"
            )
        return run_id

    @retrying
    def resume_run(self, run_id: str | None = None, *, now_ms: int | None = None) -> str:
        """Resume paused run ``run_id`` (None: the one active run, see the_active) and return
        its id (NotPausedError when it is not paused)."""
        named = run_id is not None
        try:
            run_id = self.the_active(run_id)
        except NoActiveRunError:
            raise NotPausedError() from None
        if not self._run("resume_run", run_id, [run_id, now_arg(now_ms)])[0]:
            raise NotPausedError(run_id if named else None)
        return run_id

    @retrying
    def retry_failed(self, run_id: str, *, now_ms: int | None = None) -> int:
        """Put the failed jobs of completed run ``run_id`` back, to run at its rate; returns
        how many; it runs again beside the active runs. Raises UnknownRunError or
        RetryRefusedError."""
        count, *why = self._run("retry_failed", run_id, [run_id, now_arg(now_ms)])
        if count:
            return int(count)
        reason, detail = why
        if reason == "gone":
            raise UnknownRunError(run_id)
        if reason == "not_completed":
            raise RetryRefusedError(
                f"run {run_id} is {detail}: only a completed run's failed jobs can be retried"
            )
        raise RetryRefusedError(f"run {run_id} has no failed jobs")

    @retrying
    def list_runs(
        self, limit: int = 20, before: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The states of up to ``limit`` runs, newest first, older than run ``before`` when
        given; and the id to pass as ``before`` for the next page (None: no more).
        Raises UnknownRunError when ``before`` is not in the history."""
        start = 0
        if before is not None:
            rank = self.client.zrevrank(RUNS_KEY, before)
            if rank is None:
                raise UnknownRunError(before)
            start = rank + 1
        states: list[dict[str, Any]] = []
        gone: list[str] = []
        while len(states) < limit:
            ids = self.client.zrevrange(RUNS_KEY, start, start + limit - len(states) - 1)
            if not ids:
                break
            start += len(ids)
            for run_id in ids:
                state = self.run_state(run_id)
                if state is None:
                    gone.append(run_id)  # expired (OPTIO_RUN_TTL): forget it
                else:
                    states.append(state)
        if gone:
            self.client.zrem(RUNS_KEY, *gone)
        # the forgotten runs ranked before `start`: the next run, if any, now ranks lower
        more = bool(self.client.zrevrange(RUNS_KEY, start - len(gone), start - len(gone)))
        return states, (states[-1]["runId"] if states and more else None)

    @retrying
    def run_errors(self, run_id: str, most: int = 20) -> list[dict[str, Any]]:
        """Up to ``most`` errors of jobs of ``run_id`` that failed for good, by job id."""
        found: dict[int, str] = {}
        cursor = 0
        while True:
            cursor, chunk = self.client.hscan(errors_key(run_id), cursor, count=most)
            found.update((int(job), error) for job, error in chunk.items())
            if cursor == 0 or len(found) >= most:
                break
        return [{"job": job, "error": found[job]} for job in sorted(found)[:most]]

    @retrying
    def webhook_error(self, run_id: str) -> str | None:
        return self.client.hget(run_key(run_id), "webhookError") or None

    @retrying
    def update_run(
        self,
        x: int | None = None,
        y: float | None = None,
        *,
        run_id: str | None = None,
        now_ms: int | None = None,
    ) -> str:
        """Change the total and/or rate of run ``run_id`` (None: the one active run, see
        the_active); returns its id."""
        run_id = self.the_active(run_id)
        result = self._run(
            "update_run",
            run_id,
            [run_id, num_arg(x), num_arg(None if y is None else float(y)), now_arg(now_ms)],
        )
        if result[0] == 1:
            return run_id
        if result[1] == "x_below_enqueued":
            raise XBelowEnqueuedError(x or 0, int(result[2]))
        if result[1] == "x_items":
            raise XFixedByItemsError(int(result[2]))
        if result[1] == "deadline":
            raise DeadlineRunError(run_id)
        raise NoActiveRunError(f"run {run_id} is not running")

    @retrying
    def stop_run(self, run_id: str | None = None, *, now_ms: int | None = None) -> str:
        """Stop run ``run_id`` (None: the one active run, see the_active) and return its id."""
        run_id = self.the_active(run_id)
        if not self._run("stop_run", run_id, [run_id, now_arg(now_ms)]):
            raise NoActiveRunError(f"run {run_id} is not running")
        return run_id

    @retrying
    def current_run_id(self) -> str | None:
        return self.client.get(CURRENT_KEY)

    @retrying
    def active_states(self) -> list[dict[str, Any]]:
        """The states of the active runs, the newest first."""
        states = (self.run_state(run_id) for run_id in self.active_run_ids())
        return [state for state in states if state is not None]

    @retrying
    def current_state(self) -> dict[str, Any] | None:
        """The state of the run clients are shown by default: the newest active run, else the
        last one that ran; None when no run was ever started (or it expired)."""
        active = self.active_run_ids()
        if active:
            state = self.run_state(active[0])
            if state is not None:
                return state
        run_id = self.current_run_id()
        return self.run_state(run_id) if run_id else None

    def error(self, run_id: str, job_id: int) -> str | None:
        return self.client.hget(errors_key(run_id), str(job_id))

    def result(self, run_id: str, job_id: int) -> Any:
        """What job ``job_id``'s function returned, as its record keeps it (JSON; None: no
        result, or none kept)."""
        text = parse(self.client.hget(results_key(run_id), str(job_id))).result
        return None if text is None else json.loads(text)
