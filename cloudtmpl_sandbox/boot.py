"""Sandbox servers boot as cloud-init would: their user data runs, into a console log.

Both sandbox clouds call :class:`Boots` when a server comes up (``boot``), goes down
(``halt``: stopped, rebooting, rebuilding), is rebuilt (``renew``: a new disk, so
what runs once per instance runs again) or deleted (``forget``).  A boot

* writes cloud-init-like lines (``Cloud-init v. ... running 'init' ...``, the warnings
  of :mod:`.userdata`, ``... finished at ...``) to the server's console log;
* runs, in one ``/bin/sh`` of its own session (process group), whatever the user data
  says (:mod:`.userdata`): the boot hooks and ``bootcmd`` at every boot; the first
  time per instance also ``write_files`` then the user scripts and ``runcmd`` in the
  order of their names (cloud-init's ``scripts-user``; a failing one is reported,
  the next still runs);
* as the server's login user (``cloudtmpl`` when the sandbox is root, else the
  sandbox's own user), with its working directory and ``HOME`` in the server root,
  a plain ``PATH``, ``SERVER_ROOT``, ``SERVER_ID`` and ``INSTANCE_ID``;
  ``write_files`` paths are mapped under the root (``/etc/app.conf`` is
  ``ROOT/etc/app.conf``), so a server never writes the host's files;
* asynchronously: the server is ACTIVE/running before its scripts end, as on a cloud.

Everything the scripts print (stdout and stderr) goes to the console log.  A halt
SIGKILLs the process group and every process whose environment says it runs on the
server (a script that made a session of its own), and reaps them: nothing is left
when a server is stopped or deleted or the sandbox stops (:meth:`Boots.clear`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from . import userdata
from .sshd import ensure_login_user, kill_processes_of

VERSION = "24.1-sandbox"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_LOG = 1 << 20  # a console log keeps its last MiB


def inside(root: Path, path: str) -> Path:
    """``path`` as seen from inside the server: under ``root``, never above it."""
    parts = [p for p in PurePosixPath("/", path).parts[1:] if p not in ("", ".")]
    kept: list[str] = []
    for part in parts:
        if part == "..":
            if kept:
                kept.pop()
        else:
            kept.append(part)
    return root.joinpath(*kept)


@dataclass
class _Server:
    server_id: str
    dir: Path  # the console log and the boot's own files (the sandbox's, not the user's)
    root: Path
    datasource: str
    instance_done: bool = False
    boots: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def log(self) -> Path:
        return self.dir / "console.log"


class Boots:
    """The console logs and boot processes of one sandbox's servers."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._servers: dict[str, _Server] = {}
        self._base: Path | None = None
        self._user: str | None = None

    def _dir(self) -> Path:
        if self._base is None:
            self._base = Path(tempfile.mkdtemp(prefix="cloudtmpl-boot-"))
            self._base.chmod(0o755)  # the login user reads the boot's scripts
        return self._base

    def own_root(self, server_id: str) -> Path:
        """A root for a server with no sshd of its own (launched without a key pair)."""
        return self._dir() / server_id / "root"

    # -- lifecycle --------------------------------------------------------
    def boot(self, server_id: str, root: Path, raw: bytes | None, datasource: str) -> None:
        """The server came up: its console logs the boot and its user data runs."""
        with self._lock:
            server = self._servers.get(server_id)
            if server is None:
                server = _Server(server_id, self._dir() / server_id, root, datasource)
                self._servers[server_id] = server
            self._halt(server, "")
            server.root, server.boots = root, server.boots + 1
            server.started = time.monotonic()
            self._prepare(server)
            plan = userdata.parse(raw)
            first = not server.instance_done
            server.instance_done = True
            script = self._script(server, plan, first)
            if script is None:  # nothing to run: the lines only
                self._write(server, self._lines(server, plan, first))
                return
            self._spawn(server, script)

    def halt(self, server_id: str, why: str = "halted") -> None:
        with self._lock:
            server = self._servers.get(server_id)
            if server is not None:
                self._halt(server, why)

    def renew(self, server_id: str) -> None:
        """Rebuilt: a new disk, so the next boot is a new instance's first."""
        with self._lock:
            server = self._servers.get(server_id)
            if server is not None:
                self._halt(server, "rebuilding")
                server.instance_done = False

    def forget(self, server_id: str) -> None:
        """Deleted: its processes are killed and its console log goes."""
        with self._lock:
            server = self._servers.pop(server_id, None)
            if server is not None:
                self._halt(server, "")
                shutil.rmtree(server.dir, ignore_errors=True)
            kill_processes_of(server_id)

    def clear(self) -> None:
        """Every boot process killed, every log gone (reset, exit)."""
        with self._lock:
            for server_id in list(self._servers):
                self.forget(server_id)
            if self._base is not None:
                shutil.rmtree(self._base, ignore_errors=True)
                self._base = None

    # -- reading ----------------------------------------------------------
    def console(self, server_id: str) -> str | None:
        """The console log, or None for a server that never booted."""
        with self._lock:
            server = self._servers.get(server_id)
            if server is None:
                return None
            try:
                data = server.log.read_bytes()
            except FileNotFoundError:
                return ""
        return data[-MAX_LOG:].decode("utf-8", "replace")

    def pids(self, server_id: str) -> list[int]:
        """The boot's process group leader, while it runs (empty otherwise)."""
        with self._lock:
            server = self._servers.get(server_id)
            proc = server.proc if server else None
            return [proc.pid] if proc is not None and proc.poll() is None else []

    def info(self) -> dict[str, dict[str, object]]:
        with self._lock:
            return {sid: {"root": str(s.root), "boots": s.boots, "pids": self.pids(sid),
                          "console": str(s.log)} for sid, s in self._servers.items()}

    def admin(self, method: str, path: str) -> tuple[int, Any] | None:
        """``GET /_sandbox/boots``: id -> root, boots, pids of the boot still running,
        console log path; None for another path."""
        if path == "/_sandbox/boots" and method == "GET":
            return 200, self.info()
        return None

    # -- helpers ----------------------------------------------------------
    def _login(self) -> str:
        if self._user is None:
            self._user = ensure_login_user()
        return self._user

    def _prepare(self, server: _Server) -> None:
        server.dir.mkdir(parents=True, exist_ok=True)
        server.dir.chmod(0o755)
        if not server.root.exists():
            server.root.mkdir(parents=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam(self._login())
            os.chown(server.root, user.pw_uid, user.pw_gid)

    @staticmethod
    def _write(server: _Server, text: str) -> None:
        with open(server.log, "a", encoding="utf-8") as fh:
            fh.write(text)

    @staticmethod
    def _stamp() -> str:
        return formatdate().replace("-0000", "+0000")  # as date -R writes UTC

    def _lines(self, server: _Server, plan: userdata.Plan, first: bool) -> str:
        """The boot's lines when nothing runs."""
        stamp = self._stamp()
        lines = [f"[    0.000000] sandbox: booting server {server.server_id} "
                 f"(boot {server.boots})"]
        for stage in ("init-local", "init", "modules:config", "modules:final"):
            lines.append(f"Cloud-init v. {VERSION} running '{stage}' at {stamp}. Up 0 "
                         "seconds.")
            if stage == "init":
                lines += [f"cloud-init[WARNING]: {w}" for w in plan.warnings] if first else []
        lines.append(f"Cloud-init v. {VERSION} finished at {stamp}. Datasource "
                     f"{server.datasource}.  Up 0 seconds")
        return "\n".join(lines) + "\n"

    def _script(self, server: _Server, plan: userdata.Plan, first: bool) -> Path | None:
        """The boot as one sh script (in the server's boot dir), or None when the user
        data runs nothing this boot."""
        if plan.empty or (first is False and not (plan.boothooks or plan.bootcmd)):
            return None
        work = server.dir / f"boot-{server.boots}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(mode=0o755)
        q = shlex.quote
        out = [
            "#!/bin/sh",
            "up() { echo $(( $(date +%s) - START )); }",
            "START=$(date +%s)",
            "stage() { echo \"Cloud-init v. " + VERSION + " running '$1' at $(date -R). "
            "Up $(up) seconds.\"; }",
            f"echo {q(f'[    0.000000] sandbox: booting server {server.server_id} ')}"
            f"{q(f'(boot {server.boots})')}",
            "stage init-local",
            "stage init",
        ]
        if first:
            out += [f"echo {q('cloud-init[WARNING]: ' + w)}" for w in plan.warnings]

        def run(name: str, body: bytes, label: str) -> None:
            path = work / name
            path.write_bytes(body)
            path.chmod(0o755)
            out.append(f"{q(str(path))} || echo \"util.py[WARNING]: Failed running "
                       f"{label} [$?]\"")

        for n, hook in enumerate(plan.boothooks):
            run(f"boothook-{n:03d}", hook, f"/var/lib/cloud/instance/boothooks/part-{n:03d}")
        if plan.bootcmd:
            run("bootcmd", ("#!/bin/sh\n" + "\n".join(plan.bootcmd) + "\n").encode(),
                "/var/lib/cloud/instance/bootcmd")
        files = plan.write_files if first else ()

        def write(n: int, spec: userdata.WriteFile) -> None:
            source = work / f"file-{n:03d}"
            source.write_bytes(spec.content)
            source.chmod(0o644)
            target = inside(server.root, spec.path)
            op = ">>" if spec.append else ">"
            out.append(f"mkdir -p {q(str(target.parent))} && cat {q(str(source))} {op} "
                       f"{q(str(target))} && chmod {spec.permissions:o} {q(str(target))} "
                       f"|| echo {q('cc_write_files.py[WARNING]: Failed writing ' + spec.path)}")

        for n, spec in enumerate(files):
            if not spec.defer:
                write(n, spec)
        out += ["stage modules:config", "stage modules:final"]
        for n, spec in enumerate(files):
            if spec.defer:
                write(n, spec)
        if first:
            for name, body in plan.scripts:
                run(f"script-{name}", body, f"/var/lib/cloud/instance/scripts/{name}")
        out.append(f"echo \"Cloud-init v. {VERSION} finished at $(date -R). Datasource "
                   f"{server.datasource}.  Up $(up) seconds\"")
        script = work / "boot.sh"
        script.write_text("\n".join(out) + "\n")
        script.chmod(0o755)
        return script

    def _spawn(self, server: _Server, script: Path) -> None:
        login = self._login()
        env = {
            "PATH": PATH, "HOME": str(server.root), "SHELL": "/bin/sh", "LANG": "C.UTF-8",
            "USER": login, "LOGNAME": login, "SERVER_ROOT": str(server.root),
            "SERVER_ID": server.server_id, "INSTANCE_ID": server.server_id,
        }
        ids: dict[str, object] = {}
        # a pipe of the login user's, as a console is a device it can reopen
        # (a script may write to /dev/stdout)
        read, write = os.pipe()
        if os.geteuid() == 0:
            user = pwd.getpwnam(login)
            ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            os.fchown(write, user.pw_uid, user.pw_gid)
        try:
            proc = subprocess.Popen(  # type: ignore[call-overload]
                ["/bin/sh", str(script)], cwd=server.root, env=env,
                stdin=subprocess.DEVNULL, stdout=write, stderr=write,
                start_new_session=True, close_fds=True, **ids)
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        server.proc = proc
        log = open(server.log, "ab", buffering=0)  # noqa: SIM115 - the pump closes it
        threading.Thread(target=_pump, args=(proc, read, log), daemon=True,
                         name=f"boot-{proc.pid}").start()

    def _halt(self, server: _Server, why: str) -> None:
        proc, server.proc = server.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        kill_processes_of(server.server_id)
        if why and server.log.parent.exists():
            self._write(server, f"[{time.monotonic() - server.started:12.6f}] sandbox: "
                                f"server {why}\n")


def _pump(proc: subprocess.Popen[bytes], read: int, log: BinaryIO) -> None:
    """What the boot prints, appended to the console log until every writer is gone;
    then the boot's shell is reaped."""
    with open(read, "rb", buffering=0) as pipe, log as out:
        for chunk in iter(lambda: pipe.read(65536), b""):
            out.write(chunk)
    proc.wait()
