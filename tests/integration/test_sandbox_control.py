"""The sandbox's control endpoints need its token; liveness is the endpoint answering.

Every ``/_sandbox/*`` path of both clouds (and the AWS sandbox's ``/moto-api/*``)
answers 401 without the token, 403 with another one and 200 with the one that
``cloudtmpl sandbox status`` prints.  A ``sandbox start`` from another pid
namespace (``unshare -pf --mount-proc``) reuses the running sandbox instead of
replacing its records, and ``sandbox stop`` from there stops it through its endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cloudtmpl_sandbox import control, manager
from tests.integration.clitools import cli_args, cli_env, run

pytestmark = pytest.mark.integration

AWS_PATHS = [
    ("GET", "/_sandbox/info", None), ("GET", "/_sandbox/requests", None),
    ("GET", "/_sandbox/faults", None), ("GET", "/_sandbox/config", None),
    ("GET", "/_sandbox/access-keys", None), ("GET", "/_sandbox/servers", None),
    ("POST", "/_sandbox/config", {}), ("POST", "/_sandbox/config/reset", None),
    ("POST", "/_sandbox/requests/reset", None), ("POST", "/moto-api/reset", None),
    ("GET", "/moto-api/data.json", None),
]
OPENSTACK_PATHS = [
    ("GET", "/_sandbox/info", None), ("GET", "/_sandbox/requests", None),
    ("GET", "/_sandbox/config", None), ("GET", "/_sandbox/servers", None),
    ("POST", "/_sandbox/config", {}), ("POST", "/_sandbox/requests/reset", None),
    ("POST", "/_sandbox/reset", None),
]


def _refused(info: dict[str, Any], method: str, path: str, body: Any) -> None:
    status, answer = control.call(info["endpoint"], None, method, path, body)
    assert status == 401, (path, status, answer)
    assert "X-Sandbox-Token" in answer["error"], answer
    status, answer = control.call(info["endpoint"], "not-" + info["token"], method, path, body)
    assert status == 403 and "wrong sandbox token" in answer["error"], (path, answer)


@pytest.mark.parametrize(("method", "path", "body"), AWS_PATHS)
def test_aws_control_paths_need_the_token(aws_reset: dict[str, Any], method: str, path: str,
                                          body: Any) -> None:
    _refused(aws_reset, method, path, body)
    status, answer = control.call(aws_reset["endpoint"], aws_reset["token"], method, path, body)
    assert status == 200, (path, answer)


@pytest.mark.parametrize(("method", "path", "body"), OPENSTACK_PATHS)
def test_openstack_control_paths_need_the_token(openstack_reset: dict[str, Any], method: str,
                                                path: str, body: Any) -> None:
    _refused(openstack_reset, method, path, body)
    status, answer = control.call(openstack_reset["endpoint"], openstack_reset["token"], method,
                                  path, body)
    assert status == 200, (path, answer)


@pytest.mark.parametrize("cloud", ["aws", "openstack"])
def test_server_actions_and_shutdown_need_the_token(sandboxes: dict[str, Any],
                                                    cloud: str) -> None:
    info = sandboxes[cloud]
    for action in ("rekey", "stop", "start"):  # sshd-backed servers (cloudtmpl_sandbox.sshd)
        path = f"/_sandbox/servers/no-such-server/{action}"
        _refused(info, "POST", path, None)
        status, answer = control.call(info["endpoint"], info["token"], "POST", path)
        assert status == 404 and "no-such-server" in answer["error"]
    _refused(info, "POST", "/_sandbox/shutdown", None)  # and the sandbox still runs:
    assert control.call(info["endpoint"], info["token"], "GET", "/_sandbox/info")[0] == 200
    # a 401 names the way to authenticate, as HTTP wants
    req = urllib.request.Request(info["endpoint"] + "/_sandbox/info")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 401
    assert "X-Sandbox-Token" in err.value.headers["WWW-Authenticate"]


def test_status_prints_the_token_and_only_its_owner_can_read_it(
        sandboxes: dict[str, Any], tmp_path: Path) -> None:
    r = run(tmp_path, "sandbox", "status")
    assert r.code == 0, r.err
    for cloud in ("aws", "openstack"):
        token = sandboxes[cloud]["token"]
        assert f"sandbox-{cloud}: running at {sandboxes[cloud]['endpoint']}" in r.out
        assert f"token {token})" in r.out
    status = run(tmp_path, "sandbox", "status", "--format", "json").json()
    for cloud in ("aws", "openstack"):
        info = status[cloud]
        assert info["token"] == sandboxes[cloud]["token"]
        assert control.call(info["endpoint"], info["token"], "GET", "/_sandbox/info")[0] == 200
        # the token is never in the server's argv (other users can read argv)
        cmdline = Path(f"/proc/{info['pid']}/cmdline").read_bytes()
        assert info["token"].encode() not in cmdline
    directory = manager.sandbox_dir()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for cloud in ("aws", "openstack"):
        record = directory / f"{cloud}.json"
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert json.loads(record.read_text())["token"] == sandboxes[cloud]["token"]


def _process_running(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _in_new_pid_namespace(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "-pf", "--mount-proc", *cli_args(*args)],
                          env=cli_env(env), capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)


@pytest.mark.skipif(shutil.which("unshare") is None,
                    reason="needs unshare (util-linux) to make a pid namespace")
@pytest.mark.skipif(os.geteuid() != 0, reason="unshare -p needs root")
def test_start_and_stop_from_another_pid_namespace(tmp_path: Path) -> None:
    directory = tmp_path / "sandbox"
    env = {"CLOUDTMPL_SANDBOX_DIR": str(directory)}
    outer = manager.start(directory)
    records = {c: json.loads((directory / f"{c}.json").read_text()) for c in ("aws", "openstack")}
    pids = [outer[c]["pid"] for c in ("aws", "openstack")]
    try:
        probe = subprocess.run(["unshare", "-pf", "--mount-proc", "sh", "-c",
                                f"kill -0 {pids[0]} 2>/dev/null && echo seen || echo unseen"],
                               capture_output=True, text=True, timeout=30)
        assert probe.stdout.strip() == "unseen", "the namespace must hide the sandbox's pid"

        r = _in_new_pid_namespace("sandbox", "start", "--format", "json", env=env)
        assert r.returncode == 0, r.stderr
        inner = json.loads(r.stdout)
        for cloud in ("aws", "openstack"):
            # reused, not replaced: same server, same records
            assert inner[cloud]["running"] is True
            assert inner[cloud]["pid"] == outer[cloud]["pid"]
            assert inner[cloud]["endpoint"] == outer[cloud]["endpoint"]
            assert inner[cloud]["token"] == outer[cloud]["token"]
            assert json.loads((directory / f"{cloud}.json").read_text()) == records[cloud]
        assert all(_process_running(pid) for pid in pids)
        status = manager.status(directory)
        assert [status[c]["pid"] for c in ("aws", "openstack")] == pids

        r = _in_new_pid_namespace("sandbox", "stop", env=env)
        assert r.returncode == 0 and r.stdout.strip() == "sandbox stopped", r.stdout + r.stderr
        deadline = time.monotonic() + 20
        while any(_process_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_process_running(pid) for pid in pids), "stop did not stop the sandbox"
        for cloud in ("aws", "openstack"):
            assert not (directory / f"{cloud}.json").exists()
            with pytest.raises(OSError):
                control.call(outer[cloud]["endpoint"], outer[cloud]["token"], "GET",
                             "/_sandbox/info", timeout=2)
        assert manager.status(directory)["aws"]["running"] is False
    finally:
        manager.stop(directory)
        for pid in pids:
            _reap(pid)
