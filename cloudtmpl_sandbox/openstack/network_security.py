"""Neutron's security groups and their rules: the checks Neutron makes on a rule,
the default egress rules of a new group, and the refusals of a delete (the default
group, a group in use by a port)."""

from __future__ import annotations

import ipaddress

from .core import JSON
from .network_base import error, get, invalid, new_item, touch
from .state import Region


def default_group(region: Region) -> JSON:
    return next(g for g in region.security_groups.values() if g["name"] == "default")


def create_group(region: Region, spec: JSON) -> JSON:
    group = new_item(str(spec.get("name", "")), str(spec.get("description", "")))
    group.update(
        {"security_group_rules": [], "stateful": bool(spec.get("stateful", True)), "shared": False}
    )
    region.security_groups[group["id"]] = group
    return group


def add_rule(region: Region, group: JSON, spec: JSON) -> JSON:
    direction = spec.get("direction")
    if direction not in ("ingress", "egress"):
        raise invalid(f"{direction!r} is not in ['ingress', 'egress']")
    ethertype = spec.get("ethertype") or "IPv4"
    if ethertype not in ("IPv4", "IPv6"):
        raise invalid(f"{ethertype!r} is not in ['IPv4', 'IPv6']")
    protocol = spec.get("protocol")
    protocol = None if protocol in (None, "any") else str(protocol).lower()
    low, high = spec.get("port_range_min"), spec.get("port_range_max")
    if (low is not None or high is not None) and protocol is None:
        raise error(
            400,
            "SecurityGroupProtocolRequiredWithPorts",
            "Must also specify protocol if port range is given.",
        )
    if protocol in ("tcp", "udp", "6", "17") and low is not None:
        high = low if high is None else high
        if not (0 <= int(low) <= int(high) <= 65535):
            raise error(
                400,
                "SecurityGroupInvalidPortRange",
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            )
    prefix, remote = spec.get("remote_ip_prefix"), spec.get("remote_group_id")
    if prefix and remote:
        raise error(
            400,
            "SecurityGroupRemoteGroupAndRemoteIpPrefix",
            "Only remote_ip_prefix or remote_group_id may be provided.",
        )
    if prefix:
        try:
            net = ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            raise invalid(f"'{prefix}' is not a valid IP subnet.") from None
        if f"IPv{net.version}" != ethertype:
            raise error(
                400,
                "SecurityGroupRuleParameterConflict",
                f"Conflicting value ethertype {ethertype} for CIDR {prefix}",
            )
    if remote:
        get(region, "security-groups", remote)
    rule = new_item(description=str(spec.get("description") or ""))
    del rule["name"], rule["tags"]
    rule.update(
        {
            "security_group_id": group["id"],
            "direction": direction,
            "ethertype": ethertype,
            "protocol": protocol,
            "port_range_min": None if low is None else int(low),
            "port_range_max": None if high is None else int(high),
            "remote_ip_prefix": prefix or None,
            "remote_group_id": remote or None,
            "remote_address_group_id": None,
            "normalized_cidr": str(ipaddress.ip_network(prefix, strict=False)) if prefix else None,
        }
    )
    keys = (
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group_id",
    )
    for other in group["security_group_rules"]:
        if all(other[k] == rule[k] for k in keys):
            raise error(
                409,
                "SecurityGroupRuleExists",
                f"Security group rule already exists. Rule id is {other['id']}.",
            )
    region.security_group_rules[rule["id"]] = rule
    group["security_group_rules"].append(rule)
    return rule


def create_security_group(region: Region, spec: JSON) -> JSON:
    if spec.get("name") == "default":
        raise error(
            409, "SecurityGroupDefaultAlreadyExists", "Default security group already exists."
        )
    group = create_group(region, spec)
    for ethertype in ("IPv4", "IPv6"):
        add_rule(region, group, {"direction": "egress", "ethertype": ethertype})
    return group


def update_group(group: JSON, spec: JSON) -> None:
    for key in ("name", "description"):
        if key in spec:
            group[key] = spec[key]
    touch(group)


def delete_group(region: Region, group: JSON) -> None:
    if group["name"] == "default":
        raise error(
            409,
            "SecurityGroupCannotRemoveDefault",
            "Insufficient rights for removing default security group.",
        )
    if any(group["id"] in p["security_groups"] for p in region.ports.values()):
        raise error(409, "SecurityGroupInUse", f"Security Group {group['id']} in use.")
    for rule in group["security_group_rules"]:
        region.security_group_rules.pop(rule["id"], None)
    del region.security_groups[group["id"]]


def delete_rule(region: Region, rule: JSON) -> None:
    group = region.security_groups[rule["security_group_id"]]
    group["security_group_rules"] = [
        r for r in group["security_group_rules"] if r["id"] != rule["id"]
    ]
    del region.security_group_rules[rule["id"]]
