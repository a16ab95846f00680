"""What every cloud's adapter is made of: per-kind handlers behind one dispatcher.

A cloud package (``cloudtmpl/providers/<cloud>/``) has a *client* (transport,
credentials, request counting, retries, the raw listings) and one module per kind
family, each exposing a :class:`Handler` per kind.  The package's ``HANDLERS``
table maps kind to handler; its adapter is a :class:`Dispatcher` over that table
and the client, so the adapter verbs (``discover``, ``create``, ``update``,
``delete``) are written once, here:

* ``discover`` asks each handler which raw listings it needs, has the client
  fetch every listing once, and lets each handler turn them into live resources;
* ``update`` checks the changed properties against the kind's property schema
  (:mod:`cloudtmpl.resources`, Heat's ``update_allowed``) before any handler runs:
  no handler repeats the schema;
* ``create`` and ``delete`` go straight to the handler.

The plumbing that every cloud needs the same way (a cloud call through the retrier
with the cloud's errors as CloudError, the stack's objects among a listing, "look
first, then create" after an ambiguous failure, a resource that vanished, the user's
metadata) is here too, as small functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from cloudtmpl import resources
from cloudtmpl.model import (
    TAG_RESOURCE,
    TAG_SNAPSHOT_OF,
    TAG_STACK,
    LiveResource,
    Placement,
    Target,
    address_from_name,
    physical_name,
)
from cloudtmpl.providers.base import ATTACHMENT, KEYPAIR, CloudError
from cloudtmpl.providers.retry import Retrier

T = TypeVar("T")
C = TypeVar("C", contravariant=True)
ClientT = TypeVar("ClientT", bound="Client")

RESERVED_PREFIX = "cloudtmpl:"  # tag/metadata keys cloudtmpl manages itself


# ---------------------------------------------------------------------- values


@dataclass(frozen=True)
class Desired:
    """What a create is asked for: the resource's identity and its properties."""

    stack: str
    address: str
    name: str
    properties: Mapping[str, Any]
    spec_hash: str
    timeout: float


@dataclass(frozen=True)
class Change:
    """What an in-place update is asked for; every name in ``changed`` is
    ``update_allowed`` in the kind's schema (the dispatcher checked)."""

    properties: Mapping[str, Any]
    changed: frozenset[str]
    stack: str
    spec_hash: str
    timeout: float


@dataclass(frozen=True)
class Listings:
    """The raw listings one discovery fetched, by name (each fetched at most once)."""

    items: Mapping[str, list[Any]] = field(default_factory=dict)

    def get(self, name: str) -> list[Any]:
        return list(self.items.get(name, ()))


# ---------------------------------------------------------------------- protocols


class Client(Protocol):
    """A cloud's transport, as the dispatcher needs it."""

    target: Target

    def request_count(self) -> int:
        """Cloud API requests made so far (every HTTP request)."""
        ...

    def session(self, region: str) -> AbstractContextManager[None]:
        """Hold whatever one verb in ``region`` needs (a pooled connection, ...)."""
        ...

    def fetch(self, region: str, stack: str, names: frozenset[str]) -> Listings:
        """Fetch the named raw listings of ``region``, each once, following pagination;
        a cloud that can filter server side by the stack's tag or name prefix does."""
        ...


class Handler(Protocol[C]):
    """Everything cloudtmpl does with one kind on one cloud."""

    @property
    def kind(self) -> str:
        """The kind this handler is for."""
        ...

    @property
    def listings(self) -> tuple[str, ...]:
        """The raw listings ``to_live`` reads."""
        ...

    def to_live(self, client: C, region: str, stack: str,
                listings: Listings) -> list[LiveResource]:
        """The stack's resources of this kind among ``listings``.  No requests."""
        ...

    def create(self, client: C, region: str, want: Desired) -> LiveResource:
        """Create with the ownership tags and wait until ready."""
        ...

    def update(self, client: C, live: LiveResource, change: Change) -> LiveResource:
        """Change ``change.changed`` in place and return the resource as it is now."""
        ...

    def delete(self, client: C, live: LiveResource, timeout: float) -> None:
        """Delete and wait until gone; deleting what is already gone succeeds."""
        ...


# ---------------------------------------------------------------------- dispatcher


def refused_in_place(kind: str, changed: frozenset[str]) -> list[str]:
    """The names in ``changed`` the kind's schema does not let change in place."""
    rtype = resources.TYPES.get(kind)
    if rtype is None:
        return sorted(changed)
    return sorted(p for p in changed if rtype.forces_replacement(p))


