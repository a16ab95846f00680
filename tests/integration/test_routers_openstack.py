"""Routers on OpenStack through the real CLI: a server on a new network reached
through a router with a floating IP applies, re-plans as nothing to do and is
destroyed; without the router's interface Neutron's 404 stops the floating IP and
nothing is left untracked; an extra route, a legacy gateway and a floating-IP
association of their own; NAT gateways are refused before any cloud is asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clitools import invoke, write
from tests.integration.openstack_api import http, token

pytestmark = pytest.mark.integration

TARGET = "sandbox-openstack/de-fra-1"
STACK = "routed"

# (no depends_on on the floating IP: as Heat, the resolver makes it wait for the router
# interface on its port's subnet)
TEMPLATE = """\
heat_template_version: 2018-08-31
resources:
  net:
    type: OS::Neutron::Net
  subnet:
    type: OS::Neutron::Subnet
    properties: {network_id: {get_resource: net}, cidr: 10.44.0.0/24}
  router:
    type: OS::Neutron::Router
    properties:
      external_gateway_info: {network: public}
  router_interface:
    type: OS::Neutron::RouterInterface
    properties: {router_id: {get_resource: router}, subnet_id: {get_resource: subnet}}
  port:
    type: OS::Neutron::Port
    properties:
      network_id: {get_resource: net}
      fixed_ips: [{subnet: {get_resource: subnet}}]
  server:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      networks: [{port: {get_resource: port}}]
  floating_ip:
    type: OS::Neutron::FloatingIP
    properties: {floating_network: public, port_id: {get_resource: port}}
outputs:
  public_ip: {value: {get_attr: [floating_ip, floating_ip_address]}}
  gateway: {value: {get_attr: [router, external_gateway_info]}}
"""


@pytest.fixture
def project(tmp_path: Path, openstack_reset: dict[str, Any]) -> Path:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    return tmp_path


def neutron(info: dict[str, Any], path: str) -> Any:
    status, _, body = http(info, "GET", f"/network/de-fra-1/v2.0{path}", token=token(info))
    assert status == 200, body
    return body


def mine(info: dict[str, Any]) -> dict[str, list[str]]:
    """What Neutron holds of the stack: its named objects, the tagged interface ports
    and the floating IPs whose description names it."""
    out: dict[str, list[str]] = {}
    for key in ("networks", "subnets", "ports", "routers"):
        items = neutron(info, f"/{key}")[key]
        out[key] = sorted(str(i["name"]) for i in items if str(i["name"]).startswith(f"{STACK}."))
        if key == "ports":
            out["interfaces"] = sorted(t for i in items for t in i["tags"]
                                       if t.startswith("cloudtmpl:"))
    out["floatingips"] = [f["id"] for f in neutron(info, "/floatingips")["floatingips"]
                          if f"cloudtmpl:stack={STACK};" in str(f["description"])]
    return out


def test_a_routed_server_with_a_floating_ip_applies_replans_clean_and_destroys(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    write(project / "routed.yaml", TEMPLATE)
    r = invoke(project, "apply", "routed.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    out = invoke(project, "outputs", "-s", STACK, "--format", "json").json()
    public = neutron(openstack_reset, "/networks?name=public")["networks"][0]["id"]
    assert out["gateway"]["network_id"] == public and out["gateway"]["enable_snat"] is True
    (router,) = neutron(openstack_reset, f"/routers?name={STACK}.router")["routers"]
    (fip,) = neutron(openstack_reset, f"/floatingips?floating_ip_address={out['public_ip']}"
                     )["floatingips"]
    assert fip["router_id"] == router["id"] and fip["status"] == "ACTIVE"
    assert mine(openstack_reset)["interfaces"] == [f"cloudtmpl:if={STACK}.router_interface"]

    r = invoke(project, "plan", "routed.yaml", "--target", TARGET, "--detailed-exitcode")
    assert r.code == 0, r.out + r.err  # converged

    # the gateway's SNAT changes in place
    write(project / "routed.yaml", TEMPLATE.replace(
        "external_gateway_info: {network: public}",
        "external_gateway_info: {network: public, enable_snat: false}"))
    r = invoke(project, "plan", "routed.yaml", "--target", TARGET, "--format", "json")
    assert {c["address"]: c["action"] for c in r.json()["changes"]
            if c["action"] != "no-op"} == {"router": "update"}
    r = invoke(project, "apply", "routed.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    after = neutron(openstack_reset, f"/routers/{router['id']}")["router"]
    assert after["external_gateway_info"]["enable_snat"] is False
    assert invoke(project, "plan", "routed.yaml", "--target", TARGET,
                  "--detailed-exitcode").code == 0

    r = invoke(project, "destroy", "routed.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    assert mine(openstack_reset) == {"networks": [], "subnets": [], "ports": [], "routers": [],
                                     "interfaces": [], "floatingips": []}


def test_without_the_interface_the_plan_refuses_the_floating_ip(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    text = TEMPLATE.replace("""  router_interface:
    type: OS::Neutron::RouterInterface
    properties: {router_id: {get_resource: router}, subnet_id: {get_resource: subnet}}
