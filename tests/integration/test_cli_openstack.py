"""OpenStack via the real CLI and libcloud's OpenStack driver; one stack on two clouds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloudtmpl import capabilities
from cloudtmpl_sandbox import control
from tests.integration.clitools import REPO, invoke, os_driver, owned, stack_instances, tags, write

HEAT_NET = REPO / "examples" / "heat" / "servers_in_new_net.yaml"
HEAT_VOLUME = REPO / "examples" / "heat" / "server_with_volume.yaml"
MULTI = REPO / "examples" / "multicloud" / "multicloud.yaml"


@pytest.fixture
def project(tmp_path: Path, aws_reset: dict[str, Any], openstack_reset: dict[str, Any]) -> Path:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    for src in (HEAT_NET, HEAT_VOLUME, MULTI):
        write(tmp_path / src.name, src.read_text())
    return tmp_path


def changes(plan: dict[str, Any]) -> dict[str, str]:
    return {c["address"]: c["action"] for c in plan["changes"]}


@pytest.mark.parametrize("region", ["de-fra-1", "nl-ams-1"])
def test_heat_template_runs_unchanged_on_openstack(
    project: Path, openstack_reset: dict[str, Any], region: str
) -> None:
    target = f"sandbox-openstack/{region}"
    r = invoke(project, "apply", "servers_in_new_net.yaml", "--target", target, "--yes")
    assert r.code == 0, r.err + r.out
    out = invoke(project, "outputs", "-s", "servers_in_new_net", "--format", "json").json()
    assert out["server1_private_ip"].startswith("10.0.10.")
    assert out["server1_public_ip"]

    driver = os_driver(openstack_reset, region)
    (node,) = owned(driver.list_nodes(), "servers_in_new_net")
    assert node.state == "running"
    assert node.extra["metadata"]["cloudtmpl:resource"] == "server1"
    assert out["server1_private_ip"] in node.private_ips
    other = "nl-ams-1" if region == "de-fra-1" else "de-fra-1"
    assert owned(os_driver(openstack_reset, other).list_nodes(), "servers_in_new_net") == []

    r = invoke(project, "plan", "servers_in_new_net.yaml", "--target", target,
               "--detailed-exitcode")
    assert r.code == 0, r.out + r.err

    # a flavor change resizes in place; a rule change updates the group in place
    text = (project / "servers_in_new_net.yaml").read_text()
    write(
        project / "servers_in_new_net.yaml",
        text.replace(
            "port_range_min: 22\n          port_range_max: 22",
            "port_range_min: 2222\n          port_range_max: 2222",
        ),
    )
    r = invoke(
        project,
        "plan",
        "servers_in_new_net.yaml",
        "--target",
        target,
        "-p",
        "flavor=medium",
        "--format",
        "json",
    )
    plan = r.json()
    assert {a: x for a, x in changes(plan).items() if x != "no-op"} == {
        "server1": "update",
        "server_security_group": "update",
    }
    assert all(
        c["placement"]["target"] == "sandbox-openstack" and c["placement"]["region"] == region
        for c in plan["changes"]
    )
    r = invoke(
        project,
        "apply",
        "servers_in_new_net.yaml",
        "--target",
        target,
        "-p",
        "flavor=medium",
        "--yes",
    )
    assert r.code == 0, r.err + r.out
    (node,) = owned(driver.list_nodes(), "servers_in_new_net")
    assert node.extra["flavorId"] in {s.id for s in driver.list_sizes() if s.name == "m1.medium"}
    r = invoke(
        project,
        "plan",
        "servers_in_new_net.yaml",
        "--target",
        target,
        "-p",
        "flavor=medium",
        "--detailed-exitcode",
    )
    assert r.code == 0, r.out + r.err

    # a new image replaces the server (its port, floating IP and network stay)
    r = invoke(project, "apply", "servers_in_new_net.yaml", "--target", target, "-p",
               "flavor=medium", "-p", "image=debian-12", "--yes", "--format", "json")
    assert r.code == 0, r.err + r.out
    steps = {(e["action"], e["address"]) for e in map(json.loads, r.out.splitlines())
             if e["event"] == "done"}
    assert steps == {("delete", "server1"), ("create", "server1")}
    (new_node,) = owned(driver.list_nodes(), "servers_in_new_net")
    assert new_node.id != node.id
    assert invoke(project, "plan", "servers_in_new_net.yaml", "--target", target, "-p",
                  "flavor=medium", "-p", "image=debian-12", "--detailed-exitcode").code == 0

    r = invoke(project, "destroy", "servers_in_new_net.yaml", "--target", target, "--yes")
    assert r.code == 0, r.err + r.out
    assert owned(driver.list_nodes(), "servers_in_new_net") == []
    assert owned(driver.ex_list_networks(), "servers_in_new_net") == []
    assert owned(driver.ex_list_security_groups(), "servers_in_new_net") == []
    assert owned(driver.list_key_pairs(), "servers_in_new_net") == []


@pytest.mark.skipif("Cloud::Network::Router" not in capabilities.CLOUDS["aws"].kinds,
                    reason="AWS offers no router kinds yet (the template has a router)")
def test_same_heat_template_plans_on_aws(project: Path) -> None:
    r = invoke(
        project,
        "plan",
        "servers_in_new_net.yaml",
        "--target",
        "sandbox-aws/eu-central-1",
        "--format",
        "json",
        "--detailed-exitcode",
    )
    assert r.code == 2, r.err
    plan = r.json()
    assert set(changes(plan).values()) == {"create"}
    assert {c["placement"]["target"] for c in plan["changes"]} == {"sandbox-aws"}
    kinds = {c["address"]: c["kind"] for c in plan["changes"]}
    assert kinds["private_net"] == "Cloud::Network::Network"
    assert kinds["server1_port"] == "Cloud::Network::Port"
    assert kinds["router"] == "Cloud::Network::Router"
    assert kinds["router_interface"] == "Cloud::Network::RouterInterface"


def test_server_with_volume_on_openstack(project: Path, openstack_reset: dict[str, Any]) -> None:
    target = "sandbox-openstack/nl-ams-1"
    r = invoke(project, "apply", "server_with_volume.yaml", "--target", target, "--yes")
    assert r.code == 0, r.err + r.out
    driver = os_driver(openstack_reset, "nl-ams-1")
    (volume,) = [
        v
        for v in driver.list_volumes()
        if (v.extra.get("metadata") or {}).get("cloudtmpl:stack") == "server_with_volume"
    ]
    assert volume.size == 1 and volume.state == "inuse"
    r = invoke(
        project,
        "apply",
        "server_with_volume.yaml",
        "--target",
        target,
        "-p",
        "volume_size=3",
        "--yes",
    )
    assert r.code == 1  # a volume grows only while detached: the cloud's refusal is reported
    assert "sandbox-openstack/nl-ams-1" in r.out + r.err
    r = invoke(project, "destroy", "server_with_volume.yaml", "--target", target, "--yes")
    assert r.code == 0, r.err + r.out
    assert [
        v
        for v in driver.list_volumes()
        if (v.extra.get("metadata") or {}).get("cloudtmpl:stack") == "server_with_volume"
    ] == []


def test_one_stack_on_two_clouds(
    project: Path, aws_reset: dict[str, Any], openstack_reset: dict[str, Any]
) -> None:
    r = invoke(project, "plan", "multicloud.yaml", "--format", "json")
    assert r.code == 0, r.err
    where = {
        c["address"]: (c["placement"]["target"], c["placement"]["region"])
        for c in r.json()["changes"]
    }
    assert where["db"] == ("sandbox-openstack", "de-fra-1")
    assert where["db_data"] == ("sandbox-openstack", "de-fra-1")
    assert where["web1"] == ("sandbox-aws", "eu-central-1")
    text = invoke(project, "plan", "multicloud.yaml").out
    assert "db (Cloud::Compute::Server) sandbox-openstack/de-fra-1" in text

    r = invoke(project, "apply", "multicloud.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    out = invoke(project, "outputs", "-s", "multicloud", "--format", "json").json()
    assert len(out["web_addresses"]) == 2 and all(out["web_addresses"])
    assert out["database_address"]
    assert "change-me-please" not in r.out
    web = {
        tags(i)["cloudtmpl:resource"]
        for i in stack_instances(aws_reset, "eu-central-1", "multicloud")
    }
    assert web == {"web1", "web2"}
    (db,) = owned(os_driver(openstack_reset, "de-fra-1").list_nodes(), "multicloud")
    assert db.extra["metadata"]["cloudtmpl:resource"] == "db"
    assert invoke(project, "plan", "multicloud.yaml", "--detailed-exitcode").code == 0

    r = invoke(project, "destroy", "multicloud.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert stack_instances(aws_reset, "eu-central-1", "multicloud") == []
    driver = os_driver(openstack_reset, "de-fra-1")
    assert owned(driver.list_nodes(), "multicloud") == []
    assert owned(driver.list_volumes(), "multicloud") == []


def test_unknown_flavor_lists_what_the_target_offers(project: Path) -> None:
    r = invoke(
        project,
        "plan",
        "server_with_volume.yaml",
        "--target",
        "sandbox-openstack",
        "-p",
        "flavor=m9.huge",
    )
    assert r.code == 1
    assert "unknown-flavor" in r.err and "m9.huge" in r.err
    assert "m1.small" in r.err and "sandbox-openstack" in r.err and "de-fra-1" in r.err


def test_unknown_region_is_reported(project: Path) -> None:
    r = invoke(
        project, "plan", "server_with_volume.yaml", "--target", "sandbox-openstack/xx-nowhere-1"
    )
    assert r.code == 1
    assert "xx-nowhere-1" in r.err and "de-fra-1" in r.err
    assert "Traceback" not in r.err


def test_bad_credentials_and_unknown_cloud(project: Path, openstack_reset: dict[str, Any]) -> None:
    write(
        project / "clouds.yaml",
        f"""\
