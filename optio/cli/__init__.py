"""The command line, ``optio``: start, change and read runs over the HTTP API (``client``),
follow one live (``watch``), print them (``format``). It speaks HTTP only: nothing here reaches
Redis or Celery. ``optio serve`` starts the web process."""

from optio.cli.commands import main

__all__ = ["main"]
