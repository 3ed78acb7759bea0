"""Browser pages: the dashboard, a run's page, the HTML test client (README, method 1), the
socket.io client.

The socket.io browser client is copied into the package at build time from the npm tarball
pinned by package-lock.json (see setup.py), so an installed wheel serves it without the
repository; a checkout without a build falls back to ``node_modules``. Nothing third-party is
committed or fetched from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, render_template, send_from_directory
from werkzeug.routing import BaseConverter

from optio.webapp.operations import HTML, JSON, RUN_ID, TEXT, Answer, operation, page
from optio.webapp.schemas import MAX_DEADLINE_SECONDS, MAX_WEIGHT
from optio.webapp.services import services
from optio.webapp.validation import ApiError, is_run_id

ROOT = Path(__file__).resolve().parents[2]  # the checkout (node_modules), when run from one
STATIC = Path(__file__).resolve().parent / "static"
#: socket.io-client files served under /vendor/ (the source map keeps devtools quiet).
VENDOR = ("socket.io.min.js", "socket.io.min.js.map")
#: Where they are looked for: the package (built), then a checkout's node_modules.
VENDOR_DIRS = (STATIC, ROOT / "node_modules" / "socket.io-client" / "dist")
#: The HTML test client and its script and style, served from STATIC at the root.
TEST_CLIENT = ("test-websocket.html", "test-websocket.js", "test-websocket.css")

#: Sent with every response. No inline script anywhere, and scripts only from this server: a
#: page that is tricked into adding a <script> (data:, another host) runs nothing. Socket.IO
#: may connect to other servers (the test client's Server field).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self' http: https: ws: wss:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class AnythingConverter(BaseConverter):
    """The rest of the path, slashes and newlines included (``path`` stops at a newline), so
    that every address under /runs/ reaches the run page's own check."""

    regex = "(?s:.+)"
    part_isolating = False


bp = Blueprint("pages", __name__)


@bp.get("/")
@page("dashboard", "The dashboard", "Start, change and watch runs.", HTML)
def dashboard():
    settings = services().settings
    return render_template(
        "dashboard.html",
        max_x=settings.max_x,
        max_y=settings.max_y,
        max_weight=MAX_WEIGHT,
        max_deadline=MAX_DEADLINE_SECONDS,
    )


@bp.get("/runs/", defaults={"run_id": ""})
@bp.get("/runs/<anything:run_id>")
@operation(
    "runPageWithoutId",
    "No run named: the not-found page",
    tag="pages",
    token=False,
    answers={404: Answer("The not-found page.", HTML)},
    rule="/runs/",
)
@operation(
    "runPage",
    "A run's page",
    "Its state, errors and Retry failed (read from `/api/runs/{runId}` by the page's script). "
    "Anything that is not a run id gets the not-found page.",
    tag="pages",
    token=False,
    params={"run_id": {**RUN_ID, "schema": TEXT}},
    answers={
        200: Answer("The run's page.", HTML),
        404: Answer("Not a run id: the not-found page.", HTML),
    },
    rule="/runs/<anything:run_id>",
)
def run_page(run_id: str):
    """A run's state and errors (read by run.js from /api/runs/<id>). Anything that is not a run
    id gets the not-found page, which repeats nothing of the request."""
    if not is_run_id(run_id):
        return render_template("not_found.html"), 404
    return render_template("run.html", run_id=run_id)


@bp.get(f"/<any({', '.join(map(repr, TEST_CLIENT))}):name>")
@page(
    "testClient",
    "The HTML test client",
    "The page and its script and style (README, method 1).",
    {"text/html": TEXT, "text/javascript": TEXT, "text/css": TEXT},
    404,
    params={"name": {"schema": {**TEXT, "enum": list(TEST_CLIENT)}}},
)
def test_client(name: str):
    """The HTML test client (README, method 1). Its script and style sit next to it, so that
    the same files also work opened from disk (file://)."""
    return send_from_directory(STATIC, name, max_age=0)


@bp.get("/vendor/<name>")
@page(
    "vendor",
    "The socket.io browser client",
    "Copied into the package from npm at build time; 503 when it is missing.",
    {"text/javascript": TEXT, JSON: {}},
    404,
    503,
    params={"name": {"schema": {**TEXT, "examples": [VENDOR[0]]}}},
)
def vendor(name: str):
    if name not in VENDOR:
        raise ApiError(404, f"no such vendored file: {name[:100]}")
    for folder in VENDOR_DIRS:
        if (folder / name).is_file():
            return send_from_directory(folder, name, max_age=3600)
    raise ApiError(
        503,
        f"{name} is missing: reinstall optio (its build copies the socket.io client from npm), "
        "or run `npm ci` in a checkout; the dashboard polls /api/status meanwhile",
    )


def _security_headers(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


#: Flask's own view of ``/static/<path:filename>``, declared in ``register``.
STATIC_FILES = page(
    "static",
    "The dashboard's script and style",
    "",
    {"text/javascript": TEXT, "text/css": TEXT, "text/html": TEXT, JSON: {}},
    404,
    params={"filename": {"schema": {**TEXT, "examples": ["dashboard.js"]}}},
)


def register(app: Flask) -> None:
    app.url_map.converters["anything"] = AnythingConverter
    app.register_blueprint(bp)
    STATIC_FILES(app.view_functions["static"])
    app.after_request(_security_headers)
