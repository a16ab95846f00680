"""The adapter contract: every adapter, every kind it declares, the same life.

Each adapter (AWS on the AWS sandbox, OpenStack on the OpenStack sandbox, a ``type:
libcloud`` target on the sandbox's file-backed driver), with its real drivers over
the sandboxes' HTTP (the file cloud has none: it is a libcloud driver over a JSON
file), and each kind its package's ``HANDLERS`` table provides:

* ``test_lifecycle``: create → discover finds it with the same address, name,
  properties and spec → an update of an ``update_allowed`` property happens in place
  (same id; where the kind has such a property) and discovery sees it → delete →
  discover no longer finds it → delete again succeeds;
* ``test_create_adopts_after_a_lost_answer``: the create's request takes effect but
  its answer is lost (the sandbox's ``drop_after`` fault, on the first request after
  the adapter is warmed up); the retry finds what the first attempt made and adopts
  it (``kit.create_or_adopt``; EC2's ``ClientToken`` for RunInstances/CreateVolume)
  instead of making a second one.

A kind that needs other resources first gets them from its row of :data:`CASES`
(made through the same adapter, removed after it); a kind without an
``update_allowed`` property has no update there, and the test holds the schema to
that.  ``test_every_declared_kind_has_a_case`` keeps the table and the adapters'
declared kinds (``capabilities.py``) equal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloudtmpl import capabilities, resources
from cloudtmpl.model import TAG_STACK, LiveResource
from cloudtmpl.providers import aws as aws_provider
from cloudtmpl.providers import libcloud as libcloud_provider
from cloudtmpl.providers import openstack as openstack_provider
from cloudtmpl.providers.aws import dns, lb, routing, storage
from cloudtmpl.providers.base import (
    ATTACHMENT,
    FLOATING_IP,
    FLOATING_IP_ASSOCIATION,
    HEALTH_MONITOR,
    KEYPAIR,
    LISTENER,
    LOAD_BALANCER,
    NAT_GATEWAY,
    NETWORK,
    POOL,
    POOL_MEMBER,
    PORT,
    ROUTE,
    ROUTER,
    ROUTER_GATEWAY,
    ROUTER_INTERFACE,
    SECRET,
    SECURITY_GROUP,
    SERVER,
    SERVER_GROUP,
    SUBNET,
    VOLUME,
    CloudError,
)
from cloudtmpl.providers.openstack import catalog as openstack_catalog
from cloudtmpl.providers.openstack import neutron as openstack_neutron
from cloudtmpl.resources import canonical_rules
from cloudtmpl.state import StateStore
from tests.integration import adapters
from tests.integration.adapters import STACK, TIMEOUT, admin, create, public_key, update

pytestmark = pytest.mark.integration

ADDRESS = "it"  # the resource under test; what a case needs first is named pre-*
SSH = {"protocol": "tcp", "port_range_min": 22, "port_range_max": 22}
HTTPS = {"protocol": "tcp", "port_range_min": 443, "port_range_max": 443}
HANDLERS: dict[str, Any] = {
    "aws": aws_provider.HANDLERS,
    "openstack": openstack_provider.HANDLERS,
    "libcloud": libcloud_provider.HANDLERS,
}


# --- the clouds ------------------------------------------------------------------------


@dataclass
class World:
    """One adapter on its sandbox, and the prerequisites a case made there."""

    cloud: str
    adapter: Any
    region: str
    info: dict[str, Any] | None  # the sandbox's status dict (None: the file cloud)
    fresh: Callable[..., Any]  # another adapter on the same cloud (keyword arguments)
    amis: dict[tuple[str, str], str] = field(default_factory=dict)
    made: list[LiveResource] = field(default_factory=list)

    def pre(self, kind: str, address: str, props: dict[str, Any]) -> LiveResource:
        """A prerequisite, made through the adapter; deleted after the test."""
        live = create(self.adapter, self.region, kind, f"pre-{address}", props)
        self.made.append(live)
        return live

    def server_props(self) -> dict[str, Any]:
        if self.cloud == "aws":
            return {"image": self.amis[(self.region, "ubuntu-22.04")], "flavor": "t3.micro"}
        if self.cloud == "openstack":
            return {"image": "ubuntu-22.04", "flavor": "m1.small"}
        return {"image": "img-2204", "flavor": "fc-small"}

    def server(self) -> str:
        return self.pre(SERVER, "server", self.server_props()).physical_id

    def volume(self) -> str:
        return self.pre(VOLUME, "volume", {"size": 1}).physical_id

    def network(self) -> str:
        props = {"cidr": "10.20.0.0/16"} if self.cloud == "aws" else {}
        return self.pre(NETWORK, "net", props).physical_id

    def subnet(self, network: str) -> str:
        return self.pre(SUBNET, "sub", {"network": network, "cidr": "10.20.1.0/24"}).physical_id

    def group_in(self, network: str, name: str) -> str:
        """A security group a port in ``network`` may take (EC2: one of the VPC)."""
        props = {"network": network} if self.cloud == "aws" else {}
        return self.pre(SECURITY_GROUP, name, props).physical_id

    def clean_up(self) -> None:
        """Delete the prerequisites (the most recent first), and VPC groups with them."""
        for live in reversed(self.made):
            if self.cloud == "aws" and live.kind == NETWORK:
                _delete_vpc_groups(self, live.physical_id)
            self.adapter.delete(live, timeout=TIMEOUT)
        self.made.clear()

    def arm_lost_answer(self, armed: bool, only: str = "") -> None:
        """Every API request from now on (OpenStack: of the service ``only``, if given)
        takes effect and loses its answer; or no more."""
        assert self.info is not None
        rate = 1.0 if armed else 0.0
        knobs: dict[str, Any] = {"drop_rate": rate, "drop_after": rate}
        if self.cloud == "openstack":
            knobs["services"] = [only] if armed and only else []
        admin(self.info, "config", knobs)


def _delete_vpc_groups(world: World, vpc: str) -> None:
    obj = world.adapter.client.ec2(world.region, "DescribeSecurityGroups",
                                   {"Filter.1.Name": "vpc-id", "Filter.1.Value.1": vpc})
    for el in obj.iter():
        if el.tag.endswith("}item") and any(c.tag.endswith("}groupName") and c.text != "default"
                                             for c in el):
            gid = next(c.text for c in el if c.tag.endswith("}groupId"))
            world.adapter.client.ec2(world.region, "DeleteSecurityGroup", {"GroupId": gid})


CLOUDS = ("aws", "openstack", "libcloud")


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    cloud: str = request.param
    if cloud == "aws":
        info = request.getfixturevalue("aws_reset")
        amis = request.getfixturevalue("catalog_amis")
        made = World(cloud, adapters.aws(info), adapters.AWS_REGION, info,
                     lambda **kw: adapters.aws(info, **kw), amis=amis)
    elif cloud == "openstack":
        info = request.getfixturevalue("openstack_reset")
        admin(info, "config", {"build_seconds": 0, "volume_seconds": 0})
        made = World(cloud, adapters.openstack(info), adapters.OPENSTACK_REGION, info,
                     lambda **kw: adapters.openstack(info, **kw))
    else:  # attachment records live in the state store, one for every adapter made
        store = StateStore.open(str(tmp_path / "state.db"))
        request.addfinalizer(store.close)
        made = World(cloud, adapters.libcloud(tmp_path, store=store), adapters.LAB_REGION,
                     None, lambda **kw: adapters.libcloud(tmp_path, store=store, **kw))
    yield made
    if made.info is not None:
        made.arm_lost_answer(False)  # whatever a failed test left armed


# --- the per-kind table ----------------------------------------------------------------


@dataclass(frozen=True)
class Update:
    """An in-place update: the whole desired properties, the names changed, and what
    the live resource reports for them afterwards (a name left out of ``expect`` is
    one the cloud does not report, which the case says in ``unreported``)."""

    properties: dict[str, Any]
    changed: frozenset[str]
    expect: dict[str, Any]
    unreported: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Lost:
    """How to lose the answer of a kind's create (its first write) and no other.

    ``warm``: what to have the adapter cache first, so that the write is the create's
    first request; ``only``: OpenStack's one service whose requests lose their answers
    (empty: every request); ``census``: the addresses of the kind the cloud holds,
    where discovery cannot see a half-made one (default: discovery).  ``cannot``: why
    the sandbox's knobs cannot lose only the write's answer (the case is skipped)."""

    warm: Callable[[World, Any], None] | None = None
    only: str = ""
    census: Callable[[World], list[str]] | None = None
    cannot: str = ""


@dataclass(frozen=True)
class Case:
    """How to make one kind on one cloud: its properties (making what it needs first),
    and an in-place update (None: the kind has no ``update_allowed`` property).
    ``refused``: the adapter refuses every in-place change, and says why.  ``unkept``:
    why the cloud's object cannot carry the spec hash (then discovery reports none and
    plans use the state's last-applied spec); empty: it does."""

    make: Callable[[World], dict[str, Any]]
    update: Callable[[World, dict[str, Any]], Update] | None = None
    refused: str = ""
    unkept: str = ""
    lost: Lost = Lost()


