"""Resource names: which logical ids and addresses a template may use.

A resource's cloud-side name is ``<stack>.<address>`` (:func:`cloudtmpl.model.
physical_name`), and that name is its identity.  So a name is refused at
``validate`` when some cloud could not hold it, or when two resources could end
up with one name:

* a logical id (a key under ``resources:``, in the template or a nested one) is
  letters, digits, ``_`` and ``-``, not starting with ``-``
  (:data:`~cloudtmpl.model.RESOURCE_NAME_RE`).  Heat refuses ``/``; ``.`` joins a
  group's or nested stack's name to its members' (``web.0``, ``app.db``); control
  characters, spaces and the rest are refused by one cloud or another (Nova key
  pairs take only letters, digits, `` ``, ``.``, ``_``, ``-`` and ``@``);
* an address (what groups and nested stacks make: ``pool.3.port``) is at most
  :data:`~cloudtmpl.model.MAX_ADDRESS` characters;
* S3 bucket and ELB names are made of the address in a smaller alphabet
  (lower-case letters, digits and ``-``): two buckets (or two load balancers)
  whose addresses differ only in case, ``_``, ``.`` and ``-`` would share one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from cloudtmpl.diagnostics import Diagnostic
from cloudtmpl.loader import Document
from cloudtmpl.model import ADDRESS_RE, MAX_ADDRESS, RESOURCE_NAME_RE, DesiredResource

INVALID = "invalid-resource-name"
COLLISION = "resource-name-collision"
_RULE = "resource names are letters, digits, '_' and '-', not starting with '-'"
# kinds whose cloud name is the address in lower-case letters, digits and '-'
# (S3 bucket names, classic ELB names; see cloudtmpl.providers.aws.storage and .lb)
_FOLDED_KINDS = {"Cloud::Storage::Bucket": "bucket", "Cloud::LB::LoadBalancer": "load balancer"}


def _char(ch: str) -> str:
    if unicodedata.category(ch).startswith("C") or ch.isspace():
        return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'a control character').lower()})"
    return repr(ch)


def name_problem(name: Any) -> str:
    """What is wrong with ``name`` as a logical id ('' if nothing)."""
    if not isinstance(name, str):
        what = "null" if name is None else "true/false" if isinstance(name, bool) else \
            "a number" if isinstance(name, (int, float)) else type(name).__name__
        return f"is {what}, not a string"
    if not name:
        return "is empty"
    if RESOURCE_NAME_RE.fullmatch(name):
        return "" if len(name) <= MAX_ADDRESS else \
            f"is {len(name)} characters long (at most {MAX_ADDRESS})"
    bad = [ch for ch in dict.fromkeys(name) if not re.fullmatch(r"[A-Za-z0-9_-]", ch)]
    if not bad:
        return "starts with '-'"
    what = ", ".join(_char(ch) for ch in bad)
    why = {"/": " (Heat refuses '/')",
           ".": " ('.' joins a group's or nested stack's name to its members')"}
    return f"has {what} in it" + "".join(why[ch] for ch in bad if ch in why)


def _suggest(name: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name)).lstrip("-")[:MAX_ADDRESS] or "r"
    how = ("write it in quotes (YAML reads bare numbers, true/false, yes/no, on/off and "
           "null as other things than names)") if not isinstance(name, str) \
        else f"rename it, e.g. '{text}'"
    return f"{how}: {_RULE} (its cloud name is <stack>.<name>)"


def name_problems(doc: Document) -> list[Diagnostic]:
    """One diagnostic for each resource name of ``doc`` outside the rule."""
    data = doc.data if isinstance(doc.data, Mapping) else {}
    section = data.get("resources")
    if not isinstance(section, Mapping):
        return []
    out = []
    for name in section:
        problem = name_problem(name)
        if problem:
            shown = repr(name) if isinstance(name, str) else str(name)
            out.append(Diagnostic(INVALID, f"resource name {shown} {problem}",
                                  doc.key_loc(("resources", name)), _suggest(name)))
    return out


def _folded(res: DesiredResource) -> str | None:
    """The bucket's or load balancer's name in S3's alphabet (None if not known yet)."""
    text = res.address
    suffix = res.properties.get("name_suffix")
    if suffix is not None:
        if not isinstance(suffix, str):
            return None  # known after apply: nothing to compare
        text += "-" + suffix
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def address_problems(resources: Mapping[str, DesiredResource]) -> list[Diagnostic]:
    """Addresses that groups and nested stacks made too long, and buckets (or load
    balancers) whose cloud names would be one; one diagnostic per location."""
    out: dict[Any, Diagnostic] = {}
    seen: dict[tuple[str, str], str] = {}
    for address in sorted(resources):
        res = resources[address]
        if not ADDRESS_RE.fullmatch(address):
            continue  # a part of it has its own invalid-resource-name
        if len(address) > MAX_ADDRESS and res.loc not in out:
            out[res.loc] = Diagnostic(
                INVALID, f"resource address '{address}' is {len(address)} characters long "
                f"(at most {MAX_ADDRESS})", res.loc,
                "shorten the names of the group or nested stack and of its resources "
                "(their address is joined with '.')")
        what = _FOLDED_KINDS.get(res.kind)
        folded = _folded(res) if what else None
        if what is None or folded is None:
            continue
        other = seen.setdefault((res.kind, folded), address)
        if other != address and res.loc not in out:
            out[res.loc] = Diagnostic(
                COLLISION, f"resource '{address}': its {what} name (the address in "
                "letters, digits and '-', case ignored) would be the same as resource "
                f"'{other}''s", res.loc,
                "rename one of them so that the two differ in more than case, '_', '.' "
                "and '-'")
    return list(out.values())
