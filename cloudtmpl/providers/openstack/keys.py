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
    return kit.key_pair_live(client.placement(region), address, str(kp.get("name")),
                             kp.get("fingerprint"), kp.get("public_key"))


class KeyPairHandler:
    kind = KEYPAIR
    listings: tuple[str, ...] = ("keypairs",)

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        pairs = (item.get("keypair", item) for item in listings.get("keypairs"))
        return [key_pair_live(client, region, address, kp) for address, kp in kit.stack_items(
            pairs, lambda kp: address_from_name(stack, str(kp.get("name", ""))) or None)]

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        name, public_key = want.name, kit.public_key(want)
        try:
            obj = client.api(region, "compute", "/os-keypairs", method="POST",
                             body={"keypair": {"name": name, "public_key": public_key}}) or {}
        except CloudError as err:
            if status_of(err) != 409:
                raise
            # Same name: ours from an earlier (retried or crashed) attempt?
            kp = client.get(region, "compute", f"/os-keypairs/{name}", "keypair")
            if kp is None or not kit.same_public_key(str(kp.get("public_key") or ""),
                                                     public_key):
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
