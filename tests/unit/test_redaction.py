"""Redis URLs as optio shows them (logs, /api/health): every credential form hidden, what helps
find the server kept."""

from __future__ import annotations

import pytest

SECRET = "hunter2"
REDIS_URLS = [
    ("userinfo", f"redis://alice:{SECRET}@db.example:6379/0", "redis://***@db.example:6379/0"),
    ("password only", f"redis://:{SECRET}@db.example/0", "redis://***@db.example/0"),
    ("password query", f"redis://db.example:6379/0?password={SECRET}", None),
    ("username query", f"redis://db.example/0?username={SECRET}&password=x&db=1", None),
    ("TLS", f"rediss://:{SECRET}@db.example:6380/0?ssl_cert_reqs=none", None),
    ("TLS key password", f"rediss://db.example/0?ssl_password={SECRET}", None),
    ("sentinel", f"redis+sentinel://:{SECRET}@s1:26379/mymaster/0", None),
    ("sentinel list", f"sentinel://:{SECRET}@s1:26379;sentinel://:{SECRET}@s2:26379", None),
    ("sentinel password", f"sentinel://s1:26379?sentinel_password={SECRET}", None),
    ("unix socket", f"unix:///run/redis.sock?db=0&password={SECRET}", None),
    ("encoded userinfo", "redis://:hunter%232@db.example/0", None),
    ("# in the password", "redis://:hun#ter2@db.example/0", "redis://***@db.example/0"),
    ("? in the password", "redis://:hun#ter?2@db.example/0", "redis://***@"),
    ("@ in a query value", f"redis://db.example/0?password=a@{SECRET}", "redis://***@"),
]


@pytest.mark.parametrize(
    "url, expected", [c[1:] for c in REDIS_URLS], ids=[c[0] for c in REDIS_URLS]
)
def test_redacted_url_hides_every_credential_form(url, expected):
    from optio.webapp.security import redacted_url

    shown = redacted_url(url)
    for secret in (SECRET, "hunter%232", "hun#ter", "ter?2", "alice"):
        assert secret not in shown, shown
    assert "***" in shown
    if expected is not None:
        assert shown == expected


def test_redacted_url_keeps_what_helps_find_the_server():
    from optio.webapp.security import redacted_url

    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert (
        redacted_url("unix:///run/redis.sock?db=2&password=pw")
        == "unix:///run/redis.sock?db=2&password=***"
    )
    assert (
        redacted_url("redis://h:1/0?username=u&password=p&db=1")
        == "redis://h:1/0?username=***&password=***&db=1"
    )
