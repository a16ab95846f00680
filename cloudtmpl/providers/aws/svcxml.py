"""Reading and writing the XML of Route53, S3 and ELB (any namespace); pure functions.

The service requests are raw (XML built and read here) because libcloud's helpers
cannot carry what cloudtmpl needs (multi-value UPSERTs, tags, versioning) and its ELB
parsing is broken (``create_balancer`` gives ``ip=None``, ``list_balancers``
``port=None``, ``ex_create_balancer_listeners`` sends nothing).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

from cloudtmpl.model import LiveResource, Placement

TAG_REGION = "cloudtmpl:region"


def find(el: ET.Element | None, path: str) -> ET.Element | None:
    if el is None:
        return None
    return el.find("/".join(f"{{*}}{p}" for p in path.split("/")))


def find_all(el: ET.Element | None, path: str) -> list[ET.Element]:
    if el is None:
        return []
    return el.findall("/".join(f"{{*}}{p}" for p in path.split("/")))


def txt(el: ET.Element | None, path: str) -> str | None:
    found = find(el, path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def x(value: Any) -> str:
    return escape(str(value))


def as_bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")


def hashed(text: str, limit: int) -> str:
    """``text``, or (longer than ``limit``) its head and a hash that keeps it unique."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return text[: limit - 9].rstrip("-.") + "-" + digest


def live(placement: Placement, kind: str, address: str, pid: str, name: str,
         properties: dict[str, Any], attributes: dict[str, Any], spec: str | None,
         status: str = "available") -> LiveResource:
    """A service object as a live resource (an empty spec: none)."""
    return LiveResource(address=address, kind=kind, physical_id=pid, placement=placement,
                        name=name, properties=properties, attributes=attributes,
                        spec_hash=spec or None, status=status)
