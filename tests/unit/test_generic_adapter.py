"""The generic libcloud target: configuration, credentials, names, and the adapter.

Two real libcloud drivers (DigitalOcean v2, Linode v4) run against libcloud's own
recorded API fixtures (``libcloud/test/compute/fixtures/<provider>/``, shipped in
its wheel) through a swapped connection class, the way libcloud's own tests swap
``conn_class`` for ``MockHttp``: the connection answers from handlers and never
opens a socket (``socket.connect`` is made to fail to prove it).  libcloud's own
``MockHttp`` needs ``requests_mock``, which cloudtmpl does not install, so
:class:`FixtureHttp` is a small equivalent.

:class:`FileNodeDriver` (``driver: filecloud``) is the sandbox's stateful libcloud
driver (cloudtmpl_sandbox/filecloud.py): it keeps its nodes, volumes and key pairs
in a JSON file, so a state survives between CLI processes.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import libcloud
import pytest
import requests
from libcloud.http import LibcloudConnection
from requests.structures import CaseInsensitiveDict

from cloudtmpl import capabilities, catalog, config, libcloud_targets
from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.model import LiveResource, Placement, Target, physical_name
from cloudtmpl.providers import make_adapter
from cloudtmpl.providers.base import Choice, CloudError
from cloudtmpl.providers.libcloud import (
    ATTACHMENT,
    KEYPAIR,
    SERVER,
    VOLUME,
    GenericAdapter,
    escape_name,
    unescape_name,
)
from cloudtmpl.providers.retry import NO_RETRY
from cloudtmpl.state import StateStore

FIXTURES = Path(libcloud.__file__).resolve().parent / "test" / "compute" / "fixtures"
PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHl0ZXN0a2V5Zm9yY2xvdWR0bXBsdGVzdHMxMjM0 test"


# -- a MockHttp-style connection class: answers from handlers, never a socket --------------

Handler = Callable[[str, str, dict[str, list[str]], Any], tuple[int, Any]]


class FixtureHttp(LibcloudConnection):
    """Swapped in as a libcloud ``Connection.conn_class``: each request goes to
    ``handler(method, path, query, body)`` of the class; every request is recorded."""

    handler: ClassVar[Handler]
    calls: ClassVar[list[tuple[str, str, dict[str, list[str]], Any]]]

    def request(self, method: str, url: str, body: Any = None, headers: Any = None,
                raw: bool = False, stream: bool = False, hooks: Any = None) -> None:
        parts = urlsplit(url)
        path = parts.path.rstrip("/")
        query = parse_qs(parts.query)
        parsed = json.loads(body) if isinstance(body, (str, bytes)) and body else body
        type(self).calls.append((method.upper(), path, query, parsed))
        status, payload = type(self).handler(method.upper(), path, query, parsed)
        text = payload if isinstance(payload, str) else json.dumps(payload)
        response = requests.Response()
        response.status_code = status
        response._content = text.encode()
        response.headers = CaseInsensitiveDict({"content-type": "application/json"})
        response.reason = http.client.responses.get(status, "")
        response.url = f"https://mock.invalid{path}"
        response.request = requests.Request(method, response.url).prepare()
        self.response = response

    def prepared_request(self, method: str, url: str, body: Any = None, headers: Any = None,
                         raw: bool = False, stream: bool = False) -> None:
        self.request(method, url, body, headers)


def fixture(provider: str, name: str) -> Any:
    return json.loads((FIXTURES / provider / name).read_text())


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"a test tried to open a connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def target(driver: str, region: str | None, **options: Any) -> Target:
    kinds = options.pop("kinds", None)
    caps = libcloud_targets.LIBCLOUD_BUILTIN.get(driver) or libcloud_targets.LibcloudCaps(
        capabilities.LIBCLOUD_KINDS, True, True)
    opts = {"driver": driver, "args": {}, "kinds": tuple(kinds or caps.kinds),
            "tags": caps.tags, "has_regions": caps.regions, "key_env": caps.key_env,
            **options}
    return Target(name=f"t-{driver}", type="libcloud", region=region, options=opts)


def adapter(t: Target, environ: dict[str, str] | None = None,
            store: StateStore | None = None) -> GenericAdapter:
    return GenericAdapter(t, environ=environ or {}, sleep=lambda s: None,
                          retry_policy=NO_RETRY, store=store)


# -- configuration -------------------------------------------------------------------------

def project(tmp_path: Path, text: str) -> config.ProjectConfig:
    (tmp_path / "cloudtmpl.yaml").write_text(text)
    return config.load_project(tmp_path)


def codes(err: DiagnosticError) -> list[str]:
    return [d.code for d in err.diagnostics]


def test_config_capabilities_per_driver(tmp_path: Path) -> None:
    p = project(tmp_path, """
