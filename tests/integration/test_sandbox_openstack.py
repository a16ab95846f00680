"""The OpenStack sandbox through libcloud's real, unpatched OpenStack driver.

``api_version="2.2"`` gives ``OpenStack_2_NodeDriver``: servers, flavors, key
pairs and volume attachments go to Nova; images to Glance; networks, subnets,
ports, security groups and floating IPs to Neutron; volumes to Cinder v3.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError, MalformedResponseError
from libcloud.compute.types import NodeState, StorageVolumeState

from cloudtmpl_sandbox import manager
from tests.integration.openstack_api import (
    _project_id,
    boot,
    configure,
    driver,
    http,
    image,
    sizes,
    token,
    wait_for,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CATALOG = yaml.safe_load((REPO / "providers" / "sandbox-openstack.yaml").read_text())
REGIONS = ["de-fra-1", "nl-ams-1"]
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpsZ7W0hdLsrL0lm7ZaLXkUJNdMYqN0nYxMbHBrQ+Gx test@sandbox"
)










def counter(info: dict[str, Any]) -> dict[str, Any]:
    return http(info, "GET", "/_sandbox/requests")[2]  # type: ignore[no-any-return]










# ---------------------------------------------------------------------- identity


@pytest.mark.parametrize("region", REGIONS)
def test_auth_catalog_and_one_token_per_service(
    openstack_reset: dict[str, Any], region: str
) -> None:
    d = driver(openstack_reset, region)
    assert len(d.list_sizes()) == 5  # compute
    assert d.list_images()  # image
    assert d.ex_list_networks()  # network
    assert d.list_volumes() == []  # volumev3
    assert counter(openstack_reset)["by_service"]["identity"] == 4
    catalog = d.connection.service_catalog
    for stype, name in (
        ("compute", "nova"),
        ("image", "glance"),
        ("network", "neutron"),
        ("volumev3", "cinderv3"),
    ):
        endpoint = catalog.get_endpoint(service_type=stype, name=name, region=region)
        assert endpoint.url.startswith(openstack_reset["endpoint"] + "/")
        assert region in endpoint.url
    assert d.connection.request_path.endswith(f"/compute/{region}/v2.1")


def test_wrong_password_is_invalid_creds(openstack_reset: dict[str, Any]) -> None:
    with pytest.raises(InvalidCredsError):
        driver(openstack_reset, password="wrong").list_sizes()
    bad = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "sandbox", "domain": {"id": "default"}, "password": "x"}
                },
            }
        }
    }
    status, _, body = http(openstack_reset, "POST", "/identity/v3/auth/tokens", bad)
    assert status == 401 and body["error"]["title"] == "Unauthorized"


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/compute/de-fra-1/v2.1/servers", 200),
        ("/image/de-fra-1/v2/images", 200),
        ("/network/de-fra-1/v2.0/networks", 200),
        ("/volume/de-fra-1/v3/{project}/volumes", 200),
        ("/object-store/de-fra-1/v1/AUTH_{project}", 204),  # Swift: no containers yet
    ],
)
def test_missing_unknown_and_expired_tokens_are_401(
    openstack_reset: dict[str, Any], path: str, ok: int
) -> None:
    info = openstack_reset
    good = token(info)
    project = http(info, "GET", "/compute/de-fra-1/v2.1/servers/detail", token=good)
    assert project[0] == 200
    path = path.replace("{project}", _project_id(info))
    for bad in (None, "gAAAAAnot-a-token"):  # as keystonemiddleware answers every service
        status, headers, body = http(info, "GET", path, token=bad)
        assert status == 401 and body["error"]["title"] == "Unauthorized", (path, body)
        assert headers["WWW-Authenticate"].startswith("Keystone uri=")
    assert http(info, "GET", path, token=good)[0] == ok
    configure(info, token_ttl=0.05)
    short = token(info)
    time.sleep(0.1)
    status, _, body = http(info, "GET", path, token=short)
    assert status == 401 and body["error"]["code"] == 401




# ---------------------------------------------------------------- flavors, images


@pytest.mark.parametrize("region", REGIONS)
def test_sizes_and_images_match_the_catalog(openstack_reset: dict[str, Any], region: str) -> None:
    d = driver(openstack_reset, region)
    flavors = sizes(d)
    assert set(CATALOG["sizes"].values()) == set(flavors)
    tiny = flavors["m1.tiny"]
    assert (tiny.ram, tiny.extra["disabled"], tiny.vcpus) == (512, False, 1)
    images = {i.name: i.id for i in d.list_images()}
    assert set(images) == {"ubuntu-22.04", "ubuntu-20.04", "debian-12", "cirros-0.6"}
    for name, image_id in CATALOG["images"].items():
        assert image_id in images.values(), name
        assert d.get_image(image_id).extra["status"] == "active"


# ------------------------------------------------------------------------ servers


@pytest.mark.parametrize("region", REGIONS)
def test_server_lifecycle(openstack_reset: dict[str, Any], region: str) -> None:
    d = driver(openstack_reset, region)
    key = d.import_key_pair_from_string("deploy", PUBLIC_KEY)
    assert key.fingerprint.count(":") == 15
    group = d.ex_create_security_group("web", "web servers")
    d.ex_create_security_group_rule(group, "tcp", 22, 22, "0.0.0.0/0")
    net = d.ex_create_network("app-net")
    subnet = d.ex_create_subnet("app-subnet", net, "192.168.50.0/24")
    node = d.create_node(
        name="web-0",
        size=sizes(d)["m1.small"],
        image=image(d),
        ex_keyname="deploy",
        ex_security_groups=[group],
        networks=[net],
        ex_metadata={"cloudtmpl:stack": "demo"},
        ex_userdata="#cloud-config\n",
    )
    assert node.state == NodeState.PENDING and node.extra["password"]
    assert wait_for(lambda: d.ex_get_node_details(node.id).state == NodeState.RUNNING)
    [listed] = d.list_nodes()
    assert listed.id == node.id and listed.name == "web-0"
    assert listed.private_ips == ["192.168.50.2"] and subnet.cidr == "192.168.50.0/24"
    assert listed.extra["key_name"] == "deploy"
    assert listed.extra["metadata"] == {"cloudtmpl:stack": "demo"}
    assert listed.extra["addresses"]["app-net"][0]["OS-EXT-IPS:type"] == "fixed"
    assert [g.name for g in d.ex_get_node_security_groups(listed)] == ["web"]

    assert d.ex_set_metadata(listed, {"a": "1"}) == {"a": "1"}
    assert d.ex_get_metadata(listed) == {"a": "1"}

    assert d.ex_resize(listed, sizes(d)["m1.medium"]) is True
    assert d.ex_get_node_details(node.id).state == NodeState.RECONFIGURING
    assert wait_for(lambda: d.ex_get_node_details(node.id).extra["vm_state"] == "resized")
    assert d.ex_confirm_resize(listed) is True
    after = d.ex_get_node_details(node.id)
    assert after.state == NodeState.RUNNING and after.extra["flavorId"] == "3"

    assert d.reboot_node(after) is True
    assert wait_for(lambda: d.ex_get_node_details(node.id).state == NodeState.RUNNING)
    assert d.stop_node(after) is True
    assert d.ex_get_node_details(node.id).state == NodeState.STOPPED
    assert d.start_node(after) is True

    assert d.destroy_node(after) is True
    assert d.list_nodes() == []
    assert d.ex_get_node_details(node.id) is None
    # Nova's own port went with the server; the seeded router's interface stays
    assert [p.extra["device_owner"] for p in d.ex_list_ports()] == ["network:router_interface"]
    assert d.delete_key_pair(key) is True
    assert d.list_key_pairs() == []


def test_server_defaults_and_errors(openstack_reset: dict[str, Any]) -> None:
    d = driver(openstack_reset)
    node = boot(d, "plain")  # no networks: lands on the project's only network
    assert node.private_ips and node.private_ips[0].startswith("10.0.")
    assert [
        g["name"]
        for g in d.connection.request(f"/servers/{node.id}").object["server"]["security_groups"]
    ] == ["default"]
    generated = d.create_key_pair("generated")
    assert generated.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    with pytest.raises(BaseHTTPError, match="already exists") as err:
        d.import_key_pair_from_string("generated", PUBLIC_KEY)
    assert err.value.code == 409
    with pytest.raises(BaseHTTPError, match="Invalid key_name") as err:
        d.create_node(name="x", size=sizes(d)["m1.tiny"], image=image(d), ex_keyname="nope")
    assert err.value.code == 400
    with pytest.raises(BaseHTTPError, match="Flavor 99 could not be found") as err:
        d.connection.request(
            "/servers",
            method="POST",
            data={
                "server": {"name": "x", "flavorRef": "99", "imageRef": CATALOG["images"]["cirros"]}
            },
        )
    with pytest.raises(BaseHTTPError, match="Cannot 'confirmResize'") as err:
        d.ex_confirm_resize(node)
    assert err.value.code == 409
    d.ex_create_network("second")  # now two project networks: Nova wants a choice
    with pytest.raises(BaseHTTPError, match="Multiple possible networks") as err:
        d.create_node(name="x", size=sizes(d)["m1.tiny"], image=image(d))
    assert err.value.code == 409


# --------------------------------------------------------------- security groups


def test_security_groups_go_to_neutron(openstack_reset: dict[str, Any]) -> None:
    d = driver(openstack_reset)
    before = counter(openstack_reset)["by_service"].get("network", 0)
    group = d.ex_create_security_group("db", "database")
    assert counter(openstack_reset)["by_service"]["network"] == before + 1
    # libcloud's Neutron rule parser drops direction/ethertype (every rule says
    # "ingress"): read them from the raw body.
    assert [(r.direction, r.ip_protocol) for r in group.rules] == [("ingress", None)] * 2
    raw = d.network_connection.request(f"/v2.0/security-groups/{group.id}").object
    rules = raw["security_group"]["security_group_rules"]
    assert sorted((r["direction"], r["ethertype"]) for r in rules) == [
        ("egress", "IPv4"),
        ("egress", "IPv6"),
    ]
    rule = d.ex_create_security_group_rule(group, "tcp", 5432, 5432, "10.0.0.0/8")
    assert (rule.ip_protocol, rule.from_port, rule.to_port, rule.ip_range) == (
        "tcp",
        5432,
        5432,
        "10.0.0.0/8",
    )
    with pytest.raises(BaseHTTPError, match="already exists") as err:
        d.ex_create_security_group_rule(group, "tcp", 5432, 5432, "10.0.0.0/8")
    assert err.value.code == 409
    with pytest.raises(BaseHTTPError, match="port_range_min must be <= port_range_max"):
        d.ex_create_security_group_rule(group, "tcp", 90, 80, "10.0.0.0/8")
    assert d.ex_delete_security_group_rule(rule) is True
    assert {g.name for g in d.ex_list_security_groups()} == {"default", "db"}

    node = boot(d, "db-0", ex_security_groups=[group])
    with pytest.raises(BaseHTTPError, match="in use") as err:
        d.ex_delete_security_group(group)
    assert err.value.code == 409
    status, _, body = http(
        openstack_reset,
        "DELETE",
        f"/network/de-fra-1/v2.0/security-groups/{group.id}",
        token=token(openstack_reset),
    )
    assert status == 409 and body["NeutronError"]["type"] == "SecurityGroupInUse"
    d.destroy_node(node)
    assert d.ex_delete_security_group(group) is True


# ------------------------------------------------------------ networks and ports


def test_networks_subnets_and_ports(openstack_reset: dict[str, Any]) -> None:
    d = driver(openstack_reset)
    names = {n.name: n for n in d.ex_list_networks()}
    assert names["public"].extra["router:external"] is True
    net = d.ex_create_network("backend")
    with pytest.raises(BaseHTTPError, match="not a valid IP subnet") as err:
        d.ex_create_subnet("bad", net, "10.20.300.0/24")
    assert err.value.code == 400
    subnet = d.ex_create_subnet("backend-v4", net, "10.20.0.0/24", dns_nameservers=["9.9.9.9"])
    with pytest.raises(BaseHTTPError, match="overlaps"):
        d.ex_create_subnet("overlap", net, "10.20.0.128/25")
    raw = d.network_connection.request(f"/v2.0/subnets/{subnet.id}").object["subnet"]
    assert raw["gateway_ip"] == "10.20.0.1" and raw["dns_nameservers"] == ["9.9.9.9"]
    assert raw["enable_dhcp"] is True

    port = d.ex_create_port(net, description="pre-made", name="p0")
    assert port.extra["fixed_ips"][0]["ip_address"] == "10.20.0.2"
    assert port.extra["description"] == "pre-made"
    # the project's ports: this one and the seeded router's interface on private
    assert [p.id for p in d.ex_list_ports() if p.extra["network_id"] == net.id] == [port.id]
    assert [p.extra["device_owner"] for p in d.ex_list_ports() if p.id != port.id] == [
        "network:router_interface"]
    node = d.create_node(name="with-port", size=sizes(d)["m1.tiny"], image=image(d), networks=[net])
    wait_for(lambda: d.ex_get_node_details(node.id).state == NodeState.RUNNING)
    [own] = d.ex_get_node_ports(node)
    assert own.extra["fixed_ips"][0]["ip_address"] == "10.20.0.3"
    listed = d.network_connection.request("/v2.0/ports", params={"device_id": node.id}).object
    assert [p["device_owner"] for p in listed["ports"]] == ["compute:nova"]
    assert d.ex_attach_port_interface(node, port) is True
    assert {p.id for p in d.ex_get_node_ports(node)} == {own.id, port.id}
    assert d.ex_detach_port_interface(node, port) is True
    assert d.ex_delete_port(port) is True
    with pytest.raises(BaseHTTPError, match="in use"):
        d.ex_delete_network(net)
    d.destroy_node(node)
    assert d.ex_delete_subnet(subnet) is True
    assert d.ex_delete_network(net) is True


# ------------------------------------------------------------------------ volumes


def test_volume_attach_detach_and_delete(openstack_reset: dict[str, Any]) -> None:
    info = configure(openstack_reset, volume_seconds=0.2)
    assert info["volume_seconds"] == 0.2
    d = driver(openstack_reset)
    volume = d.create_volume(5, "data", ex_volume_type="ssd")
    assert volume.state == StorageVolumeState.CREATING
    assert wait_for(lambda: d.ex_get_volume(volume.id).state == StorageVolumeState.AVAILABLE)
    node = boot(d, "db")
    assert d.attach_volume(node, volume) is True
    attached = d.ex_get_volume(volume.id)
    assert attached.state == StorageVolumeState.INUSE
    assert attached.extra["attachments"][0]["server_id"] == node.id
    assert attached.extra["attachments"][0]["device"] == "/dev/vdb"
    assert d.ex_get_node_details(node.id).extra["volumes_attached"] == [{"id": volume.id}]
    with pytest.raises(BaseHTTPError, match="Invalid volume") as err:
        d.destroy_volume(attached)
    assert err.value.code == 400
    with pytest.raises(BaseHTTPError, match="must be 'available' to extend"):
        d.volumev3_connection.request(
            f"/volumes/{volume.id}/action", method="POST", data={"os-extend": {"new_size": 8}}
        )
    assert d.detach_volume(attached) is True
    assert d.ex_get_volume(volume.id).state == StorageVolumeState.AVAILABLE
    resp = d.volumev3_connection.request(
        f"/volumes/{volume.id}/action", method="POST", data={"os-extend": {"new_size": 8}}
    )
    assert resp.status == 202 and d.ex_get_volume(volume.id).size == 8
    types = d.volumev3_connection.request("/types").object["volume_types"]
    assert {t["name"] for t in types} >= {"ssd", "standard"}
    assert d.destroy_volume(attached) is True
    assert d.list_volumes() == []


# ------------------------------------------------------------------- floating IPs


def public_cidr(d: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    [subnet] = [s for s in d.ex_list_subnets() if s.name == "public-subnet"]
    return ipaddress.ip_network(subnet.cidr)


def test_floating_ips(openstack_reset: dict[str, Any]) -> None:
    d = driver(openstack_reset)
    node = boot(d, "edge")
    fip = d.ex_create_floating_ip("public")
    # the public network is a loopback /24: a floating IP is an address one can reach
    assert ipaddress.ip_address(fip.ip_address) in public_cidr(d)
    assert public_cidr(d).is_loopback
    assert d.ex_attach_floating_ip_to_node(node, fip) is True
    refreshed = d.ex_get_node_details(node.id)
    assert refreshed.public_ips == [fip.ip_address]
    [listed] = d.ex_list_floating_ips()
    assert listed.extra["port_id"] and listed.extra["port_details"]["device_id"] == node.id
    # descriptions (the product's ownership markers) only through the raw connection
    body = {"floatingip": {"description": "cloudtmpl:stack=demo"}}
    resp = d.network_connection.request(f"/v2.0/floatingips/{fip.id}", method="PUT", data=body)
    assert resp.object["floatingip"]["description"] == "cloudtmpl:stack=demo"
    assert d.ex_detach_floating_ip_from_node(node, fip) is True
    assert d.ex_get_node_details(node.id).public_ips == []
    assert d.ex_delete_floating_ip(fip) is True
    assert d.ex_list_floating_ips() == []


# ------------------------------------------------------------------ pagination


def test_pagination_of_30_servers(openstack_reset: dict[str, Any]) -> None:
    d = driver(openstack_reset)
    flavor, img = sizes(d)["m1.tiny"], image(d, "cirros")
    started = time.monotonic()
    created = {d.create_node(name=f"n{i:02d}", size=flavor, image=img).id for i in range(30)}
    create_s = time.monotonic() - started
    started = time.monotonic()
    assert {n.id for n in d.list_nodes()} == created
    list_s = time.monotonic() - started
    # libcloud's list_nodes sends no limit (one page of up to 1000); paging by hand:
    seen: list[str] = []
    pages = 0
    params: dict[str, Any] = {"limit": 7}
    while True:
        body = d.connection.request("/servers/detail", params=params).object
        pages += 1
        seen += [s["id"] for s in body["servers"]]
        nxt = [link["href"] for link in body.get("servers_links", []) if link["rel"] == "next"]
        if not nxt:
            break
        query = nxt[0].split("?", 1)[1]
        params = dict(pair.split("=", 1) for pair in query.split("&"))
    assert pages == 5 and len(seen) == 30 and set(seen) == created
    names = [
        s["name"] for s in d.connection.request("/servers", params={"limit": 3}).object["servers"]
    ]
    assert names == ["n29", "n28", "n27"]  # newest first, as Nova sorts
    ports = d.network_connection.request("/v2.0/ports", params={"limit": 25}).object
    assert len(ports["ports"]) == 25 and ports["ports_links"][0]["rel"] == "next"
    print(f"30 servers: create {create_s:.2f}s, list_nodes {list_s:.3f}s")


# ----------------------------------------------------------------- errors/regions


def test_not_found_bodies(openstack_reset: dict[str, Any]) -> None:
    info, tok = openstack_reset, token(openstack_reset)
    missing = "00000000-0000-0000-0000-000000000000"
    status, _, body = http(info, "GET", f"/compute/de-fra-1/v2.1/servers/{missing}", token=tok)
    assert status == 404 and body == {
        "itemNotFound": {"code": 404, "message": f"Instance {missing} could not be found."}
    }
    status, _, body = http(info, "GET", f"/network/de-fra-1/v2.0/ports/{missing}", token=tok)
    assert status == 404 and body["NeutronError"] == {
        "type": "PortNotFound",
        "message": f"Port {missing} could not be found.",
        "detail": "",
    }
    project = _project_id(info)
    path = f"/volume/de-fra-1/v3/{project}/volumes/{missing}"
    status, _, body = http(info, "GET", path, token=tok)
    assert status == 404 and body["itemNotFound"]["code"] == 404
    status, _, text = http(info, "GET", f"/image/de-fra-1/v2/images/{missing}", token=tok)
    assert status == 404 and "No image found" in text
    with pytest.raises(BaseHTTPError, match="could not be found") as err:
        driver(info).connection.request(f"/servers/{missing}")
    assert err.value.code == 404


def test_regions_are_isolated(openstack_reset: dict[str, Any]) -> None:
    fra, ams = driver(openstack_reset, "de-fra-1"), driver(openstack_reset, "nl-ams-1")
    node = boot(fra, "fra-only")
    fra.import_key_pair_from_string("k", PUBLIC_KEY)
    assert [n.id for n in fra.list_nodes()] == [node.id]
    assert ams.list_nodes() == [] and ams.list_key_pairs() == []
    assert ams.ex_get_node_details(node.id) is None
    assert public_cidr(fra) != public_cidr(ams)
    assert ipaddress.ip_address(ams.ex_create_floating_ip("public").ip_address) \
        in public_cidr(ams)


# ------------------------------------------------------------------------- knobs


def test_latency_knob(openstack_reset: dict[str, Any]) -> None:
    # raw requests: libcloud's list_sizes spends ~25 ms per flavor in its pricing file
    d = driver(openstack_reset)
    d.connection.request("/flavors")
    started = time.monotonic()
    d.connection.request("/flavors")
    fast = time.monotonic() - started
    configure(openstack_reset, latency_ms=150)
    started = time.monotonic()
    d.connection.request("/flavors")
    assert time.monotonic() - started >= 0.15 > fast


def test_throttle_and_failure_knobs(openstack_reset: dict[str, Any]) -> None:
    d = driver(openstack_reset)
    d.list_sizes()
    configure(openstack_reset, throttle_rate=1.0, retry_after=7, services=["compute"])
    with pytest.raises(RateLimitReachedError) as err:
        d.list_sizes()
    assert err.value.headers["retry-after"] == "7"
    assert d.ex_list_networks()  # only compute is throttled
    configure(openstack_reset, throttle_rate=0.0, failure_rate=1.0, failure_status=503)
    with pytest.raises(BaseHTTPError) as failed:
        d.list_sizes()
    assert failed.value.code == 503
    configure(openstack_reset, failure_rate=0.5, seed=42, services=[])
    outcomes = []
    for _ in range(40):
        try:
            d.list_sizes()
            outcomes.append(True)
        except BaseHTTPError:
            outcomes.append(False)
    assert 8 <= outcomes.count(False) <= 32
    configure(openstack_reset, failure_rate=1.0, failure_status=500, services=["identity"])
    with pytest.raises(MalformedResponseError):  # libcloud reads a failed Keystone like this
        driver(openstack_reset).list_sizes()


def test_slow_builds_stay_in_build(openstack_reset: dict[str, Any]) -> None:
    configure(openstack_reset, build_seconds=30)
    d = driver(openstack_reset)
    node = d.create_node(name="slow", size=sizes(d)["m1.tiny"], image=image(d))
    time.sleep(0.2)
    assert d.ex_get_node_details(node.id).state == NodeState.PENDING
    with pytest.raises(BaseHTTPError, match="vm_state building") as err:
        d.ex_resize(node, sizes(d)["m1.small"])
    assert err.value.code == 409


def test_quotas(openstack_reset: dict[str, Any]) -> None:
    configure(openstack_reset, quota={"instances": 1, "volumes": 1, "floating_ips": 1})
    d = driver(openstack_reset)
    boot(d, "one")
    with pytest.raises(BaseHTTPError, match="Quota exceeded for instances") as err:
        d.create_node(name="two", size=sizes(d)["m1.tiny"], image=image(d))
    assert err.value.code == 403
    d.create_volume(1, "v1")
    with pytest.raises(BaseHTTPError, match="VolumeLimitExceeded") as err:
        d.create_volume(1, "v2")
    assert err.value.code == 413
    d.ex_create_floating_ip("public")
    with pytest.raises(BaseHTTPError, match="Quota exceeded") as err:
        d.ex_create_floating_ip("public")
    assert err.value.code == 409


def test_request_counter_and_reset(openstack_reset: dict[str, Any]) -> None:
    assert counter(openstack_reset) == {"total": 0, "by_service": {}}
    d = driver(openstack_reset)
    d.list_sizes()
    assert counter(openstack_reset) == {"total": 2, "by_service": {"identity": 1, "compute": 1}}
    boot(d, "gone")
    http(openstack_reset, "POST", "/_sandbox/reset")
    assert d.list_nodes() == []  # state wiped; the token survives
    http(openstack_reset, "POST", "/_sandbox/requests/reset")
    assert counter(openstack_reset)["total"] == 0


# ----------------------------------------------------------------------- manager


def _process_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_manager_starts_both_reuses_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDTMPL_SANDBOX_DIR", str(tmp_path))
    assert manager.status()["openstack"]["running"] is False
    try:
        started = time.monotonic()
        first = manager.start()
        print(f"both sandboxes start: {time.monotonic() - started:.2f}s")
        second = manager.start()
        assert second["openstack"]["pid"] == first["openstack"]["pid"]
        assert second["aws"]["pid"] == first["aws"]["pid"]
        st = manager.status()["openstack"]
        assert st["running"] is True and st["regions"] == REGIONS
        assert st["auth_url"] == st["endpoint"] + "/identity"
        assert (st["username"], st["project_name"]) == ("sandbox", "sandbox")
        assert (tmp_path / "openstack.json").exists() and (tmp_path / "openstack.pid").exists()
        assert driver(st).list_sizes()
    finally:
        assert manager.stop() is True
    assert not _process_running(first["openstack"]["pid"])
    assert not _process_running(first["aws"]["pid"])
    assert manager.status()["openstack"]["running"] is False
    assert not (tmp_path / "openstack.json").exists()


def test_server_refuses_public_bind() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cloudtmpl_sandbox.openstack", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode != 0 and "loopback" in proc.stderr
