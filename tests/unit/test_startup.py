"""Start-up checks in-process: which Redis versions are refused, and what the web process says
about its bind address. (The processes themselves: tests/processes/test_startup.py.)"""

from __future__ import annotations

import logging

import pytest

from optio.store.version import parse_version, version_problem
from optio.webapp.serve import exposure_notice, is_loopback


def test_parse_version():
    assert parse_version("7.0.15") == (7, 0, 15)
    assert parse_version("6.2") == (6, 2, 0)
    assert parse_version("7.2.4-rc1") == (7, 2, 4)
    with pytest.raises(ValueError):
        parse_version("unknown")


@pytest.mark.parametrize("found", ["2.8.24", "5.0.7", "6.0.20", "6.1.240"])
def test_versions_below_6_2_are_refused_with_one_line(found):
    problem = version_problem(found, "db.example:6379/0")
    assert problem is not None and "\n" not in problem
    assert "Redis >= 6.2" in problem and f"is Redis {found}" in problem
    assert "db.example:6379/0" in problem


@pytest.mark.parametrize("found", ["6.2.0", "6.2.14", "7.0.15", "7.4.1", "10.0.0", "weird"])
def test_versions_from_6_2_pass(found):
    assert version_problem(found, "h:1/0") is None


def test_exposure_notice():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    level, text = exposure_notice("127.0.0.1", 3000, None)
    assert level == logging.INFO and "OPTIO_HOST=0.0.0.0" in text and "OPTIO_API_TOKEN" in text
    level, text = exposure_notice("0.0.0.0", 3000, None)
    assert level == logging.WARNING and "anyone who reaches port 3000" in text
    level, _ = exposure_notice("0.0.0.0", 3000, "secret")
    assert level == logging.INFO
