"""Neutron's floating IPs: allocation from an external network, association with a
port, and the SSH listeners of the servers behind them (a floating IP of an
sshd-backed server is an address you can SSH to).

A port is associated only when the floating IP's network is reachable from the
subnet of the fixed IP, as Neutron's L3 plugin requires: a router (:mod:`.network_routers`)
with an interface on that subnet and its gateway on that external network
(:func:`router_for`; else 404 ``ExternalGatewayForFloatingIPNotFound``); that router
is the floating IP's ``router_id``."""

from __future__ import annotations

import ipaddress
from typing import Any

from .core import JSON, ApiError
from .network_base import (
    DEVICE_OWNER_GATEWAY,
    DEVICE_OWNER_INTERFACE,
    allocate_ip,
    bad,
    error,
    get,
    new_item,
    touch,
)
from .state import Region


def router_for(region: Region, port: JSON, subnet_id: str, external_network_id: str) -> str:
    """The router that connects ``subnet_id`` (of ``port``) with the external network:
    an interface on the subnet and its gateway on that network (the one whose
    interface holds the subnet's gateway IP first), or Neutron's 404."""
    gateway_ip = region.subnets[subnet_id]["gateway_ip"]
    found: list[tuple[bool, str]] = []
    for iface in region.ports.values():
        if iface["device_owner"] != DEVICE_OWNER_INTERFACE \
                or iface["network_id"] != port["network_id"]:
            continue
        router = region.routers.get(iface["device_id"])
        gateway = (router or {}).get("external_gateway_info") or {}
        if gateway.get("network_id") != external_network_id or not any(
                p["device_owner"] == DEVICE_OWNER_GATEWAY and p["device_id"] == iface["device_id"]
                for p in region.ports.values()):
            continue
        for ip in iface["fixed_ips"]:
            if ip["subnet_id"] == subnet_id:
                found.append((ip["ip_address"] != gateway_ip, iface["device_id"]))
    if found:
        return min(found)[1]
    raise error(
        404,
        "ExternalGatewayForFloatingIPNotFound",
        f"External network {external_network_id} is not reachable from subnet {subnet_id}.  "
        f"Therefore, cannot associate Port {port['id']} with a Floating IP.",
    )


def associate(region: Region, fip: JSON, port_id: str, fixed_ip: str | None = None) -> None:
    port = get(region, "ports", port_id)
    if port["device_owner"].startswith("network:"):
        raise bad(f"Bad floatingip request: Port {port_id} is unable to be assigned a "
                  "floating IP.")
    v4 = [
        ip
        for ip in port["fixed_ips"]
        if ipaddress.ip_address(ip["ip_address"]).version == 4
    ]
    if not v4:
        raise bad(f"Bad floatingip request: Port {port_id} does not have any IPv4 address.")
    chosen = next((ip for ip in v4 if ip["ip_address"] == fixed_ip), None) if fixed_ip \
        else v4[0]
    if chosen is None:
        raise bad(f"Bad floatingip request: Port {port_id} does not have fixed ip {fixed_ip}.")
    router_id = router_for(region, port, chosen["subnet_id"], fip["floating_network_id"])
    for other in region.floatingips.values():
        if other["port_id"] == port_id and other["id"] != fip["id"]:
            raise error(
                409,
                "FloatingIPPortAlreadyAssociated",
                f"Cannot associate floating IP {fip['floating_ip_address']} ({fip['id']}) "
                f"with port {port_id} using fixed IP {chosen['ip_address']}, as that fixed "
                "IP already has "
                "a floating IP on "
                f"external network {other['floating_network_id']}.",
            )
    fip.update(
        {
            "port_id": port_id,
            "fixed_ip_address": chosen["ip_address"],
            "status": "ACTIVE",
            "router_id": router_id,
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
    fip = new_item(description=str(spec.get("description") or ""))
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