clouds:
  fra:
    auth:
      auth_url: {openstack_reset["auth_url"]}
      username: sandbox
      password: wrong-password
      project_name: sandbox
      user_domain_name: Default
      project_domain_name: Default
    region_name: de-fra-1
""",
    )
    write(
        project / "cloudtmpl.yaml",
        """\
providers:
  os-fra: {type: openstack, cloud: fra, region: de-fra-1}
  os-missing: {type: openstack, cloud: nosuchcloud, region: de-fra-1}
""",
    )
    env = {"OS_CLIENT_CONFIG_FILE": str(project / "clouds.yaml")}
    r = invoke(project, "plan", "server_with_volume.yaml", "--target", "os-fra", env=env)
    assert r.code == 1 and "Traceback" not in r.err
    assert "os-fra" in r.err and "401" in r.err
    r = invoke(project, "plan", "server_with_volume.yaml", "--target", "os-missing", env=env)
    assert r.code == 1 and "Traceback" not in r.err
    assert "nosuchcloud" in r.err and "clouds.yaml" in r.err


def test_quota_error_names_target_region_and_resource_and_loses_nothing(
    project: Path, openstack_reset: dict[str, Any]
) -> None:
    status, body = control.call(openstack_reset["endpoint"], openstack_reset["token"], "POST",
                                "/_sandbox/config", {"quota": {"instances": 0}})
    assert status == 200, body
    r = invoke(project, "apply", "server_with_volume.yaml", "--target", "sandbox-openstack",
               "--yes")
    assert r.code == 1
    assert "failed create server" in r.out and "sandbox-openstack/de-fra-1" in r.out
    assert "quota" in r.out.lower()
    assert "skipped create volume_attachment" in r.out
    # the volume that was created is tracked: the next plan keeps it, destroy removes it
    plan = invoke(project, "plan", "server_with_volume.yaml", "--target", "sandbox-openstack",
                  "--format", "json").json()
    assert changes(plan) == {"server": "create", "volume": "no-op",
                             "volume_attachment": "create"}
    assert invoke(project, "destroy", "server_with_volume.yaml", "--target", "sandbox-openstack",
                  "--yes").code == 0
    driver = os_driver(openstack_reset, "de-fra-1")
    assert owned(driver.list_volumes(), "server_with_volume") == []


def test_custom_constraint_is_checked_against_the_cloud(project: Path) -> None:
    write(project / "cc.yaml", """\
