"""The OpenStack transport: connections, credentials, counting, retries, raw listings.

One ``OpenStack_2_NodeDriver`` (libcloud, API 2.2) per region holds the four
authenticated connections (Nova, Glance v2, Neutron, Cinder v3), and two more made
the same way: Octavia (:class:`OctaviaConnection`: the ``load-balancer`` service of
the catalog, named ``octavia``; its errors read from Octavia's ``faultstring``),
Keystone's admin API (:class:`KeystoneConnection`: ``identity``/``keystone``; its
errors from ``error.message``) and Barbican (:class:`BarbicanConnection`:
``key-manager``, named ``barbican``; its errors' ``description``, and a payload's
``Accept`` kept as asked); JSON bodies go
through them (``connection.request``) wherever libcloud's own helpers cannot carry
what cloudtmpl needs (metadata at creation, descriptions, pagination).

Each service connection authenticates once (one ``POST /v3/auth/tokens``) and then
reuses its token.  libcloud objects are not thread-safe, so a driver's four
connections are pooled per (region, service) and lent to one thread at a time
(:meth:`OpenStackClient.session`), an authenticated one first: tokens survive
across calls and threads, and a thread never shares a connection.  Every HTTP
request (token requests included, Swift's too) is counted and rate-limited, and
every cloud call goes through :class:`cloudtmpl.providers.retry.Retrier` (a 401
on a service request is retried: libcloud drops the token and authenticates again).

Discovery (:meth:`OpenStackClient.fetch`) sends one listing per underlying API and
region (only those the kinds need, each at most once, the services in parallel)
and follows every ``next`` link; Swift's containers are searched by the stack's
name prefix.
"""

from __future__ import annotations

import copy
import http.client
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

# Imported here, not inside functions: importing in worker threads can deadlock
# on Python's module locks while other threads import the same modules.
from libcloud.common.types import LibcloudError
from libcloud.compute.drivers.openstack import (
    OpenStack_1_1_Response,
    OpenStack_2_NetworkConnection,
    OpenStack_2_NodeDriver,
)

from cloudtmpl.model import Placement, Target
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import CloudError, poll
from cloudtmpl.providers.openstack.auth import OpenStackAuth, resolve_auth
from cloudtmpl.providers.openstack.swift import NoEndpoint, SwiftConnections, path_of
from cloudtmpl.providers.retry import (
    DEFAULT_POLICY,
    SANDBOX_POLICY,
    Retrier,
    RetryPolicy,
    Verdict,
    classify,
    http_status,
    limiter_for,
)

T = TypeVar("T")

# service -> attribute of the libcloud driver holding its connection
_CONNECTIONS = {
    "compute": "connection",
    "image": "image_connection",
    "network": "network_connection",
    "volume": "volumev3_connection",
    "load-balancer": "loadbalancer_connection",
    "identity": "identity_connection",
    "key-manager": "keymanager_connection",
}
_SERVICE_TYPES = {"compute": "compute", "image": "image", "network": "network",
                  "volume": "volumev3", "load-balancer": "load-balancer",
                  "identity": "identity", "key-manager": "key-manager"}
# the services a catalog may lack: what their absence means
_OPTIONAL = {"load-balancer": "load balancers: its service catalog has no load-balancer "
                              "(Octavia) endpoint",
             "key-manager": "secrets: its service catalog has no key-manager (Barbican) "
                            "endpoint"}


class _OctaviaResponse(OpenStack_1_1_Response):
    """An Octavia error's text: its ``faultstring`` (libcloud reads Nova's and Neutron's)."""

    def parse_error(self) -> str:
        body = self.parse_body()
        if isinstance(body, dict) and isinstance(body.get("faultstring"), str):
            return f"{self.status} {self.error} {body['faultstring']}"
        return str(super().parse_error())


