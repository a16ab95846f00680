"""``Cloud::Compute::KeyPair`` on AWS: an imported key pair; physical id: its name.

``ImportKeyPair`` is sent with the tags inside it; it has no idempotency token, so a
duplicate name with the same public key (an earlier, retried or crashed attempt) is
adopted.  Discovery: one ``DescribeKeyPairs`` by the name prefix ``"{stack}."``.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from typing import Any

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource, address_from_name
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.base import KEYPAIR, CloudError


def list_key_pairs(client: AwsClient, region: str, stack: str) -> list[Any]:
    """The listing ``key_pairs``: those named ``{stack}.*`` (key pairs have no tag filter
    of their own in every EC2-compatible cloud; names are unique)."""
    params = {"IncludePublicKey": "true", **ec2.filters({"key-name": f"{stack}.*"})}
    return ec2.items(client.ec2(region, "DescribeKeyPairs", params), "keySet/item")


def get_key_pair(client: AwsClient, region: str, name: str) -> ET.Element | None:
    try:
        obj = client.ec2(region, "DescribeKeyPairs",
                         {"KeyName.1": name, "IncludePublicKey": "true"})
    except CloudError as err:
        if ec2.has_code(err, "InvalidKeyPair.NotFound") or "does not exist" in err.message:
            return None
        raise
    for el in ec2.items(obj, "keySet/item"):
        if ec2.text(el, "keyName") == name:
            return el
    return None


def _live_of(client: AwsClient, region: str, address: str, el: ET.Element) -> LiveResource:
    return kit.key_pair_live(client.placement(region), address, ec2.text(el, "keyName") or "",
                             ec2.text(el, "keyFingerprint"), ec2.text(el, "publicKey"),
                             ec2.tags_of(el).get(TAG_SPEC))


def _address(el: ET.Element, stack: str) -> str | None:
    """A key pair is ``stack``'s by its name ``{stack}.*`` (not every EC2-compatible cloud
    tags key pairs), unless its tags name another stack; its resource tag, if any, is
    its address."""
    tags = ec2.tags_of(el)
    address = address_from_name(stack, ec2.text(el, "keyName") or "")
    if address is None or tags.get(TAG_STACK, stack) != stack:
        return None
    return tags.get(TAG_RESOURCE) or address


class KeyPair:
    kind = KEYPAIR
    listings = ("key_pairs",)

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [_live_of(client, region, address, el) for address, el
                in kit.stack_items(listings.get("key_pairs"), lambda el: _address(el, stack))]

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        name, public_key = want.name, kit.public_key(want)
        tags = ec2.identity_tags(name, want.stack, want.address, want.spec_hash)
        params = {"KeyName": name,
                  "PublicKeyMaterial": base64.b64encode(public_key.encode()).decode("ascii"),
                  **ec2.tag_spec("key-pair", tags)}
        try:
            obj = client.ec2(region, "ImportKeyPair", params)
        except CloudError as err:
            if not ec2.has_code(err, "InvalidKeyPair.Duplicate"):
                raise
            # Same name: ours from an earlier (retried or crashed) attempt?
            el = get_key_pair(client, region, name)
            if el is None or not kit.same_public_key(ec2.text(el, "publicKey"), public_key):
                raise
            return kit.key_pair_live(client.placement(region), want.address, name,
                                     ec2.text(el, "keyFingerprint"), public_key,
                                     ec2.tags_of(el).get(TAG_SPEC))
        return kit.key_pair_live(client.placement(region), want.address,
                                 ec2.text(obj, "keyName") or name,
                                 ec2.text(obj, "keyFingerprint"), public_key, want.spec_hash)

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        """Only the spec tag can change."""
        region = live.placement.region
        el = kit.require(get_key_pair(client, region, live.physical_id), live)
        key_id = ec2.text(el, "keyPairId")
        if key_id:
            client.create_tags(region, key_id, {TAG_SPEC: change.spec_hash})
            el = kit.require(get_key_pair(client, region, live.physical_id), live)
        return _live_of(client, region, live.address, el)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        try:
            client.ec2(live.placement.region, "DeleteKeyPair", {"KeyName": live.physical_id})
        except CloudError as err:
            if not ec2.has_code(err, "InvalidKeyPair.NotFound"):
                raise