def _changed(props: dict[str, Any], expect: dict[str, Any] | None = None,
             unreported: frozenset[str] = frozenset(), **new: Any) -> Update:
    return Update({**props, **new}, frozenset(new), new if expect is None else expect,
                  unreported)


def _server_update(world: World, props: dict[str, Any]) -> Update:
    flavor = {"aws": "t3.small", "openstack": "m1.medium", "libcloud": "fc-medium"}[world.cloud]
    return _changed(props, flavor=flavor, metadata={"team": "b"})


def _server(world: World) -> dict[str, Any]:
    return {**world.server_props(), "metadata": {"team": "a"}}


def _keypair(world: World) -> dict[str, Any]:
    return {"public_key": public_key()}


def _volume(world: World) -> dict[str, Any]:
    return {"size": 1, "metadata": {"tier": "db"}}


def _volume_update(world: World, props: dict[str, Any]) -> Update:
    return _changed(props, size=2, metadata={"tier": "web"})


def _attachment(world: World) -> dict[str, Any]:
    server, volume = world.server(), world.volume()
    return {"instance_uuid": server, "volume_id": volume}


def _group(world: World) -> dict[str, Any]:
    return {"description": "contract", "rules": [SSH]}


def _group_update(world: World, props: dict[str, Any]) -> Update:
    return _changed(props, {"rules": canonical_rules([HTTPS])}, rules=[HTTPS])


