"""What a template's networks imply, read from the resources as Heat reads them.

Three rules, applied once every resource is placed:

* **Heat's implicit dependencies.**  A floating IP (or floating-IP association) on a
  port or server of a network the template creates depends on the template's router
  interfaces on that network's subnets (and so on their routers) and on the legacy
  gateway resources of those routers: the address can only be associated once the
  network is routed to the outside.  Heat adds the same
  edges (``FloatingIP.add_dependencies``), so its templates do not write them.
* **A floating IP needs a route out.**  Where the template shows the whole path - a
  floating IP on a network it creates - and no router with an external gateway has
  an interface on one of that network's subnets, the cloud would refuse the
  association (Neutron: ``External network … is not reachable from subnet …``; EC2:
  ``Gateway.NotAttached``): a diagnostic at plan time instead of a failed apply.
* **The VPC of AWS groups and routers.**  An EC2 security group and an EC2 route table
  belong to one VPC; an OpenStack group or router belongs to none, so Heat templates
  never say which.  On an ``aws`` target a security group without ``network`` takes
  the network of the ports and servers that use it, and a router without ``network``
  the network of the subnets its interfaces connect, when they all name the same
  network of the template.  (On other clouds the property means nothing and is left
  alone, so their plans do not change.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from cloudtmpl import network_kinds, resources
from cloudtmpl.diagnostics import Diagnostic
from cloudtmpl.functions import GetResource
from cloudtmpl.model import DesiredResource, Target

FLOATING_IP = resources.FLOATING_IP.kind
FLOATING_IP_ASSOCIATION = network_kinds.FLOATING_IP_ASSOCIATION.kind
NETWORK = resources.NETWORK.kind
PORT = resources.PORT.kind
ROUTER = network_kinds.ROUTER.kind
ROUTER_GATEWAY = network_kinds.ROUTER_GATEWAY.kind
ROUTER_INTERFACE = network_kinds.ROUTER_INTERFACE.kind
SECURITY_GROUP = resources.SECURITY_GROUP.kind
SERVER = resources.SERVER.kind
SUBNET = resources.SUBNET.kind

Resources = Mapping[str, DesiredResource]


def _ref(value: Any) -> str | None:
    """The resource a property names with ``get_resource`` (None: anything else)."""
    return value.resource if isinstance(value, GetResource) else None


class _Net:
    """The template's network resources and what hangs off them."""

    def __init__(self, resources: Resources) -> None:
        self.res = resources

    def kind(self, name: str | None) -> str | None:
        res = self.res.get(name or "")
        return res.kind if res is not None else None

    def network_of(self, name: str | None) -> str | None:
        """The template network a port, subnet or network resource is on."""
        res = self.res.get(name or "")
        if res is None:
            return None
        if res.kind == NETWORK:
            return res.address
        if res.kind in (PORT, SUBNET):
            net = _ref(res.properties.get("network"))
            return net if self.kind(net) == NETWORK else None
        return None

    def server_networks(self, name: str | None) -> set[str]:
        """The template networks a server's NICs are on."""
        res = self.res.get(name or "")
        if res is None or res.kind != SERVER:
            return set()
        nets: set[str] = set()
        nics = res.properties.get("networks")
        for nic in nics if isinstance(nics, list) else []:
            if not isinstance(nic, Mapping):
                continue
            for key in ("network", "port", "subnet"):
                net = self.network_of(_ref(nic.get(key)))
                if net is not None:
                    nets.add(net)
        return nets

    def target_networks(self, res: DesiredResource) -> set[str]:
        """The template networks a floating IP (or association) maps onto."""
        port = _ref(res.properties.get("port"))
        if port is not None and self.kind(port) == PORT:
            net = self.network_of(port)
            return {net} if net else set()
        return self.server_networks(_ref(res.properties.get("server")))

    def interfaces(self, network: str) -> list[DesiredResource]:
        """The template's router interfaces on a subnet (or port) of ``network``."""
        return [r for r in self.res.values() if r.kind == ROUTER_INTERFACE
                and self.network_of(_ref(r.properties.get("subnet"))
                                    or _ref(r.properties.get("port"))) == network]

    def gateways(self, interface: DesiredResource) -> set[str]:
        """The template's legacy gateway resources of an interface's router."""
        router = _ref(interface.properties.get("router"))
        return {r.address for r in self.res.values() if r.kind == ROUTER_GATEWAY
                and _ref(r.properties.get("router")) == router}

    def routed_out(self, interface: DesiredResource) -> bool:
        """Whether an interface's router has an external gateway (on the router or a
        gateway resource), or is not the template's (then the cloud knows)."""
        router = _ref(interface.properties.get("router"))
        res = self.res.get(router or "")
        if res is None or res.kind != ROUTER:
            return True
        return bool(res.properties.get("external_gateway_info") or self.gateways(interface))


