"""The OpenStack sandbox's Octavia (``cloudtmpl_sandbox/openstack/lb_models.py``) over
HTTP: the catalog entry, the provisioning transitions, the VIP port in Neutron, and
what Octavia refuses, with its status and error body."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.openstack_api import boot, configure, driver, http, token, wait_for

pytestmark = pytest.mark.integration

REGION = "de-fra-1"
LB = f"/load-balancer/{REGION}/v2/lbaas"
PRIVATE_SUBNET = "private-subnet"


class Api:
    """Octavia and Neutron of the sandbox, with one token."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.token = token(info)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, answer = http(self.info, method, path, body, self.token)
        return status, answer

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        got, answer = self.call(method, path, body)
        assert got == status, answer
        return answer

    def refused(self, status: int, method: str, path: str, body: Any = None) -> str:
        got, answer = self.call(method, path, body)
        assert got == status, answer
        assert set(answer) == {"faultcode", "faultstring", "debuginfo"}, answer
        assert answer["faultcode"] == ("Client" if status < 500 else "Server")
        return str(answer["faultstring"])

    def subnet(self, name: str = PRIVATE_SUBNET) -> dict[str, Any]:
        found = self.ok("GET", f"/network/{REGION}/v2.0/subnets?name={name}")["subnets"]
        assert len(found) == 1
        return dict(found[0])

    def lb(self, lb_id: str) -> dict[str, Any]:
        return dict(self.ok("GET", f"{LB}/loadbalancers/{lb_id}")["loadbalancer"])

    def active(self, lb_id: str) -> dict[str, Any]:
        found = wait_for(lambda: (lb := self.lb(lb_id))["provisioning_status"] == "ACTIVE"
                         and lb)
        assert found, self.lb(lb_id)
        return dict(found)

    def new_lb(self, **extra: Any) -> dict[str, Any]:
        body = {"name": "web", "vip_subnet_id": self.subnet()["id"], **extra}
        made = self.ok("POST", f"{LB}/loadbalancers", {"loadbalancer": body}, 201)
        return dict(made["loadbalancer"])

    def post(self, collection: str, key: str, lb_id: str, body: dict[str, Any]) -> Any:
        made = self.ok("POST", f"{LB}/{collection}", {key: body}, 201)[key]
        self.active(lb_id)
        return made


@pytest.fixture
def api(openstack_reset: dict[str, Any]) -> Api:
    # long enough that a PENDING_* state is still there when the next request asks
    configure(openstack_reset, build_seconds=0, lb_seconds=0.4)
    return Api(openstack_reset)


def test_the_catalog_has_octavia_in_every_region(api: Api) -> None:
    d = driver(api.info)
    d.list_sizes()  # authenticates
    catalog = d.connection.service_catalog
    assert sorted(catalog.get_regions("load-balancer")) == ["de-fra-1", "nl-ams-1"]
    versions = api.ok("GET", f"/load-balancer/{REGION}/")["versions"]
    assert [v["id"] for v in versions] == ["v2.0"]
    status, _, _ = http(api.info, "GET", f"{LB}/loadbalancers")  # no token
    assert status == 401


def test_a_load_balancer_is_pending_then_active_with_a_vip_port(api: Api) -> None:
    subnet = api.subnet()
    lb = api.new_lb(tags=["b", "a"])
    assert lb["provisioning_status"] == "PENDING_CREATE"
    assert lb["operating_status"] == "OFFLINE"
    assert lb["vip_subnet_id"] == subnet["id"] and lb["vip_network_id"] == subnet["network_id"]
    assert lb["tags"] == ["a", "b"]
    port = api.ok("GET", f"/network/{REGION}/v2.0/ports/{lb['vip_port_id']}")["port"]
    assert port["device_owner"] == "Octavia"
    assert port["fixed_ips"] == [{"subnet_id": subnet["id"], "ip_address": lb["vip_address"]}]
    # immutable while PENDING_CREATE: the load balancer and its children
    assert api.refused(409, "PUT", f"{LB}/loadbalancers/{lb['id']}",
                       {"loadbalancer": {"name": "x"}}) == \
        f"Invalid state PENDING_CREATE of loadbalancer resource {lb['id']}"
    body = {"listener": {"loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": 80}}
    assert api.refused(409, "POST", f"{LB}/listeners", body) == \
        f"Load Balancer {lb['id']} is immutable and cannot be updated."
    active = api.active(lb["id"])
    assert active["operating_status"] == "ONLINE"
    # the subnet is in use while the VIP port is on it
    status, answer = api.call("DELETE", f"/network/{REGION}/v2.0/subnets/{subnet['id']}")
    assert status == 409, answer
    api.ok("DELETE", f"{LB}/loadbalancers/{lb['id']}", status=204)
    assert api.lb(lb["id"])["provisioning_status"] == "PENDING_DELETE"
    assert wait_for(lambda: api.call("GET", f"{LB}/loadbalancers/{lb['id']}")[0] == 404)
    assert api.refused(404, "GET", f"{LB}/loadbalancers/{lb['id']}") == \
        f"Load Balancer {lb['id']} not found."
    status, _ = api.call("GET", f"/network/{REGION}/v2.0/ports/{lb['vip_port_id']}")
    assert status == 404  # the VIP port went with it


