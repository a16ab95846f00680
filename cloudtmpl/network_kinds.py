"""The routing kinds: routers, their interfaces and gateways, extra routes, NAT
gateways and floating-IP associations, as tables (with their Heat aliases).

How each maps onto a cloud:

* ``Cloud::Network::Router`` - OpenStack: a Neutron router (``external_gateway_info``
  its gateway, SNAT on it the NAT of private networks).  AWS: a route table of the
  router's VPC and, with an external gateway, an internet gateway attached to that
  VPC and the table's default routes (``0.0.0.0/0``, ``::/0``) to it.  The VPC is
  ``network``; a template that leaves it out (as Heat's do) gets the network of the
  subnets its interfaces connect (:mod:`cloudtmpl.resolve.networking`).
* ``Cloud::Network::RouterInterface`` - a router's interface on a subnet (or port);
  AWS: the route table's association with the subnet.
* ``Cloud::Network::RouterGateway`` - Heat's legacy separate gateway of a router
  (OpenStack only; elsewhere write ``external_gateway_info`` on the router).
* ``Cloud::Network::Route`` - an extra route of a router: OpenStack's ``routes``
  (the next hop an address), AWS a route of the router's table (the next hop a NAT
  gateway, interface, instance or gateway id).
* ``Cloud::Network::NatGateway`` - AWS: a NAT gateway with its own elastic IP in a
  public subnet; OpenStack's equivalent is SNAT on the router.
* ``Cloud::Network::FloatingIPAssociation`` - a floating IP associated with a server
  or port by a resource of its own (Heat's ``OS::Neutron::FloatingIPAssociation``
  and ``OS::Nova::FloatingIPAssociation``).
"""

from __future__ import annotations

from cloudtmpl.resource_spec import Alias, P, ResourceType

ROUTER = ResourceType(
    kind="Cloud::Network::Router",
    description="A router between private networks and the outside (OpenStack: a "
    "Neutron router; AWS: a VPC route table, with an internet gateway when it has an "
    "external gateway).",
    properties={
        "external_gateway_info": P(
            "map", update_allowed=True,
            description="{network: external network name or id, enable_snat: true}; "
            "AWS: any network means the internet gateway"),
        "admin_state_up": P("boolean", default=True, update_allowed=True),
        "network": P("string", description="The network (AWS: the VPC) the router "
                     "serves; default: the network of the subnets its interfaces "
                     "connect. OpenStack routers are not tied to one network: ignored"),
    },
    attributes={
        "name": "Cloud-side name",
        "id": "Router id (AWS: the route table id)",
        "status": "Router status",
        "external_gateway_info": "The gateway: {network_id, enable_snat, "
                                 "external_fixed_ips}",
        "gateway_id": "AWS: the internet gateway's id",
    },
    ref="router id (AWS: the route table id)",
    tags=True,
    layer=1,
)

ROUTER_INTERFACE = ResourceType(
    kind="Cloud::Network::RouterInterface",
    description="Connects a subnet (or a port) to a router (AWS: associates the "
    "subnet with the router's route table).",
    properties={
        "router": P("string", required=True, description="Router id"),
        "subnet": P("string", description="Subnet id (this or port)"),
        "port": P("string", description="Port id (OpenStack; this or subnet)"),
    },
    attributes={"port_id": "The router's port on the subnet (OpenStack)",
                "subnet_id": "The subnet"},
    ref="router id:subnet id (or :port id)",
    tags=True,  # recorded on the router (OpenStack) or the association's table (AWS)
    layer=2,
)

ROUTER_GATEWAY = ResourceType(
    kind="Cloud::Network::RouterGateway",
    description="Heat's legacy gateway resource: sets a router's external gateway "
    "(OpenStack only; write external_gateway_info on the router elsewhere).",
    properties={
        "router": P("string", required=True, description="Router id"),
        "network": P("string", required=True, description="External network name or id"),
    },
    attributes={},
    ref="router id:network id",
    tags=True,
    layer=2,
)

ROUTE = ResourceType(
    kind="Cloud::Network::Route",
    description="An extra route of a router: traffic for destination goes to nexthop.",
    properties={
        "router": P("string", required=True, description="Router id"),
        "destination": P("string", required=True, description="CIDR, e.g. 0.0.0.0/0"),
        "nexthop": P("string", required=True,
                     description="OpenStack: an address on a subnet of the router; AWS: "
                     "a NAT gateway, network interface, instance or gateway id"),
    },
    attributes={},
    ref="router id:destination",
    tags=True,  # recorded on the router (it has tags; a route has none)
    layer=4,
)

NAT_GATEWAY = ResourceType(
    kind="Cloud::Network::NatGateway",
    description="A NAT gateway for private subnets (AWS), with an elastic IP of its "
    "own, made in a public subnet (one whose router has an internet gateway); route "
    "0.0.0.0/0 of a private router to it with a Cloud::Network::Route. OpenStack: "
    "use enable_snat on the router instead.",
    properties={
        "subnet": P("string", required=True, description="The public subnet it sits in"),
    },
    attributes={"id": "NAT gateway id", "public_ip": "Its elastic IP address",
                "private_ip": "Its address in the subnet"},
    ref="NAT gateway id",
    tags=True,
    ready_timeout=600.0,
    delete_timeout=600.0,
    layer=3,
)

FLOATING_IP_ASSOCIATION = ResourceType(
    kind="Cloud::Network::FloatingIPAssociation",
    description="Associates a floating IP (AWS: an elastic IP) with a server or port.",
    properties={
        "floating_ip": P("string", required=True,
                         description="Floating IP id (AWS: the allocation id)"),
        "server": P("string", description="Server id (this or port)"),
        "port": P("string", description="Port id (this or server)"),
        "fixed_ip_address": P("string", description="Which of the port's addresses "
                              "(default: its first IPv4 address)"),
    },
    attributes={"floating_ip_address": "The public address",
                "fixed_ip_address": "The private address it maps to"},
    ref="floating ip id:port id",
    tags=True,  # recorded on the floating IP
    layer=5,
)

KINDS = (ROUTER, ROUTER_INTERFACE, ROUTER_GATEWAY, ROUTE, NAT_GATEWAY,
         FLOATING_IP_ASSOCIATION)

_NAMED = frozenset({"name", "description"})
ALIASES = (
    Alias("OS::Neutron::Router", ROUTER.kind,
          ignored=_NAMED | {"distributed", "ha", "l3_agent_ids", "value_specs",
                            "availability_zone_hints", "tags"}),
    Alias("OS::Neutron::RouterInterface", ROUTER_INTERFACE.kind,
          properties={"router_id": "router", "subnet_id": "subnet", "port_id": "port"}),
    Alias("OS::Neutron::RouterGateway", ROUTER_GATEWAY.kind,
          properties={"router_id": "router", "network_id": "network"}),
    Alias("OS::Neutron::ExtraRoute", ROUTE.kind, properties={"router_id": "router"}),
    Alias("OS::Neutron::FloatingIPAssociation", FLOATING_IP_ASSOCIATION.kind,
          properties={"floatingip_id": "floating_ip", "port_id": "port"}),
    Alias("OS::Nova::FloatingIPAssociation", FLOATING_IP_ASSOCIATION.kind,
          properties={"server_id": "server"}),
)
