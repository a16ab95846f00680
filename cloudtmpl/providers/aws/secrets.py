"""``Cloud::Secret`` on AWS: a Secrets Manager secret (JSON 1.1 over a SigV4 connection,
:class:`~cloudtmpl.providers.aws.connections.SecretsManagerConnection`); physical id:
its ARN (the href servers are given).

A secret is named ``<stack>.<address>`` and tagged ``cloudtmpl:stack``,
``cloudtmpl:resource`` and ``cloudtmpl:spec`` (tags go inside ``CreateSecret``), with
its ``secret_type`` and content type in two more tags.  Discovery lists by name prefix
(``ListSecrets``, every page) and reads each value (``GetSecretValue``) as the ``value``
attribute, marked sensitive.  The value is sent in the request body only, never in a
tag or a name; cloudtmpl compares it by its seal in the last-applied spec.

``CreateSecret`` carries a ``ClientRequestToken`` made from the resource and its spec:
a create retried after an ambiguous failure (a lost answer) is AWS's own no-op, and a
secret of that name with this resource's tags is adopted.  A new payload is ``PutSecretValue`` (in
place).  ``generate: {type: password}`` is ``GetRandomPassword`` (the value never
leaves AWS but in the create); ``{type: symmetric}`` random bytes made here, stored as
``SecretBinary``.  Delete is ``ForceDeleteWithoutRecovery``: a secret left scheduled
for deletion would block a secret of the same name (AWS refuses the create), so
destroy waits until it is gone.
"""

from __future__ import annotations

import base64
import json
import secrets as random_source
import uuid
from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.base import SECRET, CloudError
from cloudtmpl.providers.retry import RETRYABLE_AWS_CODES
from cloudtmpl.secret_kinds import content_type
from cloudtmpl.sensitive import mark

SERVICE = "secretsmanager"
TAG_TYPE = "cloudtmpl:secret-type"
TAG_CONTENT = "cloudtmpl:content-type"
_NAMESPACE = uuid.UUID("5b0c8a57-0a8e-4e1e-9d0a-6f1f3c2a7e11")


def action(client: AwsClient, region: str, name: str, body: Mapping[str, Any], *,
           ok: tuple[str, ...] = (), retry: bool = True) -> dict[str, Any]:
    """One Secrets Manager action; an error whose ``__type`` is in ``ok`` comes back as
    ``{"__type": code}``, any other raises a CloudError (retried when transient)."""

    def go() -> dict[str, Any]:
        conn = client.connection(SERVICE, region)
        resp = conn.request("/", method="POST", data=json.dumps(dict(body)),
                            headers={"X-Amz-Target": f"secretsmanager.{name}",
                                     "Content-Type": "application/x-amz-json-1.1"})
        status = int(resp.status)
        try:
            obj = json.loads(resp.body) if resp.body else {}
        except ValueError:
            obj = {}
        if status < 400:
            return obj if isinstance(obj, dict) else {}
        code = str(obj.get("__type") or f"HTTP {status}").rsplit("#", 1)[-1]
        if code in ok:
            return {"__type": code}
        message = str(obj.get("message") or obj.get("Message") or "")
        raise CloudError(f"{code}: {message}", status=str(status),
                         permanent=not (code in RETRYABLE_AWS_CODES or status >= 500))

    return kit.call(go, lambda exc: CloudError(f"Secrets Manager {name}: {exc}",
                                               permanent=False), client.retrier
                    if retry else None)


def list_secrets(client: AwsClient, region: str, stack: str) -> list[Any]:
    """The listing ``secrets``: the stack's, by name prefix (every page)."""
    out: list[Any] = []
    body: dict[str, Any] = {"Filters": [{"Key": "name", "Values": [f"{stack}."]}],
                            "MaxResults": 100}
    seen: set[str] = set()
    while True:
        obj = action(client, region, "ListSecrets", body)
        out.extend(s for s in obj.get("SecretList") or [] if isinstance(s, dict))
        token = obj.get("NextToken")
        if not token or token in seen:
            return out
        seen.add(token)
        body["NextToken"] = token


def _tags(secret: Mapping[str, Any]) -> dict[str, str]:
    return {str(t.get("Key")): str(t.get("Value")) for t in secret.get("Tags") or []}


def _value(client: AwsClient, region: str, arn: str) -> str | None:
    obj = action(client, region, "GetSecretValue", {"SecretId": arn},
                 ok=("ResourceNotFoundException", "InvalidRequestException"))
    if "SecretString" in obj:
        return mark(str(obj["SecretString"]))
    if "SecretBinary" in obj:
        return mark(str(obj["SecretBinary"]))  # base64, as JSON carries it
    return None


