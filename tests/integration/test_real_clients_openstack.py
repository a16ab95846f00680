"""The OpenStack emulator driven by the real clients: python-openstackclient and openstacksdk.

A ``clouds.yaml`` is written from ``cloudtmpl sandbox status --format json`` with only
what a user of a real cloud has (auth URL, user, password, project, domain, region: no
endpoint overrides), so every service is found through Keystone's catalog and its own
version document, as on a real cloud.  The ``openstack`` CLI runs as a subprocess
(``-f json``, parsed and asserted); openstacksdk runs in this process
(``openstack.connect(cloud=...)``).  Every command's result is asserted, and every
resource made is deleted and asserted gone.

The router tests (``test_router_*``, ``test_floating_ip_needs_a_router``) and
``test_port_create_cli`` need Neutron's routers and ``/v2.0/extensions``, which another
branch adds to the emulator: they fail until it lands.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openstack
import openstack.config
import openstack.connection
import pytest
import yaml

from cloudtmpl_sandbox import control
from tests.integration.clitools import REPO

CLOUD = "sandbox-real-clients"
REGION = "de-fra-1"
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKc8gtnDVJ0ztqNTJSf8EJXhYgQ3G7ffQ3G1Ld2TU"
              "cq4 real-clients@test")


def _openstack_cli() -> str:
    found = Path(sys.executable).with_name("openstack")
    if found.exists():
        return str(found)
    which = shutil.which("openstack")
    assert which, "python-openstackclient is not installed (the test extra has it)"
    return which


class Clients:
    """The ``openstack`` CLI and an openstacksdk connection on one ``clouds.yaml``."""

    def __init__(self, sandbox: dict[str, Any], home: Path) -> None:
        self.sandbox = sandbox
        self.home = home
        self.cli = _openstack_cli()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        self.env.update({"OS_CLIENT_CONFIG_FILE": str(home / "clouds.yaml"), "OS_CLOUD": CLOUD,
                         "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
                         "XDG_CONFIG_HOME": str(home / "config")})
        self.commands = 0

    def run(self, *args: str, json_out: bool = True) -> subprocess.CompletedProcess[str]:
        self.commands += 1
        argv = [self.cli, *args, *(["-f", "json"] if json_out else [])]
        return subprocess.run(argv, env=self.env, cwd=self.home, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)

    def ok(self, *args: str, json_out: bool = True) -> Any:
        """``openstack ARGS -f json``: its parsed output (None without output)."""
        proc = self.run(*args, json_out=json_out)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr[-2000:])
        text = proc.stdout.strip()
        if not (json_out and text):
            return None
        # --wait prints its progress before the document
        starts = [i for i in (text.find("\n{"), text.find("\n[")) if i >= 0]
        return json.loads(text if text[0] in "{[" else text[min(starts):])

    def fails(self, *args: str, json_out: bool = True) -> str:
        """``openstack ARGS``, which must fail: its error output."""
        proc = self.run(*args, json_out=json_out)
        assert proc.returncode != 0, (args, proc.stdout)
        return proc.stderr

    def gone(self, kind: str, name: str) -> None:
        """``openstack KIND show NAME`` fails with "not found"."""
        err = self.fails(*kind.split(), "show", name)
        assert "No " in err or "not found" in err.lower() or "404" in err, err

    def sdk(self) -> Any:
        config = openstack.config.OpenStackConfig(
            config_files=[str(self.home / "clouds.yaml")], load_envvars=False)
        return openstack.connection.Connection(config=config.get_one(cloud=CLOUD))

    def knobs(self, data: dict[str, Any]) -> None:
        status, body = control.call(self.sandbox["endpoint"], self.sandbox["token"], "POST",
                                    "/_sandbox/config", data)
        assert status == 200, body


@pytest.fixture(scope="module")
def clients(openstack_sandbox: dict[str, Any],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    home = tmp_path_factory.mktemp("real-clients")
    status, body = control.call(openstack_sandbox["endpoint"], openstack_sandbox["token"],
                                "POST", "/_sandbox/reset")
    assert status == 200, body
    proc = subprocess.run([sys.executable, "-m", "cloudtmpl.cli", "sandbox", "status",
                           "--format", "json"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, cwd=home,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)["openstack"]
    assert info["running"] and info["auth_url"] == openstack_sandbox["auth_url"], info
    cloud = {"auth": {"auth_url": info["auth_url"], "username": info["username"],
                      "password": info["password"], "project_name": info["project_name"],
                      "user_domain_name": info["user_domain_name"],
                      "project_domain_name": info["project_domain_name"]},
             "region_name": REGION, "identity_api_version": 3}
    (home / "clouds.yaml").write_text(yaml.safe_dump({"clouds": {CLOUD: cloud}}))
    made = Clients(openstack_sandbox, home)
    yield made
    print(f"\nopenstack CLI commands run: {made.commands}")
    made.knobs({"quota": {"instances": 200}})


# ------------------------------------------------------------------ identity, catalog


def test_token_catalog_projects_users_regions(clients: Clients) -> None:
    token = clients.ok("token", "issue")
    assert token["id"].startswith("gAAAAA") and len(token["project_id"]) == 32, token
    catalog = clients.ok("catalog", "list")
    types = {entry["Type"] for entry in catalog}
    assert {"identity", "compute", "image", "network", "volumev3", "object-store"} <= types
    for entry in catalog:
        regions = {e["region"] for e in entry["Endpoints"]}
        assert regions == {"de-fra-1", "nl-ams-1"}, entry
    projects = clients.ok("project", "list")
    assert [(p["ID"], p["Name"]) for p in projects] == [(token["project_id"], "sandbox")]
    mine = clients.ok("project", "list", "--my-projects")
    assert [p["ID"] for p in mine] == [token["project_id"]]
    # listing every user is a system or domain reader's: Keystone refuses a member
    assert "identity:list_users" in clients.fails("user", "list")
    user = clients.ok("user", "show", token["user_id"])
    assert (user["name"], user["default_project_id"]) == ("sandbox", token["project_id"])
    regions = clients.ok("region", "list")
    assert sorted(r["Region"] for r in regions) == ["de-fra-1", "nl-ams-1"]

    conn = clients.sdk()
    assert conn.current_project_id == token["project_id"]
    assert sorted(r.id for r in conn.identity.regions()) == ["de-fra-1", "nl-ams-1"]
    assert conn.identity.get_project(token["project_id"]).name == "sandbox"
    conn.close()


# -------------------------------------------------------- images, flavors, quotas, limits


def test_images_flavors_zones_quotas_limits(clients: Clients) -> None:
    images = clients.ok("image", "list")
    assert {"cirros-0.6", "debian-12", "ubuntu-20.04", "ubuntu-22.04"} <= \
        {i["Name"] for i in images}
    assert {i["Status"] for i in images} == {"active"}
    flavors = {f["Name"]: f for f in clients.ok("flavor", "list")}
    assert (flavors["m1.tiny"]["VCPUs"], flavors["m1.tiny"]["RAM"]) == (1, 512)
    zones = clients.ok("availability", "zone", "list")
    assert zones and {(z["Zone Name"], z["Zone Status"]) for z in zones} == \
        {("nova", "available")}
    compute = {q["Resource"]: q["Limit"] for q in clients.ok("quota", "show", "--compute")}
    assert (compute["instances"], compute["cores"], compute["ram"]) == (200, 800, 1_600_000)
    volume = {q["Resource"]: q["Limit"] for q in clients.ok("quota", "show", "--volume")}
    assert (volume["volumes"], volume["gigabytes"], volume["snapshots"]) == (200, 20_000, 200)
    limits = {x["Name"]: x["Value"] for x in clients.ok("limits", "show", "--absolute")}
    assert (limits["max_total_instances"], limits["total_instances_used"]) == (200, 0), limits
    assert (limits["max_total_volumes"], limits["total_volumes_used"]) == (200, 0), limits

    conn = clients.sdk()
    names = {i.name for i in conn.image.images()}
    assert "cirros-0.6" in names
    assert conn.compute.find_flavor("m1.small").vcpus == 1
    assert conn.compute.get_limits().absolute.instances == 200
    assert [z.name for z in conn.compute.availability_zones()] == ["nova"]
    conn.close()


# ------------------------------------------- networks, groups, key pairs, servers, volumes


def test_server_with_network_group_keypair_volume_floating_ip(clients: Clients) -> None:
    net = clients.ok("network", "create", "rc-net")
    assert net["name"] == "rc-net" and net["status"] == "ACTIVE", net
    subnet = clients.ok("subnet", "create", "rc-subnet", "--network", "rc-net",
                        "--subnet-range", "10.42.0.0/24")
    assert subnet["cidr"] == "10.42.0.0/24" and subnet["network_id"] == net["id"], subnet
    group = clients.ok("security", "group", "create", "rc-group")
    rule = clients.ok("security", "group", "rule", "create", "rc-group", "--protocol",
                      "tcp", "--dst-port", "22")
    assert (rule["port_range_min"], rule["port_range_max"], rule["security_group_id"]) == \
        (22, 22, group["id"]), rule
    key_file = clients.home / "rc.pub"
    key_file.write_text(PUBLIC_KEY + "\n")
    pair = clients.ok("keypair", "create", "rc-key", "--public-key", str(key_file))
    assert pair["name"] == "rc-key" and pair["fingerprint"].count(":") == 15, pair

    conn = clients.sdk()
    port = conn.network.create_port(network_id=net["id"], name="rc-port")
    assert port.fixed_ips[0]["subnet_id"] == subnet["id"], port
    assert port.fixed_ips[0]["ip_address"].startswith("10.42.0.")

    server = clients.ok("server", "create", "rc-vm", "--flavor", "m1.tiny", "--image",
                        "cirros-0.6", "--network", "rc-net", "--security-group", "rc-group",
                        "--key-name", "rc-key", "--wait")
    assert server["status"] == "ACTIVE" and server["key_name"] == "rc-key", server
    shown = clients.ok("server", "show", "rc-vm")
    assert shown["addresses"]["rc-net"][0].startswith("10.42.0."), shown
    assert {g["name"] for g in shown["security_groups"]} == {"rc-group"}, shown

    volume = clients.ok("volume", "create", "rc-vol", "--size", "1")
    assert volume["size"] == 1, volume
    conn.block_storage.wait_for_status(conn.block_storage.get_volume(volume["id"]),
                                       "available", wait=30)
    clients.ok("server", "add", "volume", "rc-vm", "rc-vol", json_out=False)
    attached = clients.ok("volume", "show", "rc-vol")
    assert attached["status"] == "in-use", attached
    assert [a["server_id"] for a in attached["attachments"]] == [server["id"]], attached

    # a floating IP on the server's port (on the seeded project network: see the router
    # tests for one on a network of one's own)
    private_net = conn.network.find_network("private")
    conn.compute.create_server_interface(server["id"], net_id=private_net.id)
    ports = conn.network.ports(device_id=server["id"])
    private_port = next(p for p in ports if p.network_id == private_net.id)
    fip = clients.ok("floating", "ip", "create", "public")
    assert fip["floating_ip_address"] and fip["port_id"] is None, fip
    clients.ok("server", "add", "floating", "ip", "rc-vm", fip["floating_ip_address"],
               "--fixed-ip-address", private_port.fixed_ips[0]["ip_address"], json_out=False)
    assert conn.network.get_ip(fip["id"]).port_id == private_port.id
    addresses = conn.compute.get_server(server["id"]).addresses["private"]
    assert fip["floating_ip_address"] in [a["addr"] for a in addresses], addresses

    # the same, read by openstacksdk
    found = conn.compute.find_server("rc-vm")
    assert conn.compute.get_server(found.id).status == "ACTIVE"
    assert [a.volume_id for a in conn.compute.volume_attachments(found.id)] == [volume["id"]]

    # delete everything, each asserted gone
    clients.ok("server", "remove", "floating", "ip", "rc-vm", fip["floating_ip_address"],
               json_out=False)
    clients.ok("floating", "ip", "delete", fip["id"], json_out=False)
    assert conn.network.find_ip(fip["id"]) is None
    clients.ok("server", "remove", "volume", "rc-vm", "rc-vol", json_out=False)
    assert conn.block_storage.get_volume(volume["id"]).status == "available"
    clients.ok("server", "delete", "rc-vm", json_out=False)
    clients.gone("server", "rc-vm")
    clients.ok("volume", "delete", "rc-vol", json_out=False)
    clients.gone("volume", "rc-vol")
    conn.network.delete_port(port.id)
    assert conn.network.find_port(port.id) is None
    clients.ok("keypair", "delete", "rc-key", json_out=False)
    assert conn.compute.find_keypair("rc-key") is None
    clients.ok("security", "group", "delete", "rc-group", json_out=False)
    assert conn.network.find_security_group("rc-group") is None
    clients.ok("subnet", "delete", "rc-subnet", json_out=False)
    assert conn.network.find_subnet("rc-subnet") is None
    clients.ok("network", "delete", "rc-net", json_out=False)
    clients.gone("network", "rc-net")
    conn.close()


def test_server_create_min_max_and_list_pages(clients: Clients) -> None:
    made = clients.ok("server", "create", "rc-many", "--flavor", "m1.tiny", "--image",
                      "cirros-0.6", "--network", "private", "--min", "3", "--max", "3",
                      "--wait")
    assert made["status"] == "ACTIVE", made
    listed = clients.ok("server", "list")
    assert sorted(s["Name"] for s in listed) == ["rc-many-1", "rc-many-2", "rc-many-3"]
    ids = [s["ID"] for s in listed]
    first = clients.ok("server", "list", "--limit", "2")
    assert [s["ID"] for s in first] == ids[:2]
    rest = clients.ok("server", "list", "--limit", "2", "--marker", first[-1]["ID"])
    assert [s["ID"] for s in rest] == ids[2:]

    conn = clients.sdk()
    # openstacksdk follows the next links page by page: all three, once each
    paged = [s.id for s in conn.compute.servers(limit=1)]
    assert paged == ids
    # fewer than --min fit the quota: Nova refuses; --min 1 --max 3 makes what fits
    clients.knobs({"quota": {"instances": 4}})
    err = clients.fails("server", "create", "rc-over", "--flavor", "m1.tiny", "--image",
                        "cirros-0.6", "--network", "private", "--min", "2", "--max", "2")
    assert "Quota exceeded for instances" in err, err
    some = conn.compute.create_server(name="rc-fit", flavor_id="1",
                                      image_id=conn.image.find_image("cirros-0.6").id,
                                      networks=[{"uuid": conn.network.find_network(
                                          "private").id}], min_count=1, max_count=3)
    assert some.id and conn.compute.get_server(some.id).name == "rc-fit"
    assert [s.name for s in conn.compute.servers(name="^rc-fit")] == ["rc-fit"]
    clients.knobs({"quota": {"instances": 200}})
    clients.ok("server", "delete", *ids, some.id, json_out=False)
    for server_id in [*ids, some.id]:
        assert conn.compute.find_server(server_id) is None
    conn.close()


def test_server_image_create_and_rebuild(clients: Clients) -> None:
    conn = clients.sdk()
    server = clients.ok("server", "create", "rc-snap", "--flavor", "m1.small", "--image",
                        "debian-12", "--network", "private")
    conn.compute.wait_for_server(conn.compute.get_server(server["id"]), interval=0.2, wait=30)
    made = clients.ok("server", "image", "create", "rc-snap", "--name", "rc-snap-image",
                      "--property", "purpose=test")
    assert made["name"] == "rc-snap-image" and made["status"] in ("queued", "saving"), made
    conn.image.wait_for_status(conn.image.get_image(made["id"]), "active", interval=0.2,
                               wait=30)
    image = clients.ok("image", "show", made["id"])
    assert image["status"] == "active", image
    props = image["properties"]
    assert (props["image_type"], props["instance_uuid"], props["base_image_ref"]) == \
        ("snapshot", server["id"], conn.image.find_image("debian-12").id), props
    assert props["purpose"] == "test" and props["os_distro"] == "debian", props
    assert image["visibility"] == "private" and image["min_disk"] == 20, image

    rebuilt = clients.ok("server", "rebuild", "rc-snap", "--image", image["id"])
    assert rebuilt["status"] == "REBUILD", rebuilt
    conn.compute.wait_for_server(conn.compute.get_server(server["id"]), interval=0.2, wait=30)
    shown = clients.ok("server", "show", "rc-snap")
    assert shown["status"] == "ACTIVE" and image["id"] in shown["image"], shown

    sdk_image = conn.compute.create_server_image(server["id"], "rc-sdk-image",
                                                 wait=True, timeout=30)
    assert conn.image.get_image(sdk_image.id).status == "active"
    stopped = conn.compute.get_server(server["id"])
    conn.compute.stop_server(stopped)
    conn.compute.wait_for_server(stopped, status="SHUTOFF", interval=0.2, wait=30)
    rebuilding = conn.compute.rebuild_server(stopped, image=conn.image.find_image(
        "cirros-0.6").id)
    assert rebuilding.status == "REBUILD"
    done = conn.compute.wait_for_server(stopped, status="SHUTOFF", interval=0.2, wait=30)
    assert done.image.id == conn.image.find_image("cirros-0.6").id

    clients.ok("server", "delete", "rc-snap", json_out=False)
    clients.gone("server", "rc-snap")
    clients.ok("image", "delete", image["id"], sdk_image.id, json_out=False)
    clients.gone("image", image["id"])
    assert conn.image.find_image(sdk_image.id) is None
    conn.close()


def test_server_group_members_and_tags(clients: Clients) -> None:
    group = clients.ok("server", "group", "create", "--policy", "anti-affinity", "rc-group")
    assert (group["name"], group["policies"], group["members"]) == \
        ("rc-group", ["anti-affinity"], []), group
    listed = clients.ok("server", "group", "list")
    assert [(g["ID"], g["Policies"]) for g in listed] == [(group["id"], ["anti-affinity"])]
    server = clients.ok("server", "create", "rc-member", "--flavor", "m1.tiny", "--image",
                        "cirros-0.6", "--network", "private", "--hint",
                        f"group={group['id']}")
    assert clients.ok("server", "group", "show", "rc-group")["members"] == [server["id"]]
    conn = clients.sdk()
    conn.compute.wait_for_server(conn.compute.get_server(server["id"]), interval=0.2, wait=30)
    clients.ok("server", "set", "--tag", "web", "--tag", "blue", "rc-member", json_out=False)
    assert sorted(conn.compute.get_server(server["id"]).tags) == ["blue", "web"]
    clients.ok("server", "delete", "rc-member", json_out=False)
    assert conn.compute.find_server(server["id"]) is None
    assert conn.compute.get_server_group(group["id"]).member_ids == []
    clients.ok("server", "group", "delete", "rc-group", json_out=False)
    clients.gone("server group", "rc-group")
    conn.close()


# --------------------------------------------------------------------------------- Swift


def test_object_store_keeps_binary_objects(clients: Clients) -> None:
    data = os.urandom(64 * 1024)
    source = clients.home / "blob.bin"
    source.write_bytes(data)
    made = clients.ok("container", "create", "rc-bucket")
    assert made[0]["container"] == "rc-bucket", made
    uploaded = clients.ok("object", "create", "rc-bucket", str(source), "--name", "blob.bin")
    assert uploaded[0]["etag"] == hashlib.md5(data).hexdigest(), uploaded
    head = clients.ok("object", "show", "rc-bucket", "blob.bin")
    assert int(head["content-length"]) == len(data), head
    assert head["etag"] == hashlib.md5(data).hexdigest() and head["last-modified"], head
    target = clients.home / "back.bin"
    clients.ok("object", "save", "rc-bucket", "blob.bin", "--file", str(target),
               json_out=False)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    listed = clients.ok("object", "list", "rc-bucket")
    assert [o["Name"] for o in listed] == ["blob.bin"]

    conn = clients.sdk()
    # openstacksdk sends no Content-Type: Swift guesses it from the name
    conn.object_store.upload_object(container="rc-bucket", name="sdk.txt", data=data)
    meta = conn.object_store.get_object_metadata("sdk.txt", container="rc-bucket")
    assert (meta.content_length, meta.content_type) == (len(data), "text/plain")
    assert meta.etag == hashlib.md5(data).hexdigest()
    fetched = conn.object_store.download_object("sdk.txt", container="rc-bucket")
    assert hashlib.sha256(fetched).digest() == hashlib.sha256(data).digest()

    # a container that holds objects is not deleted (409)
    refused = clients.fails("container", "delete", "rc-bucket", json_out=False)
    assert "409" in refused or "Conflict" in refused, refused
    conn.object_store.delete_object("sdk.txt", container="rc-bucket")
    clients.ok("object", "delete", "rc-bucket", "blob.bin", json_out=False)
    assert list(conn.object_store.objects("rc-bucket")) == []
    clients.ok("container", "delete", "rc-bucket", json_out=False)
    clients.gone("container", "rc-bucket")
    conn.close()


# -------------------------------------- routers (another branch brings them to the emulator)


def test_port_create_cli(clients: Clients) -> None:
    """``openstack port create`` asks Neutron's ``/v2.0/extensions`` first."""
    port = clients.ok("port", "create", "rc-cli-port", "--network", "private")
    assert port["name"] == "rc-cli-port" and port["fixed_ips"], port
    clients.ok("port", "delete", "rc-cli-port", json_out=False)
    clients.gone("port", "rc-cli-port")


