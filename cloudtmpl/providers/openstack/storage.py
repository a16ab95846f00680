"""Buckets on OpenStack: Swift containers (transport: :mod:`.swift`).

Identity: physical id = the container name, deterministic ``<stack>.<address>``
(plus ``-<name_suffix>``), with the metadata ``X-Container-Meta-Cloudtmpl-Stack``,
``-Resource`` and ``-Spec`` (and ``-Force``) sent in the ``PUT`` that creates it
(atomic).  Discovery reads the client's listing ``containers``: one account listing
(every page, filtered by the name prefix ``<stack>.``) and one ``HEAD`` per container
of the stack.  A cloud without an object-store endpoint has no buckets: discovery
reports none there.

Swift metadata names are case-insensitive: ``metadata`` keys must be lower-case
letters, digits and ``-``.  ``versioning`` is Swift's ``X-Versions-Enabled``.
Deleting a container that holds objects is refused unless its ``force`` metadata
says true; then its objects are deleted first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from cloudtmpl.model import LiveResource, physical_name
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.openstack.client import OpenStackClient
from cloudtmpl.providers.openstack.swift import NoEndpoint, path_of

BUCKET = "Cloud::Storage::Bucket"
STORAGE_KINDS = frozenset({BUCKET})
_META = "x-container-meta-"
_STACK, _RESOURCE, _SPEC, _FORCE = ("cloudtmpl-stack", "cloudtmpl-resource", "cloudtmpl-spec",
                                    "cloudtmpl-force")
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def container_name(stack: str, address: str, suffix: Any = None) -> str:
    name = physical_name(stack, address)
    if suffix:
        name += "-" + re.sub(r"[^A-Za-z0-9_.-]", "-", str(suffix))
    return name


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes", "on")


def _swift_key(key: str) -> str | None:
    """Why ``key`` cannot be a Swift container's metadata name (None: it can)."""
    if not _KEY_RE.match(key) or key.startswith("cloudtmpl-"):
        return ("is not a Swift container metadata name (lower-case letters, digits and '-'; "
                "cloudtmpl-* is reserved)")
    return None


def _metadata(properties: Mapping[str, Any]) -> dict[str, str]:
    return kit.metadata(properties, _swift_key)


def _live(client: OpenStackClient, region: str, name: str,
          head: Mapping[str, str]) -> LiveResource:
    meta = {k[len(_META):]: v for k, v in head.items() if k.startswith(_META)}
    endpoint = client.swift.endpoint(region)
    url = f"{endpoint.rstrip('/')}/{quote(name, safe='')}" if endpoint else ""
    return LiveResource(
        address=meta.get(_RESOURCE) or name, kind=BUCKET, physical_id=name,
        placement=client.placement(region), name=name,
        properties={"versioning": _bool(head.get("x-versions-enabled")),
                    "metadata": {k: v for k, v in meta.items()
                                 if not k.startswith("cloudtmpl-")},
                    "force": _bool(meta.get(_FORCE))},
        attributes={"name": name, "url": url, "root_url": endpoint or "",
                    "domain_name": urlsplit(endpoint).hostname or "", "region": region,
                    "object_count": int(head.get("x-container-object-count") or 0),
                    "bytes_used": int(head.get("x-container-bytes-used") or 0)},
        spec_hash=meta.get(_SPEC) or None, status="available")


def _headers(stack: str, address: str, properties: Mapping[str, Any], spec: str,
             stale: Mapping[str, Any] | None = None) -> dict[str, str]:
    headers = {f"X-Container-Meta-{k}": v for k, v in _metadata(properties).items()}
    headers.update({
        "X-Container-Meta-Cloudtmpl-Stack": stack,
        "X-Container-Meta-Cloudtmpl-Resource": address,
        "X-Container-Meta-Cloudtmpl-Spec": spec,
        "X-Versions-Enabled": "true" if _bool(properties.get("versioning")) else "false",
    })
    if _bool(properties.get("force")):
        headers["X-Container-Meta-Cloudtmpl-Force"] = "true"
    else:
        headers["X-Remove-Container-Meta-Cloudtmpl-Force"] = "x"
    for key in stale or {}:
        if f"X-Container-Meta-{key}" not in headers:
            headers[f"X-Remove-Container-Meta-{key}"] = "x"
    return headers


def _now(client: OpenStackClient, region: str, name: str, address: str) -> LiveResource:
    head = client.swift.head(region, name)
    if head is None:
        raise CloudError(f"container {name} ({address}) vanished", permanent=False)
    return _live(client, region, name, head)


class BucketHandler:
    """``Cloud::Storage::Bucket``: a Swift container."""

    kind = BUCKET
    listings: tuple[str, ...] = ("containers",)

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [_live(client, region, name, head) for name, head in listings.get("containers")
                if head.get(_META + _STACK) == stack and head.get(_META + _RESOURCE)
                and not head.get(_META + "cloudtmpl-kind")]  # a wait handle's, condition's

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        name = container_name(want.stack, want.address, want.properties.get("name_suffix"))
        try:
            head = client.swift.head(region, name)
        except NoEndpoint:
            raise CloudError(f"target {client.target.name!r} has no object-store (Swift) "
                             f"endpoint in region {region}: it cannot hold buckets",
                             permanent=True) from None
        stale: Mapping[str, Any] = {}
        if head is not None:  # an earlier, interrupted create, or somebody else's
            owner = (head.get(_META + _STACK), head.get(_META + _RESOURCE))
            if owner not in ((want.stack, want.address), (None, None)):
                raise CloudError(f"container {name!r} exists and belongs to "
                                 f"{owner[0]}/{owner[1]}", permanent=True)
            stale = {k[len(_META):]: v for k, v in head.items() if k.startswith(_META)}
        client.swift.request(region, path_of(name), method="PUT",
                             headers=_headers(want.stack, want.address, want.properties,
                                              want.spec_hash, stale))
        return _now(client, region, name, want.address)

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        region = live.placement.region
        stale = live.properties.get("metadata") or {}
        client.swift.request(region, path_of(live.physical_id), method="POST",
                             headers=_headers(change.stack, live.address, change.properties,
                                              change.spec_hash, stale))
        return _now(client, region, live.physical_id, live.address)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        name = live.physical_id
        try:
            head = client.swift.head(region, name)
        except NoEndpoint:
            return
        if head is None:
            return
        if int(head.get("x-container-object-count") or 0) > 0:
            if not _bool(live.properties.get("force")):
                raise CloudError(
                    f"container {name} ({live.address}) is not empty: refusing to delete it "
                    "and its objects. Empty it, or set force: true on it (with "
                    "deletion_policy Delete) and apply before deleting it", permanent=True)
            for obj in client.swift.objects(region, name):
                client.swift.request(region, path_of(name, obj), method="DELETE", ok=(404,))
        status, _, _ = client.swift.request(region, path_of(name), method="DELETE",
                                            ok=(404, 409))
        if status == 409:
            raise CloudError(f"container {name} ({live.address}) is not empty (HTTP 409): "
                             "objects were added while it was being deleted", permanent=True)
