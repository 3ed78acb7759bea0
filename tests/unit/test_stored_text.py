"""Results and errors are stored whatever their text: what UTF-8 can't encode is escaped, the
size is capped at a character boundary, and an exception whose str() fails still has a text."""

from __future__ import annotations

import os


def test_storable_text_replaces_what_utf8_cannot_encode():
    from optio.store.text import storable

    undecodable = os.fsdecode(b"name-\xff")  # a file name that is not UTF-8
    assert undecodable == "name-\udcff"
    assert storable(undecodable, 100) == "name-\\udcff"  # its escape, as Python writes it
    assert storable("\ud800 and \udfff", 100) == "\\ud800 and \\udfff"
    for text in ("plain", "é ✓ 😀", "", "nul\x00 byte"):
        assert storable(text, 100) == text  # storable text is kept as it is
    assert storable(undecodable, 100).encode("utf-8")  # strict UTF-8 encodes it now


def test_storable_text_is_cut_at_a_character_boundary_and_says_so():
    from optio.store.text import storable

    for text in ("x" * 200, "é" * 100, "😀" * 50, "\udcff" * 50):
        escaped = text.encode("utf-8", "backslashreplace")
        tail = f"… [cut: {len(escaped)} bytes]"
        stored = storable(text, 64)
        assert stored.endswith(tail), stored
        kept = stored[: -len(tail)].encode()
        # as much of the text as fits, less at most the 3 bytes of a character cut in two
        assert escaped.startswith(kept) and 64 - 3 <= len(kept) + len(tail.encode()) <= 64
        assert storable(stored, 64) == stored  # storing it again changes nothing
    assert storable("é" * 32, 64) == "é" * 32  # exactly 64 bytes: not cut
    assert storable("é" * 33, 64) != "é" * 33


def test_error_text_names_the_exception_whatever_its_message():
    from optio.store.text import MAX_ERROR_BYTES, error_text

    assert error_text(ValueError("job 7 always fails")) == "ValueError: job 7 always fails"
    assert error_text(OSError("cannot read name-\udcff")) == "OSError: cannot read name-\\udcff"
    long = error_text(RuntimeError("é" * 5000))
    assert len(long.encode()) <= MAX_ERROR_BYTES and long.startswith("RuntimeError: éé")

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise TypeError("no")

    assert error_text(Unprintable()) == "Unprintable: <str() of the exception raised TypeError>"
