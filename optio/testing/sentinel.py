"""A Redis Sentinel group of our own for tests: a primary, a replica and three Sentinels, each a
process started here on a free loopback port under one directory, and stopped by its own process
group (never the machine's Redis)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import redis

from optio.testing.devredis import server_args
from optio.testing.procs import Proc, free_port, wait_for

SERVICE = "optio-primary"


class SentinelGroup:
    """``primary`` and ``replica`` redis-servers (no persistence) and ``sentinels`` Sentinels with
    quorum 2 watching the primary as ``SERVICE``.

    ``down_after_ms``: Sentinel's ``down-after-milliseconds`` (how long the primary must not
    answer before it counts as down). ``url``: the ``redis+sentinel://`` URL of the group.
    """

    def __init__(self, directory: Path, *, sentinels: int = 3, down_after_ms: int = 1000) -> None:
        self.dir = directory
        self.down_after_ms = down_after_ms
        self.procs: dict[str, Proc] = {}
        self.ports: dict[str, int] = {}
        try:
            self._start_server("primary")
            self._start_server("replica", "--replicaof", "127.0.0.1", str(self.ports["primary"]))
            wait_for(lambda: self._replica_synced(), 20, "the replica to sync")
            for i in range(1, sentinels + 1):
                self._start_sentinel(f"sentinel-{i}")
            wait_for(self._sentinels_agree, 30, "the Sentinels to see each other and the replica")
        except BaseException:
            self.stop()
            raise
        hosts = ",".join(f"127.0.0.1:{self.ports[n]}" for n in self.sentinel_names)
        self.url = f"redis+sentinel://{hosts}/{SERVICE}"

    @property
    def sentinel_names(self) -> list[str]:
        return [name for name in self.procs if name.startswith("sentinel-")]

    def _start_server(self, name: str, *extra: str) -> None:
        port = self.ports[name] = free_port()
        data = self.dir / name
        data.mkdir(parents=True, exist_ok=True)
        args = [*server_args(port, data, persistent=False), *extra]
        self.procs[name] = Proc(name, args, dict(os.environ), self.dir)
        wait_for(lambda: self.client(name).ping(), 10, f"{name} to answer")

    def _start_sentinel(self, name: str) -> None:
        port = self.ports[name] = free_port()
        conf = self.dir / f"{name}.conf"  # a Sentinel rewrites its own file: one each
        conf.write_text(
            f"port {port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.dir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.ports['primary']} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        binary = server_args(port, self.dir, persistent=False)[0]
        self.procs[name] = Proc(name, [binary, str(conf), "--sentinel"], dict(os.environ), self.dir)
        wait_for(lambda: self.client(name).ping(), 10, f"{name} to answer")

    def client(self, name: str) -> redis.Redis:
        """A plain client of one member (``primary``, ``replica``, ``sentinel-1``, ...)."""
        return redis.Redis(
            host="127.0.0.1", port=self.ports[name], decode_responses=True, socket_timeout=2
        )

    def _replica_synced(self) -> bool:
        info = self.client("replica").info("replication")
        return info.get("master_link_status") == "up"

    def _sentinels_agree(self) -> bool:
        for name in self.sentinel_names:
            with self.client(name) as sentinel:
                master = sentinel.sentinel_master(SERVICE)
                if int(master["num-other-sentinels"]) < len(self.sentinel_names) - 1:
                    return False
                if int(master["num-slaves"]) < 1:
                    return False
        return True

    def primary_name(self) -> str:
        """``primary`` or ``replica``: which server the Sentinels now name as the primary."""
        for name in self.sentinel_names:
            if not self.procs[name].alive():
                continue
            try:
                with self.client(name) as sentinel:
                    _, port = sentinel.sentinel_get_master_addr_by_name(SERVICE)
            except redis.RedisError:
                continue
            return next(n for n in ("primary", "replica") if self.ports[n] == int(port))
        raise AssertionError("no Sentinel answers")

    def kill(self, name: str) -> None:
        """SIGKILL one member: no shutdown, no last write, its clients' connections drop."""
        self.procs[name].signal(signal.SIGKILL)
        self.procs[name].popen.wait(5)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()