def _floating_update(world: World, props: dict[str, Any]) -> Update:
    server = world.server()
    return _changed(props, server=server)


def _network(world: World) -> dict[str, Any]:
    return {"cidr": "10.30.0.0/16"} if world.cloud == "aws" else {}


def _network_update(world: World, props: dict[str, Any]) -> Update:
    # EC2 has no administratively down VPC (it refuses False, test_aws_adapter.py):
    # up is the one in-place value there
    return _changed(props, admin_state_up=world.cloud == "aws")


def _subnet(world: World) -> dict[str, Any]:
    return {"network": world.network(), "cidr": "10.20.1.0/24"}


def _subnet_update(world: World, props: dict[str, Any]) -> Update:
    if world.cloud == "aws":  # EC2 subnets have no DHCP/DNS settings: last-applied only
        return _changed(props, {}, frozenset({"dns_nameservers"}),
                        dns_nameservers=["9.9.9.9"])
    return _changed(props, enable_dhcp=False, dns_nameservers=["9.9.9.9"])


def _port(world: World) -> dict[str, Any]:
    network = world.network()
    return {"network": network, "fixed_ips": [{"subnet": world.subnet(network)}]}


def _port_update(world: World, props: dict[str, Any]) -> Update:
    group = world.group_in(props["network"], "port-group")
    return _changed(props, security_groups=[group])


INTERNET = {"network": "public"}  # AWS: any network means the internet gateway


def _router(world: World) -> dict[str, Any]:
    return {"network": world.network(), "external_gateway_info": INTERNET}


def _router_update(world: World, props: dict[str, Any]) -> Update:
    return _changed(props, external_gateway_info=None)  # the internet gateway goes


def _public_subnet(world: World) -> tuple[str, str, str]:
    """(VPC, subnet, router): a subnet whose router has an internet gateway."""
    network = world.network()
    subnet = world.subnet(network)
    router = world.pre(ROUTER, "router", {"network": network,
                                          "external_gateway_info": INTERNET}).physical_id
    return network, subnet, router


