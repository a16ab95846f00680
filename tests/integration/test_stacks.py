"""Stacks that cannot clobber each other, and stack names: the real CLI on the sandboxes.

A stack records the template file it was applied from; another file applied onto it
that would delete resources is refused (stack-template-changed) unless
--replace-template, a renamed or moved template applies as before, and a template
stem that is not a stack name (Heat's ``WordPress_Native.yaml``) gets a valid one.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clitools import (
    REPO,
    cli_args,
    cli_env,
    ec2,
    invoke,
    stack_instances,
    tags,
    write,
)
from tests.integration.sandbox_admin import configure, servers

REGION = "eu-central-1"

WEB = f"""\
heat_template_version: 2021-04-16
placement: {{provider: sandbox-aws, region: {REGION}}}
resources:
  sg: {{type: Cloud::Network::SecurityGroup, properties: {{description: shared group}}}}
  data: {{type: Cloud::Block::Volume, properties: {{size: 1}}}}
  logs: {{type: Cloud::Block::Volume, properties: {{size: 2}}}}
"""
DB = f"""\
heat_template_version: 2021-04-16
placement: {{provider: sandbox-aws, region: {REGION}}}
resources:
  sg: {{type: Cloud::Network::SecurityGroup, properties: {{description: shared group}}}}
  db_data: {{type: Cloud::Block::Volume, properties: {{size: 3}}}}
"""


@pytest.fixture
def project(tmp_path: Path, aws_reset: dict[str, Any]) -> Path:
    """A project with two unrelated templates, web.yaml applied as stack ``shared``."""
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "web.yaml", WEB)
    write(tmp_path / "db.yaml", DB)
    r = invoke(tmp_path, "apply", "web.yaml", "-s", "shared", "--yes")
    assert r.code == 0, r.err + r.out
    return tmp_path


def volumes(sandbox: dict[str, Any], stack: str) -> dict[str, str]:
    """The stack's volumes in the cloud: address -> volume id."""
    found = ec2(sandbox, REGION).describe_volumes(
        Filters=[{"Name": "tag:cloudtmpl:stack", "Values": [stack]}])["Volumes"]
    return {tags(v)["cloudtmpl:resource"]: v["VolumeId"] for v in found}


def recorded_template(project: Path, stack: str) -> str | None:
    r = invoke(project, "state", "show", stack, "--format", "json")
    assert r.code == 0, r.err
    template: str | None = r.json()["template"]
    return template


def assert_refused(r: Any, recorded: str, new: str, deleted: list[str]) -> None:
    assert r.code == 1, r.err + r.out
    assert "stack-template-changed" in r.err, r.err
    text = " ".join(r.err.split())  # the console wraps long lines
    assert f"stack 'shared' was applied from {recorded}; {new} is another template" in text
    assert f"would delete {len(deleted)} resources it does not have: {', '.join(deleted)}" \
        in text, text
    assert "--replace-template" in text and "-s NAME" in text
    assert "Traceback" not in r.err


def test_another_template_onto_a_stack_is_refused_and_changes_nothing(
        project: Path, aws_reset: dict[str, Any]) -> None:
    before = volumes(aws_reset, "shared")
    assert sorted(before) == ["data", "logs"]
    assert recorded_template(project, "shared") == "web.yaml"

    assert_refused(invoke(project, "plan", "db.yaml", "-s", "shared"),
                   "web.yaml", "db.yaml", ["data", "logs"])
    r = invoke(project, "plan", "db.yaml", "-s", "shared", "--format", "json",
               "--detailed-exitcode")
    assert r.code == 1
    assert [d["code"] for d in r.json()["diagnostics"]] == ["stack-template-changed"]
    assert r.json()["diagnostics"][0]["file"] == "db.yaml"
    r = invoke(project, "plan", "db.yaml", "-s", "shared", "--out", "plan.json")
    assert r.code == 1 and not (project / "plan.json").exists()
    assert_refused(invoke(project, "apply", "db.yaml", "-s", "shared", "--yes"),
                   "web.yaml", "db.yaml", ["data", "logs"])

    assert volumes(aws_reset, "shared") == before  # nothing created, nothing deleted
    assert recorded_template(project, "shared") == "web.yaml"
    r = invoke(project, "plan", "web.yaml", "-s", "shared", "--detailed-exitcode")
    assert r.code == 0, r.err + r.out


