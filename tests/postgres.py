"""A throwaway PostgreSQL server for the tests (tests/postgres.py).

:func:`start` finds the server binaries (``initdb``, ``pg_ctl``, ``postgres`` on
PATH, else Debian's ``/usr/lib/postgresql/<version>/bin``, newest first), runs
``initdb`` into a fresh temporary directory and runs ``postgres`` as a child
process (so it is reaped, never orphaned) listening on 127.0.0.1 only, at a
free port, with its unix socket inside that directory.
The superuser ``cloudtmpl`` has a random password and TCP connections must
give it (scram-sha-256), so a wrong password is really refused.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as
an unprivileged user (``postgres`` if the package created it, else a system
user ``cloudtmpl-pg`` created with ``useradd``, else ``nobody``), through
``runuser -u USER --``.  The temporary directory is made in /tmp and given to
that user.  :meth:`Server.stop` always runs ``pg_ctl stop -m immediate`` (and
kills the postmaster if that fails) and removes the directory; an ``atexit``
hook does it if the caller forgets.

``scripts/test.sh`` installs Debian's ``postgresql`` package when no server
binaries are found.  :func:`unavailable` says why a server cannot be started
here (no binaries and not root) - callers skip on that, except under
``CI=true`` where they fail loudly.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "cloudtmpl"
SERVICE_USER = "cloudtmpl-pg"
START_TIMEOUT = 60


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", path.parent.name) or ["0"])


def bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""
    candidates: list[Path] = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    candidates.extend(debian)
    for directory in candidates:
        if all((directory / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def is_root() -> bool:
    return os.geteuid() == 0


def unavailable() -> str | None:
    """Why no server can be started here, or None if one can."""
    if bin_dir() is not None:
        return None
    if is_root():
        return (
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; "
            "scripts/test.sh installs them: apt-get install -y postgresql"
        )
    return "PostgreSQL server binaries not found (and not root to install them)"


def _service_user() -> str:
    """An unprivileged user to run the server as (root only)."""
    for name in ("postgres", SERVICE_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    created = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode == 0:
        return SERVICE_USER
    return "nobody"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server; :meth:`url` builds connection URLs for it."""

    directory: Path
    bindir: Path
    port: int
    password: str
    user: str | None  # the OS user it runs as (None: the current user)
    start_seconds: float = 0.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory / "run"

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{SUPERUSER}:{pw}@127.0.0.1:{self.port}/{database}"

    def _as_user(self, argv: Sequence[str]) -> list[str]:
        if self.user is None:
            return list(argv)
        return ["runuser", "-u", self.user, "--", *argv]

    def run(self, argv: Sequence[str], timeout: float = START_TIMEOUT) -> None:
        proc = subprocess.run(
            self._as_user(argv), capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{Path(argv[0]).name} failed ({proc.returncode}): {proc.stdout}{proc.stderr}"
                f"\n--- server log ---\n{self.log_tail()}"
            )

    def _start(self) -> None:
        """Run ``postgres`` as our own child (not daemonised by pg_ctl: no orphan left)."""
        argv = [
            str(self.bindir / "postgres"), "-D", str(self.data),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={self.port}",
            "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "fsync=off",  # a throwaway server: durability is not under test here
            "-c", "max_connections=200",
        ]
        started = time.monotonic()
        with open(self.directory / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                self._as_user(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )
        pidfile = self.data / "postmaster.pid"
        while time.monotonic() - started < START_TIMEOUT:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"postgres exited at start:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                lines = pidfile.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    self.start_seconds = time.monotonic() - started
                    return
            time.sleep(0.02)
        raise RuntimeError(f"postgres not ready after {START_TIMEOUT}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        log = self.directory / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.process is not None and self.process.poll() is None:
                try:
                    self.run(
                        [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                         "-w", "-t", "30", "stop"],
                        timeout=60,
                    )
                    self.process.wait(timeout=30)
                except (RuntimeError, subprocess.TimeoutExpired):
                    self._kill_postmaster()
                    self.process.wait(timeout=30)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None


def start() -> Server:
    """initdb and start a server; the caller must :meth:`Server.stop` it."""
    bindir = bin_dir()
    if bindir is None:
        raise RuntimeError(unavailable() or "no PostgreSQL binaries")
    user = _service_user() if is_root() else None
    directory = Path(tempfile.mkdtemp(prefix="cloudtmpl-pg-", dir="/tmp"))
    password = secrets.token_urlsafe(18)
    server = Server(directory, bindir, free_port(), password, user)
    atexit.register(server.stop)
    try:
        server.socket_dir.mkdir(mode=0o700)
        pwfile = directory / "pwfile"
        pwfile.write_text(password + "\n")
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (directory, server.socket_dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(pwfile, 0o600)
        server.run(
            [str(bindir / "initdb"), "-D", str(server.data), "-U", SUPERUSER,
             f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
             "-E", "UTF8", "--no-locale", "--no-sync"],
        )
        for attempt in range(3):
            try:
                server._start()
                break
            except RuntimeError:  # most likely the port was taken meanwhile
                if attempt == 2:
                    raise
                server.port = free_port()
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running() -> Iterator[Server]:
    """``with running() as server:`` - a server that is always stopped afterwards."""
    server = start()
    try:
        yield server
    finally:
        server.stop()
