"""The "did you mean" part of a hint: the closest of the names a key or value may take."""

from __future__ import annotations

import difflib


def suggest(name: str, options: list[str]) -> str:
    """``did you mean 'x'? `` for the option closest to ``name``, or nothing."""
    match = difflib.get_close_matches(name, options, n=1)
    return f"did you mean {match[0]!r}? " if match else ""
