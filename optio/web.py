"""Entry point of the web app: ``flask --app optio.web run`` (development; threading mode).

Flask finds :func:`create_app` here (this module has no ``app``) and calls it with no argument: the
app is built from the environment's settings. Production serves it with ``python -m optio.serve``.
"""

from __future__ import annotations

from flask import Flask

from optio import config
from optio.webapp.app import create_app as build_app


def create_app(settings: config.Settings | None = None) -> Flask:
    """The web app for ``settings`` (default: the environment's, OPTIO_*)."""
    return build_app(settings or config.SETTINGS)
