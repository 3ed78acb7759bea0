"""Contract tests: schemathesis (its CLI, from PyPI) sends generated requests to a real web
process, with a worker and beat, and checks every answer against /api/openapi.json.

Every operation is tested: examples, coverage (boundary and invalid values), fuzzing with a
bounded number of examples, and stateful sequences along the document's links (start →
status → update → pause → resume → stop → retry-failed), with the checks not_a_server_error,
status_code_conformance, content_type_conformance and response_schema_conformance
(tests/processes/schemathesis.toml). Generation is deterministic, so a failure shows again on the
next run; only loopback is reached.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from optio.testing import ROOT, VENV_BIN, System, free_port

#: Checks and bounds (examples per operation, stateful sequences). The reports of the last run
#: are saved as artifacts/schemathesis-*.txt (git-ignored) and shown when a test fails.
CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Serializers of the media types schemathesis does not know (NDJSON uploads).
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")


@pytest.fixture(scope="module")
def contract_system(redis_server, redis_db, tmp_path_factory):
    """A whole optio with small limits, so that generated runs end within seconds: some jobs
    fail for good (so retry-failed has work) and the webhook points at a closed port (so
    states carry webhook outcomes)."""
    env = {
        "OPTIO_MAX_X": "40",
        "OPTIO_MAX_Y": "6000",
        "OPTIO_JOB_FUNC": "tests.fault_jobs:fails_twice",
        "OPTIO_JOB_ATTEMPTS": "1",
        "OPTIO_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/hook",
        "OPTIO_WEBHOOK_RETRY_SECONDS": "1",
        "OPTIO_WEBHOOK_TIMEOUT": "1",
        "OPTIO_HEARTBEAT_SECONDS": "1",
    }
    url = f"{redis_server.url}/{redis_db()}"
    system = System(url, tmp_path_factory.mktemp("contract"), **env)
    system.redis.flushdb()
    try:
        yield system.start_all(concurrency=1)
    finally:
        system.stop_all()


def schemathesis(system: System, phases: str, report: str, cwd: Path) -> None:
    """Run schemathesis's ``phases`` against ``system``; fail with its report."""
    command = [
        str(VENV_BIN / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        "--phases",
        phases,
        f"{system.base}/api/openapi.json",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    text = done.stdout + done.stderr
    path = ROOT / "artifacts" / f"schemathesis-{report}.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    assert done.returncode == 0, text[-20_000:]
    assert system.procs["web"].alive()


def test_every_operation_keeps_to_the_document(contract_system, tmp_path):
    """Each operation alone: the document's examples, boundary and invalid values, fuzzing."""
    schemathesis(contract_system, "examples,coverage,fuzzing", "operations", tmp_path)


def test_sequences_along_the_links_keep_to_the_document(contract_system, tmp_path):
    """Stateful: start → status → update → pause → resume → stop → retry-failed, and what
    resolves a 409. It starts idle, as the fuzzing may have left a run going."""
    contract_system.ensure_idle()
    schemathesis(contract_system, "stateful", "stateful", tmp_path)
