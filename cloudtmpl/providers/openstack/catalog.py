"""What the region offers, looked up by name or id: flavors, images, networks, groups.

A flavor listing, an image found by name, the external network and the project's
``default`` security groups are kept for the client's life (one request each).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cloudtmpl.providers.base import Choice, CloudError
from cloudtmpl.providers.openstack.client import OpenStackClient

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                      r"[0-9a-fA-F]{12}$")


def is_uuid(value: str) -> bool:
    return bool(_UUID_RE.match(value))


def flavor_list(client: OpenStackClient, region: str) -> list[dict[str, Any]]:
    return client.listing(region, "flavors")


def flavor_name(client: OpenStackClient, region: str, flavor: Mapping[str, Any]) -> str | None:
    if flavor.get("original_name"):
        return str(flavor["original_name"])
    fid = flavor.get("id")
    for f in flavor_list(client, region):
        if f.get("id") == fid:
            return str(f.get("name"))
    return str(fid) if fid is not None else None


def flavor_ref(client: OpenStackClient, region: str, value: str) -> str:
    flavors = flavor_list(client, region)
    if any(f.get("id") == value for f in flavors):
        return value
    for f in flavors:
        if f.get("name") == value:
            return str(f["id"])
    return value  # unknown: Nova answers with its own message


def image_ref(client: OpenStackClient, region: str, value: str) -> str:
    if is_uuid(value):
        return value

    def find() -> str | None:
        images = client.list_all(region, "image", "/v2/images", "images", {"name": value})
        images = [i for i in images if i.get("name") == value]
        if not images:
            return None
        active = [i for i in images if str(i.get("status", "")).lower() == "active"] or images
        return str(active[0]["id"])

    found = client.cached(("image", region, value), find)
    return found or value  # unknown: Nova answers with its own message


def network_ref(client: OpenStackClient, region: str, value: str) -> str:
    if is_uuid(value):
        return value
    nets = client.list_all(region, "network", "/v2.0/networks", "networks", {"name": value})
    if len(nets) == 1:
        return str(nets[0]["id"])
    if not nets:
        raise CloudError(f"Network {value} could not be found.", permanent=True,
                         status="404")
    raise CloudError(f"Multiple networks are named {value}; use the network id.",
                     permanent=True, status="409")


def external_network(client: OpenStackClient, region: str) -> str:
    def find() -> str:
        nets = client.list_all(region, "network", "/v2.0/networks", "networks",
                           {"router:external": "True"})
        nets = [n for n in nets if n.get("router:external")]
        if not nets:
            raise CloudError(f"no external network (router:external) in {region}: give the "
                             "floating IP a floating_network", permanent=True)
        return str(sorted(nets, key=lambda n: str(n.get("name")))[0]["id"])

    return str(client.cached(("external", region), find))


def group_ref(client: OpenStackClient, region: str, value: str) -> str:
    if is_uuid(value):
        return value
    found = client.list_all(region, "network", "/v2.0/security-groups", "security_groups",
                        {"name": value})
    if len(found) == 1:
        return str(found[0]["id"])
    raise CloudError(f"Security group {value} could not be found (or is ambiguous); "
                     "use its id.", permanent=True, status="404")


def default_groups(client: OpenStackClient, region: str) -> list[dict[str, Any]]:
    """The project's ``default`` security group(s) in ``region`` (kept)."""
    def find() -> list[dict[str, Any]]:
        return [{"id": g.get("id"), "name": g.get("name")} for g in client.list_all(
            region, "network", "/v2.0/security-groups", "security_groups",
            {"name": "default"}) if g.get("name") == "default"]

    return client.cached(("default-groups", region), find) or []


def lookup_choice(client: OpenStackClient, region: str, what: str, value: str) -> Choice:
    """An existing flavor (canonical: its name, as discovery reports flavors), image
    or network (canonical: its id), by name or id, or key pair (by name); else what
    the region offers."""
    with client.session(region):
        if what == "flavor":
            items = flavor_list(client, region)
        elif what == "image":
            items = client.list_all(region, "image", "/v2/images", "images")
        elif what == "network":
            items = client.list_all(region, "network", "/v2.0/networks", "networks")
        elif what == "keypair":  # Nova lists {"keypair": {...}} entries, named only
            items = [dict(k.get("keypair") or {}, id=(k.get("keypair") or {}).get("name"))
                     for k in client.list_all(region, "compute", "/os-keypairs", "keypairs")]
        else:
            raise ValueError(f"lookup_choice: unknown kind of choice {what!r}")
    for item in items:
        if value in (item.get("id"), item.get("name")):
            return Choice(str(item.get("name") if what == "flavor" else item.get("id")))
    return Choice(None, tuple(sorted({str(i["name"]) for i in items if i.get("name")})))