def test_replace_template_on_apply(project: Path, aws_reset: dict[str, Any]) -> None:
    r = invoke(project, "apply", "db.yaml", "-s", "shared", "--replace-template", "--yes")
    assert r.code == 0, r.err + r.out
    assert sorted(volumes(aws_reset, "shared")) == ["db_data"]
    assert recorded_template(project, "shared") == "db.yaml"
    # now db.yaml is the stack's template: web.yaml is the other one
    r = invoke(project, "apply", "web.yaml", "-s", "shared", "--yes")
    assert r.code == 1 and "applied from db.yaml; web.yaml is another template" in \
        " ".join(r.err.split()) and "db_data" in r.err, r.err
    assert sorted(volumes(aws_reset, "shared")) == ["db_data"]


def test_replace_template_through_a_saved_plan(project: Path,
                                               aws_reset: dict[str, Any]) -> None:
    r = invoke(project, "plan", "db.yaml", "-s", "shared", "--replace-template",
               "--out", "plan.json", "--format", "json")
    assert r.code == 0, r.err + r.out
    plan = r.json()
    assert plan["replace_template"] is True and plan["stack_template"] == "db.yaml"
    assert {c["address"]: c["action"] for c in plan["changes"]} == {
        "sg": "no-op", "db_data": "create", "data": "delete", "logs": "delete"}
    r = invoke(project, "apply", "plan.json")
    assert r.code == 0, r.err + r.out
    assert sorted(volumes(aws_reset, "shared")) == ["db_data"]
    assert recorded_template(project, "shared") == "db.yaml"


def test_renamed_or_moved_template_applies_and_records_its_new_path(
        project: Path, aws_reset: dict[str, Any]) -> None:
    before = volumes(aws_reset, "shared")
    (project / "infra").mkdir()
    (project / "web.yaml").rename(project / "infra" / "web-tier.yaml")  # git mv
    r = invoke(project, "plan", "infra/web-tier.yaml", "-s", "shared", "--detailed-exitcode")
    assert r.code == 0 and "No changes" in r.out, r.err + r.out
    r = invoke(project, "apply", "infra/web-tier.yaml", "-s", "shared", "--yes")
    assert r.code == 0, r.err + r.out
    assert recorded_template(project, "shared") == "infra/web-tier.yaml"
    # the path is relative to the project directory, wherever the command runs
    r = invoke(project / "infra", "plan", "web-tier.yaml", "-s", "shared", "--detailed-exitcode")
    assert r.code == 0, r.err + r.out
    assert volumes(aws_reset, "shared") == before
    # and the old name is now "another template" for the stack
    write(project / "web.yaml", DB)
    r = invoke(project / "infra", "plan", "../web.yaml", "-s", "shared")
    assert r.code == 1 and "applied from infra/web-tier.yaml; web.yaml is another" in \
        " ".join(r.err.split()), r.err


def test_a_stack_recorded_before_templates_were_is_not_refused(
        project: Path, aws_reset: dict[str, Any]) -> None:
    with sqlite3.connect(project / ".cloudtmpl" / "state.db") as db:  # as schema 2 left it
        db.execute("UPDATE stacks SET template = NULL")
    assert recorded_template(project, "shared") is None
    r = invoke(project, "plan", "db.yaml", "-s", "shared", "--format", "json")
    assert r.code == 0, r.err
    assert r.json()["summary"]["delete"] == 2
    r = invoke(project, "apply", "db.yaml", "-s", "shared", "--yes")
    assert r.code == 0, r.err + r.out
    assert recorded_template(project, "shared") == "db.yaml"


def test_destroy_is_not_checked_and_forgets_the_template(
        project: Path, aws_reset: dict[str, Any]) -> None:
    r = invoke(project, "destroy", "db.yaml", "-s", "shared", "--yes")
    assert r.code == 0, r.err + r.out
    assert volumes(aws_reset, "shared") == {}
    # a destroyed stack has no template: any file may start it anew
    r = invoke(project, "apply", "db.yaml", "-s", "shared", "--yes")
    assert r.code == 0, r.err + r.out
    assert recorded_template(project, "shared") == "db.yaml"
    assert invoke(project, "destroy", "-s", "shared", "--yes").code == 0


