"""Routers on AWS: route tables, their internet gateways, subnet associations and routes.

* ``Cloud::Network::Router`` - a route table of the VPC ``network`` (required: a
  route table belongs to one VPC); physical id: the route table id, tagged in
  ``CreateRouteTable``.  With ``external_gateway_info`` (any network: on AWS it means
  the internet) an internet gateway, tagged with the router's identity
  (``CreateInternetGateway`` + ``AttachInternetGateway``), and the table's default
  routes to it (``0.0.0.0/0``, and ``::/0`` when the VPC has an IPv6 block); a VPC has
  one internet gateway, so where it has one already (the default VPC's, another
  router's) the routes go to that one, which stays its owner's.  The
  template's ``external_gateway_info`` is kept in the table's ``cloudtmpl:gateway``
  tag and reported while the gateway is attached and routed to (else as none);
  attribute ``gateway_id``.  It changes in place (the gateway made or removed);
  ``admin_state_up: false`` is refused (a route table cannot be down).  Delete:
  the gateway detached (waiting while ``DependencyViolation``: mapped public
  addresses) and deleted, then the table (waiting while subnets are associated).
* ``Cloud::Network::RouterInterface`` - the table's association with ``subnet``;
  physical id ``"{route table}:{subnet}"``.  The ``port`` form has no AWS meaning and
  is refused.  Recorded on the table (``cloudtmpl:interface:{subnet}``: address and
  spec) *before* ``AssociateRouteTable``, removed again if that fails.
* ``Cloud::Network::Route`` - one route of the table; physical id
  ``"{route table}:{destination}"``; the next hop by its prefix: ``nat-``
  NatGatewayId, ``igw-`` GatewayId, ``eni-`` NetworkInterfaceId, ``i-`` InstanceId.
  Recorded on the table (``cloudtmpl:route:{destination}``) before ``CreateRoute``.

Interfaces and routes are discovered from the stack's own route tables only (a
router of another stack carries no record of this one).
"""

from __future__ import annotations

import contextlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.aws.raw import (
    INTERNET_GATEWAY,
    RAW,
    RawHandler,
    check_admin_state,
    create_tagged,
    delete_while_busy,
    get_raw,
    live_of,
)
from cloudtmpl.providers.base import ROUTE, ROUTER, ROUTER_INTERFACE, CloudError

TAG_GATEWAY = "cloudtmpl:gateway"  # the router's external_gateway_info, as JSON
TAG_INTERFACE = "cloudtmpl:interface:"  # + subnet id: JSON [address, spec hash]
TAG_ROUTE = "cloudtmpl:route:"  # + destination: JSON [address, spec hash, next-hop field]
DEFAULT_V4, DEFAULT_V6 = "0.0.0.0/0", "::/0"
# next hop id prefix -> (CreateRoute parameter, the route's field in DescribeRouteTables)
NEXT_HOPS = {"nat-": ("NatGatewayId", "natGatewayId"), "igw-": ("GatewayId", "gatewayId"),
             "eni-": ("NetworkInterfaceId", "networkInterfaceId"),
             "i-": ("InstanceId", "instanceId")}
_ATTACHED = ("available", "attached", "attaching")


def _destination_param(destination: str) -> str:
    return "DestinationIpv6CidrBlock" if ":" in destination else "DestinationCidrBlock"


def _destination(route: ET.Element) -> str | None:
    return ec2.text(route, "destinationCidrBlock") or ec2.text(route, "destinationIpv6CidrBlock")


def _record(value: str | None) -> list[str] | None:
    """A record tag's JSON list (None: not one of ours)."""
    try:
        found = json.loads(value or "")
    except ValueError:
        return None
    return [str(v) for v in found] if isinstance(found, list) and len(found) >= 2 else None


def _tables_of(client: AwsClient, region: str, table_id: str) -> ET.Element | None:
    return get_raw(client, region, ROUTER, table_id)


def _forget(client: AwsClient, region: str, table_id: str, key: str) -> None:
    """Remove a record tag from a table (a table already gone has none)."""
    try:
        client.delete_tags(region, table_id, [key])
    except CloudError as err:
        if not ec2.has_code(err, *RAW[ROUTER].missing):
            raise


def _split(live: LiveResource) -> tuple[str, str]:
    table, _, rest = live.physical_id.partition(":")
    return table, rest


