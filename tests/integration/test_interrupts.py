"""Ctrl-C / SIGTERM during apply, and per-resource timeouts, against the OpenStack sandbox."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clitools import cli_args, cli_env, run, write
from tests.integration.sandbox_admin import configure, servers

SERVERS = 6






@pytest.fixture
def slow(tmp_path: Path, openstack_reset: dict[str, Any]) -> Path:
    configure(openstack_reset, build_seconds=1.5)
    body = "".join(f"  s{i}:\n    type: OS::Nova::Server\n"
                   f"    properties: {{image: cirros-0.6, flavor: m1.tiny}}\n"
                   for i in range(SERVERS))
    write(tmp_path / "slow.yaml", "heat_template_version: 2021-04-16\n"
          "placement: {provider: sandbox-openstack, region: de-fra-1}\nresources:\n" + body)
    return tmp_path


def start(project: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(cli_args("apply", "slow.yaml", "--yes", "--parallelism", "2"),
                            cwd=project, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def wait_for_servers(sandbox: dict[str, Any], n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while len(servers(sandbox, "slow")) < n:
        assert proc.poll() is None, "apply ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_first_interrupt_finishes_running_steps_and_releases_the_lock(
        slow: Path, openstack_reset: dict[str, Any]) -> None:
    proc = start(slow)
    wait_for_servers(openstack_reset, 1, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert "stopping: no new steps start" in err
    assert "interrupted before it started" in out
    started = len(servers(openstack_reset, "slow"))
    assert 1 <= started < SERVERS
    assert all(n.state == "running" for n in servers(openstack_reset, "slow"))  # finished
    show = run(slow, "show", "-s", "slow", "--format", "json").json()
    assert len(show["resources"]) == started  # every finished step was recorded
    # the lock is free and the next apply converges: no duplicates
    configure(openstack_reset, build_seconds=0.05)
    r = run(slow, "apply", "slow.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    names = sorted(n.extra["metadata"]["cloudtmpl:resource"]
                   for n in servers(openstack_reset, "slow"))
    assert names == [f"s{i}" for i in range(SERVERS)]


def test_second_interrupt_aborts_at_once_and_the_next_run_adopts(
        slow: Path, openstack_reset: dict[str, Any]) -> None:
    configure(openstack_reset, build_seconds=5)
    proc = start(slow)
    wait_for_servers(openstack_reset, 1, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert time.monotonic() - began < 4  # did not wait for the 5 s builds
    assert "aborted while in flight" in out
    configure(openstack_reset, build_seconds=0.05)
    r = run(slow, "apply", "slow.yaml", "--yes")
    assert r.code == 0, r.err + r.out  # lock released; in-flight servers adopted
    names = sorted(n.extra["metadata"]["cloudtmpl:resource"]
                   for n in servers(openstack_reset, "slow"))
    assert names == [f"s{i}" for i in range(SERVERS)]


def test_a_resource_timeout_reports_the_live_status(tmp_path: Path,
                                                    openstack_reset: dict[str, Any]) -> None:
    configure(openstack_reset, build_seconds=30)
    write(tmp_path / "t.yaml", """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-openstack, region: de-fra-1}
resources:
  slowpoke:
    type: OS::Nova::Server
    timeouts: {create: 1}
    properties: {image: cirros-0.6, flavor: m1.tiny}
""")
    began = time.monotonic()
    r = run(tmp_path, "apply", "t.yaml", "--yes")
    assert r.code == 1
    assert time.monotonic() - began < 20
    assert "failed create slowpoke" in r.out and "BUILD" in r.out
    configure(openstack_reset, build_seconds=0.05)
    r = run(tmp_path, "apply", "t.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert len(servers(openstack_reset, "t")) == 1  # the slow one was adopted, not duplicated
