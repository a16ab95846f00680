"""The project's SSH host-key pins: ``.cloudtmpl/keys/known_hosts`` (mode 0600).

A software deployment trusts a server's host key on first use and pins it.  The
pin is kept twice: in the deployment's state record (``host_key``: what a team
sharing a state backend sees) and in this file, so that moving the state aside
(which the state's own diagnostics call safe) does not make the next run trust
whatever key a server - or a man in the middle - presents.

The file is in OpenSSH's known_hosts format, one pin a line::

    [127.0.0.5]:2222 ssh-ed25519 AAAAC3... cloudtmpl:server=SERVER_ID

(a bare host for port 22, as OpenSSH writes it), so ``ssh -o
UserKnownHostsFile=.cloudtmpl/keys/known_hosts`` can use it too.  The comment ties
a pin to the server it was learned from (empty for a deployment given only an
address): a replacement server (a new id) behind the same address is learned
afresh, as with the pins in the state.  A line without that comment (one a person
added) pins the address for every server.
Lines cloudtmpl does not read (hashed names, patterns, ``@`` markers, comments)
are kept as they are and ignored.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

SERVER_TAG = "cloudtmpl:server="


def host_pattern(host: str, port: int) -> str:
    """How known_hosts names ``host:port``: the bare host for 22, else ``[host]:port``."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key_base64: str) -> str:
    """OpenSSH's ``SHA256:`` fingerprint of a base64 public key blob."""
    blob = base64.b64decode(key_base64)
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class Pin:
    host: str  # as known_hosts names it (host_pattern)
    key_type: str
    key: str  # base64 blob
    server: str | None  # "": a deployment given only an address; None: every server
    line: int  # 1-based, in the file

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def text(self) -> str:
        tag = f" {SERVER_TAG}{self.server}" if self.server is not None else ""
        return f"{self.host} {self.key_type} {self.key}{tag}"


def parse_line(text: str, number: int) -> Pin | None:
    """A pin from one line, or None for a line cloudtmpl does not read."""
    fields = text.split()
    if len(fields) < 3 or fields[0].startswith(("#", "@", "|")):
        return None
    host, key_type, key = fields[:3]
    if "," in host or "*" in host or "?" in host or host.startswith("!"):
        return None
    try:
        base64.b64decode(key, validate=True)
    except ValueError:
        return None
    server = next((f[len(SERVER_TAG):] for f in fields[3:] if f.startswith(SERVER_TAG)), None)
    return Pin(host, key_type, key, server, number)


def find(lines: list[str], server: str, host: str, port: int) -> Pin | None:
    """The pin for ``server`` at ``host:port``: its own line, else a line for every server."""
    pattern = host_pattern(host, port)
    pins = [p for n, text in enumerate(lines, 1)
            if (p := parse_line(text, n)) is not None and p.host == pattern]
    own = [p for p in pins if p.server == server]
    anyone = [p for p in pins if p.server is None]
    hits = own or anyone
    return hits[-1] if hits else None


def replace(lines: list[str], pin: Pin) -> list[str]:
    """``lines`` with ``pin`` instead of the lines pinning the same server and address."""
    kept = []
    for n, text in enumerate(lines, 1):
        old = parse_line(text, n)
        if old is not None and old.host == pin.host and old.server == pin.server:
            continue
        kept.append(text)
    return [*kept, pin.text()]


class KnownHosts:
    """The pins file of one project; every read-modify-write holds an flock on it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[TextIO]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+", encoding="utf-8", errors="replace") as fh:
            os.fchmod(fd, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fh

    def _lines(self) -> list[str]:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def lookup(self, server: str, host: str, port: int) -> Pin | None:
        return find(self._lines(), server, host, port)

    def pin(self, server: str, host: str, port: int, key_type: str, key: str) -> None:
        """Pin ``key`` for ``server`` (``""``: a deployment given only an address) at
        ``host:port``, replacing its earlier pin there."""
        new = Pin(host_pattern(host, port), key_type, key, server, 0)
        with self._locked() as fh:
            lines = fh.read().splitlines()
            current = find(lines, server, host, port)
            if current is not None and current.server == new.server \
                    and (current.key_type, current.key) == (key_type, key):
                return
            fh.seek(0)
            fh.truncate()
            fh.write("".join(f"{line}\n" for line in replace(lines, new)))
