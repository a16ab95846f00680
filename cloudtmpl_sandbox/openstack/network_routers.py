"""Neutron's routers: their external gateway, interfaces on subnets (or ports) and
extra routes, with the refusals of Neutron's L3 plugin.

* a router's **gateway** (``external_gateway_info``: ``network_id``, ``enable_snat``,
  default true, ``external_fixed_ips``) is a port ``network:router_gateway`` on an
  external (``router:external``) network; another network is a 400;
* an **interface** is a port ``network:router_interface`` whose ``device_id`` is the
  router: by subnet (the port holds the subnet's ``gateway_ip``; a subnet without
  one, a subnet already on the router or overlapping one of its subnets is a 400) or
  by an unbound port of the caller's;
* **extra routes** (``routes``; ``add_extraroutes``/``remove_extraroutes``): a
  nexthop must lie on a subnet of one of the router's ports (400 otherwise);
* what is in use stays: a router with interfaces (409 ``RouterInUse``), an interface
  a floating IP or a route needs (409), a gateway floating IPs go out through (409).

Which router reaches a floating IP is :func:`.network_floating.router_for`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .core import JSON, stable_id
from .network_base import (
    DEVICE_OWNER_GATEWAY,
    DEVICE_OWNER_INTERFACE,
    error,
    get,
    invalid,
    new_item,
    touch,
)
from .network_models import create_port, delete_port
from .state import Region

MAX_ROUTES = 30  # Neutron's max_routes default


def _bad_router(message: str) -> Exception:
    return error(400, "BadRequest", f"Bad router request: {message}.")


def router_ports(region: Region, router: JSON, owner: str | None = None) -> list[JSON]:
    return [p for p in region.ports.values() if p["device_id"] == router["id"]
            and p["device_owner"] in ((owner,) if owner else
                                      (DEVICE_OWNER_INTERFACE, DEVICE_OWNER_GATEWAY))]


# ---------------------------------------------------------------------------- routers


def seed(region: Region) -> None:
    """The region's ``default`` router: its gateway on ``public``, an interface on the
    ``private`` subnet (so servers on ``private`` can have floating IPs)."""
    public = stable_id(region.name, "network", "public")
    router = create_router(region, {"name": "default",
                                    "external_gateway_info": {"network_id": public}},
                           stable_id(region.name, "router", "default"))
    add_interface(region, router, {"subnet_id": stable_id(region.name, "subnet", "private")})


def create_router(region: Region, spec: JSON, item_id: str | None = None) -> JSON:
    router = new_item(str(spec.get("name", "")), str(spec.get("description", "")), item_id)
    router.update({
        "status": "ACTIVE",
        "admin_state_up": bool(spec.get("admin_state_up", True)),
        "external_gateway_info": None,
        "routes": [],
        "distributed": False,
        "ha": False,
        "flavor_id": None,
        "availability_zone_hints": [],
        "availability_zones": ["nova"],
    })
    if "routes" in spec:  # extraroute: settable by PUT only
        raise error(400, "HTTPBadRequest", "Attribute 'routes' not allowed in POST")
    info = spec.get("external_gateway_info")
    network_id = _check_gateway(region, info)
    region.routers[router["id"]] = router
    if network_id:
        try:
            _set_gateway(region, router, network_id, dict(info or {}))
        except Exception:
            del region.routers[router["id"]]
            raise
    return router


def update_router(region: Region, router: JSON, spec: JSON) -> None:
    for key in ("name", "description", "admin_state_up"):
        if key in spec:
            router[key] = spec[key]
    if "external_gateway_info" in spec:
        update_gateway(region, router, spec["external_gateway_info"])
    if "routes" in spec:
        set_routes(region, router, spec["routes"])
    touch(router)


def delete_router(region: Region, router: JSON) -> None:
    if router_ports(region, router, DEVICE_OWNER_INTERFACE):
        raise error(409, "RouterInUse", f"Router {router['id']} still has ports")
    _clear_gateway(region, router)
    del region.routers[router["id"]]


# ---------------------------------------------------------------------------- gateway


def _check_gateway(region: Region, info: Any) -> str | None:
    """The gateway's network id (None: no gateway), or Neutron's refusal."""
    if info in (None, {}):
        return None
    if not isinstance(info, dict) or set(info) - {"network_id", "enable_snat",
                                                  "external_fixed_ips"}:
        raise invalid(f"Invalid data format for external_gateway_info: {info!r}")
    if not info.get("network_id"):
        raise invalid("network_id is required in external_gateway_info")
    net = get(region, "networks", str(info["network_id"]))
    if not net["router:external"]:
        raise _bad_router(f"Network {net['id']} is not an external network")
    return str(net["id"])


def _gateway_in_use(region: Region, router: JSON) -> None:
    info = router["external_gateway_info"] or {}
    if any(f["router_id"] == router["id"] for f in region.floatingips.values()):
        raise error(
            409,
            "RouterExternalGatewayInUseByFloatingIp",
            f"Gateway cannot be updated for router {router['id']}, since a gateway to "
            f"external network {info.get('network_id')} is required by one or more "
            "floating IPs.",
        )


def _set_gateway(region: Region, router: JSON, network_id: str, info: JSON) -> None:
    fixed = info.get("external_fixed_ips")
    port_spec: JSON = {"network_id": network_id, "device_id": router["id"],
                       "device_owner": DEVICE_OWNER_GATEWAY, "security_groups": []}
    if fixed:
        port_spec["fixed_ips"] = list(fixed)
    port = create_port(region, port_spec)
    port["tenant_id"] = port["project_id"] = ""  # hidden from the project, as in Neutron
    router["external_gateway_info"] = {
        "network_id": network_id,
        "enable_snat": bool(info.get("enable_snat", True)),
        "external_fixed_ips": [dict(ip) for ip in port["fixed_ips"]],
    }


def _clear_gateway(region: Region, router: JSON) -> None:
    for port in router_ports(region, router, DEVICE_OWNER_GATEWAY):
        delete_port(region, port)
    router["external_gateway_info"] = None


def update_gateway(region: Region, router: JSON, info: Any) -> None:
    network_id = _check_gateway(region, info)
    current = router["external_gateway_info"]
    if network_id is None:
        if current is not None:
            _gateway_in_use(region, router)
            _clear_gateway(region, router)
        return
    assert isinstance(info, dict)
    if current is not None and current["network_id"] == network_id:
        wanted = info.get("external_fixed_ips")
        if wanted and [dict(w) for w in wanted] != current["external_fixed_ips"]:
            _gateway_in_use(region, router)
            _clear_gateway(region, router)
            _set_gateway(region, router, network_id, info)
            return
        if "enable_snat" in info:
            current["enable_snat"] = bool(info["enable_snat"])
        return
    if current is not None:
        _gateway_in_use(region, router)
        _clear_gateway(region, router)
    _set_gateway(region, router, network_id, info)


# ------------------------------------------------------------------------- interfaces


def _interface_info(router: JSON, port: JSON) -> JSON:
    subnets = [ip["subnet_id"] for ip in port["fixed_ips"]]
    return {"id": router["id"], "tenant_id": router["tenant_id"],
            "project_id": router["project_id"], "port_id": port["id"],
            "network_id": port["network_id"], "subnet_id": subnets[-1] if subnets else None,
            "subnet_ids": subnets}


def _interface_args(info: Any, removal: bool) -> tuple[str | None, str | None]:
    if not isinstance(info, dict) or not ("port_id" in info or "subnet_id" in info):
        raise _bad_router("Either subnet_id or port_id must be specified")
    if not removal and "port_id" in info and "subnet_id" in info:
        raise _bad_router("Cannot specify both subnet-id and port-id")
    port_id, subnet_id = info.get("port_id"), info.get("subnet_id")
    return (None if port_id is None else str(port_id),
            None if subnet_id is None else str(subnet_id))


def _check_subnets(region: Region, router: JSON, subnets: list[JSON]) -> None:
    """Neutron's ``_check_for_dup_router_subnets``: a subnet once per router, and no
    two of its interface subnets overlapping."""
    new_ids = {s["id"] for s in subnets}
    mine: list[str] = []
    for port in router_ports(region, router):
        for ip in port["fixed_ips"]:
            if ip["subnet_id"] in new_ids:
                raise _bad_router(f"Router already has a port on subnet {ip['subnet_id']}")
            if port["device_owner"] == DEVICE_OWNER_INTERFACE:
                mine.append(ip["subnet_id"])
    for sub_id in mine:
        have = region.subnets[sub_id]
        for new in subnets:
            if ipaddress.ip_network(have["cidr"]).overlaps(ipaddress.ip_network(new["cidr"])):
                raise _bad_router(
                    f"Cidr {new['cidr']} of subnet {new['id']} overlaps with cidr "
                    f"{have['cidr']} of subnet {have['id']}")


def add_interface(region: Region, router: JSON, info: Any) -> JSON:
    port_id, subnet_id = _interface_args(info, removal=False)
    if port_id is not None:
        port = get(region, "ports", port_id)
        if port["device_id"]:
            raise error(
                409, "PortInUse",
                f"Unable to complete operation on port {port['id']} for network "
                f"{port['network_id']}. Port already has an attached device "
                f"{port['device_id']}.")
        if not port["fixed_ips"]:
            raise _bad_router("Router port must have at least one fixed IP")
        subnets = [region.subnets[ip["subnet_id"]] for ip in port["fixed_ips"]]
        _check_subnets(region, router, subnets)
        if len([s for s in subnets if s["ip_version"] == 4]) > 1:
            raise _bad_router("Cannot have multiple IPv4 subnets on router port")
        port.update({"device_id": router["id"], "device_owner": DEVICE_OWNER_INTERFACE,
                     "status": "ACTIVE"})
        touch(port)
    else:
        sub = get(region, "subnets", str(subnet_id))
        if not sub["gateway_ip"]:
            raise _bad_router("Subnet for router interface must have a gateway IP")
        _check_subnets(region, router, [sub])
        gateway = sub["gateway_ip"]
        holder = next((p for p in region.ports.values()
                       if any(ip["ip_address"] == gateway and ip["subnet_id"] == sub["id"]
                              for ip in p["fixed_ips"])), None)
        if holder is not None:
            raise error(409, "IpAddressAlreadyAllocated",
                        f"IP address {gateway} already allocated in subnet {sub['id']}")
        # the gateway address is reserved from the pool; the router's port takes it
        region.allocated[sub["id"]].discard(gateway)
        try:
            port = create_port(region, {
                "network_id": sub["network_id"], "device_id": router["id"],
                "device_owner": DEVICE_OWNER_INTERFACE, "security_groups": [],
                "fixed_ips": [{"subnet_id": sub["id"], "ip_address": gateway}]})
        finally:
            region.allocated[sub["id"]].add(gateway)
    touch(router)
    return _interface_info(router, port)


def _interface_in_use(region: Region, router: JSON, subnet_id: str) -> None:
    cidr = ipaddress.ip_network(region.subnets[subnet_id]["cidr"])
    for route in router["routes"]:
        if ipaddress.ip_address(route["nexthop"]) in cidr:
            raise error(
                409, "RouterInterfaceInUseByRoute",
                f"Router interface for subnet {subnet_id} on router {router['id']} cannot "
                "be deleted, as it is required by one or more routes.")
    for fip in region.floatingips.values():
        if fip["router_id"] == router["id"] and fip["fixed_ip_address"] \
                and ipaddress.ip_address(fip["fixed_ip_address"]) in cidr:
            raise error(
                409, "RouterInterfaceInUseByFloatingIP",
                f"Router interface for subnet {subnet_id} on router {router['id']} cannot "
                "be deleted, as it is required by one or more floating IPs.")


def remove_interface(region: Region, router: JSON, info: Any) -> JSON:
    port_id, subnet_id = _interface_args(info, removal=True)
    interfaces = router_ports(region, router, DEVICE_OWNER_INTERFACE)
    if port_id is not None:
        port = next((p for p in interfaces if p["id"] == port_id), None)
        if port is None:
            raise error(404, "RouterInterfaceNotFound",
                        f"Router {router['id']} does not have an interface with id {port_id}")
        subnets = [ip["subnet_id"] for ip in port["fixed_ips"]]
        if subnet_id is not None and subnet_id not in subnets:
            raise error(400, "SubnetMismatchForPort",
                        f"Subnet on port {port_id} does not match the requested subnet "
                        f"{subnet_id}")
        for sub_id in subnets:
            _interface_in_use(region, router, sub_id)
    else:
        get(region, "subnets", str(subnet_id))
        _interface_in_use(region, router, str(subnet_id))  # before the 404, as Neutron
        port = next((p for p in interfaces
                     if any(ip["subnet_id"] == subnet_id for ip in p["fixed_ips"])), None)
        if port is None:
            raise error(404, "RouterInterfaceNotFoundForSubnet",
                        f"Router {router['id']} has no interface on subnet {subnet_id}")
    answer = _interface_info(router, port)
    gateways = {ip["subnet_id"]: ip["ip_address"] for ip in port["fixed_ips"]
                if region.subnets[ip["subnet_id"]]["gateway_ip"] == ip["ip_address"]}
    delete_port(region, port)
    for sub_id, address in gateways.items():  # the gateway address stays reserved
        region.allocated[sub_id].add(address)
    touch(router)
    return answer


# ----------------------------------------------------------------------- extra routes


def _parse_routes(routes: Any) -> list[JSON]:
    if not isinstance(routes, list):
        raise invalid(f"Invalid data format for routes: {routes!r}")
    out: list[JSON] = []
    for route in routes:
        if not isinstance(route, dict) or set(route) != {"destination", "nexthop"}:
            raise invalid(f"Invalid data format for hostroute: '{route}'")
        try:
            dest = ipaddress.ip_network(str(route["destination"]), strict=False)
        except ValueError:
            raise invalid(f"'{route['destination']}' is not a valid IP subnet.") from None
        try:
            hop = ipaddress.ip_address(str(route["nexthop"]))
        except ValueError:
            raise invalid(f"'{route['nexthop']}' is not a valid IP address.") from None
        entry = {"destination": str(dest), "nexthop": str(hop)}
        if entry not in out:
            out.append(entry)
    return out


def set_routes(region: Region, router: JSON, routes: Any) -> None:
    wanted = _parse_routes(routes if routes is not None else [])
    if len(wanted) > MAX_ROUTES:
        raise error(400, "RoutesExhausted",
                    f"Unable to complete operation for {router['id']}. The number of routes "
                    f"exceeds the maximum {MAX_ROUTES}.")
    ports = router_ports(region, router)
    cidrs = [ipaddress.ip_network(region.subnets[ip["subnet_id"]]["cidr"])
             for p in ports for ip in p["fixed_ips"]]
    own = {ip["ip_address"] for p in ports for ip in p["fixed_ips"]}
    for route in wanted:
        hop = ipaddress.ip_address(route["nexthop"])
        if not any(hop in cidr for cidr in cidrs):
            raise error(400, "InvalidRoutes", f"Invalid format for routes: {wanted}, "
                        "the nexthop is not connected with router")
        if route["nexthop"] in own:
            raise error(400, "InvalidRoutes",
                        f"Invalid format for routes: {wanted}, the nexthop is used by router")
    router["routes"] = wanted
    touch(router)


def add_extraroutes(region: Region, router: JSON, spec: JSON) -> None:
    new = _parse_routes(spec.get("routes"))
    set_routes(region, router, router["routes"] + [r for r in new if r not in router["routes"]])


def remove_extraroutes(region: Region, router: JSON, spec: JSON) -> None:
    gone = _parse_routes(spec.get("routes"))
    set_routes(region, router, [r for r in router["routes"] if r not in gone])
