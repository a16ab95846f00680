"""AWS (and EC2-compatible clouds, and the AWS sandbox): one handler per kind.

Each module holds one kind family; :data:`HANDLERS` maps every kind the adapter
provides to its handler, and :data:`LISTINGS` names the raw listings discovery
fetches (each once per region, in parallel, filtered server side by the stack's tag
or name prefix, following every page):

==========================  ===========================  ==========================
kind                        module                       listing
==========================  ===========================  ==========================
Compute::Server             :mod:`.compute`              DescribeInstances
Compute::KeyPair            :mod:`.keys`                 DescribeKeyPairs
Compute::ServerGroup        :mod:`.placement`            DescribePlacementGroups
Block::Volume, Attachment   :mod:`.block`                DescribeVolumes
Network::SecurityGroup      :mod:`.security`             DescribeSecurityGroups
Network::FloatingIP         :mod:`.address`              DescribeAddresses
Network::Network/Subnet/    :mod:`.network`              DescribeVpcs, DescribeSubnets,
Port                                                     DescribeNetworkInterfaces
Network::Router,            :mod:`.routing`              DescribeRouteTables,
RouterInterface, Route                                   DescribeInternetGateways
Network::NatGateway         :mod:`.nat`                  DescribeNatGateways
Network::FloatingIP-        :mod:`.address`              DescribeAddresses (by the
Association                                              association's stack tag)
DNS::Zone, DNS::Record      :mod:`.dns` (Route 53)       ListHostedZones (+ record sets)
Storage::Bucket             :mod:`.storage` (S3)         ListBuckets (+ tags, versioning)
LB::LoadBalancer            :mod:`.lb` (classic ELB)     DescribeLoadBalancers (+ tags)
==========================  ===========================  ==========================

The transport (credentials, endpoints, connections, request counting, retries, the
rate limiter) is :mod:`.client`; the EC2 query vocabulary (XML, filters, identity
tags) :mod:`.ec2`, the raw-XML kinds' shared plumbing :mod:`.raw`.  Choices before
discovery (flavors, images, key pairs) are :mod:`.catalog`.

Identity: every object gets the deterministic ``name`` (the ``Name`` tag; the key
pair / group name) and the tags ``cloudtmpl:stack``, ``cloudtmpl:resource`` and
``cloudtmpl:spec``, written *in the create call itself* (``TagSpecification``) so no
untagged object ever exists.  Where a create needs follow-up calls (security-group
rules, elastic-IP association, a router's internet gateway and default routes) the
spec tag is written only once the object matches the spec: a crash in between leaves
an adoptable object that the next plan converges.

Residual risks (documented, not fixable from here):

* ``AllocateAddress``, ``CreateVpc``, ``CreateSubnet``, ``CreateSecurityGroup`` and
  ``ImportKeyPair`` have no idempotency token: after an ambiguous failure the retry
  first looks for the object by this stack's resource tag or deterministic name.
* A VPC gets an internet gateway only from a ``Cloud::Network::Router`` with
  ``external_gateway_info``: without one an elastic IP on an interface of a new VPC
  fails with the cloud's ``Gateway.NotAttached`` (its message shown).
* Router interfaces, routes and floating-IP associations have no cloud object with
  tags: they are recorded on the route table or the elastic IP *before* the call that
  makes them, so one never exists without its record (a record without it is simply
  not reported).
* ``RunInstances``/``CreateVolume`` are retried with the same ``ClientToken`` (AWS
  then returns the first object; moto ignores it).

Adding a kind: a handler class in the family's module (``kind``, ``listings``,
``to_live``, ``create``, ``update``, ``delete``), its lister in :data:`LISTINGS` if it
reads a new one, and one line in :data:`HANDLERS`.  Which properties may change in
place is the kind's schema (:mod:`cloudtmpl.resources`), checked by the dispatcher.
"""

from __future__ import annotations

from typing import Any

