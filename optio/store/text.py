"""Text as optio stores it: what a job returns or raises, made storable before any Redis call.

A job's result or error may be any Python text, and not all of it can be encoded: a lone
surrogate (``"name-\\udcff"``, as ``os.fsdecode`` gives for bytes that are not UTF-8) makes
redis-py's UTF-8 encoding raise, and a huge text would be kept in Redis for days. The counting
verbs (``optio/store/counting.py``) pass every result and error through :func:`storable` first,
so whatever a job gives is stored, readable, and bounded.
"""

from __future__ import annotations

#: Most bytes (UTF-8) of a failed job's stored error ("Type: message"; it is read by the API,
#: 20 errors per run page).
MAX_ERROR_BYTES = 2000

#: What ends a text cut to fit: how long it was.
_CUT = "… [cut: {total} bytes]"


def storable(text: str, max_bytes: int) -> str:
    """``text`` as it is stored: valid UTF-8 whatever it holds, at most ``max_bytes`` bytes.

    What UTF-8 cannot encode (a lone surrogate) is replaced by its escape, as Python writes it
    (``"name-\\udcff"`` becomes the 12 characters ``name-\\udcff``); a longer text is cut at a
    character boundary and ends with ``… [cut: N bytes]``, N its whole size. A storable text is
    returned as it is (``storable(storable(t, n), n) == storable(t, n)``).
    """
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= max_bytes:
        return data.decode()
    tail = _CUT.format(total=len(data))
    room = max_bytes - len(tail.encode())
    if room < 0:
        return data[:max_bytes].decode("utf-8", "ignore")
    # "ignore" drops only the bytes of a character cut in two at the end: the rest is UTF-8
    return data[:room].decode("utf-8", "ignore") + tail


def error_text(exc: BaseException) -> str:
    """How a job's exception is stored: ``"Type: message"``, storable (:func:`storable`, at most
    MAX_ERROR_BYTES), even when the exception's ``str()`` itself raises."""
    try:
        message = str(exc)
    except Exception as failure:  # a broken __str__: say so rather than lose the job's error
        message = f"<str() of the exception raised {type(failure).__name__}>"
    return storable(f"{type(exc).__name__}: {message}", MAX_ERROR_BYTES)
