"""OpenStack (and the OpenStack sandbox) through libcloud's OpenStack driver (API 2.2).

The adapter implements :class:`cloudtmpl.providers.base.Adapter` for nine kinds.
It talks to Nova, Glance v2, Neutron and Cinder v3 through the four authenticated
connections of one ``OpenStack_2_NodeDriver`` per region; JSON bodies are sent
through those connections (``connection.request``) wherever libcloud's own helpers
cannot carry what cloudtmpl needs (metadata at creation, descriptions, pagination).

Identity per kind (how a resource is known as the stack's: the markers it carries,
or its deterministic name), and what a crash can leave behind:

* ``Cloud::Compute::Server`` - physical id: server id.  Metadata
  ``cloudtmpl:stack``/``cloudtmpl:resource``/``cloudtmpl:spec`` go into the
  ``POST /servers`` body itself: no server without its marker ever exists.
  NICs given as ``{subnet: id}`` need a port first (Nova takes networks, ports
  and fixed IPs only): the adapter creates ``<server name>:nic<i>`` (a name no
  template resource can have, so discovery never reports it) and deletes it with
  the server.  Crash window: between that port's creation and ``POST /servers``
  the port exists alone; a retried create reuses it by name, a template that
  dropped the server leaves it behind.
* ``Cloud::Block::Volume`` - physical id: volume id; marker in the volume
  metadata of ``POST /volumes`` (atomic, no window).
  Under deletion_policy Snapshot a Cinder backup is taken first (metadata
  ``cloudtmpl:stack``/``resource``/``snapshot-of``, name ``<stack>.<address>@<id>``;
  never discovered), found again by name and volume after a crash.
* ``Cloud::Block::VolumeAttachment`` - no object of its own: the volume's
  metadata gets ``cloudtmpl:attachment`` (address) and
  ``cloudtmpl:attachment-spec`` *before* the Nova attach call, so an attachment
  never exists without its record; a record without an attachment (crash
  between the two calls) is not reported.  Physical id ``"{volume}:{server}"``.
* ``Cloud::Compute::KeyPair`` - physical id: the key name ``<stack>.<address>``
  (Nova key names are unique per user: no duplicate possible).  Nova keeps no
  description, so there is no spec marker (``spec_hash`` None).
* ``Cloud::Network::SecurityGroup``/``Network``/``Subnet``/``Port`` - identified
  by the deterministic name; the spec hash lives in the ``description``
  (``cloudtmpl:spec=<hash>``, after the template's own description for groups).
  A group is created without the marker, gets its rules, and the marker last:
  a crash in between leaves a group whose rules are observable (the next plan
  converges them).  Neutron allows duplicate names: a create that is retried
  after an ambiguous failure first looks the name up; two objects of one name
  (a crash right after a create whose answer was lost) are both reported, and
  the plan deletes the duplicate.
* ``Cloud::Network::FloatingIP`` - no name: the description holds
  ``cloudtmpl:stack=…;cloudtmpl:spec=…;cloudtmpl:resource=…``, sent in the
  ``POST /v2.0/floatingips`` body together with the port to associate (atomic).

Discovery sends one listing per underlying API and region (servers, flavors,
ports, security groups, volumes, key pairs, networks, subnets, floating IPs -
only those the kinds need, each at most once, the services in parallel),
follows every ``next`` link and filters by metadata, name prefix or description
marker.  Each service connection authenticates once (one ``POST /v3/auth/tokens``)
and then reuses its token.  libcloud objects are not thread-safe, so a driver's
four connections are pooled per (region, service) and lent to one thread at a
time (:meth:`OpenStackAdapter._lease`), an authenticated one first: tokens
survive across calls and threads, and a thread never shares a connection.
Every HTTP request (token requests included) is counted, and every cloud call
goes through :class:`cloudtmpl.providers.retry.Retrier` (a 401 on a service
request is retried: libcloud drops the token and authenticates again).

Reported properties follow :mod:`cloudtmpl.resources`.  Not reported (compared
with the last-applied spec instead): a server's ``networks`` (the template's
shape cannot be rebuilt), ``user_data``; an attachment's ``mountpoint`` (Nova
may choose another device); a port's ``fixed_ips`` (a template may name a
subnet without an address); a key pair's ``public_key``.
"""

from __future__ import annotations

import base64
import copy
import http.client
import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

# Imported here, not inside functions: importing in worker threads can deadlock
# on Python's module locks while other threads import the same modules.
from libcloud.common.types import LibcloudError
from libcloud.compute.providers import get_driver
from libcloud.compute.types import Provider

from cloudtmpl.model import (
    TAG_RESOURCE,
    TAG_SNAPSHOT_OF,
    TAG_SPEC,
    TAG_STACK,
    LiveResource,
    Placement,
    Target,
    address_from_name,
    physical_name,
    snapshot_name,
)
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import (
    ATTACHMENT,
    FLOATING_IP,
    KEYPAIR,
    NETWORK,
    PORT,
    SECURITY_GROUP,
    SERVER,
    SUBNET,
    VOLUME,
    Choice,
    CloudError,
    poll,
)
from cloudtmpl.providers.openstack_auth import OpenStackAuth, resolve_auth  # Keystone
from cloudtmpl.providers.openstack_storage import STORAGE_KINDS, OpenStackStorage  # Swift
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
from cloudtmpl.resources import DEFAULT_EGRESS_RULES, canonical_rule, canonical_rules

T = TypeVar("T")


TAG_ATTACHMENT = "cloudtmpl:attachment"
TAG_ATTACHMENT_SPEC = "cloudtmpl:attachment-spec"
NIC_SEPARATOR = ":nic"  # "<server name>:nic<i>": ports the adapter makes for {subnet} NICs

# service -> attribute of the libcloud driver holding its connection
_CONNECTIONS = {
    "compute": "connection",
    "image": "image_connection",
    "network": "network_connection",
    "volume": "volumev3_connection",
}
_SERVICE_TYPES = {"compute": "compute", "image": "image", "network": "network",
                  "volume": "volumev3"}

_PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp"}
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                      r"[0-9a-fA-F]{12}$")
_SPEC_RE = re.compile(r"(?:^|\n)" + re.escape(TAG_SPEC) + r"=(\S*)$")
_FIP_RE = re.compile(r"^" + re.escape(TAG_STACK) + r"=([^;]*);" + re.escape(TAG_SPEC)
                     + r"=([^;]*);" + re.escape(TAG_RESOURCE) + r"=(.*)$", re.S)
_GONE_SERVER_STATES = frozenset({"DELETED", "SOFT_DELETED"})
_GONE_VOLUME_STATES = frozenset({"deleting", "deleted", "error_deleting"})
# Backups (deletion_policy Snapshot): a backup still on its way or done is reused.
_LIVE_BACKUP_STATES = frozenset({"creating", "available"})
# Backup metadata needs Cinder microversion 3.43 (Queens).
BACKUP_MICROVERSION = {"OpenStack-API-Version": "volume 3.43"}


# ---------------------------------------------------------------------- small helpers


def _is_uuid(value: str) -> bool:
    return bool(_UUID_RE.match(value))


def _with_spec(text: str, spec: str | None) -> str:
    if spec is None:
        return text
    marker = f"{TAG_SPEC}={spec}"
    return f"{text}\n{marker}" if text else marker


def _split_spec(description: Any) -> tuple[str, str | None]:
    text = str(description or "")
    m = _SPEC_RE.search(text)
    if m is None:
        return text, None
    return text[: m.start()], m.group(1) or None


def _fip_marker(stack: str, address: str, spec: str | None) -> str:
    return f"{TAG_STACK}={stack};{TAG_SPEC}={spec or ''};{TAG_RESOURCE}={address}"


def _parse_fip_marker(description: Any) -> tuple[str, str, str | None] | None:
    m = _FIP_RE.match(str(description or ""))
    if m is None:
        return None
    return m.group(1), m.group(3), m.group(2) or None


def _rule_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    proto = raw.get("protocol")
    if proto is not None:
        proto = _PROTOCOL_NUMBERS.get(str(proto), str(proto).lower())
    return canonical_rule({
        "direction": raw.get("direction") or "ingress",
        "ethertype": raw.get("ethertype") or "IPv4",
        "protocol": proto,
        "port_range_min": raw.get("port_range_min"),
        "port_range_max": raw.get("port_range_max"),
        "remote_ip_prefix": raw.get("remote_ip_prefix"),
        "remote_group_id": raw.get("remote_group_id"),
    })


def _rule_key(rule: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, str(v)) for k, v in rule.items()))


def _rule_body(group_id: str, rule: Mapping[str, Any]) -> dict[str, Any]:
    proto = rule["protocol"]
    body: dict[str, Any] = {"security_group_id": group_id, "direction": rule["direction"],
                            "ethertype": rule["ethertype"],
                            "protocol": None if proto == "-1" else proto}
    lo, hi = rule["port_range_min"], rule["port_range_max"]
    if proto != "-1" and lo is not None and lo != -1:
        body["port_range_min"] = lo
        if hi is not None and hi != -1:
            body["port_range_max"] = hi
    if rule.get("remote_group_id"):
        body["remote_group_id"] = rule["remote_group_id"]
    elif rule.get("remote_ip_prefix"):
        body["remote_ip_prefix"] = rule["remote_ip_prefix"]
    return body


