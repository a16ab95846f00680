"""``Cloud::Network::FloatingIP``: a Neutron floating IP, and
``Cloud::Network::FloatingIPAssociation``: a floating IP's association by a resource
of its own.

No name: the description holds ``cloudtmpl:stack=…;cloudtmpl:spec=…;cloudtmpl:resource=…``,
sent in the ``POST /v2.0/floatingips`` body together with the port to associate
(atomic).  Moving it to another server or port is one ``PUT``.  Neutron associates
a port only where a router reaches it (an interface on the port's subnet, the
router's gateway on the floating IP's network): otherwise its 404 is the error.

An association is known by a Neutron tag on the floating IP
(:class:`FloatingIpAssociationHandler`); physical id ``floating ip:port``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import FLOATING_IP, FLOATING_IP_ASSOCIATION, CloudError
from cloudtmpl.providers.openstack import catalog, neutron
from cloudtmpl.providers.openstack.client import OpenStackClient

_FIP_RE = re.compile(r"^" + re.escape(TAG_STACK) + r"=([^;]*);" + re.escape(TAG_SPEC)
                     + r"=([^;]*);" + re.escape(TAG_RESOURCE) + r"=(.*)$", re.S)


def _marker(stack: str, address: str, spec: str | None) -> str:
    return f"{TAG_STACK}={stack};{TAG_SPEC}={spec or ''};{TAG_RESOURCE}={address}"


def _parse_marker(description: Any) -> tuple[str, str, str | None] | None:
    m = _FIP_RE.match(str(description or ""))
    if m is None:
        return None
    return m.group(1), m.group(3), m.group(2) or None


def _address(fip: Mapping[str, Any], stack: str) -> str | None:
    """The address the description's marker gives a floating IP of ``stack`` (None: not
    the stack's)."""
    marker = _parse_marker(fip.get("description"))
    return marker[1] if marker is not None and marker[0] == stack else None


def _fip_live(client: OpenStackClient, region: str, address: str, fip: Mapping[str, Any],
              port: Mapping[str, Any] | None) -> LiveResource:
    marker = _parse_marker(fip.get("description"))
    ip = fip.get("floating_ip_address")
    port_id = fip.get("port_id") or None
    server = None
    if port is not None and str(port.get("device_owner", "")).startswith("compute:"):
        server = port.get("device_id") or None
    elif port is None and isinstance(fip.get("port_details"), dict):
        server = fip["port_details"].get("device_id") or None
    return LiveResource(
        address=address, kind=FLOATING_IP, physical_id=str(fip["id"]),
        placement=client.placement(region), name="",
        properties={"server": server, "port": port_id,
                    "floating_network": fip.get("floating_network_id")},
        attributes={"floating_ip_address": ip, "ip": ip, "port_id": port_id,
                    "fixed_ip_address": fip.get("fixed_ip_address")},
        spec_hash=marker[2] if marker else None,
        status="associated" if port_id else "allocated")


def _refresh(client: OpenStackClient, region: str, address: str, fip_id: str) -> LiveResource:
    fip = client.get(region, "network", f"/v2.0/floatingips/{fip_id}", "floatingip")
    if fip is None:
        raise CloudError(f"floating IP {address} ({fip_id}) vanished", permanent=True)
    port = None
    if fip.get("port_id"):
        port = client.get(region, "network", f"/v2.0/ports/{fip['port_id']}", "port")
    return _fip_live(client, region, address, fip, port)


def _server_port(client: OpenStackClient, region: str, server_id: str) -> str:
    """The server's first port (Nova's order of its interfaces)."""
    obj = client.api(region, "compute", f"/servers/{server_id}/os-interface") or {}
    ports = [a.get("port_id") for a in obj.get("interfaceAttachments") or []
             if a.get("port_id")]
    if not ports:
        raise CloudError(f"server {server_id} has no port to associate a floating IP with",
                         permanent=True)
    return str(ports[0])


def _target_port(client: OpenStackClient, region: str, props: Mapping[str, Any]) -> str | None:
    if props.get("port"):
        return str(props["port"])
    if props.get("server"):
        return _server_port(client, region, str(props["server"]))
    return None


