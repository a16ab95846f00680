"""Elastic IPs on AWS and their associations.

* ``Cloud::Network::FloatingIP`` - a VPC elastic IP; physical id: the allocation id.
  On a ``server`` (AssociateAddress InstanceId) or a ``port`` (NetworkInterfaceId),
  not both; ``floating_network`` has no AWS meaning (one pool per region) and is not
  reported.  An address to associate is allocated with its stack/resource tags but
  without ``cloudtmpl:spec``, written once it is associated; a move is one call
  (AllowReassociation), never via "on nothing".  Elastic IPs that are part of another
  resource (``cloudtmpl:part-of``: a NAT gateway's) are not floating IPs.
* ``Cloud::Network::FloatingIPAssociation`` - an elastic IP (``floating_ip``, the
  allocation id) associated with a ``server`` or a ``port``; no cloud object of its
  own: physical id ``"{allocation}:{instance or interface}"``, recorded on the elastic
  IP (``cloudtmpl:association-stack``, ``cloudtmpl:association``: address and spec)
  *before* ``AssociateAddress`` and removed again if the cloud refuses it (e.g.
  ``Gateway.NotAttached``: the VPC has no internet gateway).  ``fixed_ip_address``
  is sent as ``PrivateIpAddress`` (a port's).  Delete: ``DisassociateAddress``.

In a VPC without an internet gateway AWS refuses an association with
``Gateway.NotAttached``: give the VPC a ``Cloud::Network::Router`` with
``external_gateway_info`` and an interface on the subnet.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import TAG_SPEC, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.aws.compute import settled_instance
from cloudtmpl.providers.aws.raw import (
    RAW,
    RawHandler,
    create_tagged,
    delete_while_busy,
    get_raw,
)
from cloudtmpl.providers.base import FLOATING_IP, FLOATING_IP_ASSOCIATION, CloudError

TAG_ASSOCIATION_STACK = "cloudtmpl:association-stack"
TAG_ASSOCIATION = "cloudtmpl:association"  # JSON [address, spec hash, server | port]
RAW_MISSING = RAW[FLOATING_IP].missing


def _target(props: Mapping[str, Any]) -> tuple[str, str] | None:
    """What an elastic IP should be on: ("InstanceId", id), ("NetworkInterfaceId", id)."""
    server, port = props.get("server"), props.get("port")
    if server and port:
        raise CloudError("a floating IP is associated with a server or a port, not both",
                         permanent=True)
    if port:
        return "NetworkInterfaceId", str(port)
    return ("InstanceId", str(server)) if server else None


def _associate(client: AwsClient, region: str, allocation_id: str, target: tuple[str, str],
               timeout: float, move: bool = False) -> None:
    if target[0] == "InstanceId":
        settled_instance(client, region, target[1], timeout, f"server {target[1]}")
    client.ec2(region, "AssociateAddress",
               {"AllocationId": allocation_id, target[0]: target[1],
                "AllowReassociation": "true" if move else "false"})


class FloatingIP(RawHandler):
    kind = FLOATING_IP
    listings = ("addresses",)

    @staticmethod
    def tags(obj: Any) -> Mapping[str, str]:
        """Its tags, none for an elastic IP that is part of another resource."""
        found = ec2.tags_of(obj)
        return {} if ec2.TAG_PART_OF in found else found

    def live(self, client: AwsClient, region: str, address: str,
             el: ET.Element) -> LiveResource:
        tags = ec2.tags_of(el)
        ip = ec2.text(el, "publicIp")
        instance = ec2.text(el, "instanceId")
        port = ec2.text(el, "networkInterfaceId")
        status = "associated" if instance or port else "allocated"
        return LiveResource(
            address=address,
            kind=FLOATING_IP,
            physical_id=ec2.text(el, "allocationId") or "",
            placement=client.placement(region),
            name=tags.get(ec2.TAG_NAME, ""),
            properties={"server": instance, "port": port},
            attributes={"floating_ip_address": ip, "ip": ip, "port_id": port,
                        "fixed_ip_address": ec2.text(el, "privateIpAddress")},
            spec_hash=tags.get(TAG_SPEC),
            status=status,
        )

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        # floating_network: AWS has one address pool per region; nothing to choose.
        target = _target(want.properties)
        tags = ec2.identity_tags(want.name, want.stack, want.address,
                                 None if target else want.spec_hash)
        allocation_id = create_tagged(client, region, FLOATING_IP, want.stack, want.address,
                                      "AllocateAddress", {"Domain": "vpc"}, tags)
        if target:
            _associate(client, region, allocation_id, target, want.timeout)
            client.create_tags(region, allocation_id, {TAG_SPEC: want.spec_hash})
        return self.refresh(client, region, want.address, allocation_id)

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        region = live.placement.region
        alloc = live.physical_id
        el = kit.require(get_raw(client, region, FLOATING_IP, alloc), live)
        target = _target(change.properties)
        have = {"InstanceId": ec2.text(el, "instanceId"),
                "NetworkInterfaceId": ec2.text(el, "networkInterfaceId")}
        on_target = (target is None and not any(have.values())) or (
            target is not None and have[target[0]] == target[1])
        if change.changed & {"server", "port"} and not on_target:
            association = ec2.text(el, "associationId")
            if target:  # moved in one call (AllowReassociation): never on nothing
                _associate(client, region, alloc, target, change.timeout,
                           move=bool(association))
            elif association:
                client.ec2(region, "DisassociateAddress", {"AssociationId": association})
        client.create_tags(region, alloc, {TAG_SPEC: change.spec_hash})
        return self.refresh(client, region, live.address, alloc)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        el = get_raw(client, region, FLOATING_IP, live.physical_id)
        if el is None:
            return
        association = ec2.text(el, "associationId")
        if association:
            try:
                client.ec2(region, "DisassociateAddress", {"AssociationId": association})
            except CloudError as err:
                if not ec2.has_code(err, "InvalidAssociationID.NotFound"):
                    raise
        delete_while_busy(client, live, 0.0)


def list_associated(client: AwsClient, region: str, stack: str) -> list[Any]:
    """The listing ``associated_addresses``: elastic IPs (of any stack, or none) that
    carry an association of ``stack``."""
    obj = client.ec2(region, "DescribeAddresses",
                     ec2.filters({f"tag:{TAG_ASSOCIATION_STACK}": stack}))
    return ec2.items(obj, "addressesSet/item")


class FloatingIPAssociation:
    kind = FLOATING_IP_ASSOCIATION
    listings = ("associated_addresses",)

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        found = (self.live(client, region, el) for el in listings.get("associated_addresses")
                 if ec2.tags_of(el).get(TAG_ASSOCIATION_STACK) == stack)
        return [live for live in found if live is not None]

    @staticmethod
    def live(client: AwsClient, region: str, el: ET.Element) -> LiveResource | None:
        tags = ec2.tags_of(el)
        try:
            record = json.loads(tags.get(TAG_ASSOCIATION) or "")
        except ValueError:
            return None
        instance, port = ec2.text(el, "instanceId"), ec2.text(el, "networkInterfaceId")
        if not isinstance(record, list) or len(record) < 2 or not (instance or port):
            return None
        address, spec, on = str(record[0]), str(record[1]), record[2:3]
        allocation = ec2.text(el, "allocationId") or ""
        props: dict[str, Any] = {"floating_ip": allocation}
        if on == ["server"]:
            props["server"] = instance
        else:
            props["port"] = port
        ip = ec2.text(el, "privateIpAddress")
        return LiveResource(address=address, kind=FLOATING_IP_ASSOCIATION,
                            physical_id=f"{allocation}:{props.get('server') or port}",
                            placement=client.placement(region), name=address,
                            properties=props,
                            attributes={"floating_ip_address": ec2.text(el, "publicIp"),
                                        "fixed_ip_address": ip,
                                        "association_id": ec2.text(el, "associationId")},
                            spec_hash=spec, status="associated")

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        props = want.properties
        allocation = str(props.get("floating_ip") or "")
        target = _target(props)
        if not allocation or target is None:
            raise CloudError(f"floating IP association {want.name} needs floating_ip and a "
                             "server or a port", permanent=True)
        el = get_raw(client, region, FLOATING_IP, allocation)
        if el is None:
            raise CloudError(f"InvalidAllocationID.NotFound: the elastic IP {allocation} "
                             "does not exist", permanent=True)
        on = "server" if target[0] == "InstanceId" else "port"
        have = ec2.text(el, "instanceId" if on == "server" else "networkInterfaceId")
        if ec2.text(el, "associationId") and have != target[1]:
            raise CloudError(f"Resource.AlreadyAssociated: the elastic IP {allocation} is "
                             "associated with something else already", permanent=True)
        # Record first, then associate: no association exists without its record.
        client.create_tags(region, allocation, {
            TAG_ASSOCIATION_STACK: want.stack,
            TAG_ASSOCIATION: json.dumps([want.address, want.spec_hash, on])})
        if have != target[1]:
            try:
                if target[0] == "InstanceId":
                    settled_instance(client, region, target[1], want.timeout,
                                     f"server {target[1]}")
                params = {"AllocationId": allocation, target[0]: target[1],
                          "AllowReassociation": "false"}
                if props.get("fixed_ip_address"):
                    params["PrivateIpAddress"] = str(props["fixed_ip_address"])
                client.ec2(region, "AssociateAddress", params)
            except CloudError:
                self._forget(client, region, allocation)
                raise
        now = get_raw(client, region, FLOATING_IP, allocation)
        return kit.require(None if now is None else self.live(client, region, now),
                           LiveResource(want.address, self.kind, f"{allocation}:{target[1]}",
                                        client.placement(region)))

    @staticmethod
    def _forget(client: AwsClient, region: str, allocation: str) -> None:
        try:
            client.delete_tags(region, allocation, [TAG_ASSOCIATION_STACK, TAG_ASSOCIATION])
        except CloudError as err:
            if not ec2.has_code(err, *RAW_MISSING):
                raise

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        return live  # nothing of an association changes in place (its schema)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        allocation, _, on = live.physical_id.partition(":")
        el = get_raw(client, region, FLOATING_IP, allocation)
        if el is None:
            return
        association = ec2.text(el, "associationId")
        if association and on in (ec2.text(el, "instanceId"), ec2.text(el, "networkInterfaceId")):
            try:
                client.ec2(region, "DisassociateAddress", {"AssociationId": association})
            except CloudError as err:
                if not ec2.has_code(err, "InvalidAssociationID.NotFound"):
                    raise
        if _recorded_address(ec2.tags_of(el)) in (None, live.address):
            self._forget(client, region, allocation)


def _recorded_address(tags: Mapping[str, str]) -> str | None:
    """The address of the association recorded on an elastic IP (None: none)."""
    try:
        record = json.loads(tags.get(TAG_ASSOCIATION) or "")
    except ValueError:
        return None
    return str(record[0]) if isinstance(record, list) and record else None
