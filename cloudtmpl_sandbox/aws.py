"""The local AWS cloud: moto's own WSGI app behind a wire-compatibility layer.

moto (server mode) answers the AWS query/REST APIs, but in a few places its wire
format differs from real AWS in ways that break unpatched libcloud.  The
:class:`CompatLayer` WSGI middleware rewrites exactly those places (see
``/work/shared/notes/aws-sandbox.md``):

EC2
  * response namespace ``.../doc/2016-11-15`` gains its trailing ``/``; error
    responses lose the ``xmlns`` on ``<Response>`` so libcloud reads the error;
  * Python-set-printed names in error messages (``'{'k2'}'``) become ``'k2'``;
  * 0-based list indexes (``ResourceId.0``, ``Tag.0.Key``) become 1-based, in the
    query string and in form bodies;
  * bare scalar-list parameters (``KeyName=x``) become ``KeyName.1=x``;
  * ``<return>true</return>`` is added to 2xx answers of operations whose output is
    empty or has ``Return``;
  * ``DetachVolume`` without ``InstanceId`` gets the attached instance looked up;
  * ``RunInstances``/``CreateVolume``/... repeated with the same ``ClientToken`` get the
    first call's answer instead of a second object (EC2's idempotency; moto ignores
    the token);
  * ``DescribeInstances`` without ``MaxResults`` and ``InstanceId.N`` gets a large
    ``MaxResults`` (moto pages at 100 and libcloud ignores ``NextToken``); explicit
    ``MaxResults``/``NextToken`` pass through untouched.

All services
  * only the sandbox's own credentials are accepted, and signatures are verified
    (:mod:`cloudtmpl_sandbox.aws_auth`);
  * requests without an ``Authorization`` header (SigV2 query signing, Route53's
    ``X-Amzn-Authorization``) get a dummy SigV4 header naming the service, so moto
    routes them to the right backend instead of S3.

STS (:mod:`cloudtmpl_sandbox.aws_sts`): ``AssumeRole`` is refused as AWS refuses it
(no such role, a trust policy or ``ExternalId`` that does not allow it, a duration
beyond the role's maximum); the temporary keys STS issues then work only with their
session token and until they expire.  ``GET /_sandbox/access-keys`` counts requests
per access key id (zeroed with the request counter).

Route53: API ``2012-02-29`` paths are served by moto's ``2013-04-01`` and the
response namespace is rewritten back.  Classic ELB: ``/2012-06-01/`` → ``/``.

The layer also counts requests per service: ``GET /_sandbox/requests`` returns
``{"total": N, "by_service": {...}}``, ``POST /_sandbox/requests/reset`` zeroes it.
``GET /_sandbox/info`` names the process and its instance id (the manager's liveness
check), ``POST /_sandbox/shutdown`` stops it.  Every ``/_sandbox/*`` and
``/moto-api/*`` request needs the sandbox's token (:mod:`cloudtmpl_sandbox.control`).

Fault knobs (like the OpenStack emulator's): ``GET /_sandbox/config`` shows them,
``POST /_sandbox/config`` merges a JSON object into them (all or nothing; unknown
knobs are a 400), ``POST /_sandbox/config/reset`` restores the defaults.  Every
request to an AWS API (never ``/_sandbox/*`` or ``/moto-api/*``) is counted, then
sleeps ``latency_ms``, then maybe

* ``throttle_rate``: throttled as AWS does: ``throttle_status`` 503 →
  ``RequestLimitExceeded`` (EC2), 400 → ``Throttling`` (query APIs), ``null`` → either;
* ``failure_rate``: a server error: ``failure_status`` 500 → ``InternalError``,
  503 → ``ServiceUnavailable``, ``null`` → either;
* ``drop_rate``: the connection is closed without any response; a share
  ``drop_after`` of those drops happens *after* moto has carried the request out
  (the client cannot tell whether it took effect), the rest before.

Error bodies are AWS-shaped XML (EC2's ``<Response><Errors><Error>``, the
query APIs' ``<ErrorResponse>``).  ``seed`` makes the sequence of faults
reproducible (one random source for all threads).  ``GET /_sandbox/faults``
counts the faults injected, by kind (zeroed with the request counter).

Run: ``python -m cloudtmpl_sandbox.aws --host 127.0.0.1 --port 0 --ready-file F``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import math
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qsl, quote, urlencode

from cloudtmpl_sandbox import aws_placement
from cloudtmpl_sandbox.aws_auth import Accounts
from cloudtmpl_sandbox.aws_hosts import Ec2Hosts, changes_instances
from cloudtmpl_sandbox.aws_sts import (
    Sts,
    access_key_of,
    get_role_query,
    role_from_get_role,
)
from cloudtmpl_sandbox.control import (
    Identity,
    refuse_wsgi,
    shut_down_soon,
    take_identity,
    unauthorized_headers,
)
from cloudtmpl_sandbox.manager import ACCESS_KEY, SECRET_KEY
from cloudtmpl_sandbox.serving import check_loopback, write_ready

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

SERVICE_NAME = "cloudtmpl-sandbox-aws"
DEFAULT_REGION = "us-east-1"
EC2_API_VERSION = "2016-11-15"
ELB_API_VERSION = "2012-06-01"
ROUTE53_OLD = "2012-02-29"
ROUTE53_NEW = "2013-04-01"
DESCRIBE_INSTANCES_ALL = "100000"

_EC2_NS_RE = re.compile(rb'xmlns="(http://ec2\.amazonaws\.com/doc/[0-9-]+)"')
_ERROR_NS_RE = re.compile(rb'<Response\s+xmlns="[^"]*"\s*>')
_INSTANCE_ID_RE = re.compile(r"<instanceId>(i-[0-9a-f]+)</instanceId>")
_SET_NAMES_RE = re.compile(r"'\{((?:'[^']*'(?:, )?)+)\}'")
_ROUTE53_NS = f"https://route53.amazonaws.com/doc/{ROUTE53_NEW}/".encode()
_ROUTE53_NS_OLD = f"https://route53.amazonaws.com/doc/{ROUTE53_OLD}/".encode()
_FORM = "application/x-www-form-urlencoded"
# moto reads these when its settings module is imported (attribute names in
# moto.settings on the right): the sandbox rejects unknown AMIs, key pairs and
# instance types like AWS does.
VALIDATION_FLAGS = {
    "MOTO_ENABLE_AMI_VALIDATION": "ENABLE_AMI_VALIDATION",
    "MOTO_ENABLE_KEYPAIR_VALIDATION": "ENABLE_KEYPAIR_VALIDATION",
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "EC2_ENABLE_INSTANCE_TYPE_VALIDATION",
}
_SIGNED_SERVICES = frozenset({"ec2", "elasticloadbalancing", "route53"})
# EC2 actions whose ClientToken makes a retry return the first result (moto ignores it)
_IDEMPOTENT_ACTIONS = frozenset({"RunInstances", "CreateVolume", "CreateNetworkInterface",
                                 "AllocateAddress", "CreateSubnet", "CreateVpc"})


# --------------------------------------------------------------------------- EC2 model


class _Ec2Model:
    """What botocore's EC2 model says about list parameters and ``Return`` outputs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False
        self.scalar_lists: dict[str, frozenset[str]] = {}
        self.returns_bool: frozenset[str] = frozenset()

    def load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            import botocore.session

            model = botocore.session.get_session().get_service_model("ec2")
            scalar = {"string", "integer", "long", "boolean", "timestamp", "float", "double"}
            lists: dict[str, frozenset[str]] = {}
            returns: set[str] = set()
            for op_name in model.operation_names:
                op = model.operation_model(op_name)
                names: set[str] = set()
                if op.input_shape is not None:
                    for member_name, shape in op.input_shape.members.items():
                        if shape.type_name == "list" and shape.member.type_name in scalar:
                            names.add(_ec2_serialized_name(shape, member_name))
                lists[op_name] = frozenset(names)
                out = op.output_shape
                if out is None or not out.members or "Return" in out.members:
                    returns.add(op_name)
            self.scalar_lists = lists
            self.returns_bool = frozenset(returns)
            self._loaded = True


