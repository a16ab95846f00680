"""``cloudtmpl state list|show|unlock``: look into the state store, release a stuck lock.

Thin like the rest of the CLI: the store does the work (``StateStore``), user
errors are diagnostics with exit code 1.  Every command honours ``--state URL``
and ``CLOUDTMPL_STATE`` through :func:`cloudtmpl.workflow.open_store`.

``cloudtmpl.cli`` registers this sub-app, so this module cannot import its
helpers (``_guard``/``_fail``) without an import cycle; :func:`_guard` below is
the small subset those commands need.
"""

from __future__ import annotations

import getpass
import json
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from cloudtmpl import render
from cloudtmpl.cliguard import guard as _guard
from cloudtmpl.clihelp import TEXT_JSON, Command, Group, StateOpt, format_opt
from cloudtmpl.config import load_project
from cloudtmpl.diagnostics import error
from cloudtmpl.inputs import Inputs
from cloudtmpl.session import open_store
from cloudtmpl.state import LockInfo, StateStore

RECENT_RUNS = 10


state_app = typer.Typer(
    help="Look into the state store (stacks, resources, runs) and release a stuck lock.",
    no_args_is_help=True,
    cls=Group,
)

FormatOpt = Annotated[str, format_opt(TEXT_JSON)]
StackArg = Annotated[str, typer.Argument(metavar="STACK", help="Stack name.")]


def _open(state: str | None) -> StateStore:
    return open_store(load_project(Path.cwd()), Inputs(state=state))


def who() -> str:
    """``$USER@host``: who is named in the audit line of a forced unlock."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _lock_json(info: LockInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {
        "holder": info.holder,
        "pid": info.pid,
        "host": info.host,
        "since": info.acquired.isoformat(),
    }


@state_app.command("list", cls=Command)
def state_list(fmt: FormatOpt = "text", state: StateOpt = None) -> None:
    """List the stacks in the state: serial, resource count and lock holder."""

    def body() -> None:
        with _open(state) as store:
            summaries = store.stack_summaries()
        if fmt == "json":
            listing = [
                {
                    "stack": s.name,
                    "serial": s.serial,
                    "resources": s.resources,
                    "outputs": s.outputs,
                    "updated": s.updated.isoformat() if s.updated else None,
                    "lock": _lock_json(s.lock),
                }
                for s in summaries
            ]
            print(json.dumps(listing, indent=2, sort_keys=True))
            return
        out = render.console()
        if not summaries:
            out.print("no stacks in the state", markup=False)
            return
        width = max(5, *(len(s.name) for s in summaries))
        out.print(f"{'STACK':{width}}  SERIAL  RESOURCES  LOCK", markup=False)
        for s in summaries:
            lock = s.lock.describe() if s.lock else "-"
            out.print(f"{s.name:{width}}  {s.serial:>6}  {s.resources:>9}  {lock}", markup=False)

    _guard(body, fmt)


@state_app.command("show", cls=Command)
def state_show(
    stack: StackArg,
    fmt: FormatOpt = "text",
    runs: Annotated[
        int, typer.Option("--runs", metavar="N", min=0, help="How many recent runs to show.")
    ] = RECENT_RUNS,
    state: StateOpt = None,
) -> None:
    """Show a stack's recorded resources, outputs, lock and recent runs."""

    def body() -> None:
        with _open(state) as store:
            records = store.resources(stack)
            values = store.outputs(stack)
            serial = store.serial(stack)
            lock = store.lock_info(stack)
            history = store.runs(stack)
            template = store.template(stack)
        if not (records or values or lock or history):
            raise error(
                "unknown-stack",
                f"no stack named {stack!r} in the state",
                hint="cloudtmpl state list shows the stacks it knows; pass --state for "
                "another store",
            )
        recent = history[-runs:] if runs else []
        if fmt == "json":
            doc = {
                "stack": stack,
                "serial": serial,
                "template": template,
                "lock": _lock_json(lock),
                "resources": {a: render.record_json(r, name=r.name)
                              for a, r in records.items()},
                "outputs": values,
                "runs": [
                    {
                        "id": run.id,
                        "operation": run.operation,
                        "holder": run.holder,
                        "started": run.started.isoformat(),
                        "finished": run.finished.isoformat() if run.finished else None,
                        "status": run.status,
                    }
                    for run in recent
                ],
            }
            print(render.json_text(doc))
            return
        out = render.console()
        out.print(f"Stack {stack} (serial {serial}): {len(records)} resources", markup=False)
        out.print(f"Template: {template or 'not recorded'}", markup=False)
        out.print(f"Lock: {lock.describe() if lock else 'not locked'}", markup=False)
        for address, r in sorted(records.items()):
            out.print(
                f"  {address:24} {r.kind:32} {r.target}/{r.region} {r.physical_id}", markup=False
            )
        if values:
            out.print("Outputs:", markup=False)
            render.outputs_text(values, out)
        if recent:
            out.print(f"Runs (last {len(recent)} of {len(history)}):", markup=False)
            for run in recent:
                out.print(
                    f"  #{run.id:<5} {run.operation:8} {run.status:12} {_time(run.started)} -> "
                    f"{_time(run.finished)}  {run.holder}",
                    markup=False,
                )

    _guard(body, fmt)


@state_app.command("unlock", cls=Command)
def state_unlock(
    stack: StackArg,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Required: remove the lock whoever holds it (an audit line names you).",
        ),
    ] = False,
    state: StateOpt = None,
) -> None:
    """Remove a stack's lock that its holder cannot release (e.g. its machine is gone)."""

    def body() -> None:
        if not force:
            raise error(
                "force-required",
                f"refusing to unlock stack {stack!r} without --force",
                hint="a lock left by a dead process is taken over automatically; force-unlock "
                "only when its holder is certainly gone: cloudtmpl state unlock "
                f"{stack} --force",
            )
        with _open(state) as store:
            removed = store.force_unlock(stack, who())
        out = render.console()
        if removed is None:
            out.print(f"stack {stack} was not locked", markup=False)
        else:
            out.print(f"unlocked stack {stack}: removed the lock of {removed.describe()}",
                      markup=False)

    _guard(body)
