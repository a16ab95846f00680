"""The torture stack (58 resources on both sandbox clouds) and how to look inside the clouds.

:func:`template` is a mixed stack: on AWS (eu-central-1) a key pair, a security
group, six servers, four volumes with attachments (one under deletion_policy
Snapshot), two elastic IPs, a group of four servers, a VPC with a subnet and a
router (its route table and internet gateway) with an interface on the subnet, and a
classic ELB in front of two servers; on OpenStack (de-fra-1) a key pair, a security
group, a network, a subnet, a router to ``public`` with an interface on the subnet,
three ports, six servers (three on the ports), four volumes with attachments (one
under Snapshot), three floating IPs, a group of four servers and an Octavia load
balancer in front of two servers.

:func:`inventory` lists what the clouds hold for a stack - through boto3 for
AWS and libcloud's OpenStack driver plus the emulator's Neutron API for
OpenStack, never through cloudtmpl - as ``{(cloud, kind, logical address):
[physical ids]}``; :func:`compare` turns that and the desired set into
orphans, duplicates and missing resources.  Used by ``test_torture.py`` and
``bench/torture.py`` / ``bench/faults.py``.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from cloudtmpl_sandbox import control
from tests.integration import clitools  # imported here, not at the first timed run

REPO = Path(__file__).resolve().parents[2]
AWS_REGION = "eu-central-1"
OS_REGION = "de-fra-1"
AWS_PLACE = f"{{provider: sandbox-aws, region: {AWS_REGION}}}"
OS_PLACE = f"{{provider: sandbox-openstack, region: {OS_REGION}}}"


# aws_vol0 and os_vol0 are snapshotted before they are deleted (an EBS snapshot, a
# Cinder backup): a kill between the snapshot and the delete must not take a second one.
SNAPSHOT = "    deletion_policy: Snapshot\n"


def template(bad_image_on: str | None = None) -> str:
    """The 50-resource stack; ``bad_image_on`` gives that server an image no cloud has."""

    def image(name: str) -> str:
        return "no-such-image-4711" if name == bad_image_on else "ubuntu-22.04"

    r: list[str] = []
    # ---- AWS: 27 resources
    r.append(f"  aws_key:\n    type: Cloud::Compute::KeyPair\n    placement: {AWS_PLACE}\n")
    r.append(f"  aws_sg:\n    type: Cloud::Network::SecurityGroup\n    placement: {AWS_PLACE}\n"
             "    properties:\n      description: torture\n      rules:\n"
             "        - {protocol: tcp, port_range_min: 22, port_range_max: 22}\n")
    for i in range(6):
        r.append(f"  aws_web{i}:\n    type: Cloud::Compute::Server\n    placement: {AWS_PLACE}\n"
                 f"    properties:\n      image: {image(f'aws_web{i}')}\n      flavor: tiny\n"
                 "      key_name: {get_resource: aws_key}\n"
                 "      security_groups: [{get_resource: aws_sg}]\n")
    for i in range(4):
        r.append(f"  aws_vol{i}:\n    type: Cloud::Block::Volume\n    placement: {AWS_PLACE}\n"
                 + SNAPSHOT * (i == 0) + "    properties: {size: 1}\n")
        r.append(f"  aws_att{i}:\n    type: Cloud::Block::VolumeAttachment\n"
                 f"    placement: {AWS_PLACE}\n    properties:\n"
                 f"      instance_uuid: {{get_resource: aws_web{i}}}\n"
                 f"      volume_id: {{get_resource: aws_vol{i}}}\n      mountpoint: /dev/sdf\n")
    for i in range(2):
        r.append(f"  aws_ip{i}:\n    type: Cloud::Network::FloatingIP\n    placement: {AWS_PLACE}\n"
                 f"    properties: {{server: {{get_resource: aws_web{4 + i}}}}}\n")
    r.append(f"  aws_workers:\n    type: Cloud::Group\n    placement: {AWS_PLACE}\n"
             "    properties:\n      count: 4\n      resource_def:\n"
             "        type: Cloud::Compute::Server\n"
             "        properties: {image: ubuntu-22.04, flavor: tiny}\n")
    r.append(f"  aws_net:\n    type: Cloud::Network::Network\n    placement: {AWS_PLACE}\n"
             "    properties: {cidr: 10.60.0.0/16}\n")
    r.append(f"  aws_subnet:\n    type: Cloud::Network::Subnet\n    placement: {AWS_PLACE}\n"
             "    properties: {network: {get_resource: aws_net}, cidr: 10.60.1.0/24}\n")
    r.append(f"  aws_router:\n    type: Cloud::Network::Router\n    placement: {AWS_PLACE}\n"
             "    properties: {external_gateway_info: {network: public}}\n")
    r.append(f"  aws_router_if:\n    type: Cloud::Network::RouterInterface\n"
             f"    placement: {AWS_PLACE}\n    properties:\n"
             "      router: {get_resource: aws_router}\n"
             "      subnet: {get_resource: aws_subnet}\n")
    r.append(f"  aws_lb:\n    type: Cloud::LB::LoadBalancer\n    placement: {AWS_PLACE}\n"
             "    properties:\n      listeners: [{protocol: HTTP, port: 80, instance_port: 8080}]\n"
             "      health_check: {target: 'HTTP:8080/'}\n"
             "      members: [{get_resource: aws_web0}, {get_resource: aws_web1}]\n")
    # ---- OpenStack: 31 resources
    r.append(f"  os_key:\n    type: Cloud::Compute::KeyPair\n    placement: {OS_PLACE}\n")
    r.append(f"  os_sg:\n    type: Cloud::Network::SecurityGroup\n    placement: {OS_PLACE}\n"
             "    properties:\n      description: torture\n      rules:\n"
             "        - {protocol: tcp, port_range_min: 443, port_range_max: 443}\n")
    r.append(f"  os_net:\n    type: Cloud::Network::Network\n    placement: {OS_PLACE}\n")
    r.append(f"  os_subnet:\n    type: Cloud::Network::Subnet\n    placement: {OS_PLACE}\n"
             "    properties:\n      network: {get_resource: os_net}\n"
             "      cidr: 10.42.0.0/24\n")
    r.append(f"  os_router:\n    type: Cloud::Network::Router\n    placement: {OS_PLACE}\n"
             "    properties: {external_gateway_info: {network: public}}\n")
    r.append(f"  os_router_if:\n    type: Cloud::Network::RouterInterface\n"
             f"    placement: {OS_PLACE}\n    properties:\n"
             "      router: {get_resource: os_router}\n"
             "      subnet: {get_resource: os_subnet}\n")
    for i in range(3):
        r.append(f"  os_port{i}:\n    type: Cloud::Network::Port\n    placement: {OS_PLACE}\n"
                 "    properties:\n      network: {get_resource: os_net}\n"
                 "      fixed_ips: [{subnet: {get_resource: os_subnet}}]\n"
                 "      security_groups: [{get_resource: os_sg}]\n")
    for i in range(6):
        nets = (f"[{{port: {{get_resource: os_port{i}}}}}]" if i < 3
                else "[{network: {get_resource: os_net}}]")
        r.append(f"  os_srv{i}:\n    type: Cloud::Compute::Server\n    placement: {OS_PLACE}\n"
                 f"    properties:\n      image: {image(f'os_srv{i}')}\n      flavor: tiny\n"
                 f"      networks: {nets}\n"
                 + ("" if i < 3 else "      security_groups: [{get_resource: os_sg}]\n"
                    "    depends_on: [os_subnet]\n"))
    for i in range(4):
        r.append(f"  os_vol{i}:\n    type: Cloud::Block::Volume\n    placement: {OS_PLACE}\n"
                 + SNAPSHOT * (i == 0) + "    properties: {size: 1}\n")
        r.append(f"  os_att{i}:\n    type: Cloud::Block::VolumeAttachment\n"
                 f"    placement: {OS_PLACE}\n    properties:\n"
                 f"      instance_uuid: {{get_resource: os_srv{i + 2}}}\n"
                 f"      volume_id: {{get_resource: os_vol{i}}}\n")
    for i in range(3):
        target = f"port: {{get_resource: os_port{i}}}" if i < 2 else \
            "server: {get_resource: os_srv5}"
        r.append(f"  os_fip{i}:\n    type: Cloud::Network::FloatingIP\n    placement: {OS_PLACE}\n"
                 f"    properties: {{{target}, floating_network: public}}\n")
    r.append(f"  os_workers:\n    type: Cloud::Group\n    placement: {OS_PLACE}\n"
             "    depends_on: [os_subnet]\n    properties:\n      count: 4\n      resource_def:\n"
             "        type: Cloud::Compute::Server\n"
             "        properties: {image: ubuntu-22.04, flavor: tiny, "
             "networks: [{network: {get_resource: os_net}}]}\n")
    r.append(f"  os_lb:\n    type: Cloud::LB::LoadBalancer\n    placement: {OS_PLACE}\n"
             "    properties:\n      subnet: {get_resource: os_subnet}\n"
             "      listeners: [{protocol: HTTP, port: 80, instance_port: 8080}]\n"
             "      health_check: {target: 'HTTP:8080/'}\n"
             "      members: [{get_resource: os_srv0}, {get_resource: os_srv1}]\n")
    return "heat_template_version: 2021-04-16\nresources:\n" + "".join(r)


def desired() -> dict[tuple[str, str], str]:
    """Every resource of :func:`template`: ``(cloud, address) -> kind``."""
    out: dict[tuple[str, str], str] = {}
    for cloud, p in (("aws", "aws"), ("openstack", "os")):
        out[(cloud, f"{p}_key")] = "keypair"
        out[(cloud, f"{p}_sg")] = "security_group"
        for i in range(4):
            out[(cloud, f"{p}_workers.{i}")] = "server"
            out[(cloud, f"{p}_vol{i}")] = "volume"
            out[(cloud, f"{p}_att{i}")] = "attachment"
    for i in range(6):
        out[("aws", f"aws_web{i}")] = "server"
        out[("openstack", f"os_srv{i}")] = "server"
    for i in range(2):
        out[("aws", f"aws_ip{i}")] = "floating_ip"
    for i in range(3):
        out[("openstack", f"os_port{i}")] = "port"
        out[("openstack", f"os_fip{i}")] = "floating_ip"
    out[("openstack", "os_net")] = "network"
    out[("openstack", "os_subnet")] = "subnet"
    out[("openstack", "os_router")] = "router"
    out[("openstack", "os_router_if")] = "router_interface"
    out[("openstack", "os_lb")] = "load_balancer"
    out[("aws", "aws_net")] = "network"
    out[("aws", "aws_subnet")] = "subnet"
    out[("aws", "aws_router")] = "router"  # its route table
    out[("aws", "aws_router#igw")] = "internet_gateway"  # and its internet gateway
    out[("aws", "aws_router_if")] = "router_interface"
    out[("aws", "aws_lb")] = "load_balancer"
    assert len(out) == 59, len(out)  # 58 resources, the AWS router holding two objects
    return out


# ------------------------------------------------------------------ looking inside


def ec2(sandbox: dict[str, Any], region: str = AWS_REGION) -> Any:
    return boto3.client("ec2", endpoint_url=sandbox["endpoint"], region_name=region,
                        aws_access_key_id=sandbox["access_key"],
                        aws_secret_access_key=sandbox["secret_key"])


def _tags(item: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags") or []}


Found = dict[tuple[str, str], list[str]]  # (cloud, address) -> physical ids


def aws_inventory(sandbox: dict[str, Any], stack: str) -> tuple[Found, dict[str, str], list[str]]:
    """(what AWS holds for ``stack``, kinds, problems): tags or ``<stack>.`` names.

    Both regions are listed (a resource in the wrong region is an orphan too).
    """
    found: Found = collections.defaultdict(list)
    kinds: dict[str, str] = {}
    problems: list[str] = []
    prefix = f"{stack}."

    def mine(item: dict[str, Any], name: str | None = None) -> str | None:
        tags = _tags(item)
        if tags.get("cloudtmpl:stack") == stack:
            return tags.get("cloudtmpl:resource") or f"?{item}"
        name = name or tags.get("Name")
        if name and name.startswith(prefix):
            return name[len(prefix):]
        return None

    for region in (AWS_REGION, "us-east-1"):
        client = ec2(sandbox, region)
        where = "" if region == AWS_REGION else f"@{region}"
        by_instance: dict[str, str] = {}
        for page in client.get_paginator("describe_instances").paginate():
            for res in page["Reservations"]:
                for inst in res["Instances"]:
                    if inst["State"]["Name"] in ("terminated", "shutting-down"):
                        continue
                    addr = mine(inst)
                    if addr:
                        found[("aws", addr + where)].append(inst["InstanceId"])
                        kinds[addr] = "server"
                        by_instance[inst["InstanceId"]] = addr
        for key in client.describe_key_pairs()["KeyPairs"]:
            addr = mine(key, key["KeyName"])
            if addr:
                found[("aws", addr + where)].append(key["KeyName"])
        for group in client.describe_security_groups()["SecurityGroups"]:
            addr = mine(group, group["GroupName"])
            if addr:
                found[("aws", addr + where)].append(group["GroupId"])
        for vol in client.describe_volumes()["Volumes"]:
            addr = mine(vol)
            if not addr:
                continue
            found[("aws", addr + where)].append(vol["VolumeId"])
            att = _tags(vol).get("cloudtmpl:attachment")
            for a in vol.get("Attachments") or []:
                if a.get("State") not in ("attached", "attaching"):
                    continue
                name = att or f"untagged-attachment-of-{addr}"
                found[("aws", name + where)].append(f"{vol['VolumeId']}:{a['InstanceId']}")
                server = by_instance.get(a["InstanceId"], a["InstanceId"])
                if att and addr.startswith("aws_vol") and server != f"aws_web{addr[7:]}":
                    problems.append(f"{addr} is attached to {server}, not aws_web{addr[7:]}")
        for eip in client.describe_addresses()["Addresses"]:
            addr = mine(eip)
            if addr:
                found[("aws", addr + where)].append(eip.get("AllocationId", eip["PublicIp"]))
                server = by_instance.get(eip.get("InstanceId") or "", eip.get("InstanceId"))
                want = f"aws_web{4 + int(addr[6:])}" if addr.startswith("aws_ip") else None
                if want and server != want:
                    problems.append(f"{addr} is associated with {server}, not {want}")
        for key, listing, field_ in (("Vpcs", "describe_vpcs", "VpcId"),
                                     ("Subnets", "describe_subnets", "SubnetId")):
            for item in getattr(client, listing)()[key]:
                addr = mine(item)
                if addr:
                    found[("aws", addr + where)].append(item[field_])
        for igw in client.describe_internet_gateways()["InternetGateways"]:
            addr = mine(igw)
            if addr:
                found[("aws", addr + "#igw" + where)].append(igw["InternetGatewayId"])
        for table in client.describe_route_tables()["RouteTables"]:
            addr = mine(table)
            if not addr:
                continue
            found[("aws", addr + where)].append(table["RouteTableId"])
            records = {k[len("cloudtmpl:interface:"):]: json.loads(v)[0]
                       for k, v in _tags(table).items() if k.startswith("cloudtmpl:interface:")}
            for assoc in table.get("Associations") or []:
                subnet = assoc.get("SubnetId")
                if subnet:
                    name = records.get(subnet) or f"untracked-association-of-{addr}"
                    found[("aws", name + where)].append(f"{table['RouteTableId']}:{subnet}")
        elb = boto3.client("elb", endpoint_url=sandbox["endpoint"], region_name=region,
                           aws_access_key_id=sandbox["access_key"],
                           aws_secret_access_key=sandbox["secret_key"])
        names = [b["LoadBalancerName"] for b in
                 elb.describe_load_balancers()["LoadBalancerDescriptions"]]
        for i in range(0, len(names), 20):
            for desc in elb.describe_tags(LoadBalancerNames=names[i:i + 20])["TagDescriptions"]:
                addr = mine(desc)  # by its tags (an ELB name is <stack>-<address>)
                if addr:
                    found[("aws", addr + where)].append(desc["LoadBalancerName"])
    return found, kinds, problems


class OpenStackApi:
    """The emulator's own REST APIs with a Keystone token (as any OpenStack client)."""

    def __init__(self, sandbox: dict[str, Any], region: str = OS_REGION) -> None:
        self.endpoint = sandbox["endpoint"]
        self.region = region
        body = json.dumps({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": sandbox["username"], "domain": {"name": "Default"},
                "password": sandbox["password"]}}},
            "scope": {"project": {"name": sandbox["project_name"],
                                  "domain": {"name": "Default"}}}}}).encode()
        req = urllib.request.Request(f"{self.endpoint}/identity/v3/auth/tokens", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            self.token = resp.headers["X-Subject-Token"]
            self.project = json.loads(resp.read())["token"]["project"]["id"]

    def get(self, service: str, path: str, key: str) -> list[dict[str, Any]]:
        root = {"compute": "/v2.1", "network": "/v2.0", "volume": f"/v3/{self.project}",
                "load-balancer": "/v2/lbaas"}[service]
        url = f"{self.endpoint}/{service}/{self.region}{root}{path}"
        req = urllib.request.Request(url, headers={"X-Auth-Token": self.token})
        with urllib.request.urlopen(req, timeout=30) as resp:
            items = json.loads(resp.read())[key]
        return [i.get("keypair", i) if isinstance(i, dict) else i for i in items]


def openstack_inventory(sandbox: dict[str, Any], stack: str) -> tuple[Found, list[str]]:
    found: Found = collections.defaultdict(list)
    problems: list[str] = []
    prefix = f"{stack}."
    for region in (OS_REGION, "nl-ams-1"):
        api = OpenStackApi(sandbox, region)
        where = "" if region == OS_REGION else f"@{region}"

        def add(addr: str | None, ident: str, where: str = where) -> None:
            if addr:
                found[("openstack", addr + where)].append(ident)

        def named(item: dict[str, Any]) -> str | None:
            name = item.get("name") or ""
            return name[len(prefix):] if name.startswith(prefix) else None

        servers = {}
        for s in api.get("compute", "/servers/detail", "servers"):
            meta = s.get("metadata") or {}
            addr = meta.get("cloudtmpl:resource") if meta.get("cloudtmpl:stack") == stack \
                else named(s)
            add(addr, s["id"])
            servers[s["id"]] = addr or s["id"]
        for k in api.get("compute", "/os-keypairs", "keypairs"):
            add(named(k), k["name"])
        for path, key in (("/networks", "networks"), ("/subnets", "subnets"),
                          ("/ports", "ports"), ("/security-groups", "security_groups"),
                          ("/routers", "routers")):
            for item in api.get("network", path, key):
                add(named(item), item["id"])
                for tag in item.get("tags") or []:  # a router interface: its port's tag
                    if key == "ports" and tag.startswith(f"cloudtmpl:if={prefix}"):
                        add(tag[len(f"cloudtmpl:if={prefix}"):],
                            f"{item['device_id']}:{item['fixed_ips'][0]['subnet_id']}")
        for lb in api.get("load-balancer", "/loadbalancers", "loadbalancers"):
            add(named(lb), lb["id"])
        for fip in api.get("network", "/floatingips", "floatingips"):
            desc = dict(part.split("=", 1) for part in (fip.get("description") or "").split(";")
                        if "=" in part)
            if desc.get("cloudtmpl:stack") == stack:
                add(desc.get("cloudtmpl:resource"), fip["id"])
        for vol in api.get("volume", "/volumes/detail", "volumes"):
            meta = vol.get("metadata") or {}
            addr = meta.get("cloudtmpl:resource") if meta.get("cloudtmpl:stack") == stack \
                else named(vol)
            add(addr, vol["id"])
            for a in vol.get("attachments") or []:
                att = meta.get("cloudtmpl:attachment") or (
                    f"os_att{addr[6:]}" if addr and addr.startswith("os_vol") else None)
                add(att or f"untracked-attachment-of-{addr}", f"{vol['id']}:{a['server_id']}")
                server = servers.get(a["server_id"], a["server_id"])
                if addr and addr.startswith("os_vol") and server != f"os_srv{int(addr[6:]) + 2}":
                    problems.append(f"{addr} is attached to {server}")
    return found, problems


def snapshot_counts(aws: dict[str, Any], openstack: dict[str, Any], stack: str
                    ) -> dict[tuple[str, str], int]:
    """How many snapshots (AWS) / backups (OpenStack) ``stack`` took of each volume:
    ``(cloud, volume id) -> count``.  Each deleted volume under Snapshot should have one."""
    counts: dict[tuple[str, str], int] = collections.Counter()
    snaps = ec2(aws).describe_snapshots(
        Filters=[{"Name": "tag:cloudtmpl:stack", "Values": [stack]}])["Snapshots"]
    for snap in snaps:
        counts[("aws", snap["VolumeId"])] += 1
    for backup in OpenStackApi(openstack).get("volume", "/backups/detail", "backups"):
        if str(backup.get("name") or "").startswith(f"{stack}."):
            counts[("openstack", backup["volume_id"])] += 1
    return dict(counts)


@dataclass
class Verdict:
    """How the clouds' contents compare with the desired set."""

    orphans: list[str] = field(default_factory=list)  # of the stack, not desired
    duplicates: list[str] = field(default_factory=list)  # desired, more than once
    missing: list[str] = field(default_factory=list)  # desired, not there
    problems: list[str] = field(default_factory=list)  # wrong attachment/association

    @property
    def clean(self) -> bool:
        return not (self.orphans or self.duplicates or self.missing or self.problems)

    def __str__(self) -> str:
        return (f"orphans={self.orphans} duplicates={self.duplicates} "
                f"missing={self.missing} problems={self.problems}")


def compare(aws: dict[str, Any], openstack: dict[str, Any], stack: str,
            want: Iterable[tuple[str, str]]) -> Verdict:
    """Look inside both clouds; compare with ``want`` ((cloud, address) pairs)."""
    found_aws, _, problems = aws_inventory(aws, stack)
    found_os, os_problems = openstack_inventory(openstack, stack)
    found = {**found_aws, **found_os}
    wanted = set(want)
    v = Verdict(problems=problems + os_problems)
    for key, ids in sorted(found.items()):
        if key not in wanted:
            v.orphans.append(f"{key[0]}:{key[1]}={ids}")
        elif len(ids) > 1:
            v.duplicates.append(f"{key[0]}:{key[1]}={ids}")
    v.missing = sorted(f"{c}:{a}" for c, a in wanted if (c, a) not in found)
    return v


# ----------------------------------------------------------------- driving the CLI


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return clitools.cli_env(extra)


def cli(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cloudtmpl.cli", *args], cwd=cwd,
                          env=cli_env(), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def killed_run(cwd: Path, args: list[str], delay: float) -> tuple[bool, float]:
    """Start ``cloudtmpl *args``, SIGKILL it after ``delay`` s: (killed?, seconds it ran)."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "cloudtmpl.cli", *args], cwd=cwd,
                            env=cli_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
        return False, time.monotonic() - started  # finished before the kill
    except subprocess.TimeoutExpired:
        proc.kill()  # SIGKILL: no cleanup, no journal flush, the lock left behind
        proc.wait()
        return True, time.monotonic() - started
    finally:
        if proc.poll() is None:  # pragma: no cover - the test itself was interrupted
            proc.kill()
            proc.wait()


def post(sandbox: dict[str, Any], path: str, data: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    """POST to a sandbox's control endpoint (``/_sandbox/*``, ``/moto-api/*``)."""
    status, result = control.call(sandbox["endpoint"], sandbox["token"], "POST", path, data)
    assert status == 200, (path, status, result)
    return dict(result or {})


def get(sandbox: dict[str, Any], path: str) -> dict[str, Any]:
    """GET a sandbox's control endpoint."""
    status, result = control.call(sandbox["endpoint"], sandbox["token"], "GET", path)
    assert status == 200, (path, status, result)
    return dict(result)


# Slow enough that an apply takes a few seconds (so a kill lands anywhere in it),
# fast enough for CI.
SLOW_AWS = {"latency_ms": 15}
SLOW_OPENSTACK = {"latency_ms": 15, "build_seconds": 1.0, "volume_seconds": 0.5,
                  "snapshot_seconds": 0.5}


def reset_clouds(aws: dict[str, Any], openstack: dict[str, Any],
                 aws_knobs: dict[str, Any] | None = None,
                 openstack_knobs: dict[str, Any] | None = None) -> None:
    """Empty both clouds, then set the knobs (defaults: the slow ones above)."""
    post(aws, "/moto-api/reset")
    post(aws, "/_sandbox/config/reset")
    post(aws, "/_sandbox/config", SLOW_AWS if aws_knobs is None else aws_knobs)
    post(openstack, "/_sandbox/reset")
    post(openstack, "/_sandbox/config",
         SLOW_OPENSTACK if openstack_knobs is None else openstack_knobs)


def set_knobs(aws: dict[str, Any], openstack: dict[str, Any],
              aws_knobs: dict[str, Any], openstack_knobs: dict[str, Any]) -> None:
    post(aws, "/_sandbox/config", aws_knobs)
    post(openstack, "/_sandbox/config", openstack_knobs)


def calm(aws: dict[str, Any], openstack: dict[str, Any]) -> None:
    """Fault knobs off on both clouds (the slow-down stays), contents untouched."""
    post(aws, "/_sandbox/config/reset")
    post(aws, "/_sandbox/config", SLOW_AWS)
    post(openstack, "/_sandbox/config",
         {**SLOW_OPENSTACK, "failure_rate": 0, "throttle_rate": 0, "drop_rate": 0})


def restore_defaults(aws: dict[str, Any], openstack: dict[str, Any]) -> None:
    post(aws, "/_sandbox/config/reset")
    post(openstack, "/_sandbox/reset")


def faults(share: float = 0.2, *, ambiguous: float = 0.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Knobs for ``share`` transient failures, split evenly over 5xx, throttling and drops.

    ``ambiguous``: the share of drops made after the request took effect.
    """
    each = 1 - (1 - share) ** (1 / 3)  # three independent draws in turn
    aws = {**SLOW_AWS, "failure_rate": each, "failure_status": None, "throttle_rate": each,
           "throttle_status": None, "drop_rate": each, "drop_after": ambiguous}
    openstack = {**SLOW_OPENSTACK, "failure_rate": each, "throttle_rate": each,
                 "retry_after": 1, "drop_rate": each, "drop_after": ambiguous}
    return aws, openstack


def converged(cwd: Path, template_file: str) -> tuple[bool, str]:
    r = cli(cwd, "plan", template_file, "--detailed-exitcode")
    return r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def median(values: list[float]) -> float:
    import statistics

    return statistics.median(values) if values else float("nan")


Callback = Callable[[str], None]
