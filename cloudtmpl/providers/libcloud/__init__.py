"""Any libcloud compute driver (``type: libcloud`` targets) through libcloud's standard verbs.

Kinds: each target provides the subset its capabilities declare
(:func:`cloudtmpl.capabilities.of`), one handler each:

* ``Cloud::Compute::Server`` - :mod:`.compute` (nodes);
* ``Cloud::Compute::KeyPair`` - :mod:`.keys`;
* ``Cloud::Block::Volume``, ``Cloud::Block::VolumeAttachment`` - :mod:`.block`
  (attachments are records in the state store, :mod:`.records`).

Identity.  Every object is named deterministically ``<stack>.<address>`` (escaped on
drivers whose names forbid dots or capitals, :mod:`.names`).  Where the target has
``tags`` the ownership tags go into the create call itself, in the form the driver's
verb accepts: ``ex_metadata`` (a map), ``ex_tags`` / DigitalOcean's
``ex_create_attr.tags`` (strings ``cloudtmpl:stack:<stack>``, ...), ``ex_tag`` (one
string: the stack).  libcloud has no common verb to rewrite tags, so the spec hash is
not read back: plans compare with the last-applied spec recorded in the state, and
nothing changes in place.

The transport (driver, credentials, regions, counting, retries) is :mod:`.client`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import LiveResource, Target
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import ATTACHMENT, KEYPAIR, SERVER, VOLUME, Choice, CloudError
from cloudtmpl.providers.libcloud import block, compute, keys
from cloudtmpl.providers.libcloud.client import LibcloudClient, match
from cloudtmpl.providers.libcloud.names import escape_name, unescape_name

HANDLERS: dict[str, kit.Handler[LibcloudClient]] = {
    SERVER: compute.Server(),
    KEYPAIR: keys.KeyPair(),
    VOLUME: block.Volume(),
    ATTACHMENT: block.VolumeAttachment(),
}


class GenericAdapter(kit.Dispatcher[LibcloudClient]):
    """A ``type: libcloud`` target: the handlers of the kinds it declares."""

    snapshot_kind = "volume snapshot"

    def __init__(self, target: Target, **options: Any) -> None:
        """``options``: those of :class:`.client.LibcloudClient` (environ, sleep, clock,
        retry_policy, poll_max_interval, store: where attachment records are kept)."""
        client = LibcloudClient(target, **options)
        super().__init__(client, {k: h for k, h in HANDLERS.items() if k in client.kinds})

    def cloud_name(self, name: str) -> str:
        """The name an object gets on this cloud (``name`` is ``<stack>.<address>``)."""
        return self.client.cloud_name(name)

    def _handler(self, kind: str, verb: str) -> kit.Handler[LibcloudClient]:
        handler = self.handlers.get(kind)
        if handler is None:
            raise CloudError(f"{self.client.what()} cannot {verb} {kind}", permanent=True)
        return handler

    def update(self, live: LiveResource, properties: Mapping[str, object],
               changed: frozenset[str], *, stack: str, spec_hash: str,
               timeout: float) -> LiveResource:
        if changed:  # stricter than the schema: libcloud has no verb to change anything
            raise CloudError(
                f"{live.kind} {live.address}: {', '.join(sorted(changed))} cannot change in "
                f"place on {self.client.what()} (libcloud has no common verb for it); rename "
                "the resource in the template to replace it", permanent=True)
        return super().update(live, properties, changed, stack=stack, spec_hash=spec_hash,
                              timeout=timeout)

    def lookup_choice(self, region: str, what: str, value: str) -> Choice:
        """A size or image of the driver (by id or name; reported as its id), or a key
        pair (by name) where the driver has key pairs."""
        client = self.client
        if what == "flavor":
            sizes = client.sizes(region)
            found = match(sizes, value)
            return Choice(str(found.id) if found is not None else None,
                          tuple(sorted({str(s.id) for s in sizes})))
        if what == "image":
            images = client.images(region)
            found = match(images, value)
            offered = tuple(sorted({str(i.name or i.id) for i in images}))[:50]
            return Choice(str(found.id) if found is not None else None, offered)
        if what == "keypair" and KEYPAIR in client.kinds:
            pairs = sorted(str(kp.name) for kp in client.call(
                client.driver(region).list_key_pairs))
            return Choice(value) if value in pairs else Choice(None, tuple(pairs))
        return Choice(value)

    def snapshot_volume(self, live: LiveResource, *, stack: str, timeout: float) -> str | None:
        return block.snapshot_volume(self.client, live, stack, timeout)


__all__ = ["ATTACHMENT", "HANDLERS", "KEYPAIR", "SERVER", "VOLUME", "GenericAdapter",
           "escape_name", "unescape_name"]