def _one(values: Iterable[str | None]) -> str | None:
    found = set(values)
    if len(found) == 1:
        (only,) = found
        return only
    return None


def _group_users(net: _Net, group: str) -> list[str | None]:
    """The networks of the ports and servers that name ``group`` (None: one not on a
    network of the template)."""
    out: list[str | None] = []
    for res in net.res.values():
        groups = res.properties.get("security_groups")
        if res.kind not in (PORT, SERVER) or not isinstance(groups, list) or \
                group not in {_ref(g) for g in groups}:
            continue
        if res.kind == PORT:
            out.append(net.network_of(res.address))
        else:
            nets = net.server_networks(res.address)
            out.extend(nets if nets else [None])
    return out


def _router_users(net: _Net, router: str) -> list[str | None]:
    return [net.network_of(_ref(r.properties.get("subnet")) or _ref(r.properties.get("port")))
            for r in net.res.values()
            if r.kind == ROUTER_INTERFACE and _ref(r.properties.get("router")) == router]


def _with_network(res: DesiredResource, network: str) -> DesiredResource:
    ref = GetResource((network,), res.loc)
    return replace(res, properties={**res.properties, "network": ref},
                   depends_on=res.depends_on | {network})


def settle(desired: Resources, targets: Mapping[str, Target]
           ) -> tuple[dict[str, DesiredResource], list[Diagnostic]]:
    """The resources with Heat's implicit network dependencies and the VPC of AWS
    groups and routers filled in, and the floating IPs that cannot reach the outside."""
    net = _Net(desired)
    out = dict(desired)
    diags: list[Diagnostic] = []
    for name, res in desired.items():
        if res.kind in (FLOATING_IP, FLOATING_IP_ASSOCIATION):
            nets = net.target_networks(res)
            found = [i for n in sorted(nets) for i in net.interfaces(n)]
            deps = {i.address for i in found} | {g for i in found for g in net.gateways(i)}
            if deps - res.depends_on:
                out[name] = replace(res, depends_on=res.depends_on | deps)
            unrouted = sorted(n for n in nets
                              if not any(net.routed_out(i) for i in net.interfaces(n)))
            if unrouted:
                diags.append(Diagnostic(
                    "floating-ip-unreachable",
                    f"resource '{name}': the floating IP is for network "
                    f"'{unrouted[0]}', which no router with an external gateway "
                    "connects to the outside; the cloud would refuse the association",
                    res.loc,
                    f"add a router with external_gateway_info (OS::Neutron::Router) and "
                    f"an interface (OS::Neutron::RouterInterface) on a subnet of "
                    f"'{unrouted[0]}'"))
        target = targets.get(res.placement.target)
        if target is None or target.type != "aws" or res.properties.get("network"):
            continue
        if res.kind == SECURITY_GROUP:
            found_net = _one(_group_users(net, name))
        elif res.kind == ROUTER:
            found_net = _one(_router_users(net, name))
        else:
            continue
        if found_net is not None:
            out[name] = _with_network(out[name], found_net)
    return out, diags
