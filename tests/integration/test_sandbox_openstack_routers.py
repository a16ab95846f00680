"""The OpenStack emulator's Neutron routers over HTTP: gateways, interfaces, extra
routes, the reachability a floating IP needs, and Neutron's refusals (their status,
type and message), as Neutron's L3 plugin answers them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.openstack_api import driver, http, token

pytestmark = pytest.mark.integration

NET = "/network/de-fra-1/v2.0"


class Neutron:
    """Raw Neutron requests with one token; each answer (status, body)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.tok = token(info)

    def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, answer = http(self.info, method, NET + path, body, token=self.tok)
        return status, answer

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self(method, path, body)
        assert status in (200, 201, 204), (status, answer)
        return answer

    def refused(self, status: int, kind: str, method: str, path: str, body: Any = None) -> str:
        got, answer = self(method, path, body)
        assert got == status, answer
        assert set(answer["NeutronError"]) == {"type", "message", "detail"}
        assert answer["NeutronError"]["type"] == kind, answer
        return str(answer["NeutronError"]["message"])

    def net(self, name: str, cidr: str, **subnet: Any) -> tuple[str, str]:
        net = self.ok("POST", "/networks", {"network": {"name": name}})["network"]["id"]
        sub = self.ok("POST", "/subnets", {"subnet": {"network_id": net, "cidr": cidr,
                                                      **subnet}})["subnet"]["id"]
        return net, sub

    def named(self, collection: str, name: str) -> str:
        items = self.ok("GET", f"/{collection}?name={name}")[collection.replace("-", "_")]
        return str(items[0]["id"])


@pytest.fixture
def neutron(openstack_reset: dict[str, Any]) -> Neutron:
    return Neutron(openstack_reset)


def test_the_seeded_default_router_connects_private_to_public(neutron: Neutron) -> None:
    public, private = neutron.named("networks", "public"), neutron.named("subnets",
                                                                          "private-subnet")
    (router,) = neutron.ok("GET", "/routers?name=default")["routers"]
    gw = router["external_gateway_info"]
    assert gw["network_id"] == public and gw["enable_snat"] is True
    (gw_ip,) = gw["external_fixed_ips"]
    assert gw_ip["subnet_id"] == neutron.named("subnets", "public-subnet")
    # the gateway port is no project's (hidden from it); the interface is the project's
    ports = neutron.ok("GET", f"/ports?device_id={router['id']}")["ports"]
    owners = [(p["device_owner"], p["fixed_ips"]) for p in ports]
    gateway_ip = neutron.ok("GET", f"/subnets/{private}")["subnet"]["gateway_ip"]
    assert owners == [("network:router_interface",
                       [{"subnet_id": private, "ip_address": gateway_ip}])]
    # a server on private gets a floating IP through it
    d = driver(neutron.info)
    node = d.create_node(name="s", size=d.list_sizes()[0], image=d.list_images()[0])
    port = neutron.ok("GET", f"/ports?device_id={node.id}")["ports"][0]["id"]
    fip = neutron.ok("POST", "/floatingips", {"floatingip": {
        "floating_network_id": public, "port_id": port}})["floatingip"]
    assert fip["router_id"] == router["id"] and fip["status"] == "ACTIVE"


def test_router_crud_tags_filters_and_pagination(neutron: Neutron) -> None:
    made = [neutron.ok("POST", "/routers", {"router": {"name": f"r{i}", "description": "d"}})
            ["router"] for i in range(3)]
    r0 = made[0]
    assert r0["status"] == "ACTIVE" and r0["admin_state_up"] is True
    assert r0["external_gateway_info"] is None and r0["routes"] == []
    assert r0["revision_number"] == 0 and r0["tags"] == []
    neutron.ok("PUT", f"/routers/{r0['id']}/tags/blue")
    assert neutron.ok("GET", "/routers?tags=blue")["routers"] == [
        neutron.ok("GET", f"/routers/{r0['id']}")["router"]]
    page = neutron.ok("GET", "/routers?limit=2")
    assert len(page["routers"]) == 2 and page["routers_links"][0]["rel"] == "next"
    assert [r["name"] for r in neutron.ok("GET", "/routers?name=r2")["routers"]] == ["r2"]
    new = neutron.ok("PUT", f"/routers/{r0['id']}", {"router": {
        "name": "renamed", "admin_state_up": False}})["router"]
    assert (new["name"], new["admin_state_up"], new["revision_number"]) == ("renamed", False, 2)
    assert neutron.refused(400, "HTTPBadRequest", "POST", "/routers", {"router": {
        "routes": []}}) == "Attribute 'routes' not allowed in POST"
    for r in made:
        assert neutron("DELETE", f"/routers/{r['id']}")[0] == 204
    missing = made[0]["id"]
    assert neutron.refused(404, "RouterNotFound", "GET", f"/routers/{missing}") == \
        f"Router {missing} could not be found"
    neutron.refused(404, "RouterNotFound", "DELETE", f"/routers/{missing}")


