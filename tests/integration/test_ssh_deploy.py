"""Software deployments over SSH, through the real CLI, against sshd-backed sandbox servers.

Every server the OpenStack sandbox creates with a key pair is a real sshd on its
own loopback address and on each floating IP it has (the sandbox's public network
is loopback too); ``GET /_sandbox/servers`` tells where its ``SERVER_ROOT`` is, so
the tests can see what ran where.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloudtmpl_sandbox import control
from cloudtmpl_sandbox.sshd import sshd_path
from tests.integration.clitools import REPO, invoke, write

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sshd_path() is None, reason="needs openssh-server (scripts/test.sh "
                       "installs it)"),
]

EXAMPLE = REPO / "examples" / "software-config" / "script.yaml"
TARGET = "sandbox-openstack/de-fra-1"


def admin(info: dict[str, Any], path: str, method: str = "GET") -> Any:
    status, answer = control.call(info["endpoint"], info["token"], method, path)
    assert status == 200, answer
    return answer


@pytest.fixture
def project(tmp_path: Path, openstack_reset: dict[str, Any]) -> Path:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    return tmp_path


def server_part(name: str) -> str:
    return f"""
  {name}:
    type: Cloud::Compute::Server
    properties: {{image: ubuntu-22.04, flavor: tiny, key_name: {{get_resource: key}}}}
  {name}_ip:
    type: Cloud::Network::FloatingIP
    properties: {{server: {{get_resource: {name}}}, floating_network: public}}
"""


APP = """heat_template_version: 2018-08-31
parameters:
  greeting: {type: string, default: hello}
  token: {type: string, hidden: true, default: s3cr3t-token}
resources:
  key:
    type: Cloud::Compute::KeyPair
""" + server_part("web") + """
  deploy:
    type: Cloud::Software::Deployment
    properties:
      server: {get_resource: web}
      address: {get_attr: [web_ip, floating_ip_address]}
      ssh: {key_pair: {get_resource: key}, timeout: 30}
      actions: [CREATE, UPDATE, DELETE]
      inputs:
        greeting: {get_param: greeting}
        token: {get_param: token}
      outputs: [message]
      config_files:
        /tmp/ignored-by-test: "a file\\n"
      config: |
        #!/bin/sh
        set -e
        echo "$deploy_action $greeting" >> "$SERVER_ROOT/actions"
        echo "$token" > "$SERVER_ROOT/token"
        printf '%s from %s' "$greeting" "$SERVER_ID" > "$heat_outputs_path.message"
        echo "ran $deploy_action"
        echo "token is $token" >&2
outputs:
  message: {value: {get_attr: [deploy, outputs, message]}}
  stdout: {value: {get_attr: [deploy, deploy_stdout]}}
  code: {value: {get_attr: [deploy, deploy_status_code]}}
  host_key: {value: {get_attr: [deploy, host_key]}}
