"""Running one deployment script on one server: pinned, bounded, stoppable, logged.

:class:`ScriptRunner` is what the deploy adapter hands a ready bundle to.  It

* checks the server's host key against its pin - the deployment's state record
  first, else the project's ``.cloudtmpl/keys/known_hosts`` (:mod:`cloudtmpl.known_hosts`)
  - and pins a key seen for the first time in that file (the state record gets it
  from the attributes the caller stores);
* bounds the run by the resource's timeout: connecting (at most ``ssh.timeout``
  of it) and the script together; past it the script's remote process group is
  killed and the step fails with ``timed out after N s``;
* follows the executor's interrupts: after the first Ctrl-C/SIGTERM a running
  script gets :data:`STOP_GRACE` seconds more (its own timeout still applies),
  then its process group is killed; a second one (:meth:`ScriptRunner.abort`)
  kills every running script's process group at once;
* keeps only a bounded part of each stream (:data:`cloudtmpl.ssh.TAIL_BYTES` in
  memory, the attributes and the state; the log also gets the first
  :data:`cloudtmpl.ssh.LOG_HEAD_BYTES`, and a note of how much was left out), and
* appends every run to ``.cloudtmpl/logs/<stack>/<name>.log`` (mode 0600), redacted.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cloudtmpl import ssh
from cloudtmpl.known_hosts import KnownHosts
from cloudtmpl.providers.base import CloudError

STOP_GRACE = 30.0  # seconds a running script gets after the first interrupt
ABORT_WAIT = 15.0  # seconds an abort waits for the running scripts to be killed


@dataclass(frozen=True)
class RunTarget:
    """Where to run: the endpoint, its key, the pins the state holds, a bastion."""

    ep: ssh.Endpoint
    pkey: Any
    server: str  # the server's id ("" for a deployment given only an address)
    pinned: str | None = None  # the host key fingerprint the state records
    bastion: ssh.Endpoint | None = None
    bastion_key: Any = None
    bastion_pinned: str | None = None
    connect_timeout: float = 120.0  # ssh.timeout


@dataclass(frozen=True)
class Ran:
    report: ssh.Report
    host_key: str
    bastion_host_key: str | None
    seconds: float


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1048576:.1f} MiB"
    return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} bytes"


def cut_note(name: str, size: int) -> str:
    """What the progress says of a stream kept only in part."""
    return (f"{name} was {size} bytes: the state keeps its last {_size(ssh.TAIL_BYTES)}, "
            f"the log its first {_size(ssh.LOG_HEAD_BYTES)} and last {_size(ssh.TAIL_BYTES)}")


OUTPUT_LINES = 20  # a deployment's last lines shown in the progress (all are in its log)


def output_lines(attributes: Mapping[str, Any], seal: Callable[[str], Any]) -> list[str]:
    """A deployment's output as progress lines, prefixed with where it ran: the last
    :data:`OUTPUT_LINES` of each stream (stderr marked ``!``), each ``seal``-ed, with a
    note of the earlier lines and of a stream kept only in part."""
    host = attributes.get("host") or attributes.get("server") or ""
    out: list[str] = []
    for name in ("deploy_stdout", "deploy_stderr"):
        text = attributes.get(name)
        if not isinstance(text, str) or not text.strip():
            continue
        lines = text.rstrip("\n").splitlines()
        shown = lines[-OUTPUT_LINES:]
        if len(lines) > len(shown):
            out.append(f"[{host}] ... {len(lines) - len(shown)} earlier lines in the log")
        cut = (attributes.get("truncated") or {}).get(name)
        if cut:
            out.append(f"[{host}] ... {cut_note(name, int(cut))}")
        mark = "!" if name == "deploy_stderr" else "|"
        out.extend(f"[{host}] {mark} {seal(line)}" for line in shown)
    return out


def stream_text(name: str, stream: ssh.Stream) -> str:
    """A stream as the log shows it: all of it, or its beginning, a note, its end."""
    if not stream.left_out:
        return f"--- {name}\n{stream.head}{stream.tail}"
    return (f"--- {name}: {_size(stream.size)} in all; the log keeps the first "
            f"{_size(ssh.LOG_HEAD_BYTES)} and the last {_size(ssh.TAIL_BYTES)}\n"
            f"{stream.head}\n[... {stream.left_out} bytes left out ...]\n{stream.tail}")


class ScriptRunner:
    def __init__(self, project_dir: Path) -> None:
        self._dir = project_dir
        self.pins = KnownHosts(project_dir / ".cloudtmpl" / "keys" / "known_hosts")
        self._stop: threading.Event | None = None
        self._stop_seen: float | None = None
        self._abort = threading.Event()
        self._runs = threading.Condition()
        self._running = 0

    # -- interrupts ---------------------------------------------------------------
    def watch(self, stop: threading.Event) -> None:
        """Follow ``stop`` (the executor's first interrupt)."""
        self._stop = stop

    def abort(self, wait: float = ABORT_WAIT) -> None:
        """Kill the remote process group of every running script now, and wait (at most
        ``wait`` seconds) until that is done."""
        self._abort.set()
        with self._runs:
            self._runs.wait_for(lambda: self._running == 0, timeout=wait)

    @contextmanager
    def _counted(self) -> Iterator[None]:
        with self._runs:
            self._running += 1
        try:
            yield
        finally:
            with self._runs:
                self._running -= 1
                self._runs.notify_all()

    def _why_stop(self, deadline: float, timeout: float) -> str | None:
        """Why a running script must stop now, or None."""
        if self._abort.is_set():
            return "was aborted (a second interrupt)"
        now = time.monotonic()
        if now >= deadline:
            return f"timed out after {timeout:g} s"
        if self._stop is not None and self._stop.is_set():
            with self._runs:
                if self._stop_seen is None:
                    self._stop_seen = now
                seen = self._stop_seen
            if now >= seen + STOP_GRACE:
                return f"was stopped: still running {STOP_GRACE:g} s after the interrupt"
        return None

    # -- pins ---------------------------------------------------------------------
    def _expected(self, server: str, ep: ssh.Endpoint, pinned: str | None,
                  where: str) -> ssh.Expected | None:
        if pinned:
            return ssh.Expected(pinned, f"in the state by {where}")
        pin = self.pins.lookup(server, ep.host, ep.port)
        if pin is None:
            return None
        return ssh.Expected(pin.fingerprint, f"in {self.pins.path} line {pin.line}")

    def _pin(self, server: str, ep: ssh.Endpoint, blob: tuple[str, str]) -> None:
        if blob[1]:
            try:
                self.pins.pin(server, ep.host, ep.port, *blob)
            except OSError as err:
                raise CloudError(f"cannot record the host key of {ep.label} in "
                                 f"{self.pins.path}: {err}") from None

    # -- one run --------------------------------------------------------------------
    def run(self, target: RunTarget, bundle: ssh.Bundle, *, action: str, label: str, where: str,
            timeout: float, secrets: Sequence[str],
            log: Callable[[str, Sequence[str]], None]) -> Ran:
        """Run ``bundle`` on ``target`` within ``timeout`` seconds (connecting included).

        ``where`` names the resource (in messages about pins); ``log`` appends a text
        (redacted with the secrets given) to the resource's log.  A failure (no
        connection, a changed host key, a timeout, a stop, a non-zero exit) is a
        CloudError naming ``label``.
        """
        started = time.monotonic()
        deadline = started + timeout
        try:
            data = ssh.bundle(replace(bundle, limit=math.ceil(timeout)))
        except ValueError as err:
            raise CloudError(f"{where}: {err}") from None
        expected = self._expected(target.server, target.ep, target.pinned, where)
        bastion_expected = None
        if target.bastion is not None:
            bastion_expected = self._expected("", target.bastion, target.bastion_pinned, where)
        if self._abort.is_set():
            raise CloudError(f"{label}: aborted before the {action} script started")
        try:
            conn = ssh.wait_connect(
                target.ep, target.pkey, expected,
                timeout=max(0.5, min(target.connect_timeout, deadline - time.monotonic())),
                bastion=target.bastion, bastion_key=target.bastion_key or target.pkey,
                bastion_expected=bastion_expected)
        except ssh.SshError as err:
            log(f"connection failed: {err.message}", secrets)
            raise CloudError(f"{label}: {err.message}") from None
        try:
            self._pin(target.server, target.ep, conn.host_key_blob)
            if target.bastion is not None:
                self._pin("", target.bastion, conn.bastion_key_blob)
            if self._abort.is_set():
                raise CloudError(f"{label}: aborted before the {action} script started")
            with self._counted():
                finished = conn.run_script(data, lambda: self._why_stop(deadline, timeout))
        except (ssh.SshError, OSError, EOFError) as err:
            raise CloudError(f"{label}: running the {action} script failed: {err}") from None
        finally:
            conn.close()
        seconds = time.monotonic() - started
        try:
            report: ssh.Report | None = ssh.parse_report(finished.out.decode(errors="replace"))
        except ValueError:
            report = None
        if finished.stopped is not None:
            killed = finished.kill or "the remote process group was killed"
            message = f"{label}: the {action} script {finished.stopped}; {killed}"
            streams = ""
            if report is not None:
                streams = "\n" + stream_text("stdout", report.streams["stdout"]) \
                    + stream_text("stderr", report.streams["stderr"])
                if report.stderr.strip():
                    message += "; stderr ends with:\n" + ssh.tail(report.stderr)
            log(f"the script {finished.stopped} ({seconds:.2f}s after the start; host key "
                f"{conn.host_key}); {killed}{streams}", secrets)
            raise CloudError(message)
        if report is None:
            raise CloudError(
                f"{label}: the remote shell failed (status {finished.status}): "
                + ssh.tail(finished.err.decode(errors="replace")))
        log(f"exit status {report.status} after {seconds:.2f}s (host key {conn.host_key})\n"
            + stream_text("stdout", report.streams["stdout"])
            + stream_text("stderr", report.streams["stderr"])
            + "".join(f"--- output {k}\n{v}\n" for k, v in report.outputs.items()), secrets)
        if report.status != 0:
            raise CloudError(
                f"{label}: the {action} script exited with status {report.status}; stderr "
                # not redacted here: the executor seals messages holding its secrets
                "ends with:\n" + ssh.tail(report.stderr))
        if report.too_big:
            raise CloudError(f"{label}: " + "; ".join(
                f"output {name} is {_size(n)}, over the {_size(ssh.OUTPUT_BYTES)} an output "
                "may have" for name, n in sorted(report.too_big.items())))
        return Ran(report, conn.host_key, conn.bastion_host_key, seconds)

    # -- logs -------------------------------------------------------------------------
    def log(self, stack: str, name: str, action: str, label: str, text: str,
            secrets: Sequence[str]) -> None:
        path = self._dir / ".cloudtmpl" / "logs" / stack / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(ssh.redact(f"=== {stamp} {action} on {label}\n{text}\n", secrets))
        path.chmod(0o600)