class OctaviaConnection(OpenStack_2_NetworkConnection):
    """Octavia (``load-balancer``) with Neutron's JSON conventions."""

    service_type = "load-balancer"  # type: ignore[assignment]
    service_name = "octavia"  # type: ignore[assignment]
    responseCls = _OctaviaResponse


class _KeystoneResponse(OpenStack_1_1_Response):
    """A Keystone error's text: ``error.message``."""

    def parse_error(self) -> str:
        body = self.parse_body()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return f"{self.status} {self.error} {error['message']}"
        return str(super().parse_error())


class KeystoneConnection(OpenStack_2_NetworkConnection):
    """Keystone's admin API (``identity``, named ``keystone``) with Neutron's JSON
    conventions; paths are below the catalog's identity endpoint (``/v3/...``)."""

    service_type = "identity"  # type: ignore[assignment]
    service_name = "keystone"  # type: ignore[assignment]
    responseCls = _KeystoneResponse


class _BarbicanResponse(OpenStack_1_1_Response):
    """A Barbican error's text: its ``description`` (``{code, title, description}``)."""

    def parse_error(self) -> str:
        body = self.parse_body()
        if isinstance(body, dict) and isinstance(body.get("description"), str):
            return f"{self.status} {self.error} {body['description']}"
        return str(super().parse_error())


class BarbicanConnection(OpenStack_2_NetworkConnection):
    """Barbican (``key-manager``, API v1) with Neutron's JSON conventions."""

    service_type = "key-manager"  # type: ignore[assignment]
    service_name = "barbican"  # type: ignore[assignment]
    responseCls = _BarbicanResponse

    def add_default_headers(self, headers: dict[str, str]) -> dict[str, str]:
        accept = headers.get("Accept")  # a payload is asked for by its content type
        out: dict[str, str] = super().add_default_headers(headers)
        if accept:
            out["Accept"] = accept
        return out


class _Driver(OpenStack_2_NodeDriver):
    """libcloud's OpenStack driver with more connections (``loadbalancer_connection``,
    ``identity_connection``, ``keymanager_connection``), each built as the driver
    builds its others (same credentials, region and options)."""

    _MORE = (("loadbalancer_connection", OctaviaConnection),
             ("identity_connection", KeystoneConnection),
             ("keymanager_connection", BarbicanConnection))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        compute, compute_cls = self.connection, self.connectionCls
        kwargs.setdefault("ex_force_auth_version", "3.x_password")
        for attr, cls in self._MORE:
            self.connectionCls = cls  # type: ignore[assignment]
            super(OpenStack_2_NodeDriver, self).__init__(*args, **kwargs)
            setattr(self, attr, self.connection)
        self.connection, self.connectionCls = compute, compute_cls


