"""``Cloud::Compute::KeyPair``: a Nova key pair.

Physical id: the key name ``<stack>.<address>`` (Nova key names are unique per
user: no duplicate possible).  Nova keeps no description, so there is no spec
marker (``spec_hash`` None).  The ``public_key`` is not reported (compared with
the last-applied spec instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import LiveResource, address_from_name
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import KEYPAIR, CloudError
from cloudtmpl.providers.openstack.client import OpenStackClient, status_of


def key_pair_live(client: OpenStackClient, region: str, address: str,
                  kp: Mapping[str, Any]) -> LiveResource:
    name = str(kp.get("name"))
    attributes: dict[str, Any] = {"name": name, "fingerprint": kp.get("fingerprint")}
    if kp.get("public_key"):
        attributes["public_key"] = kp["public_key"]
    return LiveResource(address=address, kind=KEYPAIR, physical_id=name,
                        placement=client.placement(region), name=name, properties={},
                        attributes=attributes, spec_hash=None, status="available")


class KeyPairHandler:
    kind = KEYPAIR
    listings: tuple[str, ...] = ("keypairs",)

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        pairs = (item.get("keypair", item) for item in listings.get("keypairs"))
        return [key_pair_live(client, region, address, kp) for address, kp in kit.stack_items(
            pairs, lambda kp: address_from_name(stack, str(kp.get("name", ""))) or None)]

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        name = want.name
        public_key = str(want.properties.get("public_key") or "").strip()
        if not public_key:
            raise CloudError(f"key pair {name}: public_key is required (cloudtmpl generates "
                             "one when the template gives none)", permanent=True)
        try:
            obj = client.api(region, "compute", "/os-keypairs", method="POST",
                             body={"keypair": {"name": name, "public_key": public_key}}) or {}
        except CloudError as err:
            if status_of(err) != 409:
                raise
            # Same name: ours from an earlier (retried or crashed) attempt?
            kp = client.get(region, "compute", f"/os-keypairs/{name}", "keypair")
            existing = str((kp or {}).get("public_key") or "").split()[:2]
            if kp is None or existing != public_key.split()[:2]:
                raise
            return key_pair_live(client, region, want.address, kp)
        kp = dict(obj.get("keypair") or {})
        kp.setdefault("name", name)
        kp.setdefault("public_key", public_key)
        return key_pair_live(client, region, want.address, kp)

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        # nothing to change, nowhere to keep a spec
        kp = kit.require(client.get(live.placement.region, "compute",
                                    f"/os-keypairs/{live.physical_id}", "keypair"), live)
        return key_pair_live(client, live.placement.region, live.address, kp)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        client.delete_call(live.placement.region, "compute", f"/os-keypairs/{live.physical_id}")
