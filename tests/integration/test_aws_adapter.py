"""AwsAdapter against the AWS sandbox: real libcloud EC2 driver, real HTTP, moto behind.

Every test starts from an empty sandbox (``aws_reset``) and a fresh adapter.  Request
counts are asserted exactly: they are part of the adapter's contract (discovery grows
with regions x kinds, not with resources) and are cross-checked against the
sandbox's own server-side request counter.  What every adapter does with every kind
(create, discover, update in place, delete, adopt) is test_adapter_contract.py's; here
is what is EC2's own: request counts, the shapes EC2 reports, its refusals and waits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudtmpl.catalog import ImageFilter
from cloudtmpl.model import LiveResource, Target
from cloudtmpl.providers.aws import AwsAdapter
from cloudtmpl.providers.aws.raw import get_raw
from cloudtmpl.providers.aws.security import apply_rules, has_default_egress
from cloudtmpl.providers.base import (
    ATTACHMENT,
    FLOATING_IP,
    KEYPAIR,
    KINDS,
    NETWORK,
    PORT,
    ROUTER,
    SECURITY_GROUP,
    SERVER,
    SUBNET,
    VOLUME,
    Choice,
    CloudError,
    ResourceTimeout,
)
from cloudtmpl.providers.retry import SANDBOX_POLICY
from cloudtmpl.security_rules import canonical_rules
from tests.integration import adapters
from tests.integration.adapters import (
    AWS_REGION,
    STACK,
    TIMEOUT,
    Counted,
    by_address,
    create,
    public_key,
    sandbox_requests,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CATALOG = yaml.safe_load((REPO / "providers" / "sandbox-aws.yaml").read_text())
REGION = AWS_REGION
AMIS: dict[tuple[str, str], str] = {}  # (region, abstract image) -> AMI: catalog_amis


# --- helpers ------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def _amis(catalog_amis: dict[tuple[str, str], str]) -> None:
    AMIS.update(catalog_amis)


def ubuntu() -> str:
    """The AMI of the sandbox catalog's ubuntu-22.04 in REGION."""
    return AMIS[(REGION, "ubuntu-22.04")]


def server_props(**extra: Any) -> dict[str, Any]:
    return {"image": ubuntu(), "flavor": "t3.micro", **extra}


@pytest.fixture
def adapter(aws_reset: dict[str, Any]) -> AwsAdapter:
    return adapters.aws(aws_reset)


# --- servers ------------------------------------------------------------------------


def test_server_as_ec2_shows_it(adapter: AwsAdapter) -> None:
    with Counted(adapter) as c:
        srv = create(adapter, REGION, SERVER, "app",
                     server_props(metadata={"team": "a", "env": "x"}))
    assert c.n == 2  # RunInstances + one DescribeInstances (moto is running at once)
    assert srv.kind == SERVER and srv.physical_id.startswith("i-")
    assert srv.name == "web.app" and srv.status == "running"
    assert srv.spec_hash == "spec-1"
    assert srv.properties == {
        "image": ubuntu(), "flavor": "t3.micro", "key_name": None, "security_groups": [],
        "availability_zone": "us-east-1a", "metadata": {"team": "a", "env": "x"},
        "networks": [],
    }
    assert srv.attributes["private_ip"] and srv.attributes["first_address"]
    # the default VPC's and subnet's: keyed by both ids, as Heat keys by name and id;
    # its public IP last, as Nova lists a floating one
    nets = srv.attributes["networks"]
    [vpc] = [k for k in nets if k.startswith("vpc-")]
    [subnet] = [k for k in nets if k.startswith("subnet-")]
    assert set(nets) == {vpc, subnet} and nets[vpc] == nets[subnet]
    assert nets[vpc] == [srv.attributes["private_ip"]] + (
        [srv.attributes["public_ip"]] if srv.attributes["public_ip"] else [])
    assert srv.attributes["name"] == "web.app" and srv.attributes["status"] == "running"


def test_server_with_key_pair_and_security_group(adapter: AwsAdapter) -> None:
    kp = create(adapter, REGION, KEYPAIR, "key", {"public_key": public_key()})
    sg = create(adapter, REGION, SECURITY_GROUP, "sg", {"rules": [{"port_range_min": 22,
                                                                 "port_range_max": 22}]})
    with Counted(adapter) as c:
        srv = create(adapter, REGION, SERVER, "app", server_props(
            key_name=kp.physical_id, security_groups=[sg.physical_id], user_data="#!/bin/sh\n",
            availability_zone="us-east-1b"))
    assert c.n == 3  # + DescribeSubnets (default subnet of the zone, cached afterwards)
    assert srv.properties["key_name"] == "web.key"
    assert srv.properties["security_groups"] == [sg.physical_id]
    assert srv.properties["availability_zone"] == "us-east-1b"
    with Counted(adapter) as c:
        create(adapter, REGION, SERVER, "app2", server_props(security_groups=[sg.physical_id],
                                                             availability_zone="us-east-1b"))
    assert c.n == 2

    # The group is in use until the servers are gone: delete waits, then succeeds.
    for live in adapter.discover(REGION, frozenset({SERVER}), STACK):
        adapter.delete(live, timeout=TIMEOUT)
    adapter.delete(sg, timeout=TIMEOUT)
    adapter.delete(kp, timeout=TIMEOUT)
    assert adapter.discover(REGION, KINDS, STACK) == []


def test_bogus_ami_is_a_permanent_error_with_the_clouds_message(adapter: AwsAdapter) -> None:
    with Counted(adapter) as c, pytest.raises(CloudError) as info:
        create(adapter, REGION, SERVER, "bad", server_props(image="ami-00000000deadbeef0"))
    assert info.value.permanent
    assert "InvalidAMIID" in info.value.message
    assert "ami-00000000deadbeef0" in info.value.message
    assert c.n == 1  # permanent: not retried
    assert adapter.discover(REGION, frozenset({SERVER}), STACK) == []


def test_unknown_key_pair_names_the_key(adapter: AwsAdapter) -> None:
    with pytest.raises(CloudError) as info:
        create(adapter, REGION, SERVER, "bad", server_props(key_name="web.missing"))
    assert info.value.permanent
    assert "InvalidKeyPair.NotFound" in info.value.message and "web.missing" in info.value.message


