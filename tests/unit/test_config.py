"""Settings come from the environment in one place; shared names are spelled in one place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from optio import config, names
from optio.config import Settings

OPTIO = Path(config.__file__).resolve().parent


def test_defaults_and_derived_defaults():
    s = Settings.from_env({})
    assert s == Settings()
    assert s.redis_url == "redis://localhost:6379/0" and s.port == 3000
    assert s.cors_origins == ("http://localhost:3000", "http://127.0.0.1:3000")
    assert s.url == "http://localhost:3000"
    assert s.health_tick_max_age == 10.0
    assert Settings(tick_seconds=4).health_tick_max_age == 20.0
    assert Settings(port=8000).cors_origins == ("http://localhost:8000", "http://127.0.0.1:8000")


def test_from_env_parses_each_kind():
    s = Settings.from_env(
        {
            "PORT": "4000",
            "OPTIO_TICK_SECONDS": "0.5",
            "OPTIO_MAX_X": "7",
            "OPTIO_CORS_ORIGINS": " http://a , ,http://b ",
            "OPTIO_API_TOKEN": "",
            "OPTIO_PROTECT_READS": "Yes",
            "OPTIO_LOG_LEVEL": "debug",
        }
    )
    assert (s.port, s.tick_seconds, s.max_x) == (4000, 0.5, 7)
    assert s.cors_origins == ("http://a", "http://b")
    assert s.api_token is None and s.protect_reads is True and s.log_level == "DEBUG"
    assert s.url == "http://localhost:4000"
    assert Settings.from_env({"FLASK_RUN_FROM_CLI": "true"}).async_mode == "threading"


def test_the_delivery_limit_and_the_result_cap_have_bounds():
    s = Settings.from_env({"OPTIO_MAX_DELIVERIES": "3", "OPTIO_MAX_RESULT_BYTES": "100"})
    assert (s.max_deliveries, s.max_result_bytes) == (3, 100)
    assert (Settings().max_deliveries, Settings().max_result_bytes) == (5, 65536)
    with pytest.raises(ValidationError, match="OPTIO_MAX_DELIVERIES must be at least 1"):
        Settings(max_deliveries=0)
    with pytest.raises(ValidationError, match="OPTIO_MAX_RESULT_BYTES must be at least 64"):
        Settings(max_result_bytes=63)


def test_settings_are_frozen_and_keep_the_token_out_of_repr():
    s = Settings(api_token="s3cret")
    with pytest.raises(ValidationError, match="frozen"):
        s.port = 1  # type: ignore[misc]
    assert "s3cret" not in repr(s)


BENCH = OPTIO.parent / "bench"


def _sources():
    """The product's modules (the harness, optio/testing, apart), by path under optio/."""
    return {
        str(p.relative_to(OPTIO)): p.read_text()
        for p in sorted(OPTIO.rglob("*.py"))
        if p.parts[len(OPTIO.parts)] != "testing"
    }


def _harness_and_bench():
    files = sorted(OPTIO.glob("testing/*.py")) + sorted(BENCH.glob("*.py"))
    return {str(p.relative_to(OPTIO.parent)): p.read_text() for p in files}


def test_only_config_reads_the_environment():
    readers = [n for n, text in _sources().items() if re.search(r"os\.environ\b|getenv", text)]
    # the CLI copies the environment for the process it becomes (optio serve); it reads nothing.
    # serve.py reads OPTIO_ASYNC_MODE alone, before any import: eventlet patches first
    assert readers == ["cli/commands.py", "config.py", "serve.py"]
    assert re.findall(r"os\.environ\.get\(\"(\w+)\"", _sources()["serve.py"]) == [
        "OPTIO_ASYNC_MODE"
    ]
    assert not re.search(r"os\.environ\.get|os\.environ\[", _sources()["cli/commands.py"])
    # the harness and the bench pass the environment on to the processes they start and read
    # only their own variables (BENCH_*, OPTIO_TEST_*), never a setting of optio's
    setting = re.compile(r"""environ(\.get\(|\[)["'](?!BENCH_|OPTIO_TEST_)""")
    assert [n for n, text in _harness_and_bench().items() if setting.search(text)] == []


def test_only_names_spells_shared_names():
    spelled = re.compile(
        r"""["'](optio:(progress|active|current|last_tick|run:|heartbeats)"""
        r"""|optio\.(tick|process_jobs|jobs|ticks)["']|optio-tick)"""
    )
    found = [n for n, text in _sources().items() if n != "names.py" and spelled.search(text)]
    found += [n for n, text in _harness_and_bench().items() if spelled.search(text)]
    assert found == []
    assert names.CHANNEL == "optio:progress" and names.TICK_TASK == "optio.tick"


def test_the_readme_lists_every_setting_and_no_other():
    """The configuration table (docs/CONFIGURATION.md) names each setting's variable, and only
    those."""
    page = (OPTIO.parent / "docs" / "CONFIGURATION.md").read_text()
    table = page[page.index("## Every setting") :] + "\n## "
    table = table[: table.index("\n## ", 1)]
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", table, re.M))
    assert listed == {config.variable(name) for name in Settings.model_fields}


def test_a_variable_set_to_the_empty_string_counts_as_unset_for_optional_text():
    env = {"OPTIO_API_TOKEN": "", "OPTIO_URL": "", "OPTIO_BROKER_URL": "", "PORT": "4000"}
    s = Settings.from_env(env)
    assert (s.api_token, s.url, s.broker_url) == (None, "http://localhost:4000", s.redis_url)