def _live(client: AwsClient, region: str, address: str,
          secret: Mapping[str, Any]) -> LiveResource:
    tags, arn = _tags(secret), str(secret["ARN"])
    props = {"secret_type": tags.get(TAG_TYPE, "opaque")}
    if tags.get(TAG_CONTENT):
        props["payload_content_type"] = tags[TAG_CONTENT]
    attributes: dict[str, Any] = {"href": arn, "status": "ACTIVE",
                                  "name": secret.get("Name"),
                                  "secret_type": props["secret_type"],
                                  "content_type": tags.get(TAG_CONTENT)}
    value = _value(client, region, arn)
    if value is not None:
        attributes["value"] = value
    return LiveResource(address=address, kind=SECRET, physical_id=arn,
                        placement=client.placement(region), name=str(secret.get("Name")),
                        properties=props, attributes=attributes,
                        spec_hash=tags.get(TAG_SPEC), status="ACTIVE")


def _describe(client: AwsClient, region: str, secret_id: str) -> dict[str, Any] | None:
    obj = action(client, region, "DescribeSecret", {"SecretId": secret_id},
                 ok=("ResourceNotFoundException",))
    return None if obj.get("__type") else obj


def _token(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "\0".join(parts)))


class SecretHandler:
    kind = SECRET
    listings: tuple[str, ...] = ("secrets",)

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        out = []
        for secret in listings.get("secrets"):
            if secret.get("DeletedDate"):
                continue  # scheduled for deletion: not a live secret
            address = kit.tagged_address(_tags(secret), stack, str(secret.get("Name") or ""))
            if address is not None:
                out.append(_live(client, region, address, secret))
        return out

    @staticmethod
    def _value_fields(client: AwsClient, region: str,
                      props: Mapping[str, Any]) -> dict[str, str]:
        """``SecretString`` or ``SecretBinary`` for the properties (made if generated)."""
        gen = props.get("generate") or {}
        if gen.get("type") == "password":
            made = action(client, region, "GetRandomPassword",
                          {"PasswordLength": int(gen.get("length", 32)),
                           "ExcludePunctuation": True})
            return {"SecretString": str(made["RandomPassword"])}
        if gen.get("type") == "symmetric":
            key = random_source.token_bytes(int(gen.get("bit_length", 256)) // 8)
            return {"SecretBinary": base64.b64encode(key).decode("ascii")}
        if content_type(props) == "application/octet-stream":
            return {"SecretBinary": str(props["payload"])}  # base64 already
        return {"SecretString": str(props["payload"])}

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        props = want.properties
        if props.get("expiration"):
            raise CloudError("Secrets Manager secrets do not expire: drop 'expiration' "
                             "(Barbican's) on AWS", permanent=True)
        tags = {TAG_STACK: want.stack, TAG_RESOURCE: want.address, TAG_SPEC: want.spec_hash,
                TAG_TYPE: str(props.get("secret_type") or "opaque")}
        if props.get("payload_content_type"):
            tags[TAG_CONTENT] = str(props["payload_content_type"])
        body = {"Name": want.name,
                "ClientRequestToken": _token(want.stack, want.address, want.spec_hash),
                "Description": f"cloudtmpl {want.stack}.{want.address}",
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                **self._value_fields(client, region, props)}
        # retried as it is: the same ClientRequestToken and value is AWS's own no-op
        made = action(client, region, "CreateSecret", body, ok=("ResourceExistsException",))
        if made.get("__type"):
            found = _describe(client, region, want.name)  # ours from an earlier attempt?
            mine = _tags(found or {})
            if found is None or found.get("DeletedDate") or mine.get(TAG_STACK) != want.stack \
                    or mine.get(TAG_RESOURCE) != want.address:
                raise CloudError(f"ResourceExistsException: a secret named {want.name} "
                                 "already exists and is not this resource's", permanent=True)
            self._tag(client, region, str(found["ARN"]), tags)
        found = kit.require(_describe(client, region, want.name), LiveResource(
            want.address, SECRET, want.name, client.placement(region)))
        return _live(client, region, want.address, found)

    @staticmethod
    def _tag(client: AwsClient, region: str, arn: str, tags: Mapping[str, str]) -> None:
        action(client, region, "TagResource",
               {"SecretId": arn, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]})

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        """A new payload in place (``PutSecretValue``), then the spec tag."""
        region = live.placement.region
        if "payload" in change.changed:
            action(client, region, "PutSecretValue", {
                "SecretId": live.physical_id,
                "ClientRequestToken": _token(change.stack, live.address, change.spec_hash),
                **self._value_fields(client, region, change.properties)})
        self._tag(client, region, live.physical_id, {TAG_SPEC: change.spec_hash})
        found = kit.require(_describe(client, region, live.physical_id), live)
        return _live(client, region, live.address, found)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        action(client, region, "DeleteSecret",
               {"SecretId": live.physical_id, "ForceDeleteWithoutRecovery": True},
               ok=("ResourceNotFoundException",))

        def gone() -> tuple[bool, str, None]:
            found = _describe(client, region, live.physical_id)
            return found is None, "deleting" if found else "deleted", None

        client.poll(timeout, f"secret {live.name or live.address}", gone)
