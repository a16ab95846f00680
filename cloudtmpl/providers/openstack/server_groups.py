"""``Cloud::Compute::ServerGroup``: a Nova server group (``/os-server-groups``).

Physical id: the group id (what a server's ``os:scheduler_hints`` ``group`` takes).
Nova's server groups have no metadata or description: a group is known as the
stack's by its name ``<stack>.<address>``, and there is no spec marker (``spec_hash``
None; the plan compares with the last-applied spec).  Names are not unique in Nova,
so a create retried after an ambiguous failure first looks for a group of that name.
``soft-affinity`` and ``soft-anti-affinity`` are sent at compute microversion 2.15
(the base microversion refuses them); nothing about a group changes in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import LiveResource, address_from_name
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import SERVER_GROUP
from cloudtmpl.providers.openstack.client import OpenStackClient

SOFT = {"OpenStack-API-Version": "compute 2.15"}


def _live(client: OpenStackClient, region: str, address: str,
          group: Mapping[str, Any]) -> LiveResource:
    name = str(group.get("name"))
    policies = [str(p) for p in group.get("policies") or
                ([group["policy"]] if group.get("policy") else [])]
    return LiveResource(address=address, kind=SERVER_GROUP, physical_id=str(group["id"]),
                        placement=client.placement(region), name=name,
                        properties={"policies": policies},
                        attributes={"name": name, "policies": policies,
                                    "members": list(group.get("members") or [])},
                        spec_hash=None, status="available")


class ServerGroupHandler:
    kind = SERVER_GROUP
    listings: tuple[str, ...] = ("server_groups",)

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [_live(client, region, address, group) for address, group in kit.stack_items(
            listings.get("server_groups"),
            lambda group: address_from_name(stack, str(group.get("name", ""))) or None)]

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        policy = kit.server_group_policy(want.properties)
        headers = SOFT if policy.startswith("soft-") else None

        def post() -> dict[str, Any]:
            obj = client.api(region, "compute", "/os-server-groups", method="POST",
                             body={"server_group": {"name": want.name, "policies": [policy]}},
                             retry=False, headers=headers) or {}
            return dict(obj["server_group"])

        def lookup() -> dict[str, Any] | None:
            return next((g for g in client.list_all(region, "compute", "/os-server-groups",
                                                    "server_groups")
                         if g.get("name") == want.name), None)

        return _live(client, region, want.address, client.create_or_adopt(post, lookup))

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        # nothing changes in place, nowhere to keep a spec
        group = kit.require(client.get(live.placement.region, "compute",
                                       f"/os-server-groups/{live.physical_id}",
                                       "server_group"), live)
        return _live(client, live.placement.region, live.address, group)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        client.delete_call(live.placement.region, "compute",
                           f"/os-server-groups/{live.physical_id}")
