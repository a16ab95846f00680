"""The WSGI application: one port, one path prefix per service and region.

==========================================  =====================================
``/identity/v3/...``                        Keystone (auth_url = ``…/identity``)
``/compute/{region}/v2.1/...``              Nova
``/image/{region}/v2/...``                  Glance
``/network/{region}/v2.0/...``              Neutron
``/volume/{region}/v3/{project_id}/...``    Cinder
``/load-balancer/{region}/v2/lbaas/...``    Octavia (``lb_responses.py``)
``/object-store/{region}/v1/AUTH_{p}/...``  Swift (``object.py``)
``/key-manager/{region}/v1/...``            Barbican (``secrets_responses.py``)
``/_sandbox/...``                           admin: not counted; the sandbox's token
==========================================  =====================================

``/_sandbox/*`` answers only requests with the sandbox's control token in the
header ``X-Sandbox-Token`` (401 without, 403 with another one; see
:mod:`cloudtmpl_sandbox.control`); ``POST /_sandbox/shutdown`` stops the emulator.

Each service also answers its version documents (the service root and the
versioned root, without a token: :mod:`.versions`), which the real clients read
to find the API before any other call.

Every API request is counted per service, then gets the knobs' latency, then
maybe a 429 (``throttle_rate``, with ``Retry-After``) or a ``failure_status``
(``failure_rate``) or a closed connection without a response (``drop_rate``; a
share ``drop_after`` of those after the handler ran), then the token check (all
but Keystone), then its handler.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from werkzeug.wrappers import Request, Response

from cloudtmpl_sandbox.control import Identity, refuse_wsgi, shut_down_soon, unauthorized_headers

from . import (
    SERVICE_NAME,
    compute_responses,
    identity,
    image,
    lb_models,
    lb_responses,
    network_base,
    network_responses,
    secrets_models,
    secrets_responses,
    tempurl,
    versions,
    volume_responses,
)
from . import object as object_store
from .core import ApiError, Call, Reply, fault
from .state import REGIONS, Store

_HANDLERS: dict[str, tuple[str, Callable[[Call], Reply]]] = {
    # path segment → (version prefix below the region, handler)
    "compute": ("/v2.1", compute_responses.handle),
    "image": ("", image.handle),
    "network": ("", network_responses.handle),
    "volume": ("/v3", volume_responses.handle),
    "load-balancer": ("", lb_responses.handle),
}


def service_error(service: str, status: int, message: str) -> ApiError:
    """An error in the style the named service answers with."""
    if service == "network":
        kind = {429: "OverLimit", 503: "ServiceUnavailable"}.get(status, "HTTPInternalServerError")
        return network_base.error(status, kind, message)
    if service == "image":
        return ApiError(status, f"{status} {message}\n\n")
    if service == "load-balancer":
        return lb_models.error(status, message)
    if service == "key-manager":
        return secrets_models.error(status, message)
    if service == "identity":
        return ApiError(status, {"error": {"code": status, "message": message, "title": message}})
    return fault(status, message)


_DROP_AFTER = "cloudtmpl_sandbox.drop_after"


class _Drop(Exception):
    """``drop_rate``: close the connection without a response."""


def _drop_connection(environ: dict[str, Any]) -> NoReturn:
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # RST: "connection reset" on the client
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
    # werkzeug's server treats a ConnectionError from the app as a dropped client
    raise ConnectionAbortedError("sandbox drop_rate: connection closed without a response")


class OpenStackSandbox:
    """WSGI callable; see the module docstring."""

    def __init__(self, identity: Identity, store: Store | None = None) -> None:
        self.identity = identity
        self.store = store or Store()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        try:
            reply = self.dispatch(request)
        except ApiError as exc:
            reply = Reply(exc.status, exc.body, exc.headers)
        except _Drop:
            _drop_connection(environ)
        if environ.get(_DROP_AFTER):
            _drop_connection(environ)
        return self.render(reply)(environ, start_response)

    @staticmethod
    def render(reply: Reply) -> Response:
        headers = {"x-openstack-request-id": f"req-{uuid.uuid4()}", **reply.headers}
        if reply.body is None:
            empty = Response(b"", status=reply.status, headers=headers)
            if "Content-Length" in reply.headers:  # HEAD: the length of what GET sends
                empty.headers["Content-Length"] = reply.headers["Content-Length"]
            return empty
        if isinstance(reply.body, bytes):  # Swift objects: the bytes as stored
            return Response(reply.body, status=reply.status, headers=headers)
        if isinstance(reply.body, str):
            mime = "text/plain; charset=UTF-8"
            return Response(reply.body, status=reply.status, headers=headers, content_type=mime)
        data = json.dumps(reply.body)
        return Response(data, status=reply.status, headers=headers, content_type="application/json")

    # ---------------------------------------------------------------------- routing

    def dispatch(self, request: Request) -> Reply:
        path = request.path
        if path.startswith("/_sandbox/"):
            refused = refuse_wsgi(request.environ, self.identity.token)
            if refused is not None:
                code, data = refused
                return Reply(code, data, unauthorized_headers() if code == 401 else {})
            return self.admin(request, path.rstrip("/"))
        service, _, rest = path.lstrip("/").partition("/")
        if service == "identity":
            self.before(service, request.environ)
            body = self.body(request, service)
            return identity.handle(
                self.store,
                request.method,
                "/" + rest,
                request.headers,
                body,
                self.endpoint(request),
                request.args,
            )
        if service == "object-store":  # Swift (object.py): raw bodies, headers
            region, _, rest = rest.partition("/")
            self.before(service, request.environ)
            if region not in REGIONS or not rest.startswith("v1/"):
                raise service_error(service, 404, f"The resource could not be found: {path}")
            if not tempurl.carries(request):  # a temp URL is its own credential
                identity.check_token(self.store, request.headers.get("X-Auth-Token"))
            return object_store.handle(self.store, request, region, rest[len("v1"):])
        if service == "key-manager":  # Barbican: raw payload bodies, its own paging
            region, _, rest = rest.partition("/")
            self.before(service, request.environ)
            root = f"{self.endpoint(request)}/key-manager/{region}"
            if region in REGIONS and rest.strip("/") in ("", "v1") and request.method == "GET":
                return secrets_responses.version_document(root, rest.strip("/") == "v1")
            if region not in REGIONS or not (rest == "v1" or rest.startswith("v1/")):
                raise service_error(service, 404, f"The resource could not be found: {path}")
            identity.check_token(self.store, request.headers.get("X-Auth-Token"))
            return secrets_responses.handle(self.store, request, region, rest[len("v1"):],
                                            root, identity.USER_ID)
        if service not in _HANDLERS:
            raise ApiError(
                404,
                {
                    "error": {
                        "code": 404,
                        "message": f"No such service: {path}",
                        "title": "Not Found",
                    }
                },
            )
        region, _, rest = rest.partition("/")
        self.before(service, request.environ)
        prefix, handler = _HANDLERS[service]
        discovery = versions.document(service, f"{self.endpoint(request)}/{service}/{region}",
                                      "/" + rest, request.method) if region in REGIONS else None
        if discovery is not None:  # version documents need no token, as the real ones
            return discovery
        if region not in REGIONS or not ("/" + rest).startswith(prefix):
            raise service_error(service, 404, f"The resource could not be found: {path}")
        identity.check_token(self.store, request.headers.get("X-Auth-Token"))
        discovery = versions.document(service, f"{self.endpoint(request)}/{service}/{region}",
                                      "/" + rest, request.method, authenticated=True)
        if discovery is not None:
            return discovery
        root = f"{self.endpoint(request)}/{service}/{region}{prefix}"
        call = Call(
            method=request.method,
            path=("/" + rest)[len(prefix) :] or "/",
            args=request.args.to_dict(flat=False),
            body=self.body(request, service),
            region=region,
            root=root + (f"/{identity.PROJECT_ID}" if service == "volume" else ""),
            project_id=identity.PROJECT_ID,
            user_id=identity.USER_ID,
            store=self.store,
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        return handler(call)

    @staticmethod
    def endpoint(request: Request) -> str:
        return request.host_url.rstrip("/")

    @staticmethod
    def body(request: Request, service: str) -> Any:
        raw = request.get_data()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise service_error(service, 400, "Malformed request body: not valid JSON") from None

    def before(self, service: str, environ: dict[str, Any] | None = None) -> None:
        """Count the request, then apply the latency/throttle/failure/drop knobs."""
        store = self.store
        with store.lock:
            store.counts[service] += 1
            knobs = store.knobs
            targeted = not knobs.services or service in knobs.services
            throttle = targeted and store.rng.random() < knobs.throttle_rate
            fail = targeted and not throttle and store.rng.random() < knobs.failure_rate
            drop = bool(knobs.drop_rate) and targeted and not (throttle or fail) \
                and store.rng.random() < knobs.drop_rate
            after = drop and bool(knobs.drop_after) and store.rng.random() < knobs.drop_after
            latency = knobs.latency_ms / 1000.0
        if latency > 0:
            time.sleep(latency)
        if throttle:
            err = service_error(service, 429, "Rate limit exceeded; retry later.")
            err.headers["Retry-After"] = str(knobs.retry_after)
            raise err
        if fail:
            raise service_error(
                service, knobs.failure_status, "Injected failure (sandbox failure_rate)."
            )
        if after and environ is not None:
            environ[_DROP_AFTER] = True  # the handler runs; its answer is lost
        elif drop:
            raise _Drop

    # ------------------------------------------------------------------------ admin

    def admin(self, request: Request, path: str) -> Reply:
        store, method = self.store, request.method
        if path == "/_sandbox/info" and method == "GET":
            return Reply(200, {"service": SERVICE_NAME, "pid": os.getpid(),
                               "instance": self.identity.instance, "regions": list(REGIONS)})
        if path == "/_sandbox/shutdown" and method == "POST":
            shut_down_soon()
            return Reply(200, {"shutdown": True})
        if path == "/_sandbox/requests" and method == "GET":
            return Reply(200, store.snapshot())
        if path == "/_sandbox/requests/reset" and method == "POST":
            with store.lock:
                store.counts.clear()
            return Reply(200, store.snapshot())
        if path == "/_sandbox/reset" and method == "POST":
            store.reset()
            return Reply(200, {"reset": True, "config": store.knobs.as_dict()})
        if path == "/_sandbox/config" and method == "GET":
            return Reply(200, store.knobs.as_dict())
        if path == "/_sandbox/config" and method == "POST":
            try:
                data = json.loads(request.get_data() or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("expected a JSON object")
                store.configure(data)
            except (ValueError, TypeError) as exc:
                return Reply(400, {"error": str(exc)})
            return Reply(200, store.knobs.as_dict())
        handled = store.ssh.admin(method, path)  # sshd-backed servers (see ..sshd)
        handled = handled or store.boots.admin(method, path)  # boots, console logs (..boot)
        if handled is not None:
            return Reply(*handled)
        return Reply(404, {"error": f"no such sandbox endpoint: {method} {path}"})
