"""``Cloud::Network::Network``/``Subnet``/``Port``: Neutron objects known by name.

Identity and the spec marker: :mod:`.neutron`.  A port's ``fixed_ips`` is not
reported (a template may name a subnet without an address): it is compared with
the last-applied spec instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cloudtmpl.model import LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import NETWORK, PORT, SUBNET, CloudError
from cloudtmpl.providers.openstack import catalog, neutron
from cloudtmpl.providers.openstack.client import OpenStackClient


def network_live(client: OpenStackClient, region: str, address: str,
                 net: Mapping[str, Any]) -> LiveResource:
    _, spec = neutron.split_spec(net.get("description"))
    status = str(net.get("status") or "")
    name = str(net.get("name"))
    return LiveResource(
        address=address, kind=NETWORK, physical_id=str(net["id"]),
        placement=client.placement(region), name=name,
        properties={"admin_state_up": bool(net.get("admin_state_up", True))},
        attributes={"name": name, "id": str(net["id"]), "status": status},
        spec_hash=spec, status=status)


def subnet_live(client: OpenStackClient, region: str, address: str,
                sub: Mapping[str, Any]) -> LiveResource:
    _, spec = neutron.split_spec(sub.get("description"))
    name = str(sub.get("name"))
    return LiveResource(
        address=address, kind=SUBNET, physical_id=str(sub["id"]),
        placement=client.placement(region), name=name,
        properties={
            "network": sub.get("network_id"),
            "cidr": sub.get("cidr"),
            "ip_version": int(sub.get("ip_version") or 4),
            "enable_dhcp": bool(sub.get("enable_dhcp", True)),
            # reported always: a template without gateway_ip leaves Neutron's
            # choice standing (unset properties are not compared)
            "gateway_ip": sub.get("gateway_ip"),
            "dns_nameservers": list(sub.get("dns_nameservers") or []),
        },
        attributes={"name": name, "cidr": sub.get("cidr"),
                    "gateway_ip": sub.get("gateway_ip"),
                    "network_id": sub.get("network_id")},
        spec_hash=spec, status="active")


def port_live(client: OpenStackClient, region: str, address: str,
              port: Mapping[str, Any]) -> LiveResource:
    _, spec = neutron.split_spec(port.get("description"))
    name = str(port.get("name"))
    fixed = [{"subnet_id": f.get("subnet_id"), "ip_address": f.get("ip_address")}
             for f in port.get("fixed_ips") or []]
    status = str(port.get("status") or "")
    return LiveResource(
        address=address, kind=PORT, physical_id=str(port["id"]),
        placement=client.placement(region), name=name,
        # fixed_ips is not reported: a template may name a subnet without an
        # address, so the comparison is with the last-applied spec.
        properties={
            "network": port.get("network_id"),
            "security_groups": sorted(str(g) for g in port.get("security_groups") or []),
            "admin_state_up": bool(port.get("admin_state_up", True)),
        },
        attributes={"name": name, "fixed_ips": fixed,
                    "ip_address": fixed[0]["ip_address"] if fixed else None,
                    "mac_address": port.get("mac_address"),
                    "network_id": port.get("network_id"), "status": status},
        spec_hash=spec, status=status)


def _network_fields(client: OpenStackClient, region: str,
                    props: Mapping[str, Any]) -> dict[str, Any]:
    return {"admin_state_up": bool(props.get("admin_state_up", True))}


def _subnet_fields(client: OpenStackClient, region: str,
                   props: Mapping[str, Any]) -> dict[str, Any]:
    if not props.get("network") or not props.get("cidr"):
        raise CloudError("a subnet needs network and cidr", permanent=True)
    fields: dict[str, Any] = {
        "network_id": catalog.network_ref(client, region, str(props["network"])),
        "cidr": str(props["cidr"]),
        "ip_version": int(props.get("ip_version") or 4),
        "enable_dhcp": bool(props.get("enable_dhcp", True)),
        "dns_nameservers": [str(d) for d in props.get("dns_nameservers") or []],
    }
    if props.get("gateway_ip"):
        fields["gateway_ip"] = str(props["gateway_ip"])
    return fields


def _port_fields(client: OpenStackClient, region: str,
                 props: Mapping[str, Any]) -> dict[str, Any]:
    if not props.get("network"):
        raise CloudError("a port needs network", permanent=True)
    fixed = []
    for item in props.get("fixed_ips") or []:
        if not isinstance(item, Mapping):
            continue
        entry = {}
        subnet = item.get("subnet") or item.get("subnet_id")
        if subnet:
            entry["subnet_id"] = str(subnet)
        if item.get("ip_address"):
            entry["ip_address"] = str(item["ip_address"])
        if entry:
            fixed.append(entry)
    fields: dict[str, Any] = {
        "network_id": catalog.network_ref(client, region, str(props["network"])),
        "admin_state_up": bool(props.get("admin_state_up", True)),
        "security_groups": [catalog.group_ref(client, region, str(g))
                            for g in props.get("security_groups") or []],
    }
    if fixed:
        fields["fixed_ips"] = fixed
    return fields


# region, properties -> the create body's fields of the kind (name and description aside)
Fields = Callable[[OpenStackClient, str, Mapping[str, Any]], dict[str, Any]]


class NamedHandler:
    """One of the three kinds: listed and found by name, created by ``POST`` (looking
    first on a retry), updated by ``PUT``, deleted until gone."""

    def __init__(self, kind: str, path: str, key: str, listing: str, make: neutron.Make,
                 fields: Fields) -> None:
        self.kind = kind
        self.path = path  # the collection, "/v2.0/networks"
        self.key = key  # one object's key in bodies, "network"
        self.listing = listing  # the raw listing, "networks"
        self.listings: tuple[str, ...] = (listing,)
        self._make = make
        self._fields = fields

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return neutron.named_live(client, region, stack, listings.get(self.listing),
                                  self._make)

    def _refresh(self, client: OpenStackClient, region: str, address: str,
                 oid: str) -> LiveResource:
        return neutron.refresh(client, region, self.kind, address, oid, self.path, self.key,
                               self._make)

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        body = {"name": want.name, **self._fields(client, region, want.properties),
                "description": neutron.with_spec("", want.spec_hash)}
        oid = neutron.post(client, region, self.path, self.key, body,
                           lambda: neutron.find_named(client, region, self.path, self.listing,
                                                      want.name))
        return self._refresh(client, region, want.address, oid)

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        region = live.placement.region
        extra: dict[str, Any] = {}
        for prop in change.changed:
            value = change.properties.get(prop)
            if prop == "dns_nameservers":
                value = [str(d) for d in value or []]
            elif prop == "security_groups":
                value = [catalog.group_ref(client, region, str(g)) for g in value or []]
            elif prop in ("admin_state_up", "enable_dhcp"):
                value = True if value is None else bool(value)
            extra[prop] = value
        neutron.set_description(client, region, self.path, self.key, live.physical_id,
                                neutron.with_spec("", change.spec_hash), **extra)
        return self._refresh(client, region, live.address, live.physical_id)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        neutron.delete_until_gone(client, live, self.path, timeout)


NETWORKS = NamedHandler(NETWORK, "/v2.0/networks", "network", "networks", network_live,
                        _network_fields)
SUBNETS = NamedHandler(SUBNET, "/v2.0/subnets", "subnet", "subnets", subnet_live,
                       _subnet_fields)
PORTS = NamedHandler(PORT, "/v2.0/ports", "port", "ports", port_live, _port_fields)