class FloatingIpHandler:
    kind = FLOATING_IP
    listings: tuple[str, ...] = ("floatingips", "ports")

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        ports = {p.get("id"): p for p in listings.get("ports")}
        return [_fip_live(client, region, address, fip, ports.get(fip.get("port_id")))
                for address, fip in kit.stack_items(listings.get("floatingips"),
                                                    lambda fip: _address(fip, stack))]

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        props, stack, address = want.properties, want.stack, want.address
        net = props.get("floating_network")
        net_id = (catalog.network_ref(client, region, str(net)) if net
                  else catalog.external_network(client, region))
        body: dict[str, Any] = {"floating_network_id": net_id,
                                "description": _marker(stack, address, want.spec_hash)}
        port = _target_port(client, region, props)
        if port:
            body["port_id"] = port

        def post() -> str:
            obj = client.api(region, "network", "/v2.0/floatingips", method="POST",
                             body={"floatingip": body}, retry=False) or {}
            return str(obj["floatingip"]["id"])

        def lookup() -> str | None:
            obj = client.api(region, "network", "/v2.0/floatingips",
                             params={"floating_network_id": net_id}, retry=False) or {}
            for fip in obj.get("floatingips") or []:
                marker = _parse_marker(fip.get("description"))
                if marker and marker[0] == stack and marker[1] == address:
                    return str(fip["id"])
            return None

        fip_id = client.create_or_adopt(post, lookup)
        return _refresh(client, region, address, fip_id)

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        region = live.placement.region
        fid = live.physical_id
        fip = kit.require(client.get(region, "network", f"/v2.0/floatingips/{fid}",
                                     "floatingip"), live)
        body: dict[str, Any] = {"description": _marker(change.stack, live.address,
                                                       change.spec_hash)}
        if change.changed & {"server", "port"}:
            want = _target_port(client, region, change.properties)
            have = fip.get("port_id") or None
            if want != have:  # Neutron moves an associated one in this one call
                body["port_id"] = want
        client.api(region, "network", f"/v2.0/floatingips/{fid}", method="PUT",
                   body={"floatingip": body})
        return _refresh(client, region, live.address, fid)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        client.delete_call(live.placement.region, "network",
                           f"/v2.0/floatingips/{live.physical_id}")


# --- Cloud::Network::FloatingIPAssociation ------------------------------------------


def _association_live(client: OpenStackClient, region: str, address: str, stack: str,
                      fip: Mapping[str, Any], port: Mapping[str, Any] | None) -> LiveResource:
    port_id = str(fip.get("port_id"))
    details = port if port is not None else fip.get("port_details") or {}
    server = None
    if str(details.get("device_owner", "")).startswith("compute:"):
        server = details.get("device_id") or None
    return LiveResource(
        address=address, kind=FLOATING_IP_ASSOCIATION,
        physical_id=f"{fip['id']}:{port_id}", placement=client.placement(region),
        name=address,
        properties={"floating_ip": str(fip["id"]), "port": port_id, "server": server,
                    "fixed_ip_address": fip.get("fixed_ip_address")},
        attributes={"floating_ip_address": fip.get("floating_ip_address"),
                    "fixed_ip_address": fip.get("fixed_ip_address"),
                    "marker": neutron.marker_tag("fa", stack, address)},
        spec_hash=None, status="associated")


class FloatingIpAssociationHandler(kit.NothingInPlace):
    """An association of a floating IP (the stack's or any other, by id) with a server's
    first port or a port: the floating IP carries the tag
    ``cloudtmpl:fa=<stack>.<address>`` (:mod:`.neutron`), put before the ``PUT`` of
    its ``port_id`` (idempotent) and taken off after the ``PUT`` of ``port_id: null``."""

    kind = FLOATING_IP_ASSOCIATION
    listings: tuple[str, ...] = ("floatingips", "ports")

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        ports = {p.get("id"): p for p in listings.get("ports")}
        return [_association_live(client, region, address, stack, fip,
                                  ports.get(fip.get("port_id")))
                for fip in listings.get("floatingips") if fip.get("port_id")
                for _, address in neutron.tagged(fip, "fa", stack)]

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        props = want.properties
        fip_id = str(props.get("floating_ip") or "")
        port = _target_port(client, region, props)
        if not fip_id or port is None:
            raise CloudError("a floating IP association needs floating_ip and a server or "
                             "port", permanent=True)
        path = f"/v2.0/floatingips/{fip_id}"
        neutron.put_tag(client, region, "/v2.0/floatingips", fip_id,
                        neutron.marker_tag("fa", want.stack, want.address))
        body: dict[str, Any] = {"port_id": port}
        if props.get("fixed_ip_address"):
            body["fixed_ip_address"] = str(props["fixed_ip_address"])
        try:
            obj = client.api(region, "network", path, method="PUT", body={"floatingip": body})
        except CloudError:
            # refused (e.g. no router reaches the port): the tag goes, nothing is left
            neutron.drop_tag(client, region, "/v2.0/floatingips", fip_id,
                             neutron.marker_tag("fa", want.stack, want.address))
            raise
        fip = (obj or {})["floatingip"]
        found = client.get(region, "network", f"/v2.0/ports/{port}", "port")
        return _association_live(client, region, want.address, want.stack, fip, found)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        region, fip_id = live.placement.region, str(live.properties["floating_ip"])
        path = f"/v2.0/floatingips/{fip_id}"
        fip = client.get(region, "network", path, "floatingip")
        if fip is None:
            return  # the floating IP is gone, and its association with it
        if fip.get("port_id") == live.properties.get("port"):
            client.api(region, "network", path, method="PUT",
                       body={"floatingip": {"port_id": None}})
        neutron.drop_tag(client, region, "/v2.0/floatingips", fip_id,
                         str(live.attributes["marker"]))
