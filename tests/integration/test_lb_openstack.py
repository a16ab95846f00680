"""Load balancers on the OpenStack sandbox through the CLI: ``Cloud::LB::LoadBalancer``
on a new network and subnet, and Heat's ``OS::Octavia::*`` kinds; what Octavia and
Neutron hold, looked at over their APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudtmpl.providers.base import LOAD_BALANCER, SERVER
from tests.integration import adapters
from tests.integration.clitools import run, write
from tests.integration.openstack_api import configure, http, token, wait_for

pytestmark = pytest.mark.integration

REGION = "de-fra-1"
LB = f"/load-balancer/{REGION}/v2/lbaas"

# The stack's own network and subnet (routers are another piece of work: the servers
# and the VIP need none to share a subnet).
TEMPLATE = """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-openstack, region: de-fra-1}
resources:
  net:
    type: OS::Neutron::Net
  subnet:
    type: OS::Neutron::Subnet
    properties: {network_id: {get_resource: net}, cidr: 10.40.0.0/24}
  web1:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      networks: [{subnet: {get_resource: subnet}}]
  web2:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      networks: [{subnet: {get_resource: subnet}}]
  lb:
    type: Cloud::LB::LoadBalancer
    properties:
      subnet: {get_resource: subnet}
      listeners:
        - {protocol: HTTP, port: 80, instance_port: 8080}
      members: [{get_resource: web1}, {get_resource: web2}]
      health_check: {target: "HTTP:8080/health", interval: 10, timeout: 5,
                     healthy_threshold: 3}
outputs:
  vip: {value: {get_attr: [lb, vip_address]}}
  dns: {value: {get_attr: [lb, dns_name]}}
  port: {value: {get_attr: [lb, vip_port_id]}}
  web1_ip: {value: {get_attr: [web1, first_address]}}
"""

# Heat's lb_server shape (autoscaling/lb_server.yaml) without the scaling group
HEAT = """\
heat_template_version: 2018-08-31
placement: {provider: sandbox-openstack, region: de-fra-1}
resources:
  web1:
    type: OS::Nova::Server
    properties: {image: ubuntu-22.04, flavor: small}
  web2:
    type: OS::Nova::Server
    properties: {image: ubuntu-22.04, flavor: small}
  lb:
    type: OS::Octavia::LoadBalancer
    properties: {vip_subnet: private-subnet}
  listener:
    type: OS::Octavia::Listener
    properties:
      loadbalancer: {get_resource: lb}
      protocol: HTTP
      protocol_port: 80
  pool:
    type: OS::Octavia::Pool
    properties:
      listener: {get_resource: listener}
      lb_algorithm: ROUND_ROBIN
      protocol: HTTP
  member1:
    type: OS::Octavia::PoolMember
    properties:
      pool: {get_resource: pool}
      address: {get_attr: [web1, first_address]}
      protocol_port: 80
      subnet: private-subnet
  member2:
    type: OS::Octavia::PoolMember
    properties:
      pool: {get_resource: pool}
      address: {get_attr: [web2, first_address]}
      protocol_port: 80
      subnet: private-subnet
  monitor:
    type: OS::Octavia::HealthMonitor
    properties:
      delay: 3
      type: HTTP
      timeout: 3
      max_retries: 3
      pool: {get_resource: pool}
outputs:
  vip: {value: {get_attr: [lb, vip_address]}}
"""


class Look:
    """Octavia and Neutron of the sandbox, read over HTTP."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info, self.token = info, token(info)

    def get(self, path: str) -> Any:
        status, _, body = http(self.info, "GET", path, None, self.token)
        assert status == 200, body
        return body

    def octavia(self, collection: str) -> list[dict[str, Any]]:
        return list(self.get(f"{LB}/{collection}")[collection])

    def members(self, pool_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"{LB}/pools/{pool_id}/members")["members"])

    def ports(self) -> list[dict[str, Any]]:
        return list(self.get(f"/network/{REGION}/v2.0/ports")["ports"])


def _apply(tmp_path: Path, name: str = "st.yaml") -> None:
    r = run(tmp_path, "apply", name, "--yes")
    assert r.code == 0, r.err + r.out


def _noop(tmp_path: Path, name: str = "st.yaml") -> None:
    r = run(tmp_path, "plan", name, "--detailed-exitcode")
    assert r.code == 0, r.err + r.out


def _nothing_left(look: Look, ports_before: int) -> None:
    for collection in ("loadbalancers", "listeners", "pools", "healthmonitors"):
        assert look.octavia(collection) == [], collection
    assert [p for p in look.ports() if p["device_owner"] == "Octavia"] == []
    assert len(look.ports()) == ports_before


@pytest.fixture
def look(openstack_reset: dict[str, Any]) -> Look:
    configure(openstack_reset, build_seconds=0)
    return Look(openstack_reset)


