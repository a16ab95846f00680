"""Resource type schemas: properties, which update in place, attributes.

Update-versus-replace is data here, not code (DESIGN section 9, Heat's
``update_allowed``).  The provider-agnostic ``Cloud::*`` kinds are the native
vocabulary; ``OS::*`` names are aliases onto them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

PropType = Literal["string", "integer", "number", "boolean", "list", "map", "any"]


@dataclass(frozen=True)
class PropertySpec:
    type: PropType
    required: bool = False
    update_allowed: bool = False
    default: Any = None
    description: str = ""


@dataclass(frozen=True)
class ResourceType:
    kind: str
    properties: Mapping[str, PropertySpec]
    attributes: Mapping[str, str]  # name -> description
    ref: str  # what get_resource returns
    tags: bool  # can the cloud hold the cloudtmpl:* tags on this kind?
    description: str = ""
    ready_timeout: float = 600.0  # seconds to wait for a create to become ready
    delete_timeout: float = 600.0
    # Creation layer: a kind may refer to kinds of lower layers only.  Deletes of
    # resources the template no longer has run from the highest layer down, so the
    # order is right even when the old template (and its edges) is gone.
    layer: int = 0

    def forces_replacement(self, prop: str) -> bool:
        spec = self.properties.get(prop)
        return spec is None or not spec.update_allowed


@dataclass(frozen=True)
class Alias:
    """A Heat type name mapped onto a native kind, with its property/attribute names."""

    name: str
    kind: str
    properties: Mapping[str, str] = field(default_factory=dict)  # alias name -> native name
    attributes: Mapping[str, str] = field(default_factory=dict)


P = PropertySpec

SERVER = ResourceType(
    kind="Cloud::Compute::Server",
    description="A virtual machine.",
    properties={
        "image": P("string", required=True, description="Image id or abstract image name"),
        "flavor": P("string", required=True, update_allowed=True,
                    description="Size (instance type); changed by stop/resize/start"),
        "key_name": P("string", description="Key pair name (get_resource of a KeyPair)"),
        "security_groups": P("list", default=[], description="Security group ids"),
        "user_data": P("string", default="", description="Boot-time user data"),
        "availability_zone": P("string", description="Zone inside the region"),
        "metadata": P("map", default={}, update_allowed=True, description="Tags/metadata"),
    },
    attributes={
        "first_address": "The first private IP address",
        "private_ip": "The private IP address",
        "public_ip": "The public IP address (an elastic/floating IP once associated)",
        "name": "The server's cloud-side name",
        "status": "The server's status",
    },
    ref="server id",
    tags=True,
    ready_timeout=600.0,
    layer=1,
)

KEYPAIR = ResourceType(
    kind="Cloud::Compute::KeyPair",
    description="An SSH key pair; without public_key one is generated and its private "
    "key stored with mode 0600 under .cloudtmpl/keys/.",
    properties={
        "public_key": P("string", description="OpenSSH public key to import"),
    },
    attributes={
        "name": "The key pair's cloud-side name",
        "public_key": "The public key",
        "fingerprint": "The key's fingerprint",
    },
    ref="key pair name",
    tags=True,
)

SECURITY_GROUP = ResourceType(
    kind="Cloud::Network::SecurityGroup",
    description="A firewall rule set; rules change in place.",
    properties={
        "description": P("string", default=""),
        "rules": P("list", default=[], update_allowed=True,
                   description="Heat-style rules: direction, protocol, port_range_min, "
                   "port_range_max, remote_ip_prefix"),
    },
    attributes={"name": "The group's cloud-side name", "id": "The group id"},
    ref="security group id",
    tags=True,
)

VOLUME = ResourceType(
    kind="Cloud::Block::Volume",
    description="A block storage volume; size may grow in place.",
    properties={
        "size": P("integer", required=True, update_allowed=True, description="Size in GiB"),
        "volume_type": P("string", description="Volume type, e.g. gp3"),
        "availability_zone": P("string", description="Zone inside the region"),
        "metadata": P("map", default={}, update_allowed=True),
    },
    attributes={"size": "Size in GiB", "status": "Volume status", "name": "Cloud-side name"},
    ref="volume id",
    tags=True,
    ready_timeout=300.0,
)

VOLUME_ATTACHMENT = ResourceType(
    kind="Cloud::Block::VolumeAttachment",
    description="Attaches a volume to a server.",
    properties={
        "instance_uuid": P("string", required=True, description="Server id"),
        "volume_id": P("string", required=True, description="Volume id"),
        "mountpoint": P("string", default="/dev/sdh", description="Device name"),
    },
    attributes={},
    ref="volume id:server id",
    tags=True,  # recorded as tags on the volume
    ready_timeout=300.0,
    layer=2,
)

FLOATING_IP = ResourceType(
    kind="Cloud::Network::FloatingIP",
    description="A public address (AWS elastic IP), optionally associated with a server.",
    properties={
        "server": P("string", update_allowed=True, description="Server id to associate with"),
    },
    attributes={
        "floating_ip_address": "The public IP address",
        "ip": "The public IP address",
    },
    ref="allocation id",
    tags=True,
    layer=2,
)

TYPES: dict[str, ResourceType] = {
    t.kind: t for t in (SERVER, KEYPAIR, SECURITY_GROUP, VOLUME, VOLUME_ATTACHMENT, FLOATING_IP)
}

ALIASES: dict[str, Alias] = {}


def lookup(type_name: str) -> tuple[ResourceType, Alias | None] | None:
    """The schema for a type name as written in a template (native or alias)."""
    if type_name in TYPES:
        return TYPES[type_name], None
    alias = ALIASES.get(type_name)
    if alias is not None:
        return TYPES[alias.kind], alias
    return None


def known_type_names() -> list[str]:
    return sorted([*TYPES, *ALIASES])


def with_defaults(rtype: ResourceType, properties: Mapping[str, Any]) -> dict[str, Any]:
    """Properties with schema defaults filled in for those not given."""
    out = dict(properties)
    for name, spec in rtype.properties.items():
        if name not in out and spec.default is not None:
            out[name] = spec.default
    return out


_RULE_DEFAULTS: dict[str, Any] = {
    "direction": "ingress",
    "protocol": "tcp",
    "port_range_min": None,
    "port_range_max": None,
    "remote_ip_prefix": "0.0.0.0/0",
}


def canonical_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A security-group rule in one comparable shape (Heat's names)."""
    out = {k: rule.get(k, v) for k, v in _RULE_DEFAULTS.items()}
    proto = out["protocol"]
    out["protocol"] = "-1" if proto in (None, "any", "all", "-1", -1) else str(proto).lower()
    if out["protocol"] == "-1":
        out["port_range_min"] = out["port_range_max"] = None
    else:
        lo, hi = out["port_range_min"], out["port_range_max"]
        if lo is None and hi is None and out["protocol"] in ("tcp", "udp"):
            lo, hi = 1, 65535
        if lo is None and hi is None:
            lo = hi = -1  # icmp: all types
        lo = int(lo) if lo is not None else int(hi)
        hi = int(hi) if hi is not None else lo
        out["port_range_min"], out["port_range_max"] = lo, hi
    return out


# EC2 gives every VPC security group this rule; adapters do not report it.
DEFAULT_EGRESS = canonical_rule({"direction": "egress", "protocol": "-1"})


def canonical_rules(rules: Any) -> list[dict[str, Any]]:
    if not isinstance(rules, list):
        return []
    return sorted((canonical_rule(r) for r in rules if isinstance(r, Mapping)),
                  key=lambda r: sorted((k, str(v)) for k, v in r.items()))


def canonical(kind: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """Desired properties in the form adapters report them, for comparison."""
    rtype = TYPES[kind]
    out = with_defaults(rtype, properties)
    if kind == SECURITY_GROUP.kind:
        out["rules"] = [r for r in canonical_rules(out.get("rules", [])) if r != DEFAULT_EGRESS]
    if kind == SERVER.kind and isinstance(out.get("security_groups"), list):
        out["security_groups"] = sorted(out["security_groups"], key=str)
    return out
