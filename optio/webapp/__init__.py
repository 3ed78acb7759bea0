"""The web process: the Flask app (``app``), its HTTP API (``api``, ``health``, ``errors``,
``validation``, ``schemas``; its OpenAPI document: ``operations``, ``openapi``), its pages
(``pages``, ``templates/``, ``static/``), ``security``, ``metrics``, and the Socket.IO relay of
progress (``relay``, ``budget``), served by ``serve``. The entries are ``optio.web`` and
``optio.serve``. Uses the store, the broker settings (to send the start tick by name), the
settings and the names; never the worker."""
