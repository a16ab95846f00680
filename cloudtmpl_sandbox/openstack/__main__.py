"""Run the OpenStack sandbox: ``python -m cloudtmpl_sandbox.openstack``.

``--host 127.0.0.1 --port P [--ready-file F]``: port 0 picks a free port; the
ready file gets ``{"endpoint", "pid"}`` once the server listens.  The control
token and instance id come in the environment (:mod:`cloudtmpl_sandbox.control`).  Knobs at start:
``--config '{"latency_ms": 50}'``, the environment variable
``CLOUDTMPL_SANDBOX_OPENSTACK_CONFIG`` (same JSON; flags win) or the single flags
below; at runtime ``POST /_sandbox/config``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from cloudtmpl_sandbox.control import Identity
from cloudtmpl_sandbox.serving import WSGIApp, serve

from .state import Knobs, Store

CONFIG_ENV = "CLOUDTMPL_SANDBOX_OPENSTACK_CONFIG"
_FLAGS = (
    "latency_ms",
    "failure_rate",
    "failure_status",
    "throttle_rate",
    "retry_after",
    "build_seconds",
    "volume_seconds",
    "token_ttl",
    "seed",
)


def knobs_from(args: argparse.Namespace) -> Knobs:
    knobs = Knobs()
    data: dict[str, Any] = json.loads(os.environ.get(CONFIG_ENV) or "{}")
    data.update(json.loads(args.config or "{}"))
    data.update({k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None})
    knobs.update(data)
    return knobs


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="knobs as a JSON object")
    for flag in _FLAGS:
        kind = int if flag in ("failure_status", "retry_after", "seed") else float
        parser.add_argument("--" + flag.replace("_", "-"), dest=flag, type=kind, default=None)


def _build(args: argparse.Namespace, identity: Identity) -> tuple[WSGIApp, Callable[[], None]]:
    try:
        knobs = knobs_from(args)
    except ValueError as exc:
        raise SystemExit(f"bad sandbox config: {exc}") from None

    from .app import OpenStackSandbox

    store = Store(knobs)
    def clean_up() -> None:  # every sshd and boot process it started
        store.ssh.clear()
        store.boots.clear()

    return OpenStackSandbox(identity, store), clean_up


def main(argv: list[str] | None = None) -> int:
    return serve("openstack", "OpenStack", __doc__, _arguments, _build, argv)


if __name__ == "__main__":
    sys.exit(main())