def test_a_load_balancer_in_front_of_two_servers(tmp_path: Path, look: Look) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    template = write(tmp_path / "st.yaml", TEMPLATE)
    ports_before = len(look.ports())
    _apply(tmp_path)

    [lb] = look.octavia("loadbalancers")
    assert (lb["name"], lb["provisioning_status"]) == ("st.lb", "ACTIVE")
    outputs = run(tmp_path, "outputs", "-s", "st", "--format", "json").json()
    assert outputs["vip"] == outputs["dns"] == lb["vip_address"]
    assert outputs["port"] == lb["vip_port_id"]
    vip_port = look.get(f"/network/{REGION}/v2.0/ports/{lb['vip_port_id']}")["port"]
    assert vip_port["device_owner"] == "Octavia"
    assert vip_port["fixed_ips"][0]["subnet_id"] == lb["vip_subnet_id"]
    assert vip_port["fixed_ips"][0]["ip_address"].startswith("10.40.0.")
    [listener] = look.octavia("listeners")
    assert (listener["protocol"], listener["protocol_port"]) == ("HTTP", 80)
    [pool] = look.octavia("pools")
    assert pool["id"] == listener["default_pool_id"] and pool["lb_algorithm"] == "ROUND_ROBIN"
    members = look.members(pool["id"])
    assert sorted(m["protocol_port"] for m in members) == [8080, 8080]
    assert {m["operating_status"] for m in members} == {"ONLINE"}  # monitored, servers up
    assert all(m["address"].startswith("10.40.0.") for m in members)
    [hm] = look.octavia("healthmonitors")
    assert (hm["type"], hm["url_path"], hm["delay"], hm["timeout"], hm["max_retries"],
            hm["max_retries_down"]) == ("HTTP", "/health", 10, 5, 3, 2)

    _noop(tmp_path)

    # one server removed, and out of the pool in place
    web2 = TEMPLATE[TEMPLATE.index("  web2:\n"):TEMPLATE.index("  lb:\n")]
    template.write_text(TEMPLATE.replace(web2, "").replace(
        "members: [{get_resource: web1}, {get_resource: web2}]",
        "members: [{get_resource: web1}]"))
    r = run(tmp_path, "apply", "st.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert "update" in r.out and "delete" in r.out
    assert len(look.get(f"/compute/{REGION}/v2.1/servers")["servers"]) == 1
    [again] = look.octavia("loadbalancers")
    assert again["id"] == lb["id"]
    [kept] = look.members(pool["id"])
    assert kept["address"] == outputs["web1_ip"]
    _noop(tmp_path)

    r = run(tmp_path, "destroy", "st.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    _nothing_left(look, ports_before)
    assert [n for n in look.get(f"/network/{REGION}/v2.0/networks")["networks"]
            if n["name"].startswith("st.")] == []


def test_heat_octavia_kinds_apply_and_destroy(tmp_path: Path, look: Look) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "heat.yaml", HEAT)
    ports_before = len(look.ports())
    _apply(tmp_path, "heat.yaml")

    [lb] = look.octavia("loadbalancers")
    assert lb["name"] == "heat.lb"
    [listener] = look.octavia("listeners")
    assert listener["name"] == "heat.listener"
    [pool] = look.octavia("pools")
    assert pool["name"] == "heat.pool" and pool["listeners"] == [{"id": listener["id"]}]
    members = look.members(pool["id"])
    assert sorted(m["name"] for m in members) == ["heat.member1", "heat.member2"]
    assert {m["operating_status"] for m in members} == {"ONLINE"}
    [hm] = look.octavia("healthmonitors")
    assert hm["name"] == "heat.monitor" and hm["pools"] == [{"id": pool["id"]}]
    _noop(tmp_path, "heat.yaml")

    r = run(tmp_path, "destroy", "heat.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    _nothing_left(look, ports_before)


def test_a_half_made_load_balancer_is_completed_not_duplicated(look: Look) -> None:
    """What a crash in the middle of a create leaves (the load balancer and some of its
    parts, no spec tag) is found by name, and the next apply's update completes it."""
    adapter = adapters.openstack(look.info)
    server = adapters.create(adapter, REGION, SERVER, "web", {"image": "ubuntu-22.04",
                                                               "flavor": "m1.small"})
    props = {"listeners": [{"protocol": "HTTP", "port": 80, "instance_port": 8080}],
             "members": [server.physical_id], "subnet": "private-subnet",
             "health_check": {"target": "TCP:8080"}}
    live = adapters.create(adapter, REGION, LOAD_BALANCER, "lb", props)
    [pool] = look.octavia("pools")
    [member] = look.members(pool["id"])
    [hm] = look.octavia("healthmonitors")
    # the crash: the monitor not made yet, the spec tag not written
    status, _, body = http(look.info, "DELETE", f"{LB}/healthmonitors/{hm['id']}", None,
                           look.token)
    assert status == 204, body
    assert wait_for(lambda: look.get(f"{LB}/loadbalancers/{live.physical_id}")[
        "loadbalancer"]["provisioning_status"] == "ACTIVE")
    status, _, body = http(look.info, "PUT", f"{LB}/loadbalancers/{live.physical_id}",
                           {"loadbalancer": {"tags": []}}, look.token)
    assert status == 200, body
    assert wait_for(lambda: look.get(f"{LB}/loadbalancers/{live.physical_id}")[
        "loadbalancer"]["provisioning_status"] == "ACTIVE")
    [found] = [r for r in adapter.discover(REGION, frozenset({LOAD_BALANCER}), "web")]
    assert found.spec_hash is None and found.properties["health_check"] is None
    assert found.properties["members"] == [server.physical_id]

    done = adapters.update(adapter, found, props, {"health_check"}, "spec-2")
    assert done.physical_id == live.physical_id and done.spec_hash == "spec-2"
    assert done.properties["health_check"]["target"] == "TCP:8080"
    assert [p["id"] for p in look.octavia("pools")] == [pool["id"]]  # adopted, not remade
    assert [m["id"] for m in look.members(pool["id"])] == [member["id"]]
    assert len(look.octavia("listeners")) == 1 and len(look.octavia("healthmonitors")) == 1
    adapter.delete(done, timeout=adapters.TIMEOUT)
    adapter.delete(server, timeout=adapters.TIMEOUT)
    assert look.octavia("loadbalancers") == []
