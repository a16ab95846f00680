"""Background-process manager behind ``cloudtmpl sandbox start|stop|status``.

Two sandbox clouds, each its own detached process listening on 127.0.0.1 and
reused across commands: ``aws`` (:mod:`cloudtmpl_sandbox.aws`) and ``openstack``
(:mod:`cloudtmpl_sandbox.openstack`).  Their records live in :func:`sandbox_dir`
(``$CLOUDTMPL_SANDBOX_DIR``, else ``~/.cache/cloudtmpl/sandbox``), per cloud
``NAME`` (``aws``, ``openstack``):

* ``NAME.json``  - ``{endpoint, pid, regions, started, token, instance}``, written
  (mode 0600: it holds the control token) once the server answers;
* ``NAME.pid``   - the server's pid;
* ``NAME.ready`` - written by the server itself once it listens;
* ``NAME.log``   - the server's stdout/stderr;
* ``sandbox.lock`` - ``fcntl`` lock serialising start/stop across processes.

The directory is made 0700.  Each server gets a fresh identity (control token and
instance id, :mod:`cloudtmpl_sandbox.control`) in its environment, never in argv.

A sandbox counts as live when its endpoint answers ``GET /_sandbox/info`` (with the
token) naming its service and the instance id of the record - not by its pid, which
a command in another pid namespace (a container, ``unshare -p``) cannot see or would
mistake for another process.  ``stop`` signals the pid only if it is visibly that
server (its ``/proc`` environment carries the instance id); otherwise it asks the
endpoint (``POST /_sandbox/shutdown``) and waits until it no longer answers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudtmpl_sandbox.control import INSTANCE_ENV, Identity
from cloudtmpl_sandbox.control import call as control_call

REGIONS = ["us-east-1", "eu-central-1"]
ACCESS_KEY = "sandbox"
SECRET_KEY = "sandbox"
# The OpenStack sandbox's fixed identity (dummy, loopback only); see
# cloudtmpl_sandbox.openstack.identity, which this module does not import so that
# `status` stays cheap.
OPENSTACK_REGIONS = ["de-fra-1", "nl-ams-1"]
OPENSTACK_CREDENTIALS = {
    "username": "sandbox",
    "password": "sandbox-password",
    "project_name": "sandbox",
    "user_domain_name": "Default",
    "project_domain_name": "Default",
}


@dataclass(frozen=True)
class _Cloud:
    name: str  # record file stem and status key
    title: str
    module: str
    service: str
    regions: tuple[str, ...]


_CLOUDS = (
    _Cloud("aws", "AWS", "cloudtmpl_sandbox.aws", "cloudtmpl-sandbox-aws", tuple(REGIONS)),
    _Cloud(
        "openstack",
        "OpenStack",
        "cloudtmpl_sandbox.openstack",
        "cloudtmpl-sandbox-openstack",
        tuple(OPENSTACK_REGIONS),
    ),
)

# Popen objects of servers this process spawned, so stop() can reap them.
_children: dict[int, subprocess.Popen[bytes]] = {}


class SandboxError(RuntimeError):
    """The sandbox could not be started."""


def sandbox_dir() -> Path:
    """Where sandbox records live: ``$CLOUDTMPL_SANDBOX_DIR`` or ``~/.cache/...``."""
    env = os.environ.get("CLOUDTMPL_SANDBOX_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "cloudtmpl" / "sandbox"


def _files(d: Path, cloud: _Cloud = _CLOUDS[0]) -> dict[str, Path]:
    return {
        "info": d / f"{cloud.name}.json",
        "pid": d / f"{cloud.name}.pid",
        "ready": d / f"{cloud.name}.ready",
        "log": d / f"{cloud.name}.log",
        "lock": d / "sandbox.lock",
    }


def _private_dir(d: Path) -> None:
    """Create ``d`` with mode 0700, or tighten it to 0700 if it is ours (not a shared,
    sticky directory such as /tmp)."""
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = d.stat()
    if st.st_mode & 0o077 and st.st_uid == os.geteuid() and not st.st_mode & 0o1000:
        d.chmod(0o700)


@contextlib.contextmanager
def _locked(d: Path) -> Iterator[None]:
    _private_dir(d)
    with open(d / "sandbox.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically, readable by the owner only (it holds the token)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            _children.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_sandbox_process(pid: int, cloud: _Cloud = _CLOUDS[0], instance: str | None = None
                        ) -> bool:
    """Whether ``pid`` runs our server (guards against pid reuse before killing): its
    command line names the cloud's module and, given ``instance``, its environment
    carries that instance id.  A pid from another pid namespace fails this."""
    proc = Path(f"/proc/{pid}")
    try:
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc/self").exists()  # no /proc at all: trust the pid file
    if cloud.module.encode() not in cmdline:
        return False
    if instance is None:
        return True
    try:
        environ = (proc / "environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{INSTANCE_ENV}={instance}".encode() in environ


def _identity(info: dict[str, Any] | None) -> tuple[str, Identity] | None:
    """(endpoint, identity) of a record, or None for a broken/old record."""
    if not info:
        return None
    endpoint, token, instance = info.get("endpoint"), info.get("token"), info.get("instance")
    if not all(isinstance(v, str) and v for v in (endpoint, token, instance)):
        return None
    return str(endpoint), Identity(str(token), str(instance))


def _answers(endpoint: str, identity: Identity, cloud: _Cloud = _CLOUDS[0],
             timeout: float = 2.0) -> dict[str, Any] | None:
    """``/_sandbox/info`` of the server at ``endpoint`` if it is ``cloud``'s server with
    that identity (it accepts the token and names the instance id), else None."""
    try:
        status, info = control_call(endpoint, identity.token, "GET", "/_sandbox/info",
                                    timeout=timeout)
    except (OSError, ValueError):
        return None
    if status != 200 or not isinstance(info, dict) or info.get("service") != cloud.service:
        return None
    return info if info.get("instance") == identity.instance else None


def _live_record(d: Path, cloud: _Cloud = _CLOUDS[0]) -> dict[str, Any] | None:
    info = _read_json(_files(d, cloud)["info"])
    found = _identity(info)
    if info is None or found is None or not isinstance(info.get("pid"), int):
        return None
    return info if _answers(*found, cloud=cloud) is not None else None


def _cloud_status(cloud: _Cloud, info: dict[str, Any] | None) -> dict[str, Any]:
    live = info is not None
    endpoint = info["endpoint"] if info is not None else None
    out: dict[str, Any] = {
        "running": live,
        "endpoint": endpoint,
        "pid": info["pid"] if info is not None else None,
        "regions": list((info or {}).get("regions") or cloud.regions),
        "token": info["token"] if info is not None else None,  # for /_sandbox/* callers
    }
    if cloud.name == "aws":
        out.update({"access_key": ACCESS_KEY, "secret_key": SECRET_KEY})
    else:
        out["auth_url"] = f"{endpoint}/identity" if endpoint else None
        out.update(OPENSTACK_CREDENTIALS)
    if info is not None:
        out["started"] = info.get("started")
    return out


def _status_from(records: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    return {cloud.name: _cloud_status(cloud, records.get(cloud.name)) for cloud in _CLOUDS}


def _remove_records(d: Path, cloud: _Cloud = _CLOUDS[0]) -> None:
    f = _files(d, cloud)
    for key in ("info", "pid", "ready"):
        with contextlib.suppress(FileNotFoundError):
            f[key].unlink()


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _child_env(identity: Identity) -> dict[str, str]:
    env = {**os.environ, **identity.environ()}
    root = str(Path(__file__).resolve().parents[2])  # so `-m cloudtmpl...` imports
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _terminate(pid: int, timeout: float = 10.0, cloud: _Cloud = _CLOUDS[0],
               instance: str | None = None) -> None:
    if not _pid_alive(pid) or not _is_sandbox_process(pid, cloud, instance):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.05)
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1)


def _spawn(d: Path, cloud: _Cloud) -> tuple[subprocess.Popen[bytes], Identity]:
    """Replace a dead/unanswering record of ``cloud`` with a fresh server process."""
    f = _files(d, cloud)
    old = _read_json(f["info"])
    if old and isinstance(old.get("pid"), int):
        # recorded but not answering: replace it (only if the pid is visibly that server)
        instance = old.get("instance")
        _terminate(old["pid"], cloud=cloud, instance=instance if isinstance(instance, str)
                   else None)
    _remove_records(d, cloud)
    identity = Identity.new()
    # 0600: a sandbox log is the user's own (it names the stack's resources)
    fd = os.open(f["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # a log an older cloudtmpl created 0644
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                cloud.module,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--ready-file",
                str(f["ready"]),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=_child_env(identity),  # the identity goes in the environment, not argv
        )
    _children[proc.pid] = proc
    f["pid"].write_text(f"{proc.pid}\n", encoding="utf-8")
    return proc, identity


def _await_ready(
    d: Path, cloud: _Cloud, spawned: tuple[subprocess.Popen[bytes], Identity], deadline: float,
    timeout: float,
) -> dict[str, Any]:
    """Wait until ``proc`` answers, write its record and return it."""
    f = _files(d, cloud)
    proc, identity = spawned
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _children.pop(proc.pid, None)
            _remove_records(d, cloud)
            raise SandboxError(
                f"{cloud.title} sandbox exited with status {proc.returncode}; log {f['log']}:\n"
                + _log_tail(f["log"])
            )
        ready = _read_json(f["ready"])
        if ready and ready.get("pid") == proc.pid:
            endpoint = str(ready["endpoint"])
            answer = _answers(endpoint, identity, cloud=cloud, timeout=1.0)
            if answer is not None and answer.get("pid") == proc.pid:
                info = {
                    "endpoint": endpoint,
                    "pid": proc.pid,
                    "regions": list(cloud.regions),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "token": identity.token,
                    "instance": identity.instance,
                }
                _write_json(f["info"], info)
                return info
        time.sleep(0.05)
    _terminate(proc.pid, cloud=cloud, instance=identity.instance)
    _remove_records(d, cloud)
    raise SandboxError(
        f"{cloud.title} sandbox did not answer within {timeout:g}s; log {f['log']}:\n"
        + _log_tail(f["log"])
    )


def start(dir: Path | None = None, timeout: float = 30) -> dict[str, Any]:
    """Start every sandbox cloud (or reuse live ones); return :func:`status`'s dict.

    Missing servers are spawned together and awaited together, so starting both
    takes as long as the slower one (AWS: moto's warm-up).
    """
    d = dir if dir is not None else sandbox_dir()
    with _locked(d):
        records: dict[str, dict[str, Any] | None] = {c.name: _live_record(d, c) for c in _CLOUDS}
        spawned = {c.name: _spawn(d, c) for c in _CLOUDS if records[c.name] is None}
        deadline = time.monotonic() + timeout
        errors: list[str] = []
        for cloud in _CLOUDS:
            if cloud.name in spawned:
                try:
                    records[cloud.name] = _await_ready(
                        d, cloud, spawned[cloud.name], deadline, timeout
                    )
                except SandboxError as exc:
                    errors.append(str(exc))
        if errors:
            raise SandboxError("\n".join(errors))
        return _status_from(records)


def _shut_down(endpoint: str, identity: Identity, cloud: _Cloud, timeout: float = 15.0
               ) -> None:
    """Stop a live server through its endpoint; return once it no longer answers."""
    with contextlib.suppress(OSError, ValueError):
        control_call(endpoint, identity.token, "POST", "/_sandbox/shutdown", timeout=5.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _answers(endpoint, identity, cloud, 1.0) is not None:
        time.sleep(0.1)
    if _answers(endpoint, identity, cloud, 1.0) is not None:
        raise SandboxError(f"{cloud.title} sandbox at {endpoint} did not stop within "
                           f"{timeout:g}s of POST /_sandbox/shutdown")


def _stop_cloud(d: Path, cloud: _Cloud) -> bool:
    f = _files(d, cloud)
    info = _read_json(f["info"])
    found = _identity(info)
    pid = info.get("pid") if info else None
    if found is not None and isinstance(pid, int) and _answers(*found, cloud=cloud):
        endpoint, identity = found
        if _pid_alive(pid) and _is_sandbox_process(pid, cloud, identity.instance):
            _terminate(pid, cloud=cloud, instance=identity.instance)  # ours to signal
        else:  # another pid namespace (or another user's pid): ask the server itself
            _shut_down(endpoint, identity, cloud)
        _remove_records(d, cloud)
        return True
    # not answering: a server that never got ready, or a hung one - by pid, if visible
    pids: set[int] = set()
    if isinstance(pid, int):
        pids.add(pid)
    with contextlib.suppress(OSError, ValueError):
        pids.add(int(f["pid"].read_text().strip()))
    stopped = False
    for one in pids:
        if _pid_alive(one) and _is_sandbox_process(one, cloud):
            _terminate(one, cloud=cloud)
            stopped = True
    _remove_records(d, cloud)
    return stopped


def stop(dir: Path | None = None) -> bool:
    """Stop every recorded sandbox cloud; True if a running server was stopped."""
    d = dir if dir is not None else sandbox_dir()
    if not d.exists():
        return False
    stopped = False
    with _locked(d):
        for cloud in _CLOUDS:
            stopped = _stop_cloud(d, cloud) or stopped
    return stopped


def status(dir: Path | None = None) -> dict[str, Any]:
    """Per cloud: ``{"aws": {running, endpoint, pid, regions, token, access_key,
    secret_key}, "openstack": {running, endpoint, auth_url, username, password,
    project_name, user_domain_name, project_domain_name, regions, pid, token}}``;
    ``token`` is the control token of ``/_sandbox/*`` (null when stopped)."""
    d = dir if dir is not None else sandbox_dir()
    return _status_from({c.name: _live_record(d, c) for c in _CLOUDS})
