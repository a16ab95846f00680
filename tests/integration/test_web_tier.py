"""The portable web tier (``examples/web-tier``) on both sandbox clouds, through the CLI.

One template - a new network and subnet, a router to the outside and its interface,
a security group, two servers behind a load balancer with a health check, and a
floating IP - applies, re-plans as a no-op and destroys to nothing on OpenStack
(Neutron router, Octavia load balancer) and on AWS (VPC, internet gateway and route
table, classic ELB in the subnet); what each cloud holds is read with the cloud's own
API (boto3, the emulator's REST API), not through cloudtmpl.  The multi-cloud variant
puts one tier on each cloud in one stack.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import boto3
import paramiko
import pytest

from cloudtmpl_sandbox import control
from tests.integration.clitools import ec2, invoke, tags
from tests.integration.openstack_api import http, token

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "web-tier"
HEAT = Path(__file__).resolve().parents[2] / "examples" / "heat" / "servers_in_new_net.yaml"
REGION = "eu-central-1"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("web_tier.yaml", "multicloud_web.yaml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    shutil.copy(HEAT, tmp_path / HEAT.name)
    return tmp_path


def _apply_noop(project: Path, *args: str) -> dict[str, Any]:
    r = invoke(project, "apply", *args, "--yes")
    assert r.code == 0, r.err + r.out
    r = invoke(project, "plan", *args, "--detailed-exitcode")
    assert r.code == 0, r.out + r.err  # converged: nothing to change
    stack = Path(args[0]).stem
    return invoke(project, "outputs", "-s", stack, "--format", "json").json()


def _octavia(info: dict[str, Any], path: str) -> Any:
    status, _, body = http(info, "GET", f"/load-balancer/de-fra-1{path}", token=token(info))
    assert status == 200, body
    return body


def _neutron(info: dict[str, Any], path: str) -> Any:
    status, _, body = http(info, "GET", f"/network/de-fra-1/v2.0{path}", token=token(info))
    assert status == 200, body
    return body


def _openstack_held(info: dict[str, Any], prefix: str) -> dict[str, list[str]]:
    held = {key: sorted(str(i["name"]) for i in _neutron(info, f"/{key}")[key]
                        if str(i["name"]).startswith(prefix))
            for key in ("networks", "subnets", "routers")}
    held["loadbalancers"] = sorted(
        str(lb["name"]) for lb in _octavia(info, "/v2/lbaas/loadbalancers")["loadbalancers"]
        if str(lb["name"]).startswith(prefix))
    return held


def test_the_web_tier_on_openstack(project: Path, openstack_reset: dict[str, Any]) -> None:
    out = _apply_noop(project, "web_tier.yaml", "--target", "sandbox-openstack")
    (lb,) = [b for b in _octavia(openstack_reset, "/v2/lbaas/loadbalancers")["loadbalancers"]
             if b["name"].startswith("web_tier.")]
    assert lb["provisioning_status"] == "ACTIVE"
    assert out["url"] == f"http://{lb['vip_address']}/"
    (pool,) = [p for p in _octavia(openstack_reset, "/v2/lbaas/pools")["pools"]
               if p["loadbalancers"][0]["id"] == lb["id"]]
    members = _octavia(openstack_reset, f"/v2/lbaas/pools/{pool['id']}/members")["members"]
    assert sorted(m["address"] for m in members) == sorted(out["web_private_ips"])
    assert {m["protocol_port"] for m in members} == {8080}
    (monitor,) = [m for m in _octavia(openstack_reset, "/v2/lbaas/healthmonitors"
                                      )["healthmonitors"] if m["pools"][0]["id"] == pool["id"]]
    assert (monitor["type"], monitor["url_path"], monitor["delay"]) == ("HTTP", "/", 10)
    (router,) = _neutron(openstack_reset, "/routers?name=web_tier.router")["routers"]
    (fip,) = _neutron(openstack_reset, f"/floatingips?floating_ip_address="
                      f"{out['web1_public_ip']}")["floatingips"]
    assert fip["router_id"] == router["id"]  # reached through the stack's own router
    held = _openstack_held(openstack_reset, "web_tier.")
    assert held == {"networks": ["web_tier.net"], "subnets": ["web_tier.subnet"],
                    "routers": ["web_tier.router"], "loadbalancers": ["web_tier.lb"]}

    r = invoke(project, "destroy", "web_tier.yaml", "--target", "sandbox-openstack", "--yes")
    assert r.code == 0, r.err + r.out
    assert _openstack_held(openstack_reset, "web_tier.") == {
        "networks": [], "subnets": [], "routers": [], "loadbalancers": []}


def test_the_web_tier_on_aws(project: Path, aws_reset: dict[str, Any]) -> None:
    out = _apply_noop(project, "web_tier.yaml", "--target", f"sandbox-aws/{REGION}")
    client = ec2(aws_reset, REGION)
    mine = [{"Name": "tag:cloudtmpl:stack", "Values": ["web_tier"]}]
    (vpc,) = client.describe_vpcs(Filters=mine)["Vpcs"]
    (igw,) = client.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}])["InternetGateways"]
    (table,) = client.describe_route_tables(Filters=mine)["RouteTables"]
    assert {(r.get("DestinationCidrBlock"), r.get("GatewayId")) for r in table["Routes"]} >= {
        ("0.0.0.0/0", igw["InternetGatewayId"])}
    (subnet,) = client.describe_subnets(Filters=mine)["Subnets"]
    assert [a["SubnetId"] for a in table["Associations"]] == [subnet["SubnetId"]]
    (group,) = [g for g in client.describe_security_groups(Filters=mine)["SecurityGroups"]]
    assert group["VpcId"] == vpc["VpcId"]  # the template's VPC, not the default one
    elb = boto3.client("elb", endpoint_url=aws_reset["endpoint"], region_name=REGION,
                       aws_access_key_id=aws_reset["access_key"],
                       aws_secret_access_key=aws_reset["secret_key"])
    (balancer,) = elb.describe_load_balancers()["LoadBalancerDescriptions"]
    assert balancer["Subnets"] == [subnet["SubnetId"]]
    assert balancer["DNSName"].endswith(f".{REGION}.elb.amazonaws.com")
    assert out["url"] == f"http://{balancer['DNSName']}/"
    instances = {i["InstanceId"]: i for page in client.get_paginator(
        "describe_instances").paginate(Filters=mine) for res in page["Reservations"]
        for i in res["Instances"] if i["State"]["Name"] == "running"}
    assert sorted(m["InstanceId"] for m in balancer["Instances"]) == sorted(instances)
    assert {i["SubnetId"] for i in instances.values()} == {subnet["SubnetId"]}
    (address,) = client.describe_addresses(Filters=mine)["Addresses"]
    assert address["PublicIp"] == out["web1_public_ip"]
    assert tags(instances[address["InstanceId"]])["cloudtmpl:resource"] == "web1"

    r = invoke(project, "destroy", "web_tier.yaml", "--target", f"sandbox-aws/{REGION}",
               "--yes")
    assert r.code == 0, r.err + r.out
    assert client.describe_vpcs(Filters=mine)["Vpcs"] == []
    assert client.describe_route_tables(Filters=mine)["RouteTables"] == []
    assert client.describe_internet_gateways(Filters=mine)["InternetGateways"] == []
    assert client.describe_addresses(Filters=mine)["Addresses"] == []
    assert elb.describe_load_balancers()["LoadBalancerDescriptions"] == []


def test_one_web_tier_on_each_cloud(project: Path, aws_reset: dict[str, Any],
                                    openstack_reset: dict[str, Any]) -> None:
    out = _apply_noop(project, "multicloud_web.yaml")
    assert out["urls"]["aws"].endswith(f".{REGION}.elb.amazonaws.com/")
    assert out["urls"]["openstack"].startswith("http://10.20.1.")
    assert out["public_ips"]["aws"] != out["public_ips"]["openstack"]
    held = _openstack_held(openstack_reset, "multicloud_web.")
    assert held["loadbalancers"] == ["multicloud_web.openstack_tier.lb"]
    mine = [{"Name": "tag:cloudtmpl:stack", "Values": ["multicloud_web"]}]
    assert len(ec2(aws_reset, REGION).describe_vpcs(Filters=mine)["Vpcs"]) == 1

    r = invoke(project, "destroy", "multicloud_web.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert _openstack_held(openstack_reset, "multicloud_web.") == {
        "networks": [], "subnets": [], "routers": [], "loadbalancers": []}
    assert ec2(aws_reset, REGION).describe_vpcs(Filters=mine)["Vpcs"] == []


def _ssh(host: dict[str, Any], address: str, key_file: Path, command: str) -> str:
    """``command`` run over SSH as the sandbox's login user, the host key checked."""
    client = paramiko.SSHClient()
    kind, blob = host["host_key"].split()[:2]
    client.get_host_keys().add(address, kind,
                               paramiko.Ed25519Key(data=base64.b64decode(blob)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(address, 22, username=host["user"],
                       pkey=paramiko.Ed25519Key.from_private_key_file(str(key_file)),
                       look_for_keys=False, allow_agent=False, timeout=10)
        _, out, _ = client.exec_command(command, timeout=10)
        return str(out.read().decode())
    finally:
        client.close()


def test_heats_servers_in_new_net_runs_unchanged_on_aws(
        project: Path, aws_reset: dict[str, Any]) -> None:
    """Heat's shape (a router with a gateway, its interface, a port with the template's
    group, a floating IP on the port): on AWS a VPC whose server answers SSH on its
    elastic IP."""
    out = _apply_noop(project, HEAT.name, "--target", f"sandbox-aws/{REGION}")
    client = ec2(aws_reset, REGION)
    mine = [{"Name": "tag:cloudtmpl:stack", "Values": ["servers_in_new_net"]}]
    (vpc,) = client.describe_vpcs(Filters=mine)["Vpcs"]
    (group,) = client.describe_security_groups(Filters=mine)["SecurityGroups"]
    assert group["VpcId"] == vpc["VpcId"]
    (address,) = client.describe_addresses(Filters=mine)["Addresses"]
    assert address["PublicIp"] == out["server1_public_ip"]
    status, hosts = control.call(aws_reset["endpoint"], aws_reset["token"], "GET",
                                 "/_sandbox/servers")
    assert status == 200, hosts
    (host,) = [h for h in hosts.values() if out["server1_public_ip"] in h["addresses"]]
    key = project / ".cloudtmpl" / "keys" / "servers_in_new_net.key.pem"
    assert _ssh(host, out["server1_public_ip"], key, "echo reachable") == "reachable\n"

    r = invoke(project, "destroy", HEAT.name, "--target", f"sandbox-aws/{REGION}", "--yes")
    assert r.code == 0, r.err + r.out
    assert client.describe_vpcs(Filters=mine)["Vpcs"] == []
    assert client.describe_addresses(Filters=mine)["Addresses"] == []
