"""Wait condition handles and wait conditions on AWS: an S3 bucket with versioning,
signalled through a presigned S3 ``PUT`` URL.

Handle: physical id = the bucket ``<stack>-<address>`` (as :mod:`.storage` names
buckets), tagged ``cloudtmpl:stack``/``resource``/``region``/``spec``, ``cloudtmpl:kind
= wait-handle`` and ``cloudtmpl:signed`` (when its URL was signed).  Its URL is a
Signature V4 presigned ``PUT`` of the object ``signal`` (signed header ``host``, the
payload unsigned), valid for a week from ``cloudtmpl:signed`` - S3's longest - so the
URL is the same at each discovery while the credentials are (temporary credentials
give a new URL when they change, and it ends with them).  Every ``PUT`` is a version:
a signal.  Deleting it deletes every version, then the bucket.

Condition: physical id = ``<bucket>/cloudtmpl-conditions/<address>.json``, the record
(the count and the data) written in its handle's bucket once the wait succeeded: a
satisfied condition is found again, so a later plan does not wait again.  The
listing ``wait_conditions`` reads the records of the stack's handles.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.orchestration_kinds import CONDITION, HANDLE
from cloudtmpl.providers import kit, waiting
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.aws.storage import S3_NS, Bucket, bucket_name, list_buckets
from cloudtmpl.providers.aws.svcxml import TAG_REGION, find_all, live, txt
from cloudtmpl.providers.base import CloudError

SIGNAL_OBJECT = "signal"
RECORDS = "cloudtmpl-conditions/"
TAG_KIND = "cloudtmpl:kind"
TAG_SIGNED = "cloudtmpl:signed"
LIFETIME = 604800  # S3's longest for a presigned URL: a week
_STAMP = "%Y%m%dT%H%M%SZ"


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def presigned_put(client: AwsClient, region: str, bucket: str, key: str,
                  signed: str) -> str:
    """The Signature V4 presigned URL of a ``PUT`` of ``key`` in ``bucket``, signed at
    ``signed`` (``YYYYMMDDTHHMMSSZ``) for :data:`LIFETIME` seconds."""
    creds = client.credentials()
    endpoint = client.endpoint_for("s3")
    if endpoint is not None:  # path style, on the target's endpoint
        host, port, secure = endpoint
        scheme = "https" if secure else "http"
        netloc = host if port == (443 if secure else 80) else f"{host}:{port}"
        path = f"/{bucket}/{quote(key, safe='/~')}"
    else:
        scheme, netloc = "https", f"{bucket}.s3.{region}.amazonaws.com"
        path = f"/{quote(key, safe='/~')}"
    day = signed[:8]
    scope = f"{day}/{region}/s3/aws4_request"
    params = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256",
              "X-Amz-Credential": f"{creds.key}/{scope}", "X-Amz-Date": signed,
              "X-Amz-Expires": str(LIFETIME), "X-Amz-SignedHeaders": "host"}
    if creds.token:
        params["X-Amz-Security-Token"] = creds.token
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                     for k, v in sorted(params.items()))
    canonical = f"PUT\n{path}\n{query}\nhost:{netloc}\n\nhost\nUNSIGNED-PAYLOAD"
    to_sign = ("AWS4-HMAC-SHA256\n" + signed + "\n" + scope + "\n"
               + hashlib.sha256(canonical.encode()).hexdigest())
    key_bytes = _sign(_sign(_sign(_sign(("AWS4" + creds.secret).encode(), day), region),
                            "s3"), "aws4_request")
    signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{scheme}://{netloc}{path}?{query}&X-Amz-Signature={signature}"


def handle_attributes(url: str) -> dict[str, Any]:
    """The handle's attributes; its curl line sends no ``Content-Type`` (as
    CloudFormation's documented signal does: curl's form type would be stored with the
    signal)."""
    return {"endpoint": url, "curl_cli": f"curl -i -X PUT -H 'Content-Type:' '{url}'",
            "token": "",
            "signal": json.dumps({"alarm_url": url})}


def _raw(client: AwsClient, region: str, path: str, params: Mapping[str, str],
         method: str = "GET", data: str | None = None,
         headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """(status, the body as sent): an object's bytes (:meth:`AwsClient.request` parses
    XML only)."""
    def go() -> tuple[int, bytes]:
        conn = client.connection("s3", region)
        kw: dict[str, Any] = {"params": dict(params), "method": method,
                              "headers": dict(headers or {})}
        if data is not None:
            kw["data"] = data
        saved = conn.responseCls  # this thread's connection: the body as it came
        conn.responseCls = type("S3Bytes", (saved,), {"parse_body": lambda self: self.body})
        try:
            resp = conn.request(path, **kw)
        finally:
            conn.responseCls = saved
        body = resp.body if isinstance(resp.body, bytes) else str(resp.body or "").encode()
        status = int(resp.status)
        if status >= 500:
            raise CloudError(f"S3 {method} {path}: HTTP {status}", permanent=False)
        return status, body

    try:
        result: tuple[int, bytes] = client.retrier.call(go)
    except CloudError:
        raise
    except Exception as exc:
        raise CloudError(f"S3 {method} {path}: {exc}", permanent=False) from exc
    return result


def _versions(client: AwsClient, region: str, bucket: str,
              prefix: str) -> list[tuple[str, str]]:
    """(key, version id) of the objects' versions under ``prefix``, oldest first (S3
    lists the newest first); delete markers left out."""
    out: list[tuple[str, str]] = []
    params = {"versions": "", "prefix": prefix}
    while True:
        status, body, _ = client.request("s3", region, f"/{bucket}", params=params,
                                         ok=("NoSuchBucket",))
        if status >= 400:
            return out
        page = [(txt(el, "Key") or "", txt(el, "VersionId") or "null")
                for el in find_all(body, "Version")]
        out.extend(reversed(page))
        if txt(body, "IsTruncated") != "true":
            break
        params = {"versions": "", "prefix": prefix,
                  "key-marker": txt(body, "NextKeyMarker") or "",
                  "version-id-marker": txt(body, "NextVersionIdMarker") or ""}
    by_key: dict[str, list[tuple[str, str]]] = {}
    for key, version in out:
        by_key.setdefault(key, []).append((key, version))
    return [v for versions in by_key.values() for v in versions]


def _all_versions(client: AwsClient, region: str, bucket: str) -> list[tuple[str, str]]:
    """(key, version id) of every version and delete marker in ``bucket``."""
    out: list[tuple[str, str]] = []
    params = {"versions": ""}
    while True:
        status, body, _ = client.request("s3", region, f"/{bucket}", params=params,
                                         ok=("NoSuchBucket",))
        if status >= 400:
            return out
        out += [(txt(el, "Key") or "", txt(el, "VersionId") or "null")
                for el in find_all(body, "Version") + find_all(body, "DeleteMarker")]
        if txt(body, "IsTruncated") != "true":
            return out
        params = {"versions": "", "key-marker": txt(body, "NextKeyMarker") or "",
                  "version-id-marker": txt(body, "NextVersionIdMarker") or ""}


def _handle_live(client: AwsClient, region: str, name: str,
                 tags: Mapping[str, str]) -> LiveResource:
    signed = tags.get(TAG_SIGNED) or ""
    url = presigned_put(client, region, name, SIGNAL_OBJECT, signed) if signed else ""
    return live(client.placement(region), HANDLE.kind, tags.get(TAG_RESOURCE) or name, name,
                name, {}, handle_attributes(url) if url else {}, tags.get(TAG_SPEC))


def _empty(client: AwsClient, region: str, bucket: str, prefix: str = "") -> None:
    for key, version in _all_versions(client, region, bucket):
        if key.startswith(prefix):
            client.request("s3", region, f"/{bucket}/{quote(key, safe='/~')}",
                           method="DELETE", params={"versionId": version},
                           ok=("NoSuchKey", "NoSuchVersion", "NoSuchBucket"))


class Handle(kit.NothingInPlace):
    """``Cloud::Orchestration::WaitConditionHandle``: an S3 bucket and a presigned URL."""

    kind = HANDLE.kind
    listings = ("buckets",)

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [_handle_live(client, region, name, tags)
                for name, tags, _ in listings.get("buckets")
                if tags.get(TAG_KIND) == "wait-handle"]

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        name = bucket_name(want.stack, want.address)
        body = None
        if region != "us-east-1":
            body = (f'<CreateBucketConfiguration xmlns="{S3_NS}"><LocationConstraint>'
                    f"{region}</LocationConstraint></CreateBucketConfiguration>")
        _, _, code = client.request("s3", region, f"/{name}", method="PUT", data=body,
                                    ok=("BucketAlreadyOwnedByYou", "BucketAlreadyExists"))
        if code == "BucketAlreadyExists":
            raise CloudError(f"bucket name {name!r} is taken (S3 bucket names are global)",
                             permanent=True)
        client.request("s3", region, f"/{name}", method="PUT", params={"versioning": ""},
                       data=f'<VersioningConfiguration xmlns="{S3_NS}"><Status>Enabled'
                       "</Status></VersioningConfiguration>")
        signed = dt.datetime.now(dt.timezone.utc).strftime(_STAMP)
        tags = {TAG_STACK: want.stack, TAG_RESOURCE: want.address, TAG_REGION: region,
                TAG_KIND: "wait-handle", TAG_SIGNED: signed, TAG_SPEC: want.spec_hash}
        Bucket._put_tags(client, region, name, tags)
        return _handle_live(client, region, name, tags)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        _empty(client, region, live.physical_id)
        client.request("s3", region, f"/{live.physical_id}", method="DELETE",
                       ok=("NoSuchBucket",))


def handle_bucket(handle: Any) -> str:
    """The handle's bucket, from the condition's ``handle`` (its presigned URL, or the
    bucket's name)."""
    text = str(handle or "")
    if "://" not in text:
        if not text:
            raise CloudError("handle is required (get_resource of a wait condition handle)",
                             permanent=True)
        return text
    parts = urlsplit(text)
    host = parts.hostname or ""
    if ".s3." in host:  # virtual-hosted style
        return host.split(".s3.", 1)[0]
    segments = [unquote(p) for p in parts.path.split("/") if p]
    if not segments:
        raise CloudError("handle is not a wait condition handle's URL", permanent=True)
    return segments[0]


def list_conditions(client: AwsClient, region: str, stack: str) -> list[Any]:
    """The listing ``wait_conditions``: (bucket, record key, tags, record) of the
    records in the stack's handles."""
    out = []
    for name, tags, _ in list_buckets(client, region, stack):
        if tags.get(TAG_KIND) != "wait-handle":
            continue
        status, body, _ = client.request("s3", region, f"/{name}",
                                         params={"list-type": "2", "prefix": RECORDS},
                                         ok=("NoSuchBucket",))
        if status >= 400:
            continue
        for el in find_all(body, "Contents"):
            key = txt(el, "Key") or ""
            got, data = _raw(client, region, f"/{name}/{quote(key, safe='/~')}", {})
            if got < 400:
                out.append((name, key, tags, data))
    return out


def _condition_live(client: AwsClient, region: str, bucket: str, key: str,
                    record: Mapping[str, Any]) -> LiveResource:
    data = record.get("data")
    return live(client.placement(region), CONDITION.kind, str(record.get("address") or key),
                f"{bucket}/{key}", f"{bucket}/{key}", {},
                {"data": data if isinstance(data, dict) else None},
                str(record.get("spec") or ""), status="satisfied")


class Condition(kit.NothingInPlace):
    """``Cloud::Orchestration::WaitCondition``: waits for its handle's signals."""

    kind = CONDITION.kind
    listings = ("wait_conditions",)

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        out = []
        for bucket, key, _tags, raw in listings.get("wait_conditions"):
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("stack") == stack:
                out.append(_condition_live(client, region, bucket, key, record))
        return out

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        wanted = waiting.Wanted.of(want.properties)
        bucket = handle_bucket(want.properties.get("handle"))
        status, body, _ = client.request("s3", region, f"/{bucket}", params={"tagging": ""},
                                         ok=("NoSuchBucket", "NoSuchTagSet"))
        tags = {(txt(t, "Key") or ""): (txt(t, "Value") or "")
                for t in find_all(body, "TagSet/Tag")} if status < 400 else {}
        if tags.get(TAG_KIND) != "wait-handle":
            raise CloudError(f"the wait condition's handle (bucket {bucket}) is not a wait "
                             f"condition handle in {region}", permanent=True)
        label = f"{tags.get(TAG_RESOURCE) or bucket} (bucket {bucket})"

        seen: dict[str, bytes] = {}  # version id -> its body (a version never changes)

        def read() -> list[bytes]:
            bodies = []
            for key, version in _versions(client, region, bucket, SIGNAL_OBJECT):
                if key != SIGNAL_OBJECT:
                    continue
                if version not in seen:
                    got, data = _raw(client, region, f"/{bucket}/{SIGNAL_OBJECT}",
                                     {"versionId": version})
                    if got >= 400:
                        continue
                    seen[version] = data
                bodies.append(seen[version])
            return bodies

        signals = waiting.wait(read, wanted, label, clock=client.clock, sleep=client.sleep,
                               max_interval=client.poll_max)
        key = f"{RECORDS}{want.address}.json"
        record = {"stack": want.stack, "address": want.address, "spec": want.spec_hash,
                  "count": wanted.count, "data": waiting.data_of(signals)}
        got, _ = _raw(client, region, f"/{bucket}/{quote(key, safe='/~')}", {}, method="PUT",
                      data=json.dumps(record), headers={"Content-Type": "application/json"})
        if got >= 400:
            raise CloudError(f"S3 PUT of the condition's record in {bucket}: HTTP {got}",
                             permanent=True)
        return _condition_live(client, region, bucket, key, record)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        bucket, _, key = live.physical_id.partition("/")
        _empty(client, live.placement.region, bucket, key)