providers:
  do: {type: libcloud, driver: digital_ocean, region: fra1}
  li: {type: libcloud, driver: linode, region: eu-central}
  lab: {type: libcloud, driver: dummy}
  small: {type: libcloud, driver: vultr, region: fra,
          capabilities: {kinds: [Cloud::Compute::Server], tags: false}}
""")
    do, li, lab, small = (p.targets[n] for n in ("do", "li", "lab", "small"))
    assert do.type == "libcloud" and do.options["driver"] == "digitalocean"
    assert capabilities.of(do).kinds == capabilities.LIBCLOUD_KINDS
    assert do.options["key_env"] == "DIGITALOCEAN_ACCESS_TOKEN" and do.options["tags"] is True
    assert KEYPAIR not in capabilities.of(li).kinds  # libcloud cannot delete Linode SSH keys
    assert capabilities.of(lab).kinds == {SERVER} and lab.region == "global"
    assert capabilities.of(small).kinds == {SERVER} and small.options["tags"] is False
    assert do.options["catalog"] == "libcloud-digitalocean"
    # deletion_policy Snapshot: DigitalOcean's driver snapshots volumes, Linode's does not
    assert capabilities.of(do).snapshots and not capabilities.of(li).snapshots
    assert catalog.catalog_for(do).regions["fra1"].country == "DE"


def test_config_detects_capabilities_of_other_drivers(tmp_path: Path) -> None:
    p = project(tmp_path, "providers:\n  fc: {type: libcloud, driver: filecloud, "
                "regions: {lab-de: {country: DE, jurisdiction: EU}}}\n")
    fc = p.targets["fc"]
    assert capabilities.of(fc).kinds == {SERVER, KEYPAIR, VOLUME, ATTACHMENT}
    assert fc.options["tags"] is True and fc.options["has_regions"] is True
    assert fc.region == "lab-de"  # the first declared region
    assert catalog.catalog_for(fc).regions["lab-de"].country == "DE"


def test_config_diagnostics(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as err:
        project(tmp_path, """
providers:
  a: {type: libcloud, driver: digitalocaen, region: fra1}
  b: {type: libcloud, driver: linode, region: x, token: abc123, args: {api_key: zzz}}
  c: {type: libcloud, driver: vultr, region: fra, key_env: "not a variable"}
  d: {type: libcloud, driver: vultr, region: fra, capabilities: {kinds: [Cloud::Network::Port]}}
  e: {type: libcloud, driver: vultr}
  f: {type: libcloud, driver: dummy, credentials_file: ./creds.ini}
