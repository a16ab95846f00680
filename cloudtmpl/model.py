"""Values shared by every phase: placements, desired and live resources, plans.

Everything here is a frozen dataclass or a plain function of values.  Nothing
holds a libcloud object: the provider adapters turn what libcloud returns into
these values, so planning never depends on a driver.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cloudtmpl.diagnostics import Loc
from cloudtmpl.sensitive import is_marked, unmark

TAG_STACK = "cloudtmpl:stack"
TAG_RESOURCE = "cloudtmpl:resource"
TAG_SPEC = "cloudtmpl:spec"
# On a snapshot taken before a volume is deleted (deletion_policy Snapshot): the
# volume's id.  Snapshots are never discovered as resources of the stack.
TAG_SNAPSHOT_OF = "cloudtmpl:snapshot-of"

# Stack names: 1-63 lowercase letters, digits, "-" and "_", starting with a letter or a
# digit.  No "." (physical names are "<stack>.<address>", so the prefix identifies the
# stack's resources) and no upper case (S3 bucket names and DNS labels are lowercase).
STACK_NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,62}\Z")  # \Z: no trailing newline
STACK_NAME_RULE = "1-63 lowercase letters, digits, '-' and '_', starting with a letter or digit"


def default_stack_name(stem: str) -> str:
    """A valid stack name for a template file's stem (``WordPress_Native`` ->
    ``wordpress_native``).

    A stem that is a valid name already is the name.  Otherwise: accents dropped
    (``é`` -> ``e``), lower case, each run of other characters (``.``, spaces, other
    scripts) one ``-``, no leading or trailing ``-``/``_``, at most 63 characters.  A
    stem with nothing usable left gets ``stack-`` and a digest of the stem, so that two
    such templates still get different stacks.
    """
    if STACK_NAME_RE.match(stem):
        return stem
    ascii_text = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9_-]+", "-", ascii_text.lower())
    name = re.sub(r"^[^a-z0-9]+", "", name)[:63].rstrip("-_")
    return name or "stack-" + hashlib.sha256(stem.encode()).hexdigest()[:8]


class _Unknown:
    """A value that is known only after apply (an id or address not yet created)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "(known after apply)"

    def __reduce__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
UNKNOWN_TEXT = "(known after apply)"


def is_unknown(value: Any) -> bool:
    """True if ``value`` is or contains an unknown-until-apply value."""
    if value is UNKNOWN:
        return True
    if isinstance(value, Mapping):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_unknown(v) for v in value)
    return False


def to_jsonable(value: Any) -> Any:
    """Plain JSON data; unknown values become the text ``(known after apply)``."""
    if value is UNKNOWN:
        return UNKNOWN_TEXT
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"), default=str)


def spec_hash(properties: Mapping[str, Any]) -> str:
    """Hash of resolved desired properties, stored in the ``cloudtmpl:spec`` tag."""
    return hashlib.sha256(canonical_json(properties).encode()).hexdigest()[:16]


#: A resource's logical id (its key under ``resources:``): letters, digits, ``_`` and
#: ``-``, not starting with ``-``.  Heat itself refuses only ``/``; cloudtmpl also keeps
#: out ``.`` (it joins an address's parts), control characters, spaces and everything
#: else some cloud refuses in a name made of it (EC2 key pairs and security groups,
#: Nova servers and key pairs, Neutron, Cinder, Swift: see :func:`physical_name`).
RESOURCE_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
#: An address: logical ids joined by ``.`` (group members ``<group>.<index>``,
#: nested resources ``<name>.<resource>``).
ADDRESS_RE = re.compile(rf"{RESOURCE_NAME_RE.pattern}(?:\.{RESOURCE_NAME_RE.pattern})*")
#: The longest address: ``<stack>.<address>`` and the names made of it (a snapshot's
#: ``@<volume id>``, a key file's ``.pem``) stay within the clouds' 255 characters.
MAX_ADDRESS = 128


def physical_name(stack: str, address: str) -> str:
    """Deterministic cloud-side name of a resource: ``<stack>.<address>``.

    Stack names cannot contain ``.`` (see STACK_NAME_RE), so the prefix
    ``<stack>.`` identifies the stack's resources without ambiguity.  Every address
    ``validate`` accepts (:data:`ADDRESS_RE`) is used as it is.  Any other (only an
    old state or another tool can hold one) is escaped, never collapsed: ``-`` and
    the hex digits of its UTF-8 bytes, a form no valid address has (none starts with
    ``-``), so two addresses never share a name; :func:`address_from_name` inverts it.
    """
    if ADDRESS_RE.fullmatch(address):
        return f"{stack}.{address}"
    return f"{stack}.-{address.encode('utf-8', 'surrogatepass').hex()}"