def test_gateway_only_on_an_external_network(neutron: Neutron) -> None:
    private = neutron.named("networks", "private")
    public = neutron.named("networks", "public")
    msg = neutron.refused(400, "BadRequest", "POST", "/routers", {"router": {
        "name": "r", "external_gateway_info": {"network_id": private}}})
    assert msg == f"Bad router request: Network {private} is not an external network."
    assert neutron.ok("GET", "/routers?name=r")["routers"] == []  # nothing half made
    router = neutron.ok("POST", "/routers", {"router": {"name": "r", "external_gateway_info": {
        "network_id": public, "enable_snat": False}}})["router"]
    gw = router["external_gateway_info"]
    assert gw["enable_snat"] is False and len(gw["external_fixed_ips"]) == 1
    assert neutron.ok("GET", f"/ports?device_id={router['id']}")["ports"] == []  # hidden
    # SNAT changes in place; clearing the gateway drops its port
    same = neutron.ok("PUT", f"/routers/{router['id']}", {"router": {"external_gateway_info": {
        "network_id": public, "enable_snat": True}}})["router"]["external_gateway_info"]
    assert same["enable_snat"] is True and same["external_fixed_ips"] == gw["external_fixed_ips"]
    address = gw["external_fixed_ips"][0]["ip_address"]
    cleared = neutron.ok("PUT", f"/routers/{router['id']}", {"router": {
        "external_gateway_info": {}}})["router"]
    assert cleared["external_gateway_info"] is None
    # its address is free again: a floating IP may take it
    fip = neutron.ok("POST", "/floatingips", {"floatingip": {
        "floating_network_id": public, "floating_ip_address": address}})["floatingip"]
    assert fip["floating_ip_address"] == address


def test_interfaces_by_subnet_and_port_and_their_refusals(neutron: Neutron) -> None:
    router = neutron.ok("POST", "/routers", {"router": {"name": "r"}})["router"]["id"]
    net, sub = neutron.net("a", "10.9.0.0/24")
    info = neutron.ok("PUT", f"/routers/{router}/add_router_interface", {"subnet_id": sub})
    assert set(info) == {"id", "tenant_id", "project_id", "port_id", "network_id",
                         "subnet_id", "subnet_ids"}
    assert (info["id"], info["network_id"], info["subnet_ids"]) == (router, net, [sub])
    port = neutron.ok("GET", f"/ports/{info['port_id']}")["port"]
    assert port["device_owner"] == "network:router_interface" and port["device_id"] == router
    assert port["fixed_ips"] == [{"subnet_id": sub, "ip_address": "10.9.0.1"}]
    assert neutron.refused(400, "BadRequest", "PUT", f"/routers/{router}/add_router_interface",
                           {"subnet_id": sub}) == \
        f"Bad router request: Router already has a port on subnet {sub}."
    _, overlapping = neutron.net("b", "10.9.0.0/25")
    msg = neutron.refused(400, "BadRequest", "PUT", f"/routers/{router}/add_router_interface",
                          {"subnet_id": overlapping})
    assert msg == (f"Bad router request: Cidr 10.9.0.0/25 of subnet {overlapping} overlaps "
                   f"with cidr 10.9.0.0/24 of subnet {sub}.")
    _, no_gw = neutron.net("c", "10.8.0.0/24", gateway_ip=None)
    assert neutron.refused(400, "BadRequest", "PUT", f"/routers/{router}/add_router_interface",
                           {"subnet_id": no_gw}) == \
        "Bad router request: Subnet for router interface must have a gateway IP."
    neutron.refused(400, "BadRequest", "PUT", f"/routers/{router}/add_router_interface", {})
    # the subnet and network are in use while the interface is there
    neutron.refused(409, "SubnetInUse", "DELETE", f"/subnets/{sub}")
    neutron.refused(409, "NetworkInUse", "DELETE", f"/networks/{net}")
    assert neutron.refused(409, "ServicePortInUse", "DELETE", f"/ports/{port['id']}") == (
        f"Port {port['id']} cannot be deleted directly via the port API: "
        "has device owner network:router_interface.")
    assert neutron.refused(409, "RouterInUse", "DELETE", f"/routers/{router}") == \
        f"Router {router} still has ports"
    # by port: an unbound port of the project's
    dnet, dsub = neutron.net("d", "10.7.0.0/24")
    mine = neutron.ok("POST", "/ports", {"port": {"network_id": dnet}})["port"]
    by_port = neutron.ok("PUT", f"/routers/{router}/add_router_interface",
                         {"port_id": mine["id"]})
    assert by_port["port_id"] == mine["id"] and by_port["subnet_id"] == dsub
    bound = neutron.ok("GET", f"/ports/{mine['id']}")["port"]
    assert (bound["device_id"], bound["device_owner"]) == (router, "network:router_interface")
    other = neutron.ok("POST", "/routers", {"router": {"name": "o"}})["router"]["id"]
    assert neutron.refused(409, "PortInUse", "PUT", f"/routers/{other}/add_router_interface",
                           {"port_id": mine["id"]}).endswith(
        f"Port already has an attached device {router}.")
    # removal: unknown interfaces are 404s; then the subnet can go
    assert neutron.refused(404, "RouterInterfaceNotFoundForSubnet", "PUT",
                           f"/routers/{other}/remove_router_interface", {"subnet_id": sub}) \
        == f"Router {other} has no interface on subnet {sub}"
    assert neutron.refused(404, "RouterInterfaceNotFound", "PUT",
                           f"/routers/{other}/remove_router_interface",
                           {"port_id": mine["id"]}) == \
        f"Router {other} does not have an interface with id {mine['id']}"
    gone = neutron.ok("PUT", f"/routers/{router}/remove_router_interface", {"subnet_id": sub})
    assert gone["port_id"] == info["port_id"]
    neutron.refused(404, "PortNotFound", "GET", f"/ports/{info['port_id']}")
    neutron.ok("PUT", f"/routers/{router}/remove_router_interface", {"port_id": mine["id"]})
    neutron.refused(404, "PortNotFound", "GET", f"/ports/{mine['id']}")  # Neutron deletes it
    # the gateway address is the subnet's again: a new interface takes it
    again = neutron.ok("PUT", f"/routers/{router}/add_router_interface", {"subnet_id": sub})
    assert neutron.ok("GET", f"/ports/{again['port_id']}")["port"]["fixed_ips"][0][
        "ip_address"] == "10.9.0.1"
    neutron.ok("PUT", f"/routers/{router}/remove_router_interface", {"subnet_id": sub})
    assert neutron("DELETE", f"/subnets/{sub}")[0] == 204
    assert neutron("DELETE", f"/routers/{router}")[0] == 204


