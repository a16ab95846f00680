"""Run the real CLI on hostile input, each run in its own process under a memory cap
and a timeout, and measure what it took.

Two ways, both measuring the child's wall time and peak RSS (``wait4``):

* :func:`run_fresh` starts ``python -m cloudtmpl.cli ...`` (exactly what a user
  runs), with ``RLIMIT_AS`` set in the child before it starts, from a small
  launcher interpreter (so its peak RSS is its own, not the test process's);
* :class:`Forker` starts one interpreter that imports the CLI once, then *forks*
  a child per input that sets ``RLIMIT_AS`` and runs ``cloudtmpl.cli.main()``
  with the given arguments: the same code on a fresh copy of a just-started CLI
  process, without paying interpreter start-up for every input (the
  property-based tests run many).

A child over its time is killed (SIGKILL) and reported as ``timed_out``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MEMORY = 500 * 1024 * 1024  # RLIMIT_AS of every child
TIMEOUT = 10.0  # seconds per input
CODE_RE = re.compile(r"\berror\[([a-z0-9-]+)\]")


@dataclass(frozen=True)
class Outcome:
    """How one run ended."""

    args: tuple[str, ...]
    code: int  # exit code (negative: killed by that signal)
    out: str
    err: str
    seconds: float
    max_rss_mb: float
    timed_out: bool

    @property
    def codes(self) -> list[str]:
        """The diagnostic codes printed (stderr and stdout: apply reports failed steps
        in its progress)."""
        return CODE_RE.findall(self.err + self.out)

    def describe(self) -> str:
        return (f"{' '.join(self.args)[:160]}: exit {self.code}"
                f"{' (timed out)' if self.timed_out else ''} in {self.seconds:.2f} s, "
                f"{self.max_rss_mb:.0f} MB; codes {self.codes}\n--- stdout\n"
                f"{self.out[-2000:]}\n--- stderr\n{self.err[-3000:]}")


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OS_"))}
    out.pop("CLOUDTMPL_STATE", None)  # each run's state is in its own directory
    out.update({"CI": "true", "PYTHONPATH": str(REPO), "AWS_EC2_METADATA_DISABLED": "true"})
    return out


def _wait(pid: int, started: float, timeout: float) -> tuple[int, float, float, bool]:
    """Reap ``pid`` (killing it after ``timeout``): exit code, seconds, peak RSS (MB)."""
    timed_out = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > timeout:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            timed_out = True
            break
        time.sleep(0.005)
    seconds = time.monotonic() - started
    return os.waitstatus_to_exitcode(status), seconds, usage.ru_maxrss / 1024, timed_out


def run_fresh(cwd: Path, *args: str, timeout: float = TIMEOUT) -> Outcome:
    """``python -m cloudtmpl.cli ARGS`` in ``cwd``, under the memory cap.

    Started by a small launcher interpreter (:data:`_LAUNCHER`), not forked from this
    process: a forked child's peak RSS counts the pages it shares with its parent, so
    a child of a big test process would be measured as big as the test process."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp, "out"), Path(tmp, "err")
        request = {"cwd": str(cwd), "args": list(args), "memory": MEMORY, "timeout": timeout,
                   "out": str(out), "err": str(err)}
        launched = subprocess.run([sys.executable, "-c", _LAUNCHER, str(REPO)],
                                  input=json.dumps(request), env=env(), capture_output=True,
                                  text=True, timeout=timeout + 30, check=True)
        answer: dict[str, Any] = json.loads(launched.stdout)
        return Outcome(tuple(args), answer["code"], out.read_text(errors="replace"),
                       err.read_text(errors="replace"), answer["seconds"], answer["rss"],
                       answer["timed_out"])


# The launcher of one fresh CLI process: reads one JSON request, forks, and the child
# (a copy of this small interpreter) sets the cap and execs the CLI; answers one line.
_LAUNCHER = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from tests.hostile import _wait

req = json.loads(sys.stdin.read())
started = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        resource.setrlimit(resource.RLIMIT_AS, (req["memory"], req["memory"]))
        os.chdir(req["cwd"])
        for fd, name in ((1, "out"), (2, "err")):
            os.dup2(os.open(req[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.execv(sys.executable, [sys.executable, "-m", "cloudtmpl.cli", *req["args"]])
    finally:
        os._exit(70)
code, seconds, rss, timed_out = _wait(pid, started, req["timeout"])
print(json.dumps({"code": code, "seconds": seconds, "rss": rss, "timed_out": timed_out}))
"""


# The forking server: reads one JSON request per line, answers one JSON line each.
_SERVER = r"""
import json, os, resource, signal, sys, time, traceback
sys.path.insert(0, sys.argv[1])
from tests.hostile import _wait
import cloudtmpl.cli as cli
import cloudtmpl.workflow  # noqa: F401 - everything a command imports, imported once

for line in sys.stdin:
    req = json.loads(line)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            resource.setrlimit(resource.RLIMIT_AS, (req["memory"], req["memory"]))
            os.chdir(req["cwd"])
            for fd, name in ((1, "out"), (2, "err")):
                os.dup2(os.open(req[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            sys.argv = ["cloudtmpl", *req["args"]]
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    code, seconds, rss, timed_out = _wait(pid, started, req["timeout"])
    print(json.dumps({"code": code, "seconds": seconds, "rss": rss, "timed_out": timed_out}),
          flush=True)
"""


class Forker:
    """One CLI interpreter that forks a capped child per input (see the module doc)."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(REPO)], env=env(), cwd=self.dir.name,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.outcomes: list[Outcome] = []

    def run(self, cwd: Path, *args: str, timeout: float = TIMEOUT) -> Outcome:
        out, err = Path(self.dir.name, "out"), Path(self.dir.name, "err")
        request = {"cwd": str(cwd), "args": list(args), "memory": MEMORY, "timeout": timeout,
                   "out": str(out), "err": str(err)}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        outcome = Outcome(tuple(args), answer["code"], out.read_text(errors="replace"),
                          err.read_text(errors="replace"), answer["seconds"], answer["rss"],
                          answer["timed_out"])
        self.outcomes.append(outcome)
        return outcome

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.dir.cleanup()


def refused(outcome: Outcome, expected: Sequence[str] | None = None) -> str:
    """Check that a run ended as a diagnostic within the limits; its (first) code."""
    assert not outcome.timed_out, f"over {TIMEOUT:g} s: {outcome.describe()}"
    assert "Traceback" not in outcome.err, outcome.describe()
    assert outcome.code == 1, outcome.describe()
    assert outcome.codes, f"no diagnostic code: {outcome.describe()}"
    assert outcome.max_rss_mb < MEMORY / 2**20, outcome.describe()
    if expected is not None:
        assert set(outcome.codes) & set(expected), f"expected {expected}: {outcome.describe()}"
    return outcome.codes[0]
