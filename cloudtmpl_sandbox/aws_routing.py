"""EC2 routing as strict as AWS where moto is not: internet gateways, elastic IPs, NAT
gateways, routes; and the region in a classic ELB's DNS name.

moto accepts what AWS refuses here; the layer asks moto (in-process) and refuses
first, with AWS's codes and messages:

* ``AssociateAddress`` on an instance or interface of a VPC with no internet gateway
  attached: ``Gateway.NotAttached`` ("Network vpc-… is not attached to any internet
  gateway");
* ``AttachInternetGateway`` to a VPC that has another one: ``InvalidParameterValue``
  ("Network vpc-… already has an internet gateway attached");
* ``DetachInternetGateway`` while the VPC has mapped public addresses (an interface
  with an elastic IP, a NAT gateway's): ``DependencyViolation``;
* ``CreateRoute`` to an internet gateway that is not attached to the table's VPC:
  ``InvalidParameterValue`` ("route table … and network gateway … belong to different
  networks");
* ``AssociateRouteTable`` of a subnet another table is associated with:
  ``Resource.AlreadyAssociated`` ("the specified association for route table … conflicts
  with an existing association"); of a subnet of another VPC: ``InvalidParameterValue``
  (the wording is the sandbox's; moto answers both with the subnet's old association);
* ``ReleaseAddress`` of a VPC elastic IP that is still associated (an instance's, an
  interface's, a NAT gateway's): ``InvalidIPAddress.InUse`` (moto disassociates it);
* ``DeleteNatGateway``/``DescribeNatGateways`` of an id that does not exist:
  ``NatGatewayNotFound`` (moto answers 500, or nothing).

What moto does differently afterwards:

* a NAT gateway is ``pending`` in the ``CreateNatGateway`` answer and the first time
  it is described (moto says ``available`` at once); one made in a VPC without an
  internet gateway goes ``failed`` with ``failureCode`` ``Gateway.NotAttached`` and
  ``failureMessage`` "Network vpc-… has no Internet gateway attached", its elastic IP
  free again;
* deleting a NAT gateway frees its elastic IP and its interface (moto keeps both);
* the default VPC has an internet gateway and its main table the route ``0.0.0.0/0``
  to it, as every AWS account's does (moto's has none): made on a region's first EC2
  request (per access key) after a reset;
* a classic ELB's ``DNSName`` names its own region (moto: always ``us-east-1``);
  ``RegisterInstancesWithLoadBalancer``/``DeregisterInstancesFromLoadBalancer``
  answer the balancer's instances (moto: none), and registering a member again
  changes nothing (moto lists it twice).

State is only what moto cannot hold: the failed NAT gateways and the regions seeded.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from xml.sax.saxutils import escape

from cloudtmpl_sandbox.aws_placement import Ec2Error

Params = list[tuple[str, str]]
# an in-process EC2 query to moto: its parsed answer (None: moto refused it)
Ask = Callable[[Params], ET.Element | None]

ELB_DNS_RE = re.compile(rb"\.us-east-1\.elb\.amazonaws\.com")
_NAT_ITEM_RE = re.compile(r"<item>(?:(?!<item>).)*?<natGatewayId>(nat-[0-9a-f]+)</natGatewayId>"
                          r".*?</item>", re.S)


def _get(params: Params, key: str) -> str | None:
    return next((v for k, v in params if k == key), None)


def _find(el: ET.Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(".//" + "/".join("{*}" + p for p in path.split("/")))
    return found.text.strip() if found is not None and found.text else None


def _all(el: ET.Element | None, path: str) -> list[ET.Element]:
    return [] if el is None else el.findall(".//" + "/".join("{*}" + p for p in path.split("/")))


ELB_MEMBER_ACTIONS = frozenset({"RegisterInstancesWithLoadBalancer",
                                "DeregisterInstancesFromLoadBalancer"})
_MEMBER_RE = re.compile(r"Instances\.member\.\d+\.InstanceId")


def elb_members(ask: Ask, name: str) -> list[str] | None:
    """A classic ELB's instances, in order and once each (None: no such balancer)."""
    obj = ask([("Action", "DescribeLoadBalancers"), ("LoadBalancerNames.member.1", name)])
    if obj is None:
        return None
    found = [i.text.strip() for i in obj.iter() if i.tag.endswith("}InstanceId") and i.text]
    return list(dict.fromkeys(found))


