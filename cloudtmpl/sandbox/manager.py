"""Background-process manager behind ``cloudtmpl sandbox start|stop|status``.

The AWS sandbox (:mod:`cloudtmpl.sandbox.aws`) runs detached, listening on
127.0.0.1, and is reused across commands.  Its records live in
:func:`sandbox_dir` (``$CLOUDTMPL_SANDBOX_DIR``, else ``~/.cache/cloudtmpl/sandbox``):

* ``aws.json``  - ``{endpoint, pid, regions, started}``, written once it answers;
* ``aws.pid``   - the server's pid;
* ``aws.ready`` - written by the server itself once it listens;
* ``aws.log``   - the server's stdout/stderr;
* ``sandbox.lock`` - ``fcntl`` lock serialising start/stop across processes.

A sandbox counts as live only if its pid is alive *and* its endpoint answers
``GET /_sandbox/info`` with that same pid.
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
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REGIONS = ["us-east-1", "eu-central-1"]
ACCESS_KEY = "sandbox"
SECRET_KEY = "sandbox"
_MODULE = "cloudtmpl.sandbox.aws"
_SERVICE = "cloudtmpl-sandbox-aws"

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


def _files(d: Path) -> dict[str, Path]:
    return {
        "info": d / "aws.json",
        "pid": d / "aws.pid",
        "ready": d / "aws.ready",
        "log": d / "aws.log",
        "lock": d / "sandbox.lock",
    }


@contextlib.contextmanager
def _locked(d: Path) -> Iterator[None]:
    d.mkdir(parents=True, exist_ok=True)
    with open(_files(d)["lock"], "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
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


def _is_sandbox_process(pid: int) -> bool:
    """Whether ``pid`` runs our server (guards against pid reuse before killing)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    return _MODULE.encode() in cmdline


def _answers(endpoint: str, pid: int | None = None, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/_sandbox/info", timeout=timeout) as resp:
            info = json.loads(resp.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return False
    if not isinstance(info, dict) or info.get("service") != _SERVICE:
        return False
    return pid is None or info.get("pid") == pid


def _live_record(d: Path) -> dict[str, Any] | None:
    info = _read_json(_files(d)["info"])
    if not info:
        return None
    pid, endpoint = info.get("pid"), info.get("endpoint")
    if not isinstance(pid, int) or not isinstance(endpoint, str):
        return None
    if _pid_alive(pid) and _answers(endpoint, pid):
        return info
    return None


def _status_from(info: dict[str, Any] | None) -> dict[str, Any]:
    if info is None:
        return {
            "aws": {
                "running": False,
                "endpoint": None,
                "pid": None,
                "regions": list(REGIONS),
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
            }
        }
    return {
        "aws": {
            "running": True,
            "endpoint": info["endpoint"],
            "pid": info["pid"],
            "regions": list(info.get("regions") or REGIONS),
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "started": info.get("started"),
        }
    }


def _remove_records(d: Path) -> None:
    f = _files(d)
    for key in ("info", "pid", "ready"):
        with contextlib.suppress(FileNotFoundError):
            f[key].unlink()


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # so `-m cloudtmpl...` imports
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _terminate(pid: int, timeout: float = 10.0) -> None:
    if not _pid_alive(pid) or not _is_sandbox_process(pid):
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


def start(dir: Path | None = None, timeout: float = 30) -> dict[str, Any]:
    """Start the AWS sandbox, or reuse a live one; return :func:`status`'s dict."""
    d = dir if dir is not None else sandbox_dir()
    f = _files(d)
    with _locked(d):
        live = _live_record(d)
        if live is not None:
            return _status_from(live)
        old = _read_json(f["info"])
        if old and isinstance(old.get("pid"), int):
            _terminate(old["pid"])  # recorded but not answering: replace it
        _remove_records(d)

        with open(f["log"], "ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    _MODULE,
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
                env=_child_env(),
            )
        _children[proc.pid] = proc
        f["pid"].write_text(f"{proc.pid}\n", encoding="utf-8")

        deadline = time.monotonic() + timeout
        endpoint: str | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                _children.pop(proc.pid, None)
                _remove_records(d)
                raise SandboxError(
                    f"AWS sandbox exited with status {proc.returncode}; log {f['log']}:\n"
                    + _log_tail(f["log"])
                )
            ready = _read_json(f["ready"])
            if ready and ready.get("pid") == proc.pid:
                endpoint = str(ready["endpoint"])
                if _answers(endpoint, proc.pid, timeout=1.0):
                    break
            time.sleep(0.05)
        else:
            _terminate(proc.pid)
            _remove_records(d)
            raise SandboxError(
                f"AWS sandbox did not answer within {timeout:g}s; log {f['log']}:\n"
                + _log_tail(f["log"])
            )

        info = {
            "endpoint": endpoint,
            "pid": proc.pid,
            "regions": list(REGIONS),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_json(f["info"], info)
        return _status_from(info)


def stop(dir: Path | None = None) -> bool:
    """Stop the recorded AWS sandbox; True if a running server was stopped."""
    d = dir if dir is not None else sandbox_dir()
    f = _files(d)
    if not d.exists():
        return False
    with _locked(d):
        pids: set[int] = set()
        info = _read_json(f["info"])
        if info and isinstance(info.get("pid"), int):
            pids.add(info["pid"])
        with contextlib.suppress(OSError, ValueError):
            pids.add(int(f["pid"].read_text().strip()))
        stopped = False
        for pid in pids:
            if _pid_alive(pid) and _is_sandbox_process(pid):
                _terminate(pid)
                stopped = True
        _remove_records(d)
        return stopped


def status(dir: Path | None = None) -> dict[str, Any]:
    """``{"aws": {running, endpoint, pid, regions, access_key, secret_key}}``."""
    d = dir if dir is not None else sandbox_dir()
    return _status_from(_live_record(d))
