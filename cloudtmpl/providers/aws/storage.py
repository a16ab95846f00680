"""``Cloud::Storage::Bucket`` on AWS: an S3 bucket (raw requests on libcloud's connection).

Physical id: the bucket name, deterministic ``<stack>-<address>[-<name_suffix>]`` in
S3's alphabet (63 characters at most, a hash keeps long names unique) plus tags
``cloudtmpl:stack``/``resource``/``region``/``spec`` (and ``cloudtmpl:force``).
CreateBucket takes no tags: a crash between the two calls leaves an untagged bucket
that discovery does not report, and the next create adopts it
(``BucketAlreadyOwnedByYou``).

Discovery: ``ListBuckets`` + ``GetBucketTagging`` and ``GetBucketVersioning`` per
bucket with the stack's name prefix.  Deleting a non-empty bucket is refused unless
its live ``force`` tag says true (``force: true`` in the template when it was last
applied); then every object version is deleted first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.aws.svcxml import TAG_REGION, as_bool, find_all, hashed, live, txt, x
from cloudtmpl.providers.base import CloudError

BUCKET = "Cloud::Storage::Bucket"
TAG_FORCE = "cloudtmpl:force"
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def bucket_name(stack: str, address: str, suffix: str | None = None) -> str:
    """``<stack>-<address>[-<suffix>]`` in S3's alphabet (3-63 of ``a-z0-9-``)."""
    def clean(text: str) -> str:
        return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", text.lower())).strip("-")

    parts = [clean(stack), clean(address)] + ([clean(suffix)] if suffix else [])
    return hashed("-".join(p for p in parts if p), 63)


def bucket_prefix(stack: str) -> str:
    return bucket_name(stack, "x")[:-1]


def _bucket_tags(client: AwsClient, region: str, name: str) -> dict[str, str] | None:
    status, body, _ = client.request("s3", region, f"/{name}", params={"tagging": ""},
                                     ok=("NoSuchTagSet", "NoSuchBucket"))
    if status >= 400:
        return None
    return {(txt(t, "Key") or ""): (txt(t, "Value") or "") for t in find_all(body, "TagSet/Tag")}


def _bucket_region(client: AwsClient, region: str, name: str) -> str:
    _, body, _ = client.request("s3", region, f"/{name}", params={"location": ""})
    text = (body.text or "").strip() if body is not None else ""
    return text or "us-east-1"


def _versioning(client: AwsClient, region: str, name: str) -> bool:
    _, body, _ = client.request("s3", region, f"/{name}", params={"versioning": ""})
    return txt(body, "Status") == "Enabled" or (
        body is not None and body.tag.endswith("Status") and body.text == "Enabled")


def list_buckets(client: AwsClient, region: str, stack: str) -> list[Any]:
    """The listing ``buckets``: (name, tags, versioning) of the stack's buckets in
    ``region`` (tagged: an untagged one is not yet the stack's, create adopts it)."""
    _, body, _ = client.request("s3", region, "/")
    prefix = bucket_prefix(stack)
    out = []
    for el in find_all(body, "Buckets/Bucket"):
        name = txt(el, "Name") or ""
        if not name.startswith(prefix):
            continue
        tags = _bucket_tags(client, region, name)
        if not tags or tags.get(TAG_STACK) != stack or not tags.get(TAG_RESOURCE):
            continue  # not ours, or created but not yet tagged (create adopts it)
        where = tags.get(TAG_REGION) or _bucket_region(client, region, name)
        if where != region:
            continue
        out.append((name, tags, _versioning(client, region, name)))
    return out


def _object_versions(client: AwsClient, region: str, name: str,
                     limit: int | None = None) -> list[tuple[str, str | None]]:
    """(key, version id) of every object version and delete marker."""
    out: list[tuple[str, str | None]] = []
    params = {"versions": "", "max-keys": str(limit or 1000)}
    while True:
        status, body, _ = client.request("s3", region, f"/{name}", params=params,
                                         ok=("NoSuchBucket",))
        if status >= 400:
            return out
        for el in find_all(body, "Version") + find_all(body, "DeleteMarker"):
            # "null" is the version of objects written while versioning was off:
            # deleting it needs versionId=null, else S3 only adds a delete marker
            out.append((txt(el, "Key") or "", txt(el, "VersionId")))
        if limit or txt(body, "IsTruncated") != "true":
            return out
        params = {"versions": "", "max-keys": "1000",
                  "key-marker": txt(body, "NextKeyMarker") or "",
                  "version-id-marker": txt(body, "NextVersionIdMarker") or ""}


