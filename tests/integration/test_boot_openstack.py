"""OpenStack emulator servers boot as cloud-init would, proved with the real ``openstack`` CLI.

Each server is created with ``openstack server create --user-data FILE --wait``; what
its user data did is read from the files it left in its server root (found through
the emulator's ``GET /_sandbox/boots``) and from ``openstack console log show``
(Nova's ``os-getConsoleOutput``).  Scripts (``#!/bin/sh``, ``#!/usr/bin/env python3``),
``#cloud-config`` (``write_files`` with encodings, permissions and ``append``,
``runcmd``, ``bootcmd``, an unknown module warned about), gzip, once-per-instance
versus every-boot across a reboot, stop/start and a rebuild, a long script killed by
delete (its pids gone), and the remote consoles (``openstack console url show``, Nova's
400/409 refusals).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudtmpl_sandbox import control
from tests.integration.clitools import REPO
from tests.integration.test_real_clients_openstack import CLOUD, REGION, Clients

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clients(openstack_sandbox: dict[str, Any],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    home = tmp_path_factory.mktemp("boot-clients")
    status, body = control.call(openstack_sandbox["endpoint"], openstack_sandbox["token"],
                                "POST", "/_sandbox/reset")
    assert status == 200, body
    proc = subprocess.run([sys.executable, "-m", "cloudtmpl.cli", "sandbox", "status",
                           "--format", "json"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, cwd=home,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)["openstack"]
    cloud = {"auth": {"auth_url": info["auth_url"], "username": info["username"],
                      "password": info["password"], "project_name": info["project_name"],
                      "user_domain_name": info["user_domain_name"],
                      "project_domain_name": info["project_domain_name"]},
             "region_name": REGION, "identity_api_version": 3}
    (home / "clouds.yaml").write_text(yaml.safe_dump({"clouds": {CLOUD: cloud}}))
    yield Clients(openstack_sandbox, home)
    control.call(openstack_sandbox["endpoint"], openstack_sandbox["token"], "POST",
                 "/_sandbox/reset")


def boots(clients: Clients) -> dict[str, Any]:
    status, body = control.call(clients.sandbox["endpoint"], clients.sandbox["token"], "GET",
                                "/_sandbox/boots")
    assert status == 200, body
    result: dict[str, Any] = body
    return result


def create(clients: Clients, name: str, data: bytes, *extra: str) -> dict[str, Any]:
    path = clients.home / f"{name}.userdata"
    path.write_bytes(data)
    server: dict[str, Any] = clients.ok(
        "server", "create", "--image", "cirros-0.6", "--flavor", "m1.tiny", "--network",
        "private", "--user-data", str(path), *extra, "--wait", name)
    assert server["status"] == "ACTIVE", server
    return server


def console(clients: Clients, name: str, *extra: str) -> str:
    proc = clients.run("console", "log", "show", *extra, name, json_out=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def wait_console(clients: Clients, name: str, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = console(clients, name)
        if text in log:
            return log
        assert time.monotonic() < deadline, f"{text!r} not in the console log:\n{log}"
        time.sleep(0.2)


def root_of(clients: Clients, server_id: str) -> Path:
    return Path(boots(clients)[server_id]["root"])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _public_key(clients: Clients) -> Path:
    from tests.integration.test_real_clients_openstack import PUBLIC_KEY

    path = clients.home / "boot-key.pub"
    path.write_text(PUBLIC_KEY + "\n")
    return path


def test_a_shell_script_runs_at_boot_into_the_console_log(clients: Clients) -> None:
    script = (b"#!/bin/sh\n"
              b"echo \"hello from $(id -un) in $PWD\" > /dev/stdout\n"
              b"printf 'made by user data\\n' > \"$HOME/made.txt\"\n"
              b"echo to-stderr >&2\n")
    clients.ok("keypair", "create", "--public-key", str(_public_key(clients)), "boot-key")
    server = create(clients, "boot-sh", script, "--key-name", "boot-key")
    log = wait_console(clients, "boot-sh", "finished at")
    root = root_of(clients, server["id"])
    # the root its sshd exports as SERVER_ROOT: what a login there sees
    status, sshds = control.call(clients.sandbox["endpoint"], clients.sandbox["token"], "GET",
                                 "/_sandbox/servers")
    assert status == 200 and sshds[server["id"]]["root"] == str(root), sshds
    assert (root / "made.txt").read_text() == "made by user data\n"
    assert f"in {root}" in log and "to-stderr" in log, log
    assert "Cloud-init v. " in log and "running 'modules:final'" in log, log
    # --lines: the last N lines of the log split at each newline, as Nova's length
    # (the log ends with one, so the last "line" is empty)
    assert console(clients, "boot-sh", "--lines", "1").strip() == ""
    last = console(clients, "boot-sh", "--lines", "2").strip().splitlines()
    assert len(last) == 1 and last[0].startswith("Cloud-init v. ") and "finished" in last[0]
    clients.ok("server", "delete", "--wait", "boot-sh", json_out=False)
    clients.ok("keypair", "delete", "boot-key", json_out=False)
    assert server["id"] not in boots(clients)


def test_cloud_config_write_files_runcmd_bootcmd_and_warnings(clients: Clients) -> None:
    packed = base64.b64encode(gzip.compress(b"gzip+base64 content\n")).decode()
    config = {
        "bootcmd": ["echo bootcmd-ran >> \"$HOME/boots.txt\""],
        "write_files": [
            {"path": "/etc/app/app.conf", "content": "key=value\n", "permissions": "0600"},
            {"path": "/opt/packed.txt", "encoding": "gz+b64", "content": packed},
            {"path": "/etc/app/app.conf", "content": "more=1\n", "append": True,
             "permissions": 0o640},  # cloud-init chmods an appended file too
            {"path": "/../../escape.txt", "content": "stays inside\n"},
        ],
        "runcmd": ["echo runcmd-string > \"$HOME/runcmd.txt\"",
                   ["sh", "-c", "echo list form $0 >> \"$HOME/runcmd.txt\"", "quoted word"]],
        "packages": ["nginx"],
    }
    data = ("#cloud-config\n" + yaml.safe_dump(config)).encode()
    server = create(clients, "boot-cc", gzip.compress(data))  # cloud-init gunzips it
    log = wait_console(clients, "boot-cc", "finished at")
    root = root_of(clients, server["id"])
    conf = root / "etc/app/app.conf"
    assert conf.read_text() == "key=value\nmore=1\n"
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    assert oct((root / "opt/packed.txt").stat().st_mode & 0o777) == "0o644"  # the default
    assert (root / "opt/packed.txt").read_text() == "gzip+base64 content\n"
    assert (root / "escape.txt").read_text() == "stays inside\n"
    assert not Path("/escape.txt").exists()
    assert (root / "runcmd.txt").read_text() == "runcmd-string\nlist form quoted word\n"
    assert (root / "boots.txt").read_text() == "bootcmd-ran\n"
    assert "WARNING" in log and "'packages'" in log, log

    # a reboot runs bootcmd again, not what runs once per instance
    (root / "runcmd.txt").write_text("")
    clients.ok("server", "reboot", "--wait", "boot-cc", json_out=False)
    wait_console(clients, "boot-cc", "(boot 2)")
    deadline = time.monotonic() + 20
    while (root / "boots.txt").read_text().count("bootcmd-ran") < 2:
        assert time.monotonic() < deadline, (root / "boots.txt").read_text()
        time.sleep(0.2)
    time.sleep(0.5)
    assert (root / "runcmd.txt").read_text() == ""
    # a rebuild is a new disk: once-per-instance runs again
    clients.ok("server", "rebuild", "--image", "cirros-0.6", "--wait", "boot-cc")
    deadline = time.monotonic() + 20
    while "runcmd-string" not in (root / "runcmd.txt").read_text():
        assert time.monotonic() < deadline, console(clients, "boot-cc")
        time.sleep(0.2)
    clients.ok("server", "delete", "--wait", "boot-cc", json_out=False)


def test_python_script_and_multipart_without_cloudtmpl(clients: Clients) -> None:
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    msg = MIMEMultipart()
    msg.attach(MIMEText("#cloud-config\nwrite_files:\n- path: /srv/first.txt\n"
                        "  content: from cloud-config\n", "cloud-config"))
    msg.attach(MIMEText("#!/usr/bin/env python3\nimport os\n"
                        "open(os.environ['HOME'] + '/py.txt', 'w').write('python ran')\n"
                        "print('python part done')\n", "x-shellscript"))
    msg.attach(MIMEText("#include\nhttp://127.0.0.1:9/nothing\n", "x-include-url"))
    server = create(clients, "boot-mime", msg.as_string().encode())
    log = wait_console(clients, "boot-mime", "finished at")
    root = root_of(clients, server["id"])
    assert (root / "srv/first.txt").read_text() == "from cloud-config"
    assert (root / "py.txt").read_text() == "python ran"
    assert "python part done" in log and "x-include-url" in log, log
    clients.ok("server", "delete", "--wait", "boot-mime", json_out=False)


def test_a_long_script_is_killed_when_its_server_stops_or_is_deleted(clients: Clients) -> None:
    script = (b"#!/bin/sh\n"
              b"sleep 300 &\n"
              b"setsid sleep 301 &\n"  # out of the process group: still killed
              b"echo started $$\n"
              b"wait\n")
    server = create(clients, "boot-long", script)
    wait_console(clients, "boot-long", "started")
    (leader,) = boots(clients)[server["id"]]["pids"]
    assert _alive(leader)
    mark = f"SERVER_ID={server['id']}".encode()

    def marked() -> list[int]:
        found = []
        for entry in Path("/proc").glob("[0-9]*/environ"):
            try:
                if mark in entry.read_bytes().split(b"\0") and _alive(int(entry.parent.name)):
                    found.append(int(entry.parent.name))
            except OSError:
                continue
        return found

    assert len(marked()) >= 3, marked()  # sh, two sleeps
    clients.ok("server", "stop", "boot-long", json_out=False)
    assert not _alive(leader) and marked() == []
    assert "server stopped" in console(clients, "boot-long")
    clients.ok("server", "start", "boot-long", json_out=False)
    # started again: the script ran once per instance, so nothing runs now
    clients.ok("server", "show", "boot-long")
    assert boots(clients)[server["id"]]["boots"] == 2
    assert boots(clients)[server["id"]]["pids"] == []
    clients.ok("server", "rebuild", "--image", "cirros-0.6", "--wait", "boot-long")
    deadline = time.monotonic() + 20
    while not boots(clients)[server["id"]]["pids"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (leader,) = boots(clients)[server["id"]]["pids"]
    deadline = time.monotonic() + 20
    while console(clients, "boot-long").count("\nstarted ") < 2:  # it ran again
        assert time.monotonic() < deadline, console(clients, "boot-long")
        time.sleep(0.2)
    clients.ok("server", "delete", "--wait", "boot-long", json_out=False)
    assert not _alive(leader) and marked() == []


# ------------------------------------------------------------------ remote consoles


def _nova(clients: Clients, path: str, body: Any, version: str) -> tuple[int, Any]:
    token = clients.ok("token", "issue")["id"]
    endpoint = next(e["url"] for entry in clients.ok("catalog", "list")
                    if entry["Type"] == "compute" for e in entry["Endpoints"]
                    if e["region"] == REGION and e["interface"] == "public")
    request = urllib.request.Request(
        endpoint.rstrip("/") + path, data=json.dumps(body).encode(), method="POST",
        headers={"X-Auth-Token": token, "Content-Type": "application/json",
                 "OpenStack-API-Version": f"compute {version}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_remote_consoles_and_their_refusals(clients: Clients) -> None:
    server = create(clients, "boot-vnc", b"#!/bin/sh\necho hi\n")
    sid = server["id"]
    novnc = clients.ok("console", "url", "show", "--novnc", "boot-vnc")  # os-getVNCConsole
    assert novnc["type"] == "novnc" and "vnc_lite.html?path=%3Ftoken%3D" in novnc["url"]
    spice = clients.ok("--os-compute-api-version", "2.6", "console", "url", "show",
                       "--spice", "boot-vnc")  # POST /servers/{id}/remote-consoles
    assert spice["type"] == "spice-html5" and spice["protocol"] == "spice", spice
    serial = clients.ok("--os-compute-api-version", "2.6", "console", "url", "show",
                        "--serial", "boot-vnc")
    assert serial["url"].startswith("ws://"), serial
    path = f"/servers/{sid}/remote-consoles"
    ok = _nova(clients, path, {"remote_console": {"protocol": "vnc", "type": "novnc"}}, "2.6")
    assert ok[0] == 200 and ok[1]["remote_console"]["url"].startswith("http://"), ok
    for body, version, status, text in (
        ({"remote_console": {"protocol": "vnc", "type": "spice-html5"}}, "2.6", 400,
         "Invalid console type spice-html5"),
        ({"remote_console": {"protocol": "vnc"}}, "2.6", 400, "'type' is a required"),
        ({"remote_console": {"protocol": "telnet", "type": "novnc"}}, "2.6", 400,
         "is not one of"),
        ({"remote_console": {"protocol": "mks", "type": "webmks"}}, "2.6", 400,
         "is not one of"),  # mks from 2.8
        ({"remote_console": {"protocol": "mks", "type": "webmks"}}, "2.8", 400,
         "Unavailable console type webmks"),
        ({"remote_console": {"protocol": "vnc", "type": "novnc", "x": 1}}, "2.6", 400,
         "Additional properties"),
        ({"remote_console": {"protocol": "vnc", "type": "novnc"}}, "2.5", 404, "could not"),
    ):
        got = _nova(clients, path, body, version)
        assert got[0] == status and text in json.dumps(got[1]), (body, version, got)
    action = f"/servers/{sid}/action"
    got = _nova(clients, action, {"os-getVNCConsole": {"type": "spice-html5"}}, "2.1")
    assert got[0] == 400 and "is not one of" in json.dumps(got[1]), got
    got = _nova(clients, action, {"os-getVNCConsole": {"type": "novnc"}}, "2.6")
    assert got[0] == 404, got  # the action is gone from 2.6
    got = _nova(clients, action, {"os-getConsoleOutput": {"length": "x"}}, "2.1")
    assert got[0] == 400, got
    got = _nova(clients, action, {"os-getConsoleOutput": {"length": -2}}, "2.1")
    assert got[0] == 400, got
    got = _nova(clients, action, {"os-getConsoleOutput": {"length": "-1"}}, "2.1")
    assert got[0] == 200 and "Cloud-init v. " in got[1]["output"], got
    clients.ok("server", "stop", "boot-vnc", json_out=False)
    got = _nova(clients, path, {"remote_console": {"protocol": "vnc", "type": "novnc"}}, "2.6")
    assert got[0] == 409 and "is not ready" in json.dumps(got[1]), got
    clients.ok("server", "delete", "--wait", "boot-vnc", json_out=False)
