"""The health gate between a rolling update's batches: every server of the batch that
just finished passes its ``health_check`` before the next batch starts.

``health_check``: ``{tcp: PORT}`` (a connection is accepted), ``{http: URL}``
(``{address}`` in the URL; any 2xx/3xx answer) or ``{script: ...}`` (run on the
server over SSH, like a drain hook), within ``timeout`` seconds (60 by default).
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cloudtmpl import resources
from cloudtmpl.model import LiveResource
from cloudtmpl.providers.base import CloudError

# runs a script on a server over SSH: (server, hook, which) -> None, CloudError if it fails
ScriptRun = Callable[[LiveResource, Mapping[str, Any], str], None]


def healthy(host: str, check: Mapping[str, Any]) -> bool:
    if check.get("tcp"):
        try:
            with socket.create_connection((host, int(check["tcp"])), timeout=2):
                return True
        except OSError:
            return False
    if check.get("http"):
        url = str(check["http"]).replace("{address}", host)
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return 200 <= resp.status < 400
        except (OSError, ValueError):
            return False
    return True


def describe(check: Mapping[str, Any]) -> str:
    return f"tcp:{check['tcp']}" if check.get("tcp") else f"http:{check.get('http')}"


def batch_problem(addresses: Iterable[str], current: Callable[[str], LiveResource | None],
                  check: Mapping[str, Any] | None, *, clock: Callable[[], float],
                  stop: threading.Event, run_script: ScriptRun | None) -> str:
    """Check every server among ``addresses`` (as ``current`` has it now); '' when all
    are healthy, else what stops the roll."""
    check = dict(check or {})
    deadline = clock() + float(check.get("timeout") or 60)
    for address in addresses:
        live = current(address)
        if live is None or live.kind != resources.SERVER.kind:
            continue
        if check.get("script"):
            problem = _script_problem(live, check, deadline, clock, stop, run_script)
            if problem:
                return problem
            continue
        host = live.attributes.get("public_ip") or live.attributes.get("first_address")
        if not host:
            return f"{address}: no address to check"
        while not healthy(str(host), check):
            if clock() >= deadline or stop.is_set():
                return (f"{address} ({host}) did not pass its health check "
                        f"{describe(check)} in time: the roll stops here")
            stop.wait(0.5)
    return ""


def _script_problem(live: LiveResource, check: Mapping[str, Any], deadline: float,
                    clock: Callable[[], float], stop: threading.Event,
                    run_script: ScriptRun | None) -> str:
    if run_script is None:
        return f"{live.address}: no SSH runner for a script health check"
    last = ""
    while True:
        try:
            run_script(live, {"script": check["script"], "ssh": check.get("ssh") or {},
                              "timeout": max(1.0, deadline - clock())}, "health")
            return ""
        except CloudError as err:
            last = err.message
        if clock() >= deadline or stop.is_set():
            return (f"{live.address} did not pass its health check script in time: "
                    f"{last}; the roll stops here")
        stop.wait(1.0)