def snapshot_name(stack: str, address: str, volume_id: str) -> str:
    """Name of the snapshot of a volume taken before it is deleted (deletion_policy
    Snapshot): ``<stack>.<address>@<volume id>``.

    ``@`` never occurs in a physical name, so the snapshot is never taken for a
    resource of the stack; and one volume has one such name, so a run killed between
    the snapshot and the delete leaves a snapshot the next run finds and reuses.
    """
    return f"{physical_name(stack, address)}@{volume_id}"


def address_from_name(stack: str, name: str) -> str | None:
    """The address whose :func:`physical_name` is ``name``; None for another stack's.

    A name of the stack that no address gives (made by hand, or by an older version)
    comes back as the text after ``<stack>.``, as it always did.
    """
    prefix = f"{stack}."
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix):]
    if rest.startswith("-"):
        try:
            decoded = bytes.fromhex(rest[1:]).decode("utf-8", "surrogatepass")
        except ValueError:
            return rest
        if physical_name(stack, decoded) == name:
            return decoded
    return rest


@dataclass(frozen=True)
class Placement:
    """Where a resource lives: a provider target and one of its regions."""

    target: str
    region: str
    country: str | None = None
    jurisdiction: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "region": self.region,
            "country": self.country,
            "jurisdiction": self.jurisdiction,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Placement:
        return Placement(data["target"], data["region"], data.get("country"),
                         data.get("jurisdiction"))


@dataclass(frozen=True)
class Target:
    """A provider target from ``cloudtmpl.yaml`` (or a built-in sandbox target)."""

    name: str
    type: str  # "aws", "openstack", ...
    region: str | None = None  # default region
    options: Mapping[str, Any] = field(default_factory=dict)
    sandbox: bool = False


@dataclass(frozen=True)
class DesiredResource:
    """A resource as the template wants it, after parameters and conditions.

    ``properties`` may still hold function nodes that depend on other
    resources (``get_resource``/``get_attr``); they are evaluated with
    :func:`cloudtmpl.functions.evaluate` once those resources are known.
    """

    address: str
    type: str  # as written in the template, e.g. OS::Nova::Server
    kind: str  # canonical, e.g. Cloud::Compute::Server
    properties: Mapping[str, Any]
    depends_on: frozenset[str]
    placement: Placement
    loc: Loc
    deletion_policy: str = "Delete"
    why: str = ""  # how the placement was chosen (the residency solver's explanation)
    pinned: bool = False  # once applied, never relocated without --allow-relocation
    # set on the resources of a group member: the group, the member's index and the
    # group's update_policy (batch_create / rolling_update), which the executor honours
    group: str = ""
    index: int = 0
    update_policy: Mapping[str, Any] = field(default_factory=dict)
    # the template's own timeouts (seconds), over the resource type's defaults
    timeouts: Mapping[str, float] = field(default_factory=dict)
    # lifecycle hooks (pre_delete, pre_replace, create_before_destroy), plain values
    lifecycle: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Output:
    name: str
    value: Any  # a value tree, possibly with function nodes
    description: str = ""
    loc: Loc = field(default_factory=lambda: Loc("<template>"))


@dataclass(frozen=True)
class LiveResource:
    """A resource as discovered in a cloud, converted to plain values by an adapter."""

    address: str
    kind: str
    physical_id: str
    placement: Placement
    name: str = ""
    properties: Mapping[str, Any] = field(default_factory=dict)  # observed, canonical names
    attributes: Mapping[str, Any] = field(default_factory=dict)  # what get_attr can read
    spec_hash: str | None = None  # from the cloudtmpl:spec tag, if the cloud has tags
    status: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "kind": self.kind,
            "physical_id": self.physical_id,
            "placement": self.placement.to_json(),
            "name": self.name,
            "properties": to_jsonable(self.properties),
            "attributes": to_jsonable(self.attributes),
            "spec_hash": self.spec_hash,
            "status": self.status,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> LiveResource:
        return LiveResource(
            address=data["address"],
            kind=data["kind"],
            physical_id=data["physical_id"],
            placement=Placement.from_json(data["placement"]),
            name=data.get("name", ""),
            properties=data.get("properties", {}),
            attributes=data.get("attributes", {}),
            spec_hash=data.get("spec_hash"),
            status=data.get("status", ""),
        )


class Action(str, enum.Enum):
    """The one change vocabulary shared by diff, rendering and executor."""

    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"


