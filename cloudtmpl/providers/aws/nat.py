"""``Cloud::Network::NatGateway`` on AWS: a public NAT gateway with an elastic IP of its own.

Physical id: the NAT gateway id.  The elastic IP is allocated first, tagged with the
gateway's identity and ``cloudtmpl:part-of: nat-gateway`` (so it is never reported as
a ``Cloud::Network::FloatingIP``); then ``CreateNatGateway`` in ``subnet`` with its
tags (``TagSpecification``) and a ``ClientToken``, waited on from ``pending`` to
``available``.  A gateway that goes ``failed`` (e.g. ``Gateway.NotAttached``: its VPC
has no internet gateway) is reported with the cloud's ``failureMessage``, and it and
its elastic IP are deleted: nothing half-made is left.  Nothing changes in place.
Delete: ``DeleteNatGateway``, waited on until ``deleted``, then the elastic IP is
released (waiting while AWS still holds it: ``InvalidIPAddress.InUse``).
"""

from __future__ import annotations

import contextlib
import uuid
import xml.etree.ElementTree as ET

from cloudtmpl.model import TAG_RESOURCE, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.aws.raw import RAW, RawHandler, create_tagged, get_raw, live_of
from cloudtmpl.providers.base import FLOATING_IP, NAT_GATEWAY, CloudError

PART_OF = "nat-gateway"  # the ec2.TAG_PART_OF value of a NAT gateway's elastic IP
_GONE = ("deleted", "deleting")


def _addresses(client: AwsClient, region: str, stack: str, address: str) -> list[ET.Element]:
    """The elastic IPs allocated for the NAT gateway ``address`` of ``stack``."""
    obj = client.ec2(region, "DescribeAddresses", ec2.filters({
        f"tag:{TAG_STACK}": stack, f"tag:{TAG_RESOURCE}": address,
        f"tag:{ec2.TAG_PART_OF}": PART_OF}))
    return ec2.items(obj, RAW[FLOATING_IP].items)


def _release(client: AwsClient, region: str, allocation: str, timeout: float) -> None:
    def attempt() -> tuple[bool, str, None]:
        try:
            client.ec2(region, "ReleaseAddress", {"AllocationId": allocation})
        except CloudError as err:
            if ec2.has_code(err, *RAW[FLOATING_IP].missing):
                return True, "released", None
            if ec2.has_code(err, "InvalidIPAddress.InUse", "AuthFailure"):
                return False, "in use", None
            raise
        return True, "released", None

    client.poll(timeout, f"elastic IP {allocation}", attempt)


class NatGateway(kit.NothingInPlace, RawHandler):
    kind = NAT_GATEWAY
    listings = ("nat_gateways",)

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [self.live(client, region, address, el) for address, el
                in ec2.stack_items(listings.get("nat_gateways"), stack, ec2.tags_of)
                if ec2.text(el, "state") not in _GONE]

    def live(self, client: AwsClient, region: str, address: str,
             el: ET.Element) -> LiveResource:
        state = ec2.text(el, "state") or ""
        first = next(iter(ec2.items(el, "natGatewayAddressSet/item")), None)
        return live_of(client, region, NAT_GATEWAY, address, el, state,
                       {"subnet": ec2.text(el, "subnetId")},
                       {"id": ec2.text(el, "natGatewayId"),
                        "public_ip": ec2.text(first, "publicIp"),
                        "private_ip": ec2.text(first, "privateIp"),
                        "allocation_id": ec2.text(first, "allocationId"),
                        "status": state})

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        subnet = str(want.properties.get("subnet") or "")
        if not subnet:
            raise CloudError(f"NAT gateway {want.name} needs subnet", permanent=True)
        free = [el for el in _addresses(client, region, want.stack, want.address)
                if not ec2.text(el, "associationId")]
        allocation = (ec2.text(free[0], "allocationId") if free else None) or create_tagged(
            client, region, FLOATING_IP, want.stack, want.address, "AllocateAddress",
            {"Domain": "vpc"}, {**ec2.identity_tags(want.name, want.stack, want.address, None),
                                ec2.TAG_PART_OF: PART_OF})
        token = uuid.uuid4().hex  # every retry of this create sends the same one
        try:
            obj = client.ec2(region, "CreateNatGateway", {
                "SubnetId": subnet, "AllocationId": allocation, "ClientToken": token,
                **ec2.tag_spec("natgateway", ec2.identity_tags(
                    want.name, want.stack, want.address, want.spec_hash))})
        except CloudError:
            with contextlib.suppress(CloudError):
                _release(client, region, allocation, 0.0)
            raise
        nat = ec2.text(obj, "natGateway/natGatewayId") or ""
        return self._wait(client, region, want, nat, allocation)

    def _wait(self, client: AwsClient, region: str, want: kit.Desired, nat: str,
              allocation: str) -> LiveResource:
        what = f"NAT gateway {want.name} ({nat})"

        def fetch() -> tuple[bool, str, ET.Element | None]:
            el = get_raw(client, region, NAT_GATEWAY, nat)
            if el is None:  # eventual consistency right after the create
                return False, "pending", None
            state = ec2.text(el, "state") or ""
            if state == "failed":
                return True, state, el
            return state == "available", state, el

        el = client.poll(want.timeout, what, fetch)
        assert el is not None
        if ec2.text(el, "state") == "failed":
            code = ec2.text(el, "failureCode") or "failed"
            message = ec2.text(el, "failureMessage") or "the NAT gateway failed"
            live = self.live(client, region, want.address, el)
            self.delete(client, live, want.timeout)  # it, and its elastic IP
            raise CloudError(f"{what}: {code}: {message}", permanent=True, status="failed")
        return self.live(client, region, want.address, el)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region, nat = live.placement.region, live.physical_id
        el = get_raw(client, region, NAT_GATEWAY, nat)
        stack = ec2.tags_of(el).get(TAG_STACK) if el is not None else None
        allocations = {ec2.text(a, "allocationId")
                       for a in ec2.items(el, "natGatewayAddressSet/item")} - {None}
        if el is not None and ec2.text(el, "state") != "deleted":
            try:
                client.ec2(region, "DeleteNatGateway", {"NatGatewayId": nat})
            except CloudError as err:
                if not ec2.has_code(err, *RAW[NAT_GATEWAY].missing):
                    raise

            def gone() -> tuple[bool, str, None]:
                now = get_raw(client, region, NAT_GATEWAY, nat)
                state = "deleted" if now is None else (ec2.text(now, "state") or "")
                return state in ("deleted", "failed"), state, None

            client.poll(timeout, f"NAT gateway {live.name or live.address} ({nat})", gone)
        if stack:
            allocations |= {ec2.text(a, "allocationId")
                            for a in _addresses(client, region, stack, live.address)} - {None}
        for allocation in sorted(a for a in allocations if a):
            _release(client, region, allocation, timeout)
