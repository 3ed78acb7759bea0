"""A worker's leases on the messages it runs: take one, renew those it holds (or, from a prefork
worker's main process, those its pool processes hold)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from optio.store.connection import retrying
from optio.store.scripts import Part, now_arg

log = logging.getLogger("optio")


@dataclass(frozen=True)
class Lease:
    """A worker's start of a message: the run's status, and the jobs it now runs under lease."""

    status: str
    held_elsewhere: bool
    jobs: list[int]
    #: the token of the worker holding the live lease, when ``held_elsewhere``
    holder: str = ""
    #: jobs failed for good now because the message was given up: its lease had expired
    #: OPTIO_MAX_DELIVERIES times (this delivery found the last expiry); no job is listed
    given_up: int | None = None


class Leases(Part):
    SCRIPTS = ("lease_message", "renew_leases", "renew_owned")

    @retrying
    def lease_message(
        self,
        run_id: str,
        key: str,
        first: int,
        count: int,
        token: str,
        lease_ms: int,
        *,
        take_from: str = "",
        max_deliveries: int | None = None,
        now_ms: int | None = None,
    ) -> Lease:
        """Start message ``key``: lease it for ``lease_ms`` and get the jobs still to run.
        ``take_from``: the token of a holder known to be dead, whose live lease is taken over.
        A lease that ran out (or is taken over) is an expiry of the message; its
        ``max_deliveries``-th (default OPTIO_MAX_DELIVERIES) gives the message up: its jobs not
        done yet fail for good, and the Lease lists none (``given_up``: how many failed)."""
        most = self.settings.max_deliveries if max_deliveries is None else max_deliveries
        status, held, *jobs = self._run(
            "lease_message",
            run_id,
            [key, first, count, token, lease_ms, now_arg(now_ms), take_from, most],
        )
        if held == 1:
            return Lease(status, True, [], jobs[0])
        if held == 2:
            log.error(
                "[worker] Message %s of run %s gave up: delivered %d times without finishing; "
                "%d job(s) of it failed for good",
                key,
                run_id,
                most,
                int(jobs[0]),
            )
            return Lease(status, False, [], given_up=int(jobs[0]))
        return Lease(status, False, [int(j) for j in jobs])

    @retrying
    def renew_leases(
        self, run_id: str, held: dict[str, str], lease_ms: int, *, now_ms: int | None = None
    ) -> tuple[str, list[str]]:
        """Extend the leases ``held`` (message key -> token) by ``lease_ms`` from now.
        Returns (the run's status, keys of the leases lost)."""
        args: list[Any] = [lease_ms, now_arg(now_ms)]
        for key, token in held.items():
            args += [key, token]
        status, *lost = self._run("renew_leases", run_id, args)
        return status, lost

    @retrying
    def renew_owned(
        self,
        run_id: str,
        owned: list[tuple[str, str]],
        lease_ms: int,
        *,
        now_ms: int | None = None,
    ) -> tuple[str, list[str]]:
        """Extend by ``lease_ms`` from now (0: end now) the leases of ``owned`` (message key,
        owner id of the pool process running it), whatever their tokens after the owner id.
        Returns (the run's status, keys not leased by their owner)."""
        args: list[Any] = [lease_ms, now_arg(now_ms)]
        for key, owner in owned:
            args += [key, owner]
        status, *lost = self._run("renew_owned", run_id, args)
        return status, lost
