"""``Cloud::Network::FloatingIP`` on AWS: a VPC elastic IP; physical id: the allocation id.

On a ``server`` (AssociateAddress InstanceId) or a ``port`` (NetworkInterfaceId), not
both; ``floating_network`` has no AWS meaning (one pool per region) and is not
reported.  An address to associate is allocated with its stack/resource tags but
without ``cloudtmpl:spec``, written once it is associated; a move is one call
(AllowReassociation), never via "on nothing".
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import TAG_SPEC, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.aws.compute import settled_instance
from cloudtmpl.providers.aws.raw import RawHandler, create_tagged, delete_while_busy, get_raw
from cloudtmpl.providers.base import FLOATING_IP, CloudError


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
