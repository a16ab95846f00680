"""What a lifecycle hook left on a sandbox server, and the events an apply printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloudtmpl_sandbox import control


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def roots(sandbox: dict[str, Any]) -> dict[str, Path]:
    """Server id -> root directory of each sshd-backed server the sandbox runs."""
    status, listed = control.call(sandbox["endpoint"], sandbox["token"], "GET",
                                  "/_sandbox/servers")
    assert status == 200, listed
    return {sid: Path(info["root"]) for sid, info in listed.items()}


def stamp(root: Path, name: str) -> float:
    """A time written on the test host: by a hook into its root, or by the sandbox
    beside it (``booted``: its sshd first listened; ``halted``: it was deleted)."""
    path = root / name if (root / name).exists() else root.parent / name
    return float(path.read_text())
