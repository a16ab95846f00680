"""Servers you can SSH into: real ``sshd`` processes on loopback, for both sandbox clouds.

A sandbox server created with a key pair is a :class:`Host`: on every loopback
address the cloud reports for it (its own address, and each floating/elastic IP
associated with it) runs an ``sshd -D -e -f CONFIG`` that

* authorises exactly the public key of the key pair it was created with,
* refuses passwords (``PasswordAuthentication no``, ``UsePAM no``),
* has the server's own Ed25519 host key (the same on every address), and
* exports the server's root directory to every command as ``SERVER_ROOT`` (and its
  id as ``SERVER_ID``), so tests can see what ran where.

Beside the root, ``booted`` and ``halted`` hold the epoch time (``date +%s.%N``'s
clock) at which the server's sshd first listened and at which it was deleted: a
drain hook's own timestamp can be put between them.

One process per address, so a floating IP moving to another server starts and
stops only that address's sshd: sessions on the server's other addresses go on.
Logins are as the unprivileged user ``cloudtmpl`` (created with shell /bin/sh
and password ``*`` when the emulator runs as root), else as the current user.
Every sshd is tracked by its Popen and stopped when its server is deleted or
its address moves away, on reset and when the sandbox exits.

Addresses come from :class:`LoopbackPool` networks inside 127.0.0.0/8 chosen at
random per sandbox process (the OpenStack emulator in 127.16-127.127.x.x, the
AWS sandbox in 127.128-127.254.x.x), and an address something already answers
on is skipped, so sandboxes running at once do not collide.
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
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

LOGIN_USER = "cloudtmpl"


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


class LoopbackPool:
    """Free loopback addresses of one network, handed out in turn."""

    def __init__(self, network: ipaddress.IPv4Network, port: int) -> None:
        if not network.is_loopback:
            raise ValueError(f"{network} is not a loopback network")
        self.network = network
        self._port = port
        self._lock = threading.Lock()
        self._used: set[str] = set()
        self._next = 0

    def __contains__(self, address: object) -> bool:
        try:
            return ipaddress.ip_address(str(address)) in self.network
        except ValueError:
            return False

    def allocate(self) -> str:
        hosts = self.network.num_addresses
        with self._lock:
            for _ in range(hosts):
                n, self._next = self._next, (self._next + 1) % hosts
                addr = str(self.network[n])
                if n % 256 in (0, 255) or addr in self._used or _answers(addr, self._port):
                    continue
                self._used.add(addr)
                return addr
        raise RuntimeError(f"no free loopback address left in {self.network}")

    def release(self, address: str) -> None:
        with self._lock:
            self._used.discard(address)


def _answers(address: str, port: int) -> bool:
    """Whether something (another sandbox's sshd) already listens there."""
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


def random_network(prefix: int, second: tuple[int, int]) -> ipaddress.IPv4Network:
    """A random ``127.S.x.x`` network of ``prefix`` bits with S in ``second``."""
    rng = random.SystemRandom()
    base = ipaddress.IPv4Address(f"127.{rng.randrange(*second)}.0.0")
    size = 2 ** (32 - prefix)
    offset = rng.randrange(0, 65536 // size) * size
    return ipaddress.IPv4Network(f"{base + offset}/{prefix}")


@dataclass
class Host:
    server_id: str
    region: str
    port: int
    dir: Path
    public_key: str
    addresses: list[str] = field(default_factory=list)  # where it listens, own first
    host_key: str = ""  # public half, OpenSSH line
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    held: bool = False  # stopped on purpose (``POST .../stop``): not restarted by sync
    failed: set[str] = field(default_factory=set)  # addresses sshd would not start on

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def running(self) -> bool:
        return any(p.poll() is None for p in self.procs.values())

    def info(self, user: str) -> dict[str, Any]:
        alive = {a: p.pid for a, p in self.procs.items() if p.poll() is None}
        return {
            "address": self.addresses[0] if self.addresses else "",
            "addresses": list(self.addresses),
            "port": self.port,
            "region": self.region,
            "root": str(self.root),
            "user": user,
            "host_key": self.host_key,
            "host_key_fingerprint": fingerprint(self.host_key) if self.host_key else "",
            "pid": next(iter(alive.values()), None),
            "pids": alive,
            "running": bool(alive),
        }


def _stamp(host: Host, event: str) -> None:
    """Record when the server first listened (``booted``) and when it was deleted
    (``halted``), as epoch seconds in a file beside its root (the first time only)."""
    path = host.dir / event
    if not path.exists():
        path.write_text(f"{time.time():.6f}\n")


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


def kill_processes_of(server_id: str) -> None:
    """SIGKILL every process whose environment says it runs on ``server_id`` (the
    ``SERVER_ID`` each session of its sshd exports; Linux /proc, readable for the
    sandbox's own user or root)."""
    mark = f"SERVER_ID={server_id}".encode()
    for entry in Path("/proc").glob("[0-9]*/environ"):
        try:
            env = entry.read_bytes().split(b"\0")
        except OSError:
            continue
        if mark in env:
            with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                os.kill(int(entry.parent.name), signal.SIGKILL)


class SshHosts:
    """A sandbox's sshd processes, keyed by server id."""

    def __init__(self, base: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._hosts: dict[str, Host] = {}
        self._base = base
        self._user: str | None = None

    # -- lifecycle --------------------------------------------------------
    def _dir(self) -> Path:
        if self._base is None:
            self._base = Path(tempfile.mkdtemp(prefix="cloudtmpl-sshd-"))
            self._base.chmod(0o755)  # sshd reads authorized_keys as the login user
        return self._base

    def add(self, server_id: str, region: str, port: int, public_key: str,
            addresses: list[str] | None = None) -> Host:
        """Register a server (its sshd starts with :meth:`start` or :meth:`sync`)."""
        with self._lock:
            host = Host(server_id, region, port, self._dir() / server_id, public_key,
                        list(addresses or []))
            self._hosts[server_id] = host
            return host

    def get(self, server_id: str) -> Host | None:
        with self._lock:
            return self._hosts.get(server_id)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._hosts)

    def sync(self, server_id: str, addresses: list[str], up: bool) -> None:
        """Listen on exactly ``addresses`` while ``up`` (the server runs); else nowhere.

        An sshd that fails to start is reported on stderr and left down: the server
        stays up, as a VM whose sshd did not come up would.
        """
        with self._lock:
            host = self._hosts.get(server_id)
            if host is None:
                return
            host.addresses = list(dict.fromkeys(addresses))
            want = set(host.addresses) if up and not host.held else set()
            for addr in [a for a in host.procs if a not in want]:
                self._stop_address(host, addr)
            for addr in host.addresses:
                if addr in want and addr not in host.failed and not self._alive(host, addr):
                    try:
                        self._start_address(host, addr)
                    except (OSError, RuntimeError) as exc:  # not retried on every sync
                        host.failed.add(addr)
                        print(f"sandbox: {exc}", file=sys.stderr, flush=True)

    def start(self, server_id: str) -> Host:
        """Start the server's sshd on each of its addresses (and stop holding it)."""
        with self._lock:
            host = self._hosts[server_id]
            host.held = False
            host.failed.clear()
            for addr in host.addresses:
                if not self._alive(host, addr):
                    self._start_address(host, addr)
            return host

    def rekey(self, server_id: str) -> Host:
        """A new host key for the server, and its sshd restarted with it."""
        with self._lock:
            host = self._hosts[server_id]
            self._write_host_key(host)
            for addr in list(host.procs):
                self._stop_address(host, addr)
            return self.start(server_id)

    def stop(self, server_id: str, hold: bool = False) -> None:
        """Stop the server's sshd (it keeps its addresses, keys and root); with ``hold``
        it stays down until :meth:`start`, whatever the server does."""
        with self._lock:
            host = self._hosts.get(server_id)
            if host is None:
                return
            host.held = host.held or hold
            for addr in list(host.procs):
                self._stop_address(host, addr)

    def remove(self, server_id: str) -> None:
        """The server is deleted: its sshds stop, and whatever still runs on it (a
        script in a session of its own, started through it) is killed, as a deleted
        VM's processes are."""
        with self._lock:
            host = self._hosts.pop(server_id, None)
            if host is not None:  # its root stays until reset/exit: tests look at it
                for addr in list(host.procs):
                    self._stop_address(host, addr)
                kill_processes_of(server_id)
                if host.dir.exists():
                    _stamp(host, "halted")

    def clear(self) -> None:
        """Stop every sshd and forget every host (reset, exit)."""
        for server_id in self.ids():
            self.remove(server_id)
        with self._lock:
            if self._base is not None:
                shutil.rmtree(self._base, ignore_errors=True)
                self._base = None

    def info(self) -> dict[str, Any]:
        with self._lock:
            return {sid: h.info(self._user or "") for sid, h in self._hosts.items()}

    def admin(self, method: str, path: str) -> tuple[int, Any] | None:
        """The sandbox's ``/_sandbox/servers`` endpoints, or None for another path.

        ``GET /_sandbox/servers``: id -> addresses, port, root, user, host key, pids;
        ``POST /_sandbox/servers/ID/rekey`` (a new host key, sshd restarted with it),
        ``.../stop`` (down until ``.../start``, as if sshd died in the VM), ``.../start``.
        """
        if path == "/_sandbox/servers" and method == "GET":
            return 200, self.info()
        parts = path.split("/")
        if not (len(parts) == 5 and parts[1:3] == ["_sandbox", "servers"] and method == "POST"
                and parts[4] in ("rekey", "stop", "start")):
            return None
        server_id = parts[3]
        if self.get(server_id) is None:
            return 404, {"error": f"no sshd-backed server {server_id}"}
        try:
            if parts[4] == "rekey":
                self.rekey(server_id)
            elif parts[4] == "stop":
                self.stop(server_id, hold=True)
            else:
                self.start(server_id)
        except (OSError, RuntimeError) as exc:
            return 500, {"error": str(exc)}
        return 200, self.info()[server_id]

    # -- one sshd per address ------------------------------------------------
    @staticmethod
    def _alive(host: Host, address: str) -> bool:
        proc = host.procs.get(address)
        return proc is not None and proc.poll() is None

    def _prepare(self, host: Host) -> str:
        binary = sshd_path()
        if binary is None:
            raise RuntimeError("sshd is not installed")
        if self._user is None:
            self._user = ensure_login_user()
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        host.dir.mkdir(parents=True, exist_ok=True)
        host.dir.chmod(0o755)
        if not host.root.exists():
            host.root.mkdir()
            if os.geteuid() == 0:
                user = pwd.getpwnam(self._user)
                os.chown(host.root, user.pw_uid, user.pw_gid)
        if not (host.dir / "host_ed25519").exists():
            self._write_host_key(host)
        keys = host.dir / "authorized_keys"
        keys.write_text(host.public_key.strip() + "\n")
        keys.chmod(0o644)
        return binary

    def _start_address(self, host: Host, address: str, timeout: float = 5.0) -> None:
        binary = self._prepare(host)
        config = host.dir / f"sshd_config.{address}"
        config.write_text(
            f"ListenAddress {address}\n"
            f"Port {host.port}\n"
            f"HostKey {host.dir / 'host_ed25519'}\n"
            f"PidFile {host.dir / f'sshd.{address}.pid'}\n"
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
            proc = subprocess.Popen(
                [binary, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        finally:
            log.close()
        host.procs[address] = proc
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                host.procs.pop(address, None)
                tail = (host.dir / "sshd.log").read_text(errors="replace")[-400:]
                raise RuntimeError(f"sshd for {host.server_id} on {address} exited: {tail}")
            try:
                with socket.create_connection((address, host.port), timeout=0.5):
                    pass
                if proc.poll() is None:
                    _stamp(host, "booted")
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self._stop_address(host, address)
                raise RuntimeError(f"sshd for {host.server_id} did not listen on "
                                   f"{address}:{host.port} within {timeout}s")
            time.sleep(0.01)

    def _stop_address(self, host: Host, address: str) -> None:
        proc = host.procs.pop(address, None)
        if proc is None or proc.poll() is not None:
            return
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