def test_router_gateway_interface_and_floating_ip(clients: Clients) -> None:
    clients.ok("network", "create", "rc-rnet")
    subnet = clients.ok("subnet", "create", "rc-rsubnet", "--network", "rc-rnet",
                        "--subnet-range", "10.77.0.0/24")
    router = clients.ok("router", "create", "rc-router")
    assert router["name"] == "rc-router" and router["external_gateway_info"] is None, router
    clients.ok("router", "set", "rc-router", "--external-gateway", "public", json_out=False)
    public = clients.ok("network", "show", "public")
    shown = clients.ok("router", "show", "rc-router")
    assert shown["external_gateway_info"]["network_id"] == public["id"], shown
    clients.ok("router", "add", "subnet", "rc-router", "rc-rsubnet", json_out=False)
    interfaces = clients.ok("port", "list", "--router", "rc-router")
    assert any(subnet["id"] in json.dumps(p["Fixed IP Addresses"]) for p in interfaces)
    port = clients.ok("port", "create", "rc-rport", "--network", "rc-rnet")
    fip = clients.ok("floating", "ip", "create", "public", "--port", port["id"])
    assert fip["port_id"] == port["id"] and fip["fixed_ip_address"].startswith("10.77.0.")

    clients.ok("floating", "ip", "delete", fip["id"], json_out=False)
    clients.gone("floating ip", fip["id"])
    clients.ok("port", "delete", "rc-rport", json_out=False)
    clients.ok("router", "remove", "subnet", "rc-router", "rc-rsubnet", json_out=False)
    clients.ok("router", "unset", "rc-router", "--external-gateway", json_out=False)
    clients.ok("router", "delete", "rc-router", json_out=False)
    clients.gone("router", "rc-router")
    clients.ok("subnet", "delete", "rc-rsubnet", json_out=False)
    clients.ok("network", "delete", "rc-rnet", json_out=False)
    clients.gone("network", "rc-rnet")


