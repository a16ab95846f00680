"""Neutron's state: networks, subnets, ports, security groups and rules, floating IPs.

Every region starts with an external network ``public`` (``router:external``,
floating IPs come from its subnet), a project network ``private`` that servers
booted without ``networks`` land on, and the project's ``default`` security
group.  What Neutron refuses is raised here as :class:`~.core.ApiError` with
Neutron's error body ``{"NeutronError": {"type", "message", "detail"}}``; the wire
(routes, lists, filters, ``fields``) is :mod:`.network_responses`.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from .core import JSON, ApiError, new_id, now, stable_id
from .core import iso as _iso
from .identity import PROJECT_ID
from .state import Region

PRIVATE_CIDRS = ("10.0.0.0/20", "10.1.0.0/20")  # per region index
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
}
_NOT_FOUND_NAMES = {
    "networks": "Network",
    "subnets": "Subnet",
    "ports": "Port",
    "security-groups": "Security group",
    "security-group-rules": "Security group rule",
    "floatingips": "Floating IP",
}


def error(status: int, kind: str, message: str) -> ApiError:
    return ApiError(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


def bad(message: str) -> ApiError:
    return error(400, "HTTPBadRequest", message)


def invalid(message: str) -> ApiError:
    return error(400, "InvalidInput", f"Invalid input for operation: {message}")


def _base(name: str = "", description: str = "", item_id: str | None = None) -> JSON:
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


def get(region: Region, collection: str, item_id: str) -> JSON:
    attr, _, kind = COLLECTIONS[collection]
    item = getattr(region, attr).get(item_id)
    if item is None:
        name = _NOT_FOUND_NAMES[collection]
        raise error(404, kind, f"{name} {item_id} could not be found.")
    return item


# ----------------------------------------------------------------------------- seeds


def seed(region: Region, index: int, public_cidr: str) -> None:
    """The region's networks: ``public`` (external, floating IPs; a loopback /24, so a
    floating IP of an sshd-backed server is an address you can SSH to) and ``private``."""
    private_cidr = PRIVATE_CIDRS[index % len(PRIVATE_CIDRS)]
    for name, cidr, external in (("public", public_cidr, True), ("private", private_cidr, False)):
        spec = {"name": name, "router:external": external, "shared": external}
        net = create_network(region, spec, stable_id(region.name, "network", name))
        spec = {"network_id": net["id"], "cidr": cidr, "name": f"{name}-subnet"}
        create_subnet(region, spec, stable_id(region.name, "subnet", name))
    group = _create_group(region, {"name": "default", "description": "Default security group"})
    for ethertype in ("IPv4", "IPv6"):
        add_rule(
            region,
            group,
            {"direction": "ingress", "ethertype": ethertype, "remote_group_id": group["id"]},
        )
        add_rule(region, group, {"direction": "egress", "ethertype": ethertype})


def default_group(region: Region) -> JSON:
    return next(g for g in region.security_groups.values() if g["name"] == "default")



# ------------------------------------------------------------------------- networks


def create_network(region: Region, spec: JSON, item_id: str | None = None) -> JSON:
    net = _base(str(spec.get("name", "")), str(spec.get("description", "")), item_id)
    net.update(
        {
            "status": "ACTIVE",
            "admin_state_up": bool(spec.get("admin_state_up", True)),
            "shared": bool(spec.get("shared", False)),
            "router:external": bool(spec.get("router:external", False)),
            "subnets": [],
            "mtu": int(spec.get("mtu", 1450)),
            "port_security_enabled": bool(spec.get("port_security_enabled", True)),
            "availability_zones": ["nova"],
            "availability_zone_hints": [],
            "ipv4_address_scope": None,
            "ipv6_address_scope": None,
            "is_default": bool(spec.get("router:external", False)),
        }
    )
    region.networks[net["id"]] = net
    return net


def update_network(net: JSON, spec: JSON) -> None:
    for key in ("name", "description", "admin_state_up", "mtu", "port_security_enabled"):
        if key in spec:
            net[key] = spec[key]
    touch(net)


def delete_network(region: Region, net: JSON) -> None:
    if any(p["network_id"] == net["id"] for p in region.ports.values()) or any(
        f["floating_network_id"] == net["id"] for f in region.floatingips.values()
    ):
        raise error(
            409,
            "NetworkInUse",
            f"Unable to complete operation on network {net['id']}. "
            "There are one or more ports still in use on the network.",
        )
    for sub_id in net["subnets"]:
        region.subnets.pop(sub_id, None)
        region.allocated.pop(sub_id, None)
    del region.networks[net["id"]]


# -------------------------------------------------------------------------- subnets


def create_subnet(region: Region, spec: JSON, item_id: str | None = None) -> JSON:
    net = get(region, "networks", str(spec.get("network_id", "")))
    version = int(spec.get("ip_version", 4))
    raw = spec.get("cidr")
    try:
        cidr = ipaddress.ip_network(str(raw), strict=False)
    except ValueError:
        raise invalid(f"'{raw}' is not a valid IP subnet.") from None
    if str(cidr) != str(raw):
        raise invalid(f"'{raw}' isn't a recognized IP subnet cidr, '{cidr}' is recommended")
    if cidr.version != version:
        raise invalid("Cidr and IP version are incompatible.")
    if cidr.num_addresses < 4:
        raise invalid(f"Subnet {cidr} is too small.")
    for other_id in net["subnets"]:
        other = ipaddress.ip_network(region.subnets[other_id]["cidr"])
        if other.version == cidr.version and other.overlaps(cidr):
            raise invalid(
                f"Requested subnet with cidr: {cidr} for network: {net['id']} "
                "overlaps with another subnet."
            )
    hosts = cidr.hosts() if cidr.version == 4 else iter(cidr)
    first = next(hosts) if cidr.version == 4 else cidr[1]
    gateway = spec.get("gateway_ip", str(first))
    if gateway is not None and ipaddress.ip_address(gateway) not in cidr:
        raise invalid(f"Gateway IP {gateway} is not in subnet {cidr}.")
    last = cidr[-2] if cidr.version == 4 else cidr[-1]
    sub = _base(str(spec.get("name", "")), str(spec.get("description", "")), item_id)
    sub.update(
        {
            "network_id": net["id"],
            "cidr": str(cidr),
            "ip_version": version,
            "gateway_ip": gateway,
            "enable_dhcp": bool(spec.get("enable_dhcp", True)),
            "dns_nameservers": list(spec.get("dns_nameservers") or []),
            "host_routes": list(spec.get("host_routes") or []),
            "allocation_pools": [{"start": str(cidr[2]), "end": str(last)}],
            "subnetpool_id": None,
            "ipv6_address_mode": None,
            "ipv6_ra_mode": None,
            "service_types": [],
        }
    )
    region.subnets[sub["id"]] = sub
    region.allocated[sub["id"]] = {gateway} if gateway else set()
    net["subnets"].append(sub["id"])
    return sub


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


def update_subnet(sub: JSON, spec: JSON) -> None:
    for key in (
        "name",
        "description",
        "dns_nameservers",
        "host_routes",
        "enable_dhcp",
        "gateway_ip",
    ):
        if key in spec:
            sub[key] = spec[key]
    touch(sub)


def delete_subnet(region: Region, sub: JSON) -> None:
    for port in region.ports.values():
        if any(ip["subnet_id"] == sub["id"] for ip in port["fixed_ips"]):
            raise error(
                409,
                "SubnetInUse",
                f"Unable to complete operation on subnet {sub['id']}: "
                "One or more ports have an IP allocation from this subnet.",
            )
    region.networks[sub["network_id"]]["subnets"].remove(sub["id"])
    del region.subnets[sub["id"]], region.allocated[sub["id"]]


# ---------------------------------------------------------------------------- ports


def _mac() -> str:
    return "fa:16:3e:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))


def create_port(region: Region, spec: JSON) -> JSON:
    """Create a port (also used by Nova for servers booted onto a network)."""
    net = get(region, "networks", str(spec.get("network_id", "")))
    groups = spec.get("security_groups")
    if groups is None:
        groups = [default_group(region)["id"]] if net["port_security_enabled"] else []
    for group_id in groups:
        get(region, "security-groups", group_id)
    fixed: list[JSON] = []
    requested = spec.get("fixed_ips")
    if requested is None:
        subnets = [region.subnets[s] for s in net["subnets"]]
        requested = [{"subnet_id": s["id"]} for s in subnets if s["ip_version"] == 4][:1]
    for entry in requested:
        subnet_id, ip = entry.get("subnet_id"), entry.get("ip_address")
        if subnet_id is None and ip is not None:
            subnet_id = next(
                (
                    s
                    for s in net["subnets"]
                    if ipaddress.ip_address(ip) in ipaddress.ip_network(region.subnets[s]["cidr"])
                ),
                None,
            )
            if subnet_id is None:
                raise invalid(
                    f"IP address {ip} is not a valid IP for any subnet on network {net['id']}."
                )
        sub = get(region, "subnets", str(subnet_id))
        if sub["network_id"] != net["id"]:
            raise invalid(
                f"Failed to create port on network {net['id']}, "
                f"because fixed_ips included invalid subnet {sub['id']}."
            )
        fixed.append({"subnet_id": sub["id"], "ip_address": allocate_ip(region, sub, ip)})
    port = _base(str(spec.get("name", "")), str(spec.get("description", "")))
    owner = str(spec.get("device_owner", ""))
    port.update(
        {
            "network_id": net["id"],
            "mac_address": spec.get("mac_address") or _mac(),
            "fixed_ips": fixed,
            "security_groups": list(groups),
            "device_id": str(spec.get("device_id", "")),
            "device_owner": owner,
            "status": "ACTIVE" if owner else "DOWN",
            "admin_state_up": bool(spec.get("admin_state_up", True)),
            "port_security_enabled": bool(
                spec.get("port_security_enabled", net["port_security_enabled"])
            ),
            "allowed_address_pairs": list(spec.get("allowed_address_pairs") or []),
            "extra_dhcp_opts": [],
            "binding:vnic_type": "normal",
            "binding:host_id": "",
            "dns_name": "",
        }
    )
    region.ports[port["id"]] = port
    return port


def delete_port(region: Region, port: JSON) -> None:
    for ip in port["fixed_ips"]:
        region.allocated.get(ip["subnet_id"], set()).discard(ip["ip_address"])
    for fip in region.floatingips.values():
        if fip["port_id"] == port["id"]:
            disassociate(fip)
    server = region.servers.get(port["device_id"])
    if server is not None and port["id"] in server["port_ids"]:
        server["port_ids"].remove(port["id"])
    del region.ports[port["id"]]


def update_port(region: Region, port: JSON, spec: JSON) -> None:
    for group_id in spec.get("security_groups") or []:
        get(region, "security-groups", group_id)
    keys = ("name", "description", "admin_state_up", "security_groups", "port_security_enabled")
    for key in (*keys, "device_id", "device_owner", "allowed_address_pairs"):
        if key in spec:
            port[key] = spec[key] if spec[key] is not None or key != "security_groups" else []
    port["status"] = "ACTIVE" if port["device_owner"] else "DOWN"
    touch(port)


# -------------------------------------------------------------------- security groups


def _create_group(region: Region, spec: JSON) -> JSON:
    group = _base(str(spec.get("name", "")), str(spec.get("description", "")))
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
    rule = _base(description=str(spec.get("description") or ""))
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
    group = _create_group(region, spec)
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


# ---------------------------------------------------------------------- floating IPs


def associate(region: Region, fip: JSON, port_id: str, fixed_ip: str | None = None) -> None:
    port = get(region, "ports", port_id)
    v4 = [
        ip["ip_address"]
        for ip in port["fixed_ips"]
        if ipaddress.ip_address(ip["ip_address"]).version == 4
    ]
    if not v4:
        raise bad(f"Bad floatingip request: Port {port_id} does not have any IPv4 address.")
    if fixed_ip is not None and fixed_ip not in v4:
        raise bad(f"Bad floatingip request: Port {port_id} does not have fixed ip {fixed_ip}.")
    for other in region.floatingips.values():
        if other["port_id"] == port_id and other["id"] != fip["id"]:
            raise error(
                409,
                "FloatingIPPortAlreadyAssociated",
                f"Cannot associate floating IP {fip['floating_ip_address']} ({fip['id']}) "
                f"with port {port_id} using fixed IP {v4[0]}, as that fixed IP already has "
                "a floating IP on "
                f"external network {other['floating_network_id']}.",
            )
    fip.update(
        {
            "port_id": port_id,
            "fixed_ip_address": fixed_ip or v4[0],
            "status": "ACTIVE",
            "router_id": stable_id(region.name, "router", "default"),
            "port_details": {
                key: port[key]
                for key in (
                    "name",
                    "network_id",
                    "mac_address",
                    "admin_state_up",
                    "status",
                    "device_id",
                    "device_owner",
                )
            },
        }
    )


def disassociate(fip: JSON) -> None:
    fip.update(
        {
            "port_id": None,
            "fixed_ip_address": None,
            "status": "DOWN",
            "router_id": None,
            "port_details": None,
        }
    )


def create_floatingip(store: Any, region: Region, spec: JSON) -> JSON:
    net = get(region, "networks", str(spec.get("floating_network_id", "")))
    if not net["router:external"]:
        raise bad(f"Bad floatingip request: Network {net['id']} is not a valid external network.")
    if len(region.floatingips) >= store.knobs.quota["floating_ips"]:
        raise error(409, "OverQuota", "Quota exceeded for resources: ['floatingip'].")
    subnets = [region.subnets[s] for s in net["subnets"] if region.subnets[s]["ip_version"] == 4]
    if not subnets:
        raise bad(f"Bad floatingip request: Network {net['id']} has no IPv4 subnet.")
    fip = _base(description=str(spec.get("description") or ""))
    del fip["name"]
    address = allocate_ip(region, subnets[0], spec.get("floating_ip_address"))
    fip.update(
        {
            "floating_ip_address": address,
            "floating_network_id": net["id"],
            "dns_domain": "",
            "dns_name": "",
            "qos_policy_id": None,
            "port_forwardings": [],
        }
    )
    disassociate(fip)
    region.floatingips[fip["id"]] = fip
    if spec.get("port_id"):
        try:
            associate(region, fip, spec["port_id"], spec.get("fixed_ip_address"))
        except ApiError:
            del region.floatingips[fip["id"]]
            region.allocated[subnets[0]["id"]].discard(address)
            raise
        sync_ports(store, region, [fip["port_id"]])
    return fip


def update_floatingip(store: Any, region: Region, fip: JSON, spec: JSON) -> None:
    if "port_id" in spec:
        before = fip["port_id"]
        if spec["port_id"]:
            associate(region, fip, spec["port_id"], spec.get("fixed_ip_address"))
        else:
            disassociate(fip)
        sync_ports(store, region, [before, fip["port_id"]])
    if "description" in spec:
        fip["description"] = str(spec["description"] or "")
    touch(fip)


def delete_floatingip(store: Any, region: Region, fip: JSON) -> None:
    for subnet_id in region.networks[fip["floating_network_id"]]["subnets"]:
        region.allocated[subnet_id].discard(fip["floating_ip_address"])
    del region.floatingips[fip["id"]]
    sync_ports(store, region, [fip["port_id"]])


def sync_ssh(store: Any, region: Region, server: JSON) -> None:
    """An sshd-backed server listens on its own address and on each floating IP of its
    ports, while it is ACTIVE."""
    if not server.get("_ssh"):
        return
    addresses = [str(server["_ssh"])]
    for port_id in server["port_ids"]:
        addresses += public_ips_of_port(region, port_id)
    store.ssh.sync(server["id"], addresses, server["status"] == "ACTIVE")


def sync_ports(store: Any, region: Region, port_ids: list[Any]) -> None:
    """A floating IP moved: the servers of these ports listen where it now points."""
    for port_id in port_ids:
        port = region.ports.get(str(port_id or ""))
        server = region.servers.get(port["device_id"]) if port else None
        if server is not None:
            sync_ssh(store, region, server)


def public_ips_of_port(region: Region, port_id: str) -> list[str]:
    return [
        f["floating_ip_address"] for f in region.floatingips.values() if f["port_id"] == port_id
    ]


# ----------------------------------------------------------------------------- tags


def replace_tags(item: JSON, tags: Any) -> None:
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise bad("Invalid tags body.")
    item["tags"] = sorted(set(tags))
    touch(item)


def add_tag(item: JSON, tag: str) -> None:
    if tag not in item["tags"]:
        item["tags"] = sorted([*item["tags"], tag])
        touch(item)


def remove_tag(item: JSON, tag: str) -> None:
    if tag not in item["tags"]:
        raise error(404, "TagNotFound", f"Tag {tag} could not be found.")
    item["tags"].remove(tag)
    touch(item)
