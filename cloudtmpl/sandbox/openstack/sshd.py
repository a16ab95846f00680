"""Servers you can SSH into: one real ``sshd`` per sandbox server, on loopback.

A server created with a key pair gets an address 127.A.B.N from its region's
pool (a random /24 inside 127.0.0.0/8 per emulator process and region, so two
sandboxes running at once do not collide) and, once it turns ``ACTIVE``, an
``sshd -D -e -f CONFIG`` listening only there, that

* authorises exactly the public key of the Nova key pair it was created with,
* refuses passwords (``PasswordAuthentication no``, ``UsePAM no``),
* has its own Ed25519 host key, and
* exports its own root directory to every command as ``SERVER_ROOT`` (and its
  id as ``SERVER_ID``), so tests can see what ran where.

Logins are as the unprivileged user ``cloudtmpl`` (created with shell /bin/sh
and password ``*`` when the emulator runs as root), else as the current user.
Every sshd is tracked by its Popen and stopped when its server is deleted, on
``/_sandbox/reset`` and when the emulator exits.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

LOGIN_USER = "cloudtmpl"
_POOL = (10, 250)  # host numbers used in each region's /24


def sshd_path() -> str | None:
    """The sshd binary, if installed."""
    found = shutil.which("sshd")
    if found:
        return found
    return "/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None


def default_port() -> int:
    """22 as root (addresses are private to each server), else a high port."""
    return 22 if os.geteuid() == 0 else 2222


def fingerprint(public_openssh: str) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of an ``ssh-ed25519 AAAA...`` line."""
    blob = base64.b64decode(public_openssh.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def ensure_login_user() -> str:
    """The user sshd logs people in as (created when we are root and it is missing)."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.getuid()).pw_name
    try:
        pwd.getpwnam(LOGIN_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/tmp",
             "--shell", "/bin/sh", LOGIN_USER],
            check=False, capture_output=True,
        )
    # A locked ('!') account is refused with UsePAM no; '*' only forbids passwords.
    # home /tmp: sshd changes into it before running commands
    subprocess.run(["usermod", "-p", "*", "-d", "/tmp", LOGIN_USER], check=False,
                   capture_output=True)
    pwd.getpwnam(LOGIN_USER)  # KeyError if it could not be created
    return LOGIN_USER


@dataclass
class Host:
    server_id: str
    region: str
    address: str
    port: int
    dir: Path
    public_key: str
    host_key: str = ""  # public half, OpenSSH line
    proc: subprocess.Popen[bytes] | None = None
    listen: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.dir / "root"

    def info(self) -> dict[str, Any]:
        alive = self.proc is not None and self.proc.poll() is None
        return {
            "address": self.address,
            "port": self.port,
            "region": self.region,
            "root": str(self.root),
            "user": "",
            "host_key": self.host_key,
            "host_key_fingerprint": fingerprint(self.host_key) if self.host_key else "",
            "pid": self.proc.pid if alive and self.proc else None,
            "running": alive,
        }


def _children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc; empty elsewhere)."""
    out = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.parent.name))
    return out