""", "")
    write(project / "routed.yaml", text)
    r = invoke(project, "apply", "routed.yaml", "--target", TARGET, "--yes")
    assert r.code == 1, r.err + r.out
    assert "Traceback" not in r.out + r.err
    line = text.splitlines().index("  floating_ip:") + 1
    assert f"routed.yaml:{line}:3: error[floating-ip-unreachable]" in r.err
    assert "OS::Neutron::RouterInterface" in r.err  # the hint
    assert mine(openstack_reset) == {"networks": [], "subnets": [], "ports": [], "routers": [],
                                     "interfaces": [], "floatingips": []}


NET_ONLY = """\
heat_template_version: 2018-08-31
resources:
  net:
    type: OS::Neutron::Net
  subnet:
    type: OS::Neutron::Subnet
    properties: {network_id: {get_resource: net}, cidr: 10.46.0.0/24}
outputs:
  net: {value: {get_resource: net}}
  subnet: {value: {get_resource: subnet}}
"""

ON_A_GIVEN_NET = """\
heat_template_version: 2018-08-31
parameters:
  net: {type: string}
  subnet: {type: string}
resources:
  port:
    type: OS::Neutron::Port
    properties:
      network_id: {get_param: net}
      fixed_ips: [{subnet: {get_param: subnet}}]
  server:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      networks: [{port: {get_resource: port}}]
  floating_ip:
    type: OS::Neutron::FloatingIP
    properties: {floating_network: public, port_id: {get_resource: port}}
