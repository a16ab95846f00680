"""A server with a public address in a new VPC on the AWS sandbox, through the CLI.

The VPC, its subnet, a router with an external gateway (route table + internet
gateway) and its interface on the subnet, a security group in that VPC, a port, a
server on the port and an elastic IP on it: applied, re-planned as a no-op, destroyed
to nothing.  Without the router AWS refuses the elastic IP's association
(``Gateway.NotAttached``): the cloud's message is shown, and nothing is left untracked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudtmpl.providers.base import (
    FLOATING_IP,
    NAT_GATEWAY,
    NETWORK,
    PORT,
    ROUTE,
    ROUTER,
    ROUTER_INTERFACE,
    SECURITY_GROUP,
    SUBNET,
    CloudError,
)
from tests.integration import adapters
from tests.integration.adapters import AWS_REGION, TIMEOUT, create, update
from tests.integration.adapters import STACK as STACK_OF_ADAPTER
from tests.integration.clitools import ec2, invoke, run, tags, write

pytestmark = pytest.mark.integration

REGION = "eu-central-1"
STACK = "routed"

TEMPLATE = """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-aws, region: eu-central-1}
resources:
  net:
    type: Cloud::Network::Network
    properties: {cidr: 10.0.0.0/16}
  subnet:
    type: OS::Neutron::Subnet
    properties: {network_id: {get_resource: net}, cidr: 10.0.1.0/24}
  router:
    type: OS::Neutron::Router
    properties:
      external_gateway_info: {network: public}
  router_if:
    type: OS::Neutron::RouterInterface
    properties: {router_id: {get_resource: router}, subnet_id: {get_resource: subnet}}
  web_sg:
    type: Cloud::Network::SecurityGroup
    properties:
      rules: [{protocol: tcp, port_range_min: 22, port_range_max: 22}]
  port:
    type: OS::Neutron::Port
    properties:
      network_id: {get_resource: net}
      fixed_ips: [{subnet: {get_resource: subnet}}]
      security_groups: [{get_resource: web_sg}]
  server:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      networks: [{port: {get_resource: port}}]
  fip:
    type: OS::Neutron::FloatingIP
    properties: {floating_network: public, port_id: {get_resource: port}}
  spare:
    type: OS::Neutron::Port
    properties:
      network_id: {get_resource: net}
      fixed_ips: [{subnet: {get_resource: subnet}}]
  spare_ip:
    type: OS::Neutron::FloatingIP
    properties: {floating_network: public}
  spare_assoc:
    type: OS::Neutron::FloatingIPAssociation
    properties: {floatingip_id: {get_resource: spare_ip}, port_id: {get_resource: spare}}
