"""Buckets on OpenStack: Swift containers, through libcloud's Swift connection.

Called by :class:`cloudtmpl.providers.openstack.OpenStackAdapter` for
``Cloud::Storage::Bucket``.  The connection is libcloud's
``OpenStackSwiftConnection`` (Keystone v3 auth, the ``object-store`` endpoint of the
region from the service catalog), authenticated with the adapter's credentials
(any of their auth types, see :mod:`cloudtmpl.providers.openstack_auth`);
connections are pooled per region and lent to one thread at a time, so a token is
fetched once per region and reused.  Every request is counted and rate-limited with
the adapter's other requests and goes through its retrier.  Requests are raw: the
answers are read here (status and headers).

Identity: physical id = the container name, deterministic ``<stack>.<address>``
(plus ``-<name_suffix>``), with the metadata ``X-Container-Meta-Cloudtmpl-Stack``,
``-Resource`` and ``-Spec`` (and ``-Force``) sent in the ``PUT`` that creates it
(atomic).  Discovery: one account listing (every page, filtered by the name
prefix ``<stack>.``) and one ``HEAD`` per container of the stack.  A cloud without
an object-store endpoint has no buckets: discovery reports none there.

Swift metadata names are case-insensitive: ``metadata`` keys must be lower-case
letters, digits and ``-``.  ``versioning`` is Swift's ``X-Versions-Enabled``.
Deleting a container that holds objects is refused unless its ``force`` metadata
says true; then its objects are deleted first.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from libcloud.common.types import LibcloudError
from libcloud.storage.drivers.cloudfiles import OpenStackSwiftStorageDriver

from cloudtmpl.model import LiveResource, physical_name
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import CloudError

if TYPE_CHECKING:
    from cloudtmpl.providers.openstack import OpenStackAdapter

BUCKET = "Cloud::Storage::Bucket"
STORAGE_KINDS = frozenset({BUCKET})
_META = "x-container-meta-"
_STACK, _RESOURCE, _SPEC, _FORCE = ("cloudtmpl-stack", "cloudtmpl-resource", "cloudtmpl-spec",
                                    "cloudtmpl-force")
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PAGE = 1000


class _NoEndpoint(Exception):
    """The cloud's catalog has no object-store endpoint in the region."""


class _Raw:
    """Mixed into the connection's response class: answers are returned, never raised."""

    def success(self) -> bool:
        return True


def container_name(stack: str, address: str, suffix: Any = None) -> str:
    name = physical_name(stack, address)
    if suffix:
        name += "-" + re.sub(r"[^A-Za-z0-9_.-]", "-", str(suffix))
    return name


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes", "on")


def _swift_key(key: str) -> str | None:
    """Why ``key`` cannot be a Swift container's metadata name (None: it can)."""
    if not _KEY_RE.match(key) or key.startswith("cloudtmpl-"):
        return ("is not a Swift container metadata name (lower-case letters, digits and '-'; "
                "cloudtmpl-* is reserved)")
    return None


def _metadata(properties: Mapping[str, Any]) -> dict[str, str]:
    return kit.metadata(properties, _swift_key)


