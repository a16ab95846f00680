"""The sandbox's control endpoints (``/_sandbox/*``, moto's ``/moto-api/*``) and their token.

Every sandbox process has an identity the manager gives it at start: a random
*token* (``secrets.token_urlsafe``) and an *instance* id.  Both reach the server in
its environment (``CLOUDTMPL_SANDBOX_TOKEN``, ``CLOUDTMPL_SANDBOX_INSTANCE``; never
in argv, which other users can read), and the server takes them out of its
environment at once, so nothing it starts (sshd) inherits them.  The manager keeps
them in the sandbox's record file (mode 0600) and ``cloudtmpl sandbox status``
prints the token.

A control request must carry the token in the header ``X-Sandbox-Token``: without
it the answer is 401, with another one 403, each with a JSON ``error`` that says so.
``GET /_sandbox/info`` names the service, the pid (in the server's own pid
namespace) and the instance id: the manager counts a sandbox as live when its
endpoint answers that with the instance id its record holds.  ``POST
/_sandbox/shutdown`` stops the server (how ``sandbox stop`` stops a sandbox whose
pid it cannot signal, e.g. one started outside its pid namespace).

:func:`call` is the client side, for the manager and for tests and tools.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

TOKEN_HEADER = "X-Sandbox-Token"
TOKEN_ENV = "CLOUDTMPL_SANDBOX_TOKEN"
INSTANCE_ENV = "CLOUDTMPL_SANDBOX_INSTANCE"
WSGI_TOKEN_KEY = "HTTP_" + TOKEN_HEADER.upper().replace("-", "_")
SHUTDOWN_DELAY = 0.2  # seconds between the answer to /_sandbox/shutdown and the exit


@dataclass(frozen=True)
class Identity:
    """Who a sandbox server is: its control token and its instance id."""

    token: str
    instance: str

    @staticmethod
    def new() -> Identity:
        return Identity(secrets.token_urlsafe(32), secrets.token_hex(8))

    def environ(self) -> dict[str, str]:
        """The variables that hand this identity to a server process."""
        return {TOKEN_ENV: self.token, INSTANCE_ENV: self.instance}


def take_identity(environ: MutableMapping[str, str] | None = None) -> Identity:
    """The identity handed to this server process, removed from its environment.

    A server started without one (not by ``cloudtmpl sandbox start``) exits with a
    message: its control endpoints would otherwise answer anyone.
    """
    env = os.environ if environ is None else environ
    token, instance = env.pop(TOKEN_ENV, ""), env.pop(INSTANCE_ENV, "")
    if not token or not instance:
        raise SystemExit(
            f"no sandbox identity: set {TOKEN_ENV} and {INSTANCE_ENV} (`cloudtmpl sandbox "
            "start` does), so that only callers with the token reach /_sandbox/*"
        )
    return Identity(token, instance)


def refusal(given: str | None, token: str) -> tuple[int, dict[str, str]] | None:
    """(status, JSON body) refusing a control request with the wrong token, else None."""
    if not given:
        return 401, {
            "error": f"the sandbox's control endpoints need its token in the header "
            f"{TOKEN_HEADER} (`cloudtmpl sandbox status` prints it)"
        }
    if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        return 403, {"error": f"wrong sandbox token in {TOKEN_HEADER}"}
    return None


def unauthorized_headers() -> dict[str, str]:
    """What a 401 names as the way to authenticate."""
    return {"WWW-Authenticate": f'{TOKEN_HEADER} realm="cloudtmpl-sandbox"'}


def refuse_wsgi(environ: Mapping[str, Any], token: str) -> tuple[int, dict[str, str]] | None:
    return refusal(environ.get(WSGI_TOKEN_KEY), token)


def shut_down_soon(delay: float = SHUTDOWN_DELAY) -> None:
    """SIGTERM this process after ``delay`` (time for the answer to go out): the
    server's own SIGTERM path then stops it and everything it started."""

    def stop() -> None:
        time.sleep(delay)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop, name="sandbox-shutdown", daemon=True).start()


def call(
    endpoint: str,
    token: str | None,
    method: str,
    path: str,
    body: Any = None,
    timeout: float = 30.0,
) -> tuple[int, Any]:
    """One control request: (HTTP status, the JSON answer or, if not JSON, the text).

    ``body`` is sent as JSON (POST without a body sends an empty one).  Connection
    errors are raised (``OSError``); HTTP errors are returned.
    """
    data = json.dumps(body).encode("utf-8") if body is not None else (
        b"" if method != "GET" else None)
    req = urllib.request.Request(f"{endpoint}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header(TOKEN_HEADER, token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")