"""


def test_on_a_network_the_template_does_not_show_neutrons_404_stops_the_floating_ip(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    """A network made elsewhere (another stack, given by id): the plan cannot see that no
    router reaches it, so the cloud's own message stops the association at apply."""
    write(project / "net.yaml", NET_ONLY)
    write(project / "routed.yaml", ON_A_GIVEN_NET)
    r = invoke(project, "apply", "net.yaml", "-s", STACK, "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    ids = invoke(project, "outputs", "-s", STACK, "--format", "json").json()
    args = ["routed.yaml", "-s", "routed-b", "--target", TARGET,
            "-p", f"net={ids['net']}", "-p", f"subnet={ids['subnet']}"]
    r = invoke(project, "apply", *args, "--yes", "--format", "json")
    assert r.code != 0
    assert "Traceback" not in r.out + r.err
    events = [json.loads(line) for line in r.out.splitlines()]
    (failed,) = [e for e in events if e.get("event") == "failed"]
    assert failed["address"] == "floating_ip"
    port = neutron(openstack_reset, "/ports?name=routed-b.port")["ports"][0]["id"]
    public = neutron(openstack_reset, "/networks?name=public")["networks"][0]["id"]
    assert failed["message"] == (
        f"sandbox-openstack/de-fra-1: External network {public} is not reachable from "
        f"subnet {ids['subnet']}.  Therefore, cannot associate Port {port} with a "
        "Floating IP. (HTTP 404)")
    assert events[-1]["summary"] == {"done": 2, "failed": 1, "skipped": 0}
    fips = neutron(openstack_reset, "/floatingips")["floatingips"]
    assert not [f for f in fips if "routed-b" in str(f["description"])]  # nothing allocated
    # everything else is in the state: destroy takes it all
    assert invoke(project, "destroy", *args, "--yes").code == 0
    assert neutron(openstack_reset, "/ports?name=routed-b.port")["ports"] == []
    assert invoke(project, "destroy", "net.yaml", "-s", STACK, "--target", TARGET,
                  "--yes").code == 0
    assert mine(openstack_reset) == {"networks": [], "subnets": [], "ports": [], "routers": [],
                                     "interfaces": [], "floatingips": []}


ROUTE_AND_FRIENDS = """\
heat_template_version: 2018-08-31
resources:
  net:
    type: OS::Neutron::Net
  subnet:
    type: OS::Neutron::Subnet
    properties: {network_id: {get_resource: net}, cidr: 10.45.0.0/24}
  router:
    type: OS::Neutron::Router
  gateway:
    type: OS::Neutron::RouterGateway
    properties: {router_id: {get_resource: router}, network_id: public}
  router_interface:
    type: OS::Neutron::RouterInterface
    properties: {router_id: {get_resource: router}, subnet_id: {get_resource: subnet}}
  route:
    type: OS::Neutron::ExtraRoute
    depends_on: router_interface  # the next hop must be on a subnet of the router
    properties: {router_id: {get_resource: router}, destination: 192.168.0.0/16,
                 nexthop: 10.45.0.9}
  server:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      networks: [{network: {get_resource: net}}]
    depends_on: subnet
  address:
    type: OS::Neutron::FloatingIP
    properties: {floating_network: public}
  association:
    type: OS::Nova::FloatingIPAssociation
    properties: {floating_ip: {get_resource: address}, server_id: {get_resource: server}}
"""


def test_a_gateway_a_route_and_an_association_of_their_own(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    write(project / "more.yaml", ROUTE_AND_FRIENDS)
    r = invoke(project, "apply", "more.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    (router,) = neutron(openstack_reset, "/routers?name=more.router")["routers"]
    assert router["routes"] == [{"destination": "192.168.0.0/16", "nexthop": "10.45.0.9"}]
    assert router["external_gateway_info"]["network_id"] == \
        neutron(openstack_reset, "/networks?name=public")["networks"][0]["id"]
    assert sorted(t.split("=")[0] for t in router["tags"]) == ["cloudtmpl:gw", "cloudtmpl:rt"]
    fips = neutron(openstack_reset, "/floatingips")["floatingips"]
    (fip,) = [f for f in fips if "cloudtmpl:fa=more.association" in f["tags"]]
    assert fip["router_id"] == router["id"] and fip["port_id"]
    assert invoke(project, "plan", "more.yaml", "--target", TARGET,
                  "--detailed-exitcode").code == 0
    r = invoke(project, "destroy", "more.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    assert neutron(openstack_reset, "/routers?name=more.router")["routers"] == []
    assert [f for f in neutron(openstack_reset, "/floatingips")["floatingips"]
            if f["tags"]] == []


def test_a_nat_gateway_is_refused_with_what_to_write_instead(project: Path) -> None:
    write(project / "nat.yaml", """\
heat_template_version: 2018-08-31
resources:
  net:
    type: OS::Neutron::Net
  subnet:
    type: OS::Neutron::Subnet
    properties: {network_id: {get_resource: net}, cidr: 10.46.0.0/24}
  nat:
    type: Cloud::Network::NatGateway
    properties: {subnet: {get_resource: subnet}}
""")
    r = invoke(project, "validate", "nat.yaml", "--target", TARGET, "--format", "json")
    assert r.code == 1, r.out + r.err
    (diag,) = r.json()["diagnostics"]
    assert diag["code"] == "unsupported-kind"
    assert "'nat'" in diag["message"] and "sandbox-openstack" in diag["message"]
    assert "enable_snat" in diag["hint"] and "external_gateway_info" in diag["hint"]
