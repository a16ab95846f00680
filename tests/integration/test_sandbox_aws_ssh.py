"""EC2 instances of the AWS sandbox that one can SSH into (cloudtmpl_sandbox.aws_hosts).

An instance launched with a key pair is a real sshd on the loopback public
address EC2 reports for it; an elastic IP takes that address over, and stopping,
starting and terminating the instance stop and start its sshd.  Checked with
libcloud's EC2 driver against the sandbox and paramiko against the sshd.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloudtmpl_sandbox import control
from cloudtmpl_sandbox.sshd import sshd_path
from tests.integration.clitools import run, write
from tests.integration.ec2tools import ec2, image, size

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sshd_path() is None, reason="needs openssh-server (scripts/test.sh "
                       "installs it)"),
]


def sshd_servers(info: dict[str, Any]) -> dict[str, Any]:
    status, listed = control.call(info["endpoint"], info["token"], "GET", "/_sandbox/servers")
    assert status == 200, listed
    return dict(listed)


def listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def new_key() -> tuple[ed25519.Ed25519PrivateKey, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return key, public


def ssh_run(host: dict[str, Any], address: str, key: ed25519.Ed25519PrivateKey,
            command: str) -> str:
    """Run ``command`` as the sandbox's login user, the host key checked (RejectPolicy)."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption()).decode()
    pkey = paramiko.Ed25519Key.from_private_key(__import__("io").StringIO(pem))
    client = paramiko.SSHClient()
    kind, blob = host["host_key"].split()[:2]
    name = address if int(host["port"]) == 22 else f"[{address}]:{host['port']}"
    client.get_host_keys().add(name, kind, paramiko.Ed25519Key(data=__import__(
        "base64").b64decode(blob)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(address, int(host["port"]), username=host["user"], pkey=pkey,
                       look_for_keys=False, allow_agent=False, timeout=10)
        _, out, _ = client.exec_command(command, timeout=10)
        return str(out.read().decode())
    finally:
        client.close()


def test_keyed_instance_is_an_sshd_on_its_public_address(
        aws_reset: dict[str, Any], catalog_amis: dict[tuple[str, str], str]) -> None:
    d = ec2(aws_reset)
    key, public = new_key()
    d.import_key_pair_from_string("k", public)
    node = d.create_node(name="app", image=image(d, catalog_amis), size=size(d), ex_keyname="k")
    keyless = d.create_node(name="plain", image=image(d, catalog_amis), size=size(d))
    [listed] = [n for n in d.list_nodes() if n.id == node.id]
    [address] = listed.public_ips
    assert ipaddress.ip_address(address).is_loopback  # what EC2 reports: reachable

    hosts = sshd_servers(aws_reset)
    assert set(hosts) == {node.id}  # the keyless instance has no sshd: no key to let in
    host = hosts[node.id]
    assert host["addresses"] == [address] and host["running"]
    assert ssh_run(host, address, key, 'echo "$SERVER_ID"').strip() == node.id
    other, _ = new_key()  # exactly the instance's key pair is authorised
    with pytest.raises(paramiko.AuthenticationException):
        ssh_run(host, address, other, "true")

    # an elastic IP takes the public address over; the old one stops answering
    eip = d.ex_allocate_address()
    assert ipaddress.ip_address(eip.ip).is_loopback
    assert d.ex_associate_address_with_node(node, eip)
    host = sshd_servers(aws_reset)[node.id]
    assert host["addresses"] == [eip.ip]
    assert ssh_run(host, eip.ip, key, 'echo "$SERVER_ID"').strip() == node.id
    assert not listening(address, int(host["port"]))

    # stopped: no sshd; started again: it answers on the elastic IP, same host key
    assert d.ex_stop_node(node)
    assert not sshd_servers(aws_reset)[node.id]["running"]
    assert not listening(eip.ip, int(host["port"]))
    assert d.ex_start_node(node)
    again = sshd_servers(aws_reset)[node.id]
    assert again["running"] and again["host_key"] == host["host_key"]
    root = Path(again["root"])
    ssh_run(again, eip.ip, key, 'echo hi > "$SERVER_ROOT/mark"')
    assert (root / "mark").read_text() == "hi\n"

    # terminated: gone, and its deletion time is recorded beside its root
    assert d.destroy_node(node) and d.destroy_node(keyless)
    assert node.id not in sshd_servers(aws_reset)
    assert not listening(eip.ip, int(host["port"]))
    assert float((root.parent / "halted").read_text()) > float(
        (root.parent / "booted").read_text())


DEPLOY = """heat_template_version: 2018-08-31
resources:
  key: {type: Cloud::Compute::KeyPair}
  web:
    type: Cloud::Compute::Server
    properties: {image: ubuntu-22.04, flavor: tiny, key_name: {get_resource: key}}
  web_ip:
    type: Cloud::Network::FloatingIP
    properties: {server: {get_resource: web}}
  deploy:
    type: Cloud::Software::Deployment
    depends_on: web_ip
    properties:
      server: {get_resource: web}
      ssh: {key_pair: {get_resource: key}, timeout: 30}
      inputs: {greeting: hello}
      outputs: [message]
      config: |
        #!/bin/sh
        echo "$greeting" > "$SERVER_ROOT/greeting"
        printf '%s from %s' "$greeting" "$SERVER_ID" > "$heat_outputs_path.message"
outputs:
  server: {value: {get_resource: web}}
  message: {value: {get_attr: [deploy, outputs, message]}}
"""


def test_a_deployment_runs_on_an_aws_sandbox_server(tmp_path: Path,
                                                    aws_reset: dict[str, Any]) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "app.yaml", DEPLOY)
    r = run(tmp_path, "apply", "app.yaml", "--target", "sandbox-aws/eu-central-1", "--yes")
    assert r.code == 0, r.err + r.out
    out = run(tmp_path, "outputs", "-s", "app", "--format", "json").json()
    host = sshd_servers(aws_reset)[out["server"]]
    assert out["message"] == f"hello from {out['server']}"
    assert (Path(host["root"]) / "greeting").read_text() == "hello\n"
    assert run(tmp_path, "destroy", "app.yaml", "--target", "sandbox-aws/eu-central-1",
               "--yes").code == 0
    assert out["server"] not in sshd_servers(aws_reset)