from cloudtmpl.catalog import ImageFilter
from cloudtmpl.model import LiveResource, Target
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import (
    address,
    block,
    catalog,
    compute,
    dns,
    keys,
    lb,
    nat,
    network,
    placement,
    raw,
    routing,
    secrets,
    security,
    signals,
    storage,
)
from cloudtmpl.providers.aws.client import AwsClient, Lister
from cloudtmpl.providers.base import (
    ATTACHMENT,
    FLOATING_IP,
    FLOATING_IP_ASSOCIATION,
    KEYPAIR,
    NAT_GATEWAY,
    NETWORK,
    PORT,
    ROUTE,
    ROUTER,
    ROUTER_INTERFACE,
    SECRET,
    SECURITY_GROUP,
    SERVER,
    SERVER_GROUP,
    SUBNET,
    VOLUME,
    Choice,
)

HANDLERS: dict[str, kit.Handler[AwsClient]] = {
    SERVER: compute.Server(),
    KEYPAIR: keys.KeyPair(),
    SERVER_GROUP: placement.ServerGroup(),
    VOLUME: block.Volume(),
    ATTACHMENT: block.VolumeAttachment(),
    SECURITY_GROUP: security.SecurityGroup(),
    FLOATING_IP: address.FloatingIP(),
    NETWORK: network.Network(),
    SUBNET: network.Subnet(),
    PORT: network.Port(),
    ROUTER: routing.Router(),
    ROUTER_INTERFACE: routing.RouterInterface(),
    ROUTE: routing.Route(),
    NAT_GATEWAY: nat.NatGateway(),
    FLOATING_IP_ASSOCIATION: address.FloatingIPAssociation(),
    dns.ZONE: dns.Zone(),
    dns.RECORD: dns.Record(),
    storage.BUCKET: storage.Bucket(),
    signals.HANDLE.kind: signals.Handle(),
    signals.CONDITION.kind: signals.Condition(),
    lb.LOAD_BALANCER: lb.LoadBalancer(),
    SECRET: secrets.SecretHandler(),
}

LISTINGS: dict[str, Lister] = {
    "instances": compute.list_instances,
    "key_pairs": keys.list_key_pairs,
    "placement_groups": placement.list_placement_groups,
    "volumes": block.list_volumes,
    **{raw.RAW[kind].listing: raw.lister(kind) for kind in raw.RAW},
    "associated_addresses": address.list_associated,
    "zones": dns.list_zones,
    "buckets": storage.list_buckets,
    "wait_conditions": signals.list_conditions,
    "balancers": lb.list_balancers,
    "secrets": secrets.list_secrets,
}

# each is another service to ask (Route 53, S3, ELB, Secrets Manager): listed only on demand
SERVICE_KINDS = frozenset({dns.ZONE, dns.RECORD, storage.BUCKET, lb.LOAD_BALANCER, SECRET,
                           signals.HANDLE.kind, signals.CONDITION.kind})
# routers, their interfaces and routes, NAT gateways, elastic-IP associations: four more
# listings per region (route tables, internet gateways, NAT gateways, associated
# addresses) that most stacks do not need
ROUTING_KINDS = frozenset({ROUTER, ROUTER_INTERFACE, ROUTE, NAT_GATEWAY,
                           FLOATING_IP_ASSOCIATION})


class AwsAdapter(kit.Dispatcher[AwsClient]):
    """The AWS adapter: :data:`HANDLERS` over one :class:`AwsClient`."""

    # server groups: one more listing, rarely used; routing: four more
    on_demand = SERVICE_KINDS | {SERVER_GROUP} | ROUTING_KINDS
    snapshot_kind = "EBS snapshot"

    def __init__(self, target: Target, **options: Any) -> None:
        """``options``: those of :class:`.client.AwsClient` (sleep, clock, retry_policy,
        page_size, poll_max_interval)."""
        super().__init__(AwsClient(target, LISTINGS, **options), HANDLERS)

    def lookup_choice(self, region: str, what: str, value: str) -> Choice:
        return catalog.lookup_choice(self.client, region, what, value)

    def find_image(self, region: str, flt: ImageFilter) -> Choice:
        return catalog.find_image(self.client, region, flt)

    def snapshot_volume(self, live: LiveResource, *, stack: str, timeout: float) -> str | None:
        return block.snapshot_volume(self.client, live, stack, timeout)


