"""SSH for software deployments: connect (with a pinned host key), run, upload.

Host keys are trusted on first use and pinned after that: the caller passes the
fingerprint it recorded earlier (``SHA256:...`` as OpenSSH prints it) or None
for a host it has never seen; a different key is a :class:`HostKeyMismatch`.
paramiko's known_hosts files and its ``AutoAddPolicy`` are never used.

Everything a deployment runs goes over one ``sh -s`` channel with the script,
files and environment on *stdin* (:func:`bundle`), so no secret appears in a
process's arguments on either side.  The pieces that do not touch the network
(fingerprints, the bundle, parsing its answer, redaction, back-off) are pure.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shlex
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

REDACTED = "******"


# paramiko logs connection errors with tracebacks; ours become diagnostics instead
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False


class SshError(Exception):
    """Connecting or running failed; ``message`` names the host."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retry = retry


class HostKeyMismatch(SshError):
    def __init__(self, host: str, expected: str, got: str) -> None:
        super().__init__(
            f"host key of {host} changed: expected {expected}, got {got} - possible "
            "man-in-the-middle, or the server was rebuilt (if so, replace the deployment "
            "or clear its recorded host_key)"
        )
        self.expected = expected
        self.got = got


def fingerprint(key: paramiko.PKey | bytes) -> str:
    """OpenSSH's fingerprint of a public key (``SHA256:`` + unpadded base64)."""
    blob = key if isinstance(key, bytes) else key.asbytes()
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class PinnedHostKey(paramiko.MissingHostKeyPolicy):
    """Accept exactly ``expected`` (or, with None, the first key seen) and remember it."""

    def __init__(self, label: str, expected: str | None) -> None:
        self.label = label
        self.expected = expected
        self.seen: str | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        got = fingerprint(key)
        if self.expected is not None and got != self.expected:
            raise HostKeyMismatch(self.label, self.expected, got)
        self.seen = got


def backoff(first: float = 0.2, factor: float = 1.6, cap: float = 3.0) -> Iterator[float]:
    """Delays between connection attempts: growing, capped."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * factor)


def load_key(path: str | Path) -> paramiko.PKey:
    """A private key file (OpenSSH or PEM; Ed25519, ECDSA or RSA)."""
    try:
        return paramiko.PKey.from_path(str(path))
    except (OSError, paramiko.SSHException, ValueError) as err:
        raise SshError(f"cannot read private key {path}: {err}") from None


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int = 22
    user: str = "cloudtmpl"

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass
class Connection:
    """An open session to one host (and the bastion it goes through, if any)."""

    client: paramiko.SSHClient
    host_key: str
    bastion: paramiko.SSHClient | None = None
    bastion_host_key: str | None = None

    def close(self) -> None:
        self.client.close()
        if self.bastion is not None:
            self.bastion.close()

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None
            ) -> tuple[int, bytes, bytes]:
        """Run ``command``; (exit status, stdout, stderr)."""
        transport = self.client.get_transport()
        if transport is None:
            raise SshError("connection closed")
        chan = transport.open_session(timeout=timeout)
        try:
            if timeout is not None:
                chan.settimeout(timeout)
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                elif chan.exit_status_ready() and not chan.recv_ready() \
                        and not chan.recv_stderr_ready():
                    break
                else:
                    time.sleep(0.002)
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            return chan.recv_exit_status(), bytes(out), bytes(err)
        except TimeoutError:
            raise SshError(f"command timed out after {timeout}s") from None
        finally:
            chan.close()

    def upload(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write ``data`` to ``path`` on the host (parents created)."""
        q = shlex.quote(path)
        status, _, err = self.run(
            f"umask 077; mkdir -p \"$(dirname {q})\" && cat > {q} && chmod {mode:o} {q}", data)
        if status != 0:
            raise SshError(f"upload to {path} failed: {err.decode(errors='replace').strip()}")