# ---------------------------------------------------------------------- internet gateways


def _gateways(client: AwsClient, region: str, stack: str, address: str) -> list[ET.Element]:
    """The internet gateways made for the router ``address`` of ``stack``."""
    obj = client.ec2(region, "DescribeInternetGateways",
                     ec2.filters({f"tag:{TAG_STACK}": stack, f"tag:{TAG_RESOURCE}": address}))
    return ec2.items(obj, RAW[INTERNET_GATEWAY].items)


def _attached_to(igw: ET.Element) -> list[str]:
    return [v for a in ec2.items(igw, "attachmentSet/item")
            if (v := ec2.text(a, "vpcId")) and ec2.text(a, "state") in _ATTACHED]


def _has_ipv6(client: AwsClient, region: str, vpc: str) -> bool:
    obj = client.ec2(region, "DescribeVpcs", {"VpcId.1": vpc})
    return any(ec2.text(b, "ipv6CidrBlockState/state") == "associated"
               for v in ec2.items(obj, "vpcSet/item")
               for b in ec2.items(v, "ipv6CidrBlockAssociationSet/item"))


def set_route(client: AwsClient, region: str, table: str, destination: str, param: str,
              target: str) -> None:
    """The route ``destination`` → ``target`` in ``table`` (made, or replaced)."""
    params = {"RouteTableId": table, _destination_param(destination): destination,
              param: target}
    try:
        client.ec2(region, "CreateRoute", params)
    except CloudError as err:
        if not ec2.has_code(err, "RouteAlreadyExists"):
            raise
        client.ec2(region, "ReplaceRoute", params)


def _vpc_gateway(client: AwsClient, region: str, vpc: str) -> str | None:
    """The internet gateway attached to ``vpc`` (a VPC has at most one), if any."""
    obj = client.ec2(region, "DescribeInternetGateways",
                     ec2.filters({"attachment.vpc-id": vpc}))
    return next((ec2.text(g, "internetGatewayId") for g in
                 ec2.items(obj, RAW[INTERNET_GATEWAY].items) if vpc in _attached_to(g)), None)


def _connect(client: AwsClient, region: str, want_name: str, stack: str, address: str,
             table: str, vpc: str) -> str:
    """The router's internet gateway, attached to ``vpc``, and the default routes to it.
    A VPC has one internet gateway: where it has one already (the default VPC's, another
    router's) the routes go to that one, which stays its owner's."""
    found = _gateways(client, region, stack, address)
    if found:  # made by an earlier, interrupted attempt: adopt it
        igw = ec2.text(found[0], "internetGatewayId") or ""
        attached = _attached_to(found[0])
    else:
        shared = _vpc_gateway(client, region, vpc)
        if shared:
            _default_routes(client, region, table, vpc, shared)
            return shared
        igw = create_tagged(client, region, INTERNET_GATEWAY, stack, address,
                            "CreateInternetGateway", {},
                            ec2.identity_tags(want_name, stack, address, None))
        attached = []
    if attached and vpc not in attached:
        raise CloudError(f"router {address}: its internet gateway {igw} is attached to "
                         f"{attached[0]}, not {vpc}", permanent=True)
    if not attached:
        try:
            client.ec2(region, "AttachInternetGateway", {"InternetGatewayId": igw, "VpcId": vpc})
        except CloudError as err:
            if not ec2.has_code(err, "Resource.AlreadyAssociated"):
                raise
    _default_routes(client, region, table, vpc, igw)
    return igw


def _default_routes(client: AwsClient, region: str, table: str, vpc: str, igw: str) -> None:
    set_route(client, region, table, DEFAULT_V4, "GatewayId", igw)
    if _has_ipv6(client, region, vpc):
        set_route(client, region, table, DEFAULT_V6, "GatewayId", igw)


