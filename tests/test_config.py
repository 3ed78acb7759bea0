"""Settings come from the environment in one place; shared names are spelled in one place."""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

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


def test_settings_are_frozen_and_keep_the_token_out_of_repr():
    s = Settings(api_token="s3cret")
    with pytest.raises(FrozenInstanceError):
        s.port = 1  # type: ignore[misc]
    assert "s3cret" not in repr(s)


def test_module_names_are_aliases_of_the_default_settings():
    for field in fields(Settings):
        value = getattr(config.SETTINGS, field.name)
        alias = getattr(config, field.name.upper())
        assert alias == (list(value) if field.name == "cors_origins" else value), field.name


def _sources():
    return {p.name: p.read_text() for p in sorted(OPTIO.glob("*.py"))}


def test_only_config_reads_the_environment():
    readers = [n for n, text in _sources().items() if re.search(r"os\.environ\b|getenv", text)]
    # cli.py copies the environment for the process it becomes (optio serve); it reads nothing
    assert readers == ["cli.py", "config.py"]
    assert not re.search(r"os\.environ\.get|os\.environ\[", _sources()["cli.py"])


def test_only_names_spells_shared_names():
    spelled = re.compile(
        r"""["'](optio:(progress|active|current|last_tick|run:|heartbeats)"""
        r"""|optio\.(tick|process_jobs|jobs|ticks)["']|optio-tick)"""
    )
    found = [n for n, text in _sources().items() if n != "names.py" and spelled.search(text)]
    assert found == []
    assert names.CHANNEL == "optio:progress" and names.TICK_TASK == "optio.tick"
