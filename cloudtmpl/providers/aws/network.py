"""Networks, subnets and ports on AWS: VPCs, VPC subnets and elastic network interfaces.

* ``Cloud::Network::Network`` - a VPC (``cidr``); ``admin_state_up`` is always True
  (false is refused: a VPC cannot be down).  A VPC gets an internet gateway from a
  ``Cloud::Network::Router`` with ``external_gateway_info`` (:mod:`.routing`): an
  elastic IP on an interface of a VPC without one is refused (``Gateway.NotAttached``,
  passed through).
* ``Cloud::Network::Subnet`` - a VPC subnet (IPv4 only; zone default ``{region}a``).
  ``enable_dhcp``/``gateway_ip``/``dns_nameservers`` mean nothing per EC2 subnet:
  they are accepted, not sent and not reported (the plan compares them with the
  last-applied spec); attribute ``gateway_ip`` is the first usable address (EC2's
  router).
* ``Cloud::Network::Port`` - an elastic network interface.  ``fixed_ips`` takes at
  most one entry ``{subnet, ip_address}`` (the subnet default: the network's first
  subnet by id in ``{region}a``, or the one holding ``ip_address``); a subnet of
  another network is refused (the interface is deleted again).  ``security_groups``
  change in place (ModifyNetworkInterfaceAttribute; none = the VPC's default group).
  ``cloudtmpl:shape`` records which keys the ``fixed_ips`` entries used.

Deletes wait while the cloud says "in use": VPCs and subnets while
``DependencyViolation``, interfaces while ``InvalidNetworkInterface.InUse`` (a
secondary attachment is detached first; a primary one goes with its server).
"""

from __future__ import annotations

import ipaddress
import uuid
import xml.etree.ElementTree as ET
from typing import Any

from cloudtmpl.model import TAG_SPEC, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.aws.raw import (
    RawHandler,
    check_admin_state,
    create_tagged,
    get_raw,
    live_of,
)
from cloudtmpl.providers.base import NETWORK, PORT, SUBNET, CloudError


def pick_subnet(client: AwsClient, region: str, vpc_id: str, zone: str | None,
                ip: str | None = None) -> str:
    """The network's first subnet (by id) in ``zone`` (and holding ``ip``)."""
    named: dict[str, str] = {"vpc-id": vpc_id}
    if zone:
        named["availability-zone"] = zone
    obj = client.ec2(region, "DescribeSubnets", ec2.filters(named))
    try:
        wanted = ipaddress.ip_address(ip) if ip else None
    except ValueError:
        raise CloudError(f"{ip!r} is not an IP address", permanent=True) from None
    for el in sorted(ec2.items(obj, "subnetSet/item"),
                     key=lambda e: ec2.text(e, "subnetId") or ""):
        cidr = ec2.text(el, "cidrBlock")
        if wanted is None or (cidr and wanted in ipaddress.ip_network(cidr, strict=False)):
            return ec2.text(el, "subnetId") or ""
    where = " ".join(filter(None, (f"in zone {zone}" if zone else "",
                                   f"holding {ip}" if ip else "")))
    raise CloudError(f"network {vpc_id} has no subnet {where}: add a "
                     "Cloud::Network::Subnet", permanent=True)


class _Tagged(RawHandler):
    """Network, subnet, port: an update changes only what the kind lets change, then
    the spec tag."""

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        region = live.placement.region
        self.change(client, live, change)
        client.create_tags(region, live.physical_id, {TAG_SPEC: change.spec_hash})
        return self.refresh(client, region, live.address, live.physical_id)

    def change(self, client: AwsClient, live: LiveResource, change: kit.Change) -> None:
        """Nothing of an EC2 subnet changes: its in-place properties mean nothing to EC2."""


class Network(_Tagged):
    kind = NETWORK
    listings = ("vpcs",)

    def live(self, client: AwsClient, region: str, address: str,
             el: ET.Element) -> LiveResource:
        status = ec2.text(el, "state") or ""
        return live_of(client, region, NETWORK, address, el, status,
                       {"cidr": ec2.text(el, "cidrBlock"), "admin_state_up": True},
                       {"id": ec2.text(el, "vpcId"), "status": status})

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        check_admin_state(want.properties, f"network {want.name}")
        vpc_id = create_tagged(
            client, region, NETWORK, want.stack, want.address, "CreateVpc",
            {"CidrBlock": str(want.properties.get("cidr") or "10.0.0.0/16")},
            ec2.identity_tags(want.name, want.stack, want.address, want.spec_hash))
        return self.wait_ready(client, region, want.address, vpc_id, want.timeout)

    def change(self, client: AwsClient, live: LiveResource, change: kit.Change) -> None:
        check_admin_state(change.properties, f"{live.kind} {live.address}")


