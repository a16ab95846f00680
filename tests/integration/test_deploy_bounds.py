"""Deployments that run away, and host keys after the state was moved aside, through the
real CLI against sshd-backed OpenStack sandbox servers.

What runs on a server is checked *through that server's sshd*: a session lists the
processes whose environment has the server's ``SERVER_ID`` (the sandbox's sshd sets
it for every session, so the script and all it starts inherit it).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import paramiko
import pytest

from cloudtmpl_sandbox import control
from cloudtmpl_sandbox.sshd import sshd_path
from tests.integration.clitools import cli_args, cli_env, invoke, write

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sshd_path() is None, reason="needs openssh-server (scripts/test.sh "
                       "installs it)"),
]

TARGET = "sandbox-openstack/de-fra-1"


def template(script: str | None, timeouts: str = "", actions: str = "[CREATE, UPDATE]"
             ) -> str:
    """Keyed server, floating IP, and (unless ``script`` is None) a deployment and a
    value that depends on it."""
    if script is None:
        return template("true").split("  deploy:")[0]
    body = "\n".join(f"        {line}" for line in script.splitlines())
    return f"""heat_template_version: 2018-08-31
parameters:
  round: {{type: string, default: one}}
resources:
  key:
    type: Cloud::Compute::KeyPair
  web:
    type: Cloud::Compute::Server
    properties: {{image: ubuntu-22.04, flavor: tiny, key_name: {{get_resource: key}}}}
  web_ip:
    type: Cloud::Network::FloatingIP
    properties: {{server: {{get_resource: web}}, floating_network: public}}
  deploy:
    type: Cloud::Software::Deployment
    {timeouts}
    properties:
      server: {{get_resource: web}}
      address: {{get_attr: [web_ip, floating_ip_address]}}
      ssh: {{key_pair: {{get_resource: key}}, timeout: 30}}
      actions: {actions}
      inputs: {{round: {{get_param: round}}}}
      config: |
{body}
  after:
    type: Cloud::Local::Value
    properties: {{value: {{get_attr: [deploy, deploy_status_code]}}}}
outputs:
  stdout: {{value: {{get_attr: [deploy, deploy_stdout]}}}}
"""


SLEEPER = 'echo "started $round" >> "$SERVER_ROOT/runs"\nsleep 100000\necho never'


@pytest.fixture
def project(tmp_path: Path, openstack_reset: dict[str, Any]) -> Path:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    return tmp_path


def admin(sandbox: dict[str, Any], method: str, path: str) -> Any:
    """A control request, with the sandbox's token."""
    status, answer = control.call(sandbox["endpoint"], sandbox["token"], method, path)
    assert status == 200, (path, status, answer)
    return answer


def servers(sandbox: dict[str, Any]) -> dict[str, Any]:
    return dict(admin(sandbox, "GET", "/_sandbox/servers"))


def admin_post(sandbox: dict[str, Any], path: str) -> Any:
    return admin(sandbox, "POST", path)


def the_server(sandbox: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(server_id, host)] = servers(sandbox).items()
    return server_id, host


# The checker names neither "sleep" nor the script's directory, so it never lists itself.
LIST = r"""for e in /proc/[0-9]*/environ; do
  p=${e#/proc/}; p=${p%/environ}
  if tr '\0' '\n' < "$e" 2>/dev/null | grep -qx "SERVER_ID=$SERVER_ID"; then
    printf '%s %s\n' "$p" "$(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)"
  fi
done
"""


