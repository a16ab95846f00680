"""Where a command reads and writes: its streams, its environment, its directory.

:func:`cloudtmpl.cli.main` runs a command with the process's own (:meth:`Io.process`);
a caller that runs commands inside its own process (the tests) gives an :class:`Io` of
its own to :func:`cloudtmpl.cli.run`.  :func:`bound` makes an ``Io`` the command's for
as long as it runs.  The libraries under the CLI read the process's globals themselves
(click its help and prompts from ``sys.stdout``/``sys.stdin``, boto's and libcloud's
credential chains ``os.environ``, every relative path the working directory), so
binding sets those globals and puts them back afterwards, rather than threading a
value through every module: one command at a time in a process, as in a real one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True)
class Io:
    """A command's stdin, stdout, stderr, environment variables and working directory
    (``cwd`` None: the process's own, as it is)."""

    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    environ: Mapping[str, str]
    cwd: Path | None = None

    @staticmethod
    def process() -> Io:
        """The process's own: what the installed ``cloudtmpl`` runs with."""
        return Io(sys.stdin, sys.stdout, sys.stderr, os.environ)


def _set_environ(values: Mapping[str, str]) -> None:
    os.environ.clear()
    os.environ.update(values)


@contextmanager
def bound(io: Io) -> Iterator[None]:
    """While the block runs, ``io``'s streams are ``sys``'s, its environment is
    ``os.environ`` and its directory the working directory; then the old ones again."""
    streams = sys.stdin, sys.stdout, sys.stderr
    environ = None if io.environ is os.environ else dict(os.environ)
    cwd = None if io.cwd is None else Path.cwd()
    sys.stdin, sys.stdout, sys.stderr = io.stdin, io.stdout, io.stderr
    if environ is not None:
        _set_environ(io.environ)
    if io.cwd is not None:
        os.chdir(io.cwd)
    try:
        yield
    finally:
        if cwd is not None:
            os.chdir(cwd)
        if environ is not None:
            _set_environ(environ)
        sys.stdin, sys.stdout, sys.stderr = streams