def test_floating_ip_needs_a_router(clients: Clients) -> None:
    """A floating IP on a port whose subnet has no router to the external network: 404,
    as Neutron answers ("External network ... is not reachable from subnet ...")."""
    conn = clients.sdk()
    net = conn.network.create_network(name="rc-lonely")
    conn.network.create_subnet(network_id=net.id, cidr="10.88.0.0/24", ip_version=4)
    port = conn.network.create_port(network_id=net.id)
    err = clients.fails("floating", "ip", "create", "public", "--port", port.id)
    assert "not reachable" in err, err
    conn.network.delete_port(port.id)
    conn.network.delete_network(net.id)
    assert conn.network.find_network("rc-lonely") is None
    conn.close()


# ------------------------------------------------------------------ key manager (Barbican)


def test_secrets_with_python_barbicanclient(clients: Clients) -> None:
    """``openstack secret ...`` (python-barbicanclient's plugin) finds Barbican in the
    catalog: store, list by name, get the payload, an order's key, delete."""
    stored = clients.ok("secret", "store", "--name", "rc-secret", "--payload", "rc-payload",
                        "--payload-content-type", "text/plain")
    href = stored["Secret href"]
    assert "/key-manager/" in href, stored
    shown = clients.ok("secret", "get", href)
    assert (shown["Status"], shown["Content types"]) == (
        "ACTIVE", {"default": "text/plain"}), shown
    listed = clients.ok("secret", "list", "--name", "rc-secret")
    assert [s["Secret href"] for s in listed] == [href]
    payload = clients.ok("secret", "get", href, "--payload")
    assert payload["Payload"] == "rc-payload", payload
    # Barbican refuses a content type without a payload; the client says so
    err = clients.fails("secret", "store", "--name", "bad", "--payload-content-type",
                        "text/plain")
    assert "400" in err or "payload" in err.lower(), err
    order = clients.ok("secret", "order", "create", "key", "--name", "rc-key",
                       "--algorithm", "aes", "--bit-length", "256", "--mode", "cbc")
    assert order["Type"].lower() == "key", order
    clients.ok("secret", "delete", href, json_out=False)
    assert clients.ok("secret", "list", "--name", "rc-secret") == []
    err = clients.fails("secret", "get", href)
    assert "404" in err or "not found" in err.lower(), err