def test_floating_ips_need_a_router_from_their_subnet(neutron: Neutron) -> None:
    public = neutron.named("networks", "public")
    net, sub = neutron.net("app", "10.6.0.0/24")
    port = neutron.ok("POST", "/ports", {"port": {"network_id": net}})["port"]["id"]
    unreachable = (f"External network {public} is not reachable from subnet {sub}.  "
                   f"Therefore, cannot associate Port {port} with a Floating IP.")
    before = neutron.ok("GET", "/floatingips")["floatingips"]
    assert neutron.refused(404, "ExternalGatewayForFloatingIPNotFound", "POST",
                           "/floatingips", {"floatingip": {"floating_network_id": public,
                                                           "port_id": port}}) == unreachable
    assert neutron.ok("GET", "/floatingips")["floatingips"] == before  # nothing allocated
    fip = neutron.ok("POST", "/floatingips", {"floatingip": {
        "floating_network_id": public}})["floatingip"]["id"]
    assert neutron.refused(404, "ExternalGatewayForFloatingIPNotFound", "PUT",
                           f"/floatingips/{fip}", {"floatingip": {"port_id": port}}) \
        == unreachable
    # an interface alone is not enough: the router needs its gateway on that network
    router = neutron.ok("POST", "/routers", {"router": {"name": "r"}})["router"]["id"]
    neutron.ok("PUT", f"/routers/{router}/add_router_interface", {"subnet_id": sub})
    neutron.refused(404, "ExternalGatewayForFloatingIPNotFound", "PUT", f"/floatingips/{fip}",
                    {"floatingip": {"port_id": port}})
    neutron.ok("PUT", f"/routers/{router}", {"router": {"external_gateway_info": {
        "network_id": public}}})
    assoc = neutron.ok("PUT", f"/floatingips/{fip}", {"floatingip": {"port_id": port}})
    assert assoc["floatingip"]["router_id"] == router
    assert assoc["floatingip"]["fixed_ip_address"] == "10.6.0.2"
    # what the floating IP uses stays
    assert neutron.refused(409, "RouterInterfaceInUseByFloatingIP", "PUT",
                           f"/routers/{router}/remove_router_interface", {"subnet_id": sub}) \
        == (f"Router interface for subnet {sub} on router {router} cannot be deleted, as it "
            "is required by one or more floating IPs.")
    assert neutron.refused(409, "RouterExternalGatewayInUseByFloatingIp", "PUT",
                           f"/routers/{router}", {"router": {"external_gateway_info": {}}}) \
        == (f"Gateway cannot be updated for router {router}, since a gateway to external "
            f"network {public} is required by one or more floating IPs.")
    neutron.refused(409, "RouterInUse", "DELETE", f"/routers/{router}")
    # a router's own port never gets a floating IP
    iface = neutron.ok("GET", f"/ports?device_id={router}&device_owner=network:router_interface"
                       )["ports"][0]["id"]
    neutron.refused(400, "HTTPBadRequest", "PUT", f"/floatingips/{fip}",
                    {"floatingip": {"port_id": iface}})
    # disassociated: the router lets go
    free = neutron.ok("PUT", f"/floatingips/{fip}", {"floatingip": {"port_id": None}})
    assert free["floatingip"]["router_id"] is None
    neutron.ok("PUT", f"/routers/{router}/remove_router_interface", {"subnet_id": sub})
    neutron.ok("PUT", f"/routers/{router}", {"router": {"external_gateway_info": None}})
    assert neutron("DELETE", f"/routers/{router}")[0] == 204


