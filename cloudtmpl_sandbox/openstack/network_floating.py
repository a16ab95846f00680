"""Neutron's floating IPs: allocation from an external network, association with a
port, and the SSH listeners of the servers behind them (a floating IP of an
sshd-backed server is an address you can SSH to)."""

from __future__ import annotations

import ipaddress
from typing import Any

from .core import JSON, ApiError, stable_id
from .network_base import allocate_ip, bad, error, get, new_item, touch
from .state import Region


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