"""


def _owned(sandbox: dict[str, Any]) -> dict[str, list[str]]:
    """Every object of the stack's kinds that carries its stack tag, by kind."""
    client = ec2(sandbox, REGION)
    flt = [{"Name": "tag:cloudtmpl:stack", "Values": [STACK]}]
    instances = [i["InstanceId"] for r in client.describe_instances(Filters=flt)["Reservations"]
                 for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    return {k: v for k, v in {
        "vpcs": [v["VpcId"] for v in client.describe_vpcs(Filters=flt)["Vpcs"]],
        "subnets": [s["SubnetId"] for s in client.describe_subnets(Filters=flt)["Subnets"]],
        "tables": [t["RouteTableId"]
                   for t in client.describe_route_tables(Filters=flt)["RouteTables"]],
        "gateways": [g["InternetGatewayId"] for g in client.describe_internet_gateways(
            Filters=flt)["InternetGateways"]],
        "groups": [g["GroupId"] for g in client.describe_security_groups(
            Filters=flt)["SecurityGroups"]],
        "interfaces": [n["NetworkInterfaceId"] for n in client.describe_network_interfaces(
            Filters=flt)["NetworkInterfaces"]],
        "addresses": [a["AllocationId"] for a in client.describe_addresses(
            Filters=flt)["Addresses"]],
        "instances": instances,
    }.items() if v}


def test_a_public_server_in_a_new_vpc(tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "routed.yaml", TEMPLATE)

    r = run(tmp_path, "apply", "routed.yaml", "-s", STACK, "--yes")
    assert r.code == 0, r.err + r.out
    client = ec2(aws_reset, REGION)
    (vpc,) = client.describe_vpcs(Filters=[{"Name": "tag:cloudtmpl:stack",
                                            "Values": [STACK]}])["Vpcs"]
    (igw,) = client.describe_internet_gateways(Filters=[
        {"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}])["InternetGateways"]
    assert tags(igw)["cloudtmpl:resource"] == "router"
    (table,) = client.describe_route_tables(Filters=[
        {"Name": "tag:cloudtmpl:resource", "Values": ["router"]}])["RouteTables"]
    routes = {r.get("DestinationCidrBlock"): r.get("GatewayId") for r in table["Routes"]}
    assert routes["0.0.0.0/0"] == igw["InternetGatewayId"]
    (subnet,) = client.describe_subnets(Filters=[{"Name": "vpc-id",
                                                  "Values": [vpc["VpcId"]]}])["Subnets"]
    assert [a["SubnetId"] for a in table["Associations"]] == [subnet["SubnetId"]]
    (group,) = client.describe_security_groups(Filters=[
        {"Name": "tag:cloudtmpl:resource", "Values": ["web_sg"]}])["SecurityGroups"]
    assert group["VpcId"] == vpc["VpcId"]
    (address,) = client.describe_addresses(Filters=[
        {"Name": "tag:cloudtmpl:resource", "Values": ["fip"]}])["Addresses"]
    (port,) = client.describe_network_interfaces(Filters=[
        {"Name": "tag:cloudtmpl:resource", "Values": ["port"]}])["NetworkInterfaces"]
    assert address["NetworkInterfaceId"] == port["NetworkInterfaceId"]
    assert [g["GroupId"] for g in port["Groups"]] == [group["GroupId"]]
    # the association resource: recorded on the elastic IP, which is on the spare port
    (spare_ip,) = client.describe_addresses(Filters=[
        {"Name": "tag:cloudtmpl:resource", "Values": ["spare_ip"]}])["Addresses"]
    (spare,) = client.describe_network_interfaces(Filters=[
        {"Name": "tag:cloudtmpl:resource", "Values": ["spare"]}])["NetworkInterfaces"]
    assert spare_ip["NetworkInterfaceId"] == spare["NetworkInterfaceId"]
    assert tags(spare_ip)["cloudtmpl:association-stack"] == STACK

    r = run(tmp_path, "plan", "routed.yaml", "-s", STACK, "--format", "json",
            "--detailed-exitcode")
    assert r.code == 0, r.err + r.out
    assert {c["action"] for c in r.json()["changes"]} == {"no-op"}

    r = run(tmp_path, "destroy", "routed.yaml", "-s", STACK, "--yes")
    assert r.code == 0, r.err + r.out
    assert _owned(aws_reset) == {}
    assert client.describe_internet_gateways(Filters=[
        {"Name": "tag:cloudtmpl:stack", "Values": [STACK]}])["InternetGateways"] == []


def test_without_a_router_the_plan_refuses_the_address(tmp_path: Path,
                                                      aws_reset: dict[str, Any]) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    text = TEMPLATE.split("  router:\n")[0] + "  web_sg:\n" + TEMPLATE.split("  web_sg:\n")[1]
    text = text.split("  spare:\n")[0]
    write(tmp_path / "routed.yaml", text)
    r = run(tmp_path, "apply", "routed.yaml", "-s", STACK, "--yes")
    assert r.code == 1
    line = text.splitlines().index("  fip:") + 1
    assert f"routed.yaml:{line}:3: error[floating-ip-unreachable]" in r.err
    assert "Traceback" not in r.err + r.out
    assert _owned(aws_reset) == {}  # refused before any change


NET_ONLY = """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-aws, region: eu-central-1}
resources:
  net:
    type: Cloud::Network::Network
    properties: {cidr: 10.0.0.0/16}
  subnet:
    type: OS::Neutron::Subnet
    properties: {network_id: {get_resource: net}, cidr: 10.0.1.0/24}
outputs:
  net: {value: {get_resource: net}}
  subnet: {value: {get_resource: subnet}}
"""

ON_A_GIVEN_VPC = """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-aws, region: eu-central-1}
parameters:
  net: {type: string}
  subnet: {type: string}
resources:
  web_sg:
    type: Cloud::Network::SecurityGroup
    properties:
      network: {get_param: net}
      rules: [{protocol: tcp, port_range_min: 22, port_range_max: 22}]
  port:
    type: OS::Neutron::Port
    properties:
      network_id: {get_param: net}
      fixed_ips: [{subnet: {get_param: subnet}}]
      security_groups: [{get_resource: web_sg}]
  server:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      networks: [{port: {get_resource: port}}]
  fip:
    type: OS::Neutron::FloatingIP
    properties: {floating_network: public, port_id: {get_resource: port}}
"""


def test_on_a_vpc_the_template_does_not_show_aws_refuses_the_address(
        tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    """A VPC made elsewhere (another stack, given by id): the plan cannot see it has no
    internet gateway, so EC2's own refusal stops the association at apply."""
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "net.yaml", NET_ONLY)
    write(tmp_path / "routed.yaml", ON_A_GIVEN_VPC)
    r = run(tmp_path, "apply", "net.yaml", "-s", "routed-net", "--yes")
    assert r.code == 0, r.err + r.out
    ids = invoke(tmp_path, "outputs", "-s", "routed-net", "--format", "json").json()
    args = ["routed.yaml", "-s", STACK, "-p", f"net={ids['net']}",
            "-p", f"subnet={ids['subnet']}"]
    r = run(tmp_path, "apply", *args, "--yes")
    assert r.code != 0
    assert "Gateway.NotAttached" in r.err + r.out
    assert "is not attached to any internet gateway" in r.err + r.out
    assert "Traceback" not in r.err + r.out
    # the elastic IP exists, tagged and tracked: not associated, and not half-made
    (address,) = ec2(aws_reset, REGION).describe_addresses(Filters=[
        {"Name": "tag:cloudtmpl:stack", "Values": [STACK]}])["Addresses"]
    assert "AssociationId" not in address and "cloudtmpl:spec" not in tags(address)
    r = run(tmp_path, "destroy", *args, "--yes")
    assert r.code == 0, r.err + r.out
    assert _owned(aws_reset) == {}
    assert run(tmp_path, "destroy", "net.yaml", "-s", "routed-net", "--yes").code == 0
    assert ec2(aws_reset, REGION).describe_vpcs(Filters=[
        {"Name": "tag:cloudtmpl:stack", "Values": ["routed-net"]}])["Vpcs"] == []


# --- the adapter, over libcloud's EC2 connection, on its own --------------------------


def _vpc(adapter: Any, cidr: str = "10.60.0.0/16") -> tuple[str, str]:
    net = create(adapter, AWS_REGION, NETWORK, "net", {"cidr": cidr}).physical_id
    sub = create(adapter, AWS_REGION, SUBNET, "sub", {"network": net,
                                                      "cidr": cidr.replace("0.0/16", "1.0/24")})
    return net, sub.physical_id


def test_a_router_on_aws_needs_its_vpc(aws_reset: dict[str, Any]) -> None:
    adapter = adapters.aws(aws_reset)
    with pytest.raises(CloudError, match=r"give it network") as info:
        create(adapter, AWS_REGION, ROUTER, "r", {"external_gateway_info": {"network": "x"}})
    assert info.value.permanent and "VPC" in str(info.value)
    net, _ = _vpc(adapter)
    router = create(adapter, AWS_REGION, ROUTER, "r", {"network": net})
    with pytest.raises(CloudError, match="subnets, not ports") as info:
        create(adapter, AWS_REGION, ROUTER_INTERFACE, "if",
               {"router": router.physical_id, "port": "eni-0123456789abcdef0"})
    assert info.value.permanent
    with pytest.raises(CloudError, match="next hop") as info:
        create(adapter, AWS_REGION, ROUTE, "rt", {"router": router.physical_id,
                                                  "destination": "10.9.0.0/16",
                                                  "nexthop": "10.60.1.5"})
    assert info.value.permanent
    # nothing was recorded for the refused ones
    kinds = frozenset({ROUTER_INTERFACE, ROUTE})
    assert adapter.discover(AWS_REGION, kinds, STACK_OF_ADAPTER) == []


def test_a_router_gains_and_loses_its_internet_gateway(aws_reset: dict[str, Any]) -> None:
    adapter = adapters.aws(aws_reset)
    client = ec2(aws_reset, AWS_REGION)
    net, sub = _vpc(adapter)
    router = create(adapter, AWS_REGION, ROUTER, "r", {"network": net})
    assert router.properties["external_gateway_info"] is None
    assert router.attributes["gateway_id"] is None
    gateway = {"network": "public"}
    router = update(adapter, router, {"network": net, "external_gateway_info": gateway},
                    {"external_gateway_info"}, "spec-2")
    igw = router.attributes["gateway_id"]
    assert router.properties["external_gateway_info"] == gateway and igw.startswith("igw-")
    (found,) = client.describe_internet_gateways(InternetGatewayIds=[igw])["InternetGateways"]
    assert [a["VpcId"] for a in found["Attachments"]] == [net]
    # a server with an elastic IP in the VPC: the gateway cannot go while it is mapped
    iface = create(adapter, AWS_REGION, ROUTER_INTERFACE, "if",
                   {"router": router.physical_id, "subnet": sub})
    port = create(adapter, AWS_REGION, PORT, "port", {"network": net,
                                                      "fixed_ips": [{"subnet": sub}]})
    fip = create(adapter, AWS_REGION, FLOATING_IP, "fip", {"port": port.physical_id})
    assert fip.properties["port"] == port.physical_id
    slow = adapters.aws(aws_reset)
    with pytest.raises(CloudError, match=r"DependencyViolation|mapped"):
        slow.update(router, {"network": net, "external_gateway_info": None},
                    frozenset({"external_gateway_info"}), stack=STACK_OF_ADAPTER,
                    spec_hash="spec-3", timeout=1.0)
    adapter.delete(fip, timeout=TIMEOUT)
    router = update(adapter, router, {"network": net, "external_gateway_info": None},
                    {"external_gateway_info"}, "spec-3")
    assert router.properties["external_gateway_info"] is None
    assert client.describe_internet_gateways(InternetGatewayIds=[], Filters=[
        {"Name": "tag:cloudtmpl:resource", "Values": ["r"]}])["InternetGateways"] == []
    for live in (iface, router, port):
        adapter.delete(live, timeout=TIMEOUT)


def test_a_nat_gateway_without_an_internet_gateway_fails_and_leaves_nothing(
        aws_reset: dict[str, Any]) -> None:
    adapter = adapters.aws(aws_reset)
    client = ec2(aws_reset, AWS_REGION)
    net, sub = _vpc(adapter)
    with pytest.raises(CloudError, match=r"Gateway\.NotAttached") as info:
        create(adapter, AWS_REGION, NAT_GATEWAY, "nat", {"subnet": sub})
    assert info.value.permanent and f"Network {net} has no Internet gateway attached" in str(
        info.value)
    assert adapter.discover(AWS_REGION, frozenset({NAT_GATEWAY, FLOATING_IP}),
                            STACK_OF_ADAPTER) == []
    assert client.describe_addresses()["Addresses"] == []  # its elastic IP released
    (nat,) = client.describe_nat_gateways()["NatGateways"]
    assert nat["State"] == "deleted"

    # with the router's internet gateway it works, and its elastic IP is no floating IP
    router = create(adapter, AWS_REGION, ROUTER, "r", {"network": net,
                                                       "external_gateway_info": {"network": "x"}})
    nat = create(adapter, AWS_REGION, NAT_GATEWAY, "nat", {"subnet": sub})
    assert nat.status == "available" and nat.attributes["public_ip"]
    found = adapter.discover(AWS_REGION, frozenset({NAT_GATEWAY, FLOATING_IP}),
                             STACK_OF_ADAPTER)
    assert [(r.kind, r.physical_id) for r in found] == [(NAT_GATEWAY, nat.physical_id)]
    route = create(adapter, AWS_REGION, ROUTE, "rt", {
        "router": router.physical_id, "destination": "10.70.0.0/16",
        "nexthop": nat.physical_id})
    assert route.properties["nexthop"] == nat.physical_id
    adapter.delete(route, timeout=TIMEOUT)
    adapter.delete(nat, timeout=TIMEOUT)
    assert client.describe_addresses()["Addresses"] == []
    adapter.delete(router, timeout=TIMEOUT)


def test_a_security_group_in_a_vpc_reports_it_and_an_old_one_does_not(
        aws_reset: dict[str, Any]) -> None:
    adapter = adapters.aws(aws_reset)
    net, _ = _vpc(adapter)
    group = create(adapter, AWS_REGION, SECURITY_GROUP, "sg", {"network": net, "rules": []})
    assert group.properties["network"] == net
    (described,) = ec2(aws_reset, AWS_REGION).describe_security_groups(
        GroupIds=[group.physical_id])["SecurityGroups"]
    assert described["VpcId"] == net
    old = create(adapter, AWS_REGION, SECURITY_GROUP, "old", {"rules": []})
    assert "network" not in old.properties  # made without one: never compared on it
    found = {r.address: r.properties for r in adapter.discover(
        AWS_REGION, frozenset({SECURITY_GROUP}), STACK_OF_ADAPTER)}
    assert found["sg"]["network"] == net and "network" not in found["old"]
    for live in (group, old):
        adapter.delete(live, timeout=TIMEOUT)


def test_a_classic_elb_reports_its_own_region(aws_reset: dict[str, Any]) -> None:
    adapter = adapters.aws(aws_reset)
    lb = create(adapter, "eu-central-1", "Cloud::LB::LoadBalancer", "lb",
                {"listeners": [{"protocol": "HTTP", "port": 80, "instance_port": 80}]})
    assert lb.attributes["dns_name"].endswith(".eu-central-1.elb.amazonaws.com")
    adapter.delete(lb, timeout=TIMEOUT)


def test_routing_kinds_on_aws_only_where_they_belong(tmp_path: Path) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "gw.yaml", """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-aws, region: eu-central-1}
resources:
  router:
    type: OS::Neutron::Router
  gw:
    type: OS::Neutron::RouterGateway
    properties: {router_id: {get_resource: router}, network_id: public}
""")
    r = invoke(tmp_path, "validate", "gw.yaml")
    assert r.code != 0 and "unsupported-kind" in r.err
    assert "write external_gateway_info" in r.err and "Cloud::Network::Router" in r.err


def test_a_router_of_an_ipv6_vpc_routes_both_families(aws_reset: dict[str, Any]) -> None:
    adapter = adapters.aws(aws_reset)
    client = ec2(aws_reset, AWS_REGION)
    vpc = client.create_vpc(CidrBlock="10.61.0.0/16",
                            AmazonProvidedIpv6CidrBlock=True)["Vpc"]["VpcId"]
    router = create(adapter, AWS_REGION, ROUTER, "r", {"network": vpc,
                                                       "external_gateway_info": {"network": "x"}})
    (table,) = client.describe_route_tables(RouteTableIds=[router.physical_id])["RouteTables"]
    to = {r.get("DestinationCidrBlock") or r.get("DestinationIpv6CidrBlock"): r.get("GatewayId")
          for r in table["Routes"]}
    igw = router.attributes["gateway_id"]
    assert to["0.0.0.0/0"] == igw and to["::/0"] == igw
    route = create(adapter, AWS_REGION, ROUTE, "v6", {"router": router.physical_id,
                                                      "destination": "2001:db8::/64",
                                                      "nexthop": igw})
    assert route.physical_id == f"{router.physical_id}:2001:db8::/64"
    assert route.properties["nexthop"] == igw
    adapter.delete(route, timeout=TIMEOUT)
    adapter.delete(router, timeout=TIMEOUT)
    assert client.describe_route_tables(Filters=[
        {"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main",
                                                "Values": ["false"]}])["RouteTables"] == []


def test_routers_share_the_one_gateway_of_a_vpc(aws_reset: dict[str, Any]) -> None:
    adapter = adapters.aws(aws_reset)
    client = ec2(aws_reset, AWS_REGION)
    internet = {"network": "public"}
    # the default VPC has AWS's gateway: a router there routes to it, and leaves it be
    (default,) = client.describe_vpcs(Filters=[{"Name": "is-default",
                                                "Values": ["true"]}])["Vpcs"]
    (aws_igw,) = client.describe_internet_gateways(Filters=[
        {"Name": "attachment.vpc-id", "Values": [default["VpcId"]]}])["InternetGateways"]
    in_default = create(adapter, AWS_REGION, ROUTER, "d", {
        "network": default["VpcId"], "external_gateway_info": internet})
    assert in_default.attributes["gateway_id"] == aws_igw["InternetGatewayId"]
    assert in_default.properties["external_gateway_info"] == internet
    adapter.delete(in_default, timeout=TIMEOUT)
    assert client.describe_internet_gateways(InternetGatewayIds=[
        aws_igw["InternetGatewayId"]])["InternetGateways"][0]["Attachments"] == [
        {"State": "available", "VpcId": default["VpcId"]}]

    # two routers of one new VPC: the first makes its gateway, the second routes to it
    net, _ = _vpc(adapter)
    first = create(adapter, AWS_REGION, ROUTER, "a", {"network": net,
                                                      "external_gateway_info": internet})
    second = create(adapter, AWS_REGION, ROUTER, "b", {"network": net,
                                                       "external_gateway_info": internet})
    igw = first.attributes["gateway_id"]
    assert second.attributes["gateway_id"] == igw
    found = {r.address: r for r in adapter.discover(AWS_REGION, frozenset({ROUTER}),
                                                    STACK_OF_ADAPTER)}
    assert {a: r.properties["external_gateway_info"] for a, r in found.items()} == {
        "a": internet, "b": internet}
    adapter.delete(second, timeout=TIMEOUT)  # the gateway stays the first router's
    assert [g["InternetGatewayId"] for g in client.describe_internet_gateways(Filters=[
        {"Name": "attachment.vpc-id", "Values": [net]}])["InternetGateways"]] == [igw]
    adapter.delete(first, timeout=TIMEOUT)
    assert client.describe_internet_gateways(Filters=[
        {"Name": "attachment.vpc-id", "Values": [net]}])["InternetGateways"] == []
