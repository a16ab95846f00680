"""``cloudtmpl sandbox start|stop|status``: the local sandbox clouds on 127.0.0.1.

Thin like the rest of the CLI: :mod:`cloudtmpl_sandbox.manager` does the work, its
failures are diagnostics with exit code 1 (:func:`cloudtmpl.cliguard.guard`).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cloudtmpl import render
from cloudtmpl.cliguard import guard
from cloudtmpl.clihelp import TEXT_JSON, Command, Group, format_opt
from cloudtmpl_sandbox import manager as sandbox

sandbox_app = typer.Typer(
    help="Local sandbox clouds on 127.0.0.1 (moto for AWS).", no_args_is_help=True, cls=Group
)


@sandbox_app.command("start", cls=Command)
def sandbox_start(fmt: Annotated[str, format_opt(TEXT_JSON)] = "text") -> None:
    """Start the local sandbox clouds in the background (reused if already running)."""
    guard(sandbox.start)
    sandbox_status(fmt)


@sandbox_app.command("stop", cls=Command)
def sandbox_stop() -> None:
    """Stop the local sandbox clouds (their resources are lost)."""
    stopped = guard(sandbox.stop)
    render.console().print("sandbox stopped" if stopped else "sandbox was not running")


@sandbox_app.command("status", cls=Command)
def sandbox_status(
    fmt: Annotated[str, format_opt(TEXT_JSON)] = "text",
) -> None:
    """Show the sandbox endpoints (JSON: for boto3, the openstack CLI and tests)."""
    info = guard(sandbox.status)
    if fmt == "json":
        print(json.dumps(info, indent=2, sort_keys=True))
        return
    out = render.console()
    for name, cloud in info.items():
        if cloud.get("running"):
            out.print(
                f"sandbox-{name}: running at {cloud.get('endpoint')} (pid {cloud.get('pid')},"
                f" regions {', '.join(cloud.get('regions', []))}, token {cloud.get('token')})"
            )
        else:
            out.print(f"sandbox-{name}: stopped")
