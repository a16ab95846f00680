"""Neutron's shared ground: the collections, Neutron's error bodies, new items,
lookups by id, IP allocation on a subnet, and tags.

What Neutron refuses is raised as :class:`~.core.ApiError` with Neutron's error body
``{"NeutronError": {"type", "message", "detail"}}``.  The resources are
:mod:`.network_models` (networks, subnets, ports, the seeds),
:mod:`.network_security` (security groups and rules), :mod:`.network_floating`
(floating IPs) and :mod:`.network_routers` (routers, their gateways, interfaces and
extra routes); the wire is :mod:`.network_responses`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .core import JSON, ApiError, new_id, now
from .core import iso as _iso
from .identity import PROJECT_ID
from .state import Region

COLLECTIONS = {  # URL segment → (Region attribute, singular body key, error type)
    "networks": ("networks", "network", "NetworkNotFound"),
    "subnets": ("subnets", "subnet", "SubnetNotFound"),
    "ports": ("ports", "port", "PortNotFound"),
    "security-groups": ("security_groups", "security_group", "SecurityGroupNotFound"),
    "security-group-rules": (
        "security_group_rules",
        "security_group_rule",
        "SecurityGroupRuleNotFound",
    ),
    "floatingips": ("floatingips", "floatingip", "FloatingIPNotFound"),
    "routers": ("routers", "router", "RouterNotFound"),
}
_NOT_FOUND = {  # Neutron's messages (a router's has no full stop)
    "networks": "Network {} could not be found.",
    "subnets": "Subnet {} could not be found.",
    "ports": "Port {} could not be found.",
    "security-groups": "Security group {} could not be found.",
    "security-group-rules": "Security group rule {} could not be found.",
    "floatingips": "Floating IP {} could not be found.",
    "routers": "Router {} could not be found",
}
DEVICE_OWNER_INTERFACE = "network:router_interface"
DEVICE_OWNER_GATEWAY = "network:router_gateway"


def error(status: int, kind: str, message: str) -> ApiError:
    return ApiError(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


def bad(message: str) -> ApiError:
    return error(400, "HTTPBadRequest", message)


def invalid(message: str) -> ApiError:
    return error(400, "InvalidInput", f"Invalid input for operation: {message}")


def new_item(name: str = "", description: str = "", item_id: str | None = None) -> JSON:
    ts = _iso(now())
    return {
        "id": item_id or new_id(),
        "name": name,
        "description": description,
        "tenant_id": PROJECT_ID,
        "project_id": PROJECT_ID,
        "tags": [],
        "created_at": ts,
        "updated_at": ts,
        "revision_number": 0,
    }


def touch(item: JSON) -> None:
    item["updated_at"] = _iso(now())
    item["revision_number"] += 1


def not_found(collection: str, item_id: str) -> ApiError:
    return error(404, COLLECTIONS[collection][2], _NOT_FOUND[collection].format(item_id))


def get(region: Region, collection: str, item_id: str) -> JSON:
    item = getattr(region, COLLECTIONS[collection][0]).get(item_id)
    if item is None:
        raise not_found(collection, item_id)
    return item


# ----------------------------------------------------------------------- addresses


def allocate_ip(region: Region, subnet: JSON, wanted: str | None = None) -> str:
    used = region.allocated[subnet["id"]]
    cidr = ipaddress.ip_network(subnet["cidr"])
    if wanted is not None:
        if ipaddress.ip_address(wanted) not in cidr:
            raise invalid(f"IP address {wanted} is not a valid IP for the specified subnet.")
        if wanted in used:
            raise error(
                409,
                "IpAddressAlreadyAllocated",
                f"IP address {wanted} already allocated in subnet {subnet['id']}",
            )
        used.add(wanted)
        return wanted
    pool = subnet["allocation_pools"][0]
    start, end = int(ipaddress.ip_address(pool["start"])), int(ipaddress.ip_address(pool["end"]))
    for value in range(start, end + 1):
        addr = str(ipaddress.ip_address(value))
        if addr not in used:
            used.add(addr)
            return addr
    raise error(
        409,
        "IpAddressGenerationFailure",
        f"No more IP addresses available on network {subnet['network_id']}.",
    )


# ----------------------------------------------------------------------------- tags


MAX_TAG_LEN = 60  # Neutron's limit on one tag


def _check_tag(tag: str) -> None:
    if not tag or len(tag) > MAX_TAG_LEN or "," in tag:
        raise invalid(f"'{tag}' is not a valid tag (1 to {MAX_TAG_LEN} characters, no comma).")


def replace_tags(item: JSON, tags: Any) -> None:
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise bad("Invalid tags body.")
    for tag in tags:
        _check_tag(tag)
    item["tags"] = sorted(set(tags))
    touch(item)


def add_tag(item: JSON, tag: str) -> None:
    _check_tag(tag)
    if tag not in item["tags"]:
        item["tags"] = sorted([*item["tags"], tag])
        touch(item)


def remove_tag(item: JSON, tag: str) -> None:
    if tag not in item["tags"]:
        raise error(404, "TagNotFound", f"Tag {tag} could not be found.")
    item["tags"].remove(tag)
    touch(item)
