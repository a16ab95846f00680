"""The engine end to end: the real CLI, libcloud's real EC2 driver, the AWS sandbox."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clitools import (
    QUICKSTART,
    cli_args,
    cli_env,
    ec2,
    edit,
    invoke,
    stack_instances,
    tags,
    write,
)

REGION = "eu-central-1"


@pytest.fixture
def project(tmp_path: Path, aws_reset: dict[str, Any]) -> Path:
    """An empty project directory (own state) with the quickstart template in it."""
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "stack.yaml", QUICKSTART.read_text())
    return tmp_path


def changes(plan: dict[str, Any]) -> dict[str, str]:
    return {c["address"]: c["action"] for c in plan["changes"]}


def test_quickstart_lifecycle(project: Path, aws_reset: dict[str, Any],
                              catalog_amis: dict[tuple[str, str], str]) -> None:
    client = ec2(aws_reset, REGION)
    foreign = client.run_instances(
        ImageId=catalog_amis[(REGION, "ubuntu-22.04")], MinCount=1, MaxCount=1,
        InstanceType="t3.micro",
    )["Instances"][0]["InstanceId"]

    # create
    r = invoke(project, "apply", "stack.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert "Outputs:" in r.out
    outputs = invoke(project, "outputs", "-s", "stack", "--format", "json").json()
    assert outputs["web1_id"].startswith("i-") and outputs["web2_id"].startswith("i-")
    assert outputs["web1_private_ip"] and outputs["web2_private_ip"]
    assert outputs["web2_public_ip"]
    assert re.search(rf"^web1_id +=  *{outputs['web1_id']}$", r.out, re.MULTILINE), r.out

    instances = {
        tags(i)["cloudtmpl:resource"]: i for i in stack_instances(aws_reset, REGION, "stack")
    }
    assert sorted(instances) == ["web1", "web2"]
    assert all(i["State"]["Name"] == "running" for i in instances.values())
    assert instances["web1"]["InstanceType"] == "t3.small"
    assert tags(instances["web1"])["Name"] == "stack.web1"
    vols = client.describe_volumes(Filters=[{"Name": "tag:cloudtmpl:stack", "Values": ["stack"]}])[
        "Volumes"
    ]
    assert len(vols) == 1 and vols[0]["Size"] == 10
    assert vols[0]["Attachments"][0]["InstanceId"] == outputs["web1_id"]
    addrs = client.describe_addresses()["Addresses"]
    assert [a["InstanceId"] for a in addrs if a["PublicIp"] == outputs["web2_public_ip"]] == [
        outputs["web2_id"]
    ]
    assert (project / ".cloudtmpl" / "keys" / "stack.key.pem").stat().st_mode & 0o777 == 0o600

    # no-op re-plan
    r = invoke(project, "plan", "stack.yaml", "--detailed-exitcode")
    assert r.code == 0, r.err + r.out
    assert "No changes" in r.out

    # edit: add a server, change a rule, change a size, change an image
    text = (project / "stack.yaml").read_text()
    web3 = (
        "  web3:\n    type: Cloud::Compute::Server\n    properties:\n"
        "      image: {get_param: image}\n      flavor: tiny\n\n  data:\n"
    )
    text = edit(
        text,
        [
            (
                "port_range_min: 80, port_range_max: 80",
                "port_range_min: 8080, port_range_max: 8080",
            ),
            ("  data:\n", web3),
        ],
    )
    write(project / "stack.yaml", text)
    r = invoke(
        project,
        "plan",
        "stack.yaml",
        "-p",
        "flavor=medium",
        "--format",
        "json",
        "--detailed-exitcode",
    )
    assert r.code == 2, r.err
    plan = r.json()
    assert changes(plan) == {
        "key": "no-op",
        "web_sg": "update",
        "web1": "update",
        "web2": "update",
        "web3": "create",
        "data": "no-op",
        "data_attachment": "no-op",
        "web2_ip": "no-op",
    }
    sg = next(c for c in plan["changes"] if c["address"] == "web_sg")
    (rules,) = sg["diff"]
    assert rules["property"] == "rules"
    assert {r["port_range_min"] for r in rules["old"]} == {22, 80}
    assert {r["port_range_min"] for r in rules["new"]} == {22, 8080}
    web1 = next(c for c in plan["changes"] if c["address"] == "web1")
    assert web1["diff"] == [
        {"property": "flavor", "old": "t3.small", "new": "t3.medium", "forces_replacement": False}
    ]
    assert plan["stats"]["api_requests"] < 10
    assert plan["summary"] == {"create": 1, "update": 3, "replace": 0, "delete": 0, "no-op": 4}

    r = invoke(project, "apply", "stack.yaml", "-p", "flavor=medium", "--yes")
    assert r.code == 0, r.err + r.out
    instances = {
        tags(i)["cloudtmpl:resource"]: i for i in stack_instances(aws_reset, REGION, "stack")
    }
    assert sorted(instances) == ["web1", "web2", "web3"]
    assert instances["web1"]["InstanceId"] == outputs["web1_id"]  # updated, not replaced
    assert instances["web1"]["InstanceType"] == "t3.medium"
    assert instances["web3"]["InstanceType"] == "t3.micro"
    group = client.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["stack.web_sg"]}]
    )["SecurityGroups"][0]
    assert sorted(p["FromPort"] for p in group["IpPermissions"]) == [22, 8080]
    r = invoke(project, "plan", "stack.yaml", "-p", "flavor=medium", "--detailed-exitcode")
    assert r.code == 0, r.out

    # replacement: a new image forces web1 (and its volume attachment) to be replaced
    r = invoke(
        project,
        "plan",
        "stack.yaml",
        "-p",
        "flavor=medium",
        "-p",
        "image=ubuntu-20.04",
        "--format",
        "json",
    )
    plan = r.json()
    assert {a: x for a, x in changes(plan).items() if x != "no-op"} == {
        "web1": "replace",
        "web2": "replace",
        "web3": "replace",
        "data_attachment": "replace",
        "web2_ip": "update",
    }
    r = invoke(
        project, "apply", "stack.yaml", "-p", "flavor=medium", "-p", "image=ubuntu-20.04", "--yes"
    )
    assert r.code == 0, r.err + r.out
    new = invoke(project, "outputs", "-s", "stack", "--format", "json").json()
    assert new["web1_id"] != outputs["web1_id"]
    assert len(stack_instances(aws_reset, REGION, "stack")) == 3
    vols = client.describe_volumes(Filters=[{"Name": "tag:cloudtmpl:stack", "Values": ["stack"]}])[
        "Volumes"
    ]
    assert vols[0]["Attachments"][0]["InstanceId"] == new["web1_id"]
    addr = next(
        a
        for a in client.describe_addresses()["Addresses"]
        if a["PublicIp"] == new["web2_public_ip"]
    )
    assert addr["InstanceId"] == new["web2_id"]

    # delete: a resource removed from the template is deleted
    write(project / "stack.yaml", edit(text, [(web3, "  data:\n")]))
    r = invoke(
        project, "apply", "stack.yaml", "-p", "flavor=medium", "-p", "image=ubuntu-20.04", "--yes"
    )
    assert r.code == 0, r.err + r.out
    assert "delete web3" in r.out
    assert sorted(
        tags(i)["cloudtmpl:resource"] for i in stack_instances(aws_reset, REGION, "stack")
    ) == ["web1", "web2"]

    # destroy removes everything the stack owns and nothing else
    r = invoke(project, "destroy", "stack.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert stack_instances(aws_reset, REGION, "stack") == []
    assert (
        client.describe_volumes(Filters=[{"Name": "tag:cloudtmpl:stack", "Values": ["stack"]}])[
            "Volumes"
        ]
        == []
    )
    assert [
        g
        for g in client.describe_security_groups()["SecurityGroups"]
        if g["GroupName"].startswith("stack.")
    ] == []
    assert [
        k for k in client.describe_key_pairs()["KeyPairs"] if k["KeyName"].startswith("stack.")
    ] == []
    assert client.describe_addresses()["Addresses"] == []
    state = client.describe_instances(InstanceIds=[foreign])["Reservations"][0]["Instances"][0]
    assert state["State"]["Name"] == "running"  # not the stack's: untouched
    r = invoke(project, "plan", "stack.yaml", "--format", "json")
    assert set(changes(r.json()).values()) == {"create"}


def test_second_concurrent_apply_is_refused_by_the_lock(project: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from cloudtmpl.state import StateStore\n"
            "s = StateStore.open(sys.argv[1])\n"
            "s.acquire_lock('stack', 'ci-runner-7 (test)')\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n",
            f"sqlite:///{project}/.cloudtmpl/state.db",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        r = invoke(project, "apply", "stack.yaml", "--yes")
        assert r.code == 1
        assert "stack-locked" in r.err and "ci-runner-7 (test)" in r.err
        assert time.monotonic() - started < 30  # refused at once, not after waiting
    finally:
        holder.kill()
        holder.wait()
    assert stack_instances_count(project) == 0


def stack_instances_count(project: Path) -> int:
    r = invoke(project, "plan", "stack.yaml", "--format", "json")
    return sum(1 for c in r.json()["changes"] if c["action"] != "create")


def test_apply_killed_midway_converges_without_duplicates(
    tmp_path: Path, aws_reset: dict[str, Any]
) -> None:
    servers = 24
    body = "".join(
        f"  s{i:02d}:\n    type: Cloud::Compute::Server\n"
        f"    properties: {{image: ubuntu-22.04, flavor: tiny}}\n"
        for i in range(servers)
    )
    write(
        tmp_path / "big.yaml",
        "heat_template_version: 2021-04-16\n"
        f"placement: {{provider: sandbox-aws, region: {REGION}}}\nresources:\n{body}",
    )
    proc = subprocess.Popen(
        cli_args("apply", "big.yaml", "--yes", "--parallelism", "2"),
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            created = len(stack_instances(aws_reset, REGION, "big"))
            if created >= 4:
                break
            assert proc.poll() is None, "apply finished before it could be killed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    found = len(stack_instances(aws_reset, REGION, "big"))
    assert 4 <= found < servers

    r = invoke(tmp_path, "plan", "big.yaml", "--format", "json")
    assert r.code == 0, r.err
    summary = r.json()["summary"]
    # every server the killed run created is found and kept; only the rest is created
    assert summary["create"] == servers - found
    assert summary["no-op"] + summary["update"] == found
    assert summary["delete"] == 0

    r = invoke(tmp_path, "apply", "big.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    names = [tags(i)["cloudtmpl:resource"] for i in stack_instances(aws_reset, REGION, "big")]
    assert sorted(names) == [f"s{i:02d}" for i in range(servers)]  # no duplicates

    r = invoke(tmp_path, "destroy", "big.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert stack_instances(aws_reset, REGION, "big") == []


def test_noop_plan_of_150_servers_makes_few_requests(
    tmp_path: Path, aws_reset: dict[str, Any]
) -> None:
    body = "".join(
        f"  s{i:03d}:\n    type: Cloud::Compute::Server\n"
        f"    properties: {{image: ubuntu-22.04, flavor: tiny}}\n"
        for i in range(150)
    )
    write(
        tmp_path / "wide.yaml",
        "heat_template_version: 2021-04-16\n"
        "placement: {provider: sandbox-aws, region: us-east-1}\nresources:\n" + body,
    )
    r = invoke(tmp_path, "apply", "wide.yaml", "--yes", "--parallelism", "16")
    assert r.code == 0, r.err + r.out[-2000:]
    assert len(stack_instances(aws_reset, "us-east-1", "wide")) == 150
    r = invoke(tmp_path, "plan", "wide.yaml", "--format", "json", "--detailed-exitcode")
    assert r.code == 0, r.err
    plan = r.json()
    assert plan["summary"]["no-op"] == 150
    assert plan["stats"]["api_requests"] < 10
    print(f"no-op plan of 150 servers: {plan['stats']['api_requests']} API requests")


def test_validate_reports_every_problem_at_once(tmp_path: Path) -> None:
    bad = write(
        tmp_path / "bad.yaml",
        """\
