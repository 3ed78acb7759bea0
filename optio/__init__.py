"""optio: process X jobs at Y jobs per minute, globally, with live progress."""

__version__ = "0.1.0"
