"""Keystone's kinds (``OS::Keystone::*``) end to end: a Heat template applied through the
CLI with an admin's credentials, what it made seen by the real ``openstack`` CLI, a
change in place, a no-op plan, destroy; the emulator's Keystone as strict as Keystone;
and the kinds refused on AWS, naming the target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.clitools import run, write
from tests.integration.keystone_api import authenticate, http

pytestmark = pytest.mark.integration

ADMIN = {"username": "admin", "password": "admin-password", "project_name": "admin"}
SECRET = "s3cret-Passw0rd-of-alice"

TEMPLATE = """\
heat_template_version: 2018-08-31
parameters:
  password: {type: string, hidden: true}
  email: {type: string, default: alice@example.com}
  project_description: {type: string, default: the team's project}
  url: {type: string, default: "https://metrics.example.com/v1"}
resources:
  org:
    type: OS::Keystone::Domain
    properties: {name: ks-org, description: an organisation}
  team:
    type: OS::Keystone::Project
    properties:
      name: ks-team
      domain: {get_resource: org}
      description: {get_param: project_description}
      tags: [blue]
  sub:
    type: OS::Keystone::Project
    properties: {name: ks-sub, domain: {get_resource: org}, parent: {get_resource: team}}
  auditor:
    type: OS::Keystone::Role
    properties: {name: ks-auditor}
  admins:
    type: OS::Keystone::Group
    properties:
      name: ks-admins
      domain: {get_resource: org}
      roles: [{role: {get_resource: auditor}, project: {get_resource: team}}]
  alice:
    type: OS::Keystone::User
    properties:
      name: ks-alice
      domain: {get_resource: org}
      password: {get_param: password}
      email: {get_param: email}
      default_project: {get_resource: team}
      groups: [{get_resource: admins}]
      roles: [{role: member, project: {get_resource: team}},
              {role: reader, project: {get_resource: sub}}]
  edge:
    type: OS::Keystone::Region
    properties: {id: ks-edge, parent_region: de-fra-1, description: the edge}
  metrics:
    type: OS::Keystone::Service
    properties: {name: ks-metrics, type: metric, description: metrics}
  metrics_public:
    type: OS::Keystone::Endpoint
    properties:
      service: {get_resource: metrics}
      interface: public
      url: {get_param: url}
      region: {get_resource: edge}
outputs:
  user: {value: {get_resource: alice}}
  team_parent: {value: {get_attr: [sub, parent_id]}}
"""


def _openstack(home: Path, cloud: str, *args: str) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("openstack")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_CLIENT_CONFIG_FILE=str(home / "clouds.yaml"), OS_CLOUD=cloud,
               HOME=str(home), XDG_CACHE_HOME=str(home / "cache"))
    return subprocess.run([str(cli), *args], env=env, cwd=home, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def _ok(home: Path, *args: str, cloud: str = "admin") -> Any:
    proc = _openstack(home, cloud, *args, "-f", "json")
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr[-2000:])
    return json.loads(proc.stdout)


@pytest.fixture
def project(tmp_path: Path, openstack_reset: dict[str, Any]) -> Path:
    info = openstack_reset
    root = tmp_path / "project"
    root.mkdir()
    clouds = {
        "admin": {"auth": {"auth_url": info["auth_url"], **ADMIN,
                           "user_domain_name": "Default", "project_domain_name": "Default"},
                  "region_name": "de-fra-1", "identity_api_version": 3},
        "alice": {"auth": {"auth_url": info["auth_url"], "username": "ks-alice",
                           "password": SECRET, "user_domain_name": "ks-org",
                           "project_name": "ks-team", "project_domain_name": "ks-org"},
                  "region_name": "de-fra-1", "identity_api_version": 3},
    }
    write(root / "clouds.yaml", yaml.safe_dump({"clouds": clouds}))
    write(root / "cloudtmpl.yaml", "providers:\n"
          "  os-admin: {type: openstack, cloud: admin, catalog: sandbox-openstack}\n"
          "default_target: os-admin\n")
    write(root / "ks.yaml", TEMPLATE)
    return root


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_keystone_stack_applies_is_seen_by_the_openstack_cli_updates_and_destroys(
        project: Path) -> None:
    home = project
    env = {"HOME": str(project)}
    pw = ["-p", f"password={SECRET}"]
    applied = run(project, "apply", "ks.yaml", *pw, "--yes", env=env)
    assert applied.code == 0, applied.err + applied.out
    assert SECRET not in applied.out + applied.err

    org = _ok(home, "domain", "show", "ks-org")
    assert (org["enabled"], org["description"].splitlines()[0]) == (True, "an organisation")
    team = _ok(home, "project", "show", "ks-team", "--domain", "ks-org")
    sub = _ok(home, "project", "show", "ks-sub", "--domain", "ks-org")
    assert team["domain_id"] == org["id"] and team["tags"] == ["blue"]
    assert sub["parent_id"] == team["id"] and team["parent_id"] == org["id"]
    assert team["description"].startswith("the team's project\ncloudtmpl:owner=de-fra-1/ks.")
    user = _ok(home, "user", "show", "ks-alice", "--domain", "ks-org")
    assert (user["email"], user["default_project_id"]) == ("alice@example.com", team["id"])
    assert "password" not in user and user["id"] in applied.out  # the output
    groups = _ok(home, "group", "list", "--user", user["id"])
    assert [g["Name"] for g in groups] == ["ks-admins"]
    direct = _ok(home, "role", "assignment", "list", "--user", user["id"], "--names")
    assert sorted((a["Role"], a["Project"]) for a in direct) == [
        ("member", "ks-team@ks-org"), ("reader", "ks-sub@ks-org")]
    group = _ok(home, "group", "show", "ks-admins", "--domain", "ks-org")
    by_group = _ok(home, "role", "assignment", "list", "--group", group["id"], "--names")
    assert [(a["Role"], a["Project"]) for a in by_group] == [("ks-auditor", "ks-team@ks-org")]
    effective = _ok(home, "role", "assignment", "list", "--user", user["id"], "--project",
                    team["id"], "--effective", "--names")
    assert sorted(a["Role"] for a in effective) == ["ks-auditor", "member"]
    region = _ok(home, "region", "show", "ks-edge")
    assert region["parent_region"] == "de-fra-1"
    service = _ok(home, "service", "show", "ks-metrics")
    assert service["type"] == "metric" and service["enabled"] is True
    [endpoint] = _ok(home, "endpoint", "list", "--service", service["id"])
    assert (endpoint["Interface"], endpoint["URL"], endpoint["Region"]) == (
        "public", "https://metrics.example.com/v1", "ks-edge")

    # alice signs in with the password the template gave, scoped to her project
    token = _ok(home, "token", "issue", cloud="alice")
    assert (token["user_id"], token["project_id"]) == (user["id"], team["id"])
    # the password is nowhere in clear: not in the state, not in a log or record
    assert SECRET.encode() not in _all_bytes(project / ".cloudtmpl")

    again = run(project, "plan", "ks.yaml", *pw, "--detailed-exitcode", env=env)
    assert again.code == 0, again.out + again.err  # a no-op

    changed = run(project, "apply", "ks.yaml", *pw, "-p", "email=alice@example.org",
                  "-p", "project_description=renamed team",
                  "-p", "url=https://metrics.example.com/v2", "--yes", env=env)
    assert changed.code == 0, changed.err + changed.out
    assert "0 to create, 3 to update, 0 to replace, 0 to delete" in changed.out, changed.out
    team2 = _ok(home, "project", "show", "ks-team", "--domain", "ks-org")
    assert team2["id"] == team["id"] and team2["description"].startswith("renamed team\n")
    user2 = _ok(home, "user", "show", user["id"])
    assert (user2["id"], user2["email"]) == (user["id"], "alice@example.org")
    [endpoint2] = _ok(home, "endpoint", "list", "--service", service["id"])
    assert (endpoint2["ID"], endpoint2["URL"]) == (endpoint["ID"],
                                                   "https://metrics.example.com/v2")
    again = run(project, "plan", "ks.yaml", *pw, "-p", "email=alice@example.org",
                "-p", "project_description=renamed team",
                "-p", "url=https://metrics.example.com/v2", "--detailed-exitcode", env=env)
    assert again.code == 0, again.out + again.err

    gone = run(project, "destroy", "ks.yaml", *pw, "--yes", env=env)
    assert gone.code == 0, gone.err + gone.out
    for kind, name in (("domain", "ks-org"), ("region", "ks-edge"),
                       ("service", "ks-metrics"), ("role", "ks-auditor")):
        proc = _openstack(home, "admin", kind, "show", name)
        assert proc.returncode != 0 and ("No " in proc.stderr or "not found" in
                                         proc.stderr.lower() or "404" in proc.stderr), proc
    names = {p["Name"] for p in _ok(home, "project", "list")}
    assert names == {"admin", "sandbox"}
    assert {u["Name"] for u in _ok(home, "user", "list")} == {"admin", "sandbox"}


def _admin_token(info: dict[str, Any]) -> str:
    status, headers, body = authenticate(info, {"methods": ["password"], "password": {
        "user": {"name": "admin", "domain": {"id": "default"}, "password": "admin-password"}}},
        {"project": {"name": "admin", "domain": {"id": "default"}}})
    assert status == 201, body
    assert [r["name"] for r in body["token"]["roles"]] == ["admin"]
    return str(headers["X-Subject-Token"])


def test_the_emulators_keystone_refuses_what_keystone_refuses(
        openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    token = _admin_token(info)

    def call(method: str, path: str, body: Any = None, who: str = token) -> tuple[int, Any]:
        status, _, answer = http(info, method, "/identity/v3" + path, body, who)
        return status, answer

    status, made = call("POST", "/projects", {"project": {"name": "p1"}})
    assert status == 201 and made["project"]["domain_id"] == "default"
    p1 = made["project"]["id"]
    status, answer = call("POST", "/projects", {"project": {"name": "p1"}})
    assert status == 409 and "Duplicate entry" in answer["error"]["message"]
    assert call("POST", "/projects", {"project": {"description": "no name"}})[0] == 400
    assert call("POST", "/projects", {"project": {"name": "x", "enabled": "yes"}})[0] == 400
    assert call("POST", "/projects", {"project": {"name": "x", "tags": ["a/b"]}})[0] == 400
    assert call("POST", "/projects", {"project": {"name": "x", "domain_id": "nope"}})[0] == 404
    assert call("POST", "/projects", {"project": {"name": "x", "parent_id": "nope"}})[0] == 404
    status, child = call("POST", "/projects", {"project": {"name": "p2", "parent_id": p1}})
    assert status == 201
    status, answer = call("DELETE", f"/projects/{p1}")
    assert status == 403 and "not a leaf" in answer["error"]["message"]
    assert call("PATCH", f"/projects/{p1}", {"project": {"enabled": False}})[0] == 403
    assert call("PATCH", f"/projects/{p1}", {"project": {"domain_id": "x"}})[0] == 400
    assert call("DELETE", f"/projects/{child['project']['id']}")[0] == 204
    assert call("DELETE", f"/projects/{p1}")[0] == 204
    assert call("GET", f"/projects/{p1}")[0] == 404

    status, made = call("POST", "/domains", {"domain": {"name": "d1"}})
    d1 = made["domain"]["id"]
    assert call("POST", "/domains", {"domain": {"name": "d1"}})[0] == 409
    status, answer = call("DELETE", f"/domains/{d1}")
    assert status == 403 and "disable it first" in answer["error"]["message"]
    assert call("PATCH", f"/domains/{d1}", {"domain": {"enabled": False}})[0] == 200
    assert call("DELETE", f"/domains/{d1}")[0] == 204

    status, made = call("POST", "/users", {"user": {"name": "u1", "password": "pw-1"}})
    assert status == 201 and "password" not in made["user"]
    u1 = made["user"]["id"]
    assert call("POST", "/users", {"user": {"name": "u1"}})[0] == 409
    status, role = call("POST", "/roles", {"role": {"name": "r1"}})
    assert status == 201 and call("POST", "/roles", {"role": {"name": "r1"}})[0] == 409
    r1 = role["role"]["id"]
    sandbox = next(p["id"] for p in call("GET", "/projects?name=sandbox")[1]["projects"])
    assert call("PUT", f"/projects/{sandbox}/users/nope/roles/{r1}")[0] == 404
    assert call("PUT", f"/projects/nope/users/{u1}/roles/{r1}")[0] == 404
    assert call("PUT", f"/projects/{sandbox}/users/{u1}/roles/nope")[0] == 404
    assert call("HEAD", f"/projects/{sandbox}/users/{u1}/roles/{r1}")[0] == 404
    assert call("PUT", f"/projects/{sandbox}/users/{u1}/roles/{r1}")[0] == 204
    assert call("HEAD", f"/projects/{sandbox}/users/{u1}/roles/{r1}")[0] == 204
    status, listed = call("GET", f"/role_assignments?user.id={u1}")
    assert [a["role"]["id"] for a in listed["role_assignments"]] == [r1]
    assert call("PUT", f"/groups/nope/users/{u1}")[0] == 404

    assert call("POST", "/regions", {"region": {"id": "r-a"}})[0] == 201
    assert call("POST", "/regions", {"region": {"id": "r-a"}})[0] == 409
    assert call("POST", "/regions", {"region": {"id": "r-b", "parent_region_id": "nope"}}
                )[0] == 404
    assert call("POST", "/regions", {"region": {"id": "r-b", "parent_region_id": "r-a"}}
                )[0] == 201
    status, answer = call("PATCH", "/regions/r-a", {"region": {"parent_region_id": "r-b"}})
    assert status == 400 and "Circular reference" in answer["error"]["message"]
    assert call("DELETE", "/regions/r-a")[0] == 204
    assert call("GET", "/regions/r-b")[0] == 404  # the children went with it

    assert call("POST", "/services", {"service": {"name": "no type"}})[0] == 400
    status, svc = call("POST", "/services", {"service": {"type": "metric"}})
    sid = svc["service"]["id"]
    for bad in ({"interface": "private", "url": "http://x"},
                {"interface": "public"},
                {"interface": "public", "url": "http://x", "region_id": "nope"}):
        assert call("POST", "/endpoints", {"endpoint": {"service_id": sid, **bad}})[0] == 400
    assert call("POST", "/endpoints", {"endpoint": {"service_id": "nope", "url": "http://x",
                                                    "interface": "public"}})[0] == 400
    status, ep = call("POST", "/endpoints", {"endpoint": {"service_id": sid,
                                                          "url": "http://x",
                                                          "interface": "admin"}})
    assert status == 201
    assert call("DELETE", f"/services/{sid}")[0] == 204
    assert call("GET", f"/endpoints/{ep['endpoint']['id']}")[0] == 404  # with its service

    # a project member may change none of it
    status, headers, _ = authenticate(info, {"methods": ["password"], "password": {"user": {
        "name": info["username"], "domain": {"name": "Default"},
        "password": info["password"]}}})
    member = headers["X-Subject-Token"]
    status, answer = call("POST", "/projects", {"project": {"name": "m"}}, who=member)
    assert status == 403 and "identity:create_project" in answer["error"]["message"]
    assert call("GET", "/services", who=member)[0] == 403
    assert call("GET", "/regions", who=member)[0] == 200
    # a user made with a password signs in with it, and only with it
    wrong = {"methods": ["password"], "password": {"user": {"id": u1, "password": "nope"}}}
    assert authenticate(info, wrong)[0] == 401
    right = {"methods": ["password"], "password": {"user": {"id": u1, "password": "pw-1"}}}
    status, _, body = authenticate(info, right, {"project": {"id": sandbox}})
    assert status == 201 and [r["name"] for r in body["token"]["roles"]] == ["r1"]


def test_keystone_kinds_are_unsupported_on_aws_naming_the_target(
        tmp_path: Path, aws_sandbox: dict[str, Any]) -> None:
    write(tmp_path / "cloudtmpl.yaml", "providers: {}\n")
    write(tmp_path / "p.yaml", "heat_template_version: 2018-08-31\nresources:\n"
          "  team:\n    type: OS::Keystone::Project\n    properties: {name: t}\n")
    r = run(tmp_path, "validate", "p.yaml", "--target", "sandbox-aws/eu-central-1")
    assert r.code != 0
    assert "unsupported-kind" in r.err and "'sandbox-aws'" in r.err, r.err
    assert "unknown-resource-type" not in r.err
    assert "Keystone" in r.err  # the hint: an OpenStack target's
