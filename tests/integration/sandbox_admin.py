"""Sandbox control requests the interruption, locking and state tests share (fault
knobs, the servers a sandbox runs)."""

from __future__ import annotations

from typing import Any

from cloudtmpl_sandbox import control
from tests.integration.clitools import os_driver


def configure(sandbox: dict[str, Any], **knobs: Any) -> None:
    status, body = control.call(sandbox["endpoint"], sandbox["token"], "POST",
                                "/_sandbox/config", knobs)
    assert status == 200, body


def servers(sandbox: dict[str, Any], stack: str) -> list[Any]:
    """The OpenStack sandbox's servers (de-fra-1) that ``stack`` owns."""
    return [n for n in os_driver(sandbox, "de-fra-1").list_nodes()
            if (n.extra.get("metadata") or {}).get("cloudtmpl:stack") == stack]
