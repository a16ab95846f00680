"""``Cloud::Compute::KeyPair`` on a libcloud target: ``list_key_pairs``/
``import_key_pair_from_string`` (or ``create_key_pair(name, public_key=…)``)/
``delete_key_pair``; physical id: the name.  Key pairs are global on these clouds:
they are reported in the target's default region only."""

from __future__ import annotations

from typing import Any

from cloudtmpl.libcloud_targets import driver_implements
from cloudtmpl.model import LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import KEYPAIR, CloudError
from cloudtmpl.providers.libcloud.client import LibcloudClient


def _live(client: LibcloudClient, region: str, address: str, kp: Any) -> LiveResource:
    return kit.key_pair_live(client.placement(region), address, str(kp.name), kp.fingerprint,
                             kp.public_key)


class KeyPair(kit.NothingInPlace):
    kind = KEYPAIR
    listings = ("key_pairs",)

    def to_live(self, client: LibcloudClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [_live(client, region, address, kp) for address, kp in kit.stack_items(
            listings.get("key_pairs"), lambda kp: client.address(stack, kp.name))]

    def create(self, client: LibcloudClient, region: str, want: kit.Desired) -> LiveResource:
        public_key = kit.public_key(want)
        name = client.cloud_name(want.name)
        existing = client.find_key_pair(region, name)
        if existing is not None:  # ours from an earlier (retried or crashed) attempt?
            if not kit.same_public_key(existing.public_key, public_key):
                raise CloudError(f"a different key pair named {name!r} exists on "
                                 f"{client.what()}", permanent=True)
            return _live(client, region, want.address, existing)
        driver = client.driver(region)
        if driver_implements(client.driver_class(), "import_key_pair_from_string"):
            kp = client.call(lambda: driver.import_key_pair_from_string(name, public_key))
        else:
            kp = client.call(lambda: driver.create_key_pair(name, public_key=public_key))
        if kp is None or not getattr(kp, "name", None):
            kp = client.find_key_pair(region, name)
        if kp is None:
            raise CloudError(f"key pair {name} vanished after its creation", permanent=True)
        if not kp.public_key:
            kp.public_key = public_key
        return _live(client, region, want.address, kp)

    def delete(self, client: LibcloudClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        kp = client.find_key_pair(region, live.physical_id)
        if kp is not None:
            client.call(lambda: client.driver(region).delete_key_pair(kp))
