"""Swift's transport: libcloud's ``OpenStackSwiftConnection``, pooled per region, raw.

The connection authenticates with the client's credentials (any of their auth
types, see :mod:`cloudtmpl.providers.openstack.auth`) against the ``object-store``
endpoint of the region from the service catalog.  Connections are pooled per region
and lent to one thread at a time, so a token is fetched once per region and reused.
Every request is counted and rate-limited with the client's other requests and goes
through its retrier.  Requests are raw: the answers are read by the caller (status
and headers); the listings (an account's containers by name prefix, a container's
objects) follow every page.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import quote

from libcloud.common.types import LibcloudError
from libcloud.storage.drivers.cloudfiles import OpenStackSwiftStorageDriver

from cloudtmpl.model import Target
from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.openstack.auth import OpenStackAuth

T = TypeVar("T")

PAGE = 1000  # names per listing request


class NoEndpoint(Exception):
    """The cloud's catalog has no object-store endpoint in the region."""


class _Raw:
    """Mixed into the connection's response class: answers are returned, never raised."""

    def success(self) -> bool:
        return True


def path_of(name: str, obj: str | None = None) -> str:
    """The request path of container ``name`` (or of its object ``obj``)."""
    path = "/" + quote(name, safe="")
    return path + "/" + quote(obj, safe="/") if obj is not None else path


class SwiftConnections:
    """Swift connections of one client, per region."""

    def __init__(self, target: Target, credentials: Callable[[], OpenStackAuth],
                 count_on: Callable[[Any], None],
                 call: Callable[[Callable[[], Any]], Any]) -> None:
        self.target = target
        self._credentials = credentials
        self._count_on = count_on
        self._call = call
        self._lock = threading.Lock()
        self._idle: dict[str, list[Any]] = {}
        self._urls: dict[str, str] = {}  # region -> the object-store endpoint seen

    def _new_conn(self, region: str) -> Any:
        auth = self._credentials()
        key, secret, auth_args = auth.libcloud_args()
        driver = OpenStackSwiftStorageDriver(
            key, secret, **auth_args,
            ex_force_service_region=region,
            ex_force_service_type="object-store",
            timeout=float(self.target.options.get("request_timeout", 60)),
        )
        conn: Any = driver.connection
        conn.responseCls = type("RawSwiftResponse", (_Raw, conn.responseCls), {})
        self._count_on(conn)
        osa = conn.get_auth_class()
        self._count_on(osa)
        body = auth.auth_body()
        setattr(osa, "_get_auth_data", lambda b=body: copy.deepcopy(b))  # noqa: B010
        return conn

    @contextmanager
    def _conn(self, region: str) -> Iterator[Any]:
        with self._lock:
            idle = self._idle.setdefault(region, [])
            conn = idle.pop() if idle else None
        if conn is None:
            conn = self._new_conn(region)
        try:
            yield conn
        finally:
            with self._lock:
                self._idle.setdefault(region, []).append(conn)

    def request(self, region: str, path: str, *, method: str = "GET",
                headers: Mapping[str, str] | None = None,
                params: Mapping[str, str] | None = None,
                ok: tuple[int, ...] = (), data: bytes | str = "",
                ) -> tuple[int, Mapping[str, str], Any]:
        """(status, lower-case headers, parsed body); errors not in ``ok`` raise.
        :class:`NoEndpoint` when the region has no object-store."""
        def go() -> tuple[int, Mapping[str, str], Any]:
            with self._conn(region) as conn:
                try:
                    resp = conn.request(path, params=dict(params or {}), method=method,
                                        headers=dict(headers or {}), data=data)
                except LibcloudError as exc:
                    if "Could not find specified endpoint" in str(exc):
                        raise NoEndpoint(str(exc)) from None
                    raise
            with self._lock:
                self._urls[region] = (f"{'https' if conn.secure else 'http'}://{conn.host}:"
                                      f"{conn.port}{conn.request_path}")
            status = int(resp.status)
            hdrs = {str(k).lower(): str(v) for k, v in (resp.headers or {}).items()}
            if status < 400 or status in ok:
                return status, hdrs, resp.object
            text = resp.body if isinstance(resp.body, str) else ""
            text = re.sub(r"<[^>]+>", " ", text).strip()
            raise CloudError(f"Swift {method} {path}: {text or 'error'} (HTTP {status})",
                             permanent=status not in (429, 500, 502, 503, 504),
                             status=str(status))

        result: tuple[int, Mapping[str, str], Any] = self._call(go)
        return result

    def endpoint(self, region: str) -> str:
        """The object-store endpoint of ``region`` seen so far ("" before any request)."""
        with self._lock:
            return self._urls.get(region, "")

    def containers(self, region: str, prefix: str) -> list[str]:
        """The names of the account's containers that start with ``prefix`` (every page)."""
        out: list[str] = []
        marker = ""
        while True:
            params = {"prefix": prefix, "limit": str(PAGE)}
            if marker:
                params["marker"] = marker
            _, _, body = self.request(region, "", params=params)
            page = [str(c.get("name")) for c in body or [] if isinstance(c, dict)]
            out.extend(page)
            if len(page) < PAGE or page[-1] == marker:
                return out
            marker = page[-1]

    def objects(self, region: str, name: str) -> list[str]:
        """The names of the objects in container ``name`` (every page)."""
        out: list[str] = []
        marker = ""
        while True:
            params = {"limit": str(PAGE), **({"marker": marker} if marker else {})}
            _, _, body = self.request(region, path_of(name), params=params)
            page = [str(o.get("name")) for o in body or [] if isinstance(o, dict)]
            out.extend(page)
            if len(page) < PAGE:
                return out
            marker = page[-1]

    def head(self, region: str, name: str) -> Mapping[str, str] | None:
        """The headers of container ``name`` (None: there is none)."""
        status, headers, _ = self.request(region, path_of(name), method="HEAD", ok=(404,))
        return None if status == 404 else headers