heat_template_version: 2021-04-16
parameters:
  size: {type: number, default: 5, constraints: [{range: {min: 1, max: 3}}]}
resources:
  a:
    type: Cloud::Compute::Serverr
  b:
    type: Cloud::Block::Volume
    properties: {size: {get_param: size}, colour: red}
  c:
    type: Cloud::Compute::Server
    properties: {image: x, flavor: {get_attr: [nothere, first_address]}}
outputs:
  o: {value: {get_resource: missing}}
""",
    )
    r = invoke(tmp_path, "validate", str(bad), "--format", "json")
    assert r.code == 1
    report = r.json()
    assert report["valid"] is False
    codes = {(d["code"], d["line"]) for d in report["diagnostics"]}
    assert ("unknown-resource-type", 6) in codes
    assert ("unknown-property", 9) in codes
    assert ("parameter-constraint", 3) in {(c, ln) for c, ln in codes}
    assert any(c == "unknown-resource" and ln == 12 for c, ln in codes)
    assert any(c == "unknown-resource" and ln == 14 for c, ln in codes)
    assert all(d["hint"] for d in report["diagnostics"])
    assert "Traceback" not in r.err
    assert not (tmp_path / ".cloudtmpl").exists()  # nothing changed


def test_plan_json_and_markdown_and_saved_plan(project: Path, aws_reset: dict[str, Any]) -> None:
    r = invoke(project, "plan", "stack.yaml", "--out", "plan.json", "--detailed-exitcode")
    assert r.code == 2, r.err
    saved = json.loads((project / "plan.json").read_text())
    assert saved["format_version"] == 1 and saved["sources"]["stack.yaml"]
    assert (project / "plan.json").stat().st_mode & 0o777 == 0o600
    md = invoke(project, "plan", "stack.yaml", "--format", "markdown").out
    assert "| create | update | replace | delete | unchanged |" in md
    assert "<details><summary><code>+ web1</code> create" in md
    r = invoke(project, "apply", "plan.json")
    assert r.code == 0, r.err + r.out
    # the saved plan is now stale: the state serial and the live resources moved on
    r = invoke(project, "apply", "plan.json")
    assert r.code == 1 and "stale-plan" in r.err
    # destroy by stack name alone: the state says where the stack lives
    r = invoke(project, "destroy", "-s", "stack", "--yes")
    assert r.code == 0, r.err + r.out
    assert stack_instances(aws_reset, REGION, "stack") == []
    r = invoke(project, "show", "-s", "stack", "--format", "json")
    assert r.code == 1 and r.json()["diagnostics"][0]["code"] == "unknown-stack", r.out


def test_apply_without_yes_refuses_without_a_terminal(
    project: Path, aws_reset: dict[str, Any]
) -> None:
    r = invoke(project, "apply", "stack.yaml")
    assert r.code == 1 and "confirmation-required" in r.err
    assert stack_instances(aws_reset, REGION, "stack") == []


def test_hidden_parameter_never_reaches_plan_files_state_or_output(
    tmp_path: Path, aws_reset: dict[str, Any]
) -> None:
    canary = "canary-7f3a9c1e-secret"
    write(
        tmp_path / "app.yaml",
        f"""\
