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
    attributes: dict[str, Any] = {"name": kp.name, "fingerprint": kp.fingerprint}
    if kp.public_key:
        attributes["public_key"] = kp.public_key
    return LiveResource(address=address, kind=KEYPAIR, physical_id=str(kp.name),
                        placement=client.placement(region), name=str(kp.name),
                        properties={}, attributes=attributes, status="available")


class KeyPair:
    kind = KEYPAIR
    listings = ("key_pairs",)

    def to_live(self, client: LibcloudClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        out = []
        for kp in listings.get("key_pairs"):
            address = client.address(stack, kp.name)
            if address is not None:
                out.append(_live(client, region, address, kp))
        return out

    def create(self, client: LibcloudClient, region: str, want: kit.Desired) -> LiveResource:
        public_key = str(want.properties.get("public_key") or "").strip()
        if not public_key:
            raise CloudError(f"key pair {want.name}: public_key is required (cloudtmpl "
                             "generates one when the template gives none)", permanent=True)
        name = client.cloud_name(want.name)
        existing = client.find_key_pair(region, name)
        if existing is not None:  # ours from an earlier (retried or crashed) attempt?
            if (existing.public_key or "").split()[:2] != public_key.split()[:2]:
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

    def update(self, client: LibcloudClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        return live

    def delete(self, client: LibcloudClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        kp = client.find_key_pair(region, live.physical_id)
        if kp is not None:
            client.call(lambda: client.driver(region).delete_key_pair(kp))
