"""A server's attributes in Heat's documented shapes, through the CLI on both sandboxes:
``networks`` ({network name or id: [ip, ...]}), ``addresses`` ({network name or id:
[{addr, version, OS-EXT-IPS:type, OS-EXT-IPS-MAC:mac_addr, port}]}), ``first_address``,
``show`` (the server as the cloud describes it), ``name``; and how a path resolves where
it does not exist: an unknown attribute name is an error before anything changes, a key
or index the live value does not have is null with a warning (Heat's null) that the plan
(text, JSON, Markdown) and the apply output show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clitools import ec2, invoke, write
from tests.integration.openstack_api import http, token

pytestmark = pytest.mark.integration

OS_TARGET = "sandbox-openstack/de-fra-1"

TEMPLATE = """\
heat_template_version: 2015-10-15
resources:
  db:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      networks: [{network: private}]
  pick:
    type: OS::Heat::Value
    properties:
      value: {get_attr: [db, addresses, private, 0, addr]}
outputs:
  by_name: {value: {get_attr: [db, networks, private, 0]}}
  by_id: {value: {get_attr: [db, networks, PRIVATE_ID, 0]}}
  first: {value: {get_attr: [db, first_address]}}
  addr: {value: {get_attr: [db, addresses, private, 0]}}
  addr_by_id: {value: {get_attr: [db, addresses, PRIVATE_ID, 0, addr]}}
  picked: {value: {get_attr: [pick, value]}}
  show_id: {value: {get_attr: [db, show, id]}}
  show_status: {value: {get_attr: [db, show, status]}}
  db_id: {value: {get_resource: db}}
  name: {value: {get_attr: [db, name]}}
  wrong_net: {value: {get_attr: [db, networks, nosuch, 0]}}
"""

APP = """\
  app:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      networks: [{network: private}]
      user_data:
        str_replace:
          template: "db=DB past=PAST"
          params:
            DB: {get_attr: [db, networks, private, 0]}
            PAST: {get_attr: [db, networks, private, 5]}
outputs:
"""


def _loc(text: str, needle: str) -> tuple[int, int]:
    """(line, column) of the ``get_attr`` key on the line holding ``needle``."""
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n, line.index("get_attr") + 1
    raise AssertionError(needle)


def _private(info: dict[str, Any]) -> dict[str, Any]:
    status, _, body = http(info, "GET", "/network/de-fra-1/v2.0/networks?name=private",
                           token=token(info))
    assert status == 200, body
    (private,) = body["networks"]
    return dict(private)


def _servers(info: dict[str, Any]) -> list[dict[str, Any]]:
    status, _, body = http(info, "GET", "/compute/de-fra-1/v2.1/servers/detail",
                           token=token(info))
    assert status == 200, body
    return list(body["servers"])


def test_server_attributes_in_heats_shapes_on_openstack(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    private = _private(openstack_reset)
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    text = TEMPLATE.replace("PRIVATE_ID", private["id"])
    write(tmp_path / "db.yaml", text)
    r = invoke(tmp_path, "apply", "db.yaml", "--target", OS_TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    # the missing key: one warning at its get_attr, after the values were known
    line, col = _loc(text, "wrong_net")
    assert r.out.count("warning[attribute-path-missing]") == 1, r.out
    assert f"db.yaml:{line}:{col}: warning[attribute-path-missing]: get_attr: " \
           f"[db, networks, nosuch, 0]: networks has no 'nosuch'" in r.out, r.out
    assert f"its keys: {', '.join(sorted(['private', private['id']]))}" in r.out

    out = invoke(tmp_path, "outputs", "-s", "db", "--format", "json").json()
    assert out["first"].startswith("10.")
    assert out["by_name"] == out["by_id"] == out["first"] == out["addr_by_id"]
    assert out["picked"] == out["first"]  # a property (OS::Heat::Value) read it too
    assert out["wrong_net"] is None
    # the address entry as Heat shows it: Nova's fields and the server's port
    (srv,) = [s for s in _servers(openstack_reset) if s["id"] == out["db_id"]]
    status, _, body = http(openstack_reset, "GET",
                           f"/network/de-fra-1/v2.0/ports?device_id={srv['id']}",
                           token=token(openstack_reset))
    assert status == 200, body
    (port,) = body["ports"]
    assert out["addr"] == {"addr": out["first"], "version": 4, "OS-EXT-IPS:type": "fixed",
                           "OS-EXT-IPS-MAC:mac_addr": port["mac_address"], "port": port["id"]}
    assert out["show_id"] == out["db_id"] == srv["id"]
    assert out["show_status"] == "ACTIVE" and out["name"] == srv["name"]

    # a second server's user_data reads the first: in the plan, the value is known
    text2 = text.replace("outputs:\n", APP, 1)
    write(tmp_path / "db.yaml", text2)
    r = invoke(tmp_path, "plan", "db.yaml", "--target", OS_TARGET, "--format", "json")
    assert r.code == 0, r.err + r.out
    plan = r.json()
    (app,) = [c for c in plan["changes"] if c["address"] == "app"]
    (user_data,) = [d["new"] for d in app["diff"] if d["property"] == "user_data"]
    assert user_data == f"db={out['first']} past=", user_data  # index 5: null, as ''
    by_code = {(w["line"], w["message"].split(":")[1]): w for w in plan["warnings"]}
    past_line, past_col = _loc(text2, "PAST: {get_attr")
    wrong_line, _ = _loc(text2, "wrong_net")
    assert set(by_code) == {(past_line, " [db, networks, private, 5]"),
                            (wrong_line, " [db, networks, nosuch, 0]")}, plan["warnings"]
    past = by_code[(past_line, " [db, networks, private, 5]")]
    assert past["severity"] == "warning" and past["code"] == "attribute-path-missing"
    assert (past["file"], past["column"]) == ("db.yaml", past_col)
    assert past["hint"] == "its indexes: 0 to 0"
    r = invoke(tmp_path, "plan", "db.yaml", "--target", OS_TARGET)
    assert r.code == 0 and f"db.yaml:{past_line}:{past_col}: warning[attribute-path-missing]" \
        in r.out, r.err + r.out
    r = invoke(tmp_path, "plan", "db.yaml", "--target", OS_TARGET, "--format", "markdown")
    assert r.code == 0 and "**Warnings**" in r.out and \
        f"`db.yaml:{past_line}:{past_col}` `attribute-path-missing`" in r.out, r.out
    # saved in the plan file, shown by show
    r = invoke(tmp_path, "plan", "db.yaml", "--target", OS_TARGET, "--out", "p.json")
    assert r.code == 0, r.err + r.out
    r = invoke(tmp_path, "show", "p.json")
    assert r.code == 0 and "warning[attribute-path-missing]" in r.out, r.err + r.out

    # an attribute name the kind does not have: an error before anything changes
    write(tmp_path / "db.yaml", text.replace("[db, networks, private, 0]",
                                             "[db, network, private, 0]"))
    before = _servers(openstack_reset)
    r = invoke(tmp_path, "apply", "db.yaml", "--target", OS_TARGET, "--yes")
    assert r.code == 1, r.err + r.out
    line, col = _loc(text, "by_name")
    assert f"db.yaml:{line}:{col}: error[unknown-attribute]" in r.err + r.out
    assert "did you mean 'networks'?" in r.err + r.out
    assert "addresses" in r.err + r.out  # the hint lists the kind's attributes
    assert _servers(openstack_reset) == before

    write(tmp_path / "db.yaml", text)
    r = invoke(tmp_path, "destroy", "db.yaml", "--target", OS_TARGET, "--yes")
    assert r.code == 0, r.err + r.out


AWS_TEMPLATE = """\
heat_template_version: 2015-10-15
resources:
  web:
    type: OS::Nova::Server
    properties: {image: ubuntu-22.04, flavor: tiny}
