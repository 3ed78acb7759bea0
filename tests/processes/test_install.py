"""What a newcomer does: the README's run command on a fresh clone, and a wheel installed into a
fresh virtualenv, run from outside the repository."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from optio.testing import ROOT, Proc, RedisServer, Watcher, free_port, wait_for

README_PORT = 3000


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _processes_under(directory: Path) -> list[str]:
    """Processes whose working directory or command line is inside ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone, or not ours to read
        if cwd.startswith(str(directory)) or str(directory) in cmdline:
            found.append(f"{entry.name}: {cmdline.strip()} (cwd {cwd})")
    return found


def _env_without_optio(**extra: str) -> dict[str, str]:
    """The environment of a user who set nothing (no venv, no optio settings, no PORT)."""
    drop = ("OPTIO_", "REDIS_URL", "PORT", "VIRTUAL_ENV", "PYTHONPATH", "FLASK_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    env.update(extra)
    return env


def _readme_command() -> str:
    """The run command as the README's "Run it" section shows it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run it", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return block.strip()


def test_the_readme_run_command_on_a_fresh_clone(tmp_path):
    command = _readme_command()
    assert command == "scripts/run.sh"
    if _port_taken(README_PORT):
        pytest.fail(f"port {README_PORT} is taken by another process: this test needs it free")
    clone = tmp_path / "optio"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    redis_port = free_port()
    env = _env_without_optio(REDIS_URL=f"redis://localhost:{redis_port}/0")
    # its own process group, as a terminal gives it: Ctrl-C goes to all of it
    run = Proc("readme-run", ["bash", "-c", command], env, tmp_path, cwd=clone)
    log = run.log_path
    base = f"http://localhost:{README_PORT}"
    try:
        wait_for(
            lambda: requests.get(f"{base}/api/health", timeout=2).status_code == 200,
            180,
            f"/api/health on port {README_PORT} (log: {log})",
            interval=0.5,
        )
        text = log.read_text(errors="replace")
        assert f"Serving on 127.0.0.1:{README_PORT}" in text
        assert "[redis] Started" in text  # its own Redis: nothing answered at REDIS_URL
        # the README's curl line
        started = requests.post(f"{base}/api/run", json={"x": 100, "y": 600}, timeout=5)
        assert started.status_code == 201, started.text
        run_id = started.json()["runId"]
        final = wait_for(
            lambda: (
                (s := requests.get(f"{base}/api/status", timeout=5).json())["status"] == "completed"
                and s
            ),
            40,
            "the run of 100 jobs at 600/min to complete",
            interval=0.2,
        )
        assert final["runId"] == run_id and final["processed"] == 100
        took = (final["finishedAt"] - final["startedAt"]) / 1000
        assert 8 <= took <= 20, f"100 jobs at 600/min took {took:.1f} s"
        redis_pid = int((clone / "var" / "redis" / "redis.pid").read_text())

        run.signal(signal.SIGINT)  # Ctrl-C
        run.popen.wait(60)
        wait_for(lambda: not _processes_under(clone), 15, "every process of the clone to end")
        with pytest.raises(ProcessLookupError):
            os.kill(redis_pid, 0)
        assert not _port_taken(README_PORT) and not _port_taken(redis_port)
    finally:
        run.stop()  # on a failure above: TERM, then KILL, the whole group
        for line in _processes_under(clone):  # whatever is left fails the test above; end it
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """optio's wheel, built from a clean clone (no node_modules, no earlier copies)."""
    work = tmp_path_factory.mktemp("wheel")
    clone = work / "src"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), "."],
        cwd=clone,
        check=True,
    )
    (found,) = (work / "dist").glob("optio-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel installed (dependencies from the registry)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", str(wheel)], check=True)
    return venv