def _router_interface(world: World) -> dict[str, Any]:
    network = world.network()
    subnet = world.subnet(network)
    router = world.pre(ROUTER, "router", {"network": network}).physical_id
    return {"router": router, "subnet": subnet}


def _route(world: World) -> dict[str, Any]:
    network, subnet, router = _public_subnet(world)
    port = world.pre(PORT, "port", {"network": network, "fixed_ips": [{"subnet": subnet}]})
    return {"router": router, "destination": "10.99.0.0/16", "nexthop": port.physical_id}


def _nat_gateway(world: World) -> dict[str, Any]:
    return {"subnet": _public_subnet(world)[1]}


def _floating_association(world: World) -> dict[str, Any]:
    # a server of the default VPC, whose internet gateway AWS made with the account
    address = world.pre(FLOATING_IP, "fip", {}).physical_id
    return {"floating_ip": address, "server": world.server()}


def _table_records(world: World, prefix: str) -> list[str]:
    """The addresses recorded (``prefix``) on the stack's route tables."""
    obj = world.adapter.client.ec2(world.region, "DescribeRouteTables", {
        "Filter.1.Name": f"tag:{TAG_STACK}", "Filter.1.Value.1": STACK})
    out = []
    for item in obj.iter():
        if item.tag.endswith("}item") and any(c.tag.endswith("}key") for c in item):
            key = next(c.text or "" for c in item if c.tag.endswith("}key"))
            value = next((c.text or "" for c in item if c.tag.endswith("}value")), "")
            if key.startswith(prefix):
                out.append(json.loads(value)[0])
    return out


def _zone(world: World) -> dict[str, Any]:
    return {"domain": "contract.example.test", "comment": "first"}


def _record(world: World) -> dict[str, Any]:
    zone = world.pre(dns.ZONE, "zone", {"domain": "contract.example.test"}).physical_id
    return {"zone": zone, "name": "www", "type": "A", "ttl": 60, "records": ["192.0.2.1"]}


def _balancer(world: World) -> dict[str, Any]:
    return {"listeners": [{"protocol": "HTTP", "port": 80, "instance_port": 80}]}


def _balancer_update(world: World, props: dict[str, Any]) -> Update:
    return _changed(props, members=[world.server()])


# Octavia (OpenStack): the seeded private subnet is the VIP's; what a kind needs under
# its load balancer is made through the adapter too
WEB = {"protocol": "HTTP", "port": 80, "instance_port": 8080}


def _os_balancer(world: World) -> dict[str, Any]:
    return {"listeners": [WEB], "subnet": "private-subnet"}


def _os_balancer_update(world: World, props: dict[str, Any]) -> Update:
    check = {"target": "HTTP:8080/health", "interval": 10, "timeout": 5,
             "healthy_threshold": 3, "unhealthy_threshold": 2}
    return _changed(props, members=[world.server()], health_check=check)


def _octavia_lb(world: World) -> str:
    return world.pre(LOAD_BALANCER, "lb", {"subnet": "private-subnet"}).physical_id


def _octavia_pool(world: World) -> str:
    props = {"loadbalancer": _octavia_lb(world), "protocol": "HTTP",
             "lb_algorithm": "ROUND_ROBIN"}
    return world.pre(POOL, "pool", props).physical_id


def _listener(world: World) -> dict[str, Any]:
    return {"loadbalancer": _octavia_lb(world), "protocol": "HTTP", "protocol_port": 80}


def _pool(world: World) -> dict[str, Any]:
    listener = world.pre(LISTENER, "listener", _listener(world)).physical_id
    return {"listener": listener, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}


def _member(world: World) -> dict[str, Any]:
    return {"pool": _octavia_pool(world), "address": "10.0.0.77", "protocol_port": 8080}


def _monitor(world: World) -> dict[str, Any]:
    return {"pool": _octavia_pool(world), "type": "HTTP", "delay": 5, "timeout": 3,
            "max_retries": 3, "url_path": "/health"}


OCTAVIA = Lost(only="load-balancer")  # its first Octavia request is the POST


# Neutron's routers (OpenStack)
def _public(world: World) -> str:
    with world.adapter.client.session(world.region):
        return openstack_catalog.network_ref(world.adapter.client, world.region, "public")