def without_members(params: Params, drop: set[str]) -> Params:
    """``params`` without the ``Instances.member.N.InstanceId`` in ``drop``, renumbered."""
    kept = [v for k, v in params if _MEMBER_RE.fullmatch(k) and v not in drop]
    rest = [(k, v) for k, v in params if not _MEMBER_RE.fullmatch(k)]
    return rest + [(f"Instances.member.{n}.InstanceId", v) for n, v in enumerate(kept, 1)]


def members_answer(body: bytes, members: list[str]) -> bytes:
    """A member action's answer listing the balancer's instances."""
    listed = "".join(f"<member><InstanceId>{escape(m)}</InstanceId></member>" for m in members)
    return re.sub(rb"<Instances\s*/>|<Instances>.*?</Instances>",
                  f"<Instances>{listed}</Instances>".encode(), body, count=1, flags=re.S)


def elb_dns(region: str, body: bytes) -> bytes:
    """A classic ELB answer with its own region in every DNS name."""
    return ELB_DNS_RE.sub(f".{region}.elb.amazonaws.com".encode(), body)


class Routing:
    """The failed NAT gateways and the seeded default VPCs (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed: dict[tuple[str, str], tuple[str, str]] = {}  # (region, nat) -> code, msg
        self._fresh: set[tuple[str, str]] = set()  # (region, nat) not yet described
        self._seeded: set[tuple[str, str]] = set()  # (region, access key)

    def reset(self) -> None:
        with self._lock:
            self._failed.clear()
            self._fresh.clear()
            self._seeded.clear()

    # ---- the default VPC's internet gateway

    def seed(self, region: str, key: str, ask: Ask) -> None:
        """Give the default VPC its internet gateway and default route (once)."""
        with self._lock:
            if (region, key) in self._seeded:
                return
            self._seeded.add((region, key))
            vpc = _find(ask([("Action", "DescribeVpcs"), ("Filter.1.Name", "is-default"),
                             ("Filter.1.Value.1", "true")]), "vpcSet/item/vpcId")
            if vpc is None or self._gateway_of(vpc, ask):
                return
            igw = _find(ask([("Action", "CreateInternetGateway")]), "internetGatewayId")
            if igw is None:
                return
            ask([("Action", "AttachInternetGateway"), ("InternetGatewayId", igw),
                 ("VpcId", vpc)])
            table = _find(ask([("Action", "DescribeRouteTables"),
                               ("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", vpc),
                               ("Filter.2.Name", "association.main"),
                               ("Filter.2.Value.1", "true")]), "routeTableSet/item/routeTableId")
            if table:
                ask([("Action", "CreateRoute"), ("RouteTableId", table),
                     ("DestinationCidrBlock", "0.0.0.0/0"), ("GatewayId", igw)])

    @staticmethod
    def _gateway_of(vpc: str, ask: Ask) -> str | None:
        obj = ask([("Action", "DescribeInternetGateways"),
                   ("Filter.1.Name", "attachment.vpc-id"), ("Filter.1.Value.1", vpc)])
        for igw in _all(obj, "internetGatewaySet/item"):
            if any(_find(a, "vpcId") == vpc for a in _all(igw, "attachmentSet/item")):
                return _find(igw, "internetGatewayId")
        return None

    # ---- refusals before moto

    def refuse(self, region: str, action: str, params: Params, ask: Ask) -> Ec2Error | None:
        if action == "AssociateAddress":
            return self._association(params, ask)
        if action == "DetachInternetGateway":
            return self._detach(params, ask)
        if action == "AttachInternetGateway":
            vpc = _get(params, "VpcId") or ""
            other = self._gateway_of(vpc, ask)
            if other and other != _get(params, "InternetGatewayId"):
                return Ec2Error("InvalidParameterValue",
                                f"Network {vpc} already has an internet gateway attached")
        if action == "AssociateRouteTable" and _get(params, "SubnetId"):
            return self._table_association(params, ask)
        if action == "ReleaseAddress" and _get(params, "AllocationId"):
            return self._release(params, ask)
        if action == "CreateRoute" and (_get(params, "GatewayId") or "").startswith("igw-"):
            return self._route(params, ask)
        if action in ("DeleteNatGateway", "DescribeNatGateways"):
            return self._nat_exists(region, action, params, ask)
        return None

    def _association(self, params: Params, ask: Ask) -> Ec2Error | None:
        vpc = None
        if _get(params, "NetworkInterfaceId"):
            vpc = _find(ask([("Action", "DescribeNetworkInterfaces"),
                             ("NetworkInterfaceId.1", _get(params, "NetworkInterfaceId") or "")]),
                        "networkInterfaceSet/item/vpcId")
        elif _get(params, "InstanceId"):
            vpc = _find(ask([("Action", "DescribeInstances"),
                             ("InstanceId.1", _get(params, "InstanceId") or "")]),
                        "instancesSet/item/vpcId")
        if vpc is None or self._gateway_of(vpc, ask):
            return None  # moto answers an unknown instance or interface itself
        return Ec2Error("Gateway.NotAttached",
                        f"Network {vpc} is not attached to any internet gateway")

    @staticmethod
    def _table_association(params: Params, ask: Ask) -> Ec2Error | None:
        table, subnet = _get(params, "RouteTableId") or "", _get(params, "SubnetId") or ""
        vpc = _find(ask([("Action", "DescribeRouteTables"), ("RouteTableId.1", table)]),
                    "routeTableSet/item/vpcId")
        subnet_vpc = _find(ask([("Action", "DescribeSubnets"), ("SubnetId.1", subnet)]),
                           "subnetSet/item/vpcId")
        if vpc is None or subnet_vpc is None:
            return None  # moto answers an unknown table or subnet itself
        if vpc != subnet_vpc:
            return Ec2Error("InvalidParameterValue",
                            f"route table {table} and subnet {subnet} belong to different "
                            "networks")
        found = ask([("Action", "DescribeRouteTables"),
                     ("Filter.1.Name", "association.subnet-id"), ("Filter.1.Value.1", subnet)])
        others = [t for t in _all(found, "routeTableSet/item")
                  if _find(t, "routeTableId") != table]
        if not others:
            return None
        return Ec2Error("Resource.AlreadyAssociated",
                        f"the specified association for route table {table} conflicts with "
                        "an existing association")

    @staticmethod
    def _release(params: Params, ask: Ask) -> Ec2Error | None:
        obj = ask([("Action", "DescribeAddresses"),
                   ("AllocationId.1", _get(params, "AllocationId") or "")])
        if not _find(obj, "addressesSet/item/associationId"):
            return None  # free (or unknown: moto answers that itself)
        return Ec2Error("InvalidIPAddress.InUse",
                        f"Address {_find(obj, 'addressesSet/item/publicIp')} is in use.")

    @staticmethod
    def _detach(params: Params, ask: Ask) -> Ec2Error | None:
        vpc = _get(params, "VpcId") or ""
        obj = ask([("Action", "DescribeNetworkInterfaces"), ("Filter.1.Name", "vpc-id"),
                   ("Filter.1.Value.1", vpc)])
        if not any(_find(eni, "association/publicIp")
                   for eni in _all(obj, "networkInterfaceSet/item")):
            return None
        return Ec2Error("DependencyViolation",
                        f"Network {vpc} has some mapped public address(es). Please unmap "
                        "those public address(es) before detaching the gateway.")

    def _route(self, params: Params, ask: Ask) -> Ec2Error | None:
        table, igw = _get(params, "RouteTableId") or "", _get(params, "GatewayId") or ""
        vpc = _find(ask([("Action", "DescribeRouteTables"), ("RouteTableId.1", table)]),
                    "routeTableSet/item/vpcId")
        gateways = ask([("Action", "DescribeInternetGateways"), ("InternetGatewayId.1", igw)])
        if vpc is None or gateways is None:
            return None  # moto answers an unknown table or gateway itself
        if any(_find(a, "vpcId") == vpc for a in _all(gateways, "attachmentSet/item")):
            return None
        return Ec2Error("InvalidParameterValue",
                        f"route table {table} and network gateway {igw} belong to different "
                        "networks")

    def _nat_exists(self, region: str, action: str, params: Params,
                    ask: Ask) -> Ec2Error | None:
        wanted = ([_get(params, "NatGatewayId") or ""] if action == "DeleteNatGateway" else
                  [v for k, v in params if re.fullmatch(r"NatGatewayId\.\d+", k)])
        if not wanted:
            return None
        obj = ask([("Action", "DescribeNatGateways")])
        known = {_find(n, "natGatewayId") for n in _all(obj, "natGatewaySet/item")}
        missing = [w for w in wanted if w not in known]
        if not missing:
            if action == "DeleteNatGateway":
                with self._lock:
                    self._failed.pop((region, wanted[0]), None)
            return None
        return Ec2Error("NatGatewayNotFound", f"The Nat Gateway {missing[0]} was not found")

    # ---- what moto answered, made AWS's

    def after(self, region: str, action: str, params: Params, body: bytes,
              ask: Ask) -> bytes:
        if action == "CreateNatGateway":
            return self._created_nat(region, params, body, ask)
        if action == "DeleteNatGateway":
            self._free_nat(_get(params, "NatGatewayId") or "", ask)
            return body
        if action == "DescribeNatGateways":
            return self._failed_view(region, body)
        return body

    def _created_nat(self, region: str, params: Params, body: bytes, ask: Ask) -> bytes:
        root = ET.fromstring(body)
        nat, vpc = _find(root, "natGatewayId"), _find(root, "vpcId")
        if nat:
            with self._lock:
                self._fresh.add((region, nat))
        if nat and vpc and _get(params, "ConnectivityType") != "private" and \
                self._gateway_of(vpc, ask) is None:
            with self._lock:
                self._failed[(region, nat)] = (
                    "Gateway.NotAttached", f"Network {vpc} has no Internet gateway attached")
            self._free_nat(nat, ask)
            ask([("Action", "DeleteNatGateway"), ("NatGatewayId", nat)])
        return body.replace(b"<state>available</state>", b"<state>pending</state>", 1)

    @staticmethod
    def _free_nat(nat: str, ask: Ask) -> None:
        """A NAT gateway's elastic IP disassociated, and its interface deleted."""
        obj = ask([("Action", "DescribeNatGateways"), ("NatGatewayId.1", nat)])
        for item in _all(obj, "natGatewayAddressSet/item"):
            eni = _find(item, "networkInterfaceId")
            addresses = ask([("Action", "DescribeAddresses"), ("Filter.1.Name",
                                                              "network-interface-id"),
                             ("Filter.1.Value.1", eni or "")])
            for address in _all(addresses, "addressesSet/item"):
                association = _find(address, "associationId")
                if association:
                    ask([("Action", "DisassociateAddress"), ("AssociationId", association)])
            if eni:
                ask([("Action", "DeleteNetworkInterface"), ("NetworkInterfaceId", eni)])

    def _failed_view(self, region: str, body: bytes) -> bytes:
        """A DescribeNatGateways answer as AWS gives it: a gateway is ``pending`` the
        first time it is described, then ``available`` or ``failed`` with its reason."""
        with self._lock:
            failed = {nat: why for (r, nat), why in self._failed.items() if r == region}
            fresh = {nat for r, nat in self._fresh if r == region}
        if not failed and not fresh:
            return body
        shown: set[str] = set()

        def rewrite(match: re.Match[str]) -> str:
            nat = match.group(1)
            if nat in fresh:
                shown.add(nat)
                fields = "<state>pending</state>"
            elif nat in failed:
                why = failed[nat]
                fields = (f"<state>failed</state><failureCode>{escape(why[0])}</failureCode>"
                          f"<failureMessage>{escape(why[1])}</failureMessage>")
            else:
                return match.group(0)
            return re.sub(r"<state>[a-z]+</state>", fields, match.group(0), count=1)

        out = _NAT_ITEM_RE.sub(rewrite, body.decode("utf-8")).encode("utf-8")
        with self._lock:
            self._fresh -= {(region, nat) for nat in shown}
        return out
