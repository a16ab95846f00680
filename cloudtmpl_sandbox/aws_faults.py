"""The AWS sandbox's request counter and fault knobs: what decides each request's fate.

Every request to an AWS API is counted, then sleeps ``latency_ms``, then maybe gets
a throttle, a server error or a dropped connection (see :mod:`cloudtmpl_sandbox.aws`
for the knobs' meaning); the error bodies are AWS-shaped XML.
"""

from __future__ import annotations

import collections
import contextlib
import math
import random
import socket
import struct
import threading
import uuid
from dataclasses import asdict, dataclass, fields
from typing import Any, NoReturn

from cloudtmpl_sandbox.aws_wsgi import Environ


class RequestCounter:
    """Thread-safe per-service request counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()

    def add(self, service: str) -> None:
        with self._lock:
            self._counts[service] += 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"total": sum(self._counts.values()), "by_service": dict(self._counts)}


# ------------------------------------------------------------------------ fault knobs


@dataclass
class Knobs:
    """Fault and speed knobs of the AWS sandbox (``POST /_sandbox/config``)."""

    latency_ms: float = 0.0  # added to every AWS API request
    failure_rate: float = 0.0  # share answered with a 5xx (InternalError/ServiceUnavailable)
    failure_status: int | None = None  # 500, 503, or None: either at random
    throttle_rate: float = 0.0  # share answered RequestLimitExceeded/Throttling
    throttle_status: int | None = 503  # 503 (EC2), 400 (query APIs), or None: either
    drop_rate: float = 0.0  # share whose connection is closed without a response
    drop_after: float = 0.0  # share of the drops made after the request took effect
    seed: int | None = None

    _RATES = ("failure_rate", "throttle_rate", "drop_rate", "drop_after")

    def update(self, data: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown knobs: {', '.join(sorted(unknown))}")
        for key, value in data.items():
            if isinstance(value, bool):
                raise ValueError(f"{key} must be a number, not {value!r}")
            if key == "seed":
                self.seed = None if value is None else int(value)
            elif key in ("failure_status", "throttle_status"):
                allowed = (500, 503) if key == "failure_status" else (400, 503)
                status = None if value is None else int(value)
                if status is not None and status not in allowed:
                    raise ValueError(f"{key} must be one of {allowed} or null, not {value!r}")
                setattr(self, key, status)
            else:
                number = float(value)
                if not math.isfinite(number) or number < 0:
                    raise ValueError(f"{key} must be a finite number >= 0, not {value!r}")
                if key in self._RATES and number > 1:
                    raise ValueError(f"{key} is a share between 0 and 1, not {value!r}")
                setattr(self, key, number)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FAULT_MESSAGES = {
    "RequestLimitExceeded": "Request limit exceeded.",
    "Throttling": "Rate exceeded",
    "InternalError": "An internal error has occurred",
    "ServiceUnavailable": "The service is unavailable. Please try again shortly.",
}
REASONS = {400: "BAD REQUEST", 500: "INTERNAL SERVER ERROR", 503: "SERVICE UNAVAILABLE"}


def aws_error_body(service: str, code: str, message: str) -> bytes:
    """An AWS error document: EC2's ``<Response>`` shape, else the query APIs' one."""
    request_id = str(uuid.uuid4())
    if service == "ec2":
        xml = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
               f"</Error></Errors><RequestID>{request_id}</RequestID></Response>")
    else:
        kind = "Sender" if code == "Throttling" else "Receiver"
        xml = (f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>"
               f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
               "</ErrorResponse>")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + xml.encode("utf-8")



class Faults:
    """The knobs and the one random source that decides each request's fate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.knobs = Knobs()
        self._rng = random.Random()
        self.injected: collections.Counter[str] = collections.Counter()

    def configure(self, data: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            knobs = Knobs(**self.knobs.as_dict())
            knobs.update(data)  # ValueError: nothing changed
            self.knobs = knobs
            if "seed" in data:
                self._rng = random.Random(knobs.seed)
            return knobs.as_dict()

    def reset(self) -> dict[str, Any]:
        with self._lock:
            self.knobs = Knobs()
            self._rng = random.Random()
            self.injected.clear()
            return self.knobs.as_dict()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.injected)

    def clear_counts(self) -> None:
        with self._lock:
            self.injected.clear()

    def decide(self, service: str) -> tuple[float, str | None, int, str]:
        """(latency seconds, fault kind or None, status, AWS error code) for one request."""
        with self._lock:
            k, rng = self.knobs, self._rng
            latency = k.latency_ms / 1000.0
            if k.throttle_rate and rng.random() < k.throttle_rate:
                status = k.throttle_status or rng.choice((400, 503))
                code = "RequestLimitExceeded" if status == 503 else "Throttling"
                self.injected["throttle"] += 1
                return latency, "error", status, code
            if k.failure_rate and rng.random() < k.failure_rate:
                status = k.failure_status or rng.choice((500, 503))
                code = "InternalError" if status == 500 else "ServiceUnavailable"
                self.injected[f"http_{status}"] += 1
                return latency, "error", status, code
            if k.drop_rate and rng.random() < k.drop_rate:
                after = bool(k.drop_after) and rng.random() < k.drop_after
                self.injected["drop_after" if after else "drop_before"] += 1
                return latency, "drop_after" if after else "drop_before", 0, ""
            return latency, None, 200, ""


def drop_connection(environ: Environ) -> NoReturn:
    """Shut the client's socket down (werkzeug's server hands it to the app)."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # RST, not FIN: the client sees "connection reset" mid-request
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    # werkzeug treats ConnectionError from the app as "client went away": no response
    raise ConnectionAbortedError("sandbox drop_rate: connection closed without a response")
