"""``Cloud::Compute::Server`` on a libcloud target: ``list_nodes``/``create_node``/
``destroy_node``; physical id: the node id.

What libcloud reports is not uniform across drivers, so a server's live properties
are left empty: the plan compares with the last-applied spec in the state.  Nothing
changes in place (libcloud has no common verb for it).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from libcloud.compute.base import NodeAuthSSHKey, NodeImage, NodeSize

from cloudtmpl.model import LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import SERVER, CloudError
from cloudtmpl.providers.libcloud import names
from cloudtmpl.providers.libcloud.client import LibcloudClient, match

GONE_STATES = frozenset({"terminated"})
_UNSUPPORTED = ("security_groups", "availability_zone", "networks")


def _live(client: LibcloudClient, region: str, address: str, node: Any) -> LiveResource:
    private_ip = node.private_ips[0] if node.private_ips else None
    public_ip = node.public_ips[0] if node.public_ips else None
    status = names.state(node)
    return LiveResource(
        address=address,
        kind=SERVER,
        physical_id=str(node.id),
        placement=client.placement(region),
        name=str(node.name),
        properties={},
        attributes={"first_address": private_ip or public_ip, "private_ip": private_ip,
                    "public_ip": public_ip, "name": str(node.name), "status": status,
                    "networks": {}, "addresses": {}, "accessIPv4": public_ip or "",
                    "accessIPv6": "", "show": {
                        "id": str(node.id), "name": str(node.name), "state": status,
                        "private_ips": list(node.private_ips or []),
                        "public_ips": list(node.public_ips or [])}},
        status=status,
    )


def _key_kwargs(client: LibcloudClient, region: str, taken: Mapping[str, Any], key_name: str,
                kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """How this driver's ``create_node`` takes an SSH key, for the key pair ``key_name``."""
    kp = client.find_key_pair(region, key_name)
    if kp is None:
        raise CloudError(f"key pair {key_name!r} does not exist on {client.what()}",
                         permanent=True)
    if "ex_create_attr" in taken:  # DigitalOcean: fingerprints
        attr = dict(kwargs.get("ex_create_attr") or {})
        attr["ssh_keys"] = [kp.fingerprint]
        return {"ex_create_attr": attr}
    if "ex_authorized_keys" in taken:
        return {"ex_authorized_keys": [kp.public_key]}
    if "ex_ssh_key_ids" in taken:
        return {"ex_ssh_key_ids": [str((kp.extra or {}).get("id") or kp.fingerprint)]}
    if "ex_keyname" in taken:
        return {"ex_keyname": kp.name}
    if "auth" in taken and kp.public_key:
        return {"auth": NodeAuthSSHKey(kp.public_key)}
    raise CloudError(f"{client.what()}: the driver cannot put a key pair on a server",
                     permanent=True)


def _wait_node(client: LibcloudClient, region: str, node_id: str, timeout: float,
               what: str) -> Any:
    def fetch() -> tuple[bool, str, Any]:
        node = client.find_node(region, node_id)
        if node is None:
            return False, "pending", None
        state = names.state(node)
        if state in ("error", "terminated"):
            raise CloudError(f"{what} went to {state}", permanent=True, status=state)
        return state == "running", state, node

    return client.poll(timeout, what, fetch)


class Server(kit.NothingInPlace):
    kind = SERVER
    listings = ("nodes",)

    def to_live(self, client: LibcloudClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [_live(client, region, address, node)
                for address, node in client.stack_items(listings.get("nodes"), stack, region)
                if names.state(node) not in GONE_STATES]

    def create(self, client: LibcloudClient, region: str, want: kit.Desired) -> LiveResource:
        props, address = want.properties, want.address
        for prop in _UNSUPPORTED:
            if props.get(prop):
                raise CloudError(f"server {address}: {prop} is not supported on "
                                 f"{client.what()}", permanent=True)
        image, flavor = str(props.get("image") or ""), str(props.get("flavor") or "")
        if not image or not flavor:
            raise CloudError("a server needs image and flavor", permanent=True)
        driver = client.driver(region)
        taken = names.params(driver.create_node)
        cloud_name = client.cloud_name(want.name)
        size = match(client.sizes(region), flavor) or NodeSize(
            flavor, flavor, 0, 0, None, 0.0, driver)
        img = match(client.images(region), image) or NodeImage(image, image, driver)
        kwargs: dict[str, Any] = {"name": cloud_name, "size": size, "image": img}
        if client.has_regions and "location" in taken:
            kwargs["location"] = client.require_location(region)
        metadata = props.get("metadata") or {}
        kwargs.update(client.tag_kwargs(driver.create_node, names.ownership(
            want.stack, address, want.spec_hash, metadata)))
        if metadata and not client.tags:
            raise CloudError(f"server {address}: metadata needs tags, which {client.what()} "
                             "does not have (capabilities.tags)", permanent=True)
        if props.get("user_data"):
            arg = next((p for p in ("ex_userdata", "ex_user_data") if p in taken), None)
            if arg is None:
                raise CloudError(f"server {address}: {client.what()} cannot pass user_data",
                                 permanent=True)
            kwargs[arg] = str(props["user_data"])
        if props.get("key_name"):
            kwargs.update(_key_kwargs(client, region, taken, str(props["key_name"]), kwargs))
        if "root_pass" in taken:  # Linode: required with an image; never kept (use SSH keys)
            kwargs["root_pass"] = secrets.token_urlsafe(32) + "aA1-"

        def lookup() -> Any | None:  # an ambiguous failure: did the first try create it?
            return next((n for n in client.driver(region).list_nodes()
                         if n.name == cloud_name), None)

        node = kit.create_or_adopt(lambda: client.driver(region).create_node(**kwargs),
                                   lookup, client.call)
        node = _wait_node(client, region, str(node.id), want.timeout,
                          f"server {cloud_name} ({node.id})")
        return _live(client, region, address, node)

    def delete(self, client: LibcloudClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        node = client.find_node(region, live.physical_id)
        if node is None:
            return
        client.call(lambda: client.driver(region).destroy_node(node))

        def gone() -> tuple[bool, str, None]:
            found = client.find_node(region, live.physical_id)
            state = "terminated" if found is None else names.state(found)
            return state in GONE_STATES, state, None

        client.poll(timeout, f"{live.kind} {live.name or live.address} ({live.physical_id})",
                    gone)