def test_reserved_metadata_keys_are_refused(adapter: AwsAdapter) -> None:
    with pytest.raises(CloudError, match="reserved"):
        create(adapter, REGION, SERVER, "bad", server_props(metadata={"cloudtmpl:stack": "other"}))
    assert adapter.request_count() == 0


def test_discovery_finds_only_this_stacks_resources(adapter: AwsAdapter) -> None:
    create(adapter, REGION, SERVER, "app", server_props())
    create(adapter, REGION, SERVER, "app", server_props(), stack="webx")  # another stack
    create(adapter, REGION, SERVER, "app", server_props(), stack="other")
    create(adapter, REGION, VOLUME, "data", {"size": 1})
    create(adapter, REGION, VOLUME, "data", {"size": 1}, stack="other")
    create(adapter, REGION, SECURITY_GROUP, "sg", {})
    create(adapter, REGION, SECURITY_GROUP, "sg", {}, stack="other")
    create(adapter, REGION, KEYPAIR, "key", {"public_key": public_key()})
    create(adapter, REGION, KEYPAIR, "key", {"public_key": public_key()}, stack="webx")
    create(adapter, REGION, FLOATING_IP, "ip", {})
    create(adapter, REGION, FLOATING_IP, "ip", {}, stack="other")

    with Counted(adapter) as c:
        found = adapter.discover(REGION, KINDS, STACK)
    assert c.n == 8  # one listing per API
    assert sorted((r.kind, r.address, r.name) for r in found) == sorted([
        (SERVER, "app", "web.app"), (VOLUME, "data", "web.data"),
        (SECURITY_GROUP, "sg", "web.sg"), (KEYPAIR, "key", "web.key"),
        (FLOATING_IP, "ip", "web.ip"),
    ])
    assert all(r.placement.target == "sandbox-aws" and r.placement.region == REGION
               for r in found)
    with Counted(adapter) as c:
        assert adapter.discover(REGION, frozenset({KEYPAIR}), "webx")[0].name == "webx.key"
    assert c.n == 1
    # other regions are separate
    assert adapter.discover("eu-central-1", KINDS, STACK) == []


# --- volumes and attachments ------------------------------------------------------------


def test_volume_and_attachment_round_trip(adapter: AwsAdapter) -> None:
    srv = create(adapter, REGION, SERVER, "app", server_props())
    with Counted(adapter) as c:
        vol = create(adapter, REGION, VOLUME, "data", {"size": 2, "volume_type": "gp3",
                                               "metadata": {"tier": "db"}})
    assert c.n == 2  # CreateVolume (tagged atomically) + DescribeVolumes
    assert vol.physical_id.startswith("vol-") and vol.status == "available"
    assert vol.properties == {"size": 2, "volume_type": "gp3",
                              "availability_zone": "us-east-1a", "metadata": {"tier": "db"}}
    assert vol.attributes == {"size": 2, "status": "available", "name": "web.data"}

    with Counted(adapter) as c:
        att = create(adapter, REGION, ATTACHMENT, "att",
                     {"volume_id": vol.physical_id, "instance_uuid": srv.physical_id,
                      "mountpoint": "/dev/sdf"}, spec="att-1")
    assert c.n == 5  # DescribeVolumes, DescribeInstances (pending?), CreateTags (record
    # first), AttachVolume, DescribeVolumes
    assert att.physical_id == f"{vol.physical_id}:{srv.physical_id}"
    assert att.properties == {"instance_uuid": srv.physical_id, "volume_id": vol.physical_id,
                              "mountpoint": "/dev/sdf"}
    assert att.spec_hash == "att-1"

    found = by_address(adapter.discover(REGION, frozenset({VOLUME, ATTACHMENT}), STACK))
    assert set(found) == {(VOLUME, "data"), (ATTACHMENT, "att")}
    assert found[(ATTACHMENT, "att")] == att
    assert found[(VOLUME, "data")].status == "in-use"
    assert found[(VOLUME, "data")].spec_hash == "spec-1"  # the volume keeps its own hash
    # only the attachment kind asked for: still one DescribeVolumes
    with Counted(adapter) as c:
        only = adapter.discover(REGION, frozenset({ATTACHMENT}), STACK)
    assert c.n == 1 and [r.kind for r in only] == [ATTACHMENT]

    # attaching again (a retried apply) adopts the existing attachment
    again = create(adapter, REGION, ATTACHMENT, "att", {"volume_id": vol.physical_id,
                                                        "instance_uuid": srv.physical_id,
                                                        "mountpoint": "/dev/sdf"}, spec="att-1")
    assert again.physical_id == att.physical_id

    adapter.delete(att, timeout=TIMEOUT)
    found = by_address(adapter.discover(REGION, frozenset({VOLUME, ATTACHMENT}), STACK))
    assert set(found) == {(VOLUME, "data")}
    assert found[(VOLUME, "data")].status == "available"
    assert found[(VOLUME, "data")].properties["metadata"] == {"tier": "db"}  # tags removed

    adapter.delete(vol, timeout=TIMEOUT)
    assert adapter.discover(REGION, frozenset({VOLUME, ATTACHMENT}), STACK) == []


def test_volume_refuses_to_shrink(adapter: AwsAdapter) -> None:
    vol = create(adapter, REGION, VOLUME, "data", {"size": 5})
    with pytest.raises(CloudError) as info:
        adapter.update(vol, {"size": 3}, frozenset({"size"}), stack=STACK, spec_hash="x",
                       timeout=TIMEOUT)
    assert info.value.permanent and "replace" in info.value.message
    [found] = adapter.discover(REGION, frozenset({VOLUME}), STACK)
    assert found.properties["size"] == 5 and found.spec_hash == "spec-1"


def test_update_refuses_properties_that_need_replacement(adapter: AwsAdapter) -> None:
    srv = create(adapter, REGION, SERVER, "app", server_props())
    with pytest.raises(CloudError, match="replaced"):
        adapter.update(srv, server_props(image="ami-other"), frozenset({"image"}), stack=STACK,
                       spec_hash="x", timeout=TIMEOUT)


# --- security groups ----------------------------------------------------------------


