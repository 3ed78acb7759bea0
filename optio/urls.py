"""What ``REDIS_URL`` may name: one Redis (``redis://``, ``rediss://``, ``unix://``), or a primary
found through Redis Sentinel. The clients are built from it in
``optio.store.connection``; the Celery broker's URL and transport options are read here, so all
processes read the URL alike. Pure parsing: no client library is imported.

The Sentinel form names the Sentinels, the service (Sentinel's master name) and the database::

    redis+sentinel://[[user]:password@]host1:26379,host2:26379,host3:26379/mymaster/0

``user``/``password`` are the Redis servers' (primary and replicas); the Sentinels' own, when
they need one, go in ``?sentinel_username=...&sentinel_password=...``. A port left out is 26379.
A client of this form asks the Sentinels for the primary whenever it (re)connects, so it follows
a failover by itself: the old primary's connections fail, and the next one goes to the new
primary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlparse

SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379
#: Query parameters of the Sentinel form: the Sentinels' own credentials.
SENTINEL_PARAMS = ("sentinel_username", "sentinel_password")

_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^:\[\]]+)(?::(\d+))?$")


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    #: Sentinel's name of the monitored primary (``sentinel monitor <service> ...``)
    service: str
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)

    def where(self) -> str:
        """Sentinels, service and database, without credentials (for messages)."""
        hosts = ",".join(f"{_host(h)}:{p}" for h, p in self.sentinels)
        return f"{self.service}/{self.db} via Sentinels {hosts}"


def is_sentinel(url: str) -> bool:
    return url.partition("://")[0].lower() == SCHEME


def parse_sentinel(url: str) -> SentinelURL:
    """Parse the Sentinel form; ValueError names what is wrong (never a credential)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != SCHEME:
        raise ValueError(f"not a {SCHEME}:// URL")
    rest, _, query = rest.partition("?")
    userinfo, at, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError(
            f"REDIS_URL {SCHEME}://HOST:PORT,HOST:PORT/SERVICE/DB needs the service name (the "
            "Sentinels' master name) and may add a database number"
        )
    service = unquote(parts[0])
    try:
        db = int(parts[1]) if len(parts) == 2 else 0
    except ValueError:
        raise ValueError(f"the database of a {SCHEME} URL must be a number") from None
    sentinels = []
    for item in hosts.split(","):
        match = _HOST_PORT.match(item.strip())
        if not match:
            raise ValueError(f"bad Sentinel address {item.strip()!r} in REDIS_URL")
        host = match.group(1).strip("[]")
        sentinels.append((host, int(match.group(2) or DEFAULT_SENTINEL_PORT)))
    params = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(params) - set(SENTINEL_PARAMS))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} in a {SCHEME} URL "
            f"(known: {', '.join(SENTINEL_PARAMS)})"
        )
    username, colon, password = userinfo.partition(":") if at else ("", "", "")
    return SentinelURL(
        sentinels=tuple(sentinels),
        service=service,
        db=db,
        username=unquote(username) or None,
        password=unquote(password) if colon else None,
        sentinel_username=params.get("sentinel_username") or None,
        sentinel_password=params.get("sentinel_password") or None,
    )


def where(url: str) -> str:
    """Where ``url`` points, without credentials: ``host:port/db``, or the Sentinel form's
    service, database and Sentinels."""
    if is_sentinel(url):
        return parse_sentinel(url).where()
    parsed = urlparse(url)
    db = parsed.path.lstrip("/") or "0"
    return f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}/{db}"


def broker_url(url: str) -> str:
    """The Celery broker URL for ``url``: itself, or kombu's Sentinel form
    (``sentinel://[:password@]host:port/db;sentinel://...``, see broker_transport_options)."""
    if not is_sentinel(url):
        return url
    parsed = parse_sentinel(url)
    userinfo = ""
    if parsed.username or parsed.password is not None:
        user, password = (quote(v or "", safe="") for v in (parsed.username, parsed.password))
        userinfo = f"{user}:{password}@"
    return ";".join(
        f"sentinel://{userinfo}{_host(host)}:{port}/{parsed.db}" for host, port in parsed.sentinels
    )


def broker_transport_options(url: str) -> dict[str, Any]:
    """What kombu's Sentinel transport needs besides the URL: the service (``master_name``) and
    the Sentinels' own credentials. Empty for a plain Redis URL."""
    if not is_sentinel(url):
        return {}
    parsed = parse_sentinel(url)
    options: dict[str, Any] = {"master_name": parsed.service}
    credentials = {
        name: value
        for name, value in (
            ("username", parsed.sentinel_username),
            ("password", parsed.sentinel_password),
        )
        if value
    }
    if credentials:
        options["sentinel_kwargs"] = credentials
    return options


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