def _os_router(world: World) -> dict[str, Any]:
    # by id: a name is looked up first (a read before the create's write)
    return {"external_gateway_info": {"network": _public(world)}}


def _os_router_update(world: World, props: dict[str, Any]) -> Update:
    # the gateway is compared with the last-applied spec (a template may name the
    # network by name): not reported
    return _changed(props, {"admin_state_up": False},
                    frozenset({"external_gateway_info"}), admin_state_up=False,
                    external_gateway_info={"network": "public", "enable_snat": False})


def _os_interface(world: World) -> dict[str, Any]:
    router = world.pre(ROUTER, "router", {}).physical_id
    return {"router": router, "subnet": world.subnet(world.network())}


def _os_gateway(world: World) -> dict[str, Any]:
    router = world.pre(ROUTER, "router", {}).physical_id
    return {"router": router, "network": _public(world)}


def _os_route(world: World) -> dict[str, Any]:
    made = _os_interface(world)
    world.pre(ROUTER_INTERFACE, "interface", made)
    return {"router": made["router"], "destination": "192.168.0.0/16", "nexthop": "10.20.1.9"}


def _os_association(world: World) -> dict[str, Any]:
    fip = world.pre(FLOATING_IP, "fip", {}).physical_id
    return {"floating_ip": fip, "server": world.server()}


def _tag_census(key: str, mark: str) -> Callable[[World], list[str]]:
    """The addresses Neutron's tags ``cloudtmpl:<mark>=`` on the listing ``key`` name
    (what a create writes first, before the object it records exists)."""
    def census(w: World) -> list[str]:
        with w.adapter.client.session(w.region):
            items = w.adapter.client.listing(w.region, key)
        return [address for item in items for _, address in
                openstack_neutron.tagged(item, mark, STACK)]
    return census


def _interface_census(world: World) -> list[str]:
    """One address per interface of the case's router: the one half made (before its
    tag) has no address of its own yet."""
    (router,) = [r.physical_id for r in world.made if r.kind == ROUTER]
    with world.adapter.client.session(world.region):
        ports = world.adapter.client.list_all(world.region, "network", "/v2.0/ports", "ports",
                                              {"device_id": router})
    return [ADDRESS for p in ports if p.get("device_owner") == "network:router_interface"]


def _warm_external_network(world: World, adapter: Any) -> None:
    with adapter.client.session(world.region):
        openstack_catalog.external_network(adapter.client, world.region)


def _s3_census(world: World) -> list[str]:
    _, body, _ = world.adapter.client.request("s3", world.region, "/")
    names = [el.text for el in body.iter() if el.tag.endswith("}Name")] if body else []
    return [ADDRESS] * names.count(storage.bucket_name(STACK, ADDRESS, None))


HANDLE = "Cloud::Orchestration::WaitConditionHandle"
CONDITION = "Cloud::Orchestration::WaitCondition"
WAITS_FIRST = Lost(cannot="its create reads its handle's signals (for as long as it "
                          "waits) before its one write, its record")


def _condition(world: World) -> dict[str, Any]:
    """A handle with one signal sent to its URL: the condition is satisfied at once."""
    import urllib.request
    url = world.pre(HANDLE, "handle", {}).attributes["endpoint"]
    req = urllib.request.Request(url, data=b'{"id": "1", "data": "up"}', method="PUT",
                                 headers={"Content-Type": ""})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status in (200, 201)
    return {"handle": url, "count": 1, "timeout": 30}


READS_FIRST = ("its create reads before its first write ({}); the sandbox's knobs lose "
               "the answers of every request (OpenStack: of one service), so the retried "
               "read would lose its answer too")
LIBCLOUD_REFUSES = "libcloud has no common verb to change anything in place"
LIBCLOUD_UNTAGGED = "libcloud has no common verb to rewrite an object's tags"
NOVA_UNTAGGED = "Nova key pairs and server groups hold no metadata"
NEUTRON_TAG = ("recorded by a Neutron tag on another object (60 characters: the stack and "
               "address, no spec); the kind changes only by replacement")
FILE_CLOUD = Lost(cannot="the file cloud is a libcloud driver over a JSON file in this "
                         "process: no transport to lose an answer on "
                         "(tests/unit/test_generic_adapter.py covers its look-first create)")
