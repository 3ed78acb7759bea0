"""The tiers, and the fixtures every tier shares: a private redis-server per test session, free
databases of it, the one running system (``optio.testing`` holds the harness).

Each folder under tests/ is a tier, marked with its name (and, but for ``unit``, ``slow``):

- ``unit``: pure code, Flask's test client, the Lua scripts on the session's redis-server; no
  optio process (``scripts/test.sh --fast``);
- ``system``: against the one running system the session shares (web, worker, beat);
- ``browser``: Debian's Chromium driven by Playwright;
- ``processes``: processes of the module's or the test's own (a web process alone, several web
  processes, start-up checks, CLI clients, an installed wheel, schemathesis);
- ``faults``: a system of each test's own, broken on purpose.

The fixtures of one tier are in its folder's conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from optio.testing import ROOT, RedisServer, System

#: The tiers, in the order a whole run takes them (pyproject.toml's testpaths).
TIERS = ("unit", "system", "browser", "processes", "faults")
TESTS = Path(__file__).resolve().parent
#: Fixtures here that start optio's processes: never in the unit tier. (Those of the other tiers
#: are in their folders' conftest.py, out of the unit tier's reach.)
PROCESS_FIXTURES = {"system", "idle_system"}

#: Databases of the session's redis-server (16 by default: redis_db hands out more).
DATABASES = 64
#: The shared system's database; redis_db never hands it out.
SYSTEM_DB = 0


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(config, items) -> None:
    """Mark each test with its folder's tier, and ``slow`` (real processes) outside ``unit``."""
    problems = []
    for item in items:
        path = Path(item.path).resolve()
        parts = path.relative_to(TESTS).parts if path.is_relative_to(TESTS) else ()
        tier = parts[0] if len(parts) > 1 else None
        if tier not in TIERS:
            folders = ", ".join(f"tests/{name}/" for name in TIERS)
            problems.append(f"{item.nodeid}: a test module goes in one of {folders}")
            continue
        item.add_marker(tier)
        if tier != "unit":
            item.add_marker("slow")
        elif PROCESS_FIXTURES & set(item.fixturenames):
            used = sorted(PROCESS_FIXTURES & set(item.fixturenames))
            problems.append(f"{item.nodeid}: a unit test starts no process, but uses {used}")
    if problems:
        raise pytest.UsageError("\n".join(problems))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """A redis-server of our own on a free port, without persistence; never the machine's."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), persistent=False, databases=DATABASES)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_db(redis_server) -> Callable[[], int]:
    """``redis_db()``: a database of the session's redis-server that nothing else in the session
    uses, ever (the shared system keeps SYSTEM_DB). Take one per app, web process or system."""
    taken = {SYSTEM_DB}

    def take() -> int:
        free = next((db for db in range(redis_server.databases) if db not in taken), None)
        if free is None:
            raise RuntimeError(f"all {redis_server.databases} databases are taken: raise DATABASES")
        taken.add(free)
        return free

    return take


@pytest.fixture(scope="session")
def system(redis_server, tmp_path_factory) -> Iterator[System]:
    """One running optio (web, worker, beat) on SYSTEM_DB of the private Redis."""
    url = f"{redis_server.url}/{SYSTEM_DB}"
    with System(url, tmp_path_factory.mktemp("system")) as running:
        yield running.start_all()


@pytest.fixture
def idle_system(system) -> System:
    system.ensure_idle()
    return system


#: Rows (case, what was done, figures) recorded by the fault and lease suites.
RELIABILITY_ROWS: list[tuple[str, str, str]] = []


@pytest.fixture
def record():
    """Record one row of the reliability table (printed at the end, saved under artifacts/):
    the case, what was done, and the figures measured as ``name=value``."""

    def add(case: str, done: str, **figures: object) -> None:
        measured = ", ".join(f"{name}={value}" for name, value in figures.items())
        RELIABILITY_ROWS.append((case, done, measured))

    return add


def pytest_terminal_summary(terminalreporter) -> None:
    if not RELIABILITY_ROWS:
        return
    lines = ["| case | what was done | result and figures |", "|---|---|---|"]
    lines += [f"| {case} | {done} | {measured} |" for case, done, measured in RELIABILITY_ROWS]
    out = Path(ROOT) / "artifacts" / "reliability.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    terminalreporter.section("reliability (measured by the tests in tests/faults/)")
    for line in lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"saved to {out}")
