"""Neutron's networks, subnets and ports, and the networks every region starts with.

Every region starts with an external network ``public`` (``router:external``,
floating IPs come from its subnet), a project network ``private`` that servers
booted without ``networks`` land on, the project's ``default`` security
group, and (:func:`.network_routers.seed`) a router ``default`` between them.
A router's ports are deleted with the router or its interface, never directly
(409 ``ServicePortInUse``).  What Neutron refuses is raised as :class:`~.core.ApiError` with
Neutron's error body (:mod:`.network_base`); security groups are
:mod:`.network_security`, floating IPs :mod:`.network_floating`; the wire
(routes, lists, filters, ``fields``) is :mod:`.network_responses`.
"""

from __future__ import annotations

import ipaddress
import random

from .core import JSON, stable_id
from .network_base import (
    DEVICE_OWNER_GATEWAY,
    DEVICE_OWNER_INTERFACE,
    allocate_ip,
    error,
    get,
    invalid,
    new_item,
    touch,
)
from .network_floating import disassociate
from .network_security import add_rule, create_group, default_group
from .state import Region

PRIVATE_CIDRS = ("10.0.0.0/20", "10.1.0.0/20")  # per region index


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
    group = create_group(region, {"name": "default", "description": "Default security group"})
    for ethertype in ("IPv4", "IPv6"):
        add_rule(
            region,
            group,
            {"direction": "ingress", "ethertype": ethertype, "remote_group_id": group["id"]},
        )
        add_rule(region, group, {"direction": "egress", "ethertype": ethertype})


# ------------------------------------------------------------------------- networks


def create_network(region: Region, spec: JSON, item_id: str | None = None) -> JSON:
    net = new_item(str(spec.get("name", "")), str(spec.get("description", "")), item_id)
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
    sub = new_item(str(spec.get("name", "")), str(spec.get("description", "")), item_id)
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
    port = new_item(str(spec.get("name", "")), str(spec.get("description", "")))
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


def refuse_service_port(region: Region, port: JSON) -> None:
    """``DELETE /ports/{id}`` of a router's port: Neutron's 409."""
    if port["device_owner"] in (DEVICE_OWNER_INTERFACE, DEVICE_OWNER_GATEWAY) \
            and port["device_id"] in region.routers:
        raise error(
            409,
            "ServicePortInUse",
            f"Port {port['id']} cannot be deleted directly via the port API: "
            f"has device owner {port['device_owner']}.",
        )


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
