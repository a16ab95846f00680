"""``Cloud::Compute::ServerGroup`` on AWS: an EC2 placement group; physical id: its name
(what ``RunInstances`` takes as ``Placement.GroupName``).

Policies map onto strategies: ``affinity``/``soft-affinity`` → ``cluster`` (together),
``anti-affinity``/``soft-anti-affinity`` → ``spread`` (apart; EC2 has no soft form, so
it is the stricter one: at most seven running instances per zone).  The template's
policy is kept in the ``cloudtmpl:policies`` tag and reported back as it was given.

``CreatePlacementGroup`` takes the tags inside it and has no idempotency token: a
duplicate name that carries this stack's and resource's tags (an earlier, retried or
crashed attempt) is adopted.  Deleting waits while instances are still in it
(``InvalidPlacementGroup.InUse``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient, Listed
from cloudtmpl.providers.base import SERVER_GROUP, CloudError

TAG_POLICIES = "cloudtmpl:policies"
STRATEGIES = {"affinity": "cluster", "soft-affinity": "cluster",
              "anti-affinity": "spread", "soft-anti-affinity": "spread"}
_ITEMS = "placementGroupSet/item"


def list_placement_groups(client: AwsClient, region: str, stack: str) -> list[Any]:
    """The listing ``placement_groups``: the stack's, by its tag (one request)."""
    return ec2.items(client.ec2(region, "DescribePlacementGroups", ec2.stack_filter(stack)),
                     _ITEMS)


def _get(client: AwsClient, region: str, name: str) -> ET.Element | None:
    try:
        obj = client.ec2(region, "DescribePlacementGroups", {"GroupName.1": name})
    except CloudError as err:
        if ec2.has_code(err, "InvalidPlacementGroup.Unknown"):
            return None
        raise
    found = ec2.items(obj, _ITEMS)
    return found[0] if found else None


class ServerGroup(Listed):
    kind = SERVER_GROUP
    listings = ("placement_groups",)

    @staticmethod
    def live(client: AwsClient, region: str, address: str, el: ET.Element) -> LiveResource:
        tags = ec2.tags_of(el)
        name = ec2.text(el, "groupName") or ""
        policies = [tags[TAG_POLICIES]] if tags.get(TAG_POLICIES) else []
        return LiveResource(
            address=address, kind=SERVER_GROUP, physical_id=name,
            placement=client.placement(region), name=name,
            properties={"policies": policies} if policies else {},
            attributes={"name": name, "policies": policies,
                        "strategy": ec2.text(el, "strategy"), "id": ec2.text(el, "groupId")},
            spec_hash=tags.get(TAG_SPEC), status=ec2.text(el, "state") or "available")

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        policy = kit.server_group_policy(want.properties)
        tags = {**ec2.identity_tags(want.name, want.stack, want.address, want.spec_hash),
                TAG_POLICIES: policy}
        params = {"GroupName": want.name, "Strategy": STRATEGIES[policy],
                  **ec2.tag_spec("placement-group", tags)}
        try:
            client.ec2(region, "CreatePlacementGroup", params)
        except CloudError as err:
            if not ec2.has_code(err, "InvalidPlacementGroup.Duplicate"):
                raise
            el = _get(client, region, want.name)  # ours from an earlier attempt?
            mine = ec2.tags_of(el) if el is not None else {}
            if (el is None or mine.get(TAG_STACK) != want.stack
                    or mine.get(TAG_RESOURCE) != want.address
                    or ec2.text(el, "strategy") != STRATEGIES[policy]):
                raise
            if mine.get(TAG_SPEC) != want.spec_hash or mine.get(TAG_POLICIES) != policy:
                client.create_tags(region, ec2.text(el, "groupId") or "",
                                   {TAG_SPEC: want.spec_hash, TAG_POLICIES: policy})
        el = kit.require(_get(client, region, want.name), LiveResource(
            want.address, SERVER_GROUP, want.name, client.placement(region)))
        return self.live(client, region, want.address, el)

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        """Nothing changes in place: only the spec tag."""
        region = live.placement.region
        el = kit.require(_get(client, region, live.physical_id), live)
        client.create_tags(region, ec2.text(el, "groupId") or "", {TAG_SPEC: change.spec_hash})
        return self.live(client, region, live.address,
                     kit.require(_get(client, region, live.physical_id), live))

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region

        def attempt() -> tuple[bool, str, None]:
            try:
                client.ec2(region, "DeletePlacementGroup", {"GroupName": live.physical_id})
            except CloudError as err:
                if ec2.has_code(err, "InvalidPlacementGroup.Unknown"):
                    return True, "deleted", None
                if ec2.has_code(err, "InvalidPlacementGroup.InUse"):
                    return False, "in use (InvalidPlacementGroup.InUse)", None
                raise
            return True, "deleted", None

        client.poll(timeout, f"server group {live.name or live.address}", attempt)
