"""The workflow's :class:`~cloudtmpl.workflow.Ui` on a terminal: the plan shown, the
question asked (only where there is a terminal to ask on), apply's progress, and the
interrupts (first Ctrl-C/SIGTERM: no new steps; second: abort)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import typer

from cloudtmpl import render
from cloudtmpl.apply import Event
from cloudtmpl.diagnostics import error
from cloudtmpl.plan import Plan
from cloudtmpl.session import SandboxStarted
from cloudtmpl.steps import build_steps


def announce(started: SandboxStarted) -> None:
    """Nothing starts silently: say which sandbox started, where, and how to stop it."""
    render.console(stderr=True).print(
        render.sandbox_started(started.endpoints, started.directory), markup=False
    )


def confirm(yes: bool, what: str) -> None:
    if yes:
        return
    if not render.interactive(sys.stdin) or not render.interactive(sys.stdout):
        raise error(
            "confirmation-required",
            f"refusing to {what} without --yes: no terminal to ask on",
            hint=f"review the plan, then run again with --yes to {what}",
        )
    if not typer.confirm(f"Do you want to {what}?", default=False):
        raise error("aborted", f"{what} cancelled", hint="nothing was changed")


def progress(out: Any, plan: Plan, json_lines: bool) -> Any:
    """Apply progress: a live bar on a terminal, plain lines (or JSON lines) otherwise."""
    if json_lines or not render.interactive():
        return contextlib.nullcontext(render.EventPrinter(out, json_lines=json_lines))
    return render.LiveProgress(out, total=build_steps(plan).number_of_nodes())


class TerminalUi:
    """What the phases show and ask (:class:`cloudtmpl.workflow.Ui`), on the terminal."""

    def __init__(self, yes: bool, out: Any = None, json_lines: bool = False) -> None:
        self.yes, self.out, self.json_lines = yes, out, json_lines

    def sandbox_started(self, started: SandboxStarted) -> None:
        announce(started)

    def planned(self, plan: Plan, no_changes: str | None = None) -> None:
        if self.json_lines:
            return
        if no_changes is None:
            render.plan_text(plan, self.out)
        else:
            render.plan_text(plan, self.out, no_changes=no_changes)

    def confirm(self, what: str) -> None:
        confirm(self.yes, what)

    @contextlib.contextmanager
    def running(self, plan: Plan) -> Iterator[tuple[threading.Event, Callable[[Event], None]]]:
        with Interrupts() as stop, progress(self.out, plan, self.json_lines) as emit:
            yield stop, emit


class Interrupts:
    """First Ctrl-C/SIGTERM: start no new steps; second: abort at once."""

    def __init__(self) -> None:
        self.stop = threading.Event()

    def __enter__(self) -> threading.Event:
        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in self._old:
            signal.signal(s, self._handle)
        return self.stop

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        render.console(stderr=True).print(
            "stopping: no new steps start; running cloud calls finish (Ctrl-C again to abort)"
        )

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
