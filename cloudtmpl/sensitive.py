"""Sensitive values: a mark that travels with every value derived from a secret.

A hidden parameter's value, a random string's value and anything computed from
them (a leaf of a hidden ``json`` parameter, an item of a hidden list, a
``str_split`` piece, a ``str_replace`` that used one, ...) is *sensitive*.  The
mark is the value's type: thin subclasses of ``str``, ``int``, ``float``,
``dict`` and ``list`` that behave exactly like the plain values (equal, same
hash, same JSON), so the cloud receives the real value while
:func:`cloudtmpl.model.seal` knows what to replace wherever a value is written.

Marks are set at the sources (:func:`mark`: a context's hidden parameter, a
sensitive attribute) and spread by :func:`cloudtmpl.functions.evaluate`, which
marks the result of every function call whose evaluation read a marked value.
What it read is counted per thread (:func:`touched`, :func:`touches`), so
worker threads evaluating at once never taint each other; :func:`isolated`
gives an evaluation started from inside another one (a resource computed on
demand while its dependent is evaluated) its own count.  Code that rebuilds
values outside ``evaluate`` (canonical forms, type conversions) keeps the marks
with :func:`carry`.  ``bool`` cannot be subclassed: a boolean is never marked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import yaml


class Sensitive:
    """The mark shared by every sensitive type."""

    __slots__ = ()


class SensitiveStr(str, Sensitive):
    __slots__ = ()


class SensitiveInt(int, Sensitive):
    __slots__ = ()


class SensitiveFloat(float, Sensitive):
    __slots__ = ()


class SensitiveDict(dict[Any, Any], Sensitive):
    __slots__ = ()


class SensitiveList(list[Any], Sensitive):
    __slots__ = ()


# YAML writes them as the plain values (a cloud-config body, an environment file)
for _cls, _plain in ((SensitiveStr, str), (SensitiveInt, int), (SensitiveFloat, float),
                     (SensitiveDict, dict), (SensitiveList, list)):
    yaml.SafeDumper.add_representer(_cls, yaml.SafeDumper.yaml_representers[_plain])


def is_marked(value: Any) -> bool:
    """True if ``value`` itself carries the mark."""
    return isinstance(value, Sensitive)


def has_marks(value: Any) -> bool:
    """True if ``value`` or anything inside it (keys too) carries the mark."""
    if isinstance(value, Sensitive):
        return True
    if isinstance(value, Mapping):
        return any(has_marks(k) or has_marks(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_marks(v) for v in value)
    return False


def mark(value: Any) -> Any:
    """``value`` marked, deeply: every key, item and leaf too (a copy of a marked
    container keeps its leaves' marks).  None, booleans and other objects (the
    unknown-until-apply value, function nodes) stay as they are."""
    if isinstance(value, Sensitive) and not isinstance(value, (dict, list)):
        return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return SensitiveStr(value)
    if isinstance(value, int):
        return SensitiveInt(value)
    if isinstance(value, float):
        return SensitiveFloat(value)
    if isinstance(value, Mapping):
        return SensitiveDict({mark(k): mark(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return SensitiveList(mark(v) for v in value)
    return value


def unmark(value: Any) -> Any:
    """``value`` as plain data (for digests and for code that checks exact types)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str.__str__(value) if isinstance(value, Sensitive) else value
    if isinstance(value, Sensitive) and isinstance(value, int):
        return int(value)
    if isinstance(value, Sensitive) and isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {unmark(k): unmark(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unmark(v) for v in value]
    return value


def carry(before: Any, after: Any) -> Any:
    """``after`` (``before`` rebuilt: converted, put in canonical form) with the marks
    of ``before``: a part whose source was sensitive is sensitive.  Mappings are
    followed key by key; anything else that lost its marks is marked whole."""
    if not has_marks(before) or is_marked(after):
        return after
    if isinstance(before, Mapping) and isinstance(after, Mapping) and not is_marked(before):
        return {k: carry(before[k], v) if k in before else v for k, v in after.items()}
    if has_marks(after) and not is_marked(before):
        return after  # the marked parts were kept as they are (a sorted list)
    return mark(after)


def texts(value: Any, minimum: int = 4) -> set[str]:
    """The texts of the marked values inside ``value`` (at least ``minimum`` long):
    what a free-text message (a cloud error, a script's output) could echo."""
    out: set[str] = set()

    def walk(v: Any, marked: bool) -> None:
        marked = marked or isinstance(v, Sensitive)
        if isinstance(v, Mapping):
            for k, item in v.items():
                walk(k, marked)
                walk(item, marked)
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item, marked)
        elif marked and isinstance(v, (str, int, float)) and not isinstance(v, bool):
            text = str.__str__(v) if isinstance(v, str) else repr(unmark(v))
            if len(text) >= minimum:
                out.add(text)

    walk(value, False)
    return out


# -- what an evaluation read -------------------------------------------------------
class _Count(threading.local):
    value = 0


_count = _Count()


def touched() -> None:
    """Note that the running evaluation read a marked value."""
    _count.value += 1


def touches() -> int:
    """How many marked values this thread's evaluation has read so far (compare two
    readings to know whether a function call read any)."""
    return _count.value


def touch_all(values: Iterable[Any]) -> None:
    """:func:`touched` once if any of ``values`` carries a mark."""
    if any(has_marks(v) for v in values):
        touched()


@contextmanager
def isolated() -> Iterator[None]:
    """Run an evaluation that must not count towards the one that started it."""
    saved = _count.value
    try:
        yield
    finally:
        _count.value = saved
