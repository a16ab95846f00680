"""Hidden parameters' defaults, cut out of the template snapshot a plan file carries.

A template is kept in a plan file as written, except that the ``default:`` of a
hidden parameter is replaced by ``null``; the plan keeps a keyed digest of each
cut default instead (:func:`cloudtmpl.model.sealed_text`, HMAC-SHA256 with the
project's secret key).  ``apply PLANFILE`` takes a cut default back from the
template in the work tree when that file, cut the same way, is the plan's copy
and its default has the same digest (:func:`restore`); otherwise the value must
be given again with ``-p``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.loader import load_text
from cloudtmpl.model import sealed_text


def _hidden_defaults(data: Any) -> dict[str, Any]:
    """The hidden parameters of a template that have a default: name -> default."""
    if not isinstance(data, Mapping) or "heat_template_version" not in data:
        return {}
    params = data.get("parameters")
    if not isinstance(params, Mapping):
        return {}
    return {name: pdef["default"] for name, pdef in params.items()
            if isinstance(pdef, Mapping) and pdef.get("hidden") is True
            and pdef.get("default") is not None}


def _default_nodes(text: str, names: set[str]) -> list[yaml.Node]:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    out: list[yaml.Node] = []
    for key, value in root.value if isinstance(root, yaml.MappingNode) else ():
        if key.value != "parameters" or not isinstance(value, yaml.MappingNode):
            continue
        for pname, pdef in value.value:
            if pname.value in names and isinstance(pdef, yaml.MappingNode):
                out.extend(v for k, v in pdef.value if k.value == "default")
    return out


def _spliced(text: str, nodes: list[yaml.Node]) -> str:
    for node in sorted(nodes, key=lambda n: n.start_mark.index, reverse=True):
        start, end = node.start_mark.index, node.end_mark.index
        tail = text[start:end]
        # a block value's end is the next line's start: keep the line break
        keep = tail[len(tail.rstrip(" \n")):]
        text = text[:start] + "null" + keep + text[end:]
    return text


def _texts(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return [] if isinstance(value, bool) else [str(value)]


def cut(text: str, file: str, key: bytes) -> tuple[str, dict[str, str]]:
    """``text`` (a template) without its hidden parameters' defaults, and the keyed
    digest of each cut default (name -> sealed text).  A file that is not a template is
    returned as it is."""
    try:
        doc = load_text(text, file)
    except DiagnosticError:
        return text, {}
    defaults = _hidden_defaults(doc.data)
    if not defaults:
        return text, {}
    out = _spliced(text, _default_nodes(text, set(defaults)))
    try:
        check = load_text(out, file).data
    except DiagnosticError:
        check = None
    left = _hidden_defaults(check)
    if left or check is None or any(len(t) >= 4 and t in out for d in defaults.values()
                                    for t in _texts(d)):
        # the text could not be cut in place (an alias, an unusual layout): write the
        # data again without the defaults (comments are lost in the plan's copy only)
        data = dict(doc.data)
        data["parameters"] = {
            name: ({k: v for k, v in pdef.items() if k != "default"} if name in defaults
                   else pdef)
            for name, pdef in data["parameters"].items()}
        out = yaml.safe_dump(data, sort_keys=False)
    return out, {name: sealed_text(value, key) for name, value in sorted(defaults.items())}


def restore(saved: str, file: str, work: str, digests: Mapping[str, str], key: bytes) -> bool:
    """Whether ``work`` (the template in the work tree) is the plan's copy ``saved`` with
    the cut defaults whose digests are ``digests``: then it may be used in its place."""
    text, found = cut(work, file, key)
    return text == saved and found == dict(digests)


def cut_all(sources: Mapping[str, str], key: bytes
            ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """:func:`cut` applied to every file of a snapshot: the files, and file -> digests
    for the files that had hidden defaults."""
    out: dict[str, str] = {}
    digests: dict[str, dict[str, str]] = {}
    for file, text in sources.items():
        out[file], found = cut(text, file, key)
        if found:
            digests[file] = found
    return out, digests
