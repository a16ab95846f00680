"""What Neutron's named kinds share (groups, networks, subnets, ports, routers).

They are identified by the deterministic name; the spec hash lives in the
``description`` (``cloudtmpl:spec=<hash>``, after any text of the template's own).
Neutron allows duplicate names: a create that is retried after an ambiguous
failure first looks the name up; two objects of one name (a crash right after a
create whose answer was lost) are both reported, and the plan deletes the duplicate.

The kinds that are a part of another Neutron object (a router's interface, gateway
or extra route; a floating IP's association) are known by a Neutron tag on that
object, ``cloudtmpl:<mark>=[<extra>:]<stack>.<address>`` (:func:`marker_tag`; one tag
holds 60 characters, so no spec hash: those kinds change only by replacement, and
the state keeps their last-applied spec).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from cloudtmpl.model import TAG_SPEC, LiveResource, address_from_name, physical_name
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.openstack.client import OpenStackClient, status_of

TAG_PREFIX = "cloudtmpl:"
NIC_SEPARATOR = ":nic"  # "<server name>:nic<i>": ports made for a server's {subnet} NICs

_SPEC_RE = re.compile(r"(?:^|\n)" + re.escape(TAG_SPEC) + r"=(\S*)$")

# region, address, raw object -> the live resource
Make = Callable[[OpenStackClient, str, str, Mapping[str, Any]], LiveResource]


def with_spec(text: str, spec: str | None) -> str:
    if spec is None:
        return text
    marker = f"{TAG_SPEC}={spec}"
    return f"{text}\n{marker}" if text else marker


def split_spec(description: Any) -> tuple[str, str | None]:
    text = str(description or "")
    m = _SPEC_RE.search(text)
    if m is None:
        return text, None
    return text[: m.start()], m.group(1) or None


def named_live(client: OpenStackClient, region: str, stack: str, items: list[Any],
               make: Make) -> list[LiveResource]:
    """The stack's objects among ``items`` by name (a server's NIC ports left out)."""
    def address_of(obj: Mapping[str, Any]) -> str | None:
        name = str(obj.get("name") or "")
        return None if NIC_SEPARATOR in name else address_from_name(stack, name) or None

    return [make(client, region, address, obj)
            for address, obj in kit.stack_items(items, address_of)]


def find_named(client: OpenStackClient, region: str, path: str, key: str, name: str,
               accept: Callable[[dict[str, Any]], bool] = lambda _o: True) -> str | None:
    obj = client.api(region, "network", path, params={"name": name}, retry=False) or {}
    for item in obj.get(key) or []:
        if item.get("name") == name and accept(item):
            return str(item["id"])
    return None


def post(client: OpenStackClient, region: str, path: str, key: str, body: dict[str, Any],
         lookup: Callable[[], str | None]) -> str:
    """POST a new object (looking first on a retry); its id."""
    def go() -> str:
        obj = client.api(region, "network", path, method="POST", body={key: body},
                         retry=False) or {}
        return str(obj[key]["id"])

    return client.create_or_adopt(go, lookup)


def set_description(client: OpenStackClient, region: str, path: str, key: str, oid: str,
                    description: str, **extra: Any) -> None:
    client.api(region, "network", f"{path}/{oid}", method="PUT",
               body={key: {"description": description, **extra}})


def refresh(client: OpenStackClient, region: str, kind: str, address: str, oid: str,
            path: str, key: str, make: Make) -> LiveResource:
    obj = client.get(region, "network", f"{path}/{oid}", key)
    if obj is None:
        raise CloudError(f"{kind} {address} ({oid}) vanished", permanent=True)
    return make(client, region, address, obj)


def current(client: OpenStackClient, live: LiveResource, path: str,
            key: str) -> dict[str, Any]:
    """The object as it is now (a permanent error if it is gone)."""
    return kit.require(client.get(live.placement.region, "network",
                                  f"{path}/{live.physical_id}", key), live)


def delete_until_gone(client: OpenStackClient, live: LiveResource, path: str,
                      timeout: float) -> None:
    """DELETE, retried while the cloud says 409 (in use), until gone or timeout."""
    region = live.placement.region
    what = f"{live.kind} {live.name or live.address} ({live.physical_id})"

    def attempt() -> tuple[bool, str, None]:
        try:
            client.delete_call(region, "network", f"{path}/{live.physical_id}")
        except CloudError as err:
            if status_of(err) == 409:
                return False, f"in use ({err.message})", None
            raise
        return True, "deleted", None

    client.poll(timeout, what, attempt)


# --- tags: how the kinds without a Neutron object of their own are known -----------

MAX_TAG = 60  # Neutron's limit on one tag


def marker_tag(mark: str, stack: str, address: str, extra: str = "") -> str:
    """``cloudtmpl:<mark>=[<extra>:]<stack>.<address>`` (the physical name): the Neutron
    tag that makes a router interface, gateway, route or floating-IP association the
    stack's (on the object it lives on); a permanent error when it would not fit in
    one tag."""
    tag = f"{TAG_PREFIX}{mark}={extra + ':' if extra else ''}{physical_name(stack, address)}"
    if len(tag) > MAX_TAG or "," in tag:
        raise CloudError(f"{address}: the Neutron tag {tag!r} that records it would be "
                         f"{len(tag)} characters (Neutron allows {MAX_TAG}, no comma): use a "
                         "shorter stack name or resource address", permanent=True)
    return tag


def tagged(obj: Mapping[str, Any], mark: str, stack: str) -> list[tuple[str, str]]:
    """(extra, address) of each marker tag ``mark`` of ``stack`` on ``obj``."""
    out = []
    head = f"{TAG_PREFIX}{mark}="
    for tag in obj.get("tags") or []:
        if not isinstance(tag, str) or not tag.startswith(head):
            continue
        extra, _, name = tag[len(head):].rpartition(":")  # no extra: ("", "", all)
        address = address_from_name(stack, name)
        if address:
            out.append((extra, address))
    return out


def put_tag(client: OpenStackClient, region: str, path: str, oid: str, tag: str) -> None:
    """Add one tag (idempotent)."""
    client.api(region, "network", f"{path}/{oid}/tags/{quote(tag, safe='')}", method="PUT")


def drop_tag(client: OpenStackClient, region: str, path: str, oid: str, tag: str) -> None:
    """Remove one tag; one already gone (or its object) is fine."""
    try:
        client.api(region, "network", f"{path}/{oid}/tags/{quote(tag, safe='')}",
                   method="DELETE")
    except CloudError as err:
        if status_of(err) != 404:
            raise