def test_security_group_rules_change_in_place(adapter: AwsAdapter) -> None:
    ssh = {"direction": "ingress", "protocol": "tcp", "port_range_min": 22,
           "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8"}
    with Counted(adapter) as c:
        sg = create(adapter, REGION, SECURITY_GROUP, "sg",
                    {"description": "web tier", "rules": [ssh]})
    # CreateSecurityGroup, AuthorizeSecurityGroupIngress, CreateTags (spec), Describe
    assert c.n == 4
    assert sg.physical_id.startswith("sg-") and sg.name == "web.sg"
    assert sg.attributes == {"name": "web.sg", "id": sg.physical_id}
    assert sg.properties == {"description": "web tier", "rules": canonical_rules([ssh])}

    https = {"protocol": "tcp", "port_range_min": 443, "port_range_max": 443}
    ping = {"protocol": "icmp"}
    out_dns = {"direction": "egress", "protocol": "udp", "port_range_min": 53,
               "port_range_max": 53, "remote_ip_prefix": "10.0.0.2/32"}
    desired = [https, ping, out_dns]
    new = adapter.update(sg, {"rules": desired}, frozenset({"rules"}), stack=STACK,
                         spec_hash="spec-2", timeout=TIMEOUT)
    assert new.physical_id == sg.physical_id
    assert new.properties["rules"] == canonical_rules(desired)  # default egress revoked
    assert new.spec_hash == "spec-2"
    [found] = adapter.discover(REGION, frozenset({SECURITY_GROUP}), STACK)
    assert found == new

    # dropping every egress rule brings EC2's default allow-all back (not reported)
    back = adapter.update(new, {"rules": [https]}, frozenset({"rules"}), stack=STACK,
                          spec_hash="spec-3", timeout=TIMEOUT)
    assert back.properties["rules"] == canonical_rules([https])
    el = get_raw(adapter.client, REGION, SECURITY_GROUP, sg.physical_id)
    assert el is not None and has_default_egress(el)

    adapter.delete(back, timeout=TIMEOUT)
    assert adapter.discover(REGION, frozenset({SECURITY_GROUP}), STACK) == []


def test_rule_changes_tolerate_a_stale_view(adapter: AwsAdapter) -> None:
    """A retried Authorize that had succeeded (or a stale view) is not an error."""
    ssh = canonical_rules([{"port_range_min": 22, "port_range_max": 22}])
    https = canonical_rules([{"port_range_min": 443, "port_range_max": 443}])
    sg = create(adapter, REGION, SECURITY_GROUP, "sg", {"rules": ssh})
    with Counted(adapter) as c:  # pretends the group has no rules yet
        apply_rules(adapter.client, REGION, sg.physical_id, [], ssh + https,
                    has_default_egress=True)
    assert c.n == 3  # batch refused (InvalidPermission.Duplicate), then rule by rule
    http = canonical_rules([{"port_range_min": 80, "port_range_max": 80}])
    with Counted(adapter) as c:  # pretends port 80 is open: revoking it is refused
        apply_rules(adapter.client, REGION, sg.physical_id, ssh + https + http, [],
                    has_default_egress=True)
    assert c.n == 4  # batch refused (InvalidPermission.NotFound), then rule by rule
    [found] = adapter.discover(REGION, frozenset({SECURITY_GROUP}), STACK)
    assert found.properties["rules"] == []


def test_security_group_without_rules_is_one_call_plus_read(adapter: AwsAdapter) -> None:
    with Counted(adapter) as c:
        sg = create(adapter, REGION, SECURITY_GROUP, "sg", {})
    assert c.n == 2
    assert sg.properties == {"description": "", "rules": []}
    assert sg.spec_hash == "spec-1"


def test_security_group_create_adopts_its_own_leftover(adapter: AwsAdapter) -> None:
    """A crash after CreateSecurityGroup: the next create converges the same group."""
    first = create(adapter, REGION, SECURITY_GROUP, "sg", {})
    again = create(adapter, REGION, SECURITY_GROUP, "sg", {"rules": [{"port_range_min": 80,
                                                                    "port_range_max": 80}]},
                   spec="spec-2")
    assert again.physical_id == first.physical_id
    assert again.spec_hash == "spec-2" and len(again.properties["rules"]) == 1
    # ...but never another stack's group of the same name
    with pytest.raises(CloudError, match="Duplicate"):
        adapter.create(REGION, SECURITY_GROUP, stack="intruder", address="sg", name="web.sg",
                       properties={}, spec_hash="x", timeout=TIMEOUT)


