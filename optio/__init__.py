"""optio: process X jobs at Y jobs per minute, globally, with live progress."""

from optio.throttle import Throttle

__all__ = ["Throttle"]
__version__ = "0.1.0"