def test_vip_refusals_and_quota(api: Api) -> None:
    missing = "11111111-2222-3333-4444-555555555555"
    assert api.refused(400, "POST", f"{LB}/loadbalancers",
                       {"loadbalancer": {"vip_subnet_id": missing}}) == \
        f"Subnet {missing} not found."
    assert "VIP must contain one of" in api.refused(400, "POST", f"{LB}/loadbalancers",
                                                    {"loadbalancer": {"name": "x"}})
    assert api.refused(400, "POST", f"{LB}/loadbalancers", {"loadbalancer": {
        "vip_subnet_id": api.subnet()["id"], "protocol": "HTTP"}}) == \
        "Unknown attribute for argument loadbalancer: protocol"
    configure(api.info, quota={"load_balancers": 1})
    api.new_lb()
    assert api.refused(403, "POST", f"{LB}/loadbalancers", {"loadbalancer": {
        "vip_subnet_id": api.subnet()["id"]}}) == \
        "Quota has been met for resources: Load Balancer"


def test_listeners_pools_members_and_monitors(api: Api) -> None:
    lb = api.new_lb()
    api.active(lb["id"])
    lid = lb["id"]
    listener = api.post("listeners", "listener", lid, {
        "loadbalancer_id": lid, "protocol": "HTTP", "protocol_port": 80, "name": "l80"})
    assert listener["provisioning_status"] == "PENDING_CREATE"
    assert api.refused(409, "POST", f"{LB}/listeners", {"listener": {
        "loadbalancer_id": lid, "protocol": "TCP", "protocol_port": 80}}) == \
        "Another Listener on this Load Balancer is already using protocol_port 80"
    assert api.refused(400, "POST", f"{LB}/pools", {"pool": {
        "listener_id": listener["id"], "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"}}) \
        == "Validation failure: The pool protocol 'TCP' is invalid while the listener " \
           "protocol is 'HTTP'."
    pool = api.post("pools", "pool", lid, {"listener_id": listener["id"], "protocol": "HTTP",
                                           "lb_algorithm": "ROUND_ROBIN"})
    got = api.ok("GET", f"{LB}/listeners/{listener['id']}")["listener"]
    assert got["default_pool_id"] == pool["id"] and got["provisioning_status"] == "ACTIVE"
    assert api.refused(409, "POST", f"{LB}/pools", {"pool": {
        "listener_id": listener["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}) \
        == "This listener already has a default pool"

    d = driver(api.info)
    server = boot(d, "member-1")
    address = server.private_ips[0]
    members = f"{LB}/pools/{pool['id']}/members"
    member = api.ok("POST", members, {"member": {"address": address, "protocol_port": 8080,
                                                  "subnet_id": api.subnet()["id"]}}, 201)
    member = member["member"]
    api.active(lid)
    assert api.ok("GET", f"{members}/{member['id']}")["member"]["operating_status"] == \
        "NO_MONITOR"
    assert api.refused(409, "POST", members, {"member": {
        "address": address, "protocol_port": 8080}}) == \
        f"Another member on this pool is already using ip {address} on protocol_port 8080"
    assert api.refused(400, "POST", members, {"member": {
        "address": "10.0.0.99", "protocol_port": 80,
        "subnet_id": "11111111-2222-3333-4444-555555555555"}}) == \
        "Subnet 11111111-2222-3333-4444-555555555555 not found."
    stray = api.ok("POST", members, {"member": {"address": "10.0.9.9",
                                                 "protocol_port": 8080}}, 201)["member"]
    api.active(lid)

    hm = {"pool_id": pool["id"], "type": "HTTP", "delay": 5, "timeout": 5, "max_retries": 3}
    assert api.refused(400, "POST", f"{LB}/healthmonitors", {"healthmonitor": {
        **hm, "http_method": "FETCH"}}).startswith(
        "Invalid input for field/attribute http_method. Value: 'FETCH'.")
    assert api.refused(400, "POST", f"{LB}/healthmonitors", {"healthmonitor": {
        **hm, "expected_codes": "2xx"}}).startswith(
        "Invalid input for field/attribute expected_codes. Value: '2xx'.")
    assert api.refused(400, "POST", f"{LB}/healthmonitors", {"healthmonitor": {
        **hm, "type": "UDP-CONNECT", "delay": 2}}) == \
        "Validation failure: The request delay value 2 should be larger than 3 for " \
        "UDP-CONNECT health monitor type."
    assert api.refused(400, "POST", f"{LB}/healthmonitors", {"healthmonitor": {
        **hm, "max_retries": 11}}) == \
        "Invalid input for field/attribute max_retries. Value: '11'. " \
        "Value should be lower or equal to 10"
    assert api.refused(400, "POST", f"{LB}/healthmonitors", {"healthmonitor": {
        **hm, "type": "TCP", "url_path": "/x"}}) == \
        "url_path is not a valid option for health monitors of type TCP"
    made = api.post("healthmonitors", "healthmonitor", lid, {**hm, "url_path": "/health"})
    assert (made["http_method"], made["url_path"], made["expected_codes"]) == \
        ("GET", "/health", "200")
    assert api.refused(409, "POST", f"{LB}/healthmonitors", {"healthmonitor": hm}) == \
        "This pool already has a health monitor"
    assert api.ok("GET", f"{members}/{member['id']}")["member"]["operating_status"] == \
        "ONLINE"
    assert api.ok("GET", f"{members}/{stray['id']}")["member"]["operating_status"] == "ERROR"
    assert api.ok("GET", f"{LB}/pools/{pool['id']}")["pool"]["operating_status"] == \
        "DEGRADED"
    tree = api.ok("GET", f"{LB}/loadbalancers/{lid}/status")["statuses"]["loadbalancer"]
    assert tree["operating_status"] == "DEGRADED"
    [tree_pool] = tree["listeners"][0]["pools"]
    assert {m["address"]: m["operating_status"] for m in tree_pool["members"]} == \
        {address: "ONLINE", "10.0.9.9": "ERROR"}
    assert tree_pool["health_monitor"]["type"] == "HTTP"

    # updates: PENDING_UPDATE, a read-only attribute refused; a timeout longer than the
    # delay is taken, as Octavia takes it
    api.ok("PUT", f"{LB}/healthmonitors/{made['id']}",
           {"healthmonitor": {"delay": 7, "timeout": 9}})
    assert api.lb(lid)["provisioning_status"] == "PENDING_UPDATE"
    api.active(lid)
    assert api.refused(400, "PUT", f"{LB}/listeners/{listener['id']}", {"listener": {
        "protocol_port": 81}}) == "Unknown attribute for argument listener: protocol_port"
    # filters and pagination
    listing = api.ok("GET", f"{members}?limit=1")
    assert len(listing["members"]) == 1 and listing["members_links"][0]["rel"] == "next"
    assert [m["id"] for m in api.ok("GET", f"{members}?address={address}")["members"]] == \
        [member["id"]]
    assert [x["id"] for x in api.ok("GET", f"{LB}/listeners?loadbalancer_id={lid}")[
        "listeners"]] == [listener["id"]]
    assert api.ok("GET", f"{LB}/listeners?loadbalancer_id=nope")["listeners"] == []

    # deletion: children need cascade
    assert api.refused(400, "DELETE", f"{LB}/loadbalancers/{lid}") == \
        f"Validation failure: Cannot delete Load Balancer {lid} - it has children"
    api.ok("DELETE", f"{LB}/loadbalancers/{lid}?cascade=true", status=204)
    assert api.ok("GET", f"{LB}/pools/{pool['id']}")["pool"]["provisioning_status"] == \
        "PENDING_DELETE"
    assert wait_for(lambda: api.call("GET", f"{LB}/loadbalancers/{lid}")[0] == 404)
    for path in (f"{LB}/listeners/{listener['id']}", f"{LB}/pools/{pool['id']}",
                 f"{LB}/healthmonitors/{made['id']}"):
        assert api.call("GET", path)[0] == 404, path


def test_deleting_a_pool_takes_its_members_and_monitor(api: Api) -> None:
    lb = api.new_lb()
    lid = api.active(lb["id"])["id"]
    pool = api.post("pools", "pool", lid, {"loadbalancer_id": lid, "protocol": "TCP",
                                           "lb_algorithm": "LEAST_CONNECTIONS"})
    api.ok("POST", f"{LB}/pools/{pool['id']}/members",
           {"member": {"address": "10.0.0.50", "protocol_port": 22}}, 201)
    api.active(lid)
    hm = api.post("healthmonitors", "healthmonitor", lid, {
        "pool_id": pool["id"], "type": "TCP", "delay": 5, "timeout": 5, "max_retries": 2})
    api.ok("DELETE", f"{LB}/pools/{pool['id']}", status=204)
    api.active(lid)
    assert api.call("GET", f"{LB}/pools/{pool['id']}")[0] == 404
    assert api.call("GET", f"{LB}/healthmonitors/{hm['id']}")[0] == 404
    api.ok("DELETE", f"{LB}/loadbalancers/{lid}", status=204)  # no children left


def test_injected_faults_answer_in_octavias_words(api: Api) -> None:
    configure(api.info, failure_rate=1.0, failure_status=503, services=["load-balancer"])
    assert api.refused(503, "GET", f"{LB}/loadbalancers") == \
        "Injected failure (sandbox failure_rate)."
    api.subnet()  # Neutron is not affected
    configure(api.info, failure_rate=0.0)
    assert api.refused(404, "GET", "/load-balancer/nowhere/v2/lbaas/loadbalancers") \
        .startswith("The resource could not be found")
