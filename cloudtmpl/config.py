"""The project file ``cloudtmpl.yaml`` and the provider catalogs in ``providers/``.

``cloudtmpl.yaml`` (checked in, no secrets) names provider targets::

    providers:
      aws-eu: {type: aws, region: eu-central-1}
    default_target: aws-eu
    state: sqlite:///.cloudtmpl/state.db

The sandbox targets (``sandbox-aws``) always exist; their endpoints are filled
in by the CLI once the sandbox runs.  Catalogs translate abstract sizes and
images (``flavor: small``) into provider-native values.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pycountry
import yaml

from cloudtmpl.diagnostics import Diagnostic, DiagnosticError
from cloudtmpl.loader import Document, load_file
from cloudtmpl.model import Target

PROJECT_FILE = "cloudtmpl.yaml"
TARGET_TYPES = ("aws", "openstack")
# Keys a target may have, per type (credentials are never among them).
_TARGET_KEYS = {
    "aws": {"type", "region", "regions", "endpoint", "profile", "catalog"},
    "openstack": {"type", "region", "regions", "cloud", "catalog"},
}
_OPTION_KEYS = {"endpoint", "profile", "catalog", "cloud", "regions"}
_ALL_KINDS = frozenset(
    {
        "Cloud::Compute::Server",
        "Cloud::Compute::KeyPair",
        "Cloud::Network::SecurityGroup",
        "Cloud::Block::Volume",
        "Cloud::Block::VolumeAttachment",
        "Cloud::Network::FloatingIP",
        "Cloud::Network::Network",
        "Cloud::Network::Subnet",
        "Cloud::Network::Port",
    }
)
# What each target type can provide: a resource of another kind is a diagnostic
# before any cloud is asked.
_LOCAL_KINDS = frozenset({"Cloud::Random::String", "Cloud::Local::Value", "Cloud::Local::None",
                          "Cloud::Local::Test"})
TARGET_KINDS: dict[str, frozenset[str]] = {
    "aws": _ALL_KINDS, "openstack": _ALL_KINDS, "local": _LOCAL_KINDS}
_PROJECT_KEYS = {"providers", "default_target", "state"}

# Where local resources (random strings, values) live: cloudtmpl itself.
LOCAL = Target(name="local", type="local", region="local", options={"catalog": "local"})

SANDBOX_TARGETS: dict[str, Target] = {
    "sandbox-aws": Target(
        name="sandbox-aws",
        type="aws",
        region="us-east-1",
        options={"catalog": "sandbox-aws", "sandbox": "aws"},
        sandbox=True,
    ),
    "sandbox-openstack": Target(
        name="sandbox-openstack",
        type="openstack",
        region="de-fra-1",
        options={"catalog": "sandbox-openstack", "sandbox": "openstack"},
        sandbox=True,
    ),
}


def data_dir(name: str) -> Path:
    """A shipped data directory (``providers`` or ``templates``).

    In an installed wheel it lives in ``cloudtmpl/_data/``; in a source checkout
    at the repository root.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / name, here.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cloudtmpl data directory {name!r} is missing from this install")


@dataclass(frozen=True)
class RegionInfo:
    name: str
    country: str | None = None
    jurisdiction: str | None = None
    display_name: str = ""


@dataclass(frozen=True)
class Catalog:
    """Regions, abstract sizes and images of one provider."""

    name: str
    type: str
    regions: Mapping[str, RegionInfo] = field(default_factory=dict)
    sizes: Mapping[str, str] = field(default_factory=dict)
    images: Mapping[str, Any] = field(default_factory=dict)  # name -> id | {region: id}

    def size(self, value: str) -> str:
        return self.sizes.get(value, value)

    def image(self, value: str, region: str) -> str:
        entry = self.images.get(value)
        if entry is None:
            return value
        if isinstance(entry, Mapping):
            return str(entry.get(region, value))
        return str(entry)


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
        images=dict(raw.get("images") or {}),
    )


def catalog_for(target: Target) -> Catalog:
    """The target's catalog, with the regions ``cloudtmpl.yaml`` declares for it on top.

    Private clouds (OpenStack) have no public region list: their regions, with
    country and jurisdiction, are declared per target (``regions:``).
    """
    base = load_catalog(str(target.options.get("catalog", target.type)))
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


@dataclass(frozen=True)
class ProjectConfig:
    directory: Path
    file: Path | None
    targets: Mapping[str, Target]
    default_target: str | None = None
    state_url: str | None = None