outputs:
  networks: {value: {get_attr: [web, networks]}}
  addresses: {value: {get_attr: [web, addresses]}}
  first: {value: {get_attr: [web, first_address]}}
  show_id: {value: {get_attr: [web, show, id]}}
  web_id: {value: {get_resource: web}}
  wrong: {value: {get_attr: [web, addresses, nosuch, 0, addr]}}
"""


def test_server_attributes_in_heats_shapes_on_aws(
        tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    region = "eu-central-1"
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "web.yaml", AWS_TEMPLATE)
    r = invoke(tmp_path, "apply", "web.yaml", "--target", f"sandbox-aws/{region}", "--yes",
               "--format", "json")
    assert r.code == 0, r.err + r.out
    result = [line for line in r.out.splitlines() if '"event": "result"' in line]
    (doc,) = [json.loads(line) for line in result]
    (warning,) = doc["warnings"]
    line, col = _loc(AWS_TEMPLATE, "wrong:")
    assert (warning["code"], warning["line"], warning["column"]) == \
        ("attribute-path-missing", line, col)
    out = doc["outputs"]
    assert out["wrong"] is None and out["show_id"] == out["web_id"]
    (inst,) = [i for res in ec2(aws_reset, region).describe_instances()["Reservations"]
               for i in res["Instances"] if i["InstanceId"] == out["web_id"]]
    (nic,) = inst["NetworkInterfaces"]
    fixed = {"addr": inst["PrivateIpAddress"], "version": 4, "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": nic["MacAddress"], "port": nic["NetworkInterfaceId"]}
    entries = [fixed]
    ips = [inst["PrivateIpAddress"]]
    if inst.get("PublicIpAddress"):
        entries.append({**fixed, "addr": inst["PublicIpAddress"], "OS-EXT-IPS:type": "floating"})
        ips.append(inst["PublicIpAddress"])
    # keyed by the VPC id and by the subnet id, as Heat keys a network by name and id
    assert out["addresses"] == {inst["VpcId"]: entries, inst["SubnetId"]: entries}
    assert out["networks"] == {inst["VpcId"]: ips, inst["SubnetId"]: ips}
    assert out["first"] == inst["PrivateIpAddress"]
    r = invoke(tmp_path, "destroy", "web.yaml", "--target", f"sandbox-aws/{region}", "--yes")
    assert r.code == 0, r.err + r.out