# The raw listings discovery fetches: name -> (service, path, response key).
LISTINGS = {
    "servers": ("compute", "/servers/detail", "servers"),
    "flavors": ("compute", "/flavors", "flavors"),
    "keypairs": ("compute", "/os-keypairs", "keypairs"),
    "server_groups": ("compute", "/os-server-groups", "server_groups"),
    "volumes": ("volume", "/volumes/detail", "volumes"),
    "ports": ("network", "/v2.0/ports", "ports"),
    "security_groups": ("network", "/v2.0/security-groups", "security_groups"),
    "floatingips": ("network", "/v2.0/floatingips", "floatingips"),
    "networks": ("network", "/v2.0/networks", "networks"),
    "subnets": ("network", "/v2.0/subnets", "subnets"),
    "lb_loadbalancers": ("load-balancer", "/v2/lbaas/loadbalancers", "loadbalancers"),
    "lb_listeners": ("load-balancer", "/v2/lbaas/listeners", "listeners"),
    "lb_pools": ("load-balancer", "/v2/lbaas/pools", "pools"),
    "lb_healthmonitors": ("load-balancer", "/v2/lbaas/healthmonitors", "healthmonitors"),
    "routers": ("network", "/v2.0/routers", "routers"),
    # Keystone's (providers/openstack/identity.py): one directory for every region
    "ks_domains": ("identity", "/v3/domains", "domains"),
    "ks_projects": ("identity", "/v3/projects", "projects"),
    "ks_roles": ("identity", "/v3/roles", "roles"),
    "ks_groups": ("identity", "/v3/groups", "groups"),
    "ks_users": ("identity", "/v3/users", "users"),
    "ks_regions": ("identity", "/v3/regions", "regions"),
    "ks_services": ("identity", "/v3/services", "services"),
    "ks_endpoints": ("identity", "/v3/endpoints", "endpoints"),
    "barbican_secrets": ("key-manager", "/v1/secrets", "secrets"),
}
# Octavia's members are listed per pool: those of the stack's pools (named
# ``<stack>.*``), each with its ``pool_id`` (:meth:`OpenStackClient.lb_members`).
LB_MEMBERS = "lb_members"
# Listings kept for the client's life (a flavor's name is looked up in it later).
_KEPT = frozenset({"flavors"})
# Swift's containers: searched by the stack's name prefix (:meth:`OpenStackClient.containers`).
CONTAINERS = "containers"
# The stack's wait conditions: their containers (among ``containers``) and the record
# each holds (:meth:`OpenStackClient.wait_conditions`).
WAIT_CONDITIONS = "wait_conditions"
CONDITION_RECORD = "condition.json"


def status_of(err: CloudError) -> int | None:
    """The HTTP status of a CloudError, when it has one."""
    return int(err.status) if err.status.isdigit() else None


