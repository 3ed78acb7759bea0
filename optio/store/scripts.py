"""The Lua scripts of ``optio/store/lua`` and :class:`Part`, the base of the store's parts.

Counters change only through these scripts; each script that changes a counter also publishes
the resulting state on the progress channel in the same atomic step. Each part of the store
(runs, schedule, counting, leases, outbox) is built from one connection and the settings, and
names the scripts it calls; callers use its verbs, never the raw client.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, ClassVar

import redis
from redis.commands.core import AsyncScript, Script

from optio import names
from optio.config import Settings
from optio.names import ACTIVE_KEY, NO_RUN, script_keys
from optio.store.connection import retrying

LUA_DIR = Path(__file__).with_name("lua")


@functools.cache
def _source(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


def script_names() -> list[str]:
    """Every script (the prelude, ``_prelude.lua``, is put in front of each)."""
    return sorted(p.stem for p in LUA_DIR.glob("*.lua") if not p.stem.startswith("_"))


def script_text(name: str, settings: Settings) -> str:
    """Script ``name`` as Redis runs it: the settings it reads, the prelude, the script."""
    header = (
        f"local OPTIO_CHANNEL = {json.dumps(names.CHANNEL)}\n"
        f"local OPTIO_STATES_CHANNEL = {json.dumps(names.STATES_CHANNEL)}\n"
        f"local OPTIO_RUN_TTL = {int(settings.run_ttl)}\n"
        f"local OPTIO_RESULT_TTL = {int(settings.result_ttl)}\n"
        f"local OPTIO_KEY_COUNT = {len(script_keys(NO_RUN))}\n"
    )
    return header + _source("_prelude") + _source(name)


def now_arg(now_ms: int | None) -> str:
    """The ``now ms`` argument of a script: '' lets the script read the Redis clock."""
    return "" if now_ms is None else str(int(now_ms))


def num_arg(value: float | None) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


class Part:
    """One caller's verbs on the store, on one connection.

    ``retry_for``: seconds a verb keeps retrying while Redis is unreachable (workers wait out a
    Redis restart; the web process answers 503 at once with the default 0). Every part also
    reads the run ids and a run's state, which all callers need.
    """

    #: The scripts this part calls (file names in ``lua/`` without ``.lua``).
    SCRIPTS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, client: redis.Redis, settings: Settings, *, retry_for: float = 0.0) -> None:
        self.client = client
        self.settings = settings
        self.retry_for = retry_for
        self._scripts: dict[str, Script | AsyncScript] = {
            name: client.register_script(script_text(name, settings))
            for name in ("read_state", *self.SCRIPTS)
        }

    def _run(self, name: str, run_id: str, args: list[Any]) -> Any:
        """Script ``name`` on run ``run_id`` (names.NO_RUN: on none). Every script receives the
        same keys, names.script_keys(run_id) (see _prelude.lua): only the ARGV differ."""
        return self._scripts[name](keys=script_keys(run_id), args=args)

    @retrying
    def active_run_ids(self) -> list[str]:
        """The ids of the runs that have not ended (running or paused), the newest first."""
        return self.client.zrevrange(ACTIVE_KEY, 0, -1)

    @retrying
    def run_state(self, run_id: str) -> dict[str, Any] | None:
        text = self._run("read_state", run_id, [])
        return json.loads(text) if text else None

    @retrying
    def server_time_ms(self) -> int:
        seconds, micros = self.client.time()
        return seconds * 1000 + micros // 1000
