"""Generic libcloud targets and compatible clouds, end to end through the real CLI.

* ``type: libcloud`` with the sandbox's stateful driver (``filecloud``: a libcloud
  NodeDriver kept in a JSON file in the test's directory,
  cloudtmpl_sandbox/filecloud.py): plan, apply, no-op re-plan, destroy;
* diagnostics before any cloud call: unknown driver, a credential in cloudtmpl.yaml,
  a kind the target does not provide; a missing credentials variable at plan;
* ``type: aws`` with ``endpoint:`` pointed at the AWS sandbox, credentials from the
  AWS variables (the sandbox's dummy ones);
* ``examples/four-clouds``: plans, applies and destroys on all four targets.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from cloudtmpl.state import StateStore
from tests.integration.adapters import LAB_PROJECT, lab_env
from tests.integration.clitools import REPO, ec2, run, stack_instances, tags, write

FOUR = REPO / "examples" / "four-clouds"


LAB_STACK = """\
heat_template_version: 2021-04-16
placement: {provider: lab, region: lab-de, residency: {countries: [DE]}}
resources:
  key:
    type: Cloud::Compute::KeyPair
  app:
    type: Cloud::Compute::Server
    properties:
      image: ubuntu-22.04
      flavor: fc-small
      key_name: {get_resource: key}
  data:
    type: Cloud::Block::Volume
    properties: {size: 3}
  data_attachment:
    type: Cloud::Block::VolumeAttachment
    properties:
      instance_uuid: {get_resource: app}
      volume_id: {get_resource: data}
outputs:
  app_ip: {value: {get_attr: [app, private_ip]}}
"""


def cloud_state(tmp_path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((tmp_path / "filecloud.json").read_text())
    return result


def test_generic_target_lifecycle(tmp_path: Path) -> None:
    write(tmp_path / "cloudtmpl.yaml", LAB_PROJECT)
    write(tmp_path / "lab.yaml", LAB_STACK)
    env = lab_env(tmp_path)

    r = run(tmp_path, "plan", "lab.yaml", "--format", "json", env=env)
    assert r.code == 0, r.err + r.out
    plan = r.json()
    assert {c["address"]: c["action"] for c in plan["changes"]} == {
        "key": "create", "app": "create", "data": "create", "data_attachment": "create"}
    assert {c["placement"]["country"] for c in plan["changes"]} == {"DE"}

    r = run(tmp_path, "apply", "lab.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    state = cloud_state(tmp_path)
    (node,) = state["nodes"].values()
    assert node["name"] == "lab.app" and node["location"] == "lab-de"
    assert node["metadata"]["cloudtmpl:stack"] == "lab"
    assert node["ssh_key"] and node["ssh_key"] == state["keys"]["lab.key"]
    (vol,) = state["volumes"].values()
    assert vol["attached_to"] == node["id"] and vol["size"] == 3
    outputs = run(tmp_path, "outputs", "-s", "lab", "--format", "json", env=env).json()
    assert outputs["app_ip"].startswith("10.0.0.")

    r = run(tmp_path, "plan", "lab.yaml", "--detailed-exitcode", env=env)
    assert r.code == 0, r.err + r.out  # a new process finds everything: no changes

    # a second apply is a no-op too (nothing created twice)
    r = run(tmp_path, "apply", "lab.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    assert len(cloud_state(tmp_path)["nodes"]) == 1

    r = run(tmp_path, "destroy", "lab.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    state = cloud_state(tmp_path)
    assert state["nodes"] == {} and state["volumes"] == {} and state["keys"] == {}


def test_generic_target_diagnostics(tmp_path: Path) -> None:
    write(tmp_path / "lab.yaml", LAB_STACK)
    env = lab_env(tmp_path)

    write(tmp_path / "cloudtmpl.yaml", LAB_PROJECT.replace("driver: filecloud",
                                                          "driver: digitalocaen"))
    r = run(tmp_path, "validate", "lab.yaml", env=env)
    assert r.code == 1 and "config-libcloud-driver" in r.err + r.out
    assert "'digitalocean'" in r.err + r.out

    write(tmp_path / "cloudtmpl.yaml", LAB_PROJECT.replace(
        "key_env: FILECLOUD_TOKEN", "key: lab-token-value"))
    r = run(tmp_path, "validate", "lab.yaml", env=env)
    assert r.code == 1 and "config-credentials" in r.err + r.out
    assert "lab-token-value" not in r.err + r.out

    # a target without volumes: the volume and its attachment are refused at validate
    write(tmp_path / "cloudtmpl.yaml", LAB_PROJECT.replace(
        "default_target: lab", "").replace(
        "    key_env: FILECLOUD_TOKEN\n",
        "    key_env: FILECLOUD_TOKEN\n    capabilities:\n"
        "      kinds: [Cloud::Compute::Server, Cloud::Compute::KeyPair]\n"))
    r = run(tmp_path, "validate", "lab.yaml", env=env)
    assert r.code == 1, r.out
    text = r.err + r.out
    assert text.count("unsupported-kind") == 2 and "'data'" in text
    assert not (tmp_path / "filecloud.json").exists()  # no cloud was asked

    # the token variable is not set: named, and no cloud call made
    write(tmp_path / "cloudtmpl.yaml", LAB_PROJECT)
    r = run(tmp_path, "plan", "lab.yaml", env={**env, "FILECLOUD_TOKEN": ""})
    assert r.code == 1
    assert "environment variable FILECLOUD_TOKEN is not set" in r.err + r.out


COMPAT_STACK = """\
heat_template_version: 2021-04-16
placement: {provider: compat-ec2, region: us-east-1}
resources:
  probe:
    type: Cloud::Compute::Server
    properties: {image: ubuntu-22.04, flavor: tiny, metadata: {role: probe}}
