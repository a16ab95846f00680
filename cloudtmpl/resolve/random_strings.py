"""What Heat's ``OS::Heat::RandomString`` refuses at validate time, as diagnostics:
``length`` 1 to 512; each ``character_classes`` item's ``class`` one of the sequences and
its ``min`` 1 to 512; each ``character_sequences`` item with a ``sequence`` and ``min`` 1 to
512; the deprecated ``sequence`` not together with either list; and ``length`` at least
the sum of the minimums.  A value known only later (a function) is not checked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl.loader import Path
from cloudtmpl.resolve.scope import Scope
from cloudtmpl.schema import did_you_mean

CLASSES = ("lettersdigits", "letters", "lowercase", "uppercase", "digits", "hexdigits",
           "octdigits")
MOST = 512  # Heat's Range(1, 512) on length and on each min
CODE = "invalid-random-string"


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_random_string(scope: Scope, props: Mapping[str, Any], ppath: Path, name: str
                        ) -> None:
    doc = scope.doc
    where = f"resource '{name}'"
    length = _count(props.get("length", 32))
    if length is not None and not 1 <= length <= MOST:
        scope.add(CODE, f"{where}: length must be 1 to {MOST}, not {length}",
                  doc.loc((*ppath, "length")), "Heat's RandomString takes 1 to 512 characters")
    lists = [p for p in ("character_classes", "character_sequences") if props.get(p)]
    if props.get("sequence") is not None and lists:
        scope.add(CODE, f"{where}: the deprecated 'sequence' cannot be used with "
                  f"'{lists[0]}'", doc.key_loc((*ppath, "sequence")),
                  "write the sequence as a character class: character_classes: "
                  "[{class: lettersdigits}]")
    least = 0
    for prop, key in (("character_classes", "class"), ("character_sequences", "sequence")):
        items = props.get(prop)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            ipath = (*ppath, prop, i)
            if not isinstance(item, Mapping):
                continue  # its type is checked with the property's
            given = item.get(key, "lettersdigits" if key == "class" else None)
            if key == "class" and isinstance(given, str) and given not in CLASSES:
                scope.add(CODE, f"{where}: unknown character class '{given}'",
                          doc.loc((*ipath, "class")), did_you_mean(given, CLASSES, "classes"))
            if key == "sequence" and (given is None or given == ""):
                scope.add(CODE, f"{where}: {prop}[{i}] needs a 'sequence'", doc.loc(ipath),
                          "give the characters to pick from: {sequence: '!@#$', min: 1}")
            least_here = _count(item.get("min", 1))
            if least_here is None:
                continue
            if not 1 <= least_here <= MOST:
                scope.add(CODE, f"{where}: {prop}[{i}] min must be 1 to {MOST}, not "
                          f"{least_here}", doc.loc((*ipath, "min")),
                          "at least one character of it, at most 512")
            least += least_here
    if length is not None and least > length:
        scope.add(CODE, f"{where}: length {length} is smaller than the character classes' "
                  f"and sequences' minimums together ({least})",
                  doc.loc((*ppath, "length")) if "length" in props else doc.loc(ppath),
                  f"make length at least {least}, or lower the minimums")