ANTI = {"policies": ["anti-affinity"]}

CASES: dict[tuple[str, str], Case] = {
    ("aws", SERVER): Case(_server, _server_update),
    ("aws", KEYPAIR): Case(_keypair),
    ("aws", SERVER_GROUP): Case(lambda w: ANTI),
    ("aws", VOLUME): Case(_volume, _volume_update),
    ("aws", ATTACHMENT): Case(_attachment, lost=Lost(cannot=READS_FIRST.format(
        "DescribeVolumes, DescribeInstances, then CreateTags and AttachVolume"))),
    ("aws", SECURITY_GROUP): Case(_group, _group_update),
    ("aws", FLOATING_IP): Case(lambda w: {}, _floating_update),
    ("aws", NETWORK): Case(_network, _network_update),
    ("aws", SUBNET): Case(_subnet, _subnet_update),
    ("aws", PORT): Case(_port, _port_update),
    ("aws", ROUTER): Case(_router, _router_update),
    # their first write is their record on the table (then the association or route)
    ("aws", ROUTER_INTERFACE): Case(_router_interface, lost=Lost(
        census=lambda w: _table_records(w, routing.TAG_INTERFACE))),
    ("aws", ROUTE): Case(_route, lost=Lost(census=lambda w: _table_records(w, routing.TAG_ROUTE))),
    ("aws", NAT_GATEWAY): Case(_nat_gateway, lost=Lost(cannot=READS_FIRST.format(
        "its elastic IPs, then AllocateAddress and CreateNatGateway"))),
    ("aws", FLOATING_IP_ASSOCIATION): Case(_floating_association, lost=Lost(
        cannot=READS_FIRST.format("the elastic IP, then its record and AssociateAddress"))),
    ("aws", dns.ZONE): Case(_zone, lambda w, p: _changed(p, comment="second")),
    ("aws", dns.RECORD): Case(_record, lambda w, p: _changed(p, ttl=300, records=["192.0.2.2"]),
                              lost=Lost(cannot=READS_FIRST.format(
                                  "the zone's ownership, then ChangeResourceRecordSets"))),
    ("aws", storage.BUCKET): Case(lambda w: {"versioning": False},
                                  lambda w, p: _changed(p, versioning=True),
                                  lost=Lost(census=_s3_census)),  # tagged after the PUT
    ("aws", HANDLE): Case(lambda w: {}, lost=Lost(census=_s3_census)),  # tagged after it
    ("aws", CONDITION): Case(_condition, lost=WAITS_FIRST),
    ("aws", lb.LOAD_BALANCER): Case(_balancer, _balancer_update),
    # the payload is never read back to compare: the plan compares its seal
    ("aws", SECRET): Case(lambda w: {"payload": "contract-one"}, lambda w, p: _changed(
        p, {}, frozenset({"payload"}), payload="contract-two")),

    ("openstack", SERVER): Case(_server, _server_update, lost=Lost(only="compute")),
    ("openstack", KEYPAIR): Case(_keypair, unkept=NOVA_UNTAGGED),
    ("openstack", SERVER_GROUP): Case(lambda w: ANTI, unkept=NOVA_UNTAGGED),
    ("openstack", VOLUME): Case(_volume, _volume_update),
    ("openstack", ATTACHMENT): Case(_attachment, lost=Lost(cannot=READS_FIRST.format(
        "GET volume (Cinder) and server (Nova), then the record (Cinder) and the attach "
        "(Nova)"))),
    ("openstack", SECURITY_GROUP): Case(_group, _group_update),
    ("openstack", FLOATING_IP): Case(lambda w: {}, _floating_update,
                                     lost=Lost(warm=_warm_external_network)),
    ("openstack", NETWORK): Case(_network, _network_update),
    ("openstack", SUBNET): Case(_subnet, _subnet_update),
    ("openstack", PORT): Case(_port, _port_update),
    ("openstack", ROUTER): Case(_os_router, _os_router_update),
    ("openstack", ROUTER_INTERFACE): Case(_os_interface, unkept=NEUTRON_TAG,
                                          lost=Lost(census=_interface_census)),
    ("openstack", ROUTER_GATEWAY): Case(
        _os_gateway, unkept=NEUTRON_TAG,
        lost=Lost(census=_tag_census("routers", "gw"))),
    ("openstack", ROUTE): Case(_os_route, unkept=NEUTRON_TAG,
                               lost=Lost(census=_tag_census("routers", "rt"))),
    ("openstack", FLOATING_IP_ASSOCIATION): Case(
        _os_association, unkept=NEUTRON_TAG,
        # the server's port is read from Nova first: only Neutron's answers are lost
        lost=Lost(only="network", census=_tag_census("floatingips", "fa"))),
    ("openstack", storage.BUCKET): Case(
        lambda w: {"metadata": {"a": "1"}}, lambda w, p: _changed(p, metadata={"a": "2"}),
        lost=Lost(cannot=READS_FIRST.format("HEAD of the container, then PUT"))),
    ("openstack", HANDLE): Case(lambda w: {}, lost=Lost(cannot=READS_FIRST.format(
        "HEAD of the container, then PUT"))),
    ("openstack", CONDITION): Case(_condition, lost=WAITS_FIRST),
    ("openstack", LOAD_BALANCER): Case(_os_balancer, _os_balancer_update, lost=OCTAVIA),
    ("openstack", SECRET): Case(lambda w: {"payload": "contract-one"}, lambda w, p: _changed(
        p, {}, frozenset({"payload"}), payload="contract-two"),
        refused="Barbican secrets are immutable: the OpenStack catalog's replace_only plans "
                "a replacement"),
    ("openstack", LISTENER): Case(_listener, lambda w, p: _changed(
        p, connection_limit=100, admin_state_up=False), lost=OCTAVIA),
    ("openstack", POOL): Case(_pool, lambda w, p: _changed(
        p, lb_algorithm="LEAST_CONNECTIONS"), lost=OCTAVIA),
    ("openstack", POOL_MEMBER): Case(_member, lambda w, p: _changed(
        p, weight=5, admin_state_up=False), lost=OCTAVIA),
    ("openstack", HEALTH_MONITOR): Case(_monitor, lambda w, p: _changed(
        p, delay=10, max_retries_down=5, url_path="/ready"), lost=OCTAVIA),

    ("libcloud", SERVER): Case(_server, _server_update, refused=LIBCLOUD_REFUSES,
                               unkept=LIBCLOUD_UNTAGGED, lost=FILE_CLOUD),
    ("libcloud", KEYPAIR): Case(_keypair, unkept=LIBCLOUD_UNTAGGED, lost=FILE_CLOUD),
    ("libcloud", VOLUME): Case(_volume, _volume_update, refused=LIBCLOUD_REFUSES,
                               unkept=LIBCLOUD_UNTAGGED, lost=FILE_CLOUD),
    ("libcloud", ATTACHMENT): Case(_attachment, lost=FILE_CLOUD),
}