heat_template_version: 2021-04-16
parameters:
  db_password: {{type: string, hidden: true}}
placement: {{provider: sandbox-aws, region: {REGION}}}
resources:
  app:
    type: Cloud::Compute::Server
    properties:
      image: ubuntu-22.04
      flavor: tiny
      user_data:
        str_replace:
          template: "#!/bin/sh\\necho DB_PASSWORD=$PW > /etc/app.env\\n"
          params: {{$PW: {{get_param: db_password}}}}
outputs:
  password_echo: {{value: {{get_param: db_password}}}}
""",
    )
    write(tmp_path / "secrets.yaml", f"parameters:\n  db_password: {canary}\n")
    r = invoke(tmp_path, "plan", "app.yaml", "-e", "secrets.yaml", "--out", "plan.json")
    assert r.code == 0, r.err
    assert canary not in r.out + r.err
    assert canary not in (tmp_path / "plan.json").read_text()

    # the plan does not carry the secret, so applying it needs the value again
    r = invoke(tmp_path, "apply", "plan.json")
    assert r.code == 1 and "db_password" in r.err
    r = invoke(tmp_path, "apply", "plan.json", "-e", "secrets.yaml", "--format", "json")
    assert r.code == 0, r.err + r.out
    assert canary not in r.out + r.err
    events = [json.loads(line) for line in r.out.splitlines()]
    assert [e["event"] for e in events] == ["start", "done", "result"]
    assert events[-1]["outputs"]["password_echo"].startswith("(sensitive)")

    # the cloud got the real value; nothing cloudtmpl wrote holds it
    (instance,) = stack_instances(aws_reset, REGION, "app")
    attr = ec2(aws_reset, REGION).describe_instance_attribute(
        InstanceId=instance["InstanceId"], Attribute="userData"
    )
    import base64

    assert canary in base64.b64decode(attr["UserData"]["Value"]).decode()
    for path in (tmp_path / ".cloudtmpl").rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path
    r = invoke(tmp_path, "outputs", "-s", "app", "--format", "json")
    assert canary not in r.out
    r = invoke(tmp_path, "plan", "app.yaml", "-e", "secrets.yaml", "--detailed-exitcode")
    assert r.code == 0, r.out  # sealed values still compare equal
    assert invoke(tmp_path, "destroy", "app.yaml", "-e", "secrets.yaml", "--yes").code == 0


def test_deletion_policy_retain_keeps_the_resource(tmp_path: Path,
                                                   aws_reset: dict[str, Any]) -> None:
    template = f"""\