def _ec2_serialized_name(shape: Any, default: str) -> str:
    """The name botocore's EC2 serializer puts on the wire for a member."""
    ser = shape.serialization
    if "queryName" in ser:
        return str(ser["queryName"])
    if "name" in ser:
        name = str(ser["name"])
        return name[0].upper() + name[1:]
    return default


EC2_MODEL = _Ec2Model()


# ------------------------------------------------------------------ parameter rewrites


def shift_zero_indexes(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Shift list indexes up by one under every list prefix that uses index 0.

    ``ResourceId.0`` → ``ResourceId.1``; ``Tag.0.Key``/``Tag.1.Key`` → ``Tag.1.Key``/
    ``Tag.2.Key``.  Lists that are already 1-based are left alone.
    """
    zero_prefixes: set[tuple[str, ...]] = set()
    split = [key.split(".") for key, _ in pairs]
    for segs in split:
        for i, seg in enumerate(segs):
            if i and seg == "0":
                zero_prefixes.add(tuple(segs[:i]))
    if not zero_prefixes:
        return pairs
    out: list[tuple[str, str]] = []
    for segs, (_, value) in zip(split, pairs, strict=True):
        new = list(segs)
        for i, seg in enumerate(segs):
            if i and seg.isdigit() and tuple(segs[:i]) in zero_prefixes:
                new[i] = str(int(seg) + 1)
        out.append((".".join(new), value))
    return out


def number_bare_lists(pairs: list[tuple[str, str]], names: frozenset[str]) -> list[tuple[str, str]]:
    """``KeyName=a`` → ``KeyName.1=a`` for scalar-list parameters sent bare."""
    if not names:
        return pairs
    counters: dict[str, int] = collections.Counter()
    for key, _ in pairs:
        if "." in key:
            base, _, idx = key.partition(".")
            if base in names and idx.isdigit():
                counters[base] = max(counters[base], int(idx))
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if key in names:
            counters[key] += 1
            key = f"{key}.{counters[key]}"
        out.append((key, value))
    return out


def _encode(pairs: list[tuple[str, str]]) -> str:
    return urlencode(pairs, quote_via=quote, safe="-_.~")


def _get(pairs: list[tuple[str, str]], key: str) -> str | None:
    for k, v in pairs:
        if k == key:
            return v
    return None


# -------------------------------------------------------------------------- the layer


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


_FAULT_MESSAGES = {
    "RequestLimitExceeded": "Request limit exceeded.",
    "Throttling": "Rate exceeded",
    "InternalError": "An internal error has occurred",
    "ServiceUnavailable": "The service is unavailable. Please try again shortly.",
}
_REASONS = {400: "BAD REQUEST", 500: "INTERNAL SERVER ERROR", 503: "SERVICE UNAVAILABLE"}
_STATUS_TEXT = {200: "OK", 400: "BAD REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN",
                404: "NOT FOUND", 500: "INTERNAL SERVER ERROR"}


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


class _Drop(Exception):
    """Close the client's connection without a response."""


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


def _drop_connection(environ: Environ) -> NoReturn:
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


class CompatLayer:
    """WSGI middleware in front of moto's app; see the module docstring."""

    def __init__(self, app: WSGIApp, identity: Identity, hosts: Ec2Hosts | None = None
                 ) -> None:
        self.app = app
        self.identity = identity  # the control token of /_sandbox/* and /moto-api/*
        self.hosts = hosts or Ec2Hosts(enabled=False)
        self.counter = RequestCounter()
        self.faults = Faults()
        self.sts = Sts()  # AssumeRole checks and the temporary keys it issued (aws_sts)
        self.accounts = Accounts(self.sts, ACCESS_KEY, SECRET_KEY)  # whose keys (aws_auth)
        self.placement = aws_placement.PlacementGroups()  # moto has none (aws_placement)
        # ClientToken idempotency, as EC2 does it (moto ignores the token):
        # (region, action, token) -> the first successful answer
        self._tokens: dict[tuple[str, str, str], tuple[str, list[tuple[str, str]], bytes]] = {}
        self._token_locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._tokens_lock = threading.Lock()

    # ---- plumbing

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path.startswith(("/_sandbox/", "/moto-api")):
            denied = refuse_wsgi(environ, self.identity.token)
            if denied is not None:
                denied_status, data = denied
                headers = [("Content-Type", "application/json"),
                           *(unauthorized_headers().items() if denied_status == 401 else ())]
                return _respond(start_response, f"{denied_status} {_STATUS_TEXT[denied_status]}",
                                headers, json.dumps(data).encode("utf-8"))
        if path.startswith("/_sandbox/"):
            return self._control(environ, start_response, path)
        if path.startswith("/moto-api"):
            if path.startswith("/moto-api/reset"):
                with self._tokens_lock:
                    self._tokens.clear()
                    self._token_locks.clear()
                self.sts.reset()
                self.placement.reset()
            self.counter.add("moto-api")
            if path.startswith("/moto-api/reset"):
                answer = _call(self.app, environ)
                self.hosts.sync()  # every instance is gone: so are their sshds
                return _respond(start_response, *answer)
            return self.app(environ, start_response)

        form = self._read_form(environ)
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        service, region = self._identify(environ, path, query, form)
        self.counter.add(service)
        self.sts.count(access_key_of(environ, query + (form or [])))
        refused = self.accounts.refuse(service, environ)
        if refused is not None:  # not our key, not its session token, not its signature
            return _respond(start_response, *refused)
        latency, fault, status, code = self.faults.decide(service)
        if latency > 0:
            time.sleep(latency)
        if fault == "error":
            body = aws_error_body(service, code, _FAULT_MESSAGES[code])
            headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", str(uuid.uuid4()))]
            return _respond(start_response, f"{status} {_REASONS[status]}", headers, body)
        if fault == "drop_before":
            _drop_connection(environ)
        if "HTTP_AUTHORIZATION" not in environ and service in _SIGNED_SERVICES:
            access = _get(query, "AWSAccessKeyId") or _get(form or [], "AWSAccessKeyId")
            environ["HTTP_AUTHORIZATION"] = _dummy_sigv4(service, region, access or "sandbox")
        if fault == "drop_after":
            # carry the request out in full, then lose the answer
            _call(lambda env, sr: self._route(env, sr, service, region, path, query, form),
                  environ)
            _drop_connection(environ)
        return self._route(environ, start_response, service, region, path, query, form)

    def _route(
        self,
        environ: Environ,
        start_response: StartResponse,
        service: str,
        region: str,
        path: str,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]] | None,
    ) -> Iterable[bytes]:
        if service == "ec2":
            return self._ec2(environ, start_response, query, form, region)
        if service == "route53":
            return self._route53(environ, start_response, path)
        if service == "sts":
            return self._sts(environ, start_response, query + (form or []))
        if service == "elasticloadbalancing" and path.startswith(f"/{ELB_API_VERSION}"):
            _set_path(environ, "/")
        return self.app(environ, start_response)

    def _control(
        self, environ: Environ, start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = path.rstrip("/")
        if path == "/_sandbox/requests" and method == "GET":
            return _json(start_response, self.counter.snapshot())
        if path == "/_sandbox/faults" and method == "GET":
            return _json(start_response, self.faults.snapshot())
        if path == "/_sandbox/config" and method == "GET":
            return _json(start_response, self.faults.knobs.as_dict())
        if path == "/_sandbox/config" and method == "POST":
            try:
                data = json.loads(_body(environ) or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("expected a JSON object")
                return _json(start_response, self.faults.configure(data))
            except (ValueError, TypeError) as exc:
                return _json(start_response, {"error": str(exc)}, "400 BAD REQUEST")
        if path == "/_sandbox/config/reset" and method == "POST":
            return _json(start_response, self.faults.reset())
        if path == "/_sandbox/access-keys" and method == "GET":
            return _json(start_response, self.sts.counts())
        if path == "/_sandbox/requests/reset" and method == "POST":
            self.counter.reset()
            self.faults.clear_counts()
            self.sts.clear_counts()
            return _json(start_response, {"total": 0, "by_service": {}})
        if path == "/_sandbox/info" and method == "GET":
            return _json(start_response, {"service": SERVICE_NAME, "pid": os.getpid(),
                                          "instance": self.identity.instance})
        if path == "/_sandbox/shutdown" and method == "POST":
            shut_down_soon()
            return _json(start_response, {"shutdown": True})
        handled = self.hosts.ssh.admin(method, path)  # sshd-backed instances (aws_hosts)
        if handled is not None:
            code, data = handled
            return _json(start_response, data, f"{code} {_STATUS_TEXT.get(code, 'OK')}")
        return _json(
            start_response, {"error": f"no such sandbox endpoint: {path}"}, "404 NOT FOUND"
        )

    @staticmethod
    def _read_form(environ: Environ) -> list[tuple[str, str]] | None:
        """Read (and put back) a form-encoded POST body; None if there is none."""
        if not str(environ.get("CONTENT_TYPE", "")).startswith(_FORM):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True)

    @staticmethod
    def _identify(
        environ: Environ,
        path: str,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]] | None,
    ) -> tuple[str, str]:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if auth.startswith("AWS4"):
            try:
                scope = auth.split(",")[0].split()[1].split("=", 1)[1]
                _, _, region, service, _ = scope.split("/")
                return service.lower(), region
            except (IndexError, ValueError):
                pass
        if "HTTP_X_AMZN_AUTHORIZATION" in environ or path.startswith(
            (f"/{ROUTE53_OLD}/", f"/{ROUTE53_NEW}/")
        ):
            return "route53", DEFAULT_REGION
        if path.startswith(f"/{ELB_API_VERSION}"):
            return "elasticloadbalancing", DEFAULT_REGION
        params = query + (form or [])
        version = _get(params, "Version")
        if version == ELB_API_VERSION:
            return "elasticloadbalancing", DEFAULT_REGION
        if version == EC2_API_VERSION or (_get(params, "Action") and version is None):
            return "ec2", DEFAULT_REGION
        if _get(params, "Action"):
            return "other", DEFAULT_REGION
        return "s3", DEFAULT_REGION

    # ---- EC2

    def _ec2(
        self,
        environ: Environ,
        start_response: StartResponse,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]] | None,
        region: str = DEFAULT_REGION,
    ) -> Iterable[bytes]:
        EC2_MODEL.load()
        action = _get(query, "Action") or _get(form or [], "Action") or ""
        if aws_placement.handles(action, query + (form or [])):
            code, xml = aws_placement.answer(
                self.placement, region, action, query + (form or []),
                lambda r, ids: self._instance_states(environ, ids))
            return _respond(start_response, f"{code} {_STATUS_TEXT.get(code, 'OK')}",
                            [("Content-Type", "text/xml")], xml.encode("utf-8"))
        token = _get(query, "ClientToken") or _get(form or [], "ClientToken")
        if token and action in _IDEMPOTENT_ACTIONS:
            key = (region, action, token)
            with self._tokens_lock:
                lock = self._token_locks.setdefault(key, threading.Lock())
            with lock:  # a retry waits for its first attempt, then gets its answer
                cached = self._tokens.get(key)
                if cached is not None:
                    return _respond(start_response, *cached)
                status, headers, body = _call(
                    lambda env, sr: self._ec2_call(env, sr, query, form, action, region),
                    environ)
                if status.startswith("2"):
                    with self._tokens_lock:
                        self._tokens[key] = (status, headers, body)
                return _respond(start_response, status, headers, body)
        return self._ec2_call(environ, start_response, query, form, action, region)

    def _ec2_call(
        self,
        environ: Environ,
        start_response: StartResponse,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]] | None,
        action: str,
        region: str,
    ) -> Iterable[bytes]:
        names = EC2_MODEL.scalar_lists.get(action, frozenset())

        def fix(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
            return list(number_bare_lists(shift_zero_indexes(pairs), names))

        new_query = fix(query)
        new_form = fix(form) if form is not None else None
        merged = new_query + (new_form or [])
        extra: list[tuple[str, str]] = []
        if action == "DescribeInstances" and not any(
            k == "MaxResults" or k.startswith("InstanceId.") for k, _ in merged
        ):
            extra.append(("MaxResults", DESCRIBE_INSTANCES_ALL))
        if action == "DetachVolume" and _get(merged, "InstanceId") is None:
            volume_id = _get(merged, "VolumeId")
            instance_id = self._attached_instance(environ, volume_id) if volume_id else None
            if instance_id:
                extra.append(("InstanceId", instance_id))
        if new_form is not None and environ.get("REQUEST_METHOD") == "POST":
            new_form += extra
        else:
            new_query += extra
        if new_query != query:
            _set_query(environ, _encode(new_query))
        if new_form is not None and new_form != form:
            body = _encode(new_form).encode("utf-8")
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))

        group = None
        if action == "RunInstances":  # Placement.GroupName: a group of ours (aws_placement)
            try:
                group = self.placement.check_launch(
                    region, merged, lambda r, ids: self._instance_states(environ, ids))
            except aws_placement.Ec2Error as err:
                return _respond(start_response, f"{err.status} {_STATUS_TEXT[err.status]}",
                                [("Content-Type", "text/xml")],
                                aws_placement.error_xml(err).encode("utf-8"))
        status, headers, body = _call(self.app, environ)
        ok = status.startswith("2")
        if ok and group is not None:
            self.placement.joined(region, group, _INSTANCE_ID_RE.findall(body.decode("utf-8")))
        if ok and changes_instances(action):
            self.hosts.sync()
        body = _EC2_NS_RE.sub(lambda m: b'xmlns="' + m.group(1).rstrip(b"/") + b'/"', body)
        if ok:
            if action in EC2_MODEL.returns_bool and b"<return>" not in body:
                closing = f"</{action}Response>".encode()
                if closing in body:
                    body = body.replace(closing, b"<return>true</return>" + closing, 1)
        else:
            body = _ERROR_NS_RE.sub(b"<Response>", body)
            body = _SET_NAMES_RE.sub(_unset, body.decode("utf-8")).encode("utf-8")
        return _respond(start_response, status, headers, body)

    def _instance_states(self, environ: Environ, ids: list[str]) -> dict[str, tuple[str, str]]:
        """Ask moto (in-process) for the state and zone of the instances ``ids`` that exist."""
        if not ids:
            return {}
        pairs = [("Action", "DescribeInstances"), ("Version", EC2_API_VERSION),
                 ("Filter.1.Name", "instance-id"),
                 *((f"Filter.1.Value.{i}", v) for i, v in enumerate(ids, 1))]
        status, _, body = _call(self.app, self._sub_request(environ, _encode(pairs)))
        if not status.startswith("2"):
            return {}
        out = {}
        for inst in ET.fromstring(body).findall(".//{*}instancesSet/{*}item"):
            out[inst.findtext("{*}instanceId") or ""] = (
                inst.findtext("{*}instanceState/{*}name") or "",
                inst.findtext("{*}placement/{*}availabilityZone") or "")
        return out

    def _attached_instance(self, environ: Environ, volume_id: str) -> str | None:
        """Ask moto (in-process) which instance a volume is attached to."""
        qs = _encode(
            [("Action", "DescribeVolumes"), ("Version", EC2_API_VERSION), ("VolumeId.1", volume_id)]
        )
        sub = self._sub_request(environ, qs)
        status, _, body = _call(self.app, sub)
        if not status.startswith("2"):
            return None
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return None
        return root.findtext(".//{*}attachmentSet/{*}item/{*}instanceId")

    # ---- STS

    def _sts(self, environ: Environ, start_response: StartResponse,
             params: list[tuple[str, str]]) -> Iterable[bytes]:
        access_key = access_key_of(environ, params)
        if _get(params, "Action") == "AssumeRole":
            refused = self.sts.assume_role(
                params, access_key, lambda name: self._get_role(environ, name, access_key))
            if refused is not None:
                return _respond(start_response, *refused)
        status, headers, body = _call(self.app, environ)
        if status.startswith("2"):
            self.sts.remember(body)
        return _respond(start_response, status, headers, body)

    def _get_role(self, environ: Environ, name: str,
                  access_key: str | None) -> dict[str, Any] | None:
        """Ask moto's IAM (in-process) for a role, as the caller's account."""
        qs = _encode(list(get_role_query(name)))
        sub = self._sub_request(environ, qs)
        sub["HTTP_AUTHORIZATION"] = _dummy_sigv4("iam", DEFAULT_REGION, access_key or "sandbox")
        status, _, body = _call(self.app, sub)
        return role_from_get_role(body) if status.startswith("2") else None

    @staticmethod
    def _sub_request(environ: Environ, qs: str) -> Environ:
        """A GET ``/?qs`` to moto with the transport keys of ``environ``."""
        sub = {
            k: v
            for k, v in environ.items()
            if k.startswith(("HTTP_", "SERVER_", "wsgi.", "REMOTE_")) and k != "HTTP_CONTENT_LENGTH"
        }
        sub.pop("HTTP_X_AMZ_SECURITY_TOKEN", None)
        sub.update(
            {
                "REQUEST_METHOD": "GET",
                "SCRIPT_NAME": "",
                "PATH_INFO": "/",
                "QUERY_STRING": qs,
                "RAW_URI": "/?" + qs,
                "REQUEST_URI": "/?" + qs,
                "CONTENT_LENGTH": "0",
                "CONTENT_TYPE": "",
                "wsgi.input": io.BytesIO(b""),
            }
        )
        return sub

    # ---- Route53

    def _route53(
        self, environ: Environ, start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        old = f"/{ROUTE53_OLD}/"
        if not path.startswith(old):
            return self.app(environ, start_response)
        _set_path(environ, f"/{ROUTE53_NEW}/" + path[len(old) :])
        status, headers, body = _call(self.app, environ)
        return _respond(start_response, status, headers, body.replace(_ROUTE53_NS, _ROUTE53_NS_OLD))


def _body(environ: Environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _unset(match: re.Match[str]) -> str:
    names = re.findall(r"'([^']*)'", match.group(1))
    return "'" + ", ".join(names) + "'"


def _dummy_sigv4(service: str, region: str, access_key: str) -> str:
    day = time.strftime("%Y%m%d", time.gmtime())
    return (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{day}/{region}/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )


def _set_query(environ: Environ, qs: str) -> None:
    environ["QUERY_STRING"] = qs
    path = environ.get("PATH_INFO", "/")
    for key in ("RAW_URI", "REQUEST_URI"):
        if key in environ:
            environ[key] = path + ("?" + qs if qs else "")


def _set_path(environ: Environ, path: str) -> None:
    environ["PATH_INFO"] = path
    qs = environ.get("QUERY_STRING", "")
    for key in ("RAW_URI", "REQUEST_URI"):
        if key in environ:
            environ[key] = path + ("?" + qs if qs else "")


def _call(app: WSGIApp, environ: Environ) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run a WSGI app to completion and return (status, headers, body)."""
    captured: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = status
        captured["headers"] = headers
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return captured["status"], list(captured["headers"]), b"".join(chunks)


def _respond(
    start_response: StartResponse, status: str, headers: list[tuple[str, str]], body: bytes
) -> list[bytes]:
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    headers.append(("Content-Length", str(len(body))))
    start_response(status, headers)
    return [body]


def _json(start_response: StartResponse, data: Any, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(data).encode("utf-8")
    return _respond(start_response, status, [("Content-Type", "application/json")], body)


# ----------------------------------------------------------------------------- server


def enable_validation() -> None:
    """Turn on moto's AMI/key-pair/instance-type validation (before moto loads).

    Only the server process calls this, so importing this module has no side
    effects on in-process moto mocks elsewhere.
    """
    for env, attr in VALIDATION_FLAGS.items():
        os.environ[env] = "true"
        settings = sys.modules.get("moto.settings")
        if settings is not None:  # moto already loaded: its flags are read per call
            setattr(settings, attr, True)


def build_app(identity: Identity, ssh: bool | None = None) -> CompatLayer:
    """moto's app, built the way ``ThreadedMotoServer`` builds it, behind the layer.

    ``ssh``: instances launched with a key pair get a real sshd (see aws_hosts);
    None: when sshd is installed.
    """
    enable_validation()
    from moto.server import DomainDispatcherApplication, create_backend_app

    hosts = Ec2Hosts(enabled=ssh)
    hosts.install()
    return CompatLayer(DomainDispatcherApplication(create_backend_app), identity, hosts)




def _warm_up(app: CompatLayer, regions: Iterable[str]) -> None:
    """Load the EC2 model and moto's EC2 backends before announcing readiness."""
    EC2_MODEL.load()
    for region in regions:
        qs = _encode([("Action", "DescribeRegions"), ("Version", EC2_API_VERSION)])
        environ: Environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "QUERY_STRING": qs,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "0",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": _dummy_sigv4("ec2", region, "sandbox"),
            "CONTENT_LENGTH": "0",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        _call(app.app, environ)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloudtmpl_sandbox.aws", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", type=Path, default=None)
    parser.add_argument("--no-warm-up", action="store_true")
    parser.add_argument("--no-ssh", action="store_true",
                        help="no sshd for instances launched with a key pair")
    args = parser.parse_args(argv)
    host = check_loopback(args.host)
    identity = take_identity()  # out of the environment before anything is started

    from werkzeug.serving import make_server

    from cloudtmpl_sandbox.httplog import RequestHandler, quiet

    app = build_app(identity, ssh=False if args.no_ssh else None)
    if not args.no_warm_up:
        _warm_up(app, ("us-east-1", "eu-central-1"))
    server = quiet(make_server(host, args.port, app, threaded=True,
                               request_handler=RequestHandler))
    port = server.server_port
    url_host = f"[{host}]" if ":" in host else host
    endpoint = f"http://{url_host}:{port}"

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    if args.ready_file is not None:
        write_ready(args.ready_file, {"endpoint": endpoint, "pid": os.getpid()})
    print(f"cloudtmpl AWS sandbox listening on {endpoint} (pid {os.getpid()})", flush=True)
    try:
        server.serve_forever()  # returns on KeyboardInterrupt (SIGINT/SIGTERM)
    finally:
        app.hosts.clear()  # every sshd this sandbox started
        if args.ready_file is not None:
            try:
                if json.loads(args.ready_file.read_text()).get("pid") == os.getpid():
                    args.ready_file.unlink()
            except (OSError, ValueError):
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