#: Keystone's kinds need an admin's credentials (the contract's adapters are a project
#: member's, as a stack's are): their lifecycle, update in place and the emulator's
#: refusals are tests/integration/test_keystone.py's, with the real openstack CLI
ADMIN_ONLY = {("openstack", kind) for kind in capabilities.IDENTITY}


def declared() -> list[tuple[str, str]]:
    return [(cloud, kind) for cloud in CLOUDS for kind in sorted(HANDLERS[cloud])
            if (cloud, kind) not in ADMIN_ONLY]


def member_kinds(world: World) -> set[str]:
    """What a project member's adapter lists: every kind but the admin-only ones."""
    return {k for k in world.adapter.kinds if (world.cloud, k) not in ADMIN_ONLY}


def cases() -> list[Any]:
    return [pytest.param(cloud, kind, id=f"{cloud}-{kind.removeprefix('Cloud::')}")
            for cloud, kind in declared()]


def in_place(kind: str) -> list[str]:
    """The kind's ``update_allowed`` properties (Heat's schema, resources.py)."""
    return sorted(name for name, prop in resources.TYPES[kind].properties.items()
                  if prop.update_allowed)


def found(world: World, kind: str, adapter: Any = None) -> list[LiveResource]:
    """The stack's resources of ``kind`` that discovery finds (prerequisites are of
    other kinds, so: the resource under test, or nothing)."""
    live = (adapter or world.adapter).discover(world.region, frozenset({kind}), STACK)
    return [r for r in live if r.kind == kind]


