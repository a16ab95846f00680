"""The template's top-level ``ssh:`` defaults and ``ssh.via``, through the real CLI against
sshd-backed OpenStack sandbox servers: the defaults reach the deployment, a change of
only them is recorded without running the script, and ``via`` that a server cannot
satisfy fails naming the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudtmpl_sandbox import control
from cloudtmpl_sandbox.sshd import sshd_path
from tests.integration.clitools import run, write

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sshd_path() is None, reason="needs openssh-server (scripts/test.sh "
                       "installs it)"),
]

TARGET = "sandbox-openstack/de-fra-1"

APP = """\
heat_template_version: 2021-04-16
parameters:
  wait: {type: number, default: 30}
ssh:
  key_pair: app.key
  timeout: {get_param: wait}
  via: floating
resources:
  key: {type: Cloud::Compute::KeyPair}
  web:
    type: Cloud::Compute::Server
    properties: {image: ubuntu-22.04, flavor: tiny, key_name: {get_resource: key}}
  web_ip:
    type: Cloud::Network::FloatingIP
    properties: {server: {get_resource: web}, floating_network: public}
  deploy:
    type: Cloud::Software::Deployment
    depends_on: web_ip
    properties:
      server: {get_resource: web}
      config: |
        #!/bin/sh
        echo "$deploy_action" >> "$SERVER_ROOT/actions"
outputs:
  host: {value: {get_attr: [deploy, host]}}
"""


def servers(info: dict[str, Any]) -> dict[str, Any]:
    status, listed = control.call(info["endpoint"], info["token"], "GET", "/_sandbox/servers")
    assert status == 200, listed
    return dict(listed)


@pytest.fixture
def project(tmp_path: Path, openstack_reset: dict[str, Any]) -> Path:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    return tmp_path


def test_stack_defaults_connect_and_a_change_of_them_does_not_rerun(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    write(project / "app.yaml", APP)
    r = run(project, "apply", "app.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    [(server_id, host)] = servers(openstack_reset).items()
    root = Path(host["root"])
    assert (root / "actions").read_text() == "CREATE\n"
    # via: floating, from the stack's defaults (no address, no ssh on the deployment)
    fip = next(a for a in host["addresses"] if a != host["address"])
    out = run(project, "outputs", "-s", "app", "--format", "json").json()
    assert out["host"].split(":")[0] == fip
    log = project / ".cloudtmpl" / "logs" / "app" / "deploy.log"
    before = log.read_text()

    # only a default changes: an update that records it, and nothing runs
    r = run(project, "plan", "app.yaml", "--target", TARGET, "-p", "wait=60",
            "--format", "json")
    assert r.code == 0, r.err + r.out
    changes = {c["address"]: c for c in r.json()["changes"]}
    assert changes["deploy"]["action"] == "update"
    assert [d["property"] for d in changes["deploy"]["diff"]] == ["ssh"]
    assert changes["deploy"]["reason"] == ("only how to connect changed: recorded, "
                                           "the script does not run")
    r = run(project, "apply", "app.yaml", "--target", TARGET, "-p", "wait=60", "--yes")
    assert r.code == 0, r.err + r.out
    assert (root / "actions").read_text() == "CREATE\n"
    assert log.read_text() == before  # no connection was made
    r = run(project, "plan", "app.yaml", "--target", TARGET, "-p", "wait=60",
            "--detailed-exitcode")
    assert r.code == 0, r.out + r.err  # the new settings were recorded

    # the script changes: it runs again, over the recorded connection settings
    write(project / "app.yaml", APP.replace('"$deploy_action"', '"$deploy_action again"'))
    r = run(project, "apply", "app.yaml", "--target", TARGET, "-p", "wait=60", "--yes")
    assert r.code == 0, r.err + r.out
    assert (root / "actions").read_text() == "CREATE\nUPDATE again\n"
    assert server_id in servers(openstack_reset)
    r = run(project, "destroy", "app.yaml", "--yes")
    assert r.code == 0, r.err + r.out


def test_via_a_server_lacks_fails_naming_the_server(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    text = APP.replace("""  web_ip:
    type: Cloud::Network::FloatingIP
    properties: {server: {get_resource: web}, floating_network: public}
""", "").replace("    depends_on: web_ip\n", "    depends_on: web\n")
    write(project / "bare.yaml", text)
    r = run(project, "apply", "bare.yaml", "--target", TARGET, "--yes")
    assert r.code == 1, r.out
    [server_id] = servers(openstack_reset)
    assert (f"ssh.via is floating, but server {server_id} has no floating address (it has "
            in r.out), r.out
    assert "Traceback" not in r.out + r.err
    r = run(project, "destroy", "bare.yaml", "--yes")
    assert r.code == 0, r.err + r.out


def test_validate_reports_a_bad_via_with_its_location(project: Path) -> None:
    write(project / "bad.yaml", APP.replace("via: floating", "via: floatin"))
    r = run(project, "validate", "bad.yaml", "--format", "json")
    assert r.code == 1
    [d] = r.json()["diagnostics"]
    assert (d["code"], d["file"], d["line"], d["column"]) == ("invalid-value", "bad.yaml", 7, 8)
    assert "did you mean 'floating'?" in d["hint"]