class SshHosts:
    """The emulator's sshd processes, keyed by server id."""

    def __init__(self, base: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._hosts: dict[str, Host] = {}
        self._base = base
        self._user: str | None = None
        rng = random.SystemRandom()
        self._nets: dict[str, ipaddress.IPv4Network] = {}
        self._second = rng.randrange(16, 255)
        self._third = rng.randrange(0, 255, 2)

    # -- addresses --------------------------------------------------------
    def network(self, region_index: int) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"127.{self._second}.{self._third + region_index}.0/24")

    def allocate(self, region: str, region_index: int) -> str:
        """A free loopback address in ``region``'s pool."""
        net = self.network(region_index)
        with self._lock:
            used = {h.address for h in self._hosts.values()}
            for n in range(*_POOL):
                addr = str(net[n])
                if addr not in used:
                    return addr
        raise RuntimeError(f"no free loopback address left in {net}")

    def owner(self, address: str) -> str | None:
        with self._lock:
            return next((h.server_id for h in self._hosts.values() if h.address == address), None)

    # -- lifecycle --------------------------------------------------------
    def _dir(self) -> Path:
        if self._base is None:
            self._base = Path(tempfile.mkdtemp(prefix="cloudtmpl-sshd-"))
            self._base.chmod(0o755)  # sshd reads authorized_keys as the login user
        return self._base

    def add(self, server_id: str, region: str, address: str, port: int, public_key: str) -> Host:
        """Register a server (sshd starts later, when it turns ACTIVE)."""
        with self._lock:
            d = self._dir() / server_id
            host = Host(server_id, region, address, port, d, public_key)
            self._hosts[server_id] = host
            return host

    def get(self, server_id: str) -> Host | None:
        with self._lock:
            return self._hosts.get(server_id)

    def start(self, server_id: str, timeout: float = 5.0) -> Host:
        """Start (or restart) the server's sshd and wait until it accepts connections."""
        with self._lock:
            host = self._hosts[server_id]
            self._stop_proc(host)
            binary = sshd_path()
            if binary is None:
                raise RuntimeError("sshd is not installed")
            if self._user is None:
                self._user = ensure_login_user()
            if os.geteuid() == 0:
                Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
            host.dir.mkdir(parents=True, exist_ok=True)
            host.dir.chmod(0o755)
            host.root.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                user = pwd.getpwnam(self._user)
                os.chown(host.root, user.pw_uid, user.pw_gid)
            key_file = host.dir / "host_ed25519"
            if not key_file.exists():
                self._write_host_key(host)
            keys = host.dir / "authorized_keys"
            keys.write_text(host.public_key.strip() + "\n")
            keys.chmod(0o644)
            config = host.dir / "sshd_config"
            listen = [host.address, *[a for a in host.listen if a != host.address]]
            config.write_text(
                "".join(f"ListenAddress {a}\n" for a in listen)
                + f"Port {host.port}\n"
                f"HostKey {key_file}\n"
                f"PidFile {host.dir / 'sshd.pid'}\n"
                f"AuthorizedKeysFile {host.dir / 'authorized_keys'}\n"
                f"AllowUsers {self._user}\n"
                "PasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\n"
                "PubkeyAuthentication yes\n"
                "UsePAM no\n"
                "StrictModes no\n"
                "PermitRootLogin no\n"
                "X11Forwarding no\n"
                "AllowTcpForwarding yes\n"
                "PrintMotd no\n"
                "LogLevel ERROR\n"
                f"SetEnv SERVER_ROOT={host.root} SERVER_ID={host.server_id}\n"
            )
            log = open(host.dir / "sshd.log", "ab")  # noqa: SIM115 - handed to the child
            try:
                host.proc = subprocess.Popen(
                    [binary, "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                )
            finally:
                log.close()
            deadline = time.monotonic() + timeout
            while True:
                if host.proc.poll() is not None:
                    tail = (host.dir / "sshd.log").read_text(errors="replace")[-400:]
                    raise RuntimeError(f"sshd for {server_id} on {host.address} exited: {tail}")
                try:
                    with socket.create_connection((host.address, host.port), timeout=0.5):
                        pass
                    if host.proc.poll() is None:
                        return host
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    self._stop_proc(host)
                    raise RuntimeError(f"sshd for {server_id} did not listen on "
                                       f"{host.address}:{host.port} within {timeout}s")
                time.sleep(0.01)

    def rekey(self, server_id: str) -> Host:
        """A new host key for the server, and its sshd restarted with it."""
        with self._lock:
            host = self._hosts[server_id]
            self._write_host_key(host)
            return self.start(server_id)

    def stop(self, server_id: str) -> None:
        """Stop the server's sshd (it keeps its address, keys and root)."""
        with self._lock:
            host = self._hosts.get(server_id)
        if host is not None:
            self._stop_proc(host)

    def remove(self, server_id: str) -> None:
        with self._lock:
            host = self._hosts.pop(server_id, None)
        if host is not None:  # its root stays until reset/exit: tests look at it
            self._stop_proc(host)

    def clear(self) -> None:
        """Stop every sshd and forget every host (reset, exit)."""
        with self._lock:
            ids = list(self._hosts)
        for server_id in ids:
            self.remove(server_id)
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)
            self._base = None

    def info(self) -> dict[str, Any]:
        with self._lock:
            out = {}
            for sid, h in self._hosts.items():
                out[sid] = {**h.info(), "user": self._user or ""}
            return out

    # -- helpers ----------------------------------------------------------
    @staticmethod
    def _write_host_key(host: Host) -> None:
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        path = host.dir / "host_ed25519"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        host.host_key = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()

    @staticmethod
    def _stop_proc(host: Host) -> None:
        proc, host.proc = host.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # the listener and the sessions it forked (each in its own session)
            for pid in [proc.pid, *_children_of(proc.pid)]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