class Subnet(_Tagged):
    kind = SUBNET
    listings = ("subnets",)

    def live(self, client: AwsClient, region: str, address: str,
             el: ET.Element) -> LiveResource:
        cidr = ec2.text(el, "cidrBlock")
        gateway = None
        if cidr:  # EC2's router is the first usable address of every subnet
            gateway = str(ipaddress.ip_network(cidr, strict=False).network_address + 1)
        vpc = ec2.text(el, "vpcId")
        return live_of(client, region, SUBNET, address, el, ec2.text(el, "state") or "",
                       {"network": vpc, "cidr": cidr, "ip_version": 4,
                        "availability_zone": ec2.text(el, "availabilityZone")},
                       {"cidr": cidr, "gateway_ip": gateway, "network_id": vpc})

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        props, name = want.properties, want.name
        if str(props.get("ip_version") or 4) != "4":
            raise CloudError(f"subnet {name}: the aws provider makes IPv4 subnets only "
                             "(ip_version: 4)", permanent=True)
        if not props.get("network") or not props.get("cidr"):
            raise CloudError(f"subnet {name} needs network and cidr", permanent=True)
        # enable_dhcp, gateway_ip, dns_nameservers: EC2 always serves DHCP, its router
        # is the first usable address, DNS servers are set per VPC: nothing to send.
        subnet_id = create_tagged(
            client, region, SUBNET, want.stack, want.address, "CreateSubnet",
            {"VpcId": str(props["network"]), "CidrBlock": str(props["cidr"]),
             "AvailabilityZone": str(props.get("availability_zone") or f"{region}a")},
            ec2.identity_tags(name, want.stack, want.address, want.spec_hash))
        return self.wait_ready(client, region, want.address, subnet_id, want.timeout)


class Port(_Tagged):
    kind = PORT
    listings = ("interfaces",)
    busy = ("InvalidNetworkInterface.InUse",)

    def live(self, client: AwsClient, region: str, address: str,
             el: ET.Element) -> LiveResource:
        status = ec2.text(el, "status") or ""
        vpc = ec2.text(el, "vpcId")
        subnet = ec2.text(el, "subnetId")
        ip = ec2.text(el, "privateIpAddress")
        live_values = {"subnet": subnet, "ip_address": ip}
        properties: dict[str, Any] = {
            "network": vpc,
            "security_groups": ec2.own_groups([(ec2.text(g, "groupId") or "",
                                                ec2.text(g, "groupName") or "")
                                               for g in ec2.items(el, "groupSet/item")]),
            "admin_state_up": True,
        }
        keys_of = ec2.unshape(ec2.tags_of(el))
        if keys_of is not None:
            properties["fixed_ips"] = [{k: live_values.get(k) for k in keys}
                                       for keys in keys_of]
        return live_of(client, region, PORT, address, el, status, properties, {
            "fixed_ips": [{"subnet_id": subnet, "ip_address": ip}],
            "ip_address": ip,
            "mac_address": ec2.text(el, "macAddress"),
            "network_id": vpc,
            "status": status,
        })

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        props, name = want.properties, want.name
        check_admin_state(props, f"port {name}")
        network = str(props.get("network") or "")
        if not network:
            raise CloudError(f"port {name} needs network", permanent=True)
        fixed = ec2.entries(props.get("fixed_ips"), ("subnet", "ip_address"), "fixed_ips")
        if len(fixed) > 1:
            raise CloudError(f"port {name}: an AWS network interface has one subnet and "
                             "cloudtmpl sets its one primary address: give at most one "
                             "fixed_ips entry", permanent=True)
        entry = fixed[0] if fixed else {}
        ip = entry.get("ip_address")
        subnet = entry.get("subnet") or pick_subnet(
            client, region, network, None if ip else f"{region}a", ip)
        params = {"SubnetId": subnet, "ClientToken": uuid.uuid4().hex}
        if ip:
            params["PrivateIpAddress"] = ip
        for i, group in enumerate(props.get("security_groups") or [], 1):
            params[f"SecurityGroupId.{i}"] = str(group)
        tags = {**ec2.identity_tags(name, want.stack, want.address, want.spec_hash),
                ec2.TAG_SHAPE: ec2.shape(fixed)}
        eni = create_tagged(client, region, PORT, want.stack, want.address,
                            "CreateNetworkInterface", params, tags)
        live = self.wait_ready(client, region, want.address, eni, want.timeout)
        if live.properties["network"] != network:
            client.ec2(region, "DeleteNetworkInterface", {"NetworkInterfaceId": eni})
            raise CloudError(f"port {name}: subnet {subnet} is not in network {network}",
                             permanent=True)
        return live

    def change(self, client: AwsClient, live: LiveResource, change: kit.Change) -> None:
        check_admin_state(change.properties, f"{live.kind} {live.address}")
        if "security_groups" in change.changed:
            groups = [str(g) for g in change.properties.get("security_groups") or []]
            self._set_groups(client, live, groups)

    @staticmethod
    def _set_groups(client: AwsClient, live: LiveResource, groups: list[str]) -> None:
        """An interface always has a group: none means its VPC's default group again."""
        region = live.placement.region
        if not groups:
            vpc = str(live.properties.get("network") or "")
            obj = client.ec2(region, "DescribeSecurityGroups",
                             ec2.filters({"vpc-id": vpc, "group-name": "default"}))
            groups = [g for g in (ec2.text(el, "groupId") for el in
                                  ec2.items(obj, "securityGroupInfo/item")) if g][:1]
        params = {"NetworkInterfaceId": live.physical_id}
        params.update({f"SecurityGroupId.{i}": g for i, g in enumerate(groups, 1)})
        client.ec2(region, "ModifyNetworkInterfaceAttribute", params)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        """Detach from a server where it is a secondary interface; a primary interface
        detaches when its server terminates: wait for that."""
        region = live.placement.region
        el = get_raw(client, region, PORT, live.physical_id)
        if el is None:
            return
        attachment = ec2.text(el, "attachment/attachmentId")
        if attachment and ec2.text(el, "attachment/deviceIndex") not in (None, "0") and \
                ec2.text(el, "attachment/status") in ("attaching", "attached"):
            try:
                client.ec2(region, "DetachNetworkInterface", {"AttachmentId": attachment})
            except CloudError as err:
                if not ec2.has_code(err, "InvalidAttachmentID.NotFound"):
                    raise
        super().delete(client, live, timeout)
