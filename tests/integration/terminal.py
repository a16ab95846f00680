"""Running the CLI as a CI job or on a pseudo-terminal."""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

from tests.integration.clitools import (
    cli_args,
    cli_env,
)


def no_ci_env(**extra: str) -> dict[str, str]:
    env = cli_env(extra)
    env.pop("CI", None)
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


def run_pty(
    cwd: Path, env: dict[str, str], *args: str, answer: str | None = None, timeout: float = 180
) -> tuple[int, bytes]:
    """Run the CLI on a pseudo-terminal (stdin, stdout and stderr); answer its prompt."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        cli_args(*args), cwd=cwd, env={**env, "TERM": "xterm-256color", "COLUMNS": "200"},
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )
    os.close(slave)
    output = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, output.decode(errors="replace")
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if answer is not None and not answered and b"[y/N]" in output:
                os.write(master, answer.encode())
                answered = True
        return proc.wait(timeout=60), output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
