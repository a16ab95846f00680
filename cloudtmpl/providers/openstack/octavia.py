"""Octavia's plumbing, and its four kinds ``Cloud::LB::Listener``/``Pool``/``PoolMember``/
``HealthMonitor`` (Heat's ``OS::Octavia::*``): one Octavia object each.

Identity: the deterministic name ``<stack>.<address>``, and the spec hash in a tag
``cloudtmpl:spec=<hash>`` (Octavia's members and health monitors have no description;
every Octavia object has tags).  The children a
``Cloud::LB::LoadBalancer`` makes itself (:mod:`.lb`) are named ``<its name>:…``: a
``:`` is in no address, so they are never taken for resources of these kinds.  A
member is found through its pool: discovery lists the members of the stack's pools
(``<stack>.*``; a member of a pool of no stack is not found).

Octavia refuses any change to a load balancer or its children while the load balancer
is ``PENDING_*`` (409).  Every change here is tried at once and, when refused so (a
sibling's change came first), tried again once the load balancer is ``ACTIVE``; then
it waits for ``ACTIVE`` again, so the next change finds the load balancer mutable.
A create looks first on a retry after an ambiguous failure (``kit.create_or_adopt``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cloudtmpl.model import TAG_SPEC, LiveResource, address_from_name
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import (
    HEALTH_MONITOR,
    LISTENER,
    POOL,
    POOL_MEMBER,
    CloudError,
)
from cloudtmpl.providers.openstack.catalog import is_uuid
from cloudtmpl.providers.openstack.client import OpenStackClient, status_of

T = TypeVar("T")
SERVICE = "load-balancer"
ROOT = "/v2/lbaas"
HTTP_MONITORS = ("HTTP", "HTTPS")
_HTTP_DEFAULTS = {"url_path": "/", "http_method": "GET", "expected_codes": "200"}


def spec_tags(spec: str | None, tags: list[str] | tuple[str, ...] = ()) -> list[str]:
    """``tags`` and the spec hash's tag."""
    return sorted([*tags, *([f"{TAG_SPEC}={spec}"] if spec else [])])


def spec_of(obj: Mapping[str, Any]) -> str | None:
    """The spec hash an object's tags carry."""
    for tag in obj.get("tags") or []:
        if str(tag).startswith(f"{TAG_SPEC}="):
            return str(tag)[len(TAG_SPEC) + 1:] or None
    return None


def path(collection: str, oid: str | None = None) -> str:
    return f"{ROOT}/{collection}" + (f"/{oid}" if oid else "")


def members_path(pool_id: str, oid: str | None = None) -> str:
    return path(f"pools/{pool_id}/members", oid)


def get(client: OpenStackClient, region: str, where: str, key: str) -> dict[str, Any] | None:
    return client.get(region, SERVICE, where, key)


def find(client: OpenStackClient, region: str, where: str, key: str, name: str,
         **filters: str) -> dict[str, Any] | None:
    """The object of ``name`` in the listing at ``where`` (None: there is none)."""
    obj = client.api(region, SERVICE, where, params={"name": name, **filters},
                     retry=False) or {}
    return next((o for o in obj.get(key) or [] if o.get("name") == name), None)


def wait_active(client: OpenStackClient, region: str, lb_id: str,
                timeout: float) -> dict[str, Any]:
    """The load balancer, once ``ACTIVE`` (its ``ERROR`` or absence: a permanent error)."""
    def fetch() -> tuple[bool, str, dict[str, Any]]:
        lb = get(client, region, path("loadbalancers", lb_id), "loadbalancer")
        if lb is None:
            raise CloudError(f"load balancer {lb_id} no longer exists in {region}",
                             permanent=True)
        status = str(lb.get("provisioning_status") or "")
        if status == "ERROR":
            raise CloudError(f"load balancer {lb_id} is in ERROR", permanent=True)
        return status == "ACTIVE", status, lb

    return client.poll(timeout, f"load balancer {lb_id}", fetch)


def _refused_while_pending(err: CloudError) -> bool:
    return status_of(err) == 409 and ("immutable" in err.message
                                      or "Invalid state" in err.message)


