"""``Cloud::Network::Router``, ``RouterInterface``, ``RouterGateway`` and ``Route``:
a Neutron router and what hangs off it.

* A **router** is a Neutron object known by name (:mod:`.neutron`: the deterministic
  name, the spec hash in its description).  ``external_gateway_info`` (``network`` by
  name or id, ``enable_snat``, ``external_fixed_ips``) and ``admin_state_up`` change
  in place.  The gateway is not reported as a property (the template may name the
  network by name; it is compared with the last-applied spec) but as the attribute
  ``external_gateway_info``; ``network`` (what the router serves on AWS) is ignored.
  Deleting retries while Neutron says 409 (interfaces still on it).
* An **interface** is the router's port ``network:router_interface`` on a subnet
  (Neutron makes it, with the subnet's gateway IP) or a port of the template's; it
  is the stack's by the tag ``cloudtmpl:if=<stack>.<address>`` (by subnet; physical
  id ``router:subnet``) or ``cloudtmpl:ip=...`` (by port; ``router:port``) on that
  port.  An interface the router already has on that subnet or port and that no other
  resource records (a create whose answer was lost, or a crash before the tag) is
  adopted and tagged; one that another resource records is Neutron's refusal.  Delete is
  ``remove_router_interface`` (404: gone).
* A **gateway** (Heat's legacy ``OS::Neutron::RouterGateway``) sets the router's
  external gateway; the router carries ``cloudtmpl:gw=<stack>.<address>``; physical
  id ``router:network``.  Delete clears the gateway.
* A **route** is one of the router's extra routes (``add_extraroutes``/
  ``remove_extraroutes``, atomic in Neutron); the router carries
  ``cloudtmpl:rt=<digest of the destination>:<stack>.<address>``; physical id
  ``router:destination``.

The tag is put first and taken away last, so what exists is always tagged; a tag
whose interface, gateway or route is gone is not a resource (nothing reported).  A
gateway's or route's tag is its attribute ``marker`` (what its delete takes away).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import (
    FLOATING_IP_ASSOCIATION,
    ROUTE,
    ROUTER,
    ROUTER_GATEWAY,
    ROUTER_INTERFACE,
    CloudError,
)
from cloudtmpl.providers.openstack import catalog, neutron
from cloudtmpl.providers.openstack.client import OpenStackClient, status_of

ROUTER_KINDS = frozenset({ROUTER, ROUTER_INTERFACE, ROUTER_GATEWAY, ROUTE,
                          FLOATING_IP_ASSOCIATION})  # listed on demand (capabilities.py)
ROUTERS = "/v2.0/routers"
PORTS = "/v2.0/ports"
INTERFACE_OWNER = "network:router_interface"


# ---------------------------------------------------------------------------- routers


def _gateway_body(client: OpenStackClient, region: str, info: Any) -> dict[str, Any] | None:
    """``external_gateway_info`` as Neutron takes it (None: no gateway)."""
    if not info:
        return None
    if not isinstance(info, Mapping) or not (info.get("network") or info.get("network_id")):
        raise CloudError("external_gateway_info needs a network (the external network's "
                         "name or id)", permanent=True)
    body: dict[str, Any] = {"network_id": catalog.network_ref(
        client, region, str(info.get("network") or info.get("network_id")))}
    if info.get("enable_snat") is not None:
        body["enable_snat"] = bool(info["enable_snat"])
    fixed = []
    for item in info.get("external_fixed_ips") or []:
        if isinstance(item, Mapping):
            entry = {k: str(item[k]) for k in ("subnet", "ip_address") if item.get(k)}
            if "subnet" in entry:
                entry["subnet_id"] = entry.pop("subnet")
            fixed.append(entry)
    if fixed:
        body["external_fixed_ips"] = fixed
    return body


def router_live(client: OpenStackClient, region: str, address: str,
                router: Mapping[str, Any]) -> LiveResource:
    _, spec = neutron.split_spec(router.get("description"))
    name, status = str(router.get("name")), str(router.get("status") or "")
    return LiveResource(
        address=address, kind=ROUTER, physical_id=str(router["id"]),
        placement=client.placement(region), name=name,
        properties={"admin_state_up": bool(router.get("admin_state_up", True))},
        attributes={"name": name, "id": str(router["id"]), "status": status,
                    "external_gateway_info": router.get("external_gateway_info")},
        spec_hash=spec, status=status)


class RouterHandler:
    kind = ROUTER
    listings: tuple[str, ...] = ("routers",)

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return neutron.named_live(client, region, stack, listings.get("routers"), router_live)

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        props = want.properties
        body: dict[str, Any] = {"name": want.name,
                                "admin_state_up": bool(props.get("admin_state_up", True)),
                                "description": neutron.with_spec("", want.spec_hash)}
        gateway = _gateway_body(client, region, props.get("external_gateway_info"))
        if gateway is not None:
            body["external_gateway_info"] = gateway
        oid = neutron.post(client, region, ROUTERS, "router", body,
                           lambda: neutron.find_named(client, region, ROUTERS, "routers",
                                                      want.name))
        return neutron.refresh(client, region, ROUTER, want.address, oid, ROUTERS, "router",
                               router_live)

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        region = live.placement.region
        extra: dict[str, Any] = {}
        if "admin_state_up" in change.changed:
            value = change.properties.get("admin_state_up")
            extra["admin_state_up"] = True if value is None else bool(value)
        if "external_gateway_info" in change.changed:
            extra["external_gateway_info"] = _gateway_body(
                client, region, change.properties.get("external_gateway_info")) or {}
        neutron.set_description(client, region, ROUTERS, "router", live.physical_id,
                                neutron.with_spec("", change.spec_hash), **extra)
        return neutron.refresh(client, region, ROUTER, live.address, live.physical_id,
                               ROUTERS, "router", router_live)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        neutron.delete_until_gone(client, live, ROUTERS, timeout)


# ------------------------------------------------------------------------- interfaces


def _interface_live(client: OpenStackClient, region: str, address: str,
                    port: Mapping[str, Any], by_port: bool) -> LiveResource:
    router = str(port.get("device_id") or "")
    subnets = [str(ip.get("subnet_id")) for ip in port.get("fixed_ips") or []]
    subnet = subnets[0] if subnets else None
    props: dict[str, Any] = {"router": router, "subnet": subnet}
    if by_port:
        props["port"] = str(port["id"])
    return LiveResource(
        address=address, kind=ROUTER_INTERFACE,
        physical_id=f"{router}:{port['id'] if by_port else subnet}",
        placement=client.placement(region), name=address, properties=props,
        attributes={"port_id": str(port["id"]), "subnet_id": subnet},
        spec_hash=None, status=str(port.get("status") or ""))


def _interface_port(client: OpenStackClient, region: str, router: str,
                    subnet: str | None, port: str | None) -> dict[str, Any] | None:
    """The router's interface port on ``subnet`` (or the port ``port`` if it is one)."""
    found = client.list_all(region, "network", PORTS, "ports",
                            {"device_id": router, "device_owner": INTERFACE_OWNER})
    for item in found:
        if port is not None and item.get("id") == port:
            return item
        if port is None and any(ip.get("subnet_id") == subnet
                                for ip in item.get("fixed_ips") or []):
            return item
    return None


