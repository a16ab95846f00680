"""The EC2 query API's vocabulary: reading its XML, writing filters and tags.

Pure functions, no requests.  Every object cloudtmpl makes carries the ``Name`` tag
(the deterministic name) and ``cloudtmpl:stack``/``resource``/``spec``
(:func:`identity_tags`), written in the create call itself (:func:`tag_spec`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.retry import error_codes

TAG_NAME = "Name"
TAG_ATTACHMENT = "cloudtmpl:attachment"
TAG_ATTACHMENT_SPEC = "cloudtmpl:attachment-spec"
# Which keys a list property of the template used (server networks, port
# fixed_ips), so discovery can report the live values in the template's shape.
TAG_SHAPE = "cloudtmpl:shape"
# An object made as a part of another kind's resource (a NAT gateway's elastic IP):
# never reported as a resource of its own kind.
TAG_PART_OF = "cloudtmpl:part-of"

NS = "http://ec2.amazonaws.com/doc/2016-11-15/"  # libcloud's EC2 API namespace

T = TypeVar("T")


def _ns(path: str) -> str:
    return "/".join(f"{{{NS}}}{part}" for part in path.split("/"))


def text(el: ET.Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(_ns(path))
    if found is None or found.text is None:
        return None
    value = found.text.strip()
    return value or None


def items(el: ET.Element | None, path: str) -> list[ET.Element]:
    return [] if el is None else el.findall(_ns(path))


def ids_in(el: ET.Element, field: str) -> list[str]:
    """Every ``field`` element's text anywhere in an answer (a create's new id)."""
    return [e.text.strip() for e in el.iter(f"{{{NS}}}{field}") if e.text]


def tags_of(el: ET.Element | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items(el, "tagSet/item"):
        key = text(item, "key")
        if key is not None:
            out[key] = text(item, "value") or ""
    return out


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The user's tags: neither ``Name`` nor cloudtmpl's own."""
    return {k: v for k, v in kit.user_metadata(tags).items() if k != TAG_NAME}


def reserved_tag(key: str) -> str | None:
    """Why ``key`` may not be a user's tag on AWS (None: it may)."""
    if key == TAG_NAME or key.startswith(("cloudtmpl:", "aws:")):
        return "is reserved (Name, cloudtmpl:* and aws:* tags are managed by cloudtmpl and AWS)"
    return None


def metadata(properties: Mapping[str, Any]) -> dict[str, str]:
    """The ``metadata`` property as the user's tags (reserved keys refused)."""
    return kit.metadata(properties, reserved_tag)


def has_code(err: BaseException, *codes: str) -> bool:
    found = error_codes(err)
    return any(c in found for c in codes)


def tag_spec(resource_type: str, tags: Mapping[str, str]) -> dict[str, str]:
    params = {"TagSpecification.1.ResourceType": resource_type}
    for i, (key, value) in enumerate(tags.items(), 1):
        params[f"TagSpecification.1.Tag.{i}.Key"] = key
        params[f"TagSpecification.1.Tag.{i}.Value"] = value
    return params


def filters(named: Mapping[str, str | Iterable[str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for i, (name, values) in enumerate(named.items(), 1):
        params[f"Filter.{i}.Name"] = name
        vals = [values] if isinstance(values, str) else list(values)
        for j, value in enumerate(vals, 1):
            params[f"Filter.{i}.Value.{j}"] = value
    return params


def stack_filter(stack: str) -> dict[str, str]:
    """The server-side filter of every discovery listing: the stack's tag."""
    return filters({f"tag:{TAG_STACK}": stack})


def identity_tags(name: str, stack: str, address: str, spec_hash: str | None) -> dict[str, str]:
    tags = {TAG_NAME: name, TAG_STACK: stack, TAG_RESOURCE: address}
    if spec_hash is not None:
        tags[TAG_SPEC] = spec_hash
    return tags


def extra_tags(obj: Any) -> Mapping[str, str]:
    """The tags of an object libcloud's EC2 driver read (an instance, a volume)."""
    return obj.extra.get("tags") or {}


def stack_items(items: Iterable[T], stack: str,
                tags: Callable[[T], Mapping[str, str]]) -> Iterator[tuple[str, T]]:
    """(address, item) for each of ``items`` whose tags (``tags`` reads them) say it is
    ``stack``'s; the address is its ``cloudtmpl:resource`` tag, else its ``Name``'s."""
    def address_of(item: T) -> str | None:
        found = tags(item)
        return kit.tagged_address(found, stack, found.get(TAG_NAME, ""))

    return kit.stack_items(items, address_of)


def entries(value: Any, allowed: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """A list-of-maps property (server networks, port fixed_ips), checked and as strings."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
        raise CloudError(f"{what} must be a list of maps", permanent=True)
    out = []
    for entry in value:
        clean = {str(k): str(v) for k, v in entry.items() if v is not None}
        unknown = sorted(set(clean) - set(allowed))
        if unknown or not clean:
            raise CloudError(f"{what} entry {dict(entry)!r}: the aws provider takes "
                             f"{', '.join(allowed)} (at least one)"
                             + (f", not {', '.join(unknown)}" if unknown else ""),
                             permanent=True)
        out.append(clean)
    return out


def shape(listed: list[dict[str, str]]) -> str:
    """The ``cloudtmpl:shape`` tag value: each entry's keys (``a+b``), entries ``;``-joined."""
    return ";".join("+".join(sorted(e)) for e in listed)


def unshape(tags: Mapping[str, str | None]) -> list[list[str]] | None:
    """The entries' keys recorded at creation (None: not recorded, shape unknown)."""
    if TAG_SHAPE not in tags:
        return None
    value = tags.get(TAG_SHAPE) or ""
    return [part.split("+") for part in value.split(";")] if value else []


def own_groups(groups: list[tuple[str, str]]) -> list[str]:
    """Group ids as a template names them: a VPC's ``default`` group alone (what EC2
    gives an interface that was given none) is reported as no group."""
    if len(groups) == 1 and groups[0][1] == "default":
        return []
    return sorted(gid for gid, _ in groups if gid)
