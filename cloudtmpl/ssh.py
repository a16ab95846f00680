"""SSH for software deployments: connect (with a pinned host key), run, stop.

Host keys are trusted on first use and pinned after that: the caller passes the
fingerprint it recorded earlier (``SHA256:...`` as OpenSSH prints it) or None
for a host it has never seen; a different key is a :class:`HostKeyMismatch`.
paramiko's known_hosts handling and its ``AutoAddPolicy`` are never used (the
project's own pins file is :mod:`cloudtmpl.known_hosts`).

Everything a deployment runs goes over one ``sh -s`` channel with the script,
files and environment on *stdin* (:func:`bundle`), so no secret appears in a
process's arguments on either side.  The script runs in a session of its own on
the server; :meth:`Connection.run_script` kills that session's process group over
a second channel when its caller says stop (a timeout, an interrupt).  Only a
bounded part of its output comes back (:class:`Stream`).  The pieces that do not
touch the network (fingerprints, the bundle, parsing its answer, redaction,
back-off) are pure.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import select
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
    def __init__(self, host: str, expected: str, got: str, source: str = "") -> None:
        super().__init__(
            f"host key of {host} changed: expected {expected}"
            + (f" (pinned {source})" if source else "")
            + f", got {got}; nothing was run - possible man-in-the-middle, or the server "
            "was rebuilt (if so, replace the deployment, or clear its recorded host_key "
            "and remove the pin from .cloudtmpl/keys/known_hosts: ssh-keygen -R HOST "
            "-f .cloudtmpl/keys/known_hosts)"
        )
        self.expected = expected
        self.got = got


def fingerprint(key: paramiko.PKey | bytes) -> str:
    """OpenSSH's fingerprint of a public key (``SHA256:`` + unpadded base64)."""
    blob = key if isinstance(key, bytes) else key.asbytes()
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class Expected:
    """A pinned host key's fingerprint, and where it is pinned (for the message)."""

    fingerprint: str
    source: str = ""


