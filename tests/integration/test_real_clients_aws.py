"""The AWS sandbox driven by the real AWS CLI (v1, ``python -m awscli``), as a user would.

The real client proves the sandbox: every command runs as a subprocess against the
sandbox's endpoint with its credentials, its ``--output json`` is parsed and what it
says is asserted (not only the exit code): EC2 (regions, instances, volumes, VPC
routing, elastic IPs, refused with ``Gateway.NotAttached`` until the VPC has an
internet gateway), Route 53, S3 (a binary round trip) and classic ELB (its DNS name in
its own region), and then everything is deleted again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REGION = "eu-central-1"
ZONE = f"{REGION}a"


@dataclass
class Aws:
    """``aws …`` against the sandbox; every command is kept, with whether it worked."""

    info: dict[str, Any]
    home: Path
    ran: list[tuple[str, bool]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "AWS_ACCESS_KEY_ID": self.info["access_key"],
            "AWS_SECRET_ACCESS_KEY": self.info["secret_key"],
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(self.home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "credentials"),
            "HOME": str(self.home),
        })
        return env

    def _run(self, args: tuple[str, ...], region: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "awscli", *args, "--endpoint-url", self.info["endpoint"],
             "--region", region, "--output", "json"],
            env=self.env(), capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL)

    def __call__(self, *args: str, region: str = REGION) -> Any:
        proc = self._run(args, region)
        self.ran.append((" ".join(args[:2]), proc.returncode == 0))
        assert proc.returncode == 0, (args, proc.stderr)
        return json.loads(proc.stdout) if proc.stdout.strip() else {}

    def refused(self, *args: str, region: str = REGION) -> str:
        """A command the cloud refuses: its error text."""
        proc = self._run(args, region)
        self.ran.append((" ".join(args[:2]) + " (refused)", proc.returncode != 0))
        assert proc.returncode != 0, (args, proc.stdout)
        return proc.stderr


@pytest.fixture
def aws(aws_reset: dict[str, Any], tmp_path: Path) -> Aws:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config").write_text("")
    (home / "credentials").write_text("")
    return Aws(aws_reset, home)


def test_the_aws_cli_against_the_sandbox(aws: Aws, tmp_path: Path,
                                         catalog_amis: dict[tuple[str, str], str]) -> None:
    regions = {r["RegionName"] for r in aws("ec2", "describe-regions")["Regions"]}
    assert set(aws.info["regions"]) <= regions
    ami = catalog_amis[(REGION, "ubuntu-22.04")]

    # instances and volumes (default VPC)
    (instance,) = aws("ec2", "run-instances", "--image-id", ami, "--instance-type", "t3.micro",
                      "--count", "1", "--placement", f"AvailabilityZone={ZONE}")["Instances"]
    iid = instance["InstanceId"]
    (found,) = [i for r in aws("ec2", "describe-instances", "--instance-ids", iid)
                ["Reservations"] for i in r["Instances"]]
    assert found["State"]["Name"] in ("pending", "running") and found["ImageId"] == ami
    volume = aws("ec2", "create-volume", "--size", "1", "--availability-zone", ZONE)
    assert volume["Size"] == 1 and volume["AvailabilityZone"] == ZONE
    vid = volume["VolumeId"]
    attached = aws("ec2", "attach-volume", "--volume-id", vid, "--instance-id", iid,
                   "--device", "/dev/sdf")
    assert attached["InstanceId"] == iid and attached["State"] in ("attaching", "attached")
    (vol,) = aws("ec2", "describe-volumes", "--volume-ids", vid)["Volumes"]
    assert [a["InstanceId"] for a in vol["Attachments"]] == [iid]

    # a VPC: the elastic IP is refused until the VPC has an internet gateway
    vpc = aws("ec2", "create-vpc", "--cidr-block", "10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = aws("ec2", "create-subnet", "--vpc-id", vpc, "--cidr-block", "10.40.1.0/24",
                 "--availability-zone", ZONE)["Subnet"]
    assert subnet["VpcId"] == vpc and subnet["CidrBlock"] == "10.40.1.0/24"
    (inner,) = aws("ec2", "run-instances", "--image-id", ami, "--instance-type", "t3.micro",
                   "--count", "1", "--subnet-id", subnet["SubnetId"])["Instances"]
    assert inner["VpcId"] == vpc
    alloc = aws("ec2", "allocate-address", "--domain", "vpc")
    assert alloc["Domain"] == "vpc" and alloc["AllocationId"].startswith("eipalloc-")
    error = aws.refused("ec2", "associate-address", "--allocation-id", alloc["AllocationId"],
                        "--instance-id", inner["InstanceId"])
    assert "Gateway.NotAttached" in error and vpc in error
    igw = aws("ec2", "create-internet-gateway")["InternetGateway"]["InternetGatewayId"]
    assert aws("ec2", "attach-internet-gateway", "--internet-gateway-id", igw,
               "--vpc-id", vpc) == {}
    table = aws("ec2", "create-route-table", "--vpc-id", vpc)["RouteTable"]
    assert table["VpcId"] == vpc
    rtb = table["RouteTableId"]
    assert aws("ec2", "create-route", "--route-table-id", rtb, "--destination-cidr-block",
               "0.0.0.0/0", "--gateway-id", igw)["Return"] is True
    association = aws("ec2", "associate-route-table", "--route-table-id", rtb,
                      "--subnet-id", subnet["SubnetId"])["AssociationId"]
    (described,) = aws("ec2", "describe-route-tables", "--route-table-ids", rtb)["RouteTables"]
    assert {r.get("DestinationCidrBlock"): r.get("GatewayId")
            for r in described["Routes"]}["0.0.0.0/0"] == igw
    assert [a["SubnetId"] for a in described["Associations"]] == [subnet["SubnetId"]]
    eip_assoc = aws("ec2", "associate-address", "--allocation-id", alloc["AllocationId"],
                    "--instance-id", inner["InstanceId"])["AssociationId"]
    (address,) = aws("ec2", "describe-addresses", "--allocation-ids",
                     alloc["AllocationId"])["Addresses"]
    assert address["InstanceId"] == inner["InstanceId"]
    assert address["AssociationId"] == eip_assoc
    # mapped: the gateway cannot go yet
    error = aws.refused("ec2", "detach-internet-gateway", "--internet-gateway-id", igw,
                        "--vpc-id", vpc)
    assert "DependencyViolation" in error and "mapped public address" in error

    # Route 53
    zone = aws("route53", "create-hosted-zone", "--name", "cli.example.test",
               "--caller-reference", "real-client-1", region="us-east-1")["HostedZone"]
    assert zone["Name"] == "cli.example.test."
    zid = zone["Id"].rsplit("/", 1)[-1]
    record = {"Name": "www.cli.example.test.", "Type": "A", "TTL": 60,
              "ResourceRecords": [{"Value": "192.0.2.10"}]}
    change = aws("route53", "change-resource-record-sets", "--hosted-zone-id", zid,
                 "--change-batch", json.dumps({"Changes": [{"Action": "CREATE",
                                                            "ResourceRecordSet": record}]}),
                 region="us-east-1")["ChangeInfo"]
    assert change["Status"] in ("PENDING", "INSYNC")
    sets = aws("route53", "list-resource-record-sets", "--hosted-zone-id", zid,
               region="us-east-1")["ResourceRecordSets"]
    (www,) = [s for s in sets if s["Name"] == "www.cli.example.test."]
    assert www["Type"] == "A" and www["ResourceRecords"] == [{"Value": "192.0.2.10"}]

    # S3: 64 KiB of random bytes there and back, byte for byte
    payload = os.urandom(64 * 1024)
    source, back = tmp_path / "blob.bin", tmp_path / "back.bin"
    source.write_bytes(payload)
    created = aws("s3api", "create-bucket", "--bucket", "cli-blobs",
                  "--create-bucket-configuration", f"LocationConstraint={REGION}")
    assert created["Location"].endswith("cli-blobs") or "cli-blobs" in created["Location"]
    put = aws("s3api", "put-object", "--bucket", "cli-blobs", "--key", "blob.bin",
              "--body", str(source))
    assert put["ETag"].strip('"') == hashlib.md5(payload).hexdigest()
    got = aws("s3api", "get-object", "--bucket", "cli-blobs", "--key", "blob.bin", str(back))
    assert got["ContentLength"] == len(payload)
    assert hashlib.sha256(back.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()

    # classic ELB: its DNS name is in its own region
    dns = aws("elb", "create-load-balancer", "--load-balancer-name", "cli-lb", "--listeners",
              "Protocol=HTTP,LoadBalancerPort=80,InstanceProtocol=HTTP,InstancePort=80",
              "--availability-zones", ZONE)["DNSName"]
    assert dns.startswith("cli-lb") and dns.endswith(f".{REGION}.elb.amazonaws.com")
    members = aws("elb", "register-instances-with-load-balancer", "--load-balancer-name",
                  "cli-lb", "--instances", iid)["Instances"]
    assert members == [{"InstanceId": iid}]
    (lb,) = aws("elb", "describe-load-balancers", "--load-balancer-names",
                "cli-lb")["LoadBalancerDescriptions"]
    assert lb["DNSName"] == dns and [m["InstanceId"] for m in lb["Instances"]] == [iid]

    # and everything goes again
    assert aws("elb", "delete-load-balancer", "--load-balancer-name", "cli-lb") == {}
    assert aws("elb", "describe-load-balancers")["LoadBalancerDescriptions"] == []
    aws("s3api", "delete-object", "--bucket", "cli-blobs", "--key", "blob.bin")
    assert aws("s3api", "delete-bucket", "--bucket", "cli-blobs") == {}
    assert "cli-blobs" not in [b["Name"] for b in aws("s3api", "list-buckets")["Buckets"]]
    aws("route53", "change-resource-record-sets", "--hosted-zone-id", zid, "--change-batch",
        json.dumps({"Changes": [{"Action": "DELETE", "ResourceRecordSet": record}]}),
        region="us-east-1")
    aws("route53", "delete-hosted-zone", "--id", zid, region="us-east-1")
    assert zid not in [z["Id"].rsplit("/", 1)[-1] for z in
                       aws("route53", "list-hosted-zones", region="us-east-1")["HostedZones"]]
    assert aws("ec2", "disassociate-address", "--association-id", eip_assoc) == {}
    assert aws("ec2", "release-address", "--allocation-id", alloc["AllocationId"]) == {}
    assert aws("ec2", "disassociate-route-table", "--association-id", association) == {}
    assert aws("ec2", "delete-route-table", "--route-table-id", rtb) == {}
    assert aws("ec2", "detach-internet-gateway", "--internet-gateway-id", igw,
               "--vpc-id", vpc) == {}
    assert aws("ec2", "delete-internet-gateway", "--internet-gateway-id", igw) == {}
    detached = aws("ec2", "detach-volume", "--volume-id", vid)
    assert detached["InstanceId"] == iid
    assert aws("ec2", "delete-volume", "--volume-id", vid) == {}
    terminating = aws("ec2", "terminate-instances", "--instance-ids", iid,
                      inner["InstanceId"])["TerminatingInstances"]
    assert {t["InstanceId"] for t in terminating} == {iid, inner["InstanceId"]}
    assert {t["CurrentState"]["Name"] for t in terminating} <= {"shutting-down", "terminated"}
    assert aws("ec2", "delete-subnet", "--subnet-id", subnet["SubnetId"]) == {}
    assert aws("ec2", "delete-vpc", "--vpc-id", vpc) == {}
    assert [v for v in aws("ec2", "describe-vpcs")["Vpcs"] if v["VpcId"] == vpc] == []
    assert aws("ec2", "describe-addresses")["Addresses"] == []
    assert [v for v in aws("ec2", "describe-volumes")["Volumes"] if v["VolumeId"] == vid] == []

    worked = [name for name, ok in aws.ran if ok]
    print(f"\naws CLI: {len(worked)}/{len(aws.ran)} commands worked "
          f"({len({n for n, _ in aws.ran})} distinct)")
    assert len(worked) == len(aws.ran)
