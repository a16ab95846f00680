"""What a kind's schema is made of: its properties (typed, required, defaults, which
update in place), attributes, reference, and how it is created and deleted.

Update-versus-replace is data here, not code: as Heat's ``update_allowed``, a
property marked ``update_allowed`` changes in place, any other change replaces.
The kinds themselves are tables in :mod:`cloudtmpl.resources` and the family
modules beside it.
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
    # a secret whatever it is written with: marked (cloudtmpl.sensitive), so only its
    # seal is ever recorded
    sensitive: bool = False
    allowed: tuple[str, ...] | None = None  # the only values a literal may take


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
    # Holds user data: never destroyed by a relocation without --allow-relocation.
    data_bearing: bool = False
    # Computed by cloudtmpl itself, no cloud involved (random strings, values).
    local: bool = False
    # Takes any properties (Heat's OS::Heat::None and TestResource ignore theirs).
    open_properties: bool = False
    # Has attributes named by the template (a deployment's declared outputs).
    open_attributes: bool = False
    # What deletion_policy Snapshot does: "snapshot" (a snapshot is taken before the
    # resource is deleted), "retain" (Heat would snapshot it, cloudtmpl cannot yet: kept
    # as with Retain) or "refuse" (Heat refuses it too: a diagnostic).
    on_snapshot: Literal["snapshot", "retain", "refuse"] = "refuse"
    # attributes that are secrets (a stored secret's value): answered marked, sealed
    # wherever written
    sensitive_attributes: frozenset[str] = frozenset()

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
    # Heat properties accepted and ignored: cloudtmpl names every resource
    # <stack>.<address> (its identity), so Heat's `name` and the like have no effect.
    ignored: frozenset[str] = frozenset()
    # Heat properties of one value onto a native list of values (Designate v1's record
    # ``data`` onto ``records``): a value that is not a list becomes a list of one.
    one_of_list: frozenset[str] = frozenset()


P = PropertySpec


def local_kind(kind: str, description: str, properties: Mapping[str, PropertySpec],
               attributes: Mapping[str, str], ref: str, **more: Any) -> ResourceType:
    """A kind cloudtmpl computes itself: no cloud involved, so no tags."""
    return ResourceType(kind=kind, description=description, properties=properties,
                        attributes=attributes, ref=ref, tags=False, local=True, **more)
