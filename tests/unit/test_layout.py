"""The package's parts and which way their imports point: each part is imported in a fresh
interpreter and must not bring in what it has no business with (the worker never loads Flask,
the CLI speaks HTTP only, the store knows neither Celery nor Flask)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from optio import config

OPTIO = Path(config.__file__).resolve().parent

#: part imported -> (modules it must not load, as name prefixes)
NEVER = {
    "optio.config": ("optio.", "redis", "celery", "kombu", "flask", "eventlet"),
    "optio.names": ("optio.", "redis", "celery", "flask"),
    "optio.urls": ("optio.", "redis", "celery", "flask"),
    "optio.store.runs optio.store.schedule optio.store.counting optio.store.leases "
    "optio.store.outbox optio.store.heartbeats optio.store.version optio.store.items "
    "optio.store.outcomes "
    "optio.redis_state": (
        "celery",
        "kombu",
        "flask",
        "optio.worker",
        "optio.webapp",
        "optio.cli",
        "optio.broker",
    ),
    "optio.tasks": ("flask", "flask_socketio", "eventlet", "optio.webapp", "optio.cli"),
    "optio.web": ("optio.worker", "optio.cli", "optio.tasks"),
    "optio.cli": (
        "redis",
        "celery",
        "kombu",
        "flask",
        "optio.store",
        "optio.worker",
        "optio.webapp",
    ),
}
#: what config may use: URL parsing only
ALLOWED = {"optio.config": ("optio.urls",)}


def _loaded(modules: str) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules.split()!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.parametrize("part", list(NEVER))
def test_each_part_loads_only_what_it_may(part):
    loaded = _loaded(part)
    own = set(part.split())
    allowed = ALLOWED.get(part, ())
    wrong = [
        name
        for name in loaded
        if name not in own
        and name not in ("optio", "optio.throttle")  # the package's face: optio.Throttle
        and not name.startswith(allowed)
        and any(name == p.rstrip(".") or name.startswith(p.rstrip(".") + ".") for p in NEVER[part])
    ]
    assert wrong == [], f"{part} loads {wrong}"


def test_only_the_entry_points_read_the_process_settings():
    """``config.SETTINGS`` (the environment, read once) is read by the entry points; every
    other module gets its settings passed down."""
    entries = {"tasks.py", "beat_schedule.py", "web.py", "serve.py", "jobs.py", "cli/commands.py"}
    readers = {
        str(p.relative_to(OPTIO))
        for p in OPTIO.rglob("*.py")
        if p.parts[len(OPTIO.parts)] != "testing" and re.search(r"\bSETTINGS\b", p.read_text())
    }
    assert readers - {"config.py"} <= entries, sorted(readers - entries - {"config.py"})


def test_no_function_is_longer_than_60_lines_and_no_class_than_250():
    """Decorators included: a view and its @operation count together."""
    long = []
    for path in sorted(OPTIO.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                most = 250 if isinstance(node, ast.ClassDef) else 60
                if node.end_lineno - first + 1 > most:
                    long.append(f"{path.relative_to(OPTIO.parent)}:{node.lineno} {node.name}")
    assert long == []