class OpenStackClient:
    """The connections and plumbing every OpenStack handler uses (see the module docstring)."""

    def __init__(
        self,
        target: Target,
        *,
        environ: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        home: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry_policy: RetryPolicy | None = None,
        page_size: int | None = None,
        poll_max_interval: float = 3.0,
    ) -> None:
        self.target = target
        self._environ = os.environ if environ is None else environ
        self._cwd = cwd
        self._home = home
        self._sleep = sleep
        self.clock = clock
        policy = retry_policy or (SANDBOX_POLICY if target.sandbox else DEFAULT_POLICY)
        self.retrier = Retrier(policy, sleep=sleep, classifier=self._classify)
        # request_rate: one token bucket for all of this client's threads
        self.limiter = limiter_for(target.options, clock=clock, sleep=sleep)
        self.page_size = int(page_size) if page_size else None
        self._poll_max = poll_max_interval
        self._local = threading.local()
        self._lock = threading.Lock()
        self._count = 0
        self._auth: OpenStackAuth | None = None
        self._idle: dict[tuple[str, str], list[Any]] = {}
        self._memo: dict[Hashable, Any] = {}
        self.swift = SwiftConnections(target, self.credentials, self.count_on, self.call)

    # ------------------------------------------------------------------ counting, credentials

    def request_count(self) -> int:
        with self._lock:
            return self._count

    def credentials(self) -> OpenStackAuth:
        with self._lock:
            if self._auth is None:
                env = self._environ
                home = self._home or Path(env.get("HOME") or Path.home())
                self._auth = resolve_auth(self.target, env, self._cwd or Path.cwd(), home)
            return self._auth

    def placement(self, region: str) -> Placement:
        return Placement(self.target.name, region)

    def count_on(self, conn: Any) -> None:
        """Count and rate-limit every HTTP request of ``conn`` (libcloud's retries included)."""
        original = conn._retryable_request

        def counted(*args: Any, **kw: Any) -> Any:
            self.limiter.acquire()  # before every HTTP request, retries included
            with self._lock:
                self._count += 1
            return original(*args, **kw)

        setattr(conn, "_retryable_request", counted)  # noqa: B010 - instance-level wrap

    def cached(self, key: Hashable, make: Callable[[], T | None]) -> T | None:
        """``make()``, kept for this client's life once it is not None."""
        with self._lock:
            found = self._memo.get(key)
        if found is None:
            found = make()
            if found is not None:
                with self._lock:
                    self._memo[key] = found
        return found

    # ------------------------------------------------------------------ connections

    def _new_driver(self, region: str) -> Any:
        auth = self.credentials()
        key, secret, auth_args = auth.libcloud_args()
        driver = _Driver(
            key, secret, **auth_args,
            ex_force_service_region=region,
            api_version="2.2",
            timeout=float(self.target.options.get("request_timeout", 60)),
        )
        body = auth.auth_body()
        for attr in _CONNECTIONS.values():
            conn = getattr(driver, attr)
            self.count_on(conn)
            osa = conn.get_auth_class()
            self.count_on(osa)
            # libcloud scopes by project *name* in a domain *id* and knows no token
            # method: send what the configuration says instead (auth.py).
            setattr(osa, "_get_auth_data", lambda b=body: copy.deepcopy(b))  # noqa: B010
        return driver

    @contextmanager
    def session(self, region: str) -> Iterator[None]:
        """Lend this thread connections for ``region`` until the block ends (re-entrant).

        libcloud connections are not thread-safe: each is used by one thread at a
        time.  They are pooled per (region, service), so tokens live across calls
        and threads, and a connection already holding a token is lent first.
        """
        held: dict[str, dict[str, Any]] | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = {}
        if region in held:
            yield
            return
        held[region] = {}
        try:
            yield
        finally:
            conns = held.pop(region)
            with self._lock:
                for service, conn in conns.items():
                    self._idle.setdefault((region, service), []).append(conn)

    def _conn(self, region: str, service: str) -> Any:
        held: dict[str, dict[str, Any]] | None = getattr(self._local, "held", None)
        if held is None or region not in held:  # pragma: no cover - programming error
            raise RuntimeError(f"no connections leased for {region}")
        mine = held[region]
        if service in mine:
            return mine[service]
        conn = None
        with self._lock:
            idle = self._idle.setdefault((region, service), [])
            if idle:
                authed = [i for i, c in enumerate(idle) if getattr(c, "auth_token", None)]
                conn = idle.pop(authed[-1] if authed else len(idle) - 1)
        if conn is None:
            driver = self._new_driver(region)
            with self._lock:
                for other, attr in _CONNECTIONS.items():
                    if other != service:  # spares, not yet authenticated
                        self._idle.setdefault((region, other), []).append(getattr(driver, attr))
            conn = getattr(driver, _CONNECTIONS[service])
        mine[service] = conn
        return conn

    # ------------------------------------------------------------------ errors, retries

    def _classify(self, exc: BaseException) -> Verdict:
        # A token revoked or expired under us: libcloud dropped it, the next try
        # authenticates again.
        if type(exc).__name__ == "BaseHTTPError" and getattr(exc, "code", None) == 401:
            return Verdict(True, "token rejected (HTTP 401)")
        return classify(exc)

    def _translate(self, exc: BaseException) -> CloudError:
        name = type(exc).__name__
        if name == "InvalidCredsError":
            auth = self._auth
            who = f" ({auth.who}, {auth.source})" if auth else ""
            return CloudError(f"authentication failed for target {self.target.name!r} "
                              f"(HTTP 401){who}", permanent=True, status="401")
        verdict = classify(exc)
        code = http_status(exc)
        message = getattr(exc, "message", None)
        if not isinstance(message, str) or not message:
            message = str(exc) or name
        if code is not None:
            # libcloud's "<code> <reason> <cloud's message>": keep the cloud's words
            reason = http.client.responses.get(code, "")
            if message.startswith(f"{code} "):
                message = message[len(f"{code} "):]
                if reason and message.lower().startswith(reason.lower() + " "):
                    message = message[len(reason) + 1:]
            message = f"{message.strip()} (HTTP {code})"
        elif verdict.retryable:
            message = f"cannot reach the OpenStack API of target {self.target.name!r} " \
                      f"({name}): {message}"
        return CloudError(message, permanent=not verdict.retryable,
                          status=str(code) if code is not None else "")

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` through the retrier; failures as CloudError."""
        return kit.call(fn, self._translate, self.retrier)

    def create_or_adopt(self, post: Callable[[], T], lookup: Callable[[], T | None]) -> T:
        """A create that may be retried: after an ambiguous failure, look first."""
        return kit.create_or_adopt(post, lookup, self.call)

    def poll(self, timeout: float, what: str, fetch: Callable[[], tuple[bool, str, T]]) -> T:
        return poll(timeout, what, fetch, clock=self.clock, sleep=self._sleep,
                    first=0.25, max_interval=self._poll_max)

    # ------------------------------------------------------------------ requests

    def _raw(self, region: str, service: str, path: str, method: str,
             body: Any, params: Mapping[str, Any] | None,
             headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        conn = self._conn(region, service)
        try:
            resp = conn.request(path, params=dict(params or {}),
                                data=body if body is not None else "", method=method,
                                headers=dict(headers or {}))
        except LibcloudError as exc:
            if "Could not find specified endpoint" not in str(exc):
                raise
            catalog = getattr(conn, "service_catalog", None)
            regions = catalog.get_regions(_SERVICE_TYPES[service]) if catalog else []
            if not regions and service in _OPTIONAL:
                raise CloudError(f"target {self.target.name!r} offers no "
                                 f"{_OPTIONAL[service]}", permanent=True) from None
            raise CloudError(
                f"region {region!r} is not in the service catalog of target "
                f"{self.target.name!r} (no {_SERVICE_TYPES[service]} endpoint; the catalog "
                f"has regions: {', '.join(regions) or 'none'})", permanent=True) from None
        obj = resp.object if isinstance(resp.object, (dict, list)) else None
        if obj is None and headers and "Accept" in headers and isinstance(resp.body, str):
            return int(resp.status), resp.body  # a payload asked for by its content type
        return int(resp.status), obj

    def api(self, region: str, service: str, path: str, *, method: str = "GET",
            body: Any = None, params: Mapping[str, Any] | None = None,
            retry: bool = True, headers: Mapping[str, str] | None = None) -> Any:
        """One request through the (leased) driver's connection; the parsed JSON."""
        return kit.call(lambda: self._raw(region, service, path, method, body, params, headers)[1],
                        self._translate, self.retrier if retry else None)

    def get(self, region: str, service: str, path: str, key: str) -> dict[str, Any] | None:
        """One object, or None when the cloud says 404."""
        try:
            obj = self.api(region, service, path)
        except CloudError as err:
            if status_of(err) == 404:
                return None
            raise
        found = (obj or {}).get(key)
        return found if isinstance(found, dict) else None

    def delete_call(self, region: str, service: str, path: str) -> bool:
        """DELETE; False when it was already gone (404)."""
        try:
            self.api(region, service, path, method="DELETE")
        except CloudError as err:
            if status_of(err) == 404:
                return False
            raise
        return True

    def list_all(self, region: str, service: str, path: str, key: str,
             params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every page of a listing: follows ``<key>_links`` / ``next`` to the end."""
        page: dict[str, Any] = dict(params or {})
        if self.page_size and "limit" not in page:
            page["limit"] = str(self.page_size)
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            obj = self.api(region, service, path, params=page) or {}
            items = obj.get(key) or []
            out.extend(i for i in items if isinstance(i, dict))
            nxt = next((link.get("href") for link in obj.get(f"{key}_links") or []
                        if isinstance(link, dict) and link.get("rel") == "next"), None)
            if nxt is None and isinstance(obj.get("next"), str):
                nxt = obj["next"]  # Glance v2
            if not nxt or not items:
                return out
            query = urlsplit(nxt).query
            if not query or query in seen:
                return out
            seen.add(query)
            page = {k: (v[0] if len(v) == 1 else v)
                    for k, v in parse_qs(query, keep_blank_values=True).items()}

    # ------------------------------------------------------------------ discovery

    def listing(self, region: str, name: str) -> list[dict[str, Any]]:
        """The raw listing ``name`` of ``region`` (every page); a kept one once only."""
        service, path, key = LISTINGS[name]
        if name not in _KEPT:
            return self.list_all(region, service, path, key)
        found = self.cached((name, region), lambda: self.list_all(region, service, path, key))
        return found if found is not None else []

    def containers(self, region: str, stack: str) -> list[tuple[str, Mapping[str, str]]]:
        """The listing ``containers``: Swift's containers named ``<stack>.*`` and their
        headers (one ``HEAD`` each); none where the region has no object-store."""
        try:
            names = self.swift.containers(region, f"{stack}.")
        except NoEndpoint:
            return []  # no Swift in this region: no buckets
        found = ((name, self.swift.head(region, name)) for name in names)
        return [(name, head) for name, head in found if head is not None]

    def wait_conditions(self, region: str, stack: str,
                        containers: list[tuple[str, Mapping[str, str]]] | None = None
                        ) -> list[tuple[str, Mapping[str, str], Any]]:
        """The listing ``wait_conditions``: (name, headers, record) of the stack's
        containers marked ``cloudtmpl-kind: wait-condition``, with the record each holds
        (None: not written yet)."""
        out = []
        for name, head in containers if containers is not None else \
                self.containers(region, stack):
            if head.get("x-container-meta-cloudtmpl-kind") != "wait-condition":
                continue
            status, _, body = self.swift.request(region, path_of(name, CONDITION_RECORD),
                                                 ok=(404,))
            out.append((name, head, None if status == 404 else body))
        return out

    def lb_members(self, region: str, stack: str,
                   pools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The listing ``lb_members``: the members of the stack's ``pools``, each with
        its ``pool_id`` (one listing per pool)."""
        out = []
        for pool in pools:
            if not str(pool.get("name") or "").startswith(f"{stack}."):
                continue
            path = f"/v2/lbaas/pools/{pool['id']}/members"
            for member in self.list_all(region, "load-balancer", path, "members"):
                out.append({**member, "pool_id": pool["id"]})
        return out

    def fetch(self, region: str, stack: str, names: frozenset[str]) -> kit.Listings:
        """The named listings of ``region``, each once, one thread per service."""
        self.credentials()  # fail once, clearly, before fanning out
        by_service: dict[str, list[str]] = {}
        for name in sorted(names, key=lambda n: (n == LB_MEMBERS, n)):  # pools first
            service = {CONTAINERS: "object-store", WAIT_CONDITIONS: "object-store",
                       LB_MEMBERS: "load-balancer"}.get(name) \
                or LISTINGS[name][0]
            by_service.setdefault(service, []).append(name)

        def one(name: str, done: dict[str, list[Any]]) -> list[Any]:
            if name == CONTAINERS:
                return self.containers(region, stack)
            if name == WAIT_CONDITIONS:
                return self.wait_conditions(region, stack, done.get(CONTAINERS))
            if name == LB_MEMBERS:
                pools = done.get("lb_pools")
                return self.lb_members(region, stack, pools if pools is not None
                                       else self.listing(region, "lb_pools"))
            return self.listing(region, name)

        def job(service: str) -> dict[str, list[Any]]:
            with self.session(region):
                done: dict[str, list[Any]] = {}
                for name in by_service[service]:
                    done[name] = one(name, done)
                return done

        items: dict[str, list[Any]] = {}
        if len(by_service) == 1:
            items.update(job(next(iter(by_service))))
        else:
            with ThreadPoolExecutor(max_workers=len(by_service),
                                    thread_name_prefix="cloudtmpl-os-discover") as pool:
                for result in pool.map(job, sorted(by_service)):
                    items.update(result)
        return kit.Listings(items)