def _disconnect(client: AwsClient, region: str, stack: str, address: str,
                table: ET.Element | None, timeout: float) -> None:
    """The router's own gateways detached (while the VPC has mapped public addresses AWS
    refuses: wait) and deleted, then the table's default routes to internet gateways (a
    route to a gone gateway is a blackhole; a shared one stays its owner's).  A failure
    leaves gateway and routes as they were."""
    gateways = _gateways(client, region, stack, address)
    ids = {ec2.text(g, "internetGatewayId") for g in gateways}
    for igw in gateways:
        igw_id = ec2.text(igw, "internetGatewayId") or ""
        for vpc in _attached_to(igw):
            _detach(client, region, igw_id, vpc, timeout)
        delete_while_busy(client, LiveResource(address, INTERNET_GATEWAY, igw_id,
                                               client.placement(region)),
                          timeout, "DependencyViolation")
    if table is not None:
        table_id = ec2.text(table, "routeTableId") or ""
        for route in ec2.items(table, "routeSet/item"):
            dest = _destination(route)
            target = ec2.text(route, "gatewayId") or ""
            if dest in (DEFAULT_V4, DEFAULT_V6) and (target in ids or target.startswith("igw-")):
                try:
                    client.ec2(region, "DeleteRoute",
                               {"RouteTableId": table_id, _destination_param(dest): dest})
                except CloudError as err:
                    if not ec2.has_code(err, "InvalidRoute.NotFound", *RAW[ROUTER].missing):
                        raise


def _detach(client: AwsClient, region: str, igw: str, vpc: str, timeout: float) -> None:
    def attempt() -> tuple[bool, str, None]:
        try:
            client.ec2(region, "DetachInternetGateway", {"InternetGatewayId": igw, "VpcId": vpc})
        except CloudError as err:
            if ec2.has_code(err, "Gateway.NotAttached", *RAW[INTERNET_GATEWAY].missing):
                return True, "detached", None
            if ec2.has_code(err, "DependencyViolation"):
                return False, "in use (DependencyViolation: mapped public addresses)", None
            raise
        return True, "detached", None

    client.poll(timeout, f"internet gateway {igw} ({vpc})", attempt)


# ---------------------------------------------------------------------- the router


class Router(RawHandler):
    kind = ROUTER
    listings = ("route_tables", "internet_gateways")

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        gateways: dict[str, list[ET.Element]] = {}
        for address, igw in ec2.stack_items(listings.get("internet_gateways"), stack,
                                            ec2.tags_of):
            gateways.setdefault(address, []).append(igw)
        return [self.live_with(client, region, address, table, gateways.get(address, []))
                for address, table in ec2.stack_items(listings.get("route_tables"), stack,
                                                      ec2.tags_of)]

    def live(self, client: AwsClient, region: str, address: str,
             el: ET.Element) -> LiveResource:
        tags = ec2.tags_of(el)
        stack = tags.get(TAG_STACK, "")
        return self.live_with(client, region, address, el,
                              _gateways(client, region, stack, address) if stack else [])

    @staticmethod
    def live_with(client: AwsClient, region: str, address: str, el: ET.Element,
                  gateways: list[ET.Element]) -> LiveResource:
        tags = ec2.tags_of(el)
        vpc = ec2.text(el, "vpcId")
        routed = [t for r in ec2.items(el, "routeSet/item")
                  if _destination(r) == DEFAULT_V4 and ec2.text(r, "state") != "blackhole"
                  and (t := ec2.text(r, "gatewayId") or "").startswith("igw-")]
        own = {ec2.text(g, "internetGatewayId"): vpc in _attached_to(g) for g in gateways}
        # its own gateway while attached; a shared one (the VPC's) while routed to
        gateway = next((t for t in routed if own.get(t, True)), None)
        given: Any = None
        if gateway and tags.get(TAG_GATEWAY):
            with contextlib.suppress(ValueError):
                given = json.loads(tags[TAG_GATEWAY])
        info = ({"network_id": gateway, "enable_snat": True, "external_fixed_ips": []}
                if gateway else None)
        return live_of(client, region, ROUTER, address, el, "ACTIVE",
                       {"network": vpc, "external_gateway_info": given,
                        "admin_state_up": True},
                       {"id": ec2.text(el, "routeTableId"), "status": "ACTIVE",
                        "external_gateway_info": info, "gateway_id": gateway})

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        props, name = want.properties, want.name
        vpc = str(props.get("network") or "")
        if not vpc:
            raise CloudError(f"router {name}: a router on AWS is a route table of one VPC: "
                             "give it network (the VPC)", permanent=True)
        check_admin_state(props, f"router {name}")
        gateway = props.get("external_gateway_info") or None
        table = create_tagged(client, region, ROUTER, want.stack, want.address,
                              "CreateRouteTable", {"VpcId": vpc},
                              ec2.identity_tags(name, want.stack, want.address,
                                                None if gateway else want.spec_hash))
        if gateway:  # the spec tag once the gateway is in place
            _connect(client, region, name, want.stack, want.address, table, vpc)
            client.create_tags(region, table, {TAG_GATEWAY: _gateway_tag(gateway),
                                               TAG_SPEC: want.spec_hash})
        return self.refresh(client, region, want.address, table)

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        region, table = live.placement.region, live.physical_id
        check_admin_state(change.properties, f"router {live.address}")
        if "external_gateway_info" in change.changed:
            gateway = change.properties.get("external_gateway_info") or None
            if gateway:
                vpc = str(live.properties.get("network") or "")
                _connect(client, region, live.name, change.stack, live.address, table, vpc)
                client.create_tags(region, table, {TAG_GATEWAY: _gateway_tag(gateway)})
            else:
                _disconnect(client, region, change.stack, live.address,
                            _tables_of(client, region, table), change.timeout)
                client.delete_tags(region, table, [TAG_GATEWAY])
        client.create_tags(region, table, {TAG_SPEC: change.spec_hash})
        return self.refresh(client, region, live.address, table)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        el = _tables_of(client, region, live.physical_id)
        stack = ec2.tags_of(el).get(TAG_STACK) if el is not None else None
        if stack:
            _disconnect(client, region, stack, live.address, el, timeout)
        super().delete(client, live, timeout)  # waits while subnets are associated


