"""The secret kind: ``Cloud::Secret`` (Heat's ``OS::Barbican::Secret``), a value the
cloud stores and hands out by reference: a Barbican secret on OpenStack, a Secrets
Manager secret on AWS.

The payload is sensitive whatever it was written with (a literal in the template too):
:func:`cloudtmpl.resources.canonical` marks it (:mod:`cloudtmpl.sensitive`), so
cloudtmpl records only its seal (a keyed digest: a changed payload is a changed seal)
and never the value.  ``generate`` asks for a value nobody writes: a Barbican order
(``symmetric``), or one made where it is stored (Secrets Manager's
``GetRandomPassword``; on Barbican a ``password`` is made locally with :mod:`secrets`
and sent once).  The ``value`` attribute (Heat's ``decrypted_payload``) is sealed
wherever cloudtmpl writes it; ``href`` (Barbican's ``secret_ref``, the secret's ARN on
AWS) is what templates pass to servers.

Heat's Barbican secrets are immutable: a new payload is a new secret (OpenStack plans
a replacement, its catalog's ``replace_only``); Secrets Manager takes a new value in
place (``PutSecretValue``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl.resource_spec import Alias, P, ResourceType

#: Barbican's secret types (its API's ``secret_type``).
SECRET_TYPES = ("symmetric", "public", "private", "passphrase", "certificate", "opaque")
#: The payload content types both clouds take (Barbican's plain-text and binary ones).
CONTENT_TYPES = ("text/plain", "application/octet-stream")
#: What ``generate: {type: ...}`` makes.
GENERATE_TYPES = ("password", "symmetric")
#: The symmetric key sizes Barbican's AES orders take.
AES_BITS = (128, 192, 256)

SECRET = ResourceType(
    kind="Cloud::Secret",
    description="A secret stored by the cloud (Barbican secret, AWS Secrets Manager "
    "secret): a given payload or one generated; servers get its href, never its value.",
    properties={
        "payload": P("string", update_allowed=True, sensitive=True,
                     description="The secret's value (sealed wherever cloudtmpl writes it; "
                     "OpenStack replaces the secret when it changes, AWS updates it)"),
        "generate": P("map", description="Make the value instead of giving it: {type: "
                      "password, length: 32} or {type: symmetric, bit_length: 256}"),
        "payload_content_type": P("string", allowed=CONTENT_TYPES,
                                  description="text/plain (the default with a payload) or "
                                  "application/octet-stream (base64 payload)"),
        "payload_content_encoding": P("string", allowed=("base64",),
                                      description="base64: required with "
                                      "application/octet-stream, refused with text/plain"),
        "secret_type": P("string", default="opaque", allowed=SECRET_TYPES,
                         description="Barbican's secret type (" + ", ".join(SECRET_TYPES)
                         + "); a tag on AWS"),
        "algorithm": P("string", description="Metadata: the algorithm, e.g. aes"),
        "bit_length": P("integer", description="Metadata: the key length in bits"),
        "mode": P("string", description="Metadata: the cipher mode, e.g. cbc"),
        "expiration": P("string", description="ISO 8601 time after which Barbican no "
                        "longer hands the secret out (must be in the future; OpenStack "
                        "only)"),
    },
    attributes={
        "href": "The secret's reference: Barbican's secret_ref URL, the AWS secret's ARN "
                "(what servers are given)",
        "value": "The payload (sealed wherever cloudtmpl writes it)",
        "status": "ACTIVE once stored",
        "name": "The secret's cloud-side name",
        "secret_type": "Its secret type",
        "content_type": "Its payload content type",
    },
    ref="the secret's href (Barbican secret_ref, Secrets Manager ARN)",
    tags=True,  # Barbican: the secret's metadata; AWS: its tags
    ready_timeout=120.0,
    delete_timeout=120.0,
    sensitive_attributes=frozenset({"value"}),
)

KINDS = (SECRET,)
ALIASES = (
    Alias("OS::Barbican::Secret", SECRET.kind, ignored=frozenset({"name"}),
          attributes={"decrypted_payload": "value"}),
)


def content_type(props: Mapping[str, Any]) -> str:
    """The payload's content type: as given, else text/plain."""
    return str(props.get("payload_content_type") or "text/plain")


def canonical_secret(out: dict[str, Any]) -> dict[str, Any]:
    """A secret's properties as the clouds report them: a generated key is symmetric."""
    gen = out.get("generate")
    if isinstance(gen, Mapping) and gen.get("type") == "symmetric" \
            and out.get("secret_type") == "opaque":
        out["secret_type"] = "symmetric"
    return out


def problems(props: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """What the clouds would refuse about a secret's (literal) properties, before any
    is asked: (message, property, hint) each."""
    out: list[tuple[str, str, str]] = []
    has_payload = "payload" in props
    gen = props.get("generate")
    if has_payload and gen is not None:
        out.append(("takes either 'payload' or 'generate', not both", "generate",
                    "drop 'generate' to store the payload, or 'payload' to have one made"))
    if not has_payload and gen is None:
        out.append(("needs 'payload' or 'generate'", "",
                    "add payload: {get_param: a hidden parameter}, or generate: "
                    "{type: password, length: 32}"))
    if isinstance(gen, Mapping):
        kind = gen.get("type")
        if kind not in GENERATE_TYPES:
            out.append((f"generate: type must be one of {', '.join(GENERATE_TYPES)}, not "
                        f"{kind!r}", "generate", "write generate: {type: password}"))
        unknown = sorted(set(map(str, gen)) - {"type", "length", "bit_length"})
        if unknown:
            out.append((f"generate: unknown key(s) {', '.join(unknown)}", "generate",
                        "generate takes type, length (password) and bit_length (symmetric)"))
        length = gen.get("length", 32)
        if kind == "password" and (not isinstance(length, int) or isinstance(length, bool)
                                   or not 8 <= length <= 4096):
            out.append((f"generate: length must be an integer from 8 to 4096, not "
                        f"{length!r}", "generate", "write length: 32"))
        bits = gen.get("bit_length", 256)
        if kind == "symmetric" and bits not in AES_BITS:
            out.append((f"generate: bit_length must be one of "
                        f"{', '.join(map(str, AES_BITS))}, not {bits!r}", "generate",
                        "write bit_length: 256"))
    encoding = props.get("payload_content_encoding")
    ctype = props.get("payload_content_type")
    if isinstance(ctype, str) and ctype == "application/octet-stream" and has_payload \
            and encoding is None:
        out.append(("payload_content_encoding: base64 is required with "
                    "application/octet-stream", "payload_content_type",
                    "add payload_content_encoding: base64 (and a base64 payload)"))
    if encoding is not None and (ctype is None or ctype == "text/plain"):
        out.append(("payload_content_encoding is refused with a text/plain payload",
                    "payload_content_encoding",
                    "drop it, or set payload_content_type: application/octet-stream"))
    return out