class PinnedHostKey(paramiko.MissingHostKeyPolicy):
    """Accept exactly ``expected`` (or, with None, the first key seen) and remember it
    (``seen``: its fingerprint; ``seen_key``: its type and base64 blob)."""

    def __init__(self, label: str, expected: str | Expected | None) -> None:
        self.label = label
        self.expected = Expected(expected) if isinstance(expected, str) else expected
        self.seen: str | None = None
        self.seen_key: tuple[str, str] = ("", "")

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        got = fingerprint(key)
        if self.expected is not None and got != self.expected.fingerprint:
            raise HostKeyMismatch(self.label, self.expected.fingerprint, got,
                                  self.expected.source)
        self.seen = got
        self.seen_key = (key.get_name(), key.get_base64())


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
    host_key_blob: tuple[str, str] = ("", "")  # (type, base64), for known_hosts
    bastion_key_blob: tuple[str, str] = ("", "")

    def close(self) -> None:
        self.client.close()
        if self.bastion is not None:
            self.bastion.close()

    def run_script(self, data: bytes, should_stop: Callable[[], str | None], *,
                   poll: float = 0.1) -> Finished:
        """Run a :func:`bundle` (``data``, fed to ``sh -s``) until it ends or
        ``should_stop`` gives a reason; then its remote process group is killed
        (:meth:`kill`) and what the remote shell still reports is read for a few seconds.
        """
        transport = self.client.get_transport()
        if transport is None:
            raise SshError("connection closed")
        chan = transport.open_session(timeout=OPEN_TIMEOUT)
        try:
            chan.exec_command("sh -s")
            chan.sendall(data)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            target: str | None = None
            stopped: str | None = None
            killed = False
            kill_note = ""
            give_up = 0.0
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                    if len(out) > REPORT_BYTES:
                        raise SshError(f"the remote shell's report exceeded {REPORT_BYTES} bytes")
                while chan.recv_stderr_ready():
                    chunk = chan.recv_stderr(65536)
                    err = (err + chunk)[-TAIL_BYTES:]
                if target is None:
                    target = _kill_target(out)
                if chan.exit_status_ready() and not chan.recv_ready() \
                        and not chan.recv_stderr_ready():
                    break
                now = time.monotonic()
                if stopped is None:
                    stopped = should_stop()
                    give_up = now + REPORT_WAIT
                if stopped is not None and not killed and (target is not None or now >= give_up):
                    # (a run stopped at once waits for the line that says what to kill)
                    kill_note = self.kill(target)
                    killed = True
                    give_up = time.monotonic() + REPORT_WAIT
                elif killed and now >= give_up:
                    break
                select.select([chan], [], [], poll)
            status = chan.recv_exit_status() if chan.exit_status_ready() else -1
            return Finished(status, bytes(out), bytes(err), stopped, kill_note)
        finally:
            chan.close()

    def kill(self, target: str | None) -> str:
        """Kill a running bundle's script (``target`` as :func:`_kill_target` gives it:
        ``-PGID`` for its process group, or ``PID``) over a second channel: TERM, then KILL
        if it is still there 2 seconds later.  '' when done, else why it could not be."""
        if target is None:
            return "the remote shell had not reported its process group, so nothing was killed"
        program = (f"t={target}\n"
                   'kill -s TERM -- "$t" 2>/dev/null || exit 0\n'
                   "i=0\n"
                   'while [ "$i" -lt 20 ] && kill -s 0 -- "$t" 2>/dev/null; do\n'
                   "  sleep 0.1; i=$((i + 1))\n"
                   "done\n"
                   'kill -s KILL -- "$t" 2>/dev/null\n'
                   "exit 0\n").encode()
        try:
            transport = self.client.get_transport()
            if transport is None or not transport.is_active():
                raise SshError("the connection is closed")
            chan = transport.open_session(timeout=OPEN_TIMEOUT)
            try:
                chan.settimeout(OPEN_TIMEOUT)
                chan.exec_command("sh -s")
                chan.sendall(program)
                chan.shutdown_write()
                chan.recv_exit_status()
            finally:
                chan.close()
        except (SshError, paramiko.SSHException, OSError, EOFError) as exc:
            return (f"the remote process group could not be killed ({exc}); the server's "
                    "own watchdog kills it at the deadline")
        if not target.startswith("-"):
            return ("the server has no setsid, so only the script's own process was killed "
                    "(not what it started)")
        return ""


OPEN_TIMEOUT = 10.0  # opening a channel, and the kill program's run
REPORT_WAIT = 5.0  # reading what a killed bundle still reports
TAIL_BYTES = 64 * 1024  # of each stream: kept in memory, the state and the attributes
LOG_HEAD_BYTES = 1024 * 1024  # of each stream: the first bytes also written to the log
OUTPUT_BYTES = 1024 * 1024  # the largest output value ($heat_outputs_path.NAME) read back
REPORT_BYTES = 16 * 1024 * 1024  # a bundle's report is far smaller; a bound all the same
WATCHDOG_MARGIN = 10  # seconds past the deadline at which the server kills the script itself


@dataclass(frozen=True)
class Finished:
    """How a bundle's run ended: the channel's status and output (the report), and
    whether it was stopped (``stopped``: why; ``kill``: '' or why the kill fell short)."""

    status: int
    out: bytes
    err: bytes
    stopped: str | None = None
    kill: str = ""


def _kill_target(out: bytes | bytearray) -> str | None:
    """What to kill, from the report's first line (``pgid N`` or ``pid N``)."""
    first, newline, _ = bytes(out[:64]).partition(b"\n")
    if not newline:
        return None
    key, _, value = first.decode(errors="replace").partition(" ")
    if not value.isdigit():
        return None
    return f"-{value}" if key == "pgid" else value if key == "pid" else None


