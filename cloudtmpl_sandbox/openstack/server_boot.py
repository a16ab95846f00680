"""A Nova server's boot: its user data run by cloud-init (:mod:`...boot`) when it comes up.

:mod:`.compute_models` marks a server whose status turns ``ACTIVE`` from ``BUILD``,
``REBOOT``, ``HARD_REBOOT``, ``REBUILD`` or ``SHUTOFF`` (``os-start``) as booting; the next time
the emulator looks at it with the store at hand it boots here.  Stopping, rebooting
and rebuilding halt the boot's processes; a rebuild gives the server a new disk, so
what runs once per instance runs again; deleting it forgets its console log.

The server root is its sshd's (``SERVER_ROOT``, :mod:`...sshd`) when it has one, else
a directory of the boot's own.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from .core import JSON
from .state import Store

DATASOURCE = "DataSourceOpenStackLocal [net,ver=2]"
BOOTING = ("BUILD", "REBOOT", "HARD_REBOOT", "REBUILD", "SHUTOFF")  # SHUTOFF: os-start


def root_of(store: Store, server_id: str) -> Path:
    host = store.ssh.get(server_id)
    return host.root if host is not None else store.boots.own_root(server_id)


def user_data(server: JSON) -> bytes | None:
    raw: Any = server.get("user_data")
    if not raw:
        return None
    try:
        return base64.b64decode(raw)
    except (binascii.Error, ValueError, TypeError):
        return None


def mark(server: JSON, was: str) -> None:
    """The server's status just turned from ``was``: boot it if it came up."""
    if server["status"] == "ACTIVE" and was in BOOTING:
        server["_boot"] = True


def run(store: Store, server: JSON) -> None:
    """Boot the server if it is marked (see :func:`mark`)."""
    if server.pop("_boot", False) and server["status"] == "ACTIVE":
        store.boots.boot(server["id"], root_of(store, server["id"]), user_data(server),
                         DATASOURCE)