class RouterInterfaceHandler(kit.NothingInPlace):
    kind = ROUTER_INTERFACE
    listings: tuple[str, ...] = ("ports",)

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        out = []
        for port in listings.get("ports"):
            if port.get("device_owner") != INTERFACE_OWNER:
                continue
            for mark, by_port in (("if", False), ("ip", True)):
                for _, address in neutron.tagged(port, mark, stack):
                    out.append(_interface_live(client, region, address, port, by_port))
        return out

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        props = want.properties
        router = str(props.get("router") or "")
        subnet = str(props["subnet"]) if props.get("subnet") else None
        port = str(props["port"]) if props.get("port") else None
        if not router or (subnet is None) == (port is None):
            raise CloudError("a router interface needs router and one of subnet or port",
                             permanent=True)
        tag = neutron.marker_tag("ip" if port else "if", want.stack, want.address)
        body = {"port_id": port} if port else {"subnet_id": subnet}

        def lookup() -> str | None:
            """The interface an earlier attempt made: untagged (the tag comes after), or
            already ours; one another resource records is not adopted."""
            found = _interface_port(client, region, router, subnet, port)
            if found is None:
                return None
            others = [t for t in found.get("tags") or [] if isinstance(t, str)
                      and t.startswith(("cloudtmpl:if=", "cloudtmpl:ip=")) and t != tag]
            return None if others else str(found["id"])

        def add() -> str:
            try:
                answer = client.api(region, "network",
                                    f"{ROUTERS}/{router}/add_router_interface",
                                    method="PUT", body=body, retry=False) or {}
            except CloudError as err:
                # already there (an earlier attempt, or a crash before the tag): adopt
                if status_of(err) in (400, 409) and ("already has a port" in err.message
                                                     or "attached device" in err.message):
                    found = lookup()
                    if found is not None:
                        return found
                raise
            return str(answer["port_id"])

        port_id = client.create_or_adopt(add, lookup)
        neutron.put_tag(client, region, PORTS, port_id, tag)
        obj = client.get(region, "network", f"{PORTS}/{port_id}", "port")
        if obj is None:
            raise CloudError(f"router interface {want.address} ({port_id}) vanished",
                             permanent=True)
        return _interface_live(client, region, want.address, obj, port is not None)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        """``remove_router_interface``, retried while Neutron says 409 (a floating IP or
        a route still needs it) until the timeout; 404 (the router or the interface is
        gone already) is done.  By port, Neutron deletes that port too."""
        router, _, other = live.physical_id.partition(":")
        key = "port_id" if live.properties.get("port") else "subnet_id"

        def attempt() -> tuple[bool, str, None]:
            try:
                client.api(live.placement.region, "network",
                           f"{ROUTERS}/{router}/remove_router_interface", method="PUT",
                           body={key: other})
            except CloudError as err:
                if status_of(err) == 409:
                    return False, f"in use ({err.message})", None
                if status_of(err) != 404:
                    raise
            return True, "removed", None

        client.poll(timeout, f"{live.kind} {live.address} ({live.physical_id})", attempt)


