"""How a command's errors reach the user: diagnostics on stderr (or as JSON) and
exit code 1, never a traceback.  Shared by every command (``cli``, ``statecli``).
"""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import typer

from cloudtmpl import render
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError
from cloudtmpl.providers.base import CloudError
from cloudtmpl.state import LockLost, StackLocked
from cloudtmpl_sandbox import manager as sandbox


class Exit(enum.IntEnum):
    """Every exit code of the command line (the README's table is `cli.EXIT_CODES`)."""

    OK = 0
    ERROR = 1
    USAGE = 1  # an unknown option, a missing argument, a bad value: never 2 (that is CHANGES)
    CHANGES = 2


def fail(diags: Sequence[Diagnostic], fmt: str = "text") -> NoReturn:
    """Show ``diags`` and exit 1."""
    if fmt == "json":
        print(json.dumps(render.diagnostics_json(tuple(diags)), indent=2))
    else:
        render.diagnostics_text(tuple(diags), render.console(stderr=True))
    raise typer.Exit(Exit.ERROR)


def guard(fn: Callable[[], Any], fmt: str = "text", locked_hint: str = "") -> Any:
    """Run a command body; user errors become diagnostics and exit code 1.

    ``locked_hint``: what to tell a user whose stack is locked by another run (the
    lock's own hint, to force-unlock, when not given)."""
    try:
        return fn()
    except DiagnosticError as err:
        fail(err.diagnostics, fmt)
    except StackLocked as err:
        fail([err.diagnostic(locked_hint)], fmt)
    except LockLost as err:
        fail([err.diagnostic()], fmt)
    except sandbox.SandboxError as err:  # `sandbox start|stop` could not do it
        fail([Diagnostic("sandbox-error", str(err),
                         hint=f"see the logs in {sandbox.sandbox_dir()}")], fmt)
    except CloudError as err:
        fail([Diagnostic("cloud-error", err.message,
                         hint="the cloud refused the request; see its message")], fmt)
    except KeyboardInterrupt:
        # the journal and the lock are already settled; cloud calls still in flight
        # in worker threads are not waited for (the next run looks them up)
        render.console(stderr=True).print("aborted")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
