"""What keeps other web sites and other people out: the API token, the cross-site guard (CSRF)
and CORS, and the redaction of credentials from what the API shows. (The Content-Security-Policy
of the pages is in ``pages.py``.)"""

from __future__ import annotations

import hmac
import re
from urllib.parse import unquote

from flask import request

from optio.webapp.services import services
from optio.webapp.uploads import UPLOAD_TYPES
from optio.webapp.validation import ApiError


def token_ok(presented: str | None, expected: str | None) -> bool:
    """Whether ``presented`` is the ``expected`` API token (constant-time comparison); any is
    when no token is configured."""
    if not expected:
        return True
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def require_token(expected: str | None) -> None:
    """Refuse the request (401) unless it carries the API token ``expected`` (any when None)."""
    if not token_ok(bearer_token(), expected):
        raise ApiError(401, "missing or wrong API token: send Authorization: Bearer <token>")


#: Views whose body may be a stream of items instead of JSON, and the media types they take.
UPLOADS = {"api.create_run": UPLOAD_TYPES}

#: Methods that change state: refused on every route when another web site sends them (CSRF).
STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})


def origin_allowed(origin: str, environ: dict, allowed: tuple[str, ...] | list[str]) -> bool:
    """The page's own origin (scheme and Host of the request), or one in ``allowed``
    (OPTIO_CORS_ORIGINS)."""
    same = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
    return origin == same or origin in allowed


def refuse_cross_site() -> None:
    """Refuse state changes sent by other web sites, on every route of the app.

    A form post or a body-less ``fetch`` is a "simple request": browsers send it cross-site with
    no preflight, to localhost too. They label it with ``Origin`` (or at least ``Referer``), which
    must then be ours or listed; ``null`` (sandboxed frames, no-referrer pages, file://) never is
    for changes. Clients that send neither, such as curl, are not browsers acting for a web site.
    A body must be JSON on every route (``POST /api/runs`` also takes NDJSON and CSV uploads:
    neither is a type a form can send). (No check of an empty body's type: eventlet reports a
    missing Content-Type as text/plain, so curl's bare POST could not be told from a form's.)
    """
    if request.method not in STATE_CHANGING:
        return
    source, origin = "Origin", request.headers.get("Origin")
    if origin is None and request.referrer is not None:
        source, origin = "Referer", _origin_of(request.referrer)
    allowed = services().settings.cors_origins
    if origin is not None and (
        origin == "null" or not origin_allowed(origin, request.environ, allowed)
    ):
        raise ApiError(
            403,
            f"cross-site request refused: {source} {origin[:100]!r} is neither this server's "
            "origin nor listed in OPTIO_CORS_ORIGINS",
        )
    has_body = bool(request.content_length) or "Transfer-Encoding" in request.headers
    streams = UPLOADS.get(request.endpoint or "", ())
    if has_body and request.mimetype != "application/json" and request.mimetype not in streams:
        types = ", ".join(("application/json", *streams))
        raise ApiError(
            415,
            f"Content-Type must be {types}" if streams else "Content-Type must be application/json",
        )


def _origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}://{host}" if scheme and host else "null"


def cors(response):
    """CORS for the origins of OPTIO_CORS_ORIGINS, matched exactly as the cross-site guard and
    Socket.IO match them. (flask-cors would read entries with regex characters as patterns,
    ``*`` as any origin, and compare without case: a second meaning for the same list.)"""
    origin = request.headers.get("Origin")
    if origin and origin in services().settings.cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
    response.headers.add("Vary", "Origin")
    return response


#: Query parameters whose values are hidden in messages (redis-py honours ``password=`` and
#: ``username=``; sentinel and TLS options carry their own variants).
_SECRET_PARAM = re.compile(r"pass|secret|token|user|auth|key", re.IGNORECASE)


def redacted_url(url: str) -> str:
    """``url`` with every credential replaced by ``***``: userinfo, and the values of query
    parameters such as ``password=``; each part of a ``;``-separated sentinel list too."""
    redacted = []
    for part in url.split(";"):
        head, userinfo, location, params = _url_parts(part)
        query = "&".join(
            f"{name}=***" if secret else f"{name}{sep}{value}"
            for name, sep, value, secret in params
        )
        redacted.append(
            head + ("***@" if userinfo else "") + location + ("?" if params else "") + query
        )
    return ";".join(redacted)


def _url_parts(url: str) -> tuple[str, str, str, list[tuple[str, str, str, bool]]]:
    """(``scheme://``, userinfo, host and path, query parameters with a secret flag each).

    Split by hand, not with urlsplit: an unencoded ``#`` or ``?`` in a password must not move
    the secret into a part that is shown. When an ``@`` follows a ``?`` (a ``?`` in the password,
    or an ``@`` in a query value: no telling which), all of it counts as userinfo.
    """
    scheme, sep, rest = url.partition("://")
    head = scheme + sep if sep else ""
    rest = rest if sep else url
    if "?" in rest.rpartition("@")[0]:
        return head, rest, "", []
    userinfo, at, rest = rest.rpartition("@")
    location, _, query = rest.partition("?")
    params = [
        (name, sep_, value, bool(_SECRET_PARAM.search(name)))
        for name, sep_, value in (p.partition("=") for p in query.split("&") if p)
    ]
    return head, userinfo if at else "", location, params


def _secrets(url: str) -> list[str]:
    """The credential values in ``url``, to scrub from error messages that might echo them."""
    values: list[str] = []
    for part in url.split(";"):
        _, userinfo, _, params = _url_parts(part)
        values += [userinfo, *userinfo.split(":")]
        values += [value for _, _, value, secret in params if secret]
    found = {s for v in values if v for s in (v, unquote(v))}
    return sorted(found, key=len, reverse=True)


def scrubbed(message: str, url: str | None = None) -> str:
    for secret in _secrets(url or services().settings.redis_url):
        message = message.replace(secret, "***")
    return message