class FakeTime:
    """An injected clock that only moves when the adapter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_delete_group_waits_out_dependency_violation(
        aws_reset: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # moto never answers DependencyViolation (it lets a group in use be deleted), so
    # the cloud's answer is injected at the adapter's raw-call boundary.
    fake = FakeTime()
    adapter = adapters.aws(aws_reset, sleep=fake.sleep, clock=fake.clock)
    sg = create(adapter, REGION, SECURITY_GROUP, "sg", {})
    real = adapter.client.ec2
    violations = {"left": 3}

    def ec2(region: str, action: str, params: Any = None, **kw: Any) -> Any:
        if action == "DeleteSecurityGroup" and violations["left"] > 0:
            violations["left"] -= 1
            raise CloudError(f"DependencyViolation: resource {sg.physical_id} has a dependent "
                             "object")
        return real(region, action, params, **kw)

    monkeypatch.setattr(adapter.client, "ec2", ec2)
    adapter.delete(sg, timeout=60.0)
    assert len(fake.sleeps) == 3 and fake.sleeps == sorted(fake.sleeps)  # growing interval
    assert adapter.discover(REGION, frozenset({SECURITY_GROUP}), STACK) == []

    sg2 = create(adapter, REGION, SECURITY_GROUP, "sg2", {})
    violations["left"] = 10**6
    with pytest.raises(ResourceTimeout) as info:
        adapter.delete(sg2, timeout=10.0)
    assert "DependencyViolation" in info.value.status
    assert "web.sg2" in info.value.message and "10s" in info.value.message
    assert fake.now >= 10.0 - 1e-9  # waited the whole timeout, on the injected clock
    assert max(fake.sleeps) <= 3.0  # the poll interval grows to a few seconds, no more


# --- floating IPs -------------------------------------------------------------------


def test_floating_ip_association(adapter: AwsAdapter) -> None:
    srv = create(adapter, REGION, SERVER, "app", server_props())
    other = create(adapter, REGION, SERVER, "app2", server_props())
    with Counted(adapter) as c:
        fip = create(adapter, REGION, FLOATING_IP, "ip", {})
    assert c.n == 2  # AllocateAddress (tagged atomically) + DescribeAddresses
    assert fip.physical_id.startswith("eipalloc-")
    assert fip.properties == {"server": None, "port": None} and fip.status == "allocated"
    ip = fip.attributes["floating_ip_address"]
    assert ip and fip.attributes["ip"] == ip

    fip = adapter.update(fip, {"server": srv.physical_id}, frozenset({"server"}), stack=STACK,
                         spec_hash="spec-2", timeout=TIMEOUT)
    assert fip.properties["server"] == srv.physical_id and fip.spec_hash == "spec-2"
    assert fip.properties["port"] == fip.attributes["port_id"]  # the server's interface
    assert fip.attributes["fixed_ip_address"] == srv.attributes["private_ip"]
    found = by_address(adapter.discover(REGION, frozenset({SERVER, FLOATING_IP}), STACK))
    assert found[(FLOATING_IP, "ip")] == fip
    assert found[(SERVER, "app")].attributes["public_ip"] == ip

    fip = adapter.update(fip, {"server": other.physical_id}, frozenset({"server"}), stack=STACK,
                         spec_hash="spec-3", timeout=TIMEOUT)
    assert fip.properties["server"] == other.physical_id
    fip = adapter.update(fip, {"server": None}, frozenset({"server"}), stack=STACK,
                         spec_hash="spec-4", timeout=TIMEOUT)
    assert fip.properties == {"server": None, "port": None} and fip.status == "allocated"

    assoc = create(adapter, REGION, FLOATING_IP, "ip2", {"server": srv.physical_id})
    assert assoc.properties["server"] == srv.physical_id and assoc.spec_hash == "spec-1"
    adapter.delete(assoc, timeout=TIMEOUT)  # disassociates, then releases
    adapter.delete(fip, timeout=TIMEOUT)
    assert adapter.discover(REGION, frozenset({FLOATING_IP}), STACK) == []


# --- networks, subnets, ports --------------------------------------------------------

NET_KINDS = frozenset({NETWORK, SUBNET, PORT})


def internet(adapter: AwsAdapter, vpc: str) -> LiveResource:
    """A router with an internet gateway for ``vpc``: AWS associates an elastic IP in a
    VPC only when it has one (``Gateway.NotAttached`` otherwise)."""
    return create(adapter, REGION, ROUTER, "router",
                  {"network": vpc, "external_gateway_info": {"network": "public"}})


def vpc_group(adapter: AwsAdapter, vpc: str, name: str) -> str:
    """A security group inside ``vpc``, made directly (not through the kind)."""
    obj = adapter.client.ec2(REGION, "CreateSecurityGroup", {"GroupName": name,
                                                       "GroupDescription": name, "VpcId": vpc})
    return next(el.text for el in obj.iter() if el.tag.endswith("groupId") and el.text)


def test_network_subnet_port_lifecycle(adapter: AwsAdapter) -> None:
    with Counted(adapter) as c:
        net = create(adapter, REGION, NETWORK, "net",
                     {"cidr": "10.1.0.0/16", "admin_state_up": True})
    assert c.n == 2  # CreateVpc (tagged atomically) + DescribeVpcs
    assert net.physical_id.startswith("vpc-") and net.status == "available"
    assert net.properties == {"cidr": "10.1.0.0/16", "admin_state_up": True}
    assert net.attributes == {"name": "web.net", "id": net.physical_id, "status": "available"}
    assert net.spec_hash == "spec-1"
    vpc = net.physical_id

    with Counted(adapter) as c:
        sub = create(adapter, REGION, SUBNET, "sub", {"network": vpc, "cidr": "10.1.2.0/24",
                                              "ip_version": 4, "enable_dhcp": True,
                                              "dns_nameservers": ["8.8.8.8"]})
    assert c.n == 2  # CreateSubnet (tagged atomically) + DescribeSubnets
    assert sub.properties == {"network": vpc, "cidr": "10.1.2.0/24", "ip_version": 4,
                              "availability_zone": "us-east-1a"}  # dhcp/dns: last-applied
    assert sub.attributes == {"name": "web.sub", "cidr": "10.1.2.0/24",
                              "gateway_ip": "10.1.2.1", "network_id": vpc}
    other = create(adapter, REGION, SUBNET, "sub-b", {"network": vpc, "cidr": "10.1.3.0/24",
                                              "availability_zone": "us-east-1b"})
    assert other.properties["availability_zone"] == "us-east-1b"

    sg1, sg2 = vpc_group(adapter, vpc, "one"), vpc_group(adapter, vpc, "two")
    with Counted(adapter) as c:
        port = create(adapter, REGION, PORT, "port", {
            "network": vpc, "fixed_ips": [{"subnet": sub.physical_id, "ip_address": "10.1.2.50"}],
            "security_groups": [sg2, sg1]})
    assert c.n == 2  # CreateNetworkInterface (tagged atomically) + DescribeNetworkInterfaces
    assert port.physical_id.startswith("eni-") and port.status == "available"
    assert port.properties == {
        "network": vpc, "fixed_ips": [{"ip_address": "10.1.2.50", "subnet": sub.physical_id}],
        "security_groups": sorted([sg1, sg2]), "admin_state_up": True}
    assert port.attributes["fixed_ips"] == [{"subnet_id": sub.physical_id,
                                             "ip_address": "10.1.2.50"}]
    assert port.attributes["ip_address"] == "10.1.2.50"
    assert port.attributes["mac_address"] and port.attributes["network_id"] == vpc
    assert port.attributes["status"] == "available" and port.attributes["name"] == "web.port"

    # no subnet given: the network's first subnet in {region}a; only the template's keys
    with Counted(adapter) as c:
        bare = create(adapter, REGION, PORT, "bare", {"network": vpc})
    assert c.n == 3  # + DescribeSubnets
    assert bare.properties["fixed_ips"] == [] and bare.properties["security_groups"] == []
    assert bare.attributes["fixed_ips"][0]["subnet_id"] == sub.physical_id
    # an address alone picks the subnet holding it, in any zone
    by_ip = create(adapter, REGION, PORT, "by-ip", {"network": vpc,
                                                     "fixed_ips": [{"ip_address": "10.1.3.9"}]})
    assert by_ip.properties["fixed_ips"] == [{"ip_address": "10.1.3.9"}]
    assert by_ip.attributes["fixed_ips"][0]["subnet_id"] == other.physical_id

    with Counted(adapter) as c:
        found = by_address(adapter.discover(REGION, NET_KINDS, STACK))
    assert c.n == 3  # DescribeVpcs, DescribeSubnets, DescribeNetworkInterfaces
    assert found == {(NETWORK, "net"): net, (SUBNET, "sub"): sub, (SUBNET, "sub-b"): other,
                     (PORT, "port"): port, (PORT, "bare"): bare, (PORT, "by-ip"): by_ip}

    # security groups change in place; none means the VPC's default group again
    with Counted(adapter) as c:
        moved = adapter.update(port, {"security_groups": [sg1]},
                               frozenset({"security_groups"}), stack=STACK, spec_hash="spec-2",
                               timeout=TIMEOUT)
    assert c.n == 3  # ModifyNetworkInterfaceAttribute, CreateTags (spec), Describe
    assert moved.physical_id == port.physical_id
    assert moved.properties["security_groups"] == [sg1] and moved.spec_hash == "spec-2"
    cleared = adapter.update(moved, {"security_groups": []}, frozenset({"security_groups"}),
                             stack=STACK, spec_hash="spec-3", timeout=TIMEOUT)
    assert cleared.properties["security_groups"] == []
    net2 = adapter.update(net, {"admin_state_up": True}, frozenset({"admin_state_up"}),
                          stack=STACK, spec_hash="spec-2", timeout=TIMEOUT)
    assert net2.spec_hash == "spec-2"
    with pytest.raises(CloudError, match="administratively down"):
        adapter.update(net2, {"admin_state_up": False}, frozenset({"admin_state_up"}),
                       stack=STACK, spec_hash="x", timeout=TIMEOUT)
    with pytest.raises(CloudError, match="replaced"):
        adapter.update(sub, {"cidr": "10.1.9.0/24"}, frozenset({"cidr"}), stack=STACK,
                       spec_hash="x", timeout=TIMEOUT)

    for live in (cleared, bare, by_ip, sub, other):
        adapter.delete(live, timeout=TIMEOUT)
    for gid in (sg1, sg2):
        adapter.client.ec2(REGION, "DeleteSecurityGroup", {"GroupId": gid})
    adapter.delete(net, timeout=TIMEOUT)
    assert adapter.discover(REGION, NET_KINDS, STACK) == []


def test_network_errors_are_permanent_and_clear(adapter: AwsAdapter) -> None:
    with pytest.raises(CloudError, match="IPv4 subnets only") as info:
        create(adapter, REGION, SUBNET, "v6",
               {"network": "vpc-1", "cidr": "fd00::/64", "ip_version": 6})
    assert info.value.permanent and adapter.request_count() == 0
    net = create(adapter, REGION, NETWORK, "net", {"cidr": "10.2.0.0/16"})
    with pytest.raises(CloudError) as info:
        create(adapter, REGION, PORT, "port", {"network": net.physical_id})
    assert info.value.permanent
    assert info.value.message == (f"network {net.physical_id} has no subnet in zone us-east-1a: "
                                  "add a Cloud::Network::Subnet")
    with pytest.raises(CloudError, match="at most one fixed_ips entry"):
        create(adapter, REGION, PORT, "port", {"network": net.physical_id,
                                               "fixed_ips": [{"subnet": "a"}, {"subnet": "b"}]})
    # a subnet of another network: the interface is removed again
    mine = create(adapter, REGION, SUBNET, "sub",
                  {"network": net.physical_id, "cidr": "10.2.1.0/24"})
    other = create(adapter, REGION, NETWORK, "other", {"cidr": "10.3.0.0/16"})
    with pytest.raises(CloudError, match="is not in network"):
        create(adapter, REGION, PORT, "port", {"network": other.physical_id,
                                               "fixed_ips": [{"subnet": mine.physical_id}]})
    assert adapter.discover(REGION, frozenset({PORT}), STACK) == []
    with pytest.raises(CloudError, match="no subnet in zone us-east-1a"):
        create(adapter, REGION, SERVER, "srv",
               server_props(networks=[{"network": other.physical_id}]))
    with pytest.raises(CloudError, match="the aws provider takes"):
        create(adapter, REGION, SERVER, "srv", server_props(networks=[{"uuid": "x"}]))


def test_network_delete_waits_out_dependency_violation(aws_reset: dict[str, Any]) -> None:
    fake = FakeTime()
    adapter = adapters.aws(aws_reset, sleep=fake.sleep, clock=fake.clock)
    net = create(adapter, REGION, NETWORK, "net", {})
    sub = create(adapter, REGION, SUBNET, "sub",
                 {"network": net.physical_id, "cidr": "10.0.1.0/24"})
    with pytest.raises(ResourceTimeout) as info:  # moto: a VPC with a subnet is in use
        adapter.delete(net, timeout=5.0)
    assert info.value.status == "in use (DependencyViolation)"
    assert "network web.net" in info.value.message and fake.now >= 5.0 - 1e-9
    adapter.delete(sub, timeout=TIMEOUT)
    with Counted(adapter) as c:
        adapter.delete(net, timeout=TIMEOUT)
    assert c.n == 1
    assert adapter.discover(REGION, NET_KINDS, STACK) == []


def test_server_on_a_port_in_a_new_vpc_with_an_elastic_ip(adapter: AwsAdapter) -> None:
    net = create(adapter, REGION, NETWORK, "net", {"cidr": "10.4.0.0/16"})
    sub = create(adapter, REGION, SUBNET, "sub",
                 {"network": net.physical_id, "cidr": "10.4.1.0/24"})
    sg = vpc_group(adapter, net.physical_id, "web")
    router = internet(adapter, net.physical_id)  # AWS: no elastic IP in a VPC without
    port = create(adapter, REGION, PORT, "port",
                  {"network": net.physical_id, "security_groups": [sg],
                   "fixed_ips": [{"subnet": sub.physical_id, "ip_address": "10.4.1.10"}]})
    with Counted(adapter) as c:
        srv = create(adapter, REGION, SERVER, "app",
                     server_props(networks=[{"port": port.physical_id}]))
    assert c.n == 2  # RunInstances (raw: libcloud cannot launch on an interface) + Describe
    assert srv.properties["networks"] == [{"port": port.physical_id}]
    assert srv.properties["security_groups"] == []  # the port's groups are the port's
    assert srv.attributes["networks"] == {net.physical_id: ["10.4.1.10"],
                                          sub.physical_id: ["10.4.1.10"]}
    assert srv.attributes["private_ip"] == "10.4.1.10"

    with Counted(adapter) as c:
        fip = create(adapter, REGION, FLOATING_IP, "ip", {"port": port.physical_id,
                                                          "floating_network": "public"})
    assert c.n == 4  # AllocateAddress, AssociateAddress, CreateTags (spec), Describe
    assert fip.properties["port"] == port.physical_id and fip.spec_hash == "spec-1"
    assert fip.attributes["port_id"] == port.physical_id
    assert fip.attributes["fixed_ip_address"] == "10.4.1.10"
    assert "floating_network" not in fip.properties

    found = by_address(adapter.discover(REGION, KINDS, STACK))
    assert found[(SERVER, "app")].properties == srv.properties  # no spurious diff
    assert found[(FLOATING_IP, "ip")] == fip
    assert found[(SERVER, "app")].attributes["public_ip"] == fip.attributes["ip"]
    [on_port] = [r for r in found.values() if r.kind == PORT]
    assert on_port.status == "in-use" and on_port.properties == port.properties

    # a port cannot take the server's groups
    with pytest.raises(CloudError, match="from the port"):
        create(adapter, REGION, SERVER, "bad", server_props(networks=[{"port": port.physical_id}],
                                                            security_groups=[sg]))

    for live in (fip, srv, port, router, sub, net):  # the engine's order: highest first
        adapter.delete(live, timeout=TIMEOUT)
    adapter.client.ec2(REGION, "DeleteSecurityGroup", {"GroupId": sg})
    assert adapter.discover(REGION, KINDS, STACK) == []


def test_server_on_networks_and_subnets(adapter: AwsAdapter) -> None:
    net = create(adapter, REGION, NETWORK, "net", {"cidr": "10.5.0.0/16"})
    sub_a = create(adapter, REGION, SUBNET, "a",
                   {"network": net.physical_id, "cidr": "10.5.1.0/24"})
    sub_b = create(adapter, REGION, SUBNET, "b",
                   {"network": net.physical_id, "cidr": "10.5.2.0/24"})
    sg = vpc_group(adapter, net.physical_id, "web")
    networks = [{"network": net.physical_id, "fixed_ip": "10.5.2.7"},
                {"subnet": sub_a.physical_id}]
    with Counted(adapter) as c:
        srv = create(adapter, REGION, SERVER, "app", server_props(networks=networks,
                                                                  security_groups=[sg]))
    assert c.n == 3  # DescribeSubnets (network → subnet), RunInstances, DescribeInstances
    assert srv.properties["networks"] == networks  # the template's shape, live values
    assert srv.properties["security_groups"] == [sg]
    ips = srv.attributes["networks"][net.physical_id]
    assert ips[0] == "10.5.2.7" and len(ips) == 2  # device 0 in the subnet holding it
    [found] = adapter.discover(REGION, frozenset({SERVER}), STACK)
    assert found == srv
    adapter.delete(srv, timeout=TIMEOUT)
    # interfaces made for the server go with it: the subnets and network can go
    for live in (sub_a, sub_b):
        adapter.delete(live, timeout=TIMEOUT)
    adapter.client.ec2(REGION, "DeleteSecurityGroup", {"GroupId": sg})
    adapter.delete(net, timeout=TIMEOUT)
    assert adapter.discover(REGION, KINDS, STACK) == []


def test_floating_ip_moves_from_server_to_port(adapter: AwsAdapter) -> None:
    srv = create(adapter, REGION, SERVER, "app", server_props())
    fip = create(adapter, REGION, FLOATING_IP, "ip", {"server": srv.physical_id})
    net = create(adapter, REGION, NETWORK, "net", {})
    create(adapter, REGION, SUBNET, "sub", {"network": net.physical_id, "cidr": "10.0.1.0/24"})
    router = internet(adapter, net.physical_id)  # AWS: no elastic IP in a VPC without
    port = create(adapter, REGION, PORT, "port", {"network": net.physical_id})
    moved = adapter.update(fip, {"port": port.physical_id}, frozenset({"port"}), stack=STACK,
                           spec_hash="spec-2", timeout=TIMEOUT)
    assert moved.properties == {"server": None, "port": port.physical_id}
    assert moved.attributes["fixed_ip_address"] == port.attributes["ip_address"]
    with pytest.raises(CloudError, match="not both"):
        create(adapter, REGION, FLOATING_IP, "ip2", {"server": srv.physical_id,
                                                    "port": port.physical_id})
    adapter.delete(moved, timeout=TIMEOUT)
    adapter.delete(port, timeout=TIMEOUT)
    adapter.delete(router, timeout=TIMEOUT)
    assert adapter.discover(REGION, frozenset({FLOATING_IP, PORT}), STACK) == []


# --- IPv6 and group-to-group rules -----------------------------------------------------


def test_ipv6_and_group_rules_round_trip_without_a_diff(adapter: AwsAdapter) -> None:
    peer = create(adapter, REGION, SECURITY_GROUP, "peer", {})
    rules = [
        {"ethertype": "IPv6", "protocol": "tcp", "port_range_min": 443, "port_range_max": 443},
        {"ethertype": "IPv6", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
         "remote_ip_prefix": "2001:db8::/32"},
        {"protocol": "tcp", "port_range_min": 5432, "port_range_max": 5432,
         "remote_group_id": peer.physical_id},
        {"direction": "egress", "protocol": "udp", "port_range_min": 53,
         "port_range_max": 53, "remote_group_id": peer.physical_id},
    ]
    with Counted(adapter) as c:
        sg = create(adapter, REGION, SECURITY_GROUP, "sg", {"rules": rules})
    # Create, AuthorizeIngress (3 rules, one call), RevokeEgress (default), AuthorizeEgress,
    # CreateTags (spec), Describe
    assert c.n == 6
    assert sg.properties["rules"] == canonical_rules(rules)
    [found] = [r for r in adapter.discover(REGION, frozenset({SECURITY_GROUP}), STACK)
               if r.address == "sg"]
    assert found.properties["rules"] == canonical_rules(rules)  # a re-plan shows no change

    fewer = [rules[0], rules[2]]
    new = adapter.update(sg, {"rules": fewer}, frozenset({"rules"}), stack=STACK,
                         spec_hash="spec-2", timeout=TIMEOUT)
    assert new.properties["rules"] == canonical_rules(fewer)  # default egress is back
    with pytest.raises(CloudError, match="covers IPv4 and IPv6"):
        create(adapter, REGION, SECURITY_GROUP, "bad", {"rules": [
            {"ethertype": "IPv6", "remote_group_id": peer.physical_id}]})
    for live in (new, peer):
        adapter.delete(live, timeout=TIMEOUT)


# --- choices --------------------------------------------------------------------------


def test_lookup_choice(adapter: AwsAdapter) -> None:
    with Counted(adapter) as c:
        assert adapter.lookup_choice(REGION, "flavor", "t3.micro") == Choice("t3.micro")
        offered = adapter.lookup_choice(REGION, "flavor", "t9.colossal")
    assert c.n == 0  # libcloud's built-in instance type data
    assert offered.canonical is None
    assert "t3.micro" in offered.offered and list(offered.offered) == sorted(offered.offered)
    with Counted(adapter) as c:
        assert adapter.lookup_choice(REGION, "image", ubuntu()) == Choice(ubuntu())
        assert adapter.lookup_choice(REGION, "image", "ami-00000000deadbeef0") == Choice(None)
    assert c.n == 2  # one DescribeImages each
    obj = adapter.client.ec2(REGION, "DescribeImages", {"ImageId.1": ubuntu()})
    name = next(el.text for el in obj.iter() if el.tag.endswith("}name") and el.text)
    with Counted(adapter) as c:
        # the form discovery reports: an image named by name is its id
        assert adapter.lookup_choice(REGION, "image", name) == Choice(ubuntu())
        assert adapter.lookup_choice(REGION, "image", "no-such-image-name") == Choice(None)
    assert c.n == 2
    with Counted(adapter) as c:  # one address pool: a Heat template's "public" is fine
        assert adapter.lookup_choice(REGION, "network", "public") == Choice("public")
    assert c.n == 0
    create(adapter, REGION, KEYPAIR, "key", {"public_key": public_key()})
    with Counted(adapter) as c:
        assert adapter.lookup_choice(REGION, "keypair", "web.key") == Choice("web.key")
    assert c.n == 1  # DescribeKeyPairs by name
    with Counted(adapter) as c:
        assert adapter.lookup_choice(REGION, "keypair", "ops") == Choice(None, ("web.key",))
    assert c.n == 2  # not found by name, then the names listed


def test_find_image_by_catalog_filter(adapter: AwsAdapter) -> None:
    for name, entry in CATALOG["images"].items():
        with Counted(adapter) as c:
            found = adapter.find_image(REGION, ImageFilter(entry["name"], (entry["owner"],)))
        assert found == Choice(AMIS[(REGION, name)]), name
        assert c.n == 1  # one DescribeImages: Owner.1 and the name and state filters
    amzn = CATALOG["images"]["amazon-linux-2"]["name"]
    # the owner narrows: Canonical publishes no Amazon Linux
    assert adapter.find_image(REGION, ImageFilter(amzn, ("099720109477",))) == Choice(None)
    assert adapter.find_image(REGION, ImageFilter("no-such-image-*", ("amazon",))) == Choice(None)
    # the newest creationDate wins, whatever the names say (moto stamps to the second)
    srv = create(adapter, REGION, SERVER, "app", server_props())
    older = adapter.client.ec2(REGION, "CreateImage", {"InstanceId": srv.physical_id,
                                                "Name": "ct-image-b"})
    time.sleep(1.1)
    newer = adapter.client.ec2(REGION, "CreateImage", {"InstanceId": srv.physical_id,
                                                "Name": "ct-image-a"})
    ids = [next(el.text for el in obj.iter() if el.tag.endswith("}imageId"))
           for obj in (older, newer)]
    assert adapter.find_image(REGION, ImageFilter("ct-image-?", ("self",))) == Choice(ids[1])
    assert adapter.find_image(REGION, ImageFilter("ct-image-b", ("self",))) == Choice(ids[0])
    assert adapter.lookup_choice(REGION, "image", "ct-image-*") == Choice(ids[1])  # by name


# --- key pairs ----------------------------------------------------------------------


def test_key_pair_lifecycle(adapter: AwsAdapter) -> None:
    pub = public_key()
    with Counted(adapter) as c:
        kp = create(adapter, REGION, KEYPAIR, "key", {"public_key": pub})
    assert c.n == 1  # ImportKeyPair, tags included
    assert kp.physical_id == "web.key" and kp.properties == {}
    assert kp.attributes["name"] == "web.key" and kp.attributes["fingerprint"]
    assert kp.attributes["public_key"] == pub
    [found] = adapter.discover(REGION, frozenset({KEYPAIR}), STACK)
    assert found.physical_id == "web.key" and found.spec_hash == "spec-1"
    assert found.attributes["fingerprint"] == kp.attributes["fingerprint"]
    # the same key again (a retried create) is adopted; a different key is refused
    assert create(adapter, REGION, KEYPAIR, "key", {"public_key": pub}).physical_id == "web.key"
    with pytest.raises(CloudError, match="Duplicate"):
        create(adapter, REGION, KEYPAIR, "key", {"public_key": public_key()})
    adapter.delete(kp, timeout=TIMEOUT)
    assert adapter.discover(REGION, frozenset({KEYPAIR}), STACK) == []


def test_key_pair_needs_a_public_key(adapter: AwsAdapter) -> None:
    with pytest.raises(CloudError, match="public_key is required"):
        create(adapter, REGION, KEYPAIR, "key", {})


# --- scale and request counting -------------------------------------------------------


def test_discover_150_servers_in_one_request(aws_reset: dict[str, Any]) -> None:
    creator = adapters.aws(aws_reset)

    def make(i: int) -> Any:
        return create(creator, REGION, SERVER, f"node[{i}]", server_props(metadata={"i": str(i)}))

    # ten threads at once: one driver per thread, one shared counter
    with ThreadPoolExecutor(max_workers=10) as pool:
        made = list(pool.map(make, range(150)))
    assert len({s.physical_id for s in made}) == 150
    assert creator.request_count() == 300  # RunInstances + DescribeInstances each
    create(creator, REGION, SERVER, "app", server_props(), stack="other")

    fresh = adapters.aws(aws_reset)
    before = sandbox_requests(aws_reset)
    found = fresh.discover(REGION, frozenset({SERVER}), STACK)
    assert len(found) == 150
    assert {r.address for r in found} == {f"node[{i}]" for i in range(150)}
    assert fresh.request_count() == 1  # one DescribeInstances, MaxResults=1000
    assert sandbox_requests(aws_reset) - before == 1  # the server saw exactly that

    # smaller pages: every NextToken is followed
    paged = adapters.aws(aws_reset, page_size=50)
    assert len(paged.discover(REGION, frozenset({SERVER}), STACK)) == 150
    assert paged.request_count() == 3

    everything = adapters.aws(aws_reset)
    assert len(everything.discover(REGION, KINDS, STACK)) == 150
    assert everything.request_count() == 8  # one per API, in parallel threads


def test_request_count_matches_the_sandbox(aws_reset: dict[str, Any]) -> None:
    adapter = adapters.aws(aws_reset)
    before = sandbox_requests(aws_reset)
    srv = create(adapter, REGION, SERVER, "app", server_props())
    vol = create(adapter, REGION, VOLUME, "data", {"size": 1})
    att = create(adapter, REGION, ATTACHMENT, "att", {"volume_id": vol.physical_id,
                                                      "instance_uuid": srv.physical_id})
    adapter.discover(REGION, KINDS, STACK)
    adapter.delete(att, timeout=TIMEOUT)
    adapter.delete(vol, timeout=TIMEOUT)
    adapter.delete(srv, timeout=TIMEOUT)
    assert adapter.request_count() == sandbox_requests(aws_reset) - before
    assert adapter.request_count() > 0


# --- credentials and configuration (no network) ---------------------------------------


def _target(sandbox: bool = False, **options: Any) -> Target:
    return Target(name="aws-eu", type="aws", region="eu-central-1", options=options,
                  sandbox=sandbox)


def _fail(fn: Callable[[], Any]) -> CloudError:
    with pytest.raises(CloudError) as info:
        fn()
    return info.value


@pytest.fixture
def aws_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME and no AWS_* variables: botocore's chain reads the environment."""
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254
    return tmp_path


