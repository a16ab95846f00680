"""Names and tags on libcloud clouds: pure functions, no requests.

Every object is named ``<stack>.<address>``; drivers whose names forbid dots or
capitals (DigitalOcean, Linode) get the same name escaped reversibly (``[a-z0-9]``
kept, any other character ``-xx`` in hex), so the stack prefix stays unambiguous.
Ownership tags go into the create call in the form the driver's verb accepts.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK

# Drivers whose names allow only lowercase letters, digits and '-' for some kinds
# (DigitalOcean volumes, Linode labels without '--'): names are escaped for them.
ESCAPED_NAMES = frozenset({"digitalocean", "linode"})


def escape_name(text: str) -> str:
    """``[a-z0-9]`` as is, every other character ``-`` plus two hex digits (reversible)."""
    return "".join(c if ("a" <= c <= "z" or "0" <= c <= "9") else
                   "".join(f"-{b:02x}" for b in c.encode()) for c in text)


def unescape_name(text: str) -> str | None:
    """The inverse of :func:`escape_name` (None: not an escaped name)."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "-":
            pair = text[i + 1:i + 3]
            if len(pair) != 2 or not re.fullmatch(r"[0-9a-f]{2}", pair):
                return None
            out.append(int(pair, 16))
            i += 3
        elif "a" <= c <= "z" or "0" <= c <= "9":
            out.extend(c.encode())
            i += 1
        else:
            return None
    try:
        return out.decode()
    except UnicodeDecodeError:
        return None


def params(fn: Any) -> Mapping[str, Any]:
    """The parameters a driver verb takes (empty when it cannot be inspected)."""
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


def tag_list(tags: Mapping[str, str]) -> list[str]:
    """Ownership tags as plain strings (``cloudtmpl:stack:web``): the characters most
    clouds allow in a tag (letters, digits, ``_``, ``-``, ``:``)."""
    return [f"{k}:{re.sub(r'[^A-Za-z0-9_:-]', '_', v)}" for k, v in tags.items()]


def stack_of_tags(raw: Any) -> str | None:
    """The ``cloudtmpl:stack`` an object's tags name (None: none recorded)."""
    if isinstance(raw, Mapping):
        value = raw.get(TAG_STACK)
        return str(value) if value is not None else None
    if isinstance(raw, (list, tuple)):
        for tag in raw:
            if isinstance(tag, str) and tag.startswith(f"{TAG_STACK}:"):
                return tag[len(TAG_STACK) + 1:]
    if isinstance(raw, str) and raw.startswith(f"{TAG_STACK}:"):
        return raw[len(TAG_STACK) + 1:]
    return None


def ownership(stack: str, address: str, spec_hash: str,
              metadata: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The user's metadata plus the ownership tags."""
    tags = {str(k): str(v) for k, v in (metadata or {}).items()}
    tags.update({TAG_STACK: stack, TAG_RESOURCE: address, TAG_SPEC: spec_hash})
    return tags


def tag_kwargs(fn: Any, tags: Mapping[str, str]) -> dict[str, Any]:
    """Ownership tags in the form ``fn`` (a create verb) accepts ({}: none)."""
    taken = params(fn)
    if "ex_metadata" in taken:
        return {"ex_metadata": dict(tags)}
    if "ex_tags" in taken:
        return {"ex_tags": tag_list(tags)}
    if "tags" in taken:
        return {"tags": tag_list(tags)}
    if "ex_create_attr" in taken:
        return {"ex_create_attr": {"tags": tag_list(tags)}}
    if "ex_tag" in taken:
        return {"ex_tag": tag_list({TAG_STACK: tags[TAG_STACK]})[0]}
    return {}


def state(obj: Any) -> str:
    """An object's state as lowercase text ("" when the driver does not say)."""
    value = getattr(obj, "state", None)
    return str(getattr(value, "value", value) or "").lower()
