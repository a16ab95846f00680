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

from tests.integration.clitools import ec2, run, tags, write

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
      network: {get_resource: net}
      external_gateway_info: {network: public}
  router_if:
    type: OS::Neutron::RouterInterface
    properties: {router_id: {get_resource: router}, subnet_id: {get_resource: subnet}}
  web_sg:
    type: Cloud::Network::SecurityGroup
    properties:
      network: {get_resource: net}
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
    depends_on: [router_if]
    properties: {floating_network: public, port_id: {get_resource: port}}
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
        {"Name": "tag:cloudtmpl:stack", "Values": [STACK]}])["Addresses"]
    (port,) = client.describe_network_interfaces(Filters=[
        {"Name": "tag:cloudtmpl:resource", "Values": ["port"]}])["NetworkInterfaces"]
    assert address["NetworkInterfaceId"] == port["NetworkInterfaceId"]
    assert [g["GroupId"] for g in port["Groups"]] == [group["GroupId"]]

    r = run(tmp_path, "plan", "routed.yaml", "-s", STACK, "--format", "json",
            "--detailed-exitcode")
    assert r.code == 0, r.err + r.out
    assert {c["action"] for c in r.json()["changes"]} == {"no-op"}

    r = run(tmp_path, "destroy", "routed.yaml", "-s", STACK, "--yes")
    assert r.code == 0, r.err + r.out
    assert _owned(aws_reset) == {}
    assert client.describe_internet_gateways(Filters=[
        {"Name": "tag:cloudtmpl:stack", "Values": [STACK]}])["InternetGateways"] == []


def test_without_a_router_the_address_is_refused(tmp_path: Path,
                                                 aws_reset: dict[str, Any]) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    text = TEMPLATE.split("  router:\n")[0] + "  web_sg:\n" + TEMPLATE.split("  web_sg:\n")[1]
    write(tmp_path / "routed.yaml", text.replace("    depends_on: [router_if]\n", ""))

    r = run(tmp_path, "apply", "routed.yaml", "-s", STACK, "--yes")
    assert r.code != 0
    assert "Gateway.NotAttached" in r.err + r.out
    assert "is not attached to any internet gateway" in r.err + r.out
    assert "Traceback" not in r.err + r.out
    # the elastic IP exists, tagged and tracked: not associated, and not half-made
    (address,) = ec2(aws_reset, REGION).describe_addresses(Filters=[
        {"Name": "tag:cloudtmpl:stack", "Values": [STACK]}])["Addresses"]
    assert "AssociationId" not in address and "cloudtmpl:spec" not in tags(address)
    r = run(tmp_path, "destroy", "routed.yaml", "-s", STACK, "--yes")
    assert r.code == 0, r.err + r.out
    assert _owned(aws_reset) == {}
