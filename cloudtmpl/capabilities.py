"""What each provider type offers: its kinds, which of them are listed only on
demand, and whether it can snapshot a volume before deleting it.

One entry per cloud.  A resource of a kind its target does not offer is a diagnostic
before any cloud is asked; discovery lists each kind a target offers in every
region the stack uses, except the *on-demand* kinds: each of those is another
service or listing to ask (Route 53, S3, ELB, Swift, Octavia; server groups; the
routing kinds) and most stacks have none, so they are listed only where the template
or the state has one (the price: such a resource dropped from the template *and* lost
from the state is not found).

The table is data with no import of the adapters: ``validate`` checks kinds
without loading any cloud's SDK.  Each adapter provides exactly the kinds declared
here (``tests/unit/test_capabilities.py`` holds them to it).
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudtmpl.model import Target

SERVER = "Cloud::Compute::Server"
KEYPAIR = "Cloud::Compute::KeyPair"
VOLUME = "Cloud::Block::Volume"
ATTACHMENT = "Cloud::Block::VolumeAttachment"
BUCKET = "Cloud::Storage::Bucket"
SERVER_GROUP = "Cloud::Compute::ServerGroup"
SECRET = "Cloud::Secret"  # Barbican, Secrets Manager: another service, on demand

# what both full IaaS clouds (AWS, OpenStack) offer
_IAAS = frozenset({
    SERVER, KEYPAIR, SERVER_GROUP, VOLUME, ATTACHMENT,
    "Cloud::Network::SecurityGroup",
    "Cloud::Network::FloatingIP",
    "Cloud::Network::Network",
    "Cloud::Network::Subnet",
    "Cloud::Network::Port",
})
# cloudtmpl itself: random strings, values, and software configs and deployments
# (over SSH, from this machine)
LOCAL_KINDS = frozenset({
    "Cloud::Random::String", "Cloud::Local::Value", "Cloud::Local::None",
    "Cloud::Local::Test",
    "Cloud::Software::Config", "Cloud::Software::StructuredConfig",
    "Cloud::Software::Component",
    "Cloud::Software::CloudConfig", "Cloud::Software::MultipartMime",
    "Cloud::Software::Deployment", "Cloud::Software::DeploymentGroup",
    "Cloud::Scaling::Policy", "Cloud::Scaling::LaunchConfiguration",
})
# what the generic libcloud adapter can ever provide; each libcloud target offers the
# subset its driver has (a built-in table per driver id, the driver class's verbs,
# ``capabilities:`` in cloudtmpl.yaml), kept in the target's options
LIBCLOUD_KINDS = frozenset({SERVER, KEYPAIR, VOLUME, ATTACHMENT})


@dataclass(frozen=True)
class Capabilities:
    """What one provider type (or one libcloud target) offers."""

    kinds: frozenset[str]
    on_demand: frozenset[str] = frozenset()  # listed only where template or state has one
    snapshots: bool = False  # deletion_policy Snapshot: a volume snapshot before delete
    # deletion_policy Snapshot on a server: an image of it before delete, as Heat takes
    # (elsewhere the server is kept, as with Retain)
    images: bool = False

LOAD_BALANCER = "Cloud::LB::LoadBalancer"
# wait condition handles and conditions: signals in the object store (S3, Swift)
_WAIT = frozenset({"Cloud::Orchestration::WaitConditionHandle",
                   "Cloud::Orchestration::WaitCondition"})
_AWS_SERVICES = frozenset({"Cloud::DNS::Zone", "Cloud::DNS::Record", BUCKET, LOAD_BALANCER})
# AWS's routing: route tables (with internet gateways), their subnet associations and
# routes, NAT gateways, elastic-IP associations (Heat's RouterGateway is OpenStack's)
_AWS_ROUTING = frozenset({"Cloud::Network::Router", "Cloud::Network::RouterInterface",
                          "Cloud::Network::Route", "Cloud::Network::NatGateway",
                          "Cloud::Network::FloatingIPAssociation"})
# Octavia: load balancers, and its own listeners, pools, members and health monitors
# (OS::Octavia::*, OpenStack only)
_OCTAVIA = frozenset({LOAD_BALANCER, "Cloud::LB::Listener", "Cloud::LB::Pool",
                      "Cloud::LB::PoolMember", "Cloud::LB::HealthMonitor"})
# a Neutron router and what hangs off it, and floating-IP associations: on demand
# (one more listing, routers, that only network stacks need)
_OS_ROUTING = frozenset({
    "Cloud::Network::Router", "Cloud::Network::RouterInterface",
    "Cloud::Network::RouterGateway", "Cloud::Network::Route",
    "Cloud::Network::FloatingIPAssociation",
})
# Keystone's projects, users, groups, roles, domains, regions, services and endpoints
# (OS::Keystone::*, OpenStack only; an admin's credentials): on demand, another service
IDENTITY = frozenset({f"Cloud::Identity::{k}" for k in (
    "Domain", "Project", "Role", "Group", "User", "Region", "Service", "Endpoint")})
CLOUDS: dict[str, Capabilities] = {
    # DNS zones/records: AWS only (the OpenStack emulator has no Designate); load
    # balancers: ELB and Octavia; buckets: S3 and Swift.  Snapshots: EBS, Cinder
    # backups.  Server groups are on demand too: one more listing per region, and most
    # stacks have none; so are the routing kinds (four more listings on AWS).  Server
    # images (deletion_policy Snapshot): Nova's createImage; AWS servers are kept
    # instead.
    "aws": Capabilities(_IAAS | _AWS_SERVICES | _AWS_ROUTING | _WAIT | {SECRET},
                        on_demand=_AWS_SERVICES | {SERVER_GROUP, SECRET} | _AWS_ROUTING
                        | _WAIT,
                        snapshots=True),
    # NAT gateways are AWS's: OpenStack's equivalent is SNAT on the router
    "openstack": Capabilities(_IAAS | {BUCKET, SECRET} | _OCTAVIA | _OS_ROUTING | _WAIT
                              | IDENTITY,
                              on_demand=frozenset({BUCKET, SERVER_GROUP, SECRET}) | _OCTAVIA
                              | _OS_ROUTING | _WAIT | IDENTITY,
                              snapshots=True, images=True),
    "local": Capabilities(LOCAL_KINDS),
    "libcloud": Capabilities(LIBCLOUD_KINDS),
}


# what to write instead of a kind a provider type does not offer, where it has another way


def of(target: Target) -> Capabilities:
    """What ``target`` offers (a libcloud target: what its own driver has)."""
    caps = CLOUDS.get(target.type, Capabilities(frozenset()))
    if target.type != "libcloud":
        return caps
    kinds = target.options.get("kinds")
    return Capabilities(
        frozenset(str(k) for k in kinds) if kinds is not None else caps.kinds,
        snapshots=bool(target.options.get("snapshots")),
    )


#: What a cloud offers in place of a kind it lacks, for the diagnostic's hint.
_INSTEAD: dict[tuple[str, str], str] = {
    ("openstack", "Cloud::Network::NatGateway"):
        "OpenStack has no NAT gateway: use enable_snat in the router's "
        "external_gateway_info (a router with an external gateway does source NAT for "
        "its subnets; Neutron's SNAT is on by default)",
    ("aws", "Cloud::Network::RouterGateway"):
        "an AWS router's gateway is its internet gateway: write external_gateway_info "
        "(any network, e.g. {network: public}) on the Cloud::Network::Router instead",
    **{("aws", f"Cloud::LB::{part}"):
       "Octavia's listeners, pools, members and health monitors are OpenStack's: on AWS "
       "write listeners, members and health_check on the Cloud::LB::LoadBalancer"
       for part in ("Listener", "Pool", "PoolMember", "HealthMonitor")},
    **{(cloud, kind): "Keystone's projects, users, groups, roles, domains, regions, "
       "services and endpoints are OpenStack's: place the resource on an OpenStack target "
       "(with an admin's credentials)" for cloud in ("aws", "libcloud") for kind in IDENTITY},
}


def instead(provider_type: str, kind: str) -> str | None:
    """What ``provider_type`` offers in place of ``kind`` (None: nothing to suggest)."""
    return _INSTEAD.get((provider_type, kind))
