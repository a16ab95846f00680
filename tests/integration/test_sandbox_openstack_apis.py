"""The emulator's version discovery, microversions, Swift bytes, quotas and limits,
Keystone's directory, and Nova's multi-create, ``rebuild`` and ``createImage``, over raw
HTTP: the refusals the real clients never make on their own."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.integration.openstack_api import _project_id, configure, http, token

pytestmark = pytest.mark.integration

NOVA = "/compute/de-fra-1/v2.1"
CIRROS = "a1c2e3f4-0b6d-4e8f-9a0b-c1d2e3f40006"


def _v(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


def _boot(info: dict[str, Any], tok: str, name: str, **extra: Any) -> tuple[int, Any]:
    body = {"server": {"name": name, "flavorRef": "1", "imageRef": CIRROS,
                       "networks": "auto", **extra}}
    status, _, reply = http(info, "POST", f"{NOVA}/servers", body, tok, _v("2.45"))
    return status, reply


def _active(info: dict[str, Any], tok: str, server_id: str) -> dict[str, Any]:
    for _ in range(100):
        _, _, reply = http(info, "GET", f"{NOVA}/servers/{server_id}", token=tok)
        if reply["server"]["status"] in ("ACTIVE", "SHUTOFF", "ERROR"):
            return dict(reply["server"])
        time.sleep(0.05)
    raise AssertionError(f"server {server_id} never settled")


# ---------------------------------------------------------------------------- versions


def test_version_documents_need_no_token(openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    status, _, body = http(info, "GET", "/compute/de-fra-1/")
    assert status == 200 and [v["id"] for v in body["versions"]] == ["v2.0", "v2.1"]
    status, _, body = http(info, "GET", NOVA)
    version = body["version"]
    assert status == 200 and (version["min_version"], version["version"]) == ("2.1", "2.45")
    assert version["links"][0]["href"].endswith("/compute/de-fra-1/v2.1/")
    status, _, body = http(info, "GET", "/image/de-fra-1/")
    assert status == 300 and body["versions"][0] == {
        "id": "v2.9", "status": "CURRENT",
        "links": [{"rel": "self", "href": f"{info['endpoint']}/image/de-fra-1/v2/"}]}
    assert http(info, "GET", "/image/de-fra-1/versions")[0] == 200
    status, _, body = http(info, "GET", "/network/de-fra-1/")
    assert status == 200 and body["versions"][0]["id"] == "v2.0"
    status, _, body = http(info, "GET", "/volume/de-fra-1/")
    assert status == 300 and body["versions"][0]["version"] == "3.43"
    # Neutron's and Cinder's versioned roots are behind Keystone's middleware
    assert http(info, "GET", "/network/de-fra-1/v2.0")[0] == 401
    assert http(info, "GET", "/volume/de-fra-1/v3/")[0] == 401
    tok = token(info)
    _, _, body = http(info, "GET", "/network/de-fra-1/v2.0", token=tok)
    assert "networks" in {r["collection"] for r in body["resources"]}
    _, _, body = http(info, "GET", "/volume/de-fra-1/v3/", token=tok)
    assert body["versions"][0]["id"] == "v3.0"
    # the rest still needs a token; an unknown region has no versions either
    assert http(info, "GET", f"{NOVA}/servers")[0] == 401
    assert http(info, "GET", "/compute/xx-nope-1/v2.1")[0] == 404


def test_nova_microversions_are_checked_and_named(openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    tok = token(info)
    status, headers, _ = http(info, "GET", f"{NOVA}/flavors", token=tok, headers=_v("2.26"))
    assert status == 200 and headers["OpenStack-API-Version"] == "compute 2.26"
    assert headers["X-OpenStack-Nova-API-Version"] == "2.26"
    _, headers, _ = http(info, "GET", f"{NOVA}/flavors", token=tok,
                         headers={"X-OpenStack-Nova-API-Version": "latest"})
    assert headers["X-OpenStack-Nova-API-Version"] == "2.45"
    status, _, body = http(info, "GET", f"{NOVA}/flavors", token=tok, headers=_v("2.46"))
    assert status == 406 and "maximum is 2.45" in body["computeFault"]["message"]
    assert http(info, "GET", f"{NOVA}/flavors", token=tok, headers=_v("two"))[0] == 400
    # key pairs: 200/202 at the base, 201/204 from 2.2
    pub = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKc8gtnDVJ0ztqNTJSf8EJXhYgQ3G7ffQ3G1Ld2TUcq4 "
           "x@y")
    made = http(info, "POST", f"{NOVA}/os-keypairs",
                {"keypair": {"name": "k", "public_key": pub}}, tok)
    assert made[0] == 200
    assert http(info, "DELETE", f"{NOVA}/os-keypairs/k", token=tok)[0] == 202
    made = http(info, "POST", f"{NOVA}/os-keypairs",
                {"keypair": {"name": "k", "public_key": pub}}, tok, _v("2.2"))
    assert made[0] == 201
    assert http(info, "DELETE", f"{NOVA}/os-keypairs/k", token=tok, headers=_v("2.2"))[0] == 204
    # networks: required from 2.37, "auto" refused before
    body = {"server": {"name": "n", "flavorRef": "1", "imageRef": CIRROS}}
    status, _, reply = http(info, "POST", f"{NOVA}/servers", body, tok, _v("2.37"))
    assert status == 400 and "'networks' is a required property" in reply["badRequest"]["message"]
    body["server"]["networks"] = "auto"
    assert http(info, "POST", f"{NOVA}/servers", body, tok, _v("2.36"))[0] == 400
    body["server"]["description"] = "d"
    assert http(info, "POST", f"{NOVA}/servers", body, tok, _v("2.18"))[0] == 400


def test_server_tags_and_description(openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    tok = token(info)
    status, reply = _boot(info, tok, "tagged", description="the one")
    assert status == 202
    server_id = reply["server"]["id"]
    path = f"{NOVA}/servers/{server_id}"
    assert http(info, "GET", f"{path}/tags", token=tok, headers=_v("2.25"))[0] == 404
    status, headers, _ = http(info, "PUT", f"{path}/tags/web", token=tok, headers=_v("2.26"))
    assert status == 201 and headers["Location"].endswith(f"{path}/tags/web")
    assert http(info, "PUT", f"{path}/tags/web", token=tok, headers=_v("2.26"))[0] == 204
    assert http(info, "PUT", f"{path}/tags", {"tags": ["a/b"]}, tok, _v("2.26"))[0] == 400
    assert http(info, "PUT", f"{path}/tags", {"tags": [f"t{i}" for i in range(51)]}, tok,
                _v("2.26"))[0] == 400
    _, _, shown = http(info, "GET", path, token=tok, headers=_v("2.26"))
    assert shown["server"]["tags"] == ["web"] and shown["server"]["description"] == "the one"
    assert "tags" not in http(info, "GET", path, token=tok, headers=_v("2.25"))[2]["server"]
    assert "description" not in http(info, "GET", path, token=tok)[2]["server"]
    assert http(info, "DELETE", f"{path}/tags/db", token=tok, headers=_v("2.26"))[0] == 404
    _, other = _boot(info, tok, "plain")

    def names(query: str) -> list[str]:
        _, _, body = http(info, "GET", f"{NOVA}/servers?{query}", token=tok,
                          headers=_v("2.26"))
        return sorted(s["name"] for s in body["servers"])

    assert names("tags=web") == ["tagged"] and names("tags=web,db") == []
    assert names("tags-any=web,db") == ["tagged"] and names("not-tags=web") == ["plain"]
    assert names("not-tags-any=db") == ["plain", "tagged"]
    assert http(info, "DELETE", f"{path}/tags/web", token=tok, headers=_v("2.26"))[0] == 204
    # an unknown status: an empty list before 2.38, a 400 from then on
    _, _, body = http(info, "GET", f"{NOVA}/servers?status=SLEEPING", token=tok)
    assert body["servers"] == [] and other["server"]["id"]
    assert http(info, "GET", f"{NOVA}/servers?status=SLEEPING", token=tok,
                headers=_v("2.38"))[0] == 400


def test_keypair_pages_and_server_group_fields(openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    tok = token(info)
    for name in ("a", "b", "c"):
        http(info, "POST", f"{NOVA}/os-keypairs", {"keypair": {"name": name}}, tok)
    _, _, body = http(info, "GET", f"{NOVA}/os-keypairs?limit=2", token=tok, headers=_v("2.35"))
    assert [k["keypair"]["name"] for k in body["keypairs"]] == ["a", "b"]
    assert "marker=b" in body["keypairs_links"][0]["href"]
    _, _, body = http(info, "GET", f"{NOVA}/os-keypairs?limit=2&marker=b", token=tok,
                      headers=_v("2.35"))
    assert [k["keypair"]["name"] for k in body["keypairs"]] == ["c"]
    _, _, body = http(info, "GET", f"{NOVA}/os-keypairs?limit=2", token=tok)
    assert len(body["keypairs"]) == 3  # no paging before 2.35
    spec = {"server_group": {"name": "g", "policies": ["affinity"]}}
    _, _, made = http(info, "POST", f"{NOVA}/os-server-groups", spec, tok)
    assert "project_id" not in made["server_group"]
    _, _, shown = http(info, "GET", f"{NOVA}/os-server-groups/{made['server_group']['id']}",
                       token=tok, headers=_v("2.13"))
    assert shown["server_group"]["project_id"] == _project_id(info)


# --------------------------------------------------------------------------------- Swift


def _raw(info: dict[str, Any], method: str, path: str, tok: str, data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(info["endpoint"] + path, data=data, method=method)
    req.add_header("X-Auth-Token", tok)
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_swift_keeps_bytes_and_their_headers(openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    tok = token(info)
    base = f"/object-store/de-fra-1/v1/AUTH_{_project_id(info)}/bin"
    assert _raw(info, "PUT", base, tok)[0] == 201
    data = os.urandom(64 * 1024)
    md5 = hashlib.md5(data).hexdigest()
    status, headers, _ = _raw(info, "PUT", f"{base}/blob", tok, data,
                              {"Content-Type": "application/x-blob", "X-Object-Meta-Color": "red"})
    assert status == 201 and headers["Etag"] == md5 and headers["Last-Modified"]
    status, headers, body = _raw(info, "GET", f"{base}/blob", tok)
    assert status == 200 and body == data
    assert (headers["Content-Length"], headers["Etag"], headers["Content-Type"]) == \
        (str(len(data)), md5, "application/x-blob")
    assert headers["X-Object-Meta-Color"] == "red"
    status, head, body = _raw(info, "HEAD", f"{base}/blob", tok)
    assert status == 200 and body == b"" and head["Content-Length"] == str(len(data))
    assert head["Last-Modified"] == headers["Last-Modified"] and head["Etag"] == md5
    # no Content-Type: guessed from the name, else octet-stream
    _raw(info, "PUT", f"{base}/page.html", tok, b"<p>", {"Content-Type": ""})
    assert _raw(info, "HEAD", f"{base}/page.html", tok)[1]["Content-Type"] == "text/html"
    # an Etag that is not the body's MD5: 422, nothing stored
    status, _, _ = _raw(info, "PUT", f"{base}/bad", tok, b"abc", {"Etag": "0" * 32})
    assert status == 422 and _raw(info, "HEAD", f"{base}/bad", tok)[0] == 404
    status, _, _ = _raw(info, "PUT", f"{base}/good", tok, b"abc",
                        {"Etag": hashlib.md5(b"abc").hexdigest()})
    assert status == 201
    # listings: names one a line by default, JSON when asked; an empty JSON one is []
    status, headers, body = _raw(info, "GET", base, tok)
    assert status == 200 and body == b"blob\ngood\npage.html\n"
    assert headers["Content-Type"].startswith("text/plain")
    status, _, body = _raw(info, "GET", f"{base}?format=json", tok)
    assert [o["name"] for o in json.loads(body)] == ["blob", "good", "page.html"]
    assert _raw(info, "PUT", f"{base}-empty", tok)[0] == 201
    assert _raw(info, "GET", f"{base}-empty", tok)[0] == 204
    status, _, body = _raw(info, "GET", f"{base}-empty", tok,
                           headers={"Accept": "application/json"})
    assert (status, body) == (200, b"[]")


# ---------------------------------------------------------- quotas, limits, zones, Keystone


def test_quotas_limits_and_zones(openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    tok, project = token(info), _project_id(info)
    assert _boot(info, tok, "counted")[0] == 202
    _, _, body = http(info, "GET", f"{NOVA}/os-quota-sets/{project}/detail", token=tok,
                      headers=_v("2.36"))
    quota = body["quota_set"]
    assert quota["instances"] == {"limit": 200, "in_use": 1, "reserved": 0}
    assert "floating_ips" not in quota
    _, _, body = http(info, "GET", f"{NOVA}/os-quota-sets/{project}", token=tok)
    assert body["quota_set"]["floating_ips"] == 10 and body["quota_set"]["cores"] == 800
    status, _, body = http(info, "GET", f"{NOVA}/os-quota-sets/{'0' * 32}", token=tok)
    assert status == 403 and "os-quota-sets:show" in body["forbidden"]["message"]
    _, _, body = http(info, "GET", f"{NOVA}/limits", token=tok, headers=_v("2.39"))
    absolute = body["limits"]["absolute"]
    assert absolute["totalInstancesUsed"] == 1 and "maxImageMeta" not in absolute
    assert http(info, "GET", f"{NOVA}/os-availability-zone/detail", token=tok)[0] == 403
    cinder = f"/volume/de-fra-1/v3/{project}"
    http(info, "POST", f"{cinder}/volumes", {"volume": {"size": 3}}, tok)
    _, _, body = http(info, "GET", f"{cinder}/limits", token=tok)
    assert (body["limits"]["absolute"]["totalVolumesUsed"],
            body["limits"]["absolute"]["totalGigabytesUsed"]) == (1, 3)
    _, _, body = http(info, "GET", f"{cinder}/os-quota-sets/{project}?usage=True", token=tok)
    assert body["quota_set"]["gigabytes"]["in_use"] == 3
    _, _, body = http(info, "GET", f"{cinder}/os-availability-zone", token=tok)
    assert body["availabilityZoneInfo"] == [{"zoneName": "nova",
                                             "zoneState": {"available": True}}]


def test_keystone_lets_a_member_read_its_own(openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    tok = token(info)
    _, _, issued = http(info, "GET", "/identity/v3/auth/tokens", token=tok,
                        headers={"X-Subject-Token": tok})
    user_id = issued["token"]["user"]["id"]
    status, _, body = http(info, "GET", "/identity/v3/projects", token=tok)
    assert status == 403 and "identity:list_projects" in body["error"]["message"]
    assert http(info, "GET", "/identity/v3/users", token=tok)[0] == 403
    assert http(info, "GET", f"/identity/v3/users/{'0' * 32}", token=tok)[0] == 403
    _, _, body = http(info, "GET", f"/identity/v3/users/{user_id}/projects", token=tok)
    assert [p["name"] for p in body["projects"]] == ["sandbox"]
    _, _, body = http(info, "GET", f"/identity/v3/users/{user_id}", token=tok)
    assert body["user"]["name"] == "sandbox"
    _, _, body = http(info, "GET", "/identity/v3/regions", token=tok)
    assert [r["id"] for r in body["regions"]] == ["de-fra-1", "nl-ams-1"]
    assert http(info, "GET", "/identity/v3/regions/xx", token=tok)[0] == 404
    assert http(info, "GET", "/identity/v3/regions")[0] == 401


# ------------------------------------------------------------- multi-create, images, rebuild


def test_min_max_count(openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    tok = token(info)
    configure(info, quota={"instances": 3})
    assert _boot(info, tok, "one")[0] == 202
    status, reply = _boot(info, tok, "many", min_count=3, max_count=4)
    assert status == 403 and "Quota exceeded for instances" in reply["forbidden"]["message"]
    assert _boot(info, tok, "many", min_count=3, max_count=2)[0] == 400
    status, reply = _boot(info, tok, "many", min_count=1, max_count=5,
                          return_reservation_id=True)
    assert status == 202 and reply["reservation_id"].startswith("r-")
    _, _, listed = http(info, "GET",
                        f"{NOVA}/servers?reservation_id={reply['reservation_id']}", token=tok)
    assert sorted(s["name"] for s in listed["servers"]) == ["many-1", "many-2"]


def test_create_image_and_rebuild(openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    tok = token(info)
    configure(info, build_seconds=0.3, snapshot_seconds=0.4)
    _, reply = _boot(info, tok, "snapme", metadata={"role": "db"})
    server_id = reply["server"]["id"]
    action = f"{NOVA}/servers/{server_id}/action"
    status, _, body = http(info, "POST", action, {"createImage": {"name": "early"}}, tok)
    assert status == 409 and "vm_state building" in body["conflictingRequest"]["message"]
    status, _, body = http(info, "POST", action, {"rebuild": {"imageRef": CIRROS}}, tok)
    assert status == 409
    _active(info, tok, server_id)
    # before 2.45 a Location header, from 2.45 the id in the body
    status, headers, _ = http(info, "POST", action, {"createImage": {"name": "old"}}, tok)
    assert status == 202 and "/image/de-fra-1/v2/images/" in headers["Location"]
    old_id = headers["Location"].rsplit("/", 1)[-1]
    status, _, body = http(info, "POST", action, {"createImage": {"name": "busy"}}, tok,
                           _v("2.45"))
    assert status == 409 and "task_state image_snapshot" in body["conflictingRequest"]["message"]
    _, _, shown = http(info, "GET", f"{NOVA}/servers/{server_id}", token=tok)
    assert shown["server"]["OS-EXT-STS:task_state"] == "image_snapshot"
    _, _, image = http(info, "GET", f"/image/de-fra-1/v2/images/{old_id}", token=tok)
    assert image["status"] == "queued" and image["size"] is None
    assert (image["image_type"], image["instance_uuid"], image["base_image_ref"]) == \
        ("snapshot", server_id, CIRROS)
    assert "role" not in image  # the server's metadata is not the image's
    # a server cannot boot from a snapshot that is not active yet
    status, reply = _boot(info, tok, "from-queued", imageRef=old_id)
    assert status == 400 and "is not active" in reply["badRequest"]["message"]
    time.sleep(0.5)
    _, _, image = http(info, "GET", f"/image/de-fra-1/v2/images/{old_id}", token=tok)
    assert image["status"] == "active" and image["size"] == 21_000_000
    status, _, body = http(info, "POST", action, {"createImage": {"name": "new",
                                                                  "metadata": {"k": "v"}}},
                           tok, _v("2.45"))
    assert status == 202 and set(body) == {"image_id"}, body
    # no rebuild while the snapshot is taken
    status, _, body = http(info, "POST", action, {"rebuild": {"imageRef": old_id}}, tok)
    assert status == 409 and "task_state image_snapshot" in body["conflictingRequest"]["message"]
    time.sleep(0.5)
    # rebuild from the snapshot: REBUILD, then ACTIVE on the new image
    status, _, body = http(info, "POST", action, {"rebuild": {
        "imageRef": old_id, "name": "rebuilt", "metadata": {"role": "web"}}}, tok)
    assert status == 202 and body["server"]["status"] == "REBUILD"
    assert body["server"]["OS-EXT-STS:task_state"] == "rebuilding"
    server = _active(info, tok, server_id)
    assert (server["image"]["id"], server["name"], server["metadata"]) == \
        (old_id, "rebuilt", {"role": "web"})
    bad = http(info, "POST", action, {"rebuild": {"imageRef": "nope"}}, tok)
    assert bad[0] == 400 and "could not be found" in bad[2]["badRequest"]["message"]
    # Glance: own snapshots may be deleted, the public images may not
    assert http(info, "DELETE", f"/image/de-fra-1/v2/images/{CIRROS}", token=tok)[0] == 403
    assert http(info, "DELETE", f"/image/de-fra-1/v2/images/{old_id}", token=tok)[0] == 204
    assert http(info, "GET", f"/image/de-fra-1/v2/images/{old_id}", token=tok)[0] == 404
