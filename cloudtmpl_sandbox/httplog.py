"""The sandbox servers' request log: what was asked and how it went, never what it held.

werkzeug's default log line is the whole request line, query string included; the
AWS query API puts everything there (tag values, base64 user data holding a
password). A sandbox log line holds the method, the path, the AWS ``Action`` and
the status; a failed request is logged with its exception's type and the frames of
its traceback (code, not values).
"""

from __future__ import annotations

import re
import sys
import traceback
from typing import Any
from urllib.parse import parse_qs, urlsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler

_ACTION = re.compile(r"^[A-Za-z0-9]{1,64}$")


def request_line(method: str, target: str, status: int | str) -> str:
    """``METHOD /path [Action] status``: no query values, no body."""
    parts = urlsplit(target)
    action = parse_qs(parts.query).get("Action", [""])[0]
    shown = f" {action}" if _ACTION.match(action) else ""
    path = "".join(ch if ch.isprintable() else "?" for ch in parts.path)[:200]
    return f"{method[:16]} {path}{shown} {status}"


class RequestHandler(WSGIRequestHandler):
    """A werkzeug request handler whose log lines hold no request values."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        method = getattr(self, "command", None) or "-"
        target = getattr(self, "path", None) or "-"
        self.log("info", "%s", request_line(str(method), str(target), code))

    def log_error(self, format: str, *args: Any) -> None:
        # e.g. "code 400, message Bad request syntax (<the raw request line>)"
        code = args[0] if args and isinstance(args[0], int) else "-"
        self.log("error", "a malformed request (status %s)", code)


def quiet(server: BaseWSGIServer) -> BaseWSGIServer:
    """``server`` with an error log that keeps an exception's type and frames only."""

    def log(type: str, message: str, *args: Any) -> None:
        kind, _, tb = sys.exc_info()
        if kind is None:
            sys.stderr.write(f"sandbox {type}: {message.splitlines()[0] if message else ''}\n")
            return
        frames = "".join(traceback.format_tb(tb))
        sys.stderr.write(f"sandbox {type}: a request failed ({kind.__name__}):\n{frames}")
        sys.stderr.flush()

    server.log = log  # type: ignore[method-assign]
    return server