def change(client: OpenStackClient, region: str, lb_id: Callable[[], str], timeout: float,
           fn: Callable[[], T]) -> T:
    """``fn()`` (a change under a load balancer), again after a 409 while the load
    balancer was busy; then the load balancer ``ACTIVE`` again (see the docstring)."""
    deadline = client.clock() + timeout
    while True:
        try:
            result = fn()
            break
        except CloudError as err:
            if not _refused_while_pending(err) or client.clock() >= deadline:
                raise
        wait_active(client, region, lb_id(), max(1.0, deadline - client.clock()))
    wait_active(client, region, lb_id(), max(1.0, deadline - client.clock()))
    return result


def post(client: OpenStackClient, region: str, where: str, key: str, body: dict[str, Any],
         lookup: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
    """POST a new object (looking first on a retry); the object."""
    def go() -> dict[str, Any]:
        obj = client.api(region, SERVICE, where, method="POST", body={key: body},
                         retry=False) or {}
        return dict(obj[key])

    return client.create_or_adopt(go, lookup)


def delete_until_gone(client: OpenStackClient, region: str, where: str, key: str,
                      lb_id: Callable[[], str | None], timeout: float,
                      params: Mapping[str, str] | None = None) -> None:
    """DELETE (again while the load balancer is busy) and wait until the object is gone."""
    deadline = client.clock() + timeout
    while True:
        try:
            client.api(region, SERVICE, where, method="DELETE", params=params)
            break
        except CloudError as err:
            if status_of(err) == 404:
                return
            parent = lb_id()
            if not _refused_while_pending(err) or parent is None \
                    or client.clock() >= deadline:
                raise
            wait_active(client, region, parent, max(1.0, deadline - client.clock()))

    def gone() -> tuple[bool, str, None]:
        obj = get(client, region, where, key)
        return obj is None, str((obj or {}).get("provisioning_status") or ""), None

    client.poll(max(1.0, deadline - client.clock()), where, gone)


def subnet_ref(client: OpenStackClient, region: str, value: str) -> str:
    """A subnet's id, given its id or its name (one of that name)."""
    if is_uuid(value):
        return value
    found = client.list_all(region, "network", "/v2.0/subnets", "subnets", {"name": value})
    if len(found) != 1:
        raise CloudError(f"subnet {value!r}: " + ("no such subnet" if not found else
                         "several subnets have that name; use its id"), permanent=True)
    return str(found[0]["id"])


def first_id(refs: Any) -> str | None:
    """The id of the first ``[{"id": …}]`` reference."""
    for ref in refs or []:
        if isinstance(ref, Mapping) and ref.get("id"):
            return str(ref["id"])
    return None


def stack_address(stack: str, obj: Mapping[str, Any]) -> str | None:
    """The address of an object named ``<stack>.<address>`` (None: a LoadBalancer's
    own child, ``…:…``, or not the stack's)."""
    name = str(obj.get("name") or "")
    return None if ":" in name else address_from_name(stack, name)


def _live(kind: str, client: OpenStackClient, region: str, address: str,
          obj: Mapping[str, Any], properties: dict[str, Any],
          attributes: dict[str, Any]) -> LiveResource:
    spec = spec_of(obj)
    status = str(obj.get("provisioning_status") or "")
    return LiveResource(address=address, kind=kind, physical_id=str(obj["id"]),
                        placement=client.placement(region), name=str(obj.get("name")),
                        properties=properties,
                        attributes={"name": obj.get("name"), "id": str(obj["id"]),
                                    "provisioning_status": status, **attributes},
                        spec_hash=spec, status=status.lower())


def _integer(props: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = props.get(key, default)
    if value is None:
        raise CloudError(f"{key} is required", permanent=True)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise CloudError(f"{key} must be an integer (got {value!r})", permanent=True) from None


def _flag(props: Mapping[str, Any], key: str) -> bool:
    value = props.get(key, True)
    return True if value is None else bool(value)


class Child:
    """One Octavia object under a load balancer; the kinds below say which."""

    kind = ""
    collection = ""  # "listeners"
    key = ""  # "listener"
    listing = ""  # "lb_listeners"

    @property
    def listings(self) -> tuple[str, ...]:
        return (self.listing,)

    # --- what each kind says
    def where(self, props: Mapping[str, Any]) -> str:
        return path(self.collection)

    def fields(self, client: OpenStackClient, region: str,
               props: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def updates(self, props: Mapping[str, Any], changed: frozenset[str]) -> dict[str, Any]:
        return {name: props.get(name) for name in changed}

    def make(self, client: OpenStackClient, region: str, address: str,
             obj: Mapping[str, Any]) -> LiveResource:
        raise NotImplementedError

    def parent(self, client: OpenStackClient, region: str, obj: Mapping[str, Any]) -> str:
        """The id of ``obj``'s load balancer."""
        raise NotImplementedError

    # --- the verbs
    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [self.make(client, region, address, obj) for address, obj in
                kit.stack_items(listings.get(self.listing), lambda o: stack_address(stack, o))]

    def _now(self, client: OpenStackClient, region: str, where: str, oid: str,
             address: str) -> LiveResource:
        obj = get(client, region, f"{where}/{oid}", self.key)
        if obj is None:
            raise CloudError(f"{self.kind} {address} ({oid}) vanished", permanent=True)
        return self.make(client, region, address, self.known(obj, where))

    def known(self, obj: dict[str, Any], where: str) -> dict[str, Any]:
        """``obj`` with what its listing adds (a member: its pool)."""
        return obj

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        props = want.properties
        body = {"name": want.name, "tags": spec_tags(want.spec_hash),
                **self.fields(client, region, props)}
        where = self.where(props)
        made: dict[str, Any] = {}

        def go() -> dict[str, Any]:
            made.update(post(client, region, where, self.key, body,
                             lambda: find(client, region, where, self.collection, want.name)))
            return made

        change(client, region, lambda: self.parent(client, region, {**props, **body, **made}),
               want.timeout, go)
        return self._now(client, region, where, str(made["id"]), want.address)

    def update(self, client: OpenStackClient, live: LiveResource,
               change_: kit.Change) -> LiveResource:
        region = live.placement.region
        where = self.where(live.properties)
        at = f"{where}/{live.physical_id}"
        obj = kit.require(get(client, region, at, self.key), live)
        body = {**self.updates(change_.properties, change_.changed),
                "tags": spec_tags(change_.spec_hash)}
        change(client, region,
               lambda: self.parent(client, region, {**live.properties, **obj}),
               change_.timeout,
               lambda: client.api(region, SERVICE, at, method="PUT", body={self.key: body},
                                  retry=False))
        return self._now(client, region, where, live.physical_id, live.address)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        at = f"{self.where(live.properties)}/{live.physical_id}"

        def parent() -> str | None:
            obj = get(client, region, at, self.key)
            return self.parent(client, region, {**live.properties, **obj}) if obj else None

        delete_until_gone(client, region, at, self.key, parent, timeout)


class Listener(Child):
    kind, collection, key, listing = LISTENER, "listeners", "listener", "lb_listeners"

    def fields(self, client: OpenStackClient, region: str,
               props: Mapping[str, Any]) -> dict[str, Any]:
        out = {"loadbalancer_id": str(props.get("loadbalancer") or ""),
               "protocol": str(props.get("protocol") or "").upper(),
               "protocol_port": _integer(props, "protocol_port"),
               "connection_limit": _integer(props, "connection_limit", -1),
               "admin_state_up": _flag(props, "admin_state_up")}
        if props.get("default_pool"):
            out["default_pool_id"] = str(props["default_pool"])
        return out

    def updates(self, props: Mapping[str, Any], changed: frozenset[str]) -> dict[str, Any]:
        names = {"default_pool": "default_pool_id"}
        out = {names.get(n, n): props.get(n) for n in changed}
        if "connection_limit" in out:
            out["connection_limit"] = _integer(props, "connection_limit", -1)
        if "admin_state_up" in out:
            out["admin_state_up"] = _flag(props, "admin_state_up")
        return out

    def parent(self, client: OpenStackClient, region: str, obj: Mapping[str, Any]) -> str:
        return str(obj.get("loadbalancer_id") or first_id(obj.get("loadbalancers"))
                   or obj.get("loadbalancer") or "")

    def make(self, client: OpenStackClient, region: str, address: str,
             obj: Mapping[str, Any]) -> LiveResource:
        return _live(self.kind, client, region, address, obj, {
            "loadbalancer": first_id(obj.get("loadbalancers")),
            "protocol": obj.get("protocol"), "protocol_port": obj.get("protocol_port"),
            "default_pool": obj.get("default_pool_id"),
            "connection_limit": obj.get("connection_limit"),
            "admin_state_up": bool(obj.get("admin_state_up", True))}, {})


class Pool(Child):
    kind, collection, key, listing = POOL, "pools", "pool", "lb_pools"

    def fields(self, client: OpenStackClient, region: str,
               props: Mapping[str, Any]) -> dict[str, Any]:
        if not props.get("listener") and not props.get("loadbalancer"):
            raise CloudError("a pool needs a listener or a loadbalancer", permanent=True)
        out = {"protocol": str(props.get("protocol") or "").upper(),
               "lb_algorithm": str(props.get("lb_algorithm") or "").upper(),
               "admin_state_up": _flag(props, "admin_state_up")}
        if props.get("listener"):
            out["listener_id"] = str(props["listener"])
        else:
            out["loadbalancer_id"] = str(props["loadbalancer"])
        return out

    def updates(self, props: Mapping[str, Any], changed: frozenset[str]) -> dict[str, Any]:
        out = {n: props.get(n) for n in changed}
        if "lb_algorithm" in out:
            out["lb_algorithm"] = str(out["lb_algorithm"] or "").upper()
        if "admin_state_up" in out:
            out["admin_state_up"] = _flag(props, "admin_state_up")
        return out

    def parent(self, client: OpenStackClient, region: str, obj: Mapping[str, Any]) -> str:
        found = first_id(obj.get("loadbalancers")) or obj.get("loadbalancer_id")
        if found:
            return str(found)
        listener = get(client, region, path("listeners", str(obj.get("listener_id"))),
                       "listener") or {}
        return first_id(listener.get("loadbalancers")) or ""

    def make(self, client: OpenStackClient, region: str, address: str,
             obj: Mapping[str, Any]) -> LiveResource:
        return _live(self.kind, client, region, address, obj, {
            "listener": first_id(obj.get("listeners")),
            "loadbalancer": first_id(obj.get("loadbalancers")),
            "protocol": obj.get("protocol"), "lb_algorithm": obj.get("lb_algorithm"),
            "admin_state_up": bool(obj.get("admin_state_up", True))}, {})


class PoolMember(Child):
    kind, collection, key, listing = POOL_MEMBER, "members", "member", "lb_members"

    def where(self, props: Mapping[str, Any]) -> str:
        return members_path(str(props.get("pool") or props.get("pool_id") or ""))

    def fields(self, client: OpenStackClient, region: str,
               props: Mapping[str, Any]) -> dict[str, Any]:
        if not props.get("pool") or not props.get("address"):
            raise CloudError("a pool member needs pool and address", permanent=True)
        out = {"address": str(props["address"]),
               "protocol_port": _integer(props, "protocol_port"),
               "weight": _integer(props, "weight", 1),
               "admin_state_up": _flag(props, "admin_state_up")}
        if props.get("subnet"):
            out["subnet_id"] = subnet_ref(client, region, str(props["subnet"]))
        return out

    def updates(self, props: Mapping[str, Any], changed: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "weight" in changed:
            out["weight"] = _integer(props, "weight", 1)
        if "admin_state_up" in changed:
            out["admin_state_up"] = _flag(props, "admin_state_up")
        return out

    def parent(self, client: OpenStackClient, region: str, obj: Mapping[str, Any]) -> str:
        pool = get(client, region, path("pools", str(obj.get("pool") or obj.get("pool_id"))),
                   "pool") or {}
        return first_id(pool.get("loadbalancers")) or ""

    def known(self, obj: dict[str, Any], where: str) -> dict[str, Any]:
        return {**obj, "pool_id": where.split("/")[-2]}

    def make(self, client: OpenStackClient, region: str, address: str,
             obj: Mapping[str, Any]) -> LiveResource:
        pool = str(obj.get("pool_id") or "")
        return _live(self.kind, client, region, address, obj, {
            # subnet is not reported (a template may name it): the last-applied spec has it
            "pool": pool or None, "address": obj.get("address"),
            "protocol_port": obj.get("protocol_port"), "weight": obj.get("weight"),
            "admin_state_up": bool(obj.get("admin_state_up", True))},
            {"address": obj.get("address"), "operating_status": obj.get("operating_status")})


class HealthMonitor(Child):
    kind, collection, key, listing = (HEALTH_MONITOR, "healthmonitors", "healthmonitor",
                                      "lb_healthmonitors")

    def fields(self, client: OpenStackClient, region: str,
               props: Mapping[str, Any]) -> dict[str, Any]:
        kind = str(props.get("type") or "").upper()
        out: dict[str, Any] = {
            "pool_id": str(props.get("pool") or ""), "type": kind,
            "delay": _integer(props, "delay"), "timeout": _integer(props, "timeout"),
            "max_retries": _integer(props, "max_retries"),
            "max_retries_down": _integer(props, "max_retries_down", 3),
            "admin_state_up": _flag(props, "admin_state_up")}
        out.update(self._http(kind, props, frozenset(_HTTP_DEFAULTS)))
        self._timely(props)
        return out

    @staticmethod
    def _timely(props: Mapping[str, Any]) -> None:
        """The schema's rule (a check takes at most its delay): Octavia's API reference
        asks for it, its API does not check it, so it is checked here."""
        if _integer(props, "timeout") > _integer(props, "delay"):
            raise CloudError(f"timeout ({props.get('timeout')}) must not exceed delay "
                             f"({props.get('delay')})", permanent=True)

    @staticmethod
    def _http(kind: str, props: Mapping[str, Any], names: frozenset[str]) -> dict[str, Any]:
        """The HTTP options among ``names``: Octavia refuses them on other monitors, so
        there they must be the defaults (which mean "not set")."""
        out = {}
        for name in sorted(names & set(_HTTP_DEFAULTS)):
            value = str(props.get(name) or _HTTP_DEFAULTS[name])
            if kind in HTTP_MONITORS:
                out[name] = value
            elif value != _HTTP_DEFAULTS[name]:
                raise CloudError(f"{name} applies to HTTP and HTTPS monitors only (this one "
                                 f"is {kind})", permanent=True)
        return out

    def updates(self, props: Mapping[str, Any], changed: frozenset[str]) -> dict[str, Any]:
        kind = str(props.get("type") or "").upper()
        out: dict[str, Any] = {}
        for name in changed & {"delay", "timeout", "max_retries", "max_retries_down"}:
            out[name] = _integer(props, name, 3 if name == "max_retries_down" else None)
        if "admin_state_up" in changed:
            out["admin_state_up"] = _flag(props, "admin_state_up")
        out.update(self._http(kind, props, changed))
        if changed & {"delay", "timeout"}:
            self._timely(props)
        return out

    def parent(self, client: OpenStackClient, region: str, obj: Mapping[str, Any]) -> str:
        pool_id = str(obj.get("pool_id") or first_id(obj.get("pools")) or obj.get("pool"))
        pool = get(client, region, path("pools", pool_id), "pool") or {}
        return first_id(pool.get("loadbalancers")) or ""

    def make(self, client: OpenStackClient, region: str, address: str,
             obj: Mapping[str, Any]) -> LiveResource:
        http = str(obj.get("type") or "") in HTTP_MONITORS
        return _live(self.kind, client, region, address, obj, {
            "pool": first_id(obj.get("pools")), "type": obj.get("type"),
            "delay": obj.get("delay"), "timeout": obj.get("timeout"),
            "max_retries": obj.get("max_retries"),
            "max_retries_down": obj.get("max_retries_down"),
            **{k: (obj.get(k) if http else v) for k, v in _HTTP_DEFAULTS.items()},
            "admin_state_up": bool(obj.get("admin_state_up", True))}, {})


LISTENERS = Listener()
POOLS = Pool()
POOL_MEMBERS = PoolMember()
HEALTH_MONITORS = HealthMonitor()