class Dispatcher(Generic[ClientT]):
    """An adapter made of a client and a kind -> handler table.

    ``kinds`` is what the adapter provides (the table's keys); ``on_demand`` the
    kinds discovery lists only where the template or the state has one (each is
    another service to ask, and most stacks have none).
    """

    on_demand: frozenset[str] = frozenset()

    def __init__(self, client: ClientT, handlers: Mapping[str, Handler[ClientT]]) -> None:
        self.client = client
        self.target = client.target
        self.handlers = dict(handlers)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self.handlers)

    def request_count(self) -> int:
        return self.client.request_count()

    def _handler(self, kind: str, verb: str) -> Handler[ClientT]:
        handler = self.handlers.get(kind)
        if handler is None:
            raise CloudError(f"the {self.target.type} provider cannot {verb} {kind}",
                             permanent=True)
        return handler

    def discover(self, region: str, kinds: frozenset[str], stack: str) -> list[LiveResource]:
        chosen = [self.handlers[k] for k in sorted(kinds) if k in self.handlers]
        names = frozenset(n for h in chosen for n in h.listings)
        if not names:
            return []
        listings = self.client.fetch(region, stack, names)
        out: list[LiveResource] = []
        for handler in chosen:
            out.extend(handler.to_live(self.client, region, stack, listings))
        return out

    def create(self, region: str, kind: str, *, stack: str, address: str, name: str,
               properties: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        handler = self._handler(kind, "create")
        want = Desired(stack, address, name, properties, spec_hash, timeout)
        with self.client.session(region):
            return handler.create(self.client, region, want)

    def update(self, live: LiveResource, properties: Mapping[str, Any],
               changed: frozenset[str], *, stack: str, spec_hash: str,
               timeout: float) -> LiveResource:
        handler = self._handler(live.kind, "update")
        refused = refused_in_place(live.kind, changed)
        if refused:
            raise CloudError(f"{live.kind} {live.address}: {', '.join(refused)} cannot change "
                             "in place; the resource must be replaced", permanent=True)
        change = Change(properties, frozenset(changed), stack, spec_hash, timeout)
        with self.client.session(live.placement.region):
            return handler.update(self.client, live, change)

    def delete(self, live: LiveResource, *, timeout: float) -> None:
        handler = self._handler(live.kind, "delete")
        with self.client.session(live.placement.region):
            handler.delete(self.client, live, timeout)


# ---------------------------------------------------------------------- plumbing


def call(fn: Callable[[], T], translate: Callable[[Exception], CloudError],
         retrier: Retrier | None = None) -> T:
    """``fn()``, retried by ``retrier`` (None: called once); what still fails is a
    CloudError: one ``fn`` raised, or ``translate``'s reading of the cloud's exception."""
    try:
        return fn() if retrier is None else retrier.call(fn)
    except CloudError:
        raise
    except Exception as exc:
        raise translate(exc) from exc


def stack_items(items: Iterable[T],
                address_of: Callable[[T], str | None]) -> Iterator[tuple[str, T]]:
    """(address, item) for each of ``items`` that is the stack's: ``address_of`` gives
    an item's address in the stack, None for an item that is not the stack's."""
    for item in items:
        address = address_of(item)
        if address is not None:
            yield address, item


def tagged_address(tags: Mapping[str, Any], stack: str, name: str) -> str | None:
    """The address of an object whose tags (or metadata) say it is ``stack``'s: its
    ``cloudtmpl:resource``, else the address its ``name`` gives (None: not the stack's)."""
    if tags.get(TAG_STACK) != stack:
        return None
    return tags.get(TAG_RESOURCE) or address_from_name(stack, name)


class NothingInPlace:
    """For the handler of a kind nothing about changes in place, on a cloud that keeps
    no spec to move: ``update`` (of nothing else: the adapter let no other change
    through) returns the resource as it is, without a request."""

    def update(self, client: Any, live: LiveResource, change: Change) -> LiveResource:
        return live


def create_or_adopt(post: Callable[[], T], lookup: Callable[[], T | None],
                    call: Callable[[Callable[[], T]], T]) -> T:
    """A create that may be retried by ``call``: after an ambiguous failure (the
    request may have taken effect), look for what the first attempt made before
    posting again."""
    attempts = 0

    def go() -> T:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            found = lookup()
            if found is not None:
                return found
        return post()

    return call(go)


def require(value: T | None, live: LiveResource) -> T:
    """``value``, or a permanent CloudError saying ``live`` no longer exists."""
    if value is None:
        raise CloudError(f"{live.kind} {live.address} ({live.physical_id}) no longer exists "
                         f"in {live.placement.region}", permanent=True)
    return value


def user_metadata(meta: Mapping[str, Any]) -> dict[str, str]:
    """The user's part of a resource's tags/metadata (cloudtmpl's own keys left out)."""
    return {str(k): str(v) for k, v in meta.items() if not str(k).startswith(RESERVED_PREFIX)}


def reserved_key(key: str) -> str | None:
    """Why ``key`` may not be a user's metadata key, as the end of the sentence
    "metadata key 'KEY' ..." (None: it may)."""
    if key.startswith(RESERVED_PREFIX):
        return "is reserved (cloudtmpl:* keys are managed by cloudtmpl)"
    return None


def metadata(properties: Mapping[str, Any],
             refuse: Callable[[str], str | None] = reserved_key) -> dict[str, str]:
    """The ``metadata`` property as strings.  A key ``refuse`` has a complaint about
    (by default cloudtmpl's own ``cloudtmpl:*``; a cloud adds its own) is refused."""
    raw = properties.get("metadata") or {}
    if not isinstance(raw, Mapping):
        raise CloudError("metadata must be a map of strings", permanent=True)
    out: dict[str, str] = {}
    for key, value in raw.items():
        why = refuse(str(key))
        if why is not None:
            raise CloudError(f"metadata key {str(key)!r} {why}", permanent=True)
        out[str(key)] = "" if value is None else str(value)
    return out


#: The keys of a load balancer's ``health_check`` (as AWS's classic ELB names them).
HEALTH_KEYS = ("target", "interval", "timeout", "healthy_threshold", "unhealthy_threshold")


def health_check(value: Any) -> Mapping[str, Any] | None:
    """A load balancer's ``health_check`` property, checked alike on every cloud: None
    when not given; else a mapping with a target and no key beyond :data:`HEALTH_KEYS`."""
    if not value:
        return None
    if not isinstance(value, Mapping) or not value.get("target"):
        raise CloudError("health_check needs a target, e.g. {target: 'HTTP:80/'}",
                         permanent=True)
    unknown = sorted(set(value) - set(HEALTH_KEYS))
    if unknown:
        raise CloudError(f"health_check: unknown keys {', '.join(unknown)} (it takes "
                         f"{', '.join(HEALTH_KEYS)})", permanent=True)
    return value


def server_group_policy(properties: Mapping[str, Any]) -> str:
    """The one policy of a server group's ``policies`` (Heat's list of one)."""
    raw = properties.get("policies") or ["anti-affinity"]
    chosen = [str(p) for p in raw] if isinstance(raw, list) else [str(raw)]
    if len(chosen) != 1 or chosen[0] not in resources.SERVER_GROUP_POLICIES:
        raise CloudError(f"policies must be a list of one of "
                         f"{', '.join(resources.SERVER_GROUP_POLICIES)} (got {raw!r})",
                         permanent=True)
    return chosen[0]


# ---------------------------------------------------------------------- kinds every cloud has


def public_key(want: Desired) -> str:
    """A key pair's ``public_key``, which a create needs."""
    key = str(want.properties.get("public_key") or "").strip()
    if not key:
        raise CloudError(f"key pair {want.name}: public_key is required (cloudtmpl generates "
                         "one when the template gives none)", permanent=True)
    return key


def same_public_key(found: str | None, key: str) -> bool:
    """Whether an existing key pair's public key ``found`` is ``key`` (type and data; the
    comment aside): a key pair of that name from an earlier, retried or crashed attempt."""
    return (found or "").split()[:2] == key.split()[:2]


def key_pair_live(placement: Placement, address: str, name: str, fingerprint: str | None,
                  public_key: str | None, spec_hash: str | None = None) -> LiveResource:
    """A key pair as a live resource (physical id: its name)."""
    attributes: dict[str, Any] = {"name": name, "fingerprint": fingerprint}
    if public_key:
        attributes["public_key"] = public_key
    return LiveResource(address=address, kind=KEYPAIR, physical_id=name, placement=placement,
                        name=name, properties={}, attributes=attributes, spec_hash=spec_hash,
                        status="available")


def snapshot_marks(stack: str, volume: LiveResource) -> dict[str, str]:
    """The tags (metadata) of the snapshot of ``volume`` taken before it is deleted
    (deletion_policy Snapshot): never a resource of the stack, found again by them."""
    return {TAG_STACK: stack, TAG_RESOURCE: volume.address, TAG_SNAPSHOT_OF: volume.physical_id}


def snapshot_description(stack: str, volume: LiveResource) -> str:
    """The description of that snapshot, where the cloud keeps one."""
    return (f"cloudtmpl: volume {volume.physical_id} "
            f"({physical_name(stack, volume.address)}) before it was deleted "
            "(deletion_policy Snapshot)")


def attachment_ends(properties: Mapping[str, Any]) -> tuple[str, str]:
    """(volume id, server id): what a volume attachment joins; a create needs both."""
    volume_id = str(properties.get("volume_id") or "")
    server_id = str(properties.get("instance_uuid") or "")
    if not volume_id or not server_id:
        raise CloudError("a volume attachment needs volume_id and instance_uuid",
                         permanent=True)
    return volume_id, server_id


def attachment_of(live: LiveResource) -> tuple[str, str]:
    """(volume id, server id) of an attachment's physical id (:func:`attachment_live`)."""
    volume_id, _, server_id = live.physical_id.partition(":")
    return volume_id, server_id


def attachment_live(placement: Placement, address: str, volume_id: str, server_id: str, *,
                    spec_hash: str | None, status: str,
                    more: Mapping[str, Any] | None = None,
                    attributes: Mapping[str, Any] | None = None) -> LiveResource:
    """A volume attachment as a live resource: physical id ``"{volume}:{server}"``, the
    properties ``instance_uuid`` and ``volume_id`` (and ``more`` that the cloud reports)."""
    return LiveResource(address=address, kind=ATTACHMENT,
                        physical_id=f"{volume_id}:{server_id}", placement=placement,
                        name=address,
                        properties={"instance_uuid": server_id, "volume_id": volume_id,
                                    **(more or {})},
                        attributes=dict(attributes or {}), spec_hash=spec_hash, status=status)