def test_extra_routes_need_a_connected_nexthop(neutron: Neutron) -> None:
    router = neutron.ok("POST", "/routers", {"router": {"name": "r"}})["router"]["id"]
    _, sub = neutron.net("a", "10.5.0.0/24")
    route = {"destination": "192.168.0.0/16", "nexthop": "10.5.0.9"}
    assert neutron.refused(400, "InvalidRoutes", "PUT", f"/routers/{router}",
                           {"router": {"routes": [route]}}) == (
        "Invalid format for routes: [{'destination': '192.168.0.0/16', 'nexthop': "
        "'10.5.0.9'}], the nexthop is not connected with router")
    neutron.ok("PUT", f"/routers/{router}/add_router_interface", {"subnet_id": sub})
    assert neutron.ok("PUT", f"/routers/{router}", {"router": {"routes": [route]}})[
        "router"]["routes"] == [route]
    neutron.refused(400, "InvalidRoutes", "PUT", f"/routers/{router}", {"router": {
        "routes": [{"destination": "0.0.0.0/0", "nexthop": "10.5.0.1"}]}})  # the router's own
    more = {"destination": "172.16.0.0/12", "nexthop": "10.5.0.10"}
    added = neutron.ok("PUT", f"/routers/{router}/add_extraroutes",
                       {"router": {"routes": [more, route]}})["router"]["routes"]
    assert added == [route, more]
    assert neutron.refused(409, "RouterInterfaceInUseByRoute", "PUT",
                           f"/routers/{router}/remove_router_interface", {"subnet_id": sub}) \
        == (f"Router interface for subnet {sub} on router {router} cannot be deleted, as it "
            "is required by one or more routes.")
    left = neutron.ok("PUT", f"/routers/{router}/remove_extraroutes",
                      {"router": {"routes": [route]}})["router"]["routes"]
    assert left == [more]
    neutron.ok("PUT", f"/routers/{router}", {"router": {"routes": []}})
    neutron.ok("PUT", f"/routers/{router}/remove_router_interface", {"subnet_id": sub})


def test_extensions_list_what_is_served(neutron: Neutron) -> None:
    listed = neutron.ok("GET", "/extensions")["extensions"]
    aliases = {e["alias"] for e in listed}
    assert {"router", "ext-gw-mode", "extraroute", "external-net", "standard-attr-tag",
            "security-group", "port-security"} <= aliases
    assert "quotas" not in aliases  # not served here
    assert all(set(e) == {"name", "alias", "description", "updated", "links"} for e in listed)
    one = neutron.ok("GET", "/extensions/router")["extension"]
    assert one["alias"] == "router" and one["name"] == "Neutron L3 Router"
    assert neutron.refused(404, "HTTPNotFound", "GET", "/extensions/nope") == \
        "Extension with alias nope does not exist"


def test_a_tag_holds_at_most_60_characters(neutron: Neutron) -> None:
    router = neutron.ok("POST", "/routers", {"router": {"name": "r"}})["router"]["id"]
    neutron.ok("PUT", f"/routers/{router}/tags/{'a' * 60}")
    neutron.refused(400, "InvalidInput", "PUT", f"/routers/{router}/tags/{'a' * 61}")
    neutron.refused(400, "InvalidInput", "PUT", f"/routers/{router}/tags",
                    {"tags": ["ok", "b" * 61]})
    assert neutron.ok("GET", f"/routers/{router}/tags")["tags"] == ["a" * 60]