def test_missing_credentials_is_a_clear_error(aws_home: Path) -> None:
    adapter = AwsAdapter(_target())
    err = _fail(lambda: adapter.discover("eu-central-1", KINDS, STACK))
    assert err.permanent
    assert "no AWS credentials for target 'aws-eu'" in err.message
    assert "AWS_ACCESS_KEY_ID" in err.message and str(aws_home / ".aws") in err.message
    assert adapter.request_count() == 0


def test_secrets_in_options_are_ignored_outside_the_sandbox(aws_home: Path) -> None:
    adapter = AwsAdapter(_target(access_key="AK", secret_key="SK"))
    err = _fail(lambda: adapter.discover("eu-central-1", KINDS, STACK))
    assert "only for sandbox targets" in err.message


def test_credentials_from_env_and_profiles(aws_home: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    creds = aws_home / "creds"
    creds.write_text("[default]\naws_access_key_id = D1\naws_secret_access_key = D2\n"
                     "[ci]\naws_access_key_id = C1\naws_secret_access_key = C2\n"
                     "aws_session_token = C3\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))

    def creds_of(target: Target, env: dict[str, str]) -> tuple[str, str, str | None]:
        with monkeypatch.context() as m:
            for key, value in env.items():
                m.setenv(key, value)
            c = AwsAdapter(target).client.credentials()
        assert "C2" not in repr(c) and "D2" not in repr(c)  # secrets never in a repr
        return c.key, c.secret, c.token

    env_creds = {"AWS_ACCESS_KEY_ID": "E1", "AWS_SECRET_ACCESS_KEY": "E2",
                 "AWS_SESSION_TOKEN": "E3"}
    assert creds_of(_target(), env_creds) == ("E1", "E2", "E3")
    assert creds_of(_target(), {}) == ("D1", "D2", None)
    assert creds_of(_target(), {"AWS_PROFILE": "ci"}) == ("C1", "C2", "C3")
    # an explicit profile in cloudtmpl.yaml wins over environment keys
    assert creds_of(_target(profile="ci"), env_creds) == ("C1", "C2", "C3")
    err = _fail(lambda: creds_of(_target(profile="nope"), {}))
    assert "[nope]" in err.message and str(creds) in err.message
    half = {"AWS_ACCESS_KEY_ID": "E1"}
    assert "together" in _fail(lambda: creds_of(_target(), half)).message


def test_bad_endpoint_and_region_are_clear_errors(aws_sandbox: dict[str, Any]) -> None:
    err = _fail(lambda: AwsAdapter(_target(endpoint="ftp://x")))
    assert "not an http(s) URL" in err.message
    adapter = adapters.aws(aws_sandbox)
    err = _fail(lambda: adapter.discover("mars-north-1", KINDS, STACK))
    assert "mars-north-1" in err.message


def test_unreachable_endpoint_is_a_transient_error() -> None:
    target = _target(sandbox=True, endpoint="http://127.0.0.1:9", access_key="a",
                     secret_key="b")
    slept: list[float] = []
    adapter = AwsAdapter(target, sleep=slept.append)
    err = _fail(lambda: adapter.discover("eu-central-1", frozenset({SERVER}), STACK))
    assert not err.permanent
    assert "cannot reach 127.0.0.1" in err.message
    attempts = SANDBOX_POLICY.max_attempts  # every attempt is a counted request
    assert adapter.request_count() == attempts and len(slept) == attempts - 1
