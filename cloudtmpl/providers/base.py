"""The adapter contract every cloud family implements.

An adapter speaks libcloud inside and plain values (:class:`LiveResource`)
outside.  All methods are safe to call from several threads at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from cloudtmpl import network_kinds, resources, secret_kinds, service_kinds
from cloudtmpl.catalog import ImageFilter
from cloudtmpl.model import LiveResource, Target

# The kinds of the compute/network/block vocabulary, by name, for the adapters.
SERVER = resources.SERVER.kind
KEYPAIR = resources.KEYPAIR.kind
SERVER_GROUP = resources.SERVER_GROUP.kind
SECURITY_GROUP = resources.SECURITY_GROUP.kind
VOLUME = resources.VOLUME.kind
ATTACHMENT = resources.VOLUME_ATTACHMENT.kind
FLOATING_IP = resources.FLOATING_IP.kind
NETWORK = resources.NETWORK.kind
SUBNET = resources.SUBNET.kind
PORT = resources.PORT.kind
ROUTER = network_kinds.ROUTER.kind
ROUTER_INTERFACE = network_kinds.ROUTER_INTERFACE.kind
ROUTER_GATEWAY = network_kinds.ROUTER_GATEWAY.kind
ROUTE = network_kinds.ROUTE.kind
NAT_GATEWAY = network_kinds.NAT_GATEWAY.kind
FLOATING_IP_ASSOCIATION = network_kinds.FLOATING_IP_ASSOCIATION.kind
LOAD_BALANCER = service_kinds.LOAD_BALANCER.kind
LISTENER = service_kinds.LISTENER.kind
POOL = service_kinds.POOL.kind
POOL_MEMBER = service_kinds.POOL_MEMBER.kind
HEALTH_MONITOR = service_kinds.HEALTH_MONITOR.kind
SECRET = secret_kinds.SECRET.kind
KINDS = frozenset({SERVER, KEYPAIR, SECURITY_GROUP, VOLUME, ATTACHMENT, FLOATING_IP,
                   NETWORK, SUBNET, PORT})


class CloudError(Exception):
    """A cloud API call failed for good (after retries).

    ``message`` is the cloud's own message; ``permanent`` says whether retrying
    could help (quota exceeded, invalid image: no).
    """

    def __init__(self, message: str, *, permanent: bool = True, status: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status


class ResourceTimeout(CloudError):
    """A resource stayed in a transitional state past its timeout."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message, permanent=True, status=status)


@dataclass(frozen=True)
class Choice:
    """The answer to "does this flavor/image/network exist here, and as what?"."""

    canonical: str | None
    offered: tuple[str, ...] = ()


T = TypeVar("T")


def poll(timeout: float, what: str, fetch: Callable[[], tuple[bool, str, T]], *,
         clock: Callable[[], float], sleep: Callable[[float], None],
         first: float = 0.25, max_interval: float = 3.0) -> T:
    """Start + poll: call ``fetch`` until it says done, at a growing interval, or raise
    ResourceTimeout naming the live status once ``timeout`` seconds have passed."""
    deadline = clock() + max(0.0, timeout)
    interval = first
    while True:
        done, status, value = fetch()
        if done:
            return value
        remaining = deadline - clock()
        if remaining <= 0:
            raise ResourceTimeout(f"{what} is still {status or 'not ready'!s} after {timeout:g}s",
                                  status)
        sleep(min(interval, remaining))
        interval = min(interval * 1.6, max_interval)


class Adapter(Protocol):
    target: Target

    def discover(self, region: str, kinds: frozenset[str], stack: str) -> list[LiveResource]:
        """Every live resource of ``stack`` of the given kinds in ``region``.

        One listing per underlying API (following every pagination token), filtered
        by the stack's tags or deterministic name prefix.  Read-only.
        """
        ...

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
        """Create a resource with its ownership tags and wait until it is ready."""
        ...

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
        """Change ``changed`` properties in place (all are update_allowed)."""
        ...

    def delete(self, live: LiveResource, *, timeout: float) -> None:
        """Delete and wait until gone; deleting something already gone succeeds."""
        ...

    def lookup_choice(self, region: str, what: str, value: str) -> Choice:
        """A native ``flavor``, ``image`` or ``network`` in ``region``, in the cloud's own form.

        ``Choice.canonical`` is how discovery will report the value (an image id
        for an image named by name, ...), or None if it does not exist; then
        ``offered`` lists what the target has, for a diagnostic's hint.  Read-only.
        """
        ...

    def request_count(self) -> int:
        """Cloud API requests made so far through this adapter (every HTTP request)."""
        ...


class Snapshots(Protocol):
    """What an adapter that can snapshot volumes adds (deletion_policy Snapshot).

    The executor calls :meth:`snapshot_volume` and then ``delete`` in one delete step, so
    the step's journaled intent covers both; an adapter without it cannot delete a
    volume under Snapshot (the step fails and the volume is kept).
    """

    snapshot_kind: str  # what the cloud calls the copy, for messages ("EBS snapshot")
    # optional: ``snapshot_kinds``, kind → what the copy of another kind is called (an
    # adapter that also images servers: {SERVER: "Glance image"})

    def snapshot_volume(self, live: LiveResource, *, stack: str, timeout: float) -> str | None:
        """Snapshot the volume ``live`` before it is deleted; wait until complete.

        Named :func:`cloudtmpl.model.snapshot_name` and, where the cloud has tags or
        metadata, tagged ``cloudtmpl:stack``, ``cloudtmpl:resource`` and
        ``cloudtmpl:snapshot-of`` (the volume id); never discovered as a resource.
        A complete or still running snapshot of the same volume by this stack (a
        run killed between the snapshot and the delete) is reused, not taken again.
        Returns the snapshot's id, or None when the volume is already gone.  Raises
        CloudError (the cloud's message) when the snapshot fails: then the volume
        must not be deleted.
        """
        ...


class ImageFinder(Protocol):
    """What an adapter adds that can find a catalog's image by filter (AWS: by name
    pattern and owner, the newest match), as ``lookup_choice`` finds one by id or name."""

    def find_image(self, region: str, flt: ImageFilter) -> Choice:
        """The newest image in ``region`` that ``flt`` matches (canonical: its id), or
        Choice(None).  One request; read-only."""
        ...


def image_finder(adapter: object) -> ImageFinder | None:
    """``adapter`` as an :class:`ImageFinder`, or None when it cannot search images."""
    return cast(ImageFinder, adapter) if callable(getattr(adapter, "find_image", None)) \
        else None


def snapshots_of(adapter: object) -> Snapshots | None:
    """``adapter`` as a :class:`Snapshots`, or None when it cannot take snapshots."""
    return cast(Snapshots, adapter) if callable(getattr(adapter, "snapshot_volume", None)) \
        else None