"""


def test_ec2_compatible_endpoint(tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    write(tmp_path / "cloudtmpl.yaml", (
        "providers:\n"
        f"  compat-ec2: {{type: aws, endpoint: {aws_reset['endpoint']}, region: us-east-1,"
        " catalog: sandbox-aws}\n"))
    write(tmp_path / "compat.yaml", COMPAT_STACK)
    creds = {"AWS_ACCESS_KEY_ID": aws_reset["access_key"],
             "AWS_SECRET_ACCESS_KEY": aws_reset["secret_key"]}
    r = run(tmp_path, "apply", "compat.yaml", "--yes", env=creds)
    assert r.code == 0, r.err + r.out
    (instance,) = stack_instances(aws_reset, "us-east-1", "compat")
    assert tags(instance)["cloudtmpl:resource"] == "probe"
    assert instance["InstanceType"] == "t3.micro"
    r = run(tmp_path, "plan", "compat.yaml", "--detailed-exitcode", env=creds)
    assert r.code == 0, r.err + r.out
    r = run(tmp_path, "plan", "compat.yaml", env={})  # no AWS variables: said so
    assert r.code == 1 and "AWS_ACCESS_KEY_ID" in r.err + r.out
    r = run(tmp_path, "destroy", "compat.yaml", "--yes", env=creds)
    assert r.code == 0, r.err + r.out
    assert stack_instances(aws_reset, "us-east-1", "compat") == []


def test_four_clouds_example(tmp_path: Path, aws_reset: dict[str, Any],
                             openstack_reset: dict[str, Any]) -> None:
    project = tmp_path / "four-clouds"
    shutil.copytree(FOUR, project)
    # as the README says: the tracked files stay as they are; compat-ec2's endpoint
    # comes from AWS_ENDPOINT_URL_EC2
    assert "endpoint:" not in (project / "cloudtmpl.yaml").read_text()
    # the installed package alone (no PYTHONPATH, no test module): the README's install
    env = lab_env(tmp_path, AWS_ACCESS_KEY_ID=aws_reset["access_key"],
                  AWS_SECRET_ACCESS_KEY=aws_reset["secret_key"],
                  AWS_ENDPOINT_URL_EC2=aws_reset["endpoint"], PYTHONPATH="")

    r = run(project, "plan", "four_clouds.yaml", "--format", "json", env=env)
    assert r.code == 0, r.err + r.out
    where = {c["address"]: c["placement"]["target"] for c in r.json()["changes"]}
    assert set(where.values()) == {"sandbox-aws", "sandbox-openstack", "lab", "compat-ec2"}
    assert all(c["action"] == "create" for c in r.json()["changes"])

    r = run(project, "apply", "four_clouds.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    outputs = run(project, "outputs", "-s", "four_clouds", "--format", "json", env=env).json()
    assert all(outputs[k] for k in ("web_ip", "db_ip", "worker_ip", "probe_ip")), outputs
    worker = next(iter(cloud_state(tmp_path)["nodes"].values()))
    assert f"db={outputs['db_ip']}" in worker["userdata"]  # across clouds
    assert [tags(i)["cloudtmpl:resource"] for i in
            stack_instances(aws_reset, "us-east-1", "four_clouds")] == ["probe"]
    assert [tags(i)["cloudtmpl:resource"] for i in
            stack_instances(aws_reset, "eu-central-1", "four_clouds")] == ["web"]

    r = run(project, "plan", "four_clouds.yaml", "--detailed-exitcode", env=env)
    assert r.code == 0, r.err + r.out

    r = run(project, "destroy", "four_clouds.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    assert stack_instances(aws_reset, "us-east-1", "four_clouds") == []
    assert stack_instances(aws_reset, "eu-central-1", "four_clouds") == []
    state = cloud_state(tmp_path)
    assert state["nodes"] == {} and state["volumes"] == {} and state["keys"] == {}
    client = ec2(aws_reset, "eu-central-1")
    assert client.describe_volumes(Filters=[{"Name": "tag:cloudtmpl:stack",
                                             "Values": ["four_clouds"]}])["Volumes"] == []


def test_generic_target_attachment_records_in_the_state(tmp_path: Path) -> None:
    """The attachment record is in the state store; an older cloudtmpl's records file is
    imported once (the plan after it finds the attachment) and kept aside."""
    write(tmp_path / "cloudtmpl.yaml", LAB_PROJECT)
    write(tmp_path / "lab.yaml", LAB_STACK)
    env = lab_env(tmp_path)
    r = run(tmp_path, "apply", "lab.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    assert not (tmp_path / ".cloudtmpl" / "libcloud").exists()
    url = f"sqlite:///{tmp_path}/.cloudtmpl/state.db"
    with StateStore.open(url) as s:
        records = s.provider_records("lab", "attachments")
        (volume_id, record), = records.items()
        assert record["address"] == "data_attachment" and record["stack"] == "lab"
        # as an older cloudtmpl kept it: in a file of its own, not in the state
        s.forget_provider_record("lab", "attachments", volume_id)
    old = tmp_path / ".cloudtmpl" / "libcloud" / "lab.json"
    old.parent.mkdir()
    old.write_text(json.dumps({"attachments": records}, indent=2, sort_keys=True))

    r = run(tmp_path, "plan", "lab.yaml", "--detailed-exitcode", env=env)
    assert r.code == 0, r.err + r.out  # the attachment was found: nothing to create
    assert not old.exists()
    assert json.loads(old.with_name("lab.json.imported").read_text()) == {
        "attachments": records}
    with StateStore.open(url) as s:
        assert s.provider_records("lab", "attachments") == records
        assert "imported 1 libcloud attachment records of target 'lab'" in \
            s.audit_log("lab")[-1].what

    r = run(tmp_path, "destroy", "lab.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    with StateStore.open(url) as s:
        assert s.provider_records("lab", "attachments") == {}