def _gateway_tag(gateway: Any) -> str:
    value = json.dumps(gateway, sort_keys=True, separators=(",", ":"))
    if len(value) > 256:  # an EC2 tag value holds 256 characters
        raise CloudError("external_gateway_info: on AWS any network means the internet "
                         "gateway; give a short value ({network: public})", permanent=True)
    return value


# ---------------------------------------------------------------------- records on the table


class _Recorded(kit.NothingInPlace):
    """A kind recorded on its router's table (an interface, a route): no cloud object
    with tags of its own.  Nothing of either changes in place."""

    kind: str
    listings = ("route_tables",)
    prefix: str

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        out = []
        for _, table in ec2.stack_items(listings.get("route_tables"), stack, ec2.tags_of):
            for key in ec2.tags_of(table):
                if key.startswith(self.prefix):
                    live = self.live(client, region, table, key[len(self.prefix):])
                    if live is not None:
                        out.append(live)
        return out

    def live(self, client: AwsClient, region: str, table: ET.Element,
             key: str) -> LiveResource | None:
        raise NotImplementedError

    def refresh(self, client: AwsClient, region: str, table_id: str, key: str,
                address: str) -> LiveResource:
        el = _tables_of(client, region, table_id)
        live = self.live(client, region, el, key) if el is not None else None
        return kit.require(live, LiveResource(address, self.kind, f"{table_id}:{key}",
                                              client.placement(region)))

    def record(self, client: AwsClient, region: str, table: str, key: str,
               value: list[str]) -> None:
        """The record, the create's first request (CreateTags of a table that does not
        exist is refused: ``InvalidRouteTableID.NotFound``)."""
        if not table.startswith("rtb-"):
            raise CloudError(f"{self.kind}: router {table!r} is no AWS route table id "
                             "(rtb-…)", permanent=True)
        client.create_tags(region, table, {self.prefix + key: json.dumps(value)})