def find_project_file(cwd: Path) -> Path | None:
    for directory in (cwd, *cwd.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def _closest(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1)
    return f"did you mean {match[0]!r}? " if match else ""


def _parse(doc: Document) -> tuple[dict[str, Target], str | None, str | None, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    data = doc.data if isinstance(doc.data, dict) else {}
    if not isinstance(doc.data, dict) and doc.data is not None:
        diags.append(
            Diagnostic(
                "config-shape",
                "cloudtmpl.yaml must be a mapping",
                doc.loc(()),
                "see DESIGN section 6 for the file's shape",
            )
        )
    for key in data:
        if key not in _PROJECT_KEYS:
            diags.append(
                Diagnostic(
                    "config-unknown-key",
                    f"unknown key {key!r} in {PROJECT_FILE}",
                    doc.loc((key,)),
                    _closest(key, sorted(_PROJECT_KEYS))
                    + f"allowed: {', '.join(sorted(_PROJECT_KEYS))}",
                )
            )
    targets: dict[str, Target] = {**SANDBOX_TARGETS, "local": LOCAL}
    providers = data.get("providers") or {}
    if not isinstance(providers, dict):
        diags.append(
            Diagnostic(
                "config-shape",
                "'providers' must map target names to settings",
                doc.loc(("providers",)),
                "providers: {aws-eu: {type: aws, region: eu-central-1}}",
            )
        )
        providers = {}
    for name, spec in providers.items():
        loc = doc.loc(("providers", name))
        if not isinstance(spec, dict):
            diags.append(
                Diagnostic(
                    "config-shape",
                    f"target {name!r} must be a mapping",
                    loc,
                    "e.g. {type: aws, region: eu-central-1}",
                )
            )
            continue
        if name in SANDBOX_TARGETS or name == "local":
            diags.append(
                Diagnostic(
                    "config-reserved-target",
                    f"target name {name!r} is reserved for the local sandbox",
                    loc,
                    "choose another name",
                )
            )
            continue
        ttype = spec.get("type")
        if ttype not in TARGET_TYPES:
            diags.append(
                Diagnostic(
                    "config-target-type",
                    f"target {name!r} has type {ttype!r}",
                    doc.loc(("providers", name, "type")),
                    f"supported types: {', '.join(TARGET_TYPES)}",
                )
            )
            continue
        allowed = _TARGET_KEYS[str(ttype)]
        for key in spec:
            if key in allowed:
                continue
            hint = _closest(str(key), sorted(allowed)) + f"allowed: {', '.join(sorted(allowed))}"
            if key in ("access_key", "secret_key", "password", "secret", "token", "auth"):
                hint = (
                    "credentials never go in cloudtmpl.yaml: AWS takes AWS_ACCESS_KEY_ID/"
                    "AWS_SECRET_ACCESS_KEY or a profile; OpenStack takes clouds.yaml "
                    "(name the entry with `cloud:`) or OS_* variables"
                )
            diags.append(
                Diagnostic(
                    "config-unknown-key",
                    f"unknown key {key!r} in target {name!r} (type {ttype})",
                    doc.key_loc(("providers", name, key)),
                    hint,
                )
            )
        diags.extend(_check_regions(doc, name, spec.get("regions")))
        options = {k: v for k, v in spec.items() if k in _OPTION_KEYS}
        targets[name] = Target(
            name=name, type=str(ttype), region=spec.get("region"), options=options
        )
    default = data.get("default_target")
    if default is not None and default not in targets:
        diags.append(
            Diagnostic(
                "unknown-target",
                f"default_target {default!r} is not a known target",
                doc.loc(("default_target",)),
                _closest(str(default), sorted(targets)) + f"known: {', '.join(sorted(targets))}",
            )
        )
    state = data.get("state")
    return targets, default, (str(state) if state is not None else None), diags


def is_country(code: Any) -> bool:
    """An ISO 3166-1 alpha-2 country code (``DE``)."""
    return isinstance(code, str) and pycountry.countries.get(alpha_2=code.upper()) is not None


def country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code.upper())
    return str(country.name) if country is not None else code


def _check_regions(doc: Document, target: str, regions: Any) -> list[Diagnostic]:
    if regions is None:
        return []
    path: tuple[str | int, ...] = ("providers", target, "regions")
    if not isinstance(regions, dict):
        return [
            Diagnostic(
                "config-shape",
                f"'regions' of target {target!r} must be a mapping",
                doc.loc(path),
                "regions: {RegionOne: {country: DE, jurisdiction: EU}}",
            )
        ]
    diags = []
    for region, info in regions.items():
        if not isinstance(info, dict):
            diags.append(
                Diagnostic(
                    "config-shape",
                    f"region {region!r} of target {target!r} must be a mapping",
                    doc.loc((*path, region)),
                    "e.g. {country: DE, jurisdiction: EU, name: Frankfurt}",
                )
            )
            continue
        country = info.get("country")
        if country is not None and not is_country(country):
            diags.append(
                Diagnostic(
                    "unknown-country",
                    f"region {region!r} of target {target!r}: "
                    f"{country!r} is not an ISO 3166 country code",
                    doc.loc((*path, region, "country")),
                    "use a two-letter code such as DE, NL, FR, US",
                )
            )
    return diags


def load_project(cwd: Path) -> ProjectConfig:
    """The project configuration for ``cwd`` (sandbox targets only if there is no file)."""
    path = find_project_file(cwd)
    if path is None:
        return ProjectConfig(directory=cwd, file=None,
                             targets={**SANDBOX_TARGETS, "local": LOCAL})
    targets, default, state, diags = _parse(load_file(str(path)))
    if diags:
        raise DiagnosticError(diags)
    if state and state.startswith("sqlite:///") and not state.startswith("sqlite:////"):
        # relative SQLite paths are relative to the project directory
        state = "sqlite:///" + str(path.parent / state[len("sqlite:///") :])
    return ProjectConfig(
        directory=path.parent, file=path, targets=targets, default_target=default, state_url=state
    )


def with_endpoint(target: Target, **options: Any) -> Target:
    return replace(target, options={**target.options, **options})