heat_template_version: 2021-04-16
parameters:
  flavor:
    type: string
    constraints: [{custom_constraint: nova.flavor}]
resources:
  s: {type: OS::Nova::Server, properties: {image: cirros-0.6, flavor: {get_param: flavor}}}
""")
    r = invoke(project, "plan", "cc.yaml", "--target", "sandbox-openstack", "-p", "flavor=m1.tiny")
    assert r.code == 0, r.err
    r = invoke(project, "plan", "cc.yaml", "--target", "sandbox-openstack", "-p", "flavor=m7.big")
    assert r.code == 1
    assert "parameter-constraint" in r.err and "custom_constraint nova.flavor" in r.err
    assert "m1.small" in r.err


def test_keypair_custom_constraint_names_an_existing_key_pair(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    write(project / "kp.yaml", """\
heat_template_version: 2021-04-16
parameters:
  key_name:
    type: string
    constraints: [{custom_constraint: nova.keypair}]
resources:
  s: {type: OS::Nova::Server,
      properties: {image: cirros-0.6, flavor: m1.tiny, key_name: {get_param: key_name}}}
""")
    key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    os_driver(openstack_reset, "de-fra-1").import_key_pair_from_string("ops", key)
    r = invoke(project, "plan", "kp.yaml", "--target", "sandbox-openstack/de-fra-1",
               "-p", "key_name=ops")
    assert r.code == 0, r.err
    r = invoke(project, "plan", "kp.yaml", "--target", "sandbox-openstack/de-fra-1",
               "-p", "key_name=opz")
    assert r.code == 1
    assert ("parameter 'key_name': 'opz' is not a key pair on sandbox-openstack/de-fra-1 "
            "(custom_constraint nova.keypair)") in r.err, r.err
    assert "sandbox-openstack offers: ops" in r.err