class RouterInterface(_Recorded):
    kind = ROUTER_INTERFACE
    prefix = TAG_INTERFACE

    def live(self, client: AwsClient, region: str, table: ET.Element,
             key: str) -> LiveResource | None:
        record = _record(ec2.tags_of(table).get(self.prefix + key))
        found = [a for a in ec2.items(table, "associationSet/item")
                 if ec2.text(a, "subnetId") == key
                 and ec2.text(a, "associationState/state") in (None, "associated",
                                                               "associating")]
        if record is None or not found:
            return None
        table_id = ec2.text(table, "routeTableId") or ""
        association = ec2.text(found[0], "routeTableAssociationId")
        return LiveResource(address=record[0], kind=ROUTER_INTERFACE,
                            physical_id=f"{table_id}:{key}", placement=client.placement(region),
                            name=record[0], properties={"router": table_id, "subnet": key},
                            attributes={"subnet_id": key, "port_id": None,
                                        "association_id": association},
                            spec_hash=record[1], status="associated")

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        props = want.properties
        if props.get("port"):
            raise CloudError(f"router interface {want.name}: on AWS a router is a route table "
                             "and connects subnets, not ports: give subnet", permanent=True)
        table, subnet = str(props.get("router") or ""), str(props.get("subnet") or "")
        if not table or not subnet:
            raise CloudError(f"router interface {want.name} needs router and subnet",
                             permanent=True)
        # Record first, then associate: no association exists without its record.
        self.record(client, region, table, subnet, [want.address, want.spec_hash])
        try:
            client.ec2(region, "AssociateRouteTable", {"RouteTableId": table, "SubnetId": subnet})
        except CloudError as err:
            if not (ec2.has_code(err, "Resource.AlreadyAssociated")
                    and self._associated(client, region, table, subnet)):
                _forget(client, region, table, self.prefix + subnet)
                raise
        return self.refresh(client, region, table, subnet, want.address)

    @staticmethod
    def _associated(client: AwsClient, region: str, table: str, subnet: str) -> str | None:
        el = _tables_of(client, region, table)
        return next((ec2.text(a, "routeTableAssociationId")
                     for a in ec2.items(el, "associationSet/item")
                     if ec2.text(a, "subnetId") == subnet), None)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        table, subnet = _split(live)
        association = self._associated(client, region, table, subnet)
        if association:
            try:
                client.ec2(region, "DisassociateRouteTable", {"AssociationId": association})
            except CloudError as err:
                if not ec2.has_code(err, "InvalidAssociationID.NotFound"):
                    raise
        _forget(client, region, table, self.prefix + subnet)


class Route(_Recorded):
    kind = ROUTE
    prefix = TAG_ROUTE

    def live(self, client: AwsClient, region: str, table: ET.Element,
             key: str) -> LiveResource | None:
        record = _record(ec2.tags_of(table).get(self.prefix + key))
        route = next((r for r in ec2.items(table, "routeSet/item") if _destination(r) == key),
                     None)
        if record is None or route is None:
            return None
        field = record[2] if len(record) > 2 else "gatewayId"
        table_id = ec2.text(table, "routeTableId") or ""
        return LiveResource(address=record[0], kind=ROUTE, physical_id=f"{table_id}:{key}",
                            placement=client.placement(region), name=record[0],
                            properties={"router": table_id, "destination": key,
                                        "nexthop": ec2.text(route, field)},
                            attributes={}, spec_hash=record[1],
                            status=ec2.text(route, "state") or "active")

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        props: Mapping[str, Any] = want.properties
        table = str(props.get("router") or "")
        destination, nexthop = str(props.get("destination") or ""), str(props.get("nexthop") or "")
        hop = next((v for k, v in NEXT_HOPS.items() if nexthop.startswith(k)), None)
        if hop is None:
            raise CloudError(f"route {want.name}: on AWS the next hop is a NAT gateway (nat-…), "
                             "internet gateway (igw-…), network interface (eni-…) or instance "
                             f"(i-…) id, not {nexthop!r}", permanent=True)
        self.record(client, region, table, destination, [want.address, want.spec_hash, hop[1]])
        try:
            client.ec2(region, "CreateRoute", {"RouteTableId": table,
                                               _destination_param(destination): destination,
                                               hop[0]: nexthop})
        except CloudError as err:
            mine = ec2.has_code(err, "RouteAlreadyExists") and self._routes_to(
                client, region, table, destination, hop[1], nexthop)
            if not mine:
                _forget(client, region, table, self.prefix + destination)
                raise
        return self.refresh(client, region, table, destination, want.address)

    @staticmethod
    def _routes_to(client: AwsClient, region: str, table: str, destination: str, field: str,
                   nexthop: str) -> bool:
        """Whether the table's route ``destination`` goes to ``nexthop`` already (a retry)."""
        el = _tables_of(client, region, table)
        return any(_destination(r) == destination and ec2.text(r, field) == nexthop
                   for r in ec2.items(el, "routeSet/item"))

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        table, destination = _split(live)
        try:
            client.ec2(region, "DeleteRoute", {"RouteTableId": table,
                                               _destination_param(destination): destination})
        except CloudError as err:
            if not ec2.has_code(err, "InvalidRoute.NotFound", *RAW[ROUTER].missing):
                raise
        _forget(client, region, table, self.prefix + destination)
