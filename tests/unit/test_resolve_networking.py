"""What a template's networks imply (``cloudtmpl.resolve.networking``): Heat's implicit
floating-IP dependencies, the refusal of a floating IP with no route out, and the VPC
of AWS security groups and routers."""

from __future__ import annotations

from typing import Any

import pytest

from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.functions import GetResource
from cloudtmpl.loader import load_text
from cloudtmpl.model import Target
from cloudtmpl.resolve import ResolvedStack, ResolveOptions, resolve

TARGETS = {
    "aws": Target("aws", "aws", "eu-central-1"),
    "os": Target("os", "openstack", "RegionOne"),
}

# Heat's servers_in_new_neutron_net shape (trimmed to one server)
HEAT = """\
heat_template_version: 2013-05-23
resources:
  private_net:
    type: OS::Neutron::Net
  private_subnet:
    type: OS::Neutron::Subnet
    properties: {network_id: {get_resource: private_net}, cidr: 10.0.10.0/24}
  router:
    type: OS::Neutron::Router
    properties:
      external_gateway_info: {network: public}
  router_interface:
    type: OS::Neutron::RouterInterface
    properties:
      router_id: {get_resource: router}
      subnet_id: {get_resource: private_subnet}
  group:
    type: OS::Neutron::SecurityGroup
    properties:
      rules: [{protocol: tcp, port_range_min: 22, port_range_max: 22}]
  server1_port:
    type: OS::Neutron::Port
    properties:
      network_id: {get_resource: private_net}
      fixed_ips: [{subnet_id: {get_resource: private_subnet}}]
      security_groups: [{get_resource: group}]
  server1:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      networks: [{port: {get_resource: server1_port}}]
  server1_floating_ip:
    type: OS::Neutron::FloatingIP
    properties:
      floating_network: public
      port_id: {get_resource: server1_port}
"""


def run(text: str, target: str, **kw: Any) -> ResolvedStack:
    return resolve(load_text(text, "t.yaml"),
                   ResolveOptions(stack="demo", target=target, targets=TARGETS, **kw))


@pytest.mark.parametrize("target", ["aws", "os"])
def test_a_floating_ip_waits_for_the_router_interface_of_its_subnet(target: str) -> None:
    stack = run(HEAT, target)
    fip = stack.resources["server1_floating_ip"]
    assert fip.depends_on == {"server1_port", "router_interface"}


def test_on_aws_the_group_and_the_router_take_the_template_network() -> None:
    res = run(HEAT, "aws").resources
    for name in ("group", "router"):
        assert res[name].properties["network"] == GetResource(("private_net",))
        assert "private_net" in res[name].depends_on


def test_on_openstack_groups_and_routers_are_left_alone() -> None:
    res = run(HEAT, "os").resources
    assert "network" not in res["group"].properties
    assert "network" not in res["router"].properties
    assert res["group"].depends_on == frozenset()


def test_a_written_network_wins() -> None:
    text = HEAT.replace("      rules: [", "      network: vpc-0123\n      rules: [")
    assert run(text, "aws").resources["group"].properties["network"] == "vpc-0123"


def test_a_group_used_on_two_networks_is_left_in_the_default_vpc() -> None:
    text = HEAT + """\
  other_net:
    type: OS::Neutron::Net
  other_port:
    type: OS::Neutron::Port
    properties:
      network_id: {get_resource: other_net}
      security_groups: [{get_resource: group}]
"""
    assert "network" not in run(text, "aws").resources["group"].properties


@pytest.mark.parametrize("target", ["aws", "os"])
def test_a_floating_ip_on_a_network_with_no_router_is_refused_at_plan_time(target: str) -> None:
    text = HEAT.replace("  router_interface:\n    type: OS::Neutron::RouterInterface\n",
                        "  router_interface:\n    type: OS::Heat::None\n")
    with pytest.raises(DiagnosticError) as exc:
        run(text, target)
    (diag,) = exc.value.diagnostics
    assert diag.code == "floating-ip-unreachable"
    assert (diag.loc.file, diag.loc.line, diag.loc.column) == ("t.yaml", 33, 3)
    assert "'private_net'" in diag.message
    assert "OS::Neutron::RouterInterface" in diag.hint


def test_a_router_without_an_external_gateway_does_not_reach_out() -> None:
    text = HEAT.replace("    properties:\n      external_gateway_info: {network: public}\n",
                        "")
    with pytest.raises(DiagnosticError) as exc:
        run(text, "os")
    assert [d.code for d in exc.value.diagnostics] == ["floating-ip-unreachable"]


def test_a_legacy_router_gateway_reaches_out() -> None:
    text = HEAT.replace("    properties:\n      external_gateway_info: {network: public}\n",
                        "") + """\
  gateway:
    type: OS::Neutron::RouterGateway
    properties: {router_id: {get_resource: router}, network_id: public}
"""
    fip = run(text, "os").resources["server1_floating_ip"]
    assert {"router_interface", "gateway"} <= fip.depends_on


def test_a_floating_ip_on_a_server_of_a_network_given_by_id_is_the_clouds_business() -> None:
    text = """\
heat_template_version: 2013-05-23
resources:
  server:
    type: OS::Nova::Server
    properties: {image: ubuntu-22.04, flavor: small, networks: [{network: private}]}
  ip:
    type: OS::Nova::FloatingIP
    properties: {pool: public}
  assoc:
    type: OS::Nova::FloatingIPAssociation
    properties: {floating_ip: {get_resource: ip}, server_id: {get_resource: server}}
"""
    res = run(text, "os").resources
    assert res["assoc"].kind == "Cloud::Network::FloatingIPAssociation"
    assert res["assoc"].depends_on == {"ip", "server"}
    assert res["ip"].properties["floating_network"] == "public"


def test_a_router_interface_to_a_subnet_of_another_cloud_is_a_placement_conflict() -> None:
    text = """\
heat_template_version: 2021-04-16
resources:
  net: {type: Cloud::Network::Network, placement: {provider: aws}}
  subnet:
    type: Cloud::Network::Subnet
    properties: {network: {get_resource: net}, cidr: 10.0.1.0/24}
  router:
    type: Cloud::Network::Router
    placement: {provider: os}
    properties: {external_gateway_info: {network: public}}
  iface:
    type: Cloud::Network::RouterInterface
    properties: {router: {get_resource: router}, subnet: {get_resource: subnet}}
"""
    with pytest.raises(DiagnosticError) as exc:
        run(text, "aws")
    (diag,) = exc.value.diagnostics
    assert diag.code == "placement-conflict"
    assert (diag.loc.line, diag.loc.column) == (9, 5)
    assert "'router'" in diag.message and "refer to each other" in diag.message