def _is_private(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_private
    except ValueError:
        return True


def _status(err: CloudError) -> int | None:
    return int(err.status) if err.status.isdigit() else None


@dataclass
class _Listings:
    """Raw listings fetched by one discovery (each API at most once)."""

    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def get(self, name: str) -> list[dict[str, Any]]:
        return self.items.get(name, [])


# Which raw listings each kind needs, and which service serves each listing.
_NEEDS = {
    SERVER: ("servers", "flavors", "ports", "security_groups"),
    VOLUME: ("volumes",),
    ATTACHMENT: ("volumes",),
    KEYPAIR: ("keypairs",),
    SECURITY_GROUP: ("security_groups",),
    FLOATING_IP: ("floatingips", "ports"),
    NETWORK: ("networks",),
    SUBNET: ("subnets",),
    PORT: ("ports",),
}
_LISTINGS = {  # name -> (service, path, response key)
    "servers": ("compute", "/servers/detail", "servers"),
    "flavors": ("compute", "/flavors", "flavors"),
    "keypairs": ("compute", "/os-keypairs", "keypairs"),
    "volumes": ("volume", "/volumes/detail", "volumes"),
    "ports": ("network", "/v2.0/ports", "ports"),
    "security_groups": ("network", "/v2.0/security-groups", "security_groups"),
    "floatingips": ("network", "/v2.0/floatingips", "floatingips"),
    "networks": ("network", "/v2.0/networks", "networks"),
    "subnets": ("network", "/v2.0/subnets", "subnets"),
}


class OpenStackAdapter:
    """The OpenStack adapter.  See the module docstring for identity and discovery."""

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
        self._clock = clock
        policy = retry_policy or (SANDBOX_POLICY if target.sandbox else DEFAULT_POLICY)
        self._retrier = Retrier(policy, sleep=sleep, classifier=self._classify)
        # request_rate: one token bucket for all of this adapter's threads
        self._limiter = limiter_for(target.options, clock=clock, sleep=sleep)
        self.page_size = int(page_size) if page_size else None
        self._poll_max = poll_max_interval
        self._local = threading.local()
        self._lock = threading.Lock()
        self._count = 0
        self._auth: OpenStackAuth | None = None
        self._idle: dict[tuple[str, str], list[Any]] = {}
        self._flavors: dict[str, list[dict[str, Any]]] = {}
        self._images: dict[tuple[str, str], str] = {}
        self._external: dict[str, str] = {}
        self._defaults: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ plumbing

    def request_count(self) -> int:
        with self._lock:
            return self._count

    def _counted(self) -> None:
        with self._lock:
            self._count += 1

    def credentials(self) -> OpenStackAuth:
        with self._lock:
            if self._auth is None:
                env = self._environ
                home = self._home or Path(env.get("HOME") or Path.home())
                self._auth = resolve_auth(self.target, env, self._cwd or Path.cwd(), home)
            return self._auth

    def _placement(self, region: str) -> Placement:
        return Placement(self.target.name, region)

    def _new_driver(self, region: str) -> Any:
        auth = self.credentials()
        key, secret, auth_args = auth.libcloud_args()
        driver = get_driver(Provider.OPENSTACK)(
            key, secret, **auth_args,
            ex_force_service_region=region,
            api_version="2.2",
            timeout=float(self.target.options.get("request_timeout", 60)),
        )
        body = auth.auth_body()
        for attr in _CONNECTIONS.values():
            conn = getattr(driver, attr)
            self._count_on(conn)
            osa = conn.get_auth_class()
            self._count_on(osa)
            # libcloud scopes by project *name* in a domain *id* and knows no token
            # method: send what the configuration says instead (openstack_auth).
            setattr(osa, "_get_auth_data", lambda b=body: copy.deepcopy(b))  # noqa: B010
        return driver

    def _count_on(self, conn: Any) -> None:
        """Count every HTTP request of ``conn`` (libcloud's retries included)."""
        original = conn._retryable_request

        def counted(*args: Any, **kw: Any) -> Any:
            self._limiter.acquire()  # before every HTTP request, retries included
            self._counted()
            return original(*args, **kw)

        setattr(conn, "_retryable_request", counted)  # noqa: B010 - instance-level wrap

    @contextmanager
    def _lease(self, region: str) -> Iterator[None]:
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

    def _classify(self, exc: BaseException) -> Verdict:
        # A token revoked or expired under us: libcloud dropped it, the next try
        # authenticates again.
        if type(exc).__name__ == "BaseHTTPError" and getattr(exc, "code", None) == 401:
            return Verdict(True, "token rejected (HTTP 401)")
        return classify(exc)

    def _translate(self, exc: BaseException) -> CloudError:
        if isinstance(exc, CloudError):
            return exc
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

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return self._retrier.call(fn)
        except CloudError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc

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
            raise CloudError(
                f"region {region!r} is not in the service catalog of target "
                f"{self.target.name!r} (no {_SERVICE_TYPES[service]} endpoint; the catalog "
                f"has regions: {', '.join(regions) or 'none'})", permanent=True) from None
        obj = resp.object if isinstance(resp.object, (dict, list)) else None
        return int(resp.status), obj

    def _api(self, region: str, service: str, path: str, *, method: str = "GET",
             body: Any = None, params: Mapping[str, Any] | None = None,
             retry: bool = True, headers: Mapping[str, str] | None = None) -> Any:
        """One request through the (leased) driver's connection; the parsed JSON."""
        def go() -> Any:
            return self._raw(region, service, path, method, body, params, headers)[1]

        if retry:
            return self._call(go)
        try:
            return go()
        except Exception as exc:
            raise self._translate(exc) from exc

    def _get(self, region: str, service: str, path: str, key: str) -> dict[str, Any] | None:
        """One object, or None when the cloud says 404."""
        try:
            obj = self._api(region, service, path)
        except CloudError as err:
            if _status(err) == 404:
                return None
            raise
        found = (obj or {}).get(key)
        return found if isinstance(found, dict) else None

    def _delete_call(self, region: str, service: str, path: str) -> bool:
        """DELETE; False when it was already gone (404)."""
        try:
            self._api(region, service, path, method="DELETE")
        except CloudError as err:
            if _status(err) == 404:
                return False
            raise
        return True

    def _list(self, region: str, service: str, path: str, key: str,
              params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every page of a listing: follows ``<key>_links`` / ``next`` to the end."""
        page: dict[str, Any] = dict(params or {})
        if self.page_size and "limit" not in page:
            page["limit"] = str(self.page_size)
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            obj = self._api(region, service, path, params=page) or {}
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

    def _poll(self, timeout: float, what: str,
              fetch: Callable[[], tuple[bool, str, T]]) -> T:
        return poll(timeout, what, fetch, clock=self._clock, sleep=self._sleep,
                    first=0.25, max_interval=self._poll_max)

    def _create_call(self, post: Callable[[], T], lookup: Callable[[], T | None]) -> T:
        """A create that may be retried: after an ambiguous failure, look first."""
        return kit.create_or_adopt(post, lookup, self._call)

    def _require(self, value: T | None, live: LiveResource) -> T:
        if value is None:
            raise CloudError(f"{live.kind} {live.address} ({live.physical_id}) no longer exists "
                             f"in {live.placement.region}", permanent=True)
        return value

    # ------------------------------------------------------------------ catalog lookups

    def _flavor_list(self, region: str) -> list[dict[str, Any]]:
        with self._lock:
            cached = self._flavors.get(region)
        if cached is None:
            cached = self._list(region, "compute", "/flavors", "flavors")
            with self._lock:
                self._flavors[region] = cached
        return cached

    def _flavor_name(self, region: str, flavor: Mapping[str, Any]) -> str | None:
        if flavor.get("original_name"):
            return str(flavor["original_name"])
        fid = flavor.get("id")
        for f in self._flavor_list(region):
            if f.get("id") == fid:
                return str(f.get("name"))
        return str(fid) if fid is not None else None

    def _flavor_ref(self, region: str, value: str) -> str:
        flavors = self._flavor_list(region)
        if any(f.get("id") == value for f in flavors):
            return value
        for f in flavors:
            if f.get("name") == value:
                return str(f["id"])
        return value  # unknown: Nova answers with its own message

    def _image_ref(self, region: str, value: str) -> str:
        if _is_uuid(value):
            return value
        with self._lock:
            cached = self._images.get((region, value))
        if cached:
            return cached
        images = self._list(region, "image", "/v2/images", "images", {"name": value})
        images = [i for i in images if i.get("name") == value]
        if not images:
            return value  # unknown: Nova answers with its own message
        active = [i for i in images if str(i.get("status", "")).lower() == "active"] or images
        image_id = str(active[0]["id"])
        with self._lock:
            self._images[(region, value)] = image_id
        return image_id

    def _network_ref(self, region: str, value: str) -> str:
        if _is_uuid(value):
            return value
        nets = self._list(region, "network", "/v2.0/networks", "networks", {"name": value})
        if len(nets) == 1:
            return str(nets[0]["id"])
        if not nets:
            raise CloudError(f"Network {value} could not be found.", permanent=True,
                             status="404")
        raise CloudError(f"Multiple networks are named {value}; use the network id.",
                         permanent=True, status="409")

    def _external_network(self, region: str) -> str:
        with self._lock:
            cached = self._external.get(region)
        if cached:
            return cached
        nets = self._list(region, "network", "/v2.0/networks", "networks",
                          {"router:external": "True"})
        nets = [n for n in nets if n.get("router:external")]
        if not nets:
            raise CloudError(f"no external network (router:external) in {region}: give the "
                             "floating IP a floating_network", permanent=True)
        net_id = str(sorted(nets, key=lambda n: str(n.get("name")))[0]["id"])
        with self._lock:
            self._external[region] = net_id
        return net_id

    def lookup_choice(self, region: str, what: str, value: str) -> Choice:
        """An existing flavor (canonical: its name, as discovery reports flavors), image
        or network (canonical: its id), by name or id, or key pair (by name); else what
        the region offers."""
        with self._lease(region):
            if what == "flavor":
                items = self._flavor_list(region)
            elif what == "image":
                items = self._list(region, "image", "/v2/images", "images")
            elif what == "network":
                items = self._list(region, "network", "/v2.0/networks", "networks")
            elif what == "keypair":  # Nova lists {"keypair": {...}} entries, named only
                items = [dict(k.get("keypair") or {}, id=(k.get("keypair") or {}).get("name"))
                         for k in self._list(region, "compute", "/os-keypairs", "keypairs")]
            else:
                raise ValueError(f"lookup_choice: unknown kind of choice {what!r}")
        for item in items:
            if value in (item.get("id"), item.get("name")):
                return Choice(str(item.get("name") if what == "flavor" else item.get("id")))
        return Choice(None, tuple(sorted({str(i["name"]) for i in items if i.get("name")})))

    # ------------------------------------------------------------------ discovery

    def discover(self, region: str, kinds: frozenset[str], stack: str) -> list[LiveResource]:
        # -- buckets: Swift containers (openstack_storage.py); the other kinds below
        found = self._storage().discover(region, stack) if kinds & STORAGE_KINDS else []
        return found + self._discover(region, kinds - STORAGE_KINDS, stack)

    def _storage(self) -> OpenStackStorage:
        with self._lock:
            storage: OpenStackStorage | None = getattr(self, "_swift", None)
            if storage is None:
                storage = self._swift = OpenStackStorage(self)
            return storage

    def _discover(self, region: str, kinds: frozenset[str], stack: str) -> list[LiveResource]:
        needed = sorted({name for kind in kinds for name in _NEEDS.get(kind, ())})
        if not needed:
            return []
        self.credentials()  # fail once, clearly, before fanning out
        by_service: dict[str, list[str]] = {}
        for name in needed:
            by_service.setdefault(_LISTINGS[name][0], []).append(name)

        def job(service: str) -> dict[str, list[dict[str, Any]]]:
            out = {}
            with self._lease(region):
                for name in by_service[service]:
                    if name == "flavors":
                        out[name] = self._flavor_list(region)
                        continue
                    _, path, key = _LISTINGS[name]
                    out[name] = self._list(region, service, path, key)
            return out

        listings = _Listings()
        if len(by_service) == 1:
            listings.items.update(job(next(iter(by_service))))
        else:
            with ThreadPoolExecutor(max_workers=len(by_service),
                                    thread_name_prefix="cloudtmpl-os-discover") as pool:
                for result in pool.map(job, sorted(by_service)):
                    listings.items.update(result)
        return self._build(region, stack, kinds, listings)

    def _build(self, region: str, stack: str, kinds: frozenset[str],
               ls: _Listings) -> list[LiveResource]:
        out: list[LiveResource] = []
        if SERVER in kinds:
            for srv in ls.get("servers"):
                meta = srv.get("metadata") or {}
                if meta.get(TAG_STACK) != stack or srv.get("status") in _GONE_SERVER_STATES:
                    continue
                address = meta.get(TAG_RESOURCE) or address_from_name(stack, srv.get("name", ""))
                if address:
                    out.append(self._server_live(region, address, srv, ls.get("ports"),
                                                 ls.get("security_groups")))
        if VOLUME in kinds or ATTACHMENT in kinds:
            for vol in ls.get("volumes"):
                meta = vol.get("metadata") or {}
                if meta.get(TAG_STACK) != stack or vol.get("status") in _GONE_VOLUME_STATES:
                    continue
                address = meta.get(TAG_RESOURCE) or address_from_name(stack, vol.get("name", ""))
                if VOLUME in kinds and address:
                    out.append(self._volume_live(region, address, vol))
                if ATTACHMENT in kinds:
                    att = self._attachment_live(region, vol)
                    if att is not None:
                        out.append(att)
        if KEYPAIR in kinds:
            for item in ls.get("keypairs"):
                kp = item.get("keypair", item)
                address = address_from_name(stack, str(kp.get("name", "")))
                if address:
                    out.append(self._key_pair_live(region, address, kp))
        named = ((SECURITY_GROUP, "security_groups", self._group_live),
                 (NETWORK, "networks", self._network_live),
                 (SUBNET, "subnets", self._subnet_live),
                 (PORT, "ports", self._port_live))
        for kind, listing, make in named:
            if kind not in kinds:
                continue
            for obj in ls.get(listing):
                name = str(obj.get("name") or "")
                address = address_from_name(stack, name)
                if address and NIC_SEPARATOR not in name:
                    out.append(make(region, address, obj))
        if FLOATING_IP in kinds:
            ports = {p.get("id"): p for p in ls.get("ports")}
            for fip in ls.get("floatingips"):
                marker = _parse_fip_marker(fip.get("description"))
                if marker is None or marker[0] != stack:
                    continue
                out.append(self._fip_live(region, marker[1], fip, ports.get(fip.get("port_id"))))
        return out

    # ------------------------------------------------------------------ snapshots

    def _server_groups(self, srv: Mapping[str, Any], ports: list[dict[str, Any]],
                       groups: list[dict[str, Any]] | None) -> list[str]:
        """The security groups the server itself asked for, as ids.

        Groups on ports the template created (named ports passed as NICs) belong to
        those ports, and Nova's ``default`` group stands for "none given".
        """
        default_ids = {g.get("id") for g in groups or [] if g.get("name") == "default"}
        server_name = str(srv.get("name") or "")
        mine = [p for p in ports if p.get("device_id") == srv.get("id")]
        if mine:
            own = [p for p in mine if not p.get("name")
                   or str(p.get("name")).startswith(server_name + NIC_SEPARATOR)]
            ids = {str(g) for p in own for g in p.get("security_groups") or []}
            return sorted(ids - {str(d) for d in default_ids})
        # No port data: map Nova's group names to ids where unambiguous.
        by_name: dict[str, list[str]] = {}
        for g in groups or []:
            by_name.setdefault(str(g.get("name")), []).append(str(g.get("id")))
        out: set[str] = set()
        for sg in srv.get("security_groups") or []:
            sg_name = str(sg.get("name"))
            if sg_name == "default":
                continue
            matches = by_name.get(sg_name, [])
            out.add(matches[0] if len(matches) == 1 else sg_name)
        return sorted(out)

    def _server_live(self, region: str, address: str, srv: Mapping[str, Any],
                     ports: list[dict[str, Any]],
                     groups: list[dict[str, Any]] | None) -> LiveResource:
        meta = srv.get("metadata") or {}
        image = srv.get("image")
        image_id = image.get("id") if isinstance(image, dict) else (image or None)
        flavor = srv.get("flavor") or {}
        fixed: list[str] = []
        floating: list[str] = []
        for addrs in (srv.get("addresses") or {}).values():
            for a in addrs or []:
                ip = a.get("addr")
                if not ip:
                    continue
                (floating if a.get("OS-EXT-IPS:type") == "floating" else fixed).append(ip)
        fixed.sort(key=lambda ip: ":" in ip)  # IPv4 first, order otherwise kept
        # Nova's accessIPv4 is the address the operator says reaches the server
        public = srv.get("accessIPv4") or (floating[0] if floating else next(
            (ip for ip in fixed if not _is_private(ip)), None))
        networks: dict[str, list[str]] = {}
        for p in ports:
            if p.get("device_id") == srv.get("id"):
                networks.setdefault(str(p.get("network_id")), []).extend(
                    str(f.get("ip_address")) for f in p.get("fixed_ips") or [])
        if not networks:
            networks = {str(k): [a.get("addr") for a in v or []]
                        for k, v in (srv.get("addresses") or {}).items()}
        status = str(srv.get("status") or "")
        name = str(srv.get("name") or srv.get("id"))
        return LiveResource(
            address=address,
            kind=SERVER,
            physical_id=str(srv["id"]),
            placement=self._placement(region),
            name=name,
            properties={
                "image": image_id,
                "flavor": self._flavor_name(region, flavor),
                "key_name": srv.get("key_name") or None,
                "security_groups": self._server_groups(srv, ports, groups),
                "availability_zone": srv.get("OS-EXT-AZ:availability_zone") or None,
                "metadata": kit.user_metadata(meta),
            },
            attributes={
                "first_address": fixed[0] if fixed else None,
                "private_ip": fixed[0] if fixed else None,
                "public_ip": public,
                "networks": networks,
                "name": name,
                "status": status,
            },
            spec_hash=meta.get(TAG_SPEC),
            status=status,
        )

    def _volume_live(self, region: str, address: str, vol: Mapping[str, Any]) -> LiveResource:
        meta = vol.get("metadata") or {}
        status = str(vol.get("status") or "")
        name = str(vol.get("name") or vol.get("id"))
        size = int(vol.get("size") or 0)
        return LiveResource(
            address=address,
            kind=VOLUME,
            physical_id=str(vol["id"]),
            placement=self._placement(region),
            name=name,
            properties={
                "size": size,
                "volume_type": vol.get("volume_type"),
                "availability_zone": vol.get("availability_zone"),
                "metadata": kit.user_metadata(meta),
            },
            attributes={"size": size, "status": status, "name": name},
            spec_hash=meta.get(TAG_SPEC),
            status=status,
        )

    def _attachment_live(self, region: str, vol: Mapping[str, Any]) -> LiveResource | None:
        meta = vol.get("metadata") or {}
        address = meta.get(TAG_ATTACHMENT)
        attachments = [a for a in vol.get("attachments") or [] if a.get("server_id")]
        if not address or not attachments or vol.get("status") not in ("in-use", "detaching",
                                                                        "attaching"):
            return None
        server = str(attachments[0]["server_id"])
        return LiveResource(
            address=address,
            kind=ATTACHMENT,
            physical_id=f"{vol['id']}:{server}",
            placement=self._placement(region),
            name=address,
            # Nova may pick another device than the one asked for (libvirt does):
            # the mountpoint is compared with the last-applied spec, not reported.
            properties={"instance_uuid": server, "volume_id": str(vol["id"])},
            attributes={"device": attachments[0].get("device")},
            spec_hash=meta.get(TAG_ATTACHMENT_SPEC),
            status="attached" if vol.get("status") == "in-use" else str(vol.get("status")),
        )

    def _key_pair_live(self, region: str, address: str, kp: Mapping[str, Any]) -> LiveResource:
        name = str(kp.get("name"))
        attributes: dict[str, Any] = {"name": name, "fingerprint": kp.get("fingerprint")}
        if kp.get("public_key"):
            attributes["public_key"] = kp["public_key"]
        return LiveResource(address=address, kind=KEYPAIR, physical_id=name,
                            placement=self._placement(region), name=name, properties={},
                            attributes=attributes, spec_hash=None, status="available")

    def _group_live(self, region: str, address: str, sg: Mapping[str, Any]) -> LiveResource:
        text, spec = _split_spec(sg.get("description"))
        rules = [_rule_of(r) for r in sg.get("security_group_rules") or []]
        rules = [r for r in rules if r not in DEFAULT_EGRESS_RULES]
        gid = str(sg["id"])
        name = str(sg.get("name"))
        return LiveResource(
            address=address, kind=SECURITY_GROUP, physical_id=gid,
            placement=self._placement(region), name=name,
            properties={"description": text, "rules": canonical_rules(rules)},
            attributes={"name": name, "id": gid},
            spec_hash=spec, status="active")

    def _network_live(self, region: str, address: str, net: Mapping[str, Any]) -> LiveResource:
        _, spec = _split_spec(net.get("description"))
        status = str(net.get("status") or "")
        name = str(net.get("name"))
        return LiveResource(
            address=address, kind=NETWORK, physical_id=str(net["id"]),
            placement=self._placement(region), name=name,
            properties={"admin_state_up": bool(net.get("admin_state_up", True))},
            attributes={"name": name, "id": str(net["id"]), "status": status},
            spec_hash=spec, status=status)

    def _subnet_live(self, region: str, address: str, sub: Mapping[str, Any]) -> LiveResource:
        _, spec = _split_spec(sub.get("description"))
        name = str(sub.get("name"))
        return LiveResource(
            address=address, kind=SUBNET, physical_id=str(sub["id"]),
            placement=self._placement(region), name=name,
            properties={
                "network": sub.get("network_id"),
                "cidr": sub.get("cidr"),
                "ip_version": int(sub.get("ip_version") or 4),
                "enable_dhcp": bool(sub.get("enable_dhcp", True)),
                # reported always: a template without gateway_ip leaves Neutron's
                # choice standing (unset properties are not compared)
                "gateway_ip": sub.get("gateway_ip"),
                "dns_nameservers": list(sub.get("dns_nameservers") or []),
            },
            attributes={"name": name, "cidr": sub.get("cidr"),
                        "gateway_ip": sub.get("gateway_ip"),
                        "network_id": sub.get("network_id")},
            spec_hash=spec, status="active")

    def _port_live(self, region: str, address: str, port: Mapping[str, Any]) -> LiveResource:
        _, spec = _split_spec(port.get("description"))
        name = str(port.get("name"))
        fixed = [{"subnet_id": f.get("subnet_id"), "ip_address": f.get("ip_address")}
                 for f in port.get("fixed_ips") or []]
        status = str(port.get("status") or "")
        return LiveResource(
            address=address, kind=PORT, physical_id=str(port["id"]),
            placement=self._placement(region), name=name,
            # fixed_ips is not reported: a template may name a subnet without an
            # address, so the comparison is with the last-applied spec.
            properties={
                "network": port.get("network_id"),
                "security_groups": sorted(str(g) for g in port.get("security_groups") or []),
                "admin_state_up": bool(port.get("admin_state_up", True)),
            },
            attributes={"name": name, "fixed_ips": fixed,
                        "ip_address": fixed[0]["ip_address"] if fixed else None,
                        "mac_address": port.get("mac_address"),
                        "network_id": port.get("network_id"), "status": status},
            spec_hash=spec, status=status)

    def _fip_live(self, region: str, address: str, fip: Mapping[str, Any],
                  port: Mapping[str, Any] | None) -> LiveResource:
        marker = _parse_fip_marker(fip.get("description"))
        ip = fip.get("floating_ip_address")
        port_id = fip.get("port_id") or None
        server = None
        if port is not None and str(port.get("device_owner", "")).startswith("compute:"):
            server = port.get("device_id") or None
        elif port is None and isinstance(fip.get("port_details"), dict):
            server = fip["port_details"].get("device_id") or None
        return LiveResource(
            address=address, kind=FLOATING_IP, physical_id=str(fip["id"]),
            placement=self._placement(region), name="",
            properties={"server": server, "port": port_id,
                        "floating_network": fip.get("floating_network_id")},
            attributes={"floating_ip_address": ip, "ip": ip, "port_id": port_id,
                        "fixed_ip_address": fip.get("fixed_ip_address")},
            spec_hash=marker[2] if marker else None,
            status="associated" if port_id else "allocated")

    # ------------------------------------------------------------------ refreshes

    def _refresh_server(self, region: str, address: str, server_id: str,
                        srv: dict[str, Any] | None = None) -> LiveResource:
        if srv is None:
            srv = self._get(region, "compute", f"/servers/{server_id}", "server")
        if srv is None:
            raise CloudError(f"server {address} ({server_id}) vanished", permanent=True)
        ports = self._list(region, "network", "/v2.0/ports", "ports", {"device_id": server_id})
        if ports:
            groups = self._default_groups(region)
        else:  # no port data: Nova's group names are mapped through the full list
            groups = self._list(region, "network", "/v2.0/security-groups", "security_groups")
        return self._server_live(region, address, srv, ports, groups)

    def _default_groups(self, region: str) -> list[dict[str, Any]]:
        """The project's ``default`` security group(s) in ``region`` (cached)."""
        with self._lock:
            cached = self._defaults.get(region)
        if cached is None:
            cached = [{"id": g.get("id"), "name": g.get("name")} for g in self._list(
                region, "network", "/v2.0/security-groups", "security_groups",
                {"name": "default"}) if g.get("name") == "default"]
            with self._lock:
                self._defaults[region] = cached
        return cached

    def _refresh_volume(self, region: str, address: str, volume_id: str) -> LiveResource:
        vol = self._get(region, "volume", f"/volumes/{volume_id}", "volume")
        if vol is None:
            raise CloudError(f"volume {address} ({volume_id}) vanished", permanent=True)
        return self._volume_live(region, address, vol)

    def _refresh_neutron(self, region: str, kind: str, address: str, oid: str) -> LiveResource:
        path, key, make = {
            SECURITY_GROUP: ("/v2.0/security-groups", "security_group", self._group_live),
            NETWORK: ("/v2.0/networks", "network", self._network_live),
            SUBNET: ("/v2.0/subnets", "subnet", self._subnet_live),
            PORT: ("/v2.0/ports", "port", self._port_live),
        }[kind]
        obj = self._get(region, "network", f"{path}/{oid}", key)
        if obj is None:
            raise CloudError(f"{kind} {address} ({oid}) vanished", permanent=True)
        return make(region, address, obj)

    def _refresh_fip(self, region: str, address: str, fip_id: str) -> LiveResource:
        fip = self._get(region, "network", f"/v2.0/floatingips/{fip_id}", "floatingip")
        if fip is None:
            raise CloudError(f"floating IP {address} ({fip_id}) vanished", permanent=True)
        port = None
        if fip.get("port_id"):
            port = self._get(region, "network", f"/v2.0/ports/{fip['port_id']}", "port")
        return self._fip_live(region, address, fip, port)

    # ------------------------------------------------------------------ waits

    def _wait_server(self, region: str, server_id: str, want: str, timeout: float,
                     what: str) -> dict[str, Any]:
        def fetch() -> tuple[bool, str, dict[str, Any]]:
            srv = self._get(region, "compute", f"/servers/{server_id}", "server")
            if srv is None:
                return False, "BUILD", {}
            status = str(srv.get("status") or "")
            if status == want:
                return True, status, srv
            if status == "ERROR":
                fault = srv.get("fault") or {}
                reason = fault.get("message") or "no fault message"
                raise CloudError(f"{what} went to ERROR: {reason}", permanent=True,
                                 status="ERROR")
            return False, status, srv

        return self._poll(timeout, what, fetch)

    def _settled_server(self, region: str, server_id: str, timeout: float, what: str) -> None:
        srv = self._get(region, "compute", f"/servers/{server_id}", "server")
        if srv is not None and srv.get("status") == "BUILD":
            self._wait_server(region, server_id, "ACTIVE", timeout, what)

    def _wait_server_gone(self, region: str, server_id: str, timeout: float, what: str) -> None:
        def fetch() -> tuple[bool, str, None]:
            srv = self._get(region, "compute", f"/servers/{server_id}", "server")
            status = "DELETED" if srv is None else str(srv.get("status") or "")
            return status in _GONE_SERVER_STATES, status, None

        self._poll(timeout, what, fetch)

    def _wait_volume(self, region: str, volume_id: str, timeout: float, what: str,
                     ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def fetch() -> tuple[bool, str, dict[str, Any]]:
            vol = self._get(region, "volume", f"/volumes/{volume_id}", "volume")
            if vol is None:
                return False, "creating", {}
            status = str(vol.get("status") or "")
            if status.startswith("error"):
                raise CloudError(f"{what} is in state {status}", permanent=True, status=status)
            return ready(vol), status, vol

        return self._poll(timeout, what, fetch)

    def _delete_until_gone(self, region: str, service: str, path: str, timeout: float,
                           what: str) -> None:
        """DELETE, retried while the cloud says 409 (in use), until gone or timeout."""
        def attempt() -> tuple[bool, str, None]:
            try:
                self._delete_call(region, service, path)
            except CloudError as err:
                if _status(err) == 409:
                    return False, f"in use ({err.message})", None
                raise
            return True, "deleted", None

        self._poll(timeout, what, attempt)

    # ------------------------------------------------------------------ create

    def create(
        self,
        region: str,
        kind: str,
        *,
        stack: str,
        address: str,
        name: str,
        properties: Mapping[str, Any],
        spec_hash: str,
        timeout: float,
    ) -> LiveResource:
        if kind in STORAGE_KINDS:  # -- buckets: Swift (openstack_storage.py)
            return self._storage().create(region, stack, address, properties, spec_hash)
        creators = {
            SERVER: self._create_server,
            KEYPAIR: self._create_key_pair,
            SECURITY_GROUP: self._create_group,
            VOLUME: self._create_volume,
            ATTACHMENT: self._create_attachment,
            FLOATING_IP: self._create_fip,
            NETWORK: self._create_network,
            SUBNET: self._create_subnet,
            PORT: self._create_port,
        }
        creator = creators.get(kind)
        if creator is None:
            raise CloudError(f"the openstack provider cannot create {kind}", permanent=True)
        with self._lease(region):
            return creator(region, stack, address, name, properties, spec_hash, timeout)

    def _find_named(self, region: str, path: str, key: str, name: str,
                    accept: Callable[[dict[str, Any]], bool] = lambda _o: True) -> str | None:
        obj = self._api(region, "network", path, params={"name": name}, retry=False) or {}
        for item in obj.get(key) or []:
            if item.get("name") == name and accept(item):
                return str(item["id"])
        return None

    def _post_neutron(self, region: str, path: str, key: str, body: dict[str, Any],
                      lookup: Callable[[], str | None]) -> str:
        def post() -> str:
            obj = self._api(region, "network", path, method="POST", body={key: body},
                            retry=False) or {}
            return str(obj[key]["id"])

        return self._create_call(post, lookup)

    def _nics(self, region: str, name: str, networks: Any,
              groups: list[str]) -> list[dict[str, Any]]:
        if not isinstance(networks, list):
            raise CloudError("networks must be a list of {network|port|subnet[, fixed_ip]}",
                             permanent=True)
        nics: list[dict[str, Any]] = []
        for i, nic in enumerate(networks):
            if not isinstance(nic, Mapping):
                raise CloudError(f"networks[{i}] must be a map", permanent=True)
            port = nic.get("port")
            net = nic.get("network") or nic.get("uuid")
            subnet = nic.get("subnet")
            fixed_ip = nic.get("fixed_ip")
            if port:
                nics.append({"port": str(port)})
            elif subnet:
                nics.append({"port": self._subnet_nic(region, f"{name}{NIC_SEPARATOR}{i}",
                                                      str(subnet), fixed_ip, groups)})
            elif net:
                entry = {"uuid": self._network_ref(region, str(net))}
                if fixed_ip:
                    entry["fixed_ip"] = str(fixed_ip)
                nics.append(entry)
            else:
                raise CloudError(f"networks[{i}] needs network, port or subnet", permanent=True)
        return nics

    def _subnet_nic(self, region: str, port_name: str, subnet: str, fixed_ip: Any,
                    groups: list[str]) -> str:
        existing = self._find_named(region, "/v2.0/ports", "ports", port_name)
        if existing:
            return existing
        sub = self._get(region, "network", f"/v2.0/subnets/{subnet}", "subnet")
        if sub is None:
            raise CloudError(f"Subnet {subnet} could not be found.", permanent=True,
                             status="404")
        ip: dict[str, Any] = {"subnet_id": subnet}
        if fixed_ip:
            ip["ip_address"] = str(fixed_ip)
        body: dict[str, Any] = {"name": port_name, "network_id": sub["network_id"],
                                "fixed_ips": [ip]}
        if groups:
            body["security_groups"] = [self._group_ref(region, g) for g in groups]
        return self._post_neutron(region, "/v2.0/ports", "port", body,
                                  lambda: self._find_named(region, "/v2.0/ports", "ports",
                                                           port_name))

    def _group_ref(self, region: str, value: str) -> str:
        if _is_uuid(value):
            return value
        found = self._list(region, "network", "/v2.0/security-groups", "security_groups",
                           {"name": value})
        if len(found) == 1:
            return str(found[0]["id"])
        raise CloudError(f"Security group {value} could not be found (or is ambiguous); "
                         "use its id.", permanent=True, status="404")

    def _create_server(self, region: str, stack: str, address: str, name: str,
                       props: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        image, flavor = str(props.get("image") or ""), str(props.get("flavor") or "")
        if not image or not flavor:
            raise CloudError("a server needs image and flavor", permanent=True)
        meta = {**kit.metadata(props), TAG_STACK: stack, TAG_RESOURCE: address, TAG_SPEC: spec_hash}
        groups = [str(g) for g in props.get("security_groups") or []]
        body: dict[str, Any] = {
            "name": name,
            "imageRef": self._image_ref(region, image),
            "flavorRef": self._flavor_ref(region, flavor),
            "metadata": meta,
        }
        if props.get("key_name"):
            body["key_name"] = str(props["key_name"])
        if props.get("user_data"):
            body["user_data"] = base64.b64encode(str(props["user_data"]).encode()).decode()
        if props.get("availability_zone"):
            body["availability_zone"] = str(props["availability_zone"])
        if groups:
            body["security_groups"] = [{"name": g} for g in groups]
        nics = self._nics(region, name, props.get("networks") or [], groups)
        if nics:
            body["networks"] = nics

        def post() -> str:
            obj = self._api(region, "compute", "/servers", method="POST",
                            body={"server": body}, retry=False) or {}
            return str(obj["server"]["id"])

        def lookup() -> str | None:
            obj = self._api(region, "compute", "/servers/detail",
                            params={"name": f"^{re.escape(name)}$"}, retry=False) or {}
            for srv in obj.get("servers") or []:
                m = srv.get("metadata") or {}
                if m.get(TAG_STACK) == stack and m.get(TAG_RESOURCE) == address:
                    return str(srv["id"])
            return None

        server_id = self._create_call(post, lookup)
        srv = self._wait_server(region, server_id, "ACTIVE", timeout,
                                f"server {name} ({server_id})")
        return self._refresh_server(region, address, server_id, srv)

    def _create_volume(self, region: str, stack: str, address: str, name: str,
                       props: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        size = props.get("size")
        if size is None:
            raise CloudError("a volume needs size", permanent=True)
        meta = {**kit.metadata(props), TAG_STACK: stack, TAG_RESOURCE: address, TAG_SPEC: spec_hash}
        body: dict[str, Any] = {"size": int(size), "name": name, "metadata": meta}
        if props.get("volume_type"):
            body["volume_type"] = str(props["volume_type"])
        if props.get("availability_zone"):
            body["availability_zone"] = str(props["availability_zone"])

        def post() -> str:
            obj = self._api(region, "volume", "/volumes", method="POST",
                            body={"volume": body}, retry=False) or {}
            return str(obj["volume"]["id"])

        def lookup() -> str | None:
            obj = self._api(region, "volume", "/volumes/detail", params={"name": name},
                            retry=False) or {}
            for vol in obj.get("volumes") or []:
                m = vol.get("metadata") or {}
                if m.get(TAG_STACK) == stack and m.get(TAG_RESOURCE) == address:
                    return str(vol["id"])
            return None

        volume_id = self._create_call(post, lookup)
        vol = self._wait_volume(region, volume_id, timeout, f"volume {name} ({volume_id})",
                                ready=lambda v: v.get("status") == "available")
        return self._volume_live(region, address, vol)

    def _create_attachment(self, region: str, stack: str, address: str, name: str,
                           props: Mapping[str, Any], spec_hash: str,
                           timeout: float) -> LiveResource:
        volume_id = str(props.get("volume_id") or "")
        server_id = str(props.get("instance_uuid") or "")
        if not volume_id or not server_id:
            raise CloudError("a volume attachment needs volume_id and instance_uuid",
                             permanent=True)
        vol = self._get(region, "volume", f"/volumes/{volume_id}", "volume")
        if vol is None:
            raise CloudError(f"Volume {volume_id} could not be found.", permanent=True,
                             status="404")
        attached = [str(a.get("server_id")) for a in vol.get("attachments") or []
                    if a.get("server_id")]
        if attached and server_id not in attached:
            raise CloudError(f"volume {volume_id} is attached to {', '.join(attached)}",
                             permanent=True, status="409")
        if not attached:
            # Nova refuses to attach to a server still building (409); a server adopted
            # after a killed run may be in exactly that state while this runs.
            self._settled_server(region, server_id, timeout, f"server {server_id}")
        # Record first, then attach: no attachment ever exists without its record.
        self._api(region, "volume", f"/volumes/{volume_id}/metadata", method="POST",
                  body={"metadata": {TAG_ATTACHMENT: address, TAG_ATTACHMENT_SPEC: spec_hash}})
        if not attached:
            att: dict[str, Any] = {"volumeId": volume_id}
            if props.get("mountpoint"):
                att["device"] = str(props["mountpoint"])
            try:
                self._api(region, "compute", f"/servers/{server_id}/os-volume_attachments",
                          method="POST", body={"volumeAttachment": att})
            except CloudError:
                self._forget_attachment(region, volume_id)
                raise
        what = f"attachment {address} ({volume_id} → {server_id})"
        vol = self._wait_volume(
            region, volume_id, timeout, what,
            ready=lambda v: v.get("status") == "in-use" and any(
                a.get("server_id") == server_id for a in v.get("attachments") or []))
        live = self._attachment_live(region, vol)
        if live is None:  # pragma: no cover - waited for exactly this
            raise CloudError(f"{what} vanished", permanent=True)
        return live

    def _forget_attachment(self, region: str, volume_id: str) -> None:
        for key in (TAG_ATTACHMENT, TAG_ATTACHMENT_SPEC):
            self._delete_call(region, "volume", f"/volumes/{volume_id}/metadata/{key}")

    def _create_key_pair(self, region: str, stack: str, address: str, name: str,
                         props: Mapping[str, Any], spec_hash: str,
                         timeout: float) -> LiveResource:
        public_key = str(props.get("public_key") or "").strip()
        if not public_key:
            raise CloudError(f"key pair {name}: public_key is required (cloudtmpl generates "
                             "one when the template gives none)", permanent=True)
        try:
            obj = self._api(region, "compute", "/os-keypairs", method="POST",
                            body={"keypair": {"name": name, "public_key": public_key}}) or {}
        except CloudError as err:
            if _status(err) != 409:
                raise
            # Same name: ours from an earlier (retried or crashed) attempt?
            kp = self._get(region, "compute", f"/os-keypairs/{name}", "keypair")
            existing = str((kp or {}).get("public_key") or "").split()[:2]
            if kp is None or existing != public_key.split()[:2]:
                raise
            return self._key_pair_live(region, address, kp)
        kp = dict(obj.get("keypair") or {})
        kp.setdefault("name", name)
        kp.setdefault("public_key", public_key)
        return self._key_pair_live(region, address, kp)

    def _create_group(self, region: str, stack: str, address: str, name: str,
                      props: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        text = str(props.get("description") or "")
        desired = [r for r in canonical_rules(props.get("rules") or [])
                   if r not in DEFAULT_EGRESS_RULES]
        wants_egress = any(r["direction"] == "egress" for r in desired)
        atomic = not desired and not wants_egress
        body = {"name": name, "description": _with_spec(text, spec_hash if atomic else None)}

        def post() -> dict[str, Any]:
            obj = self._api(region, "network", "/v2.0/security-groups", method="POST",
                            body={"security_group": body}, retry=False) or {}
            return dict(obj["security_group"])

        def lookup() -> dict[str, Any] | None:
            obj = self._api(region, "network", "/v2.0/security-groups", params={"name": name},
                            retry=False) or {}
            found = [g for g in obj.get("security_groups") or [] if g.get("name") == name]
            return found[0] if found else None

        group = self._create_call(post, lookup)
        gid = str(group["id"])
        if not atomic:
            self._apply_rules(region, gid, group.get("security_group_rules") or [], desired)
            self._set_description(region, "/v2.0/security-groups", "security_group", gid,
                                  _with_spec(text, spec_hash))
        return self._refresh_neutron(region, SECURITY_GROUP, address, gid)

    def _set_description(self, region: str, path: str, key: str, oid: str,
                         description: str, **extra: Any) -> None:
        self._api(region, "network", f"{path}/{oid}", method="PUT",
                  body={key: {"description": description, **extra}})

    def _apply_rules(self, region: str, group_id: str, current_raw: list[dict[str, Any]],
                     desired: list[dict[str, Any]]) -> None:
        """Add the missing rules, delete the extra ones (by rule id).

        As Heat does: declaring any egress rule removes Neutron's default egress
        rules; declaring none keeps (or restores) them.
        """
        wants_egress = any(r["direction"] == "egress" for r in desired)
        want = {_rule_key(r): r for r in desired}
        if not wants_egress:
            for r in DEFAULT_EGRESS_RULES:
                want[_rule_key(r)] = r
        have: dict[tuple[Any, ...], list[str]] = {}
        for raw in current_raw:
            have.setdefault(_rule_key(_rule_of(raw)), []).append(str(raw.get("id")))
        for key, ids in have.items():
            extra = ids if key not in want else ids[1:]  # duplicates go too
            for rule_id in extra:
                self._delete_call(region, "network", f"/v2.0/security-group-rules/{rule_id}")
        for key, rule in want.items():
            if key in have:
                continue
            try:
                self._api(region, "network", "/v2.0/security-group-rules", method="POST",
                          body={"security_group_rule": _rule_body(group_id, rule)})
            except CloudError as err:
                if _status(err) != 409:  # already there (a retried create): fine
                    raise

    def _create_network(self, region: str, stack: str, address: str, name: str,
                        props: Mapping[str, Any], spec_hash: str,
                        timeout: float) -> LiveResource:
        body = {"name": name, "admin_state_up": bool(props.get("admin_state_up", True)),
                "description": _with_spec("", spec_hash)}
        net_id = self._post_neutron(
            region, "/v2.0/networks", "network", body,
            lambda: self._find_named(region, "/v2.0/networks", "networks", name))
        return self._refresh_neutron(region, NETWORK, address, net_id)

    def _create_subnet(self, region: str, stack: str, address: str, name: str,
                       props: Mapping[str, Any], spec_hash: str,
                       timeout: float) -> LiveResource:
        if not props.get("network") or not props.get("cidr"):
            raise CloudError("a subnet needs network and cidr", permanent=True)
        body: dict[str, Any] = {
            "name": name,
            "network_id": self._network_ref(region, str(props["network"])),
            "cidr": str(props["cidr"]),
            "ip_version": int(props.get("ip_version") or 4),
            "enable_dhcp": bool(props.get("enable_dhcp", True)),
            "dns_nameservers": [str(d) for d in props.get("dns_nameservers") or []],
            "description": _with_spec("", spec_hash),
        }
        if props.get("gateway_ip"):
            body["gateway_ip"] = str(props["gateway_ip"])
        sub_id = self._post_neutron(
            region, "/v2.0/subnets", "subnet", body,
            lambda: self._find_named(region, "/v2.0/subnets", "subnets", name))
        return self._refresh_neutron(region, SUBNET, address, sub_id)

    def _create_port(self, region: str, stack: str, address: str, name: str,
                     props: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        if not props.get("network"):
            raise CloudError("a port needs network", permanent=True)
        fixed = []
        for item in props.get("fixed_ips") or []:
            if not isinstance(item, Mapping):
                continue
            entry = {}
            subnet = item.get("subnet") or item.get("subnet_id")
            if subnet:
                entry["subnet_id"] = str(subnet)
            if item.get("ip_address"):
                entry["ip_address"] = str(item["ip_address"])
            if entry:
                fixed.append(entry)
        body: dict[str, Any] = {
            "name": name,
            "network_id": self._network_ref(region, str(props["network"])),
            "admin_state_up": bool(props.get("admin_state_up", True)),
            "security_groups": [self._group_ref(region, str(g))
                                for g in props.get("security_groups") or []],
            "description": _with_spec("", spec_hash),
        }
        if fixed:
            body["fixed_ips"] = fixed
        port_id = self._post_neutron(
            region, "/v2.0/ports", "port", body,
            lambda: self._find_named(region, "/v2.0/ports", "ports", name))
        return self._refresh_neutron(region, PORT, address, port_id)

    def _server_port(self, region: str, server_id: str) -> str:
        """The server's first port (Nova's order of its interfaces)."""
        obj = self._api(region, "compute", f"/servers/{server_id}/os-interface") or {}
        ports = [a.get("port_id") for a in obj.get("interfaceAttachments") or []
                 if a.get("port_id")]
        if not ports:
            raise CloudError(f"server {server_id} has no port to associate a floating IP with",
                             permanent=True)
        return str(ports[0])

    def _fip_target_port(self, region: str, props: Mapping[str, Any]) -> str | None:
        if props.get("port"):
            return str(props["port"])
        if props.get("server"):
            return self._server_port(region, str(props["server"]))
        return None

    def _create_fip(self, region: str, stack: str, address: str, name: str,
                    props: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        net = props.get("floating_network")
        net_id = self._network_ref(region, str(net)) if net else self._external_network(region)
        body: dict[str, Any] = {"floating_network_id": net_id,
                                "description": _fip_marker(stack, address, spec_hash)}
        port = self._fip_target_port(region, props)
        if port:
            body["port_id"] = port

        def post() -> str:
            obj = self._api(region, "network", "/v2.0/floatingips", method="POST",
                            body={"floatingip": body}, retry=False) or {}
            return str(obj["floatingip"]["id"])

        def lookup() -> str | None:
            obj = self._api(region, "network", "/v2.0/floatingips",
                            params={"floating_network_id": net_id}, retry=False) or {}
            for fip in obj.get("floatingips") or []:
                marker = _parse_fip_marker(fip.get("description"))
                if marker and marker[0] == stack and marker[1] == address:
                    return str(fip["id"])
            return None

        fip_id = self._create_call(post, lookup)
        return self._refresh_fip(region, address, fip_id)

    # ------------------------------------------------------------------ update

    def update(
        self,
        live: LiveResource,
        properties: Mapping[str, Any],
        changed: frozenset[str],
        *,
        stack: str,
        spec_hash: str,
        timeout: float,
    ) -> LiveResource:
        if live.kind in STORAGE_KINDS:  # -- buckets: Swift (openstack_storage.py)
            return self._storage().update(live, properties, changed, stack, spec_hash)
        allowed = {
            SERVER: {"flavor", "metadata"},
            VOLUME: {"size", "metadata"},
            SECURITY_GROUP: {"rules"},
            FLOATING_IP: {"server", "port"},
            NETWORK: {"admin_state_up"},
            SUBNET: {"enable_dhcp", "dns_nameservers"},
            PORT: {"security_groups", "admin_state_up"},
            ATTACHMENT: set(),
            KEYPAIR: set(),
        }.get(live.kind)
        if allowed is None:
            raise CloudError(f"the openstack provider cannot update {live.kind}",
                             permanent=True)
        refused = sorted(set(changed) - allowed)
        if refused:
            raise CloudError(f"{live.kind} {live.address}: {', '.join(refused)} cannot change "
                             "in place; the resource must be replaced", permanent=True)
        region = live.placement.region
        with self._lease(region):
            return self._update(region, live, properties, changed, stack, spec_hash, timeout)

    def _update(self, region: str, live: LiveResource, props: Mapping[str, Any],
                changed: frozenset[str], stack: str, spec_hash: str,
                timeout: float) -> LiveResource:
        oid = live.physical_id
        if live.kind == SERVER:
            return self._update_server(region, live, props, changed, spec_hash, timeout)
        if live.kind == VOLUME:
            return self._update_volume(region, live, props, changed, spec_hash, timeout)
        if live.kind == ATTACHMENT:
            volume_id = oid.split(":", 1)[0]
            self._api(region, "volume", f"/volumes/{volume_id}/metadata", method="POST",
                      body={"metadata": {TAG_ATTACHMENT_SPEC: spec_hash}})
            vol = self._require(self._get(region, "volume", f"/volumes/{volume_id}", "volume"),
                                live)
            return self._require(self._attachment_live(region, vol), live)
        if live.kind == KEYPAIR:  # nothing to change, nowhere to keep a spec
            kp = self._require(self._get(region, "compute", f"/os-keypairs/{oid}", "keypair"),
                               live)
            return self._key_pair_live(region, live.address, kp)
        if live.kind == SECURITY_GROUP:
            sg = self._require(self._get(region, "network", f"/v2.0/security-groups/{oid}",
                                         "security_group"), live)
            desired = [r for r in canonical_rules(props.get("rules") or [])
                       if r not in DEFAULT_EGRESS_RULES]
            if "rules" in changed:
                self._apply_rules(region, oid, sg.get("security_group_rules") or [], desired)
            text, _ = _split_spec(sg.get("description"))
            self._set_description(region, "/v2.0/security-groups", "security_group", oid,
                                  _with_spec(text, spec_hash))
            return self._refresh_neutron(region, SECURITY_GROUP, live.address, oid)
        if live.kind == FLOATING_IP:
            return self._update_fip(region, live, props, changed, stack, spec_hash)
        path, key = {NETWORK: ("/v2.0/networks", "network"),
                     SUBNET: ("/v2.0/subnets", "subnet"),
                     PORT: ("/v2.0/ports", "port")}[live.kind]
        extra: dict[str, Any] = {}
        for prop in changed:
            value = props.get(prop)
            if prop == "dns_nameservers":
                value = [str(d) for d in value or []]
            elif prop == "security_groups":
                value = [self._group_ref(region, str(g)) for g in value or []]
            elif prop in ("admin_state_up", "enable_dhcp"):
                value = True if value is None else bool(value)
            extra[prop] = value
        self._set_description(region, path, key, oid, _with_spec("", spec_hash), **extra)
        return self._refresh_neutron(region, live.kind, live.address, oid)

    def _update_server(self, region: str, live: LiveResource, props: Mapping[str, Any],
                       changed: frozenset[str], spec_hash: str, timeout: float) -> LiveResource:
        sid = live.physical_id
        what = f"server {live.name or live.address} ({sid})"
        srv = self._require(self._get(region, "compute", f"/servers/{sid}", "server"), live)
        deadline = self._clock() + timeout
        flavor = str(props.get("flavor") or "")
        current = self._flavor_name(region, srv.get("flavor") or {})
        if "flavor" in changed and flavor and flavor not in (current,
                                                             (srv.get("flavor") or {}).get("id")):
            if srv.get("status") == "VERIFY_RESIZE":  # an earlier resize never confirmed
                self._api(region, "compute", f"/servers/{sid}/action", method="POST",
                          body={"confirmResize": None})
                self._wait_server(region, sid, "ACTIVE", timeout, what)
            self._api(region, "compute", f"/servers/{sid}/action", method="POST",
                      body={"resize": {"flavorRef": self._flavor_ref(region, flavor)}})
            self._wait_server(region, sid, "VERIFY_RESIZE",
                              max(1.0, deadline - self._clock()), what)
            self._api(region, "compute", f"/servers/{sid}/action", method="POST",
                      body={"confirmResize": None})
            self._wait_server(region, sid, "ACTIVE", max(1.0, deadline - self._clock()), what)
        meta = srv.get("metadata") or {}
        if "metadata" in changed:
            # Replace all metadata at once: user keys as desired, ours kept, new spec.
            full = {k: str(v) for k, v in meta.items() if str(k).startswith("cloudtmpl:")}
            full.update(kit.metadata(props))
            full[TAG_SPEC] = spec_hash
            self._api(region, "compute", f"/servers/{sid}/metadata", method="PUT",
                      body={"metadata": full})
        else:
            self._api(region, "compute", f"/servers/{sid}/metadata", method="POST",
                      body={"metadata": {TAG_SPEC: spec_hash}})
        return self._refresh_server(region, live.address, sid)

    def _update_volume(self, region: str, live: LiveResource, props: Mapping[str, Any],
                       changed: frozenset[str], spec_hash: str, timeout: float) -> LiveResource:
        vid = live.physical_id
        vol = self._require(self._get(region, "volume", f"/volumes/{vid}", "volume"), live)
        if "size" in changed:
            want = int(props.get("size") or 0)
            have = int(vol.get("size") or 0)
            if want < have:
                raise CloudError(
                    f"volume {live.address} ({vid}): Cinder volumes cannot shrink ({have} GiB → "
                    f"{want} GiB); the volume must be replaced", permanent=True)
            if want > have:
                if vol.get("status") != "available":
                    raise CloudError(
                        f"volume {live.address} ({vid}) can grow only while it is available "
                        f"(detached); it is {vol.get('status')}", permanent=True,
                        status=str(vol.get("status")))
                self._api(region, "volume", f"/volumes/{vid}/action", method="POST",
                          body={"os-extend": {"new_size": want}})
                vol = self._wait_volume(
                    region, vid, timeout, f"volume {live.address} ({vid})",
                    ready=lambda v: int(v.get("size") or 0) >= want
                    and v.get("status") == "available")
        meta = vol.get("metadata") or {}
        if "metadata" in changed:
            full = {k: str(v) for k, v in meta.items() if str(k).startswith("cloudtmpl:")}
            full.update(kit.metadata(props))
            full[TAG_SPEC] = spec_hash
            self._api(region, "volume", f"/volumes/{vid}/metadata", method="PUT",
                      body={"metadata": full})
        else:
            self._api(region, "volume", f"/volumes/{vid}/metadata", method="POST",
                      body={"metadata": {TAG_SPEC: spec_hash}})
        return self._refresh_volume(region, live.address, vid)

    def _update_fip(self, region: str, live: LiveResource, props: Mapping[str, Any],
                    changed: frozenset[str], stack: str, spec_hash: str) -> LiveResource:
        fid = live.physical_id
        fip = self._require(self._get(region, "network", f"/v2.0/floatingips/{fid}",
                                      "floatingip"), live)
        marker = _fip_marker(stack, live.address, spec_hash)
        body: dict[str, Any] = {"description": marker}
        if changed & {"server", "port"}:
            want = self._fip_target_port(region, props)
            have = fip.get("port_id") or None
            if want != have:  # Neutron moves an associated one in this one call
                body["port_id"] = want
        self._api(region, "network", f"/v2.0/floatingips/{fid}", method="PUT",
                  body={"floatingip": body})
        return self._refresh_fip(region, live.address, fid)

    # ------------------------------------------------------------------ delete

    def delete(self, live: LiveResource, *, timeout: float) -> None:
        if live.kind in STORAGE_KINDS:  # -- buckets: Swift (openstack_storage.py)
            return self._storage().delete(live)
        region = live.placement.region
        oid = live.physical_id
        what = f"{live.kind} {live.name or live.address} ({oid})"
        with self._lease(region):
            if live.kind == SERVER:
                self._delete_server(region, live, timeout)
            elif live.kind == VOLUME:
                if self._delete_call(region, "volume", f"/volumes/{oid}"):
                    def gone() -> tuple[bool, str, None]:
                        vol = self._get(region, "volume", f"/volumes/{oid}", "volume")
                        status = "deleted" if vol is None else str(vol.get("status"))
                        if status == "error_deleting":
                            raise CloudError(f"{what} failed to delete (error_deleting)",
                                             permanent=True, status=status)
                        return vol is None, status, None

                    self._poll(timeout, what, gone)
            elif live.kind == ATTACHMENT:
                self._delete_attachment(region, live, timeout)
            elif live.kind == KEYPAIR:
                self._delete_call(region, "compute", f"/os-keypairs/{oid}")
            elif live.kind == FLOATING_IP:
                self._delete_call(region, "network", f"/v2.0/floatingips/{oid}")
            elif live.kind in (SECURITY_GROUP, NETWORK, SUBNET, PORT):
                path = {SECURITY_GROUP: "/v2.0/security-groups", NETWORK: "/v2.0/networks",
                        SUBNET: "/v2.0/subnets", PORT: "/v2.0/ports"}[live.kind]
                self._delete_until_gone(region, "network", f"{path}/{oid}", timeout, what)
            else:
                raise CloudError(f"the openstack provider cannot delete {live.kind}",
                                 permanent=True)

    # ------------------------------------------------------------------ snapshot

    snapshot_kind = "Cinder backup"

    def snapshot_volume(self, live: LiveResource, *, stack: str, timeout: float) -> str | None:
        """deletion_policy Snapshot: a Cinder *backup* of the volume, as Heat takes.

        A Cinder snapshot depends on its volume (the volume cannot be deleted while
        it has one: "Volume still has 1 dependent snapshots"); a backup does not.
        ``POST /backups`` with ``force`` (an attached volume too) and, at microversion
        3.43, the metadata ``cloudtmpl:stack``/``resource``/``snapshot-of``; waited on
        until ``available`` (``error``: its ``fail_reason``).  A backup of this volume
        by this name that is creating or available (an ambiguous failure retried, a
        killed run) is reused.  Returns the backup id."""
        if live.kind != VOLUME:
            raise CloudError(f"the openstack provider cannot snapshot {live.kind}",
                             permanent=True)
        region = live.placement.region
        vid = live.physical_id
        name = snapshot_name(stack, live.address, vid)
        what = f"backup {name}"
        meta = {TAG_STACK: stack, TAG_RESOURCE: live.address, TAG_SNAPSHOT_OF: vid}

        def find() -> str | None:
            obj = self._api(region, "volume", "/backups/detail", retry=False,
                            params={"volume_id": vid, "name": name},
                            headers=BACKUP_MICROVERSION) or {}
            for backup in obj.get("backups") or []:
                theirs = (backup.get("metadata") or {}).get(TAG_STACK, stack)
                if backup.get("name") == name and backup.get("volume_id") == vid and \
                        theirs == stack and backup.get("status") in _LIVE_BACKUP_STATES:
                    return str(backup["id"])
            return None

        def post() -> str:
            body = {"volume_id": vid, "name": name, "force": True, "metadata": meta,
                    "description": f"cloudtmpl: volume {vid} ({physical_name(stack, live.address)})"
                                   " before it was deleted (deletion_policy Snapshot)"}
            obj = self._api(region, "volume", "/backups", method="POST", retry=False,
                            body={"backup": body}, headers=BACKUP_MICROVERSION) or {}
            return str(obj["backup"]["id"])

        with self._lease(region):
            if self._get(region, "volume", f"/volumes/{vid}", "volume") is None:
                return None  # already gone: nothing to keep
            backup_id = self._call(find) or self._create_call(post, find)

            def fetch() -> tuple[bool, str, None]:
                backup = self._get(region, "volume", f"/backups/{backup_id}", "backup")
                status = "creating" if backup is None else str(backup.get("status") or "")
                if status == "error":  # it holds nothing: deleted, the cloud's words kept
                    reason = (backup or {}).get("fail_reason") or "status error"
                    with suppress(CloudError):
                        self._delete_call(region, "volume", f"/backups/{backup_id}")
                    raise CloudError(f"{what} ({backup_id}) of volume {vid} failed: {reason}",
                                     permanent=True, status=status)
                return status == "available", status, None

            self._poll(timeout, f"{what} ({backup_id})", fetch)
            # Cinder puts the volume back to its status before the backup is available;
            # wait that out all the same, or the delete would find it backing-up
            self._wait_volume(region, vid, timeout, f"volume {live.address} ({vid})",
                              ready=lambda v: v.get("status") != "backing-up")
        return backup_id

    def _delete_server(self, region: str, live: LiveResource, timeout: float) -> None:
        sid = live.physical_id
        srv = self._get(region, "compute", f"/servers/{sid}", "server")
        if srv is None:
            return
        name = str(srv.get("name") or live.name)
        ports = self._list(region, "network", "/v2.0/ports", "ports", {"device_id": sid})
        nic_ports = [str(p["id"]) for p in ports
                     if str(p.get("name") or "").startswith(name + NIC_SEPARATOR)]
        if not self._delete_call(region, "compute", f"/servers/{sid}"):
            return
        self._wait_server_gone(region, sid, timeout, f"server {name} ({sid})")
        for port_id in nic_ports:
            self._delete_call(region, "network", f"/v2.0/ports/{port_id}")

    def _delete_attachment(self, region: str, live: LiveResource, timeout: float) -> None:
        volume_id, _, server_id = live.physical_id.partition(":")
        vol = self._get(region, "volume", f"/volumes/{volume_id}", "volume")
        if vol is None:
            return
        if any(a.get("server_id") == server_id for a in vol.get("attachments") or []):
            try:
                self._delete_call(region, "compute",
                                  f"/servers/{server_id}/os-volume_attachments/{volume_id}")
            except CloudError as err:
                if _status(err) != 409 and _status(err) != 400:
                    raise

            def detached() -> tuple[bool, str, dict[str, Any] | None]:
                v = self._get(region, "volume", f"/volumes/{volume_id}", "volume")
                if v is None:
                    return True, "deleted", None
                still = any(a.get("server_id") == server_id for a in v.get("attachments") or [])
                return not still, str(v.get("status")), v

            found = self._poll(timeout, f"attachment {live.address} ({volume_id} → "
                                        f"{server_id})", detached)
            if found is None:
                return
            vol = found
        meta = vol.get("metadata") or {}
        if meta.get(TAG_ATTACHMENT) in (None, live.address) and (
                TAG_ATTACHMENT in meta or TAG_ATTACHMENT_SPEC in meta):
            self._forget_attachment(region, volume_id)
