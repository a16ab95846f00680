"""What every sandbox server does the same way: bind loopback only, announce readiness."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any


def check_loopback(host: str) -> str:
    """``host`` if it is a loopback address (``localhost`` -> 127.0.0.1); else exit."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise SystemExit(f"refusing to bind {host!r}: the sandbox only listens on loopback")


def write_ready(path: Path, data: dict[str, Any]) -> None:
    """Write the ready file atomically (the manager waits for it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