def _socket(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _client(ep: Endpoint, pkey: paramiko.PKey, expected: str | None, timeout: float,
            sock: Any) -> tuple[paramiko.SSHClient, str]:
    client = paramiko.SSHClient()
    policy = PinnedHostKey(ep.label, expected)
    client.set_missing_host_key_policy(policy)
    try:
        client.connect(ep.host, ep.port, username=ep.user, pkey=pkey, sock=sock,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                       allow_agent=False, look_for_keys=False)
    except HostKeyMismatch:
        client.close()
        raise
    except paramiko.AuthenticationException as err:
        client.close()
        raise SshError(f"{ep.label}: authentication failed ({err}); check the user and "
                       "that the server was created with this key pair") from None
    except (paramiko.SSHException, OSError, EOFError) as err:
        client.close()
        raise SshError(f"{ep.label}: {type(err).__name__}: {err}", retry=True) from None
    assert policy.seen is not None
    return client, policy.seen


def connect(ep: Endpoint, pkey: paramiko.PKey, expected: str | None, *,
            timeout: float = 10.0, bastion: Endpoint | None = None,
            bastion_key: paramiko.PKey | None = None,
            bastion_expected: str | None = None) -> Connection:
    """One attempt: TCP (through ``bastion`` if given), host key check, key auth."""
    jump: paramiko.SSHClient | None = None
    jump_fp: str | None = None
    try:
        if bastion is not None:
            try:
                bsock = _socket(bastion.host, bastion.port, timeout)
            except OSError as err:
                raise SshError(f"bastion {bastion.label}: {err}", retry=True) from None
            jump, jump_fp = _client(bastion, bastion_key or pkey, bastion_expected, timeout,
                                    bsock)
            transport = jump.get_transport()
            assert transport is not None
            try:
                sock: Any = transport.open_channel(
                    "direct-tcpip", (ep.host, ep.port), ("127.0.0.1", 0), timeout=timeout)
            except (paramiko.SSHException, OSError) as err:
                raise SshError(f"{ep.label} via {bastion.label}: {err}", retry=True) from None
        else:
            try:
                sock = _socket(ep.host, ep.port, timeout)
            except OSError as err:
                raise SshError(f"{ep.label}: {err}", retry=True) from None
        client, fp = _client(ep, pkey, expected, timeout, sock)
    except BaseException:
        if jump is not None:
            jump.close()
        raise
    return Connection(client, fp, jump, jump_fp)


def wait_connect(ep: Endpoint, pkey: paramiko.PKey, expected: str | None, *,
                 timeout: float, attempt_timeout: float = 10.0,
                 bastion: Endpoint | None = None, bastion_key: paramiko.PKey | None = None,
                 bastion_expected: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> Connection:
    """Connect, retrying with back-off while the host is not up yet, for ``timeout`` seconds.

    Refused or unreachable ports and half-started sshds are retried; a wrong host
    key or a refused key is not (waiting would not help).
    """
    deadline = clock() + timeout
    delays = backoff()
    attempts = 0
    while True:
        attempts += 1
        left = deadline - clock()
        try:
            return connect(ep, pkey, expected, timeout=max(0.5, min(attempt_timeout, left)),
                           bastion=bastion, bastion_key=bastion_key,
                           bastion_expected=bastion_expected)
        except SshError as err:
            if not err.retry:
                raise
            delay = next(delays)
            if clock() + delay >= deadline:
                raise SshError(
                    f"{ep.label} did not accept SSH connections within {timeout:g}s "
                    f"({attempts} attempts; last error: {err.message}) - check the address, "
                    "port and security group, and that the server is running") from None
            sleep(delay)


# -- the deployment bundle ------------------------------------------------------
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MARK = "__CLOUDTMPL_EOF__"


def valid_name(name: str) -> bool:
    """Whether ``name`` can be an environment variable / output name."""
    return bool(_NAME.match(name))


def _heredoc(data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    lines = [encoded[i:i + 76] for i in range(0, len(encoded), 76)]
    return "\n".join(lines) + f"\n{_MARK}\n"


@dataclass(frozen=True)
class Bundle:
    """What one deployment run sends: script, files, environment, wanted outputs."""

    script: str
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)  # path on the host -> content
    outputs: Sequence[str] = ()
    config_json: str | None = None  # a structured config: $heat_config_path


def bundle(b: Bundle) -> bytes:
    """A POSIX sh program (fed to ``sh -s``) that runs ``b`` in a private temporary
    directory and prints a parseable report (see :func:`parse_report`).

    The script runs as an executable when it starts with ``#!``, else with ``sh``;
    Heat's ``$heat_outputs_path.<name>`` files become outputs.
    """
    for name in (*b.env, *b.outputs):
        if not valid_name(name):
            raise ValueError(f"{name!r} is not a valid input/output name")
    parts = [
        "umask 077\n",
        'd=$(mktemp -d "${TMPDIR:-/tmp}/cloudtmpl.XXXXXX") || exit 97\n',
        "trap 'rm -rf \"$d\"' EXIT\n",
        'cd "$d" || exit 97\n',
        f"base64 -d > \"$d/script\" <<'{_MARK}'\n", _heredoc(b.script.encode()),
        'chmod 700 "$d/script"\n',
    ]
    for path, content in sorted(b.files.items()):
        q = shlex.quote(path)
        parts += [f'mkdir -p "$(dirname {q})" && base64 -d > {q} <<\'{_MARK}\'\n',
                  _heredoc(content.encode())]
    if b.config_json is not None:
        parts += [f"base64 -d > \"$d/config.json\" <<'{_MARK}'\n", _heredoc(b.config_json.encode()),
                  'heat_config_path="$d/config.json"; export heat_config_path\n']
    parts.append('heat_outputs_path="$d/outputs"; export heat_outputs_path\n')
    for name, value in sorted(b.env.items()):
        parts.append(f"{name}={shlex.quote(value)}; export {name}\n")
    runner = '"$d/script"' if b.script.startswith("#!") else 'sh "$d/script"'
    parts += [
        f'{runner} > "$d/.stdout" 2> "$d/.stderr" < /dev/null\n',
        "rc=$?\n",
        'emit() { printf "%s " "$1"; base64 < "$2" | tr -d "\\n"; printf "\\n"; }\n',
        'printf "rc %s\\n" "$rc"\n',
        'emit stdout "$d/.stdout"\n',
        'emit stderr "$d/.stderr"\n',
    ]
    for name in b.outputs:
        parts.append(f'[ -f "$d/outputs.{name}" ] && emit out.{name} "$d/outputs.{name}"\n')
    parts.append("exit 0\n")
    return "".join(parts).encode()


@dataclass(frozen=True)
class Report:
    status: int
    stdout: str
    stderr: str
    outputs: Mapping[str, str]


def parse_report(text: str) -> Report:
    """The answer of a :func:`bundle` run."""
    status: int | None = None
    values: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key == "rc":
            status = int(rest)
            continue
        if key not in ("stdout", "stderr") and not key.startswith("out."):
            continue
        decoded = base64.b64decode(rest).decode(errors="replace") if rest else ""
        if key.startswith("out."):
            outputs[key[4:]] = decoded
        else:
            values[key] = decoded
    if status is None:
        raise ValueError("no exit status in the deployment's report")
    return Report(status, values.get("stdout", ""), values.get("stderr", ""), outputs)


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ``******`` (longest first)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def tail(text: str, lines: int = 10, chars: int = 2000) -> str:
    """The last few lines of ``text`` (for error messages)."""
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept[-chars:]
