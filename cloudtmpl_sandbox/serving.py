"""What every sandbox server does the same way: its command line, bind loopback only,
take the control token from the environment, announce readiness, stop on SIGTERM."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cloudtmpl_sandbox.control import Identity, take_identity


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


WSGIApp = Callable[..., Iterable[bytes]]
# what a server builds once its arguments are read: (the WSGI app, what to stop at exit)
Build = Callable[[argparse.Namespace, Identity], tuple[WSGIApp, Callable[[], None]]]


def serve(module: str, label: str, description: str | None,
          add_arguments: Callable[[argparse.ArgumentParser], None], build: Build,
          argv: list[str] | None = None) -> int:
    """Run one sandbox server: ``python -m cloudtmpl_sandbox.<module> --host H --port P
    [--ready-file F] ...``.

    The control token and instance id are taken out of the environment before anything
    is started; ``build`` makes the app (a ``SystemExit`` there stops before listening).
    Port 0 picks a free port; the ready file gets ``{"endpoint", "pid"}`` once the server
    listens and is removed at exit (if it is still this process's).  SIGTERM stops it as
    SIGINT does, then ``build``'s clean-up runs.
    """
    parser = argparse.ArgumentParser(prog=f"python -m cloudtmpl_sandbox.{module}",
                                     description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", type=Path, default=None)
    add_arguments(parser)
    args = parser.parse_args(argv)
    host = check_loopback(args.host)
    identity = take_identity()  # out of the environment before anything is started
    app, clean_up = build(args, identity)

    from werkzeug.serving import make_server

    from cloudtmpl_sandbox.httplog import RequestHandler, quiet

    server = quiet(make_server(host, args.port, app, threaded=True,
                               request_handler=RequestHandler))
    url_host = f"[{host}]" if ":" in host else host
    endpoint = f"http://{url_host}:{server.server_port}"

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    if args.ready_file is not None:
        write_ready(args.ready_file, {"endpoint": endpoint, "pid": os.getpid()})
    print(f"cloudtmpl {label} sandbox listening on {endpoint} (pid {os.getpid()})", flush=True)
    try:
        server.serve_forever()  # returns on KeyboardInterrupt (SIGINT/SIGTERM)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        clean_up()  # e.g. every sshd this emulator started
        if args.ready_file is not None:
            try:
                if json.loads(args.ready_file.read_text()).get("pid") == os.getpid():
                    args.ready_file.unlink()
            except (OSError, ValueError):
                pass
    return 0