""")
    got = err.value.diagnostics
    by = {d.code: d for d in got}
    unknown = by["config-libcloud-driver"]
    assert "'digitalocean'" in unknown.hint and "digitalocaen" in unknown.message
    secrets = [d for d in got if d.code == "config-credentials"]
    assert len(secrets) == 3  # token:, args.api_key, key_env with a value
    assert all("abc123" not in d.message + d.hint and "zzz" not in d.message + d.hint
               for d in got)
    assert "key_env" in secrets[0].hint
    assert by["config-capabilities"].message.endswith("Cloud::Network::Port")
    assert "region" in by["config-libcloud-region"].message
    assert "config-credentials-file" in by


def test_credentials_file_inside_project_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as err:
        project(tmp_path, f"providers:\n  f: {{type: libcloud, driver: dummy, "
                f"credentials_file: {tmp_path}/creds.ini}}\n")
    assert codes(err.value) == ["config-credentials-file"]
    assert "inside the project" in err.value.diagnostics[0].message


# -- names and credentials -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["web.web1", "my_stack.data_attachment", "s.web[0]", "a-b.C"])
def test_escaped_names_round_trip(name: str) -> None:
    escaped = escape_name(name)
    assert set(escaped) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert "--" not in escaped
    assert unescape_name(escaped) == name


def test_escaped_prefix_is_unambiguous() -> None:
    a = GenericAdapter(target("digitalocean", "fra1"))
    assert a.client.address("web", escape_name("web.db")) == "db"
    assert a.client.address("web", escape_name("web-2.db")) is None
    assert a.client.address("web", "web.db") is None  # not an escaped name


def test_missing_variable_is_named_never_a_value() -> None:
    a = adapter(target("digitalocean", "fra1"), environ={"OTHER": "s3cret"})
    with pytest.raises(CloudError) as err:
        a.discover("fra1", frozenset({SERVER}), "web")
    assert "DIGITALOCEAN_ACCESS_TOKEN is not set" in err.value.message
    assert "s3cret" not in err.value.message


def test_credentials_file_mode_and_section(tmp_path: Path, no_sockets: None) -> None:
    creds = tmp_path / "creds.ini"
    creds.write_text("[t-filecloud]\nkey = file-token\n")
    creds.chmod(0o644)
    t = target("filecloud", "lab-de", key_env=None, credentials_file=str(creds),
               args={"path": str(tmp_path / "cloud.json")})
    with pytest.raises(CloudError) as err:
        adapter(t).discover("lab-de", frozenset({SERVER}), "web")
    assert "readable by others (mode 0644)" in err.value.message
    assert "file-token" not in err.value.message
    creds.chmod(0o600)
    assert adapter(t).discover("lab-de", frozenset({SERVER}), "web") == []
    creds.write_text("[other]\nkey = file-token\n")
    with pytest.raises(CloudError, match=r"no section \[t-filecloud\]"):
        adapter(t).discover("lab-de", frozenset({SERVER}), "web")


def test_make_adapter_builds_the_generic_adapter() -> None:
    assert isinstance(make_adapter(target("dummy", "global")), GenericAdapter)


# -- DigitalOcean v2 against libcloud's fixtures ---------------------------------------------

class DigitalOceanCloud:
    """DigitalOcean's API from libcloud's fixtures, plus what the test creates."""

    def __init__(self) -> None:
        self.droplets = fixture("digitalocean_v2", "list_nodes.json")["droplets"]
        self.volumes = fixture("digitalocean_v2", "list_volumes.json")["volumes"]
        self.keys = fixture("digitalocean_v2", "list_key_pairs.json")["ssh_keys"]

    def __call__(self, method: str, path: str, query: dict[str, list[str]],
                 body: Any) -> tuple[int, Any]:
        page = {"links": {}, "meta": {"total": 0}}
        if (method, path) == ("GET", "/v2/regions"):
            return 200, fixture("digitalocean_v2", "list_locations.json")
        if (method, path) == ("GET", "/v2/sizes"):
            return 200, fixture("digitalocean_v2", "list_sizes.json")
        if (method, path) == ("GET", "/v2/images"):
            return 200, fixture("digitalocean_v2", "list_images.json")
        if (method, path) == ("GET", "/v2/droplets"):
            return 200, {**page, "droplets": self.droplets}
        if (method, path) == ("POST", "/v2/droplets"):
            droplet = fixture("digitalocean_v2", "list_node.json")["droplet"]
            regions = fixture("digitalocean_v2", "list_locations.json")["regions"]
            region = next(r for r in regions if r["slug"] == body["region"])
            droplet = {**self.droplets[0], "id": droplet["id"], "name": body["name"],
                       "status": "active", "tags": body.get("tags", []), "region": region}
            self.droplets.append(droplet)
            return 202, {"droplet": droplet}
        if method == "DELETE" and path.startswith("/v2/droplets/"):
            ident = path.rsplit("/", 1)[1]
            self.droplets = [d for d in self.droplets if str(d["id"]) != ident]
            return 204, ""
        if (method, path) == ("GET", "/v2/volumes"):
            return 200, {**page, "volumes": self.volumes}
        if (method, path) == ("POST", "/v2/volumes"):
            volume = {**fixture("digitalocean_v2", "create_volume.json")["volume"],
                      "name": body["name"], "size_gigabytes": body["size_gigabytes"],
                      "id": f"new-{len(self.volumes)}"}
            self.volumes.append(volume)
            return 201, {"volume": volume}
        if (method, path) == ("GET", "/v2/account/keys"):
            return 200, {**page, "ssh_keys": self.keys}
        if (method, path) == ("POST", "/v2/account/keys"):
            key = {**fixture("digitalocean_v2", "create_key_pair.json")["ssh_key"],
                   "name": body["name"], "public_key": body["public_key"]}
            self.keys.append(key)
            return 201, {"ssh_key": key}
        return 404, {"id": "not_found", "message": f"no route {method} {path}"}


@pytest.fixture
def digitalocean(monkeypatch: pytest.MonkeyPatch, no_sockets: None) -> DigitalOceanCloud:
    from libcloud.compute.drivers.digitalocean import DigitalOcean_v2_NodeDriver

    cloud = DigitalOceanCloud()
    mock = type("DigitalOceanFixtureHttp", (FixtureHttp,), {"handler": staticmethod(cloud),
                                                            "calls": []})
    monkeypatch.setattr(DigitalOcean_v2_NodeDriver.connectionCls, "conn_class", mock)
    cloud.calls = mock.calls  # type: ignore[attr-defined]
    return cloud


def do_adapter() -> GenericAdapter:
    return adapter(target("digitalocean", "nyc1"), {"DIGITALOCEAN_ACCESS_TOKEN": "do-token"})


def test_digitalocean_discovery_by_escaped_name_and_region(
        digitalocean: DigitalOceanCloud) -> None:
    ours = {**digitalocean.droplets[0], "id": 42, "name": escape_name("web.db"),
            "region": {"name": "New York 1", "slug": "nyc1"}}  # listed by name, not slug
    other_stack = {**ours, "id": 43, "name": escape_name("web.x"),
                   "tags": ["cloudtmpl:stack:shop"]}  # same-looking name, another owner
    digitalocean.droplets += [ours, other_stack]
    digitalocean.volumes[0] = {**digitalocean.volumes[0], "name": escape_name("web.data")}
    a = do_adapter()
    live = a.discover("nyc1", frozenset({SERVER, VOLUME}), "web")
    assert sorted((r.address, r.kind) for r in live) == [("data", VOLUME), ("db", SERVER)]
    server = next(r for r in live if r.kind == SERVER)
    assert server.physical_id == "42" and server.attributes["public_ip"]
    # the same objects are not in another region
    assert a.discover("ams1", frozenset({SERVER, VOLUME}), "web") == []
    gets = [(m, p) for m, p, _, _ in digitalocean.calls]  # type: ignore[attr-defined]
    assert ("GET", "/v2/droplets") in gets and ("GET", "/v2/volumes") in gets
    assert a.request_count() == len(gets)


def test_digitalocean_create_and_destroy_request_shapes(digitalocean: DigitalOceanCloud) -> None:
    a = do_adapter()
    key = a.create("nyc1", KEYPAIR, stack="web", address="key", name="web.key",
                   properties={"public_key": PUBKEY}, spec_hash="k1", timeout=5)
    assert key.physical_id == escape_name("web.key")
    size = a.lookup_choice("nyc1", "flavor", "512mb").canonical
    image = a.lookup_choice("nyc1", "image", "ubuntu-14-04-x64").canonical  # by slug
    assert size == "512mb" and image == "119192817"
    assert a.lookup_choice("nyc1", "flavor", "huge").offered
    server = a.create("nyc1", SERVER, stack="web", address="app_1", name="web.app_1",
                      properties={"image": image, "flavor": size, "key_name": key.physical_id,
                                  "user_data": "#!/bin/sh\n"},
                      spec_hash="abc", timeout=5)
    creates = [b for m, p, _, b in digitalocean.calls if (m, p) == ("POST", "/v2/droplets")]  # type: ignore[attr-defined]
    (body,) = creates
    assert body["name"] == escape_name("web.app_1") and body["region"] == "nyc1"
    assert body["size"] == "512mb" and str(body["image"]) == image
    assert "cloudtmpl:stack:web" in body["tags"] and "cloudtmpl:resource:app_1" in body["tags"]
    assert "cloudtmpl:spec:abc" in body["tags"]
    assert len(body["ssh_keys"]) == 1 and body["user_data"] == "#!/bin/sh\n"
    keys = [b for m, p, _, b in digitalocean.calls if (m, p) == ("POST", "/v2/account/keys")]  # type: ignore[attr-defined]
    assert keys == [{"name": escape_name("web.key"), "public_key": PUBKEY}]
    assert [r.address for r in a.discover("nyc1", frozenset({KEYPAIR}), "web")] == ["key"]
    assert [r.address for r in a.discover("nyc1", frozenset({SERVER}), "web")] == ["app_1"]

    vol = a.create("nyc1", VOLUME, stack="web", address="data", name="web.data",
                   properties={"size": 10}, spec_hash="v1", timeout=5)
    (vbody,) = [b for m, p, _, b in digitalocean.calls if (m, p) == ("POST", "/v2/volumes")]  # type: ignore[attr-defined]
    assert vbody["name"] == escape_name("web.data") and vbody["size_gigabytes"] == 10
    assert vbody["region"] == "nyc1"
    assert vol.properties == {"size": 10}

    a.delete(server, timeout=5)
    deletes = [p for m, p, _, _ in digitalocean.calls if m == "DELETE"]  # type: ignore[attr-defined]
    assert deletes == [f"/v2/droplets/{server.physical_id}"]
    assert a.discover("nyc1", frozenset({SERVER}), "web") == []


# -- Linode v4 against libcloud's fixtures --------------------------------------------------

class LinodeCloud:
    def __init__(self) -> None:
        self.nodes = fixture("linode_v4", "list_nodes.json")["data"]

    def __call__(self, method: str, path: str, query: dict[str, list[str]],
                 body: Any) -> tuple[int, Any]:
        def page(items: list[Any]) -> dict[str, Any]:
            return {"data": items, "page": 1, "pages": 1, "results": len(items)}

        if (method, path) == ("GET", "/v4/regions"):
            return 200, fixture("linode_v4", "list_locations.json")
        if (method, path) == ("GET", "/v4/linode/types"):
            return 200, fixture("linode_v4", "list_types.json")
        if (method, path) == ("GET", "/v4/images"):
            return 200, fixture("linode_v4", "list_images.json")
        if (method, path) == ("GET", "/v4/linode/instances"):
            return 200, page(self.nodes)
        if (method, path) == ("POST", "/v4/linode/instances"):
            node = {**fixture("linode_v4", "create_node.json"), "label": body["label"],
                    "region": body["region"], "tags": body.get("tags", []),
                    "status": "running", "id": 990001}
            self.nodes.append(node)
            return 200, node
        if method == "DELETE" and path.startswith("/v4/linode/instances/"):
            ident = path.rsplit("/", 1)[1]
            self.nodes = [n for n in self.nodes if str(n["id"]) != ident]
            return 200, {}
        return 404, {"errors": [{"reason": f"no route {method} {path}"}]}


@pytest.fixture
def linode(monkeypatch: pytest.MonkeyPatch, no_sockets: None) -> LinodeCloud:
    from libcloud.compute.drivers.linode import LinodeNodeDriverV4

    cloud = LinodeCloud()
    mock = type("LinodeFixtureHttp", (FixtureHttp,), {"handler": staticmethod(cloud),
                                                      "calls": []})
    monkeypatch.setattr(LinodeNodeDriverV4.connectionCls, "conn_class", mock)
    cloud.calls = mock.calls  # type: ignore[attr-defined]
    return cloud


def test_linode_discovery_and_create_destroy(linode: LinodeCloud) -> None:
    region = linode.nodes[0]["region"]
    linode.nodes.append({**linode.nodes[0], "id": 77, "label": escape_name("shop.db")})
    a = adapter(target("linode", region), {"LINODE_TOKEN": "li-token"})
    found = a.discover(region, frozenset({SERVER, KEYPAIR}), "shop")
    assert [(r.address, r.physical_id) for r in found] == [("db", "77")]
    assert not any(p == "/v4/profile/sshkeys" for _, p, _, _ in linode.calls)  # type: ignore[attr-defined]

    types = fixture("linode_v4", "list_types.json")["data"]
    images = fixture("linode_v4", "list_images.json")["data"]
    live = a.create(region, SERVER, stack="shop", address="web", name="shop.web",
                    properties={"image": images[0]["id"], "flavor": types[0]["id"]},
                    spec_hash="s1", timeout=5)
    (body,) = [b for m, p, _, b in linode.calls if (m, p) == ("POST", "/v4/linode/instances")]  # type: ignore[attr-defined]
    assert body["label"] == escape_name("shop.web") and body["region"] == region
    assert body["type"] == types[0]["id"] and body["image"] == images[0]["id"]
    assert "cloudtmpl:stack:shop" in body["tags"]
    a.delete(live, timeout=5)
    assert ("DELETE", f"/v4/linode/instances/{live.physical_id}") in [
        (m, p) for m, p, _, _ in linode.calls]  # type: ignore[attr-defined]
    with pytest.raises(CloudError, match="cannot create Cloud::Compute::KeyPair"):
        a.create(region, KEYPAIR, stack="shop", address="k", name="shop.k",
                 properties={"public_key": PUBKEY}, spec_hash="x", timeout=5)


# -- the stateful file driver, in process -------------------------------------------------------

def test_filecloud_full_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              no_sockets: None) -> None:
    t = target("filecloud", "lab-de", key_env="FC_TOKEN", project_dir=str(tmp_path),
               args={"path": str(tmp_path / "cloud.json")})
    first, second = (StateStore.open(str(tmp_path / "state.db")) for _ in range(2))
    a = adapter(t, {"FC_TOKEN": "t"}, first)
    kw: dict[str, Any] = {"stack": "app", "timeout": 5}
    assert a.lookup_choice("lab-de", "keypair", "app.key") == Choice(None, ())
    key = a.create("lab-de", KEYPAIR, address="key", name=physical_name("app", "key"),
                   properties={"public_key": PUBKEY}, spec_hash="1", **kw)
    # a key pair it has is a choice (custom_constraint nova.keypair); others are offered
    assert a.lookup_choice("lab-de", "keypair", "app.key") == Choice("app.key")
    assert a.lookup_choice("lab-de", "keypair", "ops") == Choice(None, ("app.key",))
    web = a.create("lab-de", SERVER, address="web", name="app.web",
                   properties={"image": "ubuntu-22.04", "flavor": "fc-small",
                               "key_name": key.physical_id}, spec_hash="2", **kw)
    assert web.status == "running" and web.attributes["private_ip"].startswith("10.")
    vol = a.create("lab-de", VOLUME, address="data", name="app.data",
                   properties={"size": 5}, spec_hash="3", **kw)
    att = a.create("lab-de", ATTACHMENT, address="data_att", name="app.data_att",
                   properties={"volume_id": vol.physical_id, "instance_uuid": web.physical_id},
                   spec_hash="4", **kw)
    assert att.physical_id == f"{vol.physical_id}:{web.physical_id}"
    state = json.loads((tmp_path / "cloud.json").read_text())
    node = state["nodes"][web.physical_id]
    assert node["metadata"] == {"cloudtmpl:stack": "app", "cloudtmpl:resource": "web",
                                "cloudtmpl:spec": "2"}
    assert node["ssh_key"] == PUBKEY and node["location"] == "lab-de"

    # another process: the cloud and the state's records only
    fresh = adapter(t, {"FC_TOKEN": "t"}, second)
    live = fresh.discover("lab-de", capabilities.LIBCLOUD_KINDS, "app")
    assert sorted((r.address, r.kind) for r in live) == [
        ("data", VOLUME), ("data_att", ATTACHMENT), ("key", KEYPAIR), ("web", SERVER)]
    assert fresh.discover("lab-nl", frozenset({SERVER, VOLUME}), "app") == []
    assert fresh.discover("lab-de", capabilities.LIBCLOUD_KINDS, "other") == []

    with pytest.raises(CloudError, match="cannot change in place"):
        fresh.update(web, {}, frozenset({"flavor"}), stack="app", spec_hash="9", timeout=5)
    for res in (att, vol, web, key):
        fresh.delete(res, timeout=5)
        fresh.delete(res, timeout=5)  # already gone: fine
    assert fresh.discover("lab-de", capabilities.LIBCLOUD_KINDS, "app") == []
    assert first.provider_records(t.name, "attachments") == {}
    first.close()
    second.close()


def test_filecloud_volume_snapshot_before_delete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               no_sockets: None) -> None:
    t = target("filecloud", "lab-de", key_env="FC_TOKEN", project_dir=str(tmp_path),
               args={"path": str(tmp_path / "cloud.json")})
    a = adapter(t, {"FC_TOKEN": "t"})
    vol = a.create("lab-de", VOLUME, address="data", name="app.data", properties={"size": 5},
                   spec_hash="3", stack="app", timeout=5)
    snap = a.snapshot_volume(vol, stack="app", timeout=5)
    assert a.snapshot_volume(vol, stack="app", timeout=5) == snap  # found again, not retaken
    a.delete(vol, timeout=5)
    state = json.loads((tmp_path / "cloud.json").read_text())
    assert state["volumes"] == {}
    assert list(state["snapshots"].values()) == [
        {"id": snap, "name": f"app.data@{vol.physical_id}", "volume_id": vol.physical_id,
         "size": 5, "state": "available"}]
    assert a.discover("lab-de", capabilities.LIBCLOUD_KINDS, "app") == []  # never a resource
    assert a.snapshot_volume(vol, stack="app", timeout=5) is None  # the volume is gone

    monkeypatch.setenv("CLOUDTMPL_FILECLOUD_SNAPSHOT_ERROR", "1")
    other = a.create("lab-de", VOLUME, address="logs", name="app.logs",
                     properties={"size": 1}, spec_hash="4", stack="app", timeout=5)
    with pytest.raises(CloudError, match=r"snapshot app\.logs@vol-\d+ \(snap-\d+\) of volume "
                       r"vol-\d+ failed \(state error\)"):
        a.snapshot_volume(other, stack="app", timeout=5)
    state = json.loads((tmp_path / "cloud.json").read_text())
    assert [s["volume_id"] for s in state["snapshots"].values()] == [vol.physical_id]


def test_snapshot_on_a_driver_without_snapshots_is_refused(no_sockets: None) -> None:
    t = target("linode", "eu-central", key_env="T")
    live = LiveResource("data", VOLUME, "123", Placement(t.name, "eu-central"))
    with pytest.raises(CloudError, match=r"cannot snapshot a Cloud::Block::Volume .*does not "
                       r"implement create_volume_snapshot") as err:
        adapter(t, {"T": "x"}).snapshot_volume(live, stack="app", timeout=5)
    assert err.value.permanent


def test_filecloud_missing_token_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    t = target("filecloud", "lab-de", key_env="FC_TOKEN",
               args={"path": str(tmp_path / "cloud.json")})
    with pytest.raises(CloudError, match="environment variable FC_TOKEN is not set"):
        adapter(t).discover("lab-de", frozenset({SERVER}), "app")
