"""OpenStackAdapter against the OpenStack sandbox: libcloud's real driver, real HTTP.

Every test starts from a reset sandbox (``openstack_reset``) with builds and volume
transitions made instant (so request counts are exact) and a fresh adapter.  Most
tests run in both regions.  Request counts include Keystone token requests: each
service connection of a pooled driver authenticates once, then reuses its token.
What every adapter does with every kind (create, discover, update in place, delete,
adopt) is test_adapter_contract.py's; here is what is OpenStack's own: request
counts, the shapes Nova/Neutron/Cinder report, their refusals and waits.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cloudtmpl.providers.base import (
    ATTACHMENT,
    FLOATING_IP,
    FLOATING_IP_ASSOCIATION,
    KEYPAIR,
    KINDS,
    NETWORK,
    PORT,
    ROUTE,
    ROUTER,
    ROUTER_INTERFACE,
    SECURITY_GROUP,
    SERVER,
    SUBNET,
    VOLUME,
    Choice,
    CloudError,
    ResourceTimeout,
)
from cloudtmpl.providers.openstack import OpenStackAdapter, catalog
from cloudtmpl.security_rules import canonical_rules
from tests.integration import adapters
from tests.integration.adapters import (
    OPENSTACK_REGION,
    STACK,
    TIMEOUT,
    Counted,
    admin,
    by_address,
    create,
    public_key,
    sandbox_requests,
    update,
)

pytestmark = pytest.mark.integration

REGIONS = [OPENSTACK_REGION, "nl-ams-1"]
IMAGE = "ubuntu-22.04"


# --- helpers ------------------------------------------------------------------------


def server_props(**extra: Any) -> dict[str, Any]:
    return {"image": IMAGE, "flavor": "m1.small", **extra}


@pytest.fixture
def sandbox(openstack_reset: dict[str, Any]) -> dict[str, Any]:
    admin(openstack_reset, "config", {"build_seconds": 0, "volume_seconds": 0})
    return openstack_reset


@pytest.fixture
def adapter(sandbox: dict[str, Any]) -> OpenStackAdapter:
    return adapters.openstack(sandbox)


# --- networking: a server in a new network via a port, with a floating IP -------------


@pytest.mark.parametrize("region", REGIONS)
def test_server_in_new_network_via_port_with_floating_ip(adapter: OpenStackAdapter,
                                                          region: str) -> None:
    with Counted(adapter) as c:
        net = create(adapter, region, NETWORK, "net", {})
    assert c.n == 3  # token (network) + POST + GET
    assert net.name == "web.net" and net.spec_hash == "spec-1"
    assert net.properties == {"admin_state_up": True}
    assert net.attributes == {"name": "web.net", "id": net.physical_id, "status": "ACTIVE"}
    assert net.placement.target == "sandbox-openstack" and net.placement.region == region

    sub = create(adapter, region, SUBNET, "sub", {"network": net.physical_id,
                                                  "cidr": "10.1.0.0/24",
                                                  "dns_nameservers": ["9.9.9.9"]})
    assert sub.properties == {"network": net.physical_id, "cidr": "10.1.0.0/24",
                              "ip_version": 4, "enable_dhcp": True, "gateway_ip": "10.1.0.1",
                              "dns_nameservers": ["9.9.9.9"]}
    assert sub.attributes["network_id"] == net.physical_id
    sg = create(adapter, region, SECURITY_GROUP, "sg", {"rules": [{"port_range_min": 22,
                                                                  "port_range_max": 22}]})
    port = create(adapter, region, PORT, "port", {
        "network": net.physical_id, "fixed_ips": [{"subnet": sub.physical_id,
                                                  "ip_address": "10.1.0.10"}],
        "security_groups": [sg.physical_id]})
    assert port.properties == {"network": net.physical_id, "security_groups": [sg.physical_id],
                               "admin_state_up": True}
    assert port.attributes["ip_address"] == "10.1.0.10"
    assert port.attributes["fixed_ips"] == [{"subnet_id": sub.physical_id,
                                             "ip_address": "10.1.0.10"}]
    assert port.attributes["mac_address"]

    with Counted(adapter) as c:
        srv = create(adapter, region, SERVER, "app", server_props(
            networks=[{"port": port.physical_id}], metadata={"team": "a"}))
    # token (compute), GET /flavors, token (image), GET /v2/images?name=, POST /servers,
    # GET /servers/{id} (ACTIVE), GET ports?device_id=, GET default group (cached after)
    assert c.n == 8
    assert srv.status == "ACTIVE" and srv.name == "web.app" and srv.spec_hash == "spec-1"
    # the port's group belongs to the port, not to the server
    assert srv.properties["security_groups"] == []
    assert srv.properties["flavor"] == "m1.small"
    assert srv.properties["metadata"] == {"team": "a"}
    assert srv.properties["availability_zone"] == "nova"
    assert srv.attributes["private_ip"] == "10.1.0.10"
    # Heat's shape: keyed by the network's id and by its name (Nova's address label)
    assert srv.attributes["networks"] == {net.physical_id: ["10.1.0.10"],
                                          net.name: ["10.1.0.10"]}

    # Neutron associates a floating IP only where a router reaches the port's subnet
    router = create(adapter, region, ROUTER, "router",
                    {"external_gateway_info": {"network": "public"}})
    iface = create(adapter, region, ROUTER_INTERFACE, "iface",
                   {"router": router.physical_id, "subnet": sub.physical_id})
    with Counted(adapter) as c:
        fip = create(adapter, region, FLOATING_IP, "ip", {"port": port.physical_id})
    # GET external network, POST (with port and marker), GET fip, GET its port
    assert c.n == 4
    ip = fip.attributes["floating_ip_address"]
    assert ip and fip.attributes["ip"] == ip
    assert fip.attributes["fixed_ip_address"] == "10.1.0.10"
    assert fip.properties["port"] == port.physical_id
    assert fip.properties["server"] == srv.physical_id
    assert fip.spec_hash == "spec-1" and fip.status == "associated"

    found = by_address(adapter.discover(region, KINDS, STACK))
    assert set(found) == {(NETWORK, "net"), (SUBNET, "sub"), (SECURITY_GROUP, "sg"),
                          (PORT, "port"), (SERVER, "app"), (FLOATING_IP, "ip")}
    assert found[(FLOATING_IP, "ip")] == fip
    assert found[(SERVER, "app")].attributes["public_ip"] == ip
    assert found[(SERVER, "app")].properties == srv.properties
    assert found[(NETWORK, "net")] == net and found[(SUBNET, "sub")] == sub
    assert found[(PORT, "port")].properties == port.properties
    # the other region is separate
    other = REGIONS[1 - REGIONS.index(region)]
    assert adapter.discover(other, KINDS, STACK) == []

    # teardown in dependency order
    for live in (fip, found[(SERVER, "app")], found[(PORT, "port")], sg, iface, router, sub,
                 net):
        adapter.delete(live, timeout=TIMEOUT)
    assert adapter.discover(region, KINDS, STACK) == []


@pytest.mark.parametrize("region", REGIONS)
def test_server_on_a_subnet_gets_its_own_port(adapter: OpenStackAdapter, region: str) -> None:
    net = create(adapter, region, NETWORK, "net", {})
    sub = create(adapter, region, SUBNET, "sub", {"network": net.physical_id,
                                                  "cidr": "10.2.0.0/24"})
    sg = create(adapter, region, SECURITY_GROUP, "sg", {})
    srv = create(adapter, region, SERVER, "app", server_props(
        networks=[{"subnet": sub.physical_id}], security_groups=[sg.physical_id]))
    assert srv.properties["security_groups"] == [sg.physical_id]
    assert srv.attributes["private_ip"].startswith("10.2.0.")
    # the helper port is not a template resource: never discovered as one
    found = adapter.discover(region, frozenset({PORT, SERVER}), STACK)
    assert [(r.kind, r.address) for r in found] == [(SERVER, "app")]
    adapter.delete(srv, timeout=TIMEOUT)  # deletes the helper port too
    adapter.delete(sub, timeout=TIMEOUT)  # would be 409 SubnetInUse with a port left
    adapter.delete(net, timeout=TIMEOUT)
    adapter.delete(sg, timeout=TIMEOUT)
    assert adapter.discover(region, KINDS, STACK) == []


@pytest.mark.parametrize("region", REGIONS)
def test_network_subnet_port_update_in_place(adapter: OpenStackAdapter, region: str) -> None:
    net = create(adapter, region, NETWORK, "net", {})
    sub = create(adapter, region, SUBNET, "sub", {"network": net.physical_id,
                                                  "cidr": "10.3.0.0/24"})
    sg1 = create(adapter, region, SECURITY_GROUP, "sg1", {})
    sg2 = create(adapter, region, SECURITY_GROUP, "sg2", {})
    port = create(adapter, region, PORT, "port", {"network": net.physical_id,
                                                  "security_groups": []})
    assert port.properties["security_groups"] == []  # [] means none, not "default"

    with Counted(adapter) as c:
        net2 = update(adapter, net, {"admin_state_up": False}, {"admin_state_up"}, "spec-2")
    assert c.n == 2  # PUT (state and marker at once) + GET
    assert net2.physical_id == net.physical_id
    assert net2.properties == {"admin_state_up": False} and net2.spec_hash == "spec-2"
    port2 = update(adapter, port, {"security_groups": [sg2.physical_id, sg1.physical_id],
                                   "admin_state_up": False},
                   {"security_groups", "admin_state_up"}, "spec-2")
    assert port2.properties == {"network": net.physical_id, "admin_state_up": False,
                                "security_groups": sorted([sg1.physical_id, sg2.physical_id])}
    [found] = adapter.discover(region, frozenset({PORT}), STACK)
    assert found == port2
    with pytest.raises(CloudError, match="replaced"):
        update(adapter, sub, {"cidr": "10.9.0.0/24"}, {"cidr"}, "x")


# --- servers ------------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_server_flavor_resize_and_metadata_in_place(adapter: OpenStackAdapter,
                                                    region: str) -> None:
    net = create(adapter, region, NETWORK, "net", {})
    create(adapter, region, SUBNET, "sub", {"network": net.physical_id, "cidr": "10.4.0.0/24"})
    srv = create(adapter, region, SERVER, "app", server_props(
        metadata={"team": "a", "env": "x"}, networks=[{"network": net.physical_id}]))
    assert srv.properties["security_groups"] == []  # Nova's "default" stands for none
    [found] = adapter.discover(region, frozenset({SERVER}), STACK)
    assert found == srv

    with Counted(adapter) as c:
        new = update(adapter, srv, server_props(flavor="m1.medium",
                                                metadata={"team": "b", "new": "1"}),
                     {"flavor", "metadata"}, "spec-2")
    # GET, resize, GET (VERIFY_RESIZE), confirmResize, GET (ACTIVE), PUT metadata, GET, ports
    assert c.n == 8
    assert new.physical_id == srv.physical_id  # in place
    assert new.properties["flavor"] == "m1.medium" and new.status == "ACTIVE"
    assert new.properties["metadata"] == {"team": "b", "new": "1"}
    assert new.spec_hash == "spec-2"

    with Counted(adapter) as c:  # only the spec marker moves
        same = update(adapter, new, server_props(flavor="m1.medium"), set(), "spec-3")
    assert c.n == 4 and same.spec_hash == "spec-3"  # GET, POST metadata, GET, ports
    with pytest.raises(CloudError, match="replaced"):
        update(adapter, same, server_props(image="debian-12"), {"image"}, "x")

    adapter.delete(same, timeout=TIMEOUT)
    with Counted(adapter) as c:
        adapter.delete(same, timeout=TIMEOUT)  # already gone
    assert c.n == 1


def test_server_with_key_pair_group_and_user_data(adapter: OpenStackAdapter) -> None:
    region = REGIONS[0]
    kp = create(adapter, region, KEYPAIR, "key", {"public_key": public_key()})
    sg = create(adapter, region, SECURITY_GROUP, "sg", {})
    srv = create(adapter, region, SERVER, "app", server_props(
        key_name=kp.physical_id, security_groups=[sg.physical_id], user_data="#!/bin/sh\n",
        availability_zone="nova"))
    assert srv.properties["key_name"] == "web.key"
    assert srv.properties["security_groups"] == [sg.physical_id]
    # the group is in use by the server's port: deleting it waits; then it goes
    with pytest.raises(ResourceTimeout) as info:
        adapter.delete(sg, timeout=0.5)
    assert "in use" in info.value.status
    adapter.delete(srv, timeout=TIMEOUT)
    adapter.delete(sg, timeout=TIMEOUT)
    adapter.delete(kp, timeout=TIMEOUT)
    assert adapter.discover(region, KINDS, STACK) == []


@pytest.mark.parametrize("region", REGIONS)
def test_unknown_image_is_a_permanent_error_with_the_clouds_message(
        adapter: OpenStackAdapter, region: str) -> None:
    with Counted(adapter) as c, pytest.raises(CloudError) as info:
        create(adapter, region, SERVER, "bad", server_props(image="no-such-image"))
    assert info.value.permanent
    assert "no-such-image could not be found" in info.value.message  # Nova's words
    assert info.value.status == "400"
    assert c.n == 5  # tokens (compute, image), flavors, image lookup, POST: not retried
    assert adapter.discover(region, frozenset({SERVER}), STACK) == []


def test_quota_exceeded_is_permanent_with_the_clouds_message(sandbox: dict[str, Any]) -> None:
    admin(sandbox, "config", {"quota": {"instances": 1}})
    adapter = adapters.openstack(sandbox)
    region = REGIONS[0]
    create(adapter, region, SERVER, "one", server_props())
    with pytest.raises(CloudError) as info:
        create(adapter, region, SERVER, "two", server_props())
    assert info.value.permanent and "Quota exceeded for instances" in info.value.message


def test_reserved_metadata_keys_are_refused(adapter: OpenStackAdapter) -> None:
    with pytest.raises(CloudError, match="reserved"):
        create(adapter, REGIONS[0], SERVER, "bad", server_props(
            metadata={"cloudtmpl:stack": "other"}))


# --- volumes and attachments ------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_volume_and_attachment_round_trip(adapter: OpenStackAdapter, region: str) -> None:
    srv = create(adapter, region, SERVER, "app", server_props())
    with Counted(adapter) as c:
        vol = create(adapter, region, VOLUME, "data", {"size": 2, "metadata": {"tier": "db"}})
    assert c.n == 3  # token (volume), POST (metadata included), GET (available)
    assert vol.status == "available" and vol.spec_hash == "spec-1"
    assert vol.properties["size"] == 2 and vol.properties["metadata"] == {"tier": "db"}
    assert vol.attributes == {"size": 2, "status": "available", "name": "web.data"}

    with Counted(adapter) as c:
        att = create(adapter, region, ATTACHMENT, "att", {
            "volume_id": vol.physical_id, "instance_uuid": srv.physical_id,
            "mountpoint": "/dev/vdb"}, spec="att-1")
    assert c.n == 5  # GET volume, GET server (built?), POST metadata (record first),
    # attach, GET (in-use)
    assert att.physical_id == f"{vol.physical_id}:{srv.physical_id}"
    assert att.properties == {"instance_uuid": srv.physical_id, "volume_id": vol.physical_id}
    assert att.spec_hash == "att-1"

    with Counted(adapter) as c:
        found = by_address(adapter.discover(region, frozenset({VOLUME, ATTACHMENT}), STACK))
    assert c.n == 1  # one volume listing serves both kinds
    assert found[(ATTACHMENT, "att")] == att
    assert found[(VOLUME, "data")].status == "in-use"
    assert found[(VOLUME, "data")].spec_hash == "spec-1"  # the volume keeps its own hash
    assert found[(VOLUME, "data")].properties["metadata"] == {"tier": "db"}

    # growing an attached volume is refused with a clear message
    with pytest.raises(CloudError, match="only while it is available"):
        update(adapter, found[(VOLUME, "data")], {"size": 3}, {"size"}, "spec-2")
    # attaching again (a retried apply) adopts the existing attachment
    again = create(adapter, region, ATTACHMENT, "att", {
        "volume_id": vol.physical_id, "instance_uuid": srv.physical_id}, spec="att-1")
    assert again.physical_id == att.physical_id
    att2 = update(adapter, att, {}, set(), "att-2")
    assert att2.spec_hash == "att-2"

    adapter.delete(att, timeout=TIMEOUT)
    found = by_address(adapter.discover(region, frozenset({VOLUME, ATTACHMENT}), STACK))
    assert set(found) == {(VOLUME, "data")}
    assert found[(VOLUME, "data")].status == "available"
    adapter.delete(vol, timeout=TIMEOUT)
    adapter.delete(srv, timeout=TIMEOUT)
    assert adapter.discover(region, KINDS, STACK) == []


def test_attachment_waits_for_a_server_still_building(sandbox: dict[str, Any]) -> None:
    """A server adopted after a killed run may still be BUILD when its attachment is
    created; Nova refuses that with a 409, so the attachment waits for ACTIVE first."""
    admin(sandbox, "config", {"build_seconds": 1.5})
    adapter, region = adapters.openstack(sandbox), REGIONS[0]
    vol = create(adapter, region, VOLUME, "data", {"size": 1})
    with ThreadPoolExecutor(1) as pool:  # the "killed run": a create still waiting
        pending = pool.submit(create, adapter, region, SERVER, "app", server_props())
        building: list[Any] = []
        for _ in range(100):
            building = [r for r in adapter.discover(region, frozenset({SERVER}), STACK)]
            if building:
                break
        assert [r.status for r in building] == ["BUILD"]
        att = create(adapter, region, ATTACHMENT, "att", {
            "volume_id": vol.physical_id, "instance_uuid": building[0].physical_id})
        assert att.physical_id == f"{vol.physical_id}:{building[0].physical_id}"
        assert pending.result().status == "ACTIVE"


@pytest.mark.parametrize("region", REGIONS)
def test_volume_grows_in_place_and_refuses_to_shrink(adapter: OpenStackAdapter,
                                                     region: str) -> None:
    vol = create(adapter, region, VOLUME, "data", {"size": 2})
    with Counted(adapter) as c:
        grown = update(adapter, vol, {"size": 5, "metadata": {"a": "1"}}, {"size", "metadata"},
                       "spec-2")
    assert c.n == 5  # GET, os-extend, GET (grown), PUT metadata, GET
    assert grown.physical_id == vol.physical_id
    assert grown.properties["size"] == 5 and grown.attributes["size"] == 5
    assert grown.properties["metadata"] == {"a": "1"} and grown.spec_hash == "spec-2"
    with pytest.raises(CloudError) as info:
        update(adapter, grown, {"size": 3}, {"size"}, "x")
    assert info.value.permanent and "replaced" in info.value.message
    [found] = adapter.discover(region, frozenset({VOLUME}), STACK)
    assert found == grown


# --- security groups ----------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_security_group_rules_change_in_place(adapter: OpenStackAdapter, region: str) -> None:
    ssh = {"direction": "ingress", "protocol": "tcp", "port_range_min": 22,
           "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8"}
    with Counted(adapter) as c:
        sg = create(adapter, region, SECURITY_GROUP, "sg", {"description": "web tier",
                                                            "rules": [ssh]})
    assert c.n == 5  # token, POST group, POST rule, PUT description (spec last), GET
    assert sg.name == "web.sg" and sg.attributes == {"name": "web.sg", "id": sg.physical_id}
    assert sg.properties == {"description": "web tier", "rules": canonical_rules([ssh])}
    assert sg.spec_hash == "spec-1"

    https = {"protocol": "tcp", "port_range_min": 443, "port_range_max": 443}
    ping = {"protocol": "icmp"}
    peer = {"protocol": "tcp", "port_range_min": 5432, "port_range_max": 5432,
            "remote_group_id": sg.physical_id}
    out_dns = {"direction": "egress", "protocol": "udp", "port_range_min": 53,
               "port_range_max": 53, "remote_ip_prefix": "10.0.0.2/32"}
    desired = [https, ping, peer, out_dns]
    new = update(adapter, sg, {"rules": desired}, {"rules"}, "spec-2")
    assert new.physical_id == sg.physical_id
    assert new.properties["rules"] == canonical_rules(desired)  # default egress removed
    assert new.properties["description"] == "web tier" and new.spec_hash == "spec-2"
    [found] = adapter.discover(region, frozenset({SECURITY_GROUP}), STACK)
    assert found == new

    # dropping every egress rule brings Neutron's default egress back (not reported)
    back = update(adapter, new, {"rules": [https]}, {"rules"}, "spec-3")
    assert back.properties["rules"] == canonical_rules([https])
    raw = adapter_group_rules(adapter, region, sg.physical_id)
    assert sorted((r["direction"], r["ethertype"]) for r in raw
                  if r["direction"] == "egress") == [("egress", "IPv4"), ("egress", "IPv6")]

    adapter.delete(back, timeout=TIMEOUT)
    assert adapter.discover(region, frozenset({SECURITY_GROUP}), STACK) == []


def adapter_group_rules(adapter: OpenStackAdapter, region: str, gid: str) -> list[Any]:
    with adapter.client.session(region):
        obj = adapter.client.api(region, "network", f"/v2.0/security-groups/{gid}")
    return list(obj["security_group"]["security_group_rules"])


def test_security_group_without_rules_is_one_call_plus_read(adapter: OpenStackAdapter) -> None:
    with Counted(adapter) as c:
        sg = create(adapter, REGIONS[0], SECURITY_GROUP, "sg", {})
    assert c.n == 3  # token, POST (marker included), GET
    assert sg.properties == {"description": "", "rules": []} and sg.spec_hash == "spec-1"


# --- floating IPs -------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_floating_ip_reassociation(adapter: OpenStackAdapter, region: str) -> None:
    net = create(adapter, region, NETWORK, "net", {})
    sub = create(adapter, region, SUBNET, "sub", {"network": net.physical_id,
                                                  "cidr": "10.5.0.0/24"})
    router = create(adapter, region, ROUTER, "router",
                    {"external_gateway_info": {"network": "public"}})
    create(adapter, region, ROUTER_INTERFACE, "iface",
           {"router": router.physical_id, "subnet": sub.physical_id})
    nics = [{"network": net.physical_id}]
    srv = create(adapter, region, SERVER, "app", server_props(networks=nics))
    other = create(adapter, region, SERVER, "app2", server_props(networks=nics))
    fip = create(adapter, region, FLOATING_IP, "ip", {})
    assert fip.properties["server"] is None and fip.properties["port"] is None
    assert fip.status == "allocated" and fip.properties["floating_network"]

    fip = update(adapter, fip, {"server": srv.physical_id}, {"server"}, "spec-2")
    assert fip.properties["server"] == srv.physical_id and fip.spec_hash == "spec-2"
    found = by_address(adapter.discover(region, frozenset({SERVER, FLOATING_IP}), STACK))
    assert found[(FLOATING_IP, "ip")] == fip
    assert found[(SERVER, "app")].attributes["public_ip"] == fip.attributes["ip"]

    fip = update(adapter, fip, {"server": other.physical_id}, {"server"}, "spec-3")
    assert fip.properties["server"] == other.physical_id
    fip = update(adapter, fip, {"server": None}, {"server"}, "spec-4")
    assert fip.properties["server"] is None and fip.status == "allocated"

    assoc = create(adapter, region, FLOATING_IP, "ip2", {"server": srv.physical_id})
    assert assoc.properties["server"] == srv.physical_id and assoc.spec_hash == "spec-1"
    adapter.delete(assoc, timeout=TIMEOUT)
    adapter.delete(fip, timeout=TIMEOUT)
    assert adapter.discover(region, frozenset({FLOATING_IP}), STACK) == []


# --- routers ------------------------------------------------------------------------


def test_an_association_neutron_refuses_leaves_no_tag(adapter: OpenStackAdapter) -> None:
    region = REGIONS[0]
    net = create(adapter, region, NETWORK, "net", {})
    sub = create(adapter, region, SUBNET, "sub", {"network": net.physical_id,
                                                  "cidr": "10.7.0.0/24"})
    port = create(adapter, region, PORT, "port", {"network": net.physical_id})
    fip = create(adapter, region, FLOATING_IP, "ip", {})
    with pytest.raises(CloudError) as info:
        create(adapter, region, FLOATING_IP_ASSOCIATION, "assoc",
               {"floating_ip": fip.physical_id, "port": port.physical_id})
    assert info.value.permanent and info.value.status == "404"
    assert info.value.message.startswith(
        f"External network {fip.properties['floating_network']} is not reachable from subnet "
        f"{sub.physical_id}.  Therefore, cannot associate Port {port.physical_id}")
    with adapter.client.session(region):
        raw = adapter.client.get(region, "network", f"/v2.0/floatingips/{fip.physical_id}",
                                 "floatingip")
    assert raw is not None and raw["tags"] == [] and raw["port_id"] is None
    assert adapter.discover(region, frozenset({FLOATING_IP_ASSOCIATION}), STACK) == []


def test_router_refusals_are_neutrons(adapter: OpenStackAdapter) -> None:
    region = REGIONS[0]
    private = adapter.lookup_choice(region, "network", "private").canonical
    with pytest.raises(CloudError) as info:
        create(adapter, region, ROUTER, "bad", {"external_gateway_info": {"network": private}})
    assert info.value.permanent and info.value.message == (
        f"Bad router request: Network {private} is not an external network. (HTTP 400)")
    assert adapter.discover(region, frozenset({ROUTER}), STACK) == []
    router = create(adapter, region, ROUTER, "router", {})
    net = create(adapter, region, NETWORK, "net", {})
    sub = create(adapter, region, SUBNET, "sub", {"network": net.physical_id,
                                                  "cidr": "10.8.0.0/24"})
    iface = create(adapter, region, ROUTER_INTERFACE, "if", {"router": router.physical_id,
                                                             "subnet": sub.physical_id})
    assert iface.physical_id == f"{router.physical_id}:{sub.physical_id}"
    assert iface.properties == {"router": router.physical_id, "subnet": sub.physical_id}
    # a second interface on that subnet is Neutron's refusal (the first is not adopted)
    with pytest.raises(CloudError) as info:
        create(adapter, region, ROUTER_INTERFACE, "if2", {"router": router.physical_id,
                                                          "subnet": sub.physical_id})
    assert info.value.permanent and info.value.message == (
        f"Bad router request: Router already has a port on subnet {sub.physical_id}. "
        "(HTTP 400)")
    # an interface left untagged (a crash between Neutron's answer and the tag) is
    with adapter.client.session(region):
        adapter.client.api(region, "network", f"/v2.0/ports/{iface.attributes['port_id']}/tags",
                           method="PUT", body={"tags": []})
    assert adapter.discover(region, frozenset({ROUTER_INTERFACE}), STACK) == []
    again = create(adapter, region, ROUTER_INTERFACE, "if", {"router": router.physical_id,
                                                             "subnet": sub.physical_id})
    assert again == iface
    assert adapter.discover(region, frozenset({ROUTER_INTERFACE}), STACK) == [iface]
    # the router waits for its interfaces: Neutron's 409 until the timeout
    with pytest.raises(ResourceTimeout, match="still has ports"):
        adapter.delete(router, timeout=0.5)
    # and the interface for a floating IP that goes out through it
    with adapter.client.session(region):
        public = catalog.external_network(adapter.client, region)
    adapter.update(router, {"external_gateway_info": {"network": public}},
                   frozenset({"external_gateway_info"}), stack=STACK, spec_hash="spec-2",
                   timeout=TIMEOUT)
    port = create(adapter, region, PORT, "port", {"network": net.physical_id})
    fip = create(adapter, region, FLOATING_IP, "ip", {"port": port.physical_id})
    assert fip.status == "associated"
    with pytest.raises(ResourceTimeout, match="required by one or more floating IPs"):
        adapter.delete(iface, timeout=0.5)
    adapter.delete(fip, timeout=TIMEOUT)
    adapter.delete(port, timeout=TIMEOUT)
    adapter.delete(iface, timeout=TIMEOUT)
    adapter.delete(iface, timeout=TIMEOUT)  # already gone: Neutron's 404 is fine
    adapter.delete(router, timeout=TIMEOUT)
    assert adapter.discover(region, frozenset({ROUTER, ROUTER_INTERFACE}), STACK) == []
    with pytest.raises(CloudError, match="could not be found") as info:
        create(adapter, region, ROUTER_INTERFACE, "gone", {"router": router.physical_id,
                                                           "subnet": sub.physical_id})
    assert info.value.permanent


def test_a_tag_too_long_for_neutron_is_refused_before_any_request(
        adapter: OpenStackAdapter) -> None:
    long = "a" * 50
    with Counted(adapter) as c, pytest.raises(CloudError, match="Neutron allows 60") as info:
        create(adapter, REGIONS[0], ROUTE, long, {
            "router": "00000000-0000-0000-0000-000000000000", "destination": "10.0.0.0/8",
            "nexthop": "10.0.0.1"})
    assert info.value.permanent and c.n == 0


# --- key pairs ----------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_key_pair_lifecycle(adapter: OpenStackAdapter, region: str) -> None:
    pub = public_key()
    with Counted(adapter) as c:
        kp = create(adapter, region, KEYPAIR, "key", {"public_key": pub})
    assert c.n == 2  # token + POST
    assert kp.physical_id == "web.key" and kp.properties == {}
    assert kp.attributes["name"] == "web.key" and kp.attributes["fingerprint"]
    assert kp.attributes["public_key"] == pub
    [found] = adapter.discover(region, frozenset({KEYPAIR}), STACK)
    assert found.attributes["fingerprint"] == kp.attributes["fingerprint"]
    # the same key again (a retried create) is adopted; a different key is refused
    assert create(adapter, region, KEYPAIR, "key", {"public_key": pub}).physical_id == "web.key"
    with pytest.raises(CloudError) as info:
        create(adapter, region, KEYPAIR, "key", {"public_key": public_key()})
    assert info.value.status == "409"
    adapter.delete(kp, timeout=TIMEOUT)
    assert adapter.discover(region, frozenset({KEYPAIR}), STACK) == []


# --- discovery ----------------------------------------------------------------------


def test_discovery_finds_only_this_stacks_resources(adapter: OpenStackAdapter) -> None:
    region = REGIONS[0]
    for stack in (STACK, "webx", "other"):
        create(adapter, region, SERVER, "app", server_props(), stack=stack)
    for stack in (STACK, "webx", "other"):
        create(adapter, region, VOLUME, "data", {"size": 1}, stack=stack)
        create(adapter, region, SECURITY_GROUP, "sg", {}, stack=stack)
        create(adapter, region, KEYPAIR, "key", {"public_key": public_key()}, stack=stack)
        create(adapter, region, FLOATING_IP, "ip", {}, stack=stack)
        net = create(adapter, region, NETWORK, "net", {}, stack=stack)
        create(adapter, region, SUBNET, "sub", {"network": net.physical_id,
                                                "cidr": "10.6.0.0/24"}, stack=stack)
        create(adapter, region, PORT, "port", {"network": net.physical_id}, stack=stack)

    fresh = OpenStackAdapter(adapter.target)
    with Counted(fresh) as c:
        found = fresh.discover(region, KINDS, STACK)
    # listings: servers, flavors, keypairs (compute); volumes; ports, security groups,
    # floating IPs, networks, subnets (network) = 9, plus one token per service = 3
    assert c.n == 12
    assert sorted((r.kind, r.address, r.name) for r in found) == sorted([
        (SERVER, "app", "web.app"), (VOLUME, "data", "web.data"),
        (SECURITY_GROUP, "sg", "web.sg"), (KEYPAIR, "key", "web.key"),
        (FLOATING_IP, "ip", ""), (NETWORK, "net", "web.net"), (SUBNET, "sub", "web.sub"),
        (PORT, "port", "web.port"),
    ])
    with Counted(fresh) as c:  # tokens are reused, flavors cached
        again = fresh.discover(region, KINDS, STACK)
    assert c.n == 8 and sorted(r.physical_id for r in again) == sorted(
        r.physical_id for r in found)
    with Counted(fresh) as c:
        [kp] = fresh.discover(region, frozenset({KEYPAIR}), "webx")
    assert kp.name == "webx.key" and c.n == 1


def test_discover_30_servers_through_small_pages(sandbox: dict[str, Any]) -> None:
    region = REGIONS[1]
    creator = adapters.openstack(sandbox)

    def make(i: int) -> Any:
        return create(creator, region, SERVER, f"node[{i}]", server_props(
            metadata={"i": str(i)}))

    with ThreadPoolExecutor(max_workers=5) as pool:  # one driver per thread at a time
        made = list(pool.map(make, range(30)))
    assert len({s.physical_id for s in made}) == 30
    create(creator, region, SERVER, "app", server_props(), stack="other")

    paged = adapters.openstack(sandbox, page_size=10)
    before = sandbox_requests(sandbox)
    found = paged.discover(region, frozenset({SERVER}), STACK)
    assert {r.address for r in found} == {f"node[{i}]" for i in range(30)}
    # compute: token, servers pages of 10/10/10/1 (31 servers), flavors;
    # network: token, ports pages 10/10/10/1 (31 ports), security groups (1 page)
    assert paged.request_count() == 1 + 4 + 1 + 1 + 4 + 1
    assert sandbox_requests(sandbox) - before == paged.request_count()

    plain = adapters.openstack(sandbox)
    assert len(plain.discover(region, frozenset({SERVER}), STACK)) == 30
    assert plain.request_count() == 6  # 2 tokens, servers, flavors, ports, groups


def test_request_count_matches_the_sandbox(sandbox: dict[str, Any]) -> None:
    adapter = adapters.openstack(sandbox)
    region = REGIONS[0]
    before = sandbox_requests(sandbox)
    srv = create(adapter, region, SERVER, "app", server_props())
    vol = create(adapter, region, VOLUME, "data", {"size": 1})
    att = create(adapter, region, ATTACHMENT, "att", {"volume_id": vol.physical_id,
                                                      "instance_uuid": srv.physical_id})
    adapter.discover(region, KINDS, STACK)
    adapter.delete(att, timeout=TIMEOUT)
    adapter.delete(vol, timeout=TIMEOUT)
    adapter.delete(srv, timeout=TIMEOUT)
    assert adapter.request_count() == sandbox_requests(sandbox) - before > 0


def test_transient_failures_are_retried_and_counted(sandbox: dict[str, Any]) -> None:
    admin(sandbox, "config", {"failure_rate": 0.3, "seed": 7, "services": ["network"]})
    slept: list[float] = []
    adapter = adapters.openstack(sandbox, sleep=slept.append)
    before = sandbox_requests(sandbox)
    for i in range(5):
        create(adapter, REGIONS[0], NETWORK, f"net{i}", {})
    assert len(adapter.discover(REGIONS[0], frozenset({NETWORK}), STACK)) == 5
    assert slept  # some 503s were retried
    assert adapter.request_count() == sandbox_requests(sandbox) - before


# --- lookup_choice ------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_lookup_choice(adapter: OpenStackAdapter, region: str) -> None:
    assert adapter.lookup_choice(region, "flavor", "m1.small") == Choice("m1.small")
    assert adapter.lookup_choice(region, "flavor", "2").canonical == "m1.small"  # by id
    flavors = adapter.lookup_choice(region, "flavor", "t3.micro")
    assert flavors.canonical is None
    assert "m1.small" in flavors.offered and list(flavors.offered) == sorted(flavors.offered)
    image = adapter.lookup_choice(region, "image", "ubuntu-22.04").canonical
    assert image is not None and image != "ubuntu-22.04"  # names become ids
    assert adapter.lookup_choice(region, "image", image) == Choice(image)
    images = adapter.lookup_choice(region, "image", "windows-11")
    assert images.offered == ("cirros-0.6", "debian-12", "ubuntu-20.04", "ubuntu-22.04")
    srv = create(adapter, region, SERVER, "app", server_props())
    assert adapter.lookup_choice(region, "image", srv.properties["image"]) == Choice(image)
    public = adapter.lookup_choice(region, "network", "public").canonical
    assert public is not None and public != "public"
    assert adapter.lookup_choice(region, "keypair", "ops") == Choice(None, ())
    create(adapter, region, KEYPAIR, "key", {"public_key": public_key()})
    assert adapter.lookup_choice(region, "keypair", "web.key") == Choice("web.key")
    assert adapter.lookup_choice(region, "keypair", "ops") == Choice(None, ("web.key",))


# --- credentials, regions -----------------------------------------------------------


def test_wrong_password_is_a_permanent_authentication_error(sandbox: dict[str, Any]) -> None:
    adapter = OpenStackAdapter(adapters.openstack_target(sandbox, password="wrong"))
    with pytest.raises(CloudError) as info:
        adapter.discover(REGIONS[0], frozenset({KEYPAIR}), STACK)
    assert info.value.permanent
    assert info.value.message.startswith(
        "authentication failed for target 'sandbox-openstack' (HTTP 401)")
    assert "wrong" not in info.value.message
    assert adapter.request_count() == 1  # one token request, not retried


def test_unknown_region_names_the_catalogs_regions(adapter: OpenStackAdapter) -> None:
    with pytest.raises(CloudError) as info:
        adapter.discover("mars-north-1", frozenset({SERVER}), STACK)
    assert info.value.permanent
    assert "'mars-north-1'" in info.value.message
    assert "de-fra-1, nl-ams-1" in info.value.message


def test_project_and_domain_ids_authenticate_too(sandbox: dict[str, Any]) -> None:
    target = adapters.openstack_target(sandbox, project_name=None, project_id=None,
                         user_domain_name=None, user_domain_id="default",
                         project_domain_name=None)
    with pytest.raises(CloudError, match="project_name"):
        OpenStackAdapter(target).discover(REGIONS[0], frozenset({SERVER}), STACK)
    target = adapters.openstack_target(sandbox, user_domain_name=None, user_domain_id="default",
                         project_domain_name=None, project_domain_id="default")
    assert OpenStackAdapter(target).discover(REGIONS[0], frozenset({SERVER}), STACK) == []