def test_the_wheel_carries_the_pinned_socket_io_client(wheel):
    import json
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        client = zf.read("optio/webapp/static/socket.io.min.js").decode()
    assert "optio/webapp/static/socket.io.min.js.map" in names
    locked = json.loads((ROOT / "package-lock.json").read_text())
    version = locked["packages"]["node_modules/socket.io-client"]["version"]
    assert f"Socket.IO v{version}" in client[:200]
    tracked = subprocess.run(
        ["git", "ls-files", "optio/webapp/static"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "socket.io" not in tracked  # copied at build time, never committed


@pytest.fixture
def outside(installed, tmp_path) -> Iterator[dict]:
    """The installed package's web, worker and beat, run from a directory outside the repo."""
    server = RedisServer(tmp_path)
    port = free_port()
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = _env_without_optio(
        REDIS_URL=f"{server.url}/0", PORT=str(port), OPTIO_TICK_SECONDS="0.5", PYTHONUNBUFFERED="1"
    )
    bin_ = installed / "bin"
    commands = {
        "web": [str(bin_ / "optio"), "serve"],
        "worker": [str(bin_ / "celery"), "-A", "optio.tasks", "worker", "-c", "2"],
        "beat": [str(bin_ / "celery"), "-A", "optio.tasks", "beat", "-s", str(cwd / "schedule")],
    }
    procs = {}
    try:
        for name, args in commands.items():
            procs[name] = Proc(name, args, env, cwd, cwd=cwd)
        yield {"base": f"http://127.0.0.1:{port}", "procs": procs, "venv": installed}
    finally:
        for proc in procs.values():
            proc.stop()
        server.stop()


def test_the_installed_wheel_serves_its_pages_and_live_progress_outside_the_repo(outside):
    base = outside["base"]
    venv_python = outside["venv"] / "bin" / "python"
    where = subprocess.run(
        [venv_python, "-c", "import optio; print(optio.__file__)"],
        cwd=outside["procs"]["web"].log_path.parent,
        env=_env_without_optio(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(outside["venv"])) and str(ROOT) not in where

    wait_for(
        lambda: requests.get(f"{base}/api/health", timeout=2).status_code == 200,
        60,
        "the installed web, worker and beat to be healthy",
        interval=0.2,
    )
    for path, kind in [
        ("/", "text/html"),
        ("/test-websocket.html", "text/html"),
        ("/vendor/socket.io.min.js", "javascript"),
    ]:
        response = requests.get(base + path, timeout=5)
        assert response.status_code == 200, (path, response.text[:200])
        assert kind in response.headers["Content-Type"], path
    assert "Socket.IO v4" in requests.get(f"{base}/vendor/socket.io.min.js", timeout=5).text[:200]

    with Watcher(base) as watcher:
        started = requests.post(f"{base}/api/run", json={"x": 30, "y": 1200}, timeout=5)
        assert started.status_code == 201, started.text
        run_id = started.json()["runId"]
        final = watcher.wait_final(run_id, 30)
        assert final["processed"] == 30 and final["status"] == "completed"
        moving = [s["processed"] for s in watcher.states() if s.get("runId") == run_id]
        assert any(0 < n < 30 for n in moving), f"no live update in between: {moving}"


def test_without_the_client_file_the_vendor_url_says_what_to_do(installed, tmp_path):
    """An install that lost the file answers 503 with a JSON reason (the page then polls)."""
    site = subprocess.run(
        [
            installed / "bin" / "python",
            "-c",
            "import optio, os; print(os.path.dirname(optio.__file__))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    client = Path(site) / "webapp" / "static" / "socket.io.min.js"
    saved = client.read_bytes()
    client.unlink()
    port = free_port()
    server = RedisServer(tmp_path)
    env = _env_without_optio(REDIS_URL=f"{server.url}/0", PORT=str(port))
    web = Proc("web", [str(installed / "bin" / "optio"), "serve"], env, tmp_path, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        (response,) = wait_for(
            lambda: (requests.get(f"{base}/vendor/socket.io.min.js", timeout=2),), 30, "the web"
        )
        assert response.status_code == 503
        assert "reinstall optio" in response.json()["error"]
    finally:
        web.stop()
        server.stop()
        client.write_bytes(saved)