"""


def hosts(info: dict[str, Any]) -> dict[str, Any]:
    return dict(admin(info, "/_sandbox/servers"))


def floating(host: dict[str, Any]) -> str:
    """The one floating IP of a server (its sshd listens there and on its own address)."""
    own, fip = host["addresses"]
    assert own == host["address"] and fip != own
    return str(fip)


def test_deployment_inputs_outputs_rerun_and_delete(project: Path,
                                                    openstack_reset: dict[str, Any]) -> None:
    write(project / "app.yaml", APP)
    r = invoke(project, "apply", "app.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    [(server_id, host)] = hosts(openstack_reset).items()
    # the output shows in the progress, a line each, prefixed with where it ran
    assert f"progress create deploy: [{floating(host)}:" in r.out
    assert "| ran CREATE" in r.out and "! (sensitive) hmac:" in r.out
    assert "s3cr3t-token" not in r.out
    root = Path(host["root"])
    assert (root / "actions").read_text() == "CREATE hello\n"
    assert (root / "token").read_text() == "s3cr3t-token\n"

    out = invoke(project, "outputs", "-s", "app", "--format", "json").json()
    assert out["message"] == f"hello from {server_id}"
    assert out["stdout"] == "ran CREATE\n" and out["code"] == 0
    assert out["host_key"] == host["host_key_fingerprint"]

    # the hidden token never reaches the state or the log in clear text
    state = (project / ".cloudtmpl" / "state.db").read_bytes()
    assert b"s3cr3t-token" not in state
    log = (project / ".cloudtmpl" / "logs" / "app" / "deploy.log").read_text()
    assert "CREATE on server" in log and "s3cr3t-token" not in log and "******" in log
    assert oct((project / ".cloudtmpl" / "logs" / "app" / "deploy.log").stat().st_mode)[-3:] \
        == "600"

    # nothing changed: no-op, and nothing runs again
    r = invoke(project, "plan", "app.yaml", "--target", TARGET, "--detailed-exitcode")
    assert r.code == 0, r.out + r.err
    r = invoke(project, "apply", "app.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    assert (root / "actions").read_text() == "CREATE hello\n"

    # an input changes: the deployment is updated in place and re-runs
    r = invoke(project, "plan", "app.yaml", "--target", TARGET, "-p", "greeting=hi",
               "--format", "json")
    actions = {c["address"]: c["action"] for c in r.json()["changes"]}
    assert actions["deploy"] == "update" and actions["web"] == "no-op"
    r = invoke(project, "apply", "app.yaml", "--target", TARGET, "-p", "greeting=hi", "--yes")
    assert r.code == 0, r.err + r.out
    assert (root / "actions").read_text() == "CREATE hello\nUPDATE hi\n"
    assert invoke(project, "outputs", "-s", "app", "--format", "json").json()["message"] \
        == f"hi from {server_id}"

    # destroy runs the DELETE action before the server goes
    r = invoke(project, "destroy", "app.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert (root / "actions").read_text() == "CREATE hello\nUPDATE hi\nDELETE hi\n"
    assert hosts(openstack_reset) == {}


def test_failing_script_fails_with_stderr_and_skips_dependents(project: Path) -> None:
    text = APP.replace('echo "token is $token" >&2', 'echo "broken: $greeting" >&2; exit 3')
    text = text.replace("outputs:\n  message:", """  after:
    type: Cloud::Local::Value
    properties: {value: {get_attr: [deploy, deploy_status_code]}}
outputs:
  message:""")
    write(project / "bad.yaml", text)
    r = invoke(project, "apply", "bad.yaml", "--target", TARGET, "--yes")
    assert r.code == 1, r.out
    assert "exited with status 3" in r.out + r.err and "broken: hello" in r.out + r.err
    assert "after" in r.out and "skipped" in r.out
    r = invoke(project, "destroy", "bad.yaml", "--yes")
    assert r.code == 0, r.err + r.out


def test_host_key_change_is_refused(project: Path, openstack_reset: dict[str, Any]) -> None:
    write(project / "app.yaml", APP)
    r = invoke(project, "apply", "app.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    [(server_id, host)] = hosts(openstack_reset).items()
    # the output shows in the progress, a line each, prefixed with where it ran
    assert f"progress create deploy: [{floating(host)}:" in r.out
    assert "| ran CREATE" in r.out and "! (sensitive) hmac:" in r.out
    assert "s3cr3t-token" not in r.out
    new = admin(openstack_reset, f"/_sandbox/servers/{server_id}/rekey", "POST")
    assert new["host_key_fingerprint"] != host["host_key_fingerprint"]

    r = invoke(project, "apply", "app.yaml", "--target", TARGET, "-p", "greeting=again", "--yes")
    assert r.code == 1
    assert "host key" in r.out and server_id in r.out
    assert host["host_key_fingerprint"] in r.out and new["host_key_fingerprint"] in r.out
    assert "UPDATE" not in (Path(host["root"]) / "actions").read_text()
    # the recorded key is still the first one
    with sqlite3.connect(project / ".cloudtmpl" / "state.db") as db:
        [(attrs,)] = db.execute("SELECT attributes FROM resources WHERE address = 'deploy'")
    assert json.loads(attrs)["host_key"] == host["host_key_fingerprint"]
    # its DELETE action is refused too (and so the server is kept); the next test's
    # sandbox reset removes it
    r = invoke(project, "destroy", "app.yaml", "--yes")
    assert r.code == 1 and "host key of" in r.out and "skipped delete web" in r.out


def test_unreachable_host_times_out_with_a_diagnostic(project: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    fd = os.open(project / "id_test", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    write(project / "lost.yaml", """heat_template_version: 2018-08-31
resources:
  deploy:
    type: Cloud::Software::Deployment
    properties:
      address: 127.254.254.254
      ssh: {key_file: id_test, port: 2222, timeout: 3}
      config: "echo never"