class OpenStackStorage:
    """Swift containers for one :class:`OpenStackAdapter` (see the module docstring)."""

    def __init__(self, adapter: OpenStackAdapter) -> None:
        self.a = adapter
        self._lock = threading.Lock()
        self._idle: dict[str, list[Any]] = {}
        self._urls: dict[str, str] = {}  # region -> the object-store endpoint seen

    # ---- plumbing

    def _new_conn(self, region: str) -> Any:
        a = self.a
        auth = a.credentials()
        key, secret, auth_args = auth.libcloud_args()
        driver = OpenStackSwiftStorageDriver(
            key, secret, **auth_args,
            ex_force_service_region=region,
            ex_force_service_type="object-store",
            timeout=float(a.target.options.get("request_timeout", 60)),
        )
        conn: Any = driver.connection
        conn.responseCls = type("RawSwiftResponse", (_Raw, conn.responseCls), {})
        a._count_on(conn)
        osa = conn.get_auth_class()
        a._count_on(osa)
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

    def _request(self, region: str, path: str, *, method: str = "GET",
                 headers: Mapping[str, str] | None = None,
                 params: Mapping[str, str] | None = None,
                 ok: tuple[int, ...] = ()) -> tuple[int, Mapping[str, str], Any]:
        """(status, lower-case headers, parsed body); errors not in ``ok`` raise."""
        def go() -> tuple[int, Mapping[str, str], Any]:
            with self._conn(region) as conn:
                try:
                    resp = conn.request(path, params=dict(params or {}), method=method,
                                        headers=dict(headers or {}), data="")
                except LibcloudError as exc:
                    if "Could not find specified endpoint" in str(exc):
                        raise _NoEndpoint(str(exc)) from None
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

        return self.a._call(go)

    @staticmethod
    def _path(name: str, obj: str | None = None) -> str:
        path = "/" + quote(name, safe="")
        return path + "/" + quote(obj, safe="/") if obj is not None else path

    def _endpoint(self, region: str) -> str:
        with self._lock:
            return self._urls.get(region, "")

    # ---- the adapter verbs

    def discover(self, region: str, stack: str) -> list[LiveResource]:
        try:
            names = self._names(region, f"{stack}.")
        except _NoEndpoint:
            return []  # no Swift in this region: no buckets
        out = []
        for name in names:
            head = self._head(region, name)
            if head is None or head.get(_META + _STACK) != stack:
                continue
            if not head.get(_META + _RESOURCE):
                continue
            out.append(self._live(region, name, head))
        return out

    def _names(self, region: str, prefix: str) -> list[str]:
        out: list[str] = []
        marker = ""
        while True:
            params = {"prefix": prefix, "limit": str(_PAGE)}
            if marker:
                params["marker"] = marker
            _, _, body = self._request(region, "", params=params)
            page = [str(c.get("name")) for c in body or [] if isinstance(c, dict)]
            out.extend(page)
            if len(page) < _PAGE or page[-1] == marker:
                return out
            marker = page[-1]

    def _head(self, region: str, name: str) -> Mapping[str, str] | None:
        status, headers, _ = self._request(region, self._path(name), method="HEAD", ok=(404,))
        return None if status == 404 else headers

    def _live(self, region: str, name: str, head: Mapping[str, str]) -> LiveResource:
        meta = {k[len(_META):]: v for k, v in head.items() if k.startswith(_META)}
        endpoint = self._endpoint(region)
        url = f"{endpoint.rstrip('/')}/{quote(name, safe='')}" if endpoint else ""
        return LiveResource(
            address=meta.get(_RESOURCE) or name, kind=BUCKET, physical_id=name,
            placement=self.a._placement(region), name=name,
            properties={"versioning": _bool(head.get("x-versions-enabled")),
                        "metadata": {k: v for k, v in meta.items()
                                     if not k.startswith("cloudtmpl-")},
                        "force": _bool(meta.get(_FORCE))},
            attributes={"name": name, "url": url,
                        "domain_name": urlsplit(endpoint).hostname or "", "region": region,
                        "object_count": int(head.get("x-container-object-count") or 0)},
            spec_hash=meta.get(_SPEC) or None, status="available")

    def _headers(self, stack: str, address: str, properties: Mapping[str, Any], spec: str,
                 stale: Mapping[str, Any] | None = None) -> dict[str, str]:
        headers = {f"X-Container-Meta-{k}": v for k, v in _metadata(properties).items()}
        headers.update({
            "X-Container-Meta-Cloudtmpl-Stack": stack,
            "X-Container-Meta-Cloudtmpl-Resource": address,
            "X-Container-Meta-Cloudtmpl-Spec": spec,
            "X-Versions-Enabled": "true" if _bool(properties.get("versioning")) else "false",
        })
        if _bool(properties.get("force")):
            headers["X-Container-Meta-Cloudtmpl-Force"] = "true"
        else:
            headers["X-Remove-Container-Meta-Cloudtmpl-Force"] = "x"
        for key in stale or {}:
            if f"X-Container-Meta-{key}" not in headers:
                headers[f"X-Remove-Container-Meta-{key}"] = "x"
        return headers

    def create(self, region: str, stack: str, address: str, properties: Mapping[str, Any],
               spec_hash: str) -> LiveResource:
        name = container_name(stack, address, properties.get("name_suffix"))
        try:
            head = self._head(region, name)
        except _NoEndpoint:
            raise CloudError(f"target {self.a.target.name!r} has no object-store (Swift) "
                             f"endpoint in region {region}: it cannot hold buckets",
                             permanent=True) from None
        stale: Mapping[str, Any] = {}
        if head is not None:  # an earlier, interrupted create, or somebody else's
            owner = (head.get(_META + _STACK), head.get(_META + _RESOURCE))
            if owner not in ((stack, address), (None, None)):
                raise CloudError(f"container {name!r} exists and belongs to "
                                 f"{owner[0]}/{owner[1]}", permanent=True)
            stale = {k[len(_META):]: v for k, v in head.items() if k.startswith(_META)}
        self._request(region, self._path(name), method="PUT",
                      headers=self._headers(stack, address, properties, spec_hash, stale))
        return self._now(region, name, address)

    def _now(self, region: str, name: str, address: str) -> LiveResource:
        head = self._head(region, name)
        if head is None:
            raise CloudError(f"container {name} ({address}) vanished", permanent=False)
        return self._live(region, name, head)

    def update(self, live: LiveResource, properties: Mapping[str, Any],
               changed: frozenset[str], stack: str, spec_hash: str) -> LiveResource:
        refused = sorted(set(changed) - {"versioning", "metadata", "force"})
        if refused:
            raise CloudError(f"{live.kind} {live.address}: {', '.join(refused)} cannot change "
                             "in place; the resource must be replaced", permanent=True)
        region = live.placement.region
        stale = live.properties.get("metadata") or {}
        self._request(region, self._path(live.physical_id), method="POST",
                      headers=self._headers(stack, live.address, properties, spec_hash,
                                            stale))
        return self._now(region, live.physical_id, live.address)

    def delete(self, live: LiveResource) -> None:
        region = live.placement.region
        name = live.physical_id
        try:
            head = self._head(region, name)
        except _NoEndpoint:
            return
        if head is None:
            return
        if int(head.get("x-container-object-count") or 0) > 0:
            if not _bool(live.properties.get("force")):
                raise CloudError(
                    f"container {name} ({live.address}) is not empty: refusing to delete it "
                    "and its objects. Empty it, or set force: true on it (with "
                    "deletion_policy Delete) and apply before deleting it", permanent=True)
            for obj in self._objects(region, name):
                self._request(region, self._path(name, obj), method="DELETE", ok=(404,))
        status, _, _ = self._request(region, self._path(name), method="DELETE", ok=(404, 409))
        if status == 409:
            raise CloudError(f"container {name} ({live.address}) is not empty (HTTP 409): "
                             "objects were added while it was being deleted", permanent=True)

    def _objects(self, region: str, name: str) -> list[str]:
        out: list[str] = []
        marker = ""
        while True:
            params = {"limit": str(_PAGE), **({"marker": marker} if marker else {})}
            _, _, body = self._request(region, self._path(name), params=params)
            page = [str(o.get("name")) for o in body or [] if isinstance(o, dict)]
            out.extend(page)
            if len(page) < _PAGE:
                return out
            marker = page[-1]
