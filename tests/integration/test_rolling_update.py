"""Rolling replacement of a group, gated by health checks, on sshd-backed sandbox servers."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cloudtmpl_sandbox import control
from cloudtmpl_sandbox.sshd import sshd_path
from tests.integration.clitools import invoke, write

pytestmark = pytest.mark.skipif(sshd_path() is None, reason="needs openssh-server "
                                "(scripts/test.sh installs it)")

TEMPLATE = """\
heat_template_version: 2021-04-16
parameters:
  image: {type: string, default: ubuntu-22.04}
  port: {type: number, default: 22}
placement: {provider: sandbox-openstack, region: de-fra-1}
resources:
  key: {type: Cloud::Compute::KeyPair}
  pool:
    type: OS::Heat::ResourceGroup
    update_policy:
      rolling_update:
        max_batch_size: 2
        min_in_service: 4
        health_check: {tcp: {get_param: port}, timeout: 20}
    properties:
      count: 6
      resource_def:
        type: OS::Nova::Server
        properties: {image: {get_param: image}, flavor: m1.tiny,
                     key_name: {get_resource: key}}
"""


def sshd_servers(sandbox: dict[str, Any]) -> dict[str, Any]:
    status, listed = control.call(sandbox["endpoint"], sandbox["token"], "GET", "/_sandbox/servers")
    assert status == 200, listed
    return dict(listed)


def healthy(sandbox: dict[str, Any]) -> int:
    count = 0
    for info in sshd_servers(sandbox).values():
        try:
            with socket.create_connection((info["address"], int(info["port"])), timeout=0.5):
                count += 1
        except OSError:
            pass
    return count


class Checker(threading.Thread):
    """Counts healthy pool members over and over while a roll runs."""

    def __init__(self, sandbox: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.sandbox = sandbox
        self.counts: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.counts.append(healthy(self.sandbox))
            time.sleep(0.02)


def test_rolling_update_keeps_enough_members_in_service(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    write(tmp_path / "pool.yaml", TEMPLATE)
    assert invoke(tmp_path, "apply", "pool.yaml", "--yes").code == 0
    before = set(sshd_servers(openstack_reset))
    assert len(before) == 6 and healthy(openstack_reset) == 6
    checker = Checker(openstack_reset)
    checker.start()
    try:
        r = invoke(tmp_path, "apply", "pool.yaml", "-p", "image=debian-12", "--yes")
    finally:
        checker.done.set()
        checker.join()
    assert r.code == 0, r.out + r.err
    assert r.out.count("done health pause:pool:rolling_update:") == 2  # two gates passed
    assert len(checker.counts) > 10
    assert min(checker.counts) >= 4, checker.counts  # never fewer than min_in_service
    after = set(sshd_servers(openstack_reset))
    assert len(after) == 6 and not before & after  # every member replaced


def test_a_script_health_check_runs_on_each_new_member(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    write(tmp_path / "pool.yaml", TEMPLATE.replace(
        "health_check: {tcp: {get_param: port}, timeout: 20}",
        "health_check: {script: 'test -d \"$SERVER_ROOT\"', timeout: 30, "
        "ssh: {key_pair: pool.key}}"))
    assert invoke(tmp_path, "apply", "pool.yaml", "--yes").code == 0
    r = invoke(tmp_path, "apply", "pool.yaml", "-p", "image=debian-12", "--yes")
    assert r.code == 0, r.out + r.err
    assert r.out.count("done health pause:pool:rolling_update:") == 2
    logs = list((tmp_path / ".cloudtmpl" / "logs" / "pool").glob("pool.*.health.log"))
    assert len(logs) == 4  # the members of the first two batches were checked


def test_a_failing_health_check_stops_the_roll(tmp_path: Path,
                                               openstack_reset: dict[str, Any]) -> None:
    write(tmp_path / "pool.yaml", TEMPLATE)
    assert invoke(tmp_path, "apply", "pool.yaml", "--yes").code == 0
    before = set(sshd_servers(openstack_reset))
    r = invoke(tmp_path, "apply", "pool.yaml", "-p", "image=debian-12", "-p", "port=9", "--yes")
    assert r.code == 1
    assert "did not pass its health check tcp:9" in r.out
    after = set(sshd_servers(openstack_reset))
    assert len(before & after) == 4  # the first batch was replaced; the rest untouched
