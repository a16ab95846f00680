"""Provider catalogs (``providers/<name>.yaml``): each cloud's regions with their
country and jurisdiction, and the abstract sizes and images (``flavor: small``)
translated to the cloud's own.  A target's catalog is its provider's, with the
regions ``cloudtmpl.yaml`` declares for it on top.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pycountry
import yaml

from cloudtmpl.model import Target
from cloudtmpl.shipped import data_dir


@dataclass(frozen=True)
class RegionInfo:
    name: str
    country: str | None = None
    jurisdiction: str | None = None
    display_name: str = ""


@dataclass(frozen=True)
class ImageFilter:
    """A catalog image found in the cloud by name pattern and owner, as on AWS
    (DescribeImages with ``Owner.N`` and ``Filter name``, Terraform's ``aws_ami`` with
    ``most_recent``): the newest matching image wins, so the catalog names no ids."""

    name: str  # AWS's wildcards: * any characters, ? one character, \ escapes
    owners: tuple[str, ...] = ()  # account ids or aliases (amazon, aws-marketplace, self)

    def text(self) -> str:
        owned = f" owned by {', '.join(self.owners)}" if self.owners else ""
        return f"name {self.name!r}{owned}"

    def matches(self, name: str, owner_id: str = "", owner_alias: str = "") -> bool:
        """Whether an image so named and owned passes the filter (``self`` is the
        caller's own account, which only the cloud knows: taken on trust)."""
        owned = (not self.owners or "self" in self.owners
                 or bool({owner_id, owner_alias} & set(self.owners)))
        return owned and _wildcards(self.name).fullmatch(name) is not None


def _wildcards(pattern: str) -> re.Pattern[str]:
    out, escaped = [], False
    for char in pattern:
        if escaped or char not in "*?\\":
            out.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(".*" if char == "*" else ".")
    return re.compile("".join(out), re.DOTALL)


def newest_image(flt: ImageFilter, images: Iterable[Mapping[str, str]]) -> str | None:
    """The ``id`` of the newest of ``images`` (``id``, ``name``, ``owner_id``,
    ``owner_alias``, ``created``: an ISO 8601 time) that ``flt`` matches, else None.
    Equal times (the AWS sandbox stamps its images alike) go to the greater name,
    which carries the release date in every vendor's scheme, then to the greater id."""
    found = [i for i in images if i.get("id") and flt.matches(
        i.get("name", ""), i.get("owner_id", ""), i.get("owner_alias", ""))]
    if not found:
        return None
    best = max(found, key=lambda i: (i.get("created", ""), i.get("name", ""), i["id"]))
    return best["id"]


ImageEntry = str | ImageFilter | Mapping[str, str]  # an id | a filter | {region: id}


def _image_entry(name: str, raw: Any) -> ImageEntry:
    if isinstance(raw, Mapping) and "name" in raw:
        unknown = set(raw) - {"name", "owner"}
        owner = raw.get("owner") or ()
        owners = (owner,) if isinstance(owner, str) else tuple(owner)
        if unknown or not isinstance(raw["name"], str) or not all(
                isinstance(o, str) for o in owners):
            raise ValueError(f"catalog image {name!r}: a filter is {{name: PATTERN, "
                             f"owner: OWNER or [OWNERS]}}, not {dict(raw)!r}")
        return ImageFilter(raw["name"], owners)
    if isinstance(raw, Mapping):
        return {str(region): str(image) for region, image in raw.items()}
    return str(raw)


@dataclass(frozen=True)
class Catalog:
    """Regions, abstract sizes and images of one provider."""

    name: str
    type: str
    regions: Mapping[str, RegionInfo] = field(default_factory=dict)
    sizes: Mapping[str, str] = field(default_factory=dict)
    images: Mapping[str, ImageEntry] = field(default_factory=dict)
    # (kind, property) pairs this target cannot change in place even where the kind
    # can elsewhere (libcloud's common verbs have no resize): planned as replacements
    replace_only: frozenset[tuple[str, str]] = frozenset()

    def size(self, value: str) -> str:
        return self.sizes.get(value, value)

    def image(self, value: str, region: str) -> str | ImageFilter:
        """The native image id (or name) of ``value`` in ``region``, or the filter that
        finds it in the cloud; a value that is not in the catalog as it is."""
        entry = self.images.get(value)
        if entry is None:
            return value
        if isinstance(entry, Mapping):
            return str(entry.get(region, value))
        return entry


@functools.lru_cache(maxsize=32)
def load_catalog(name: str) -> Catalog:
    path = data_dir("providers") / f"{name}.yaml"
    if not path.is_file():
        return Catalog(name=name, type=name)
    raw = yaml.safe_load(path.read_text()) or {}
    regions = {
        r: RegionInfo(
            name=r,
            country=(info or {}).get("country"),
            jurisdiction=(info or {}).get("jurisdiction"),
            display_name=(info or {}).get("name", ""),
        )
        for r, info in (raw.get("regions") or {}).items()
    }
    return Catalog(
        name=name,
        type=str(raw.get("type", name)),
        regions=regions,
        sizes=dict(raw.get("sizes") or {}),
        images={str(k): _image_entry(str(k), v) for k, v in (raw.get("images") or {}).items()},
    )


_GENERIC_REPLACE_ONLY = frozenset({
    ("Cloud::Compute::Server", "flavor"), ("Cloud::Compute::Server", "metadata"),
    ("Cloud::Block::Volume", "size"), ("Cloud::Block::Volume", "metadata"),
})


# what one provider type cannot change in place: a Barbican secret is immutable
_TYPE_REPLACE_ONLY = {"openstack": frozenset({("Cloud::Secret", "payload")})}


def catalog_for(target: Target) -> Catalog:
    """The target's catalog, with the regions ``cloudtmpl.yaml`` declares for it on top.

    Private clouds (OpenStack) have no public region list: their regions, with
    country and jurisdiction, are declared per target (``regions:``).
    """
    base = load_catalog(str(target.options.get("catalog", target.type)))
    if target.type == "libcloud":
        base = replace(base, replace_only=_GENERIC_REPLACE_ONLY)
    if target.type in _TYPE_REPLACE_ONLY:
        base = replace(base, replace_only=base.replace_only | _TYPE_REPLACE_ONLY[target.type])
    declared = target.options.get("regions")
    if not isinstance(declared, Mapping) or not declared:
        return base
    regions = dict(base.regions)
    for name, info in declared.items():
        info = info if isinstance(info, Mapping) else {}
        regions[str(name)] = RegionInfo(
            name=str(name),
            country=_upper(info.get("country")),
            jurisdiction=_upper(info.get("jurisdiction")),
            display_name=str(info.get("name", "")),
        )
    return replace(base, regions=regions)


def _upper(value: Any) -> str | None:
    return str(value).upper() if value else None


def target_regions(target: Target) -> dict[str, RegionInfo]:
    """Every region a target can place resources in (catalog, declared, default)."""
    regions = dict(catalog_for(target).regions)
    if target.region and target.region not in regions:
        regions[target.region] = RegionInfo(name=target.region)
    return regions


def is_country(code: Any) -> bool:
    """An ISO 3166-1 alpha-2 country code (``DE``)."""
    return isinstance(code, str) and pycountry.countries.get(alpha_2=code.upper()) is not None


def country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code.upper())
    return str(country.name) if country is not None else code