# ------------------------------------------------------------------ gateways, routes


class RouterGatewayHandler(kit.NothingInPlace):
    kind = ROUTER_GATEWAY
    listings: tuple[str, ...] = ("routers",)

    @staticmethod
    def _live(client: OpenStackClient, region: str, address: str, stack: str,
              router: Mapping[str, Any]) -> LiveResource:
        network = str((router.get("external_gateway_info") or {}).get("network_id") or "")
        return LiveResource(
            address=address, kind=ROUTER_GATEWAY, physical_id=f"{router['id']}:{network}",
            placement=client.placement(region), name=address,
            properties={"router": str(router["id"]), "network": network},
            attributes={"marker": neutron.marker_tag("gw", stack, address)},
            spec_hash=None, status="active")

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [self._live(client, region, address, stack, router)
                for router in listings.get("routers")
                if router.get("external_gateway_info")
                for _, address in neutron.tagged(router, "gw", stack)]

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        router = str(want.properties.get("router") or "")
        if not router or not want.properties.get("network"):
            raise CloudError("a router gateway needs router and network", permanent=True)
        network = catalog.network_ref(client, region, str(want.properties["network"]))
        neutron.put_tag(client, region, ROUTERS, router,
                        neutron.marker_tag("gw", want.stack, want.address))
        obj = client.api(region, "network", f"{ROUTERS}/{router}", method="PUT",
                         body={"router": {"external_gateway_info": {"network_id": network}}})
        return self._live(client, region, want.address, want.stack, (obj or {})["router"])

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        region, router = live.placement.region, str(live.properties["router"])
        try:
            client.api(region, "network", f"{ROUTERS}/{router}", method="PUT",
                       body={"router": {"external_gateway_info": {}}})
        except CloudError as err:
            if status_of(err) == 404:
                return  # the router is gone, and its gateway with it
            raise
        neutron.drop_tag(client, region, ROUTERS, router, str(live.attributes["marker"]))


def _destination(value: Any) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        raise CloudError(f"destination {value!r} is not a CIDR", permanent=True) from None


def _digest(destination: str) -> str:
    return hashlib.sha256(destination.encode()).hexdigest()[:8]


class RouteHandler(kit.NothingInPlace):
    kind = ROUTE
    listings: tuple[str, ...] = ("routers",)

    @staticmethod
    def _live(client: OpenStackClient, region: str, address: str, stack: str,
              router: Mapping[str, Any], route: Mapping[str, Any]) -> LiveResource:
        dest = str(route.get("destination"))
        return LiveResource(
            address=address, kind=ROUTE, physical_id=f"{router['id']}:{dest}",
            placement=client.placement(region), name=address,
            properties={"router": str(router["id"]), "destination": dest,
                        "nexthop": str(route.get("nexthop"))},
            attributes={"marker": neutron.marker_tag("rt", stack, address, _digest(dest))},
            spec_hash=None, status="active")

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        out = []
        for router in listings.get("routers"):
            routes = {_digest(str(r.get("destination"))): r for r in router.get("routes") or []}
            for digest, address in neutron.tagged(router, "rt", stack):
                if digest in routes:
                    out.append(self._live(client, region, address, stack, router,
                                          routes[digest]))
        return out

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        props = want.properties
        router = str(props.get("router") or "")
        if not router or not props.get("destination") or not props.get("nexthop"):
            raise CloudError("a route needs router, destination and nexthop", permanent=True)
        dest = _destination(props["destination"])
        route = {"destination": dest, "nexthop": str(props["nexthop"])}
        neutron.put_tag(client, region, ROUTERS, router,
                        neutron.marker_tag("rt", want.stack, want.address, _digest(dest)))
        obj = client.api(region, "network", f"{ROUTERS}/{router}/add_extraroutes",
                         method="PUT", body={"router": {"routes": [route]}})  # idempotent
        return self._live(client, region, want.address, want.stack, (obj or {})["router"],
                          route)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        region, router = live.placement.region, str(live.properties["router"])
        dest = str(live.properties["destination"])
        route = {"destination": dest, "nexthop": str(live.properties["nexthop"])}
        try:
            client.api(region, "network", f"{ROUTERS}/{router}/remove_extraroutes",
                       method="PUT", body={"router": {"routes": [route]}})
        except CloudError as err:
            if status_of(err) == 404:
                return  # the router is gone, and its routes with it
            raise
        neutron.drop_tag(client, region, ROUTERS, router, str(live.attributes["marker"]))