heat_template_version: 2021-04-16
placement: {{provider: sandbox-aws, region: {REGION}}}
resources:
  keep:
    type: Cloud::Block::Volume
    deletion_policy: Retain
    properties: {{size: 1}}
  drop:
    type: Cloud::Block::Volume
    properties: {{size: 1}}
"""
    write(tmp_path / "ret.yaml", template)
    assert invoke(tmp_path, "apply", "ret.yaml", "--yes").code == 0
    client = ec2(aws_reset, REGION)

    def volumes() -> set[str]:
        found = client.describe_volumes(Filters=[{"Name": "tag:cloudtmpl:stack",
                                                  "Values": ["ret"]}])["Volumes"]
        return {tags(v)["cloudtmpl:resource"] for v in found}

    assert volumes() == {"keep", "drop"}
    # removed from the template: kept in the cloud, no longer managed
    write(tmp_path / "ret.yaml", f"""\
heat_template_version: 2021-04-16
placement: {{provider: sandbox-aws, region: {REGION}}}
resources:
  other:
    type: Cloud::Block::Volume
    properties: {{size: 1}}
""")
    r = invoke(tmp_path, "plan", "ret.yaml", "--format", "json")
    by = {c["address"]: c for c in r.json()["changes"]}
    assert by["keep"]["action"] == "no-op" and by["keep"]["retain"] is True
    assert by["drop"]["action"] == "delete"
    assert "stays in the cloud" in invoke(tmp_path, "plan", "ret.yaml").out
    assert invoke(tmp_path, "apply", "ret.yaml", "--yes").code == 0
    assert volumes() == {"keep", "other"}
    assert invoke(tmp_path, "plan", "ret.yaml", "--detailed-exitcode").code == 0
    # destroy removes what the stack manages; the retained volume stays, then and later
    assert invoke(tmp_path, "destroy", "ret.yaml", "--yes").code == 0
    assert volumes() == {"keep"}
    assert invoke(tmp_path, "destroy", "-s", "ret", "--yes").code == 0
    assert volumes() == {"keep"}


def test_immutable_parameter_is_refused_on_update(tmp_path: Path,
                                                  aws_reset: dict[str, Any]) -> None:
    write(tmp_path / "imm.yaml", f"""\