def test_a_killed_first_apply_ties_the_stack_to_its_template(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    configure(openstack_reset, build_seconds=1.5)
    body = "".join(f"  s{i}:\n    type: OS::Nova::Server\n"
                   f"    properties: {{image: cirros-0.6, flavor: m1.tiny}}\n" for i in range(3))
    head = ("heat_template_version: 2021-04-16\n"
            "placement: {provider: sandbox-openstack, region: de-fra-1}\nresources:\n")
    write(tmp_path / "slow.yaml", head + body)
    write(tmp_path / "other.yaml", head + "  other:\n    type: OS::Nova::Server\n"
          "    properties: {image: cirros-0.6, flavor: m1.tiny}\n")
    proc = subprocess.Popen(cli_args("apply", "slow.yaml", "--yes", "--parallelism", "1"),
                            cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not servers(openstack_reset, "slow"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    configure(openstack_reset, build_seconds=0.05)
    assert recorded_template(tmp_path, "slow") == "slow.yaml"
    r = invoke(tmp_path, "plan", "other.yaml", "-s", "slow")
    assert r.code == 1 and "stack-template-changed" in r.err, r.err + r.out
    text = " ".join(r.err.split())
    assert "applied from slow.yaml; other.yaml is another template" in text
    assert "it does not have: s0" in text, text
    assert invoke(tmp_path, "destroy", "slow.yaml", "--yes").code == 0
    assert servers(openstack_reset, "slow") == []


# --------------------------------------------------------------------------- stack names

HEAT_TEMPLATE = REPO / "tests" / "corpus" / "server_with_volume.yaml"
HEAT_ENV = REPO / "tests" / "corpus" / "server_with_volume.env.yaml"  # the hidden password


def test_validate_a_heat_named_template_from_its_directory(tmp_path: Path) -> None:
    shutil.copy(HEAT_TEMPLATE, tmp_path / "WordPress_Native.yaml")
    r = invoke(tmp_path, "validate", "WordPress_Native.yaml")
    assert r.code == 0, r.err + r.out
    assert "WordPress_Native.yaml: valid (4 resources, 4 outputs)" in r.out
    assert invoke(tmp_path, "validate", "WordPress_Native.yaml", "-s", "wp").code == 0
    r = invoke(tmp_path, "validate", "WordPress_Native.yaml", "--stack", "WordPress.Native",
               "--format", "json")
    assert r.code == 1
    (diag,) = r.json()["diagnostics"]
    assert diag["code"] == "invalid-stack-name" and "'WordPress.Native'" in diag["message"]
    assert diag["hint"] == "pass -s wordpress-native"
    # a bad -s and a bad template: both reported in one run
    text = HEAT_TEMPLATE.read_text().replace("type: OS::Cinder::Volume", "type: OS::Nope", 1)
    write(tmp_path / "Broken.yaml", text)
    r = invoke(tmp_path, "validate", "Broken.yaml", "-s", "-x", "--format", "json")
    assert r.code == 1
    codes = [d["code"] for d in r.json()["diagnostics"]]
    assert codes[0] == "invalid-stack-name" and len(codes) >= 2, codes


def test_a_derived_stack_name_is_used_by_plan_apply_and_destroy(
        tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    shutil.copy(HEAT_TEMPLATE, tmp_path / "WordPress_Native.yaml")
    target = ("--target", f"sandbox-aws/{REGION}", "-e", str(HEAT_ENV))
    r = invoke(tmp_path, "plan", "WordPress_Native.yaml", *target)
    assert r.code == 0, r.err + r.out
    assert r.out.splitlines()[0].startswith("Stack wordpress_native: ")
    r = invoke(tmp_path, "plan", "WordPress_Native.yaml", *target, "--format", "json")
    assert r.json()["stack"] == "wordpress_native"
    r = invoke(tmp_path, "plan", "WordPress_Native.yaml", *target, "-s", "WordPress")
    assert r.code == 1 and "invalid-stack-name" in r.err and "pass -s wordpress" in r.err

    r = invoke(tmp_path, "apply", "WordPress_Native.yaml", *target, "--yes")
    assert r.code == 0, r.err + r.out
    (server,) = stack_instances(aws_reset, REGION, "wordpress_native")
    assert tags(server)["Name"] == "wordpress_native.db_server"
    assert sorted(volumes(aws_reset, "wordpress_native")) == ["db_volume"]
    assert recorded_template(tmp_path, "wordpress_native") == "WordPress_Native.yaml"
    r = invoke(tmp_path, "destroy", "WordPress_Native.yaml", *target, "--yes")
    assert r.code == 0, r.err + r.out
    assert stack_instances(aws_reset, REGION, "wordpress_native") == []