def same(a: LiveResource, b: LiveResource) -> tuple[Any, ...]:
    """What discovery must report as the create/update returned it."""
    return (a.kind, a.address, a.physical_id, a.name, a.properties, a.spec_hash)


# --- the contract ------------------------------------------------------------------------


def test_every_declared_kind_has_a_case(tmp_path: Path) -> None:
    assert set(CASES) == set(declared())
    for cloud in ("aws", "openstack"):
        assert set(HANDLERS[cloud]) == capabilities.CLOUDS[cloud].kinds
    lab = adapters.libcloud(tmp_path)  # the file cloud's driver has every libcloud kind
    assert lab.kinds == set(HANDLERS["libcloud"]) == capabilities.of(lab.target).kinds


@pytest.mark.parametrize(("world", "kind"), cases(), indirect=["world"])
def test_lifecycle(world: World, kind: str) -> None:
    case = CASES[(world.cloud, kind)]
    adapter = world.adapter
    props = case.make(world)

    live = create(adapter, world.region, kind, ADDRESS, props)
    assert (live.kind, live.address) == (kind, ADDRESS)
    assert live.placement.region == world.region and live.physical_id
    assert live.spec_hash == (None if case.unkept else "spec-1"), case.unkept
    assert [same(r, live) for r in found(world, kind)] == [same(live, live)]

    if case.update is None:
        assert in_place(kind) == [], f"{kind} has update_allowed properties: update one"
    else:
        change = case.update(world, props)
        assert change.changed and change.changed <= set(in_place(kind))
        assert set(change.expect) | change.unreported == change.changed
        if case.refused:
            with pytest.raises(CloudError, match="cannot change in place") as info:
                update(adapter, live, change.properties, set(change.changed), "spec-2")
            assert info.value.permanent, case.refused
        else:
            new = update(adapter, live, change.properties, set(change.changed), "spec-2")
            assert new.physical_id == live.physical_id  # in place, not replaced
            assert new.spec_hash == (None if case.unkept else "spec-2"), case.unkept
            assert {k: new.properties.get(k) for k in change.expect} == change.expect
            assert [same(r, new) for r in found(world, kind)] == [same(new, new)]
            live = new

    adapter.delete(live, timeout=TIMEOUT)
    assert found(world, kind) == []
    adapter.delete(live, timeout=TIMEOUT)  # already gone: succeeds
    world.clean_up()
    assert adapter.discover(world.region, member_kinds(world), STACK) == []


@dataclass
class LostAnswer:
    """An adapter's ``sleep``: the first one (the retry after the lost answer) disarms
    the fault and takes the census of the kind at that moment."""

    world: World
    kind: str
    census: Callable[[], list[str]]
    seen: list[str] | None = None

    def sleep(self, seconds: float) -> None:
        if self.seen is None:
            self.world.arm_lost_answer(False)
            self.seen = self.census()
        time.sleep(seconds)


@pytest.mark.parametrize(("world", "kind"), cases(), indirect=["world"])
def test_create_adopts_after_a_lost_answer(world: World, kind: str) -> None:
    case = CASES[(world.cloud, kind)]
    if case.lost.cannot:
        pytest.skip(case.lost.cannot)
    props = case.make(world)
    census = case.lost.census
    lost = LostAnswer(world, kind, (lambda: census(world)) if census else
                      (lambda: [r.address for r in found(world, kind)]))
    adapter = world.fresh(sleep=lost.sleep)
    adapter.discover(world.region, frozenset({kind}), STACK)  # tokens, cached listings
    if case.lost.warm is not None:
        case.lost.warm(world, adapter)

    world.arm_lost_answer(True, case.lost.only)
    try:
        live = create(adapter, world.region, kind, ADDRESS, props)
    finally:
        world.arm_lost_answer(False)
    assert lost.seen == [ADDRESS], "the create's first request was not its write, or it " \
                                   "had not taken effect"
    assert [same(r, live) for r in found(world, kind)] == [same(live, live)]  # not two
    adapter.delete(live, timeout=TIMEOUT)
    assert found(world, kind) == []
    world.clean_up()
    assert world.adapter.discover(world.region, member_kinds(world), STACK) == []