def remote_processes(project: Path, host: dict[str, Any]) -> list[str]:
    """'PID CMDLINE' of the processes running on the server that a script left (its
    sleep, its shell), as a session through the server's own sshd lists them."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # a test's own look
    client.connect(host["address"], host["port"], username=host["user"],
                   key_filename=str(project / ".cloudtmpl" / "keys" / "app.key.pem"),
                   allow_agent=False, look_for_keys=False, timeout=10)
    try:
        _, out, _ = client.exec_command(LIST, timeout=20)
        lines = out.read().decode().splitlines()
    finally:
        client.close()
    return [line for line in lines if "sleep" in line or "cloudtmpl." in line]


def wait_until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def journal(project: Path, address: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(project / ".cloudtmpl" / "state.db") as db:
        rows = db.execute("SELECT action, phase, COALESCE(detail, '') FROM journal "
                          "WHERE address = ? ORDER BY run_id, seq", (address,)).fetchall()
    return [(str(a), str(p), str(d)) for a, p, d in rows]


def test_a_script_past_its_timeout_is_killed_on_the_server(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    # the servers first, so that the deployment's own time is what is measured
    write(project / "app.yaml", template(None))
    assert invoke(project, "apply", "app.yaml", "--target", TARGET, "--yes").code == 0
    _, host = the_server(openstack_reset)
    write(project / "app.yaml", template(SLEEPER, "timeouts: {create: 5}"))
    started = time.monotonic()
    r = invoke(project, "apply", "app.yaml", "--target", TARGET, "--yes", "-p", "round=two")
    took = time.monotonic() - started
    assert r.code == 1, r.out + r.err
    assert 5 <= took < 15, took
    assert "the CREATE script timed out after 5 s; the remote process group was killed" \
        in r.out, r.out
    assert "skipped create after: deploy failed" in r.out, r.out
    assert (Path(host["root"]) / "runs").read_text() == "started two\n"  # it did start
    assert remote_processes(project, host) == []
    entries = journal(project, "deploy")
    assert entries[-1][1] == "failed" and "timed out after 5 s" in entries[-1][2]
    log = (project / ".cloudtmpl" / "logs" / "app" / "deploy.log").read_text()
    assert "the script timed out after 5 s (" in log


def test_a_killed_client_leaves_the_script_to_the_servers_watchdog(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    """The client killed (SIGKILL: it can kill nothing): the server's watchdog kills the
    script at the deadline, here the template's timeouts: {create: 3}, plus its margin."""
    write(project / "app.yaml", template(SLEEPER, "timeouts: {create: 3}"))
    proc = subprocess.Popen(cli_args("apply", "app.yaml", "--target", TARGET, "--yes"),
                            cwd=project, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(servers(openstack_reset)) == 1
                   and (Path(the_server(openstack_reset)[1]["root"]) / "runs").exists(),
                   60, "the script did not start")
        _, host = the_server(openstack_reset)
        killed_at = time.monotonic()
        proc.kill()
        proc.wait(timeout=10)
        assert any("sleep 100000" in p for p in remote_processes(project, host))
        wait_until(lambda: remote_processes(project, host) == [], 30,
                   "the watchdog did not kill the script")
        # 3 s of the timeout (counted from before the connection) plus a 10 s margin
        assert time.monotonic() - killed_at < 20
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start_sleeper(project: Path, sandbox: dict[str, Any]
                  ) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    write(project / "app.yaml", template(SLEEPER))
    proc = subprocess.Popen(cli_args("apply", "app.yaml", "--target", TARGET, "--yes"),
                            cwd=project, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    wait_until(lambda: (len(servers(sandbox)) == 1
               and (Path(the_server(sandbox)[1]["root"]) / "runs").exists())
               or proc.poll() is not None, 60, "the script did not start")
    assert proc.poll() is None, proc.communicate()
    host = the_server(sandbox)[1]
    wait_until(lambda: any("sleep 100000" in p for p in remote_processes(project, host)), 10,
               "no sleep on the server")
    return proc, host


def test_a_second_sigterm_kills_the_remote_script_and_exits(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    proc, host = start_sleeper(project, openstack_reset)
    try:
        proc.send_signal(signal.SIGTERM)
        time.sleep(2)
        assert proc.poll() is None  # the first one gives the running script a grace
        assert any("sleep 100000" in p for p in remote_processes(project, host))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out + err
    assert "stopping: its script gets 30 s more" in out, out
    assert "aborted" in err
    assert remote_processes(project, host) == []
    failed = [json.loads(d)["error"] for _, phase, d in journal(project, "deploy")
              if phase == "failed"]
    assert failed[0] == "aborted while in flight"


def test_after_one_sigterm_a_running_script_is_killed_once_the_grace_is_over(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    proc, host = start_sleeper(project, openstack_reset)
    try:
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=90)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, out + err
    assert 30 <= took < 45, took
    assert "was stopped: still running 30 s after the interrupt; the remote process group " \
        "was killed" in out, out
    assert "skipped create after" in out
    assert remote_processes(project, host) == []


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_100_mb_output_is_kept_as_a_bounded_tail(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    script = ('yes "the same line of output, again and again and again" | head -c 100000000\n'
              'echo "last line"\necho "the end of stderr" >&2')
    write(project / "app.yaml", template(script))
    printed = project / "printed.txt"  # (a pipe nobody reads while polling would fill up)
    with printed.open("w") as sink:
        proc = subprocess.Popen(cli_args("apply", "app.yaml", "--target", TARGET, "--yes"),
                                cwd=project, env=cli_env(), stdout=sink, stderr=sink,
                                stdin=subprocess.DEVNULL)
    peak = 0
    deadline = time.monotonic() + 180
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError, AssertionError):
                peak = max(peak, peak_rss_kib(proc.pid))
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    out = err = printed.read_text()
    print(f"\n100 MB on stdout: peak RSS of the cloudtmpl process {peak / 1024:.0f} MiB")
    assert proc.returncode == 0, out + err
    assert peak < 200 * 1024, peak
    assert "deploy_stdout was 100000010 bytes: the state keeps its last 64 KiB, the log its " \
        "first 1.0 MiB and last 64 KiB" in out, out
    state = project / ".cloudtmpl" / "state.db"
    with sqlite3.connect(state) as db:
        [(attrs,)] = db.execute("SELECT attributes FROM resources WHERE address = 'deploy'")
    size = sum(p.stat().st_size for p in state.parent.glob("state.db*"))
    print(f"state.db (with its WAL) {size / 1024:.0f} KiB; deployment attributes "
          f"{len(attrs) / 1024:.0f} KiB")
    assert size < 2 * 1024 * 1024
    stdout = json.loads(attrs)["deploy_stdout"]
    # 100000000 is not a whole number of lines: the last one is cut by head -c
    assert len(stdout.encode()) <= 64 * 1024
    assert stdout.endswith("again\nthe same line oflast line\n")
    assert json.loads(attrs)["truncated"] == {"deploy_stdout": 100000010}
    assert invoke(project, "outputs", "-s", "app", "--format", "json").json()["stdout"] == stdout
    log = project / ".cloudtmpl" / "logs" / "app" / "deploy.log"
    text = log.read_text()
    print(f"log {log.stat().st_size / 1024:.0f} KiB")
    assert log.stat().st_size < 1024 * 1024 + 70 * 1024 + 4096
    left = 100000010 - 1024 * 1024 - 64 * 1024
    assert "--- stdout: 95.4 MiB in all; the log keeps the first 1.0 MiB and the last " \
        "64 KiB\nthe same line" in text
    assert f"\n[... {left} bytes left out ...]\n" in text
    assert text.index("left out") < text.index("last line\n--- stderr\nthe end of stderr")


def test_moving_the_state_aside_keeps_the_host_key_pins(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    write(project / "app.yaml", template('echo "$round" >> "$SERVER_ROOT/runs"'))
    r = invoke(project, "apply", "app.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    server_id, host = the_server(openstack_reset)
    pins = project / ".cloudtmpl" / "keys" / "known_hosts"
    assert oct(pins.stat().st_mode)[-3:] == "600"
    [line] = pins.read_text().splitlines()
    assert line.split()[2] == host["host_key"].split()[1]
    assert line.endswith(f"cloudtmpl:server={server_id}")
    state = project / ".cloudtmpl" / "state.db"

    def move_state_aside(suffix: str) -> None:
        for path in state.parent.glob("state.db*"):
            path.rename(path.with_name(path.name + suffix))

    # the state alone moved aside: the deployment runs again (its record is gone), the
    # same host key is accepted
    move_state_aside(".one")
    r = invoke(project, "apply", "app.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    runs = Path(host["root"]) / "runs"
    assert runs.read_text() == "one\none\n"
    # again, and this time the server's host key changes: refused, nothing runs
    move_state_aside(".two")
    new = admin_post(openstack_reset, f"/_sandbox/servers/{server_id}/rekey")
    assert new["host_key_fingerprint"] != host["host_key_fingerprint"]
    r = invoke(project, "apply", "app.yaml", "--target", TARGET, "--yes")
    assert r.code == 1, r.out + r.err
    assert f"host key of {host['user']}@{host['addresses'][1]}:{host['port']} changed" \
        in r.out, r.out
    assert host["host_key_fingerprint"] in r.out and new["host_key_fingerprint"] in r.out
    assert f"pinned in {pins} line 1" in r.out and "nothing was run" in r.out
    assert runs.read_text() == "one\none\n"
    assert pins.read_text().splitlines() == [line]  # the pin stays as it was
