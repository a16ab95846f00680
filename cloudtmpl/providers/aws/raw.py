"""The kinds read as raw EC2 XML (groups, elastic IPs, VPCs, subnets, interfaces, route
tables, NAT gateways; and the routers' internet gateways, which are no kind of their
own): how each is described, tagged, identified and deleted, and the plumbing they share.

``AllocateAddress``, ``CreateVpc``, ``CreateSubnet``, ``CreateNetworkInterface``,
``CreateRouteTable`` and ``CreateInternetGateway`` are sent with the tags inside them
(``TagSpecification``); they have no (honoured) idempotency token, so after an
ambiguous failure the retry first looks for an object with this stack's resource
tags and adopts it (:func:`create_tagged`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient, Listed, Lister
from cloudtmpl.providers.base import (
    FLOATING_IP,
    NAT_GATEWAY,
    NETWORK,
    PORT,
    ROUTER,
    SECURITY_GROUP,
    SUBNET,
    CloudError,
)

# a router's internet gateway: listed and tagged as the raw kinds are, but no kind
INTERNET_GATEWAY = "aws:internet-gateway"


@dataclass(frozen=True)
class RawKind:
    """A kind read as raw EC2 XML: how to describe, tag and identify it."""

    listing: str  # its name among the client's listings
    describe: str  # the Describe* action
    id_param: str  # its id list parameter (``VpcId`` → ``VpcId.1``)
    items: str  # path of the objects in the Describe* answer
    id_field: str  # the id element of one object
    page: int | None  # MaxResults (None: the action does not paginate)
    missing: tuple[str, ...]  # error codes that mean "no such object"
    tag_type: str  # TagSpecification resource type
    what: str  # for messages
    delete: str  # the action that deletes one (takes ``id_param`` without ``.1``)


RAW: dict[str, RawKind] = {
    SECURITY_GROUP: RawKind("security_groups", "DescribeSecurityGroups", "GroupId",
                            "securityGroupInfo/item", "groupId", 1000,
                            ("InvalidGroup.NotFound", "InvalidGroupId.Malformed",
                             "InvalidGroupId.NotFound"),
                            "security-group", "security group", "DeleteSecurityGroup"),
    FLOATING_IP: RawKind("addresses", "DescribeAddresses", "AllocationId", "addressesSet/item",
                         "allocationId", None, ("InvalidAllocationID.NotFound",
                                                "InvalidAllocationID.Malformed"),
                         "elastic-ip", "elastic IP", "ReleaseAddress"),
    NETWORK: RawKind("vpcs", "DescribeVpcs", "VpcId", "vpcSet/item", "vpcId", 1000,
                     ("InvalidVpcID.NotFound", "InvalidVpcID.Malformed"), "vpc", "network",
                     "DeleteVpc"),
    SUBNET: RawKind("subnets", "DescribeSubnets", "SubnetId", "subnetSet/item", "subnetId",
                    1000, ("InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed"), "subnet",
                    "subnet", "DeleteSubnet"),
    PORT: RawKind("interfaces", "DescribeNetworkInterfaces", "NetworkInterfaceId",
                  "networkInterfaceSet/item", "networkInterfaceId", 1000,
                  ("InvalidNetworkInterfaceID.NotFound", "InvalidNetworkInterfaceID.Malformed"),
                  "network-interface", "port", "DeleteNetworkInterface"),
    ROUTER: RawKind("route_tables", "DescribeRouteTables", "RouteTableId", "routeTableSet/item",
                    "routeTableId", 100, ("InvalidRouteTableID.NotFound",
                                          "InvalidRouteTableID.Malformed"),
                    "route-table", "router", "DeleteRouteTable"),
    INTERNET_GATEWAY: RawKind("internet_gateways", "DescribeInternetGateways",
                              "InternetGatewayId", "internetGatewaySet/item",
                              "internetGatewayId", 1000,
                              ("InvalidInternetGatewayID.NotFound",
                               "InvalidInternetGatewayID.Malformed"),
                              "internet-gateway", "internet gateway",
                              "DeleteInternetGateway"),
    NAT_GATEWAY: RawKind("nat_gateways", "DescribeNatGateways", "NatGatewayId",
                         "natGatewaySet/item", "natGatewayId", 1000,
                         ("NatGatewayNotFound", "InvalidNatGatewayID.NotFound",
                          "NatGatewayMalformed", "InvalidNatGatewayID.Malformed"),
                         "natgateway", "NAT gateway", "DeleteNatGateway"),
}


def lister(kind: str) -> Lister:
    """The listing of a raw kind: one tag-filtered Describe*, every page."""
    api = RAW[kind]

    def listing(client: AwsClient, region: str, stack: str) -> list[Any]:
        params = ec2.stack_filter(stack)
        pages = (client.paged(region, api.describe, params, api.page) if api.page
                 else [client.ec2(region, api.describe, params)])
        return [el for obj in pages for el in ec2.items(obj, api.items)]

    return listing


def get_raw(client: AwsClient, region: str, kind: str, object_id: str) -> ET.Element | None:
    api = RAW[kind]
    try:
        obj = client.ec2(region, api.describe, {f"{api.id_param}.1": object_id})
    except CloudError as err:
        if ec2.has_code(err, *api.missing):
            return None
        raise
    found = ec2.items(obj, api.items)
    return found[0] if found else None


def live_of(client: AwsClient, region: str, kind: str, address: str, el: ET.Element,
            status: str, properties: dict[str, Any],
            attributes: dict[str, Any]) -> LiveResource:
    """A raw object as a live resource (name: its Name tag, else its id)."""
    tags = ec2.tags_of(el)
    pid = ec2.text(el, RAW[kind].id_field) or ""
    name = tags.get(ec2.TAG_NAME) or pid
    return LiveResource(address=address, kind=kind, physical_id=pid,
                        placement=client.placement(region), name=name,
                        properties=properties, attributes={"name": name, **attributes},
                        spec_hash=tags.get(TAG_SPEC), status=status)


class RawHandler(Listed):
    """What the raw kinds' handlers share: discovery from their listing, refresh,
    the wait for a new object, and the delete that waits while the object is in use."""

    busy: tuple[str, ...] = ("DependencyViolation",)  # "still in use": wait, retry

    def refresh(self, client: AwsClient, region: str, address: str,
                object_id: str) -> LiveResource:
        el = kit.require(get_raw(client, region, self.kind, object_id),
                         LiveResource(address, self.kind, object_id, client.placement(region)))
        return self.live(client, region, address, el)

    def wait_ready(self, client: AwsClient, region: str, address: str, object_id: str,
                   timeout: float) -> LiveResource:
        """Poll a new network, subnet or port until it is available."""
        def fetch() -> tuple[bool, str, LiveResource | None]:
            el = get_raw(client, region, self.kind, object_id)
            if el is None:  # eventual consistency right after the create
                return False, "pending", None
            live = self.live(client, region, address, el)
            return live.status in ("available", "in-use"), live.status, live

        live = client.poll(timeout, f"{RAW[self.kind].what} {address} ({object_id})", fetch)
        assert live is not None
        return live

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        delete_while_busy(client, live, timeout, *self.busy)


def create_tagged(client: AwsClient, region: str, kind: str, stack: str, address: str,
                  action: str, params: Mapping[str, str], tags: Mapping[str, str]) -> str:
    """One create call with the tags inside it (``TagSpecification``); its new id."""
    api = RAW[kind]
    full = {"Action": action, **params, **ec2.tag_spec(api.tag_type, tags)}

    def post() -> str:
        found = ec2.ids_in(client.raw_ec2(region, full), api.id_field)
        return found[0] if found else ""

    def lookup() -> str | None:  # no retry inside a retry: one look, then the outer loop
        obj = client.ec2(region, api.describe,
                         ec2.filters({f"tag:{TAG_STACK}": stack, f"tag:{TAG_RESOURCE}": address}),
                         retry=False)
        for el in ec2.items(obj, api.items):
            return ec2.text(el, api.id_field)
        return None

    return kit.create_or_adopt(post, lookup, client.call)


def delete_while_busy(client: AwsClient, live: LiveResource, timeout: float,
                      *busy: str) -> None:
    """Delete; while the cloud says the object is still in use, wait and try again."""
    api = RAW[live.kind]
    oid = live.physical_id
    region = live.placement.region

    def attempt() -> tuple[bool, str, None]:
        try:
            client.ec2(region, api.delete, {api.id_param: oid})
        except CloudError as err:
            if ec2.has_code(err, *api.missing):
                return True, "deleted", None
            codes = [c for c in busy if ec2.has_code(err, c)]
            if codes:
                return False, f"in use ({codes[0]})", None
            raise
        return True, "deleted", None

    client.poll(timeout, f"{api.what} {live.name or live.address} ({oid})", attempt)


def check_admin_state(props: Mapping[str, Any], what: str) -> None:
    if props.get("admin_state_up") is False:
        raise CloudError(f"{what}: AWS cannot take a VPC or network interface "
                         "administratively down (admin_state_up: false)", permanent=True)