""")
    started = time.monotonic()
    r = invoke(project, "apply", "lost.yaml", "--yes")
    took = time.monotonic() - started
    assert r.code == 1
    assert "127.254.254.254:2222 did not accept SSH connections within 3s" in r.out, r.out
    assert "attempts" in r.out and took < 30
    r = invoke(project, "destroy", "lost.yaml", "--yes")
    assert r.code == 0


def test_heat_software_config_example_runs_unchanged(project: Path,
                                                     openstack_reset: dict[str, Any]) -> None:
    write(project / "script.yaml", EXAMPLE.read_text())
    r = invoke(project, "apply", "script.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    [(server_id, host)] = hosts(openstack_reset).items()
    out = invoke(project, "outputs", "-s", "script", "--format", "json").json()
    assert out["address"] == floating(host)
    assert out["status_code"] == 0
    assert out["result"] == (f"The file {host['root']}/baaaaa contains fooooo for server "
                             f"{server_id} during CREATE")
    assert "Output to stderr" in out["stderr"]
    assert (Path(host["root"]) / "baaaaa").read_text() == "fooooo\n"
    r = invoke(project, "plan", "script.yaml", "--target", TARGET, "--detailed-exitcode")
    assert r.code == 0, r.out + r.err
    r = invoke(project, "destroy", "script.yaml", "--yes")
    assert r.code == 0, r.err + r.out


def test_a_script_on_twenty_servers_in_parallel(project: Path,
                                                openstack_reset: dict[str, Any]) -> None:
    n = 20
    parts = ["heat_template_version: 2018-08-31\nparameters:\n  tag: {type: string, "
             "default: one}\nresources:\n  key:\n"
             "    type: Cloud::Compute::KeyPair\n"]
    for i in range(n):
        parts.append(server_part(f"s{i}"))
        parts.append(f"""
  d{i}:
    type: Cloud::Software::Deployment
    properties:
      server: {{get_resource: s{i}}}
      address: {{get_attr: [s{i}_ip, floating_ip_address]}}
      ssh: {{key_pair: {{get_resource: key}}}}
      inputs: {{index: "{i}", tag: {{get_param: tag}}}}
      config: |
        echo "server $index" > "$SERVER_ROOT/index"; echo "$tag" > "$SERVER_ROOT/tag"
""")
    write(project / "fleet.yaml", "".join(parts))
    started = time.monotonic()
    r = invoke(project, "apply", "fleet.yaml", "--target", TARGET, "--yes", "--parallelism", "10")
    total = time.monotonic() - started
    assert r.code == 0, r.err + r.out
    found = hosts(openstack_reset)
    assert len(found) == n
    assert sorted((Path(h["root"]) / "index").read_text() for h in found.values()) == sorted(
        f"server {i}\n" for i in range(n))
    seconds = [float(line.rsplit("(", 1)[1].rstrip("s)"))
               for line in r.out.splitlines() if "done create d" in line]
    print(f"\n20 servers + 20 floating IPs + 20 deployments, --parallelism 10: "
          f"apply {total:.2f}s wall; deployments {min(seconds):.2f}-{max(seconds):.2f}s each")
    # only the 20 deployments change: a re-run of the script everywhere
    started = time.monotonic()
    r = invoke(project, "apply", "fleet.yaml", "--target", TARGET, "--yes", "--parallelism", "10",
               "-p", "tag=two")
    rerun = time.monotonic() - started
    assert r.code == 0, r.err + r.out
    assert "20 to update, 0 to replace, 0 to delete, 41 unchanged" in r.out
    assert {(Path(h["root"]) / "tag").read_text() for h in found.values()} == {"two\n"}
    print(f"re-running the script on 20 servers (update only), --parallelism 10: "
          f"{rerun:.2f}s wall for the whole `cloudtmpl apply`")
    r = invoke(project, "destroy", "fleet.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert hosts(openstack_reset) == {}