def _socket(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _client(ep: Endpoint, pkey: paramiko.PKey, expected: str | Expected | None,
            timeout: float, sock: Any) -> tuple[paramiko.SSHClient, PinnedHostKey]:
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
    return client, policy


def connect(ep: Endpoint, pkey: paramiko.PKey, expected: str | Expected | None, *,
            timeout: float = 10.0, bastion: Endpoint | None = None,
            bastion_key: paramiko.PKey | None = None,
            bastion_expected: str | Expected | None = None) -> Connection:
    """One attempt: TCP (through ``bastion`` if given), host key check, key auth."""
    jump: paramiko.SSHClient | None = None
    jump_policy: PinnedHostKey | None = None
    try:
        if bastion is not None:
            try:
                bsock = _socket(bastion.host, bastion.port, timeout)
            except OSError as err:
                raise SshError(f"bastion {bastion.label}: {err}", retry=True) from None
            jump, jump_policy = _client(bastion, bastion_key or pkey, bastion_expected,
                                        timeout, bsock)
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
        client, policy = _client(ep, pkey, expected, timeout, sock)
    except BaseException:
        if jump is not None:
            jump.close()
        raise
    assert policy.seen is not None
    return Connection(client, policy.seen, jump, jump_policy.seen if jump_policy else None,
                      policy.seen_key, jump_policy.seen_key if jump_policy else ("", ""))


def wait_connect(ep: Endpoint, pkey: paramiko.PKey, expected: str | Expected | None, *,
                 timeout: float, attempt_timeout: float = 10.0,
                 bastion: Endpoint | None = None, bastion_key: paramiko.PKey | None = None,
                 bastion_expected: str | Expected | None = None,
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
    limit: int | None = None  # seconds after which the server's watchdog kills the script


def bundle(b: Bundle) -> bytes:
    """A POSIX sh program (fed to ``sh -s``) that runs ``b`` in a private temporary
    directory and prints a parseable report (see :func:`parse_report`).

    The script runs as an executable when it starts with ``#!``, else with ``sh``;
    Heat's ``$heat_outputs_path.<name>`` files become outputs.  It runs in the
    background in a session of its own (``setsid``, where the server has it): the
    report's first line, ``pgid N`` (or ``pid N`` without setsid), says what to kill
    to stop it and everything it started.  With ``limit``, a watchdog on the server
    (in a session of its own too, killed when the script ends) kills the script's
    process group that many seconds later, should nobody else (a killed or
    disconnected cloudtmpl).  Of each stream, the report holds its size, the last
    ``TAIL_BYTES`` and, before those, up to ``LOG_HEAD_BYTES`` of its beginning.
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
    io = '> "$d/.stdout" 2> "$d/.stderr" < /dev/null'
    watchdog = ""
    if b.limit is not None:
        watchdog = (
            "  setsid sh -c 'sleep \"$1\"; kill -s TERM -- \"-$2\" 2>/dev/null; sleep 2; "
            "kill -s KILL -- \"-$2\" 2>/dev/null' watchdog "
            f'{int(b.limit) + WATCHDOG_MARGIN} "$p" > /dev/null 2>&1 < /dev/null &\n'
            "  w=$!\n")
    parts += [
        "w=\n",
        "if command -v setsid > /dev/null 2>&1; then\n",
        f"  setsid {runner} {io} &\n",
        '  p=$!; printf "pgid %s\\n" "$p"\n',
        watchdog,
        "else\n",
        f"  {runner} {io} &\n",
        '  p=$!; printf "pid %s\\n" "$p"\n',
        "fi\n",
        'wait "$p"; rc=$?\n',
        # the report may go to a closed channel (a stopped run): the trap still cleans up
        "trap '' PIPE\n",
        # the watchdog's group, and its pid: a script that ends at once can end before
        # the watchdog's setsid made the group
        '[ -n "$w" ] && { kill -s TERM -- "-$w" 2>/dev/null; kill -s TERM "$w" 2>/dev/null; }\n',
        'emit() { printf "%s " "$1"; base64 < "$2" | tr -d "\\n"; printf "\\n"; }\n',
        'size() { n=$(wc -c < "$1"); echo $((n + 0)); }\n',
        # NAME FILE SIZE: all of it, or its size, the beginning for the log and the tail
        "stream() {\n",
        '  printf "%s.size %s\\n" "$1" "$3"\n',
        f'  if [ "$3" -le {TAIL_BYTES} ]; then emit "$1" "$2"; return; fi\n',
        f'  h=$(($3 - {TAIL_BYTES})); [ "$h" -gt {LOG_HEAD_BYTES} ] && h={LOG_HEAD_BYTES}\n',
        '  printf "%s.head " "$1"; head -c "$h" "$2" | base64 | tr -d "\\n"; printf "\\n"\n',
        f'  printf "%s " "$1"; tail -c {TAIL_BYTES} "$2" | base64 | tr -d "\\n"; printf "\\n"\n',
        "}\n",
        "output() {\n",
        '  [ -f "$2" ] || return 0\n',
        '  n=$(size "$2")\n',
        f'  if [ "$n" -gt {OUTPUT_BYTES} ]; then printf "out.%s.size %s\\n" "$1" "$n"; '
        'else emit "out.$1" "$2"; fi\n',
        "}\n",
        'printf "rc %s\\n" "$rc"\n',
        "set -- $(wc -c .stdout .stderr)\n",  # (in $d: one wc for both sizes)
        'stream stdout .stdout "$1"\n',
        'stream stderr .stderr "$3"\n',
    ]
    for name in b.outputs:
        parts.append(f'output {name} "$d/outputs.{name}"\n')
    parts.append("exit 0\n")
    return "".join(parts).encode()


@dataclass(frozen=True)
class Stream:
    """One of a script's streams as the report has it: ``tail`` (the last
    ``TAIL_BYTES``, or all of it), ``head`` (what the log also gets before the tail:
    up to ``LOG_HEAD_BYTES`` of the beginning), ``size`` (bytes written in all) and
    ``left_out`` (bytes in neither)."""

    tail: str = ""
    head: str = ""
    size: int = 0
    left_out: int = 0


@dataclass(frozen=True)
class Report:
    status: int
    streams: Mapping[str, Stream]
    outputs: Mapping[str, str]
    too_big: Mapping[str, int] = field(default_factory=dict)  # output name -> its size

    @property
    def stdout(self) -> str:
        return self.streams["stdout"].tail

    @property
    def stderr(self) -> str:
        return self.streams["stderr"].tail


def _text(data: bytes, cut: bool) -> str:
    """Decoded; with ``cut`` (the data starts mid-stream) a split character's
    leftover bytes at the start are dropped."""
    skip = 0
    while cut and skip < min(3, len(data)) and 0x80 <= data[skip] < 0xC0:
        skip += 1
    return data[skip:].decode(errors="replace")


def parse_report(text: str) -> Report:
    """The answer of a :func:`bundle` run."""
    status: int | None = None
    raw: dict[str, bytes] = {}
    sizes: dict[str, int] = {}
    outputs: dict[str, str] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key == "rc":
            status = int(rest)
        elif key.endswith(".size"):
            sizes[key[:-5]] = int(rest)
        elif key in ("stdout", "stderr", "stdout.head", "stderr.head"):
            raw[key] = base64.b64decode(rest) if rest else b""
        elif key.startswith("out."):
            outputs[key[4:]] = base64.b64decode(rest).decode(errors="replace") if rest else ""
    if status is None:
        raise ValueError("no exit status in the deployment's report")
    streams = {}
    for name in ("stdout", "stderr"):
        tail, head = raw.get(name, b""), raw.get(f"{name}.head", b"")
        size = sizes.get(name, len(tail))
        streams[name] = Stream(_text(tail, size > len(tail)), _text(head, False), size,
                               max(0, size - len(head) - len(tail)))
    too_big = {k[4:]: v for k, v in sizes.items() if k.startswith("out.")}
    return Report(status, streams, outputs, too_big)


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ``******`` (longest first)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def tail(text: str, lines: int = 10, chars: int = 2000) -> str:
    """The last few lines of ``text`` (for error messages)."""
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept[-chars:]