SENSITIVE_TEXT = "(sensitive)"
# (sensitive) hmac:<key id>:<digest>; before 0.x: "(sensitive) sha256:<12 hex>" (unkeyed)
SEAL_RE = re.compile(r"^\(sensitive\) hmac:([0-9a-f]{8}):([0-9a-f]{16})$")
LEGACY_SEAL_RE = re.compile(r"^\(sensitive\) sha256:([0-9a-f]{12})$")


def key_id(key: bytes) -> str:
    """Which secret key sealed a value (says nothing about the key itself)."""
    return hmac.new(key, b"cloudtmpl-seal-key-id", hashlib.sha256).hexdigest()[:8]


def sealed_text(value: Any, key: bytes) -> str:
    """``(sensitive) hmac:<key id>:<digest>``: a keyed digest (HMAC-SHA256 with the
    project's secret key) of the value, so that it changes when the value changes but
    cannot be recovered by trying values (a short PIN) without the key."""
    body = b"cloudtmpl-seal\0" + canonical_json(unmark(value)).encode()
    digest = hmac.new(key, body, hashlib.sha256).hexdigest()[:16]
    return f"{SENSITIVE_TEXT} hmac:{key_id(key)}:{digest}"


def seal(value: Any, secrets: tuple[str, ...] = (), key: bytes = b"") -> Any:
    """``value`` with every sensitive value (:mod:`cloudtmpl.sensitive`: a hidden
    parameter and anything derived from it, a random string) replaced by its
    :func:`sealed_text`, and every string that contains one of ``secrets`` too
    (the second net, for free text: cloud error messages, a script's output, what a
    cloud reports).

    Used for everything that leaves the process (state, plan files, logs,
    events): the digest still changes when the secret changes, so diffs and
    spec hashes stay correct, but the secret itself never appears.  A sensitive
    container is sealed whole (its keys and shape are hidden too) unless part of it is
    unknown until apply: then its parts are sealed one by one.
    """
    if is_marked(value) and not is_unknown(value):
        return sealed_text(value, key)
    if isinstance(value, str):
        if any(s and s in value for s in secrets):
            return sealed_text(value, key)
        return value
    if isinstance(value, Mapping):
        return {(sealed_text(k, key) if is_marked(k) else k): seal(v, secrets, key)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [seal(v, secrets, key) for v in value]
    return value


def seal_like(observed: Any, desired: Any, secrets: tuple[str, ...] = (),
              key: bytes = b"") -> Any:
    """What a cloud reports (``observed``) sealed wherever the template's value at the
    same place (``desired``, real and marked) is sensitive: equal values get equal
    seals, so a secret the cloud holds (a tag value) shows no difference and never
    appears in a plan; and the rest through :func:`seal`'s text net."""
    if is_marked(desired) and not is_unknown(desired):
        return sealed_text(observed, key)
    if isinstance(observed, Mapping) and isinstance(desired, Mapping):
        return {k: seal_like(v, desired[k], secrets, key) if k in desired
                else seal(v, secrets, key) for k, v in observed.items()}
    if isinstance(observed, list) and isinstance(desired, list) \
            and len(observed) == len(desired):
        return [seal_like(o, d, secrets, key) for o, d in zip(observed, desired, strict=True)]
    return seal(observed, secrets, key)


def legacy_sealed(old: Any, real: Any) -> bool:
    """Whether ``old``, recorded by an older cloudtmpl that sealed with an unkeyed
    ``sha256:`` digest, is ``real`` (so that upgrading changes no resource)."""
    if isinstance(old, str) and LEGACY_SEAL_RE.match(old):
        text = unmark(real)
        return isinstance(text, str) and \
            hashlib.sha256(text.encode()).hexdigest()[:12] == old.rsplit(":", 1)[1]
    if isinstance(old, Mapping) and isinstance(real, Mapping):
        return set(old) == set(real) and all(legacy_sealed(v, real[k]) for k, v in old.items())
    if isinstance(old, list) and isinstance(real, list):
        return len(old) == len(real) and all(
            legacy_sealed(o, r) for o, r in zip(old, real, strict=True))
    return canonical_json(old) == canonical_json(real)


def seal_keys(value: Any) -> set[str]:
    """The key ids of the seals inside ``value`` (recorded specs, outputs)."""
    if isinstance(value, str):
        found = SEAL_RE.match(value)
        return {found.group(1)} if found else set()
    if isinstance(value, Mapping):
        return set().union(*(seal_keys(v) for v in value.values()))
    if isinstance(value, (list, tuple)):
        return set().union(*(seal_keys(v) for v in value))
    return set()
