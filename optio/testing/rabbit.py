"""A RabbitMQ node of our own for tests and the benchmark: never the machine's broker.

Debian's ``rabbitmq-server`` package runs one node as user ``rabbitmq`` on the default ports
(5672, 25672) with epmd on 4369 and the cookie in ``/var/lib/rabbitmq``. This one shares none of
that: its own node name, AMQP and distribution ports (loopback only), an epmd of its own on a
free port (so it never registers with the machine's epmd), and data, logs, configuration,
enabled plugins (none: no management plugin) and Erlang cookie (``HOME``) under ``data_dir``.

It runs the package's real start script (``/usr/lib/rabbitmq/bin/rabbitmq-server``, not the
``/usr/sbin`` wrapper, which switches to the ``rabbitmq`` user), as whoever runs the tests,
in its own process group, stopped by that group. A node started on ``data_dir`` again finds its
queues and persistent messages (quorum queues write them to disk).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from optio import names
from optio.testing.procs import Proc, children, free_port, wait_for

#: Where Debian's package puts the start script that the /usr/sbin wrapper calls.
DEBIAN_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
#: Seconds a node may take to answer AMQP after start (measured here: about 5 s on 2 busy cores).
START_TIMEOUT = 90.0


def server_script() -> Path | None:
    """The node's start script, or None when RabbitMQ is not installed."""
    if DEBIAN_SCRIPT.exists():
        return DEBIAN_SCRIPT
    found = shutil.which("rabbitmq-server")
    if found is None:
        return None
    # /usr/sbin/rabbitmq-server links to a wrapper next to the real script
    real = Path(os.path.realpath(found))
    script = real.parent / "rabbitmq-server"
    return script if script.exists() else real


def epmd_binary() -> str | None:
    return shutil.which("epmd") or next(
        (str(p) for p in sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))), None
    )


def missing() -> str | None:
    """Why a private node cannot be started here, or None when it can."""
    if server_script() is None:
        return "rabbitmq-server is not installed (scripts/setup.sh test installs Debian's package)"
    if epmd_binary() is None:
        return "epmd (Erlang) is not installed"
    return None


class RabbitServer:
    """A private RabbitMQ node on free loopback ports, started at once; ``stop`` and ``start``
    restart it on the same ports and data. ``url`` is an ``amqp://`` URL for the default
    ``guest`` user (allowed from loopback only) and vhost."""

    def __init__(self, data_dir: Path) -> None:
        problem = missing()
        if problem:
            raise RuntimeError(problem)
        self.dir = data_dir
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"optio-test-{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        for sub in ("home", "mnesia", "log"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True)
        (data_dir / "enabled_plugins").write_text("[].\n")
        (data_dir / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq/rabbitmq-env.conf
        (data_dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            # a test machine's disk may be nearly full: don't block publishers for it
            "disk_free_limit.absolute = 1MB\n"
        )
        self.env = self._env()
        epmd = epmd_binary()
        assert epmd is not None, missing()
        self.epmd = Proc(
            "epmd",
            [epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            self.env,
            data_dir,
        )
        self.proc: Proc | None = None
        self.started_in = 0.0  # seconds the last start took
        self.start()

    def _env(self) -> dict[str, str]:
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RABBITMQ_", "ERL_")) and k not in ("HOME", "CONF_ENV_FILE")
        }
        d = self.dir
        return {
            **inherited,
            "HOME": str(d / "home"),  # the node's own .erlang.cookie
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(d / "plugins-expand"),
            # the distribution port on loopback too (Erlang listens on every interface unless told)
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the RabbitMQ node is stopped"
        return self.proc.pid

    def vm_pid(self) -> int:
        """The Erlang VM (``beam.smp``) of the node: the start script waits for it as a child."""
        for pid in children(self.pid):
            if Path(f"/proc/{pid}/comm").read_text().strip().startswith("beam"):
                return pid
        raise LookupError(f"no beam process under rabbitmq-server {self.pid}")

    def version(self) -> str:
        from kombu import Connection

        with Connection(self.url, connect_timeout=5) as conn:
            conn.connect()
            return conn.connection.server_properties.get("version", "")

    def answers(self) -> bool:
        """True once the node accepts an AMQP connection (it listens only when fully booted)."""
        from kombu import Connection

        with Connection(self.url, connect_timeout=2) as conn:
            conn.connect()
            return True

    def start(self) -> None:
        began = time.monotonic()
        self.proc = proc = Proc("rabbitmq", [str(server_script())], self.env, self.dir)

        def up() -> str | bool:
            return "exited" if not proc.alive() else self.answers() and "up"

        outcome = wait_for(up, START_TIMEOUT, f"RabbitMQ node {self.node}", interval=0.1)
        if outcome == "exited":
            raise RuntimeError(f"rabbitmq-server exited:\n{proc.log()[-2000:]}{self.log()[-2000:]}")
        self.started_in = time.monotonic() - began

    def stop(self) -> None:
        """SIGTERM: the node shuts down cleanly (queues and messages written out) and exits."""
        if self.proc is not None:
            self.proc.stop(timeout=60)
            self.proc = None

    def close(self) -> None:
        """Stop the node and its epmd."""
        self.stop()
        self.epmd.stop()

    def ready(self, queue: str) -> int | None:
        """Messages waiting in ``queue`` (not those delivered and unacknowledged); None when
        the queue does not exist."""
        from amqp.exceptions import NotFound
        from kombu import Connection

        with Connection(self.url, connect_timeout=5) as conn:
            try:
                return conn.default_channel.queue_declare(queue, passive=True).message_count
            except NotFound:
                return None

    def delete_queues(self, *queues: str) -> None:
        """Delete ``queues`` (default: optio's two) with whatever they hold."""
        from kombu import Connection

        with Connection(self.url, connect_timeout=5) as conn:
            for queue in queues or (names.JOBS_QUEUE, names.TICKS_QUEUE):
                conn.default_channel.queue_delete(queue)  # an absent queue is no error

    def log(self) -> str:
        """The node's own log file."""
        path = self.dir / "log" / f"{self.node}.log"
        return path.read_text(errors="replace") if path.exists() else ""