class Bucket:
    kind = BUCKET
    listings = ("buckets",)

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [self.live(client, region, name, tags, versioning)
                for name, tags, versioning in listings.get("buckets")
                if not tags.get("cloudtmpl:kind")]  # a wait condition handle's

    @staticmethod
    def _url(client: AwsClient, region: str, name: str) -> tuple[str, str]:
        endpoint = client.endpoint_for("s3")
        if endpoint is not None:
            host, port, secure = endpoint
            scheme = "https" if secure else "http"
            return f"{scheme}://{host}:{port}/{name}", host
        host = f"s3.{region}.amazonaws.com"
        return f"https://{name}.{host}", f"{name}.{host}"

    @staticmethod
    def _root(client: AwsClient, region: str) -> str:
        """The endpoint the bucket is under (Swift's RootURL on S3)."""
        endpoint = client.endpoint_for("s3")
        if endpoint is not None:
            host, port, secure = endpoint
            return f"{'https' if secure else 'http'}://{host}:{port}"
        return f"https://s3.{region}.amazonaws.com"

    def live(self, client: AwsClient, region: str, name: str, tags: Mapping[str, str],
             versioning: bool) -> LiveResource:
        url, host = self._url(client, region, name)
        return live(client.placement(region), BUCKET, tags.get(TAG_RESOURCE) or name, name, name,
                    {"versioning": versioning, "metadata": ec2.user_tags(tags),
                     "force": as_bool(tags.get(TAG_FORCE))},
                    {"name": name, "url": url, "root_url": self._root(client, region),
                     "domain_name": host, "region": region,
                     # S3 counts a bucket's objects only by listing them: not read here
                     "object_count": None, "bytes_used": None},
                    tags.get(TAG_SPEC))

    @staticmethod
    def _put_tags(client: AwsClient, region: str, name: str, tags: Mapping[str, str]) -> None:
        body = ('<Tagging xmlns="' + S3_NS + '"><TagSet>'
                + "".join(f"<Tag><Key>{x(k)}</Key><Value>{x(v)}</Value></Tag>"
                          for k, v in tags.items()) + "</TagSet></Tagging>")
        client.request("s3", region, f"/{name}", method="PUT", params={"tagging": ""},
                       data=body)

    @staticmethod
    def _put_versioning(client: AwsClient, region: str, name: str, enabled: bool) -> None:
        body = (f'<VersioningConfiguration xmlns="{S3_NS}"><Status>'
                f'{"Enabled" if enabled else "Suspended"}</Status></VersioningConfiguration>')
        client.request("s3", region, f"/{name}", method="PUT", params={"versioning": ""},
                       data=body)

    @staticmethod
    def _all_tags(stack: str, address: str, region: str, properties: Mapping[str, Any],
                  spec: str) -> dict[str, str]:
        tags = {TAG_STACK: stack, TAG_RESOURCE: address, TAG_REGION: region,
                **ec2.metadata(properties)}
        if as_bool(properties.get("force")):
            tags[TAG_FORCE] = "true"
        tags[TAG_SPEC] = spec
        if len(tags) > 50:
            raise CloudError(f"bucket {address}: S3 keeps 50 tags; metadata has too many",
                             permanent=True)
        return tags

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        stack, address, properties = want.stack, want.address, want.properties
        name = bucket_name(stack, address, properties.get("name_suffix"))
        body = None
        if region != "us-east-1":
            body = (f'<CreateBucketConfiguration xmlns="{S3_NS}"><LocationConstraint>'
                    f"{x(region)}</LocationConstraint></CreateBucketConfiguration>")
        _, _, code = client.request("s3", region, f"/{name}", method="PUT", data=body,
                                    ok=("BucketAlreadyOwnedByYou", "BucketAlreadyExists"))
        if code == "BucketAlreadyExists":
            raise CloudError(f"bucket name {name!r} is taken (S3 bucket names are global): "
                             "set name_suffix on the bucket to make it unique",
                             permanent=True)
        if code:  # ours from an earlier, interrupted create: adopt it if nobody else has
            tags = _bucket_tags(client, region, name) or {}
            if tags.get(TAG_STACK, stack) != stack or tags.get(TAG_RESOURCE, address) != address:
                raise CloudError(f"bucket {name!r} exists and belongs to "
                                 f"{tags.get(TAG_STACK)}/{tags.get(TAG_RESOURCE)}",
                                 permanent=True)
        versioning = as_bool(properties.get("versioning"))
        if versioning:
            self._put_versioning(client, region, name, True)
        tags = self._all_tags(stack, address, region, properties, want.spec_hash)
        self._put_tags(client, region, name, tags)
        return self.live(client, region, name, tags, versioning)

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        region = live.placement.region
        name = live.physical_id
        if "versioning" in change.changed:
            self._put_versioning(client, region, name,
                                 as_bool(change.properties.get("versioning")))
        tags = self._all_tags(change.stack, live.address, region, change.properties,
                              change.spec_hash)
        self._put_tags(client, region, name, tags)
        return self.live(client, region, name, tags, _versioning(client, region, name))

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        name = live.physical_id
        if _object_versions(client, region, name, limit=1):
            if not as_bool(live.properties.get("force")):
                raise CloudError(
                    f"bucket {name} ({live.address}) is not empty: refusing to delete it and "
                    "its objects. Empty it, or set force: true on it (with deletion_policy "
                    "Delete) and apply before deleting it", permanent=True)
            for key, version in _object_versions(client, region, name):
                params = {"versionId": version} if version else {}
                client.request("s3", region, f"/{name}/{quote(key, safe='/~')}",
                               method="DELETE", params=params, ok=("NoSuchKey", "NoSuchVersion"))
        client.request("s3", region, f"/{name}", method="DELETE", ok=("NoSuchBucket",))
