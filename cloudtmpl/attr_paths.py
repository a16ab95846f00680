"""A ``get_attr`` path into an attribute's value, walked as Heat walks it.

``{get_attr: [server, networks, private, 0]}`` reads the attribute ``networks`` and
then, step by step, the key ``private`` of that map and the index ``0`` of that list.
Heat (``heat/engine/attributes.py`` ``select_from_attribute``) answers ``null`` when a
step is not there: a key the map does not have, an index past the list's end, a step
into a value that is neither a map nor a list (a string is indexed by position as in
Python), a step that is neither a string nor an integer.  cloudtmpl answers the same
``null`` and says so: :func:`select` tells what was missing, and
:func:`missing_warning` makes it a warning diagnostic at the ``get_attr``'s place,
which the plan and the apply output show.

An attribute *name* the kind does not have is an error before any of this, at
validate and plan (``unknown-attribute``, :mod:`cloudtmpl.resolve.checks`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudtmpl.diagnostics import Diagnostic, Loc
from cloudtmpl.sensitive import is_marked

CODE = "attribute-path-missing"
_SHOWN = 8  # keys listed in a hint


@dataclass(frozen=True)
class Missing:
    """Where a path stopped: the steps that were there, the one that was not, why,
    and what the value there offers instead (for the hint)."""

    found: tuple[Any, ...]
    step: Any
    why: str
    offers: str


def select(value: Any, path: tuple[Any, ...]) -> tuple[Any, Missing | None]:
    """(the value at ``path``, None), or (None, where and why it stopped)."""
    for i, step in enumerate(path):
        found = path[:i]
        secret = is_marked(value)  # its keys are not shown; the marks stay on its parts
        plain = value
        if not isinstance(step, (str, int)) or isinstance(step, bool):
            return None, Missing(found, step, "a path step must be a key or an index",
                                 "write the key as a string or the index as an integer")
        if isinstance(plain, Mapping):
            if isinstance(step, str) and step in plain:
                value = plain[step]
                continue
            return None, Missing(found, step, "the map has no such key",
                                 "" if secret else _keys(plain))
        if isinstance(plain, (list, tuple, str)):
            what = "string" if isinstance(plain, str) else "list"
            if isinstance(step, int) and -len(plain) <= step < len(plain):
                value = plain[step]
                continue
            if isinstance(step, str):
                return None, Missing(found, step, f"a {what} has indexes, not keys",
                                     _indexes(len(plain)))
            return None, Missing(found, step, f"the {what} has no such index",
                                 _indexes(len(plain)))
        kind = "null" if plain is None else type(plain).__name__
        return None, Missing(found, step, f"the value there is {kind}, not a map or a list",
                             "end the path before this step")
    return value, None


def _keys(value: Mapping[str, Any]) -> str:
    if not value:
        return "the map is empty"
    keys = sorted(str(k) for k in value)
    shown = ", ".join(keys[:_SHOWN]) + (f" (+{len(keys) - _SHOWN} more)"
                                         if len(keys) > _SHOWN else "")
    return f"its keys: {shown}"


def _indexes(length: int) -> str:
    return "it is empty" if length == 0 else f"its indexes: 0 to {length - 1}"


def _step(step: Any) -> str:
    return str(step) if isinstance(step, (str, int)) else json.dumps(step, default=str)


def _quoted(step: Any) -> str:
    return repr(step) if isinstance(step, str) else _step(step)


def missing_warning(resource: str, attr: str, path: tuple[Any, ...], missing: Missing,
                    loc: Loc) -> Diagnostic:
    """The warning for a path that stopped at ``missing``: the value is null."""
    written = ", ".join(_step(s) for s in (resource, attr, *path))
    at = "".join(f"[{_step(s)}]" for s in missing.found)
    return Diagnostic(
        CODE,
        f"get_attr: [{written}]: {attr}{at} has no {_quoted(missing.step)} "
        f"({missing.why}); the value is null, as Heat resolves it",
        loc,
        missing.offers,
        severity="warning",
    )
