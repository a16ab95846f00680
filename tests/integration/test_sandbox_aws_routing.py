"""The AWS sandbox's routing is as strict as EC2's where moto is not (``aws_routing``).

Each test pins one refusal or answer of :mod:`cloudtmpl_sandbox.aws_routing`, through
boto3 (a real client) against the sandbox over HTTP.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.clitools import ec2

pytestmark = pytest.mark.integration

REGION = "eu-central-1"


def _refused(call: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]


def _vpc(client: Any, cidr: str = "10.80.0.0/16") -> tuple[str, str]:
    vpc = client.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    subnet = client.create_subnet(VpcId=vpc, CidrBlock=cidr.replace("0.0/16", "1.0/24"),
                                  AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
    return vpc, subnet


def test_the_default_vpc_has_its_internet_gateway(aws_reset: dict[str, Any]) -> None:
    client = ec2(aws_reset, REGION)
    (vpc,) = client.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    (igw,) = client.describe_internet_gateways(Filters=[
        {"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}])["InternetGateways"]
    (main,) = client.describe_route_tables(Filters=[
        {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
        {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
    routes = {r.get("DestinationCidrBlock"): r.get("GatewayId") for r in main["Routes"]}
    assert routes["0.0.0.0/0"] == igw["InternetGatewayId"]
    # once: a second request does not make another
    assert len(client.describe_internet_gateways()["InternetGateways"]) == 1


def test_an_interface_of_a_vpc_without_a_gateway_gets_no_elastic_ip(
        aws_reset: dict[str, Any]) -> None:
    client = ec2(aws_reset, REGION)
    vpc, subnet = _vpc(client)
    eni = client.create_network_interface(SubnetId=subnet)["NetworkInterface"]
    alloc = client.allocate_address(Domain="vpc")["AllocationId"]
    error = _refused(client.associate_address, AllocationId=alloc,
                     NetworkInterfaceId=eni["NetworkInterfaceId"])
    assert error == {"Code": "Gateway.NotAttached",
                     "Message": f"Network {vpc} is not attached to any internet gateway"}
    (address,) = client.describe_addresses(AllocationIds=[alloc])["Addresses"]
    assert "AssociationId" not in address  # refused, not half-done
    igw = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    client.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    association = client.associate_address(AllocationId=alloc, NetworkInterfaceId=eni[
        "NetworkInterfaceId"])["AssociationId"]
    assert association.startswith("eipassoc-")
    # associated, it cannot be released (moto would disassociate it on the way)
    (address,) = client.describe_addresses(AllocationIds=[alloc])["Addresses"]
    error = _refused(client.release_address, AllocationId=alloc)
    assert error == {"Code": "InvalidIPAddress.InUse",
                     "Message": f"Address {address['PublicIp']} is in use."}
    client.disassociate_address(AssociationId=association)
    client.release_address(AllocationId=alloc)
    assert client.describe_addresses()["Addresses"] == []


def test_a_route_to_another_vpcs_gateway_is_refused(aws_reset: dict[str, Any]) -> None:
    client = ec2(aws_reset, REGION)
    vpc, _ = _vpc(client)
    other, _ = _vpc(client, "10.81.0.0/16")
    igw = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    client.attach_internet_gateway(InternetGatewayId=igw, VpcId=other)
    table = client.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    error = _refused(client.create_route, RouteTableId=table,
                     DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    assert error["Code"] == "InvalidParameterValue"
    assert error["Message"] == (f"route table {table} and network gateway {igw} belong to "
                                "different networks")
    (described,) = client.describe_route_tables(RouteTableIds=[table])["RouteTables"]
    assert [r.get("DestinationCidrBlock") for r in described["Routes"]] == ["10.80.0.0/16"]


def test_a_nat_gateway_without_an_internet_gateway_fails(aws_reset: dict[str, Any]) -> None:
    client = ec2(aws_reset, REGION)
    vpc, subnet = _vpc(client)
    alloc = client.allocate_address(Domain="vpc")["AllocationId"]
    made = client.create_nat_gateway(SubnetId=subnet, AllocationId=alloc)["NatGateway"]
    assert made["State"] == "pending"
    (nat,) = client.describe_nat_gateways(NatGatewayIds=[made["NatGatewayId"]])["NatGateways"]
    assert nat["State"] == "pending" and "FailureCode" not in nat  # then it fails
    (nat,) = client.describe_nat_gateways(NatGatewayIds=[made["NatGatewayId"]])["NatGateways"]
    assert (nat["State"], nat["FailureCode"], nat["FailureMessage"]) == (
        "failed", "Gateway.NotAttached", f"Network {vpc} has no Internet gateway attached")
    (address,) = client.describe_addresses(AllocationIds=[alloc])["Addresses"]
    assert "AssociationId" not in address  # free again: it can be released
    client.delete_nat_gateway(NatGatewayId=made["NatGatewayId"])
    (nat,) = client.describe_nat_gateways(NatGatewayIds=[made["NatGatewayId"]])["NatGateways"]
    assert nat["State"] == "deleted" and "FailureCode" not in nat
    client.release_address(AllocationId=alloc)

    # with a gateway it is available; deleted, its address is free and its interface gone
    igw = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    client.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    alloc = client.allocate_address(Domain="vpc")["AllocationId"]
    made = client.create_nat_gateway(SubnetId=subnet, AllocationId=alloc)["NatGateway"]
    states = [client.describe_nat_gateways(NatGatewayIds=[made["NatGatewayId"]])[
        "NatGateways"][0]["State"] for _ in range(2)]
    assert states == ["pending", "available"]
    (nat,) = client.describe_nat_gateways(NatGatewayIds=[made["NatGatewayId"]])["NatGateways"]
    eni = nat["NatGatewayAddresses"][0]["NetworkInterfaceId"]
    error = _refused(client.detach_internet_gateway, InternetGatewayId=igw, VpcId=vpc)
    assert error["Code"] == "DependencyViolation" and "mapped public address" in error["Message"]
    client.delete_nat_gateway(NatGatewayId=made["NatGatewayId"])
    (address,) = client.describe_addresses(AllocationIds=[alloc])["Addresses"]
    assert "AssociationId" not in address
    assert client.describe_network_interfaces(Filters=[
        {"Name": "network-interface-id", "Values": [eni]}])["NetworkInterfaces"] == []
    client.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)


def test_an_unknown_nat_gateway_is_not_found(aws_reset: dict[str, Any]) -> None:
    client = ec2(aws_reset, REGION)
    for call in (lambda: client.delete_nat_gateway(NatGatewayId="nat-0123456789abcdef0"),
                 lambda: client.describe_nat_gateways(NatGatewayIds=["nat-0123456789abcdef0"])):
        error = _refused(call)
        assert error == {"Code": "NatGatewayNotFound",
                         "Message": "The Nat Gateway nat-0123456789abcdef0 was not found"}


def test_elb_members_and_dns_name(aws_reset: dict[str, Any],
                                  catalog_amis: dict[tuple[str, str], str]) -> None:
    client = ec2(aws_reset, REGION)
    (instance,) = client.run_instances(ImageId=catalog_amis[(REGION, "ubuntu-22.04")],
                                       InstanceType="t3.micro", MinCount=1,
                                       MaxCount=1)["Instances"]
    iid = instance["InstanceId"]
    elb = boto3.client("elb", endpoint_url=aws_reset["endpoint"], region_name=REGION,
                       aws_access_key_id=aws_reset["access_key"],
                       aws_secret_access_key=aws_reset["secret_key"])
    dns = elb.create_load_balancer(LoadBalancerName="lb1", AvailabilityZones=[f"{REGION}a"],
                                   Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80,
                                               "InstancePort": 80}])["DNSName"]
    assert dns == f"lb1.{REGION}.elb.amazonaws.com"
    for _ in range(2):  # registered again: still one member
        answer = elb.register_instances_with_load_balancer(
            LoadBalancerName="lb1", Instances=[{"InstanceId": iid}])
        assert answer["Instances"] == [{"InstanceId": iid}]
    (lb,) = elb.describe_load_balancers()["LoadBalancerDescriptions"]
    assert lb["Instances"] == [{"InstanceId": iid}] and lb["DNSName"] == dns
    answer = elb.deregister_instances_from_load_balancer(LoadBalancerName="lb1",
                                                         Instances=[{"InstanceId": iid}])
    assert answer["Instances"] == []


def test_a_subnet_has_one_route_table(aws_reset: dict[str, Any]) -> None:
    client = ec2(aws_reset, REGION)
    vpc, subnet = _vpc(client)
    other, _ = _vpc(client, "10.82.0.0/16")
    first = client.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    second = client.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    elsewhere = client.create_route_table(VpcId=other)["RouteTable"]["RouteTableId"]
    client.associate_route_table(RouteTableId=first, SubnetId=subnet)
    error = _refused(client.associate_route_table, RouteTableId=second, SubnetId=subnet)
    assert error == {"Code": "Resource.AlreadyAssociated",
                     "Message": f"the specified association for route table {second} "
                                "conflicts with an existing association"}
    error = _refused(client.associate_route_table, RouteTableId=elsewhere, SubnetId=subnet)
    assert error["Code"] == "InvalidParameterValue" and "different networks" in error["Message"]
    tables = client.describe_route_tables(Filters=[
        {"Name": "association.subnet-id", "Values": [subnet]}])["RouteTables"]
    assert [t["RouteTableId"] for t in tables] == [first]


def test_a_vpc_has_one_internet_gateway(aws_reset: dict[str, Any]) -> None:
    client = ec2(aws_reset, REGION)
    vpc, _ = _vpc(client)
    first = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    second = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    client.attach_internet_gateway(InternetGatewayId=first, VpcId=vpc)
    error = _refused(client.attach_internet_gateway, InternetGatewayId=second, VpcId=vpc)
    assert error == {"Code": "InvalidParameterValue",
                     "Message": f"Network {vpc} already has an internet gateway attached"}
    error = _refused(client.attach_internet_gateway, InternetGatewayId=first, VpcId=vpc)
    assert error["Code"] == "Resource.AlreadyAssociated"  # moto's own, as EC2's
