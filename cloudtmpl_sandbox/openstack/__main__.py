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
import signal
import sys
from pathlib import Path
from typing import Any

from cloudtmpl_sandbox.control import take_identity
from cloudtmpl_sandbox.serving import check_loopback, write_ready

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cloudtmpl_sandbox.openstack", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", type=Path, default=None)
    parser.add_argument("--config", default=None, help="knobs as a JSON object")
    for flag in _FLAGS:
        kind = int if flag in ("failure_status", "retry_after", "seed") else float
        parser.add_argument("--" + flag.replace("_", "-"), dest=flag, type=kind, default=None)
    args = parser.parse_args(argv)
    host = check_loopback(args.host)
    identity = take_identity()  # out of the environment before anything is started
    try:
        knobs = knobs_from(args)
    except ValueError as exc:
        raise SystemExit(f"bad sandbox config: {exc}") from None

    from werkzeug.serving import make_server

    from cloudtmpl_sandbox.httplog import RequestHandler, quiet

    from .app import OpenStackSandbox

    store = Store(knobs)
    server = quiet(make_server(host, args.port, OpenStackSandbox(identity, store), threaded=True,
                               request_handler=RequestHandler))
    url_host = f"[{host}]" if ":" in host else host
    endpoint = f"http://{url_host}:{server.server_port}"

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    if args.ready_file is not None:
        write_ready(args.ready_file, {"endpoint": endpoint, "pid": os.getpid()})
    print(f"cloudtmpl OpenStack sandbox listening on {endpoint} (pid {os.getpid()})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.ssh.clear()  # every sshd this emulator started
        if args.ready_file is not None:
            try:
                if json.loads(args.ready_file.read_text()).get("pid") == os.getpid():
                    args.ready_file.unlink()
            except (OSError, ValueError):
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