heat_template_version: 2021-04-16
parameters:
  size: {{type: number, default: 1, immutable: true}}
placement: {{provider: sandbox-aws, region: {REGION}}}
resources:
  v: {{type: Cloud::Block::Volume, properties: {{size: {{get_param: size}}}}}}
""")
    assert invoke(tmp_path, "plan", "imm.yaml", "-p", "size=2").code == 0  # no stack yet
    assert invoke(tmp_path, "apply", "imm.yaml", "--yes").code == 0
    r = invoke(tmp_path, "plan", "imm.yaml", "-p", "size=2")
    assert r.code == 1 and "immutable-parameter" in r.err and "imm.yaml:3:3" in r.err
    assert invoke(tmp_path, "plan", "imm.yaml", "--detailed-exitcode").code == 0
    assert invoke(tmp_path, "destroy", "imm.yaml", "--yes").code == 0
    assert invoke(tmp_path, "plan", "imm.yaml", "-p", "size=2").code == 0  # a new stack may


@pytest.mark.parametrize("abstract", ["amazon-linux-2023", "ubuntu-20.04"])
def test_quickstart_with_an_abstract_image_plans_and_applies(
        project: Path, aws_reset: dict[str, Any], catalog_amis: dict[tuple[str, str], str],
        abstract: str) -> None:
    """The catalog's filter is resolved in the sandbox: the plan shows the AMI it
    found, the plan file applies that AMI, and the servers run it."""
    ami = catalog_amis[(REGION, abstract)]
    r = invoke(project, "plan", "stack.yaml", "-p", f"image={abstract}", "--out", "p.plan",
               "--format", "json")
    assert r.code == 0, r.err + r.out
    shown = {c["address"]: c for c in r.json()["changes"]}
    assert json.dumps(shown["web1"]).count(ami) >= 1, shown["web1"]
    r = invoke(project, "apply", "p.plan")
    assert r.code == 0, r.err + r.out
    images = {tags(i)["cloudtmpl:resource"]: i["ImageId"]
              for i in stack_instances(aws_reset, REGION, "stack")}
    assert images == {"web1": ami, "web2": ami}
    r = invoke(project, "plan", "stack.yaml", "-p", f"image={abstract}", "--detailed-exitcode")
    assert r.code == 0, r.err + r.out
    assert invoke(project, "destroy", "stack.yaml", "-p", f"image={abstract}", "--yes").code == 0

