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
import importlib
import inspect
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pycountry
import yaml

from cloudtmpl.capabilities import ATTACHMENT as _ATTACHMENT
from cloudtmpl.capabilities import KEYPAIR as _KEYPAIR
from cloudtmpl.capabilities import LIBCLOUD_KINDS
from cloudtmpl.capabilities import SERVER as _SERVER
from cloudtmpl.capabilities import VOLUME as _VOLUME
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc
from cloudtmpl.loader import Document, load_file
from cloudtmpl.model import Target
from cloudtmpl.settings import aws as aws_settings
from cloudtmpl.settings import openstack as os_settings

PROJECT_FILE = "cloudtmpl.yaml"
TARGET_TYPES = ("aws", "openstack", "libcloud")
# Keys a target may have, per type (credentials are never among them).
_TARGET_KEYS = {
    "aws": {"type", "region", "regions", "endpoint", "profile", "catalog", "request_rate"},
    "openstack": {"type", "region", "regions", "cloud", "catalog", "request_rate"},
    # any libcloud compute driver (see _libcloud_target): credentials only by reference
    "libcloud": {"type", "driver", "args", "key_env", "secret_env", "credentials_file",
                 "credentials_section", "region", "regions", "catalog", "request_rate",
                 "capabilities"},
}
_OPTION_KEYS = {"endpoint", "profile", "catalog", "cloud", "regions", "request_rate"}
# request_rate: API requests per second (a token bucket shared by the adapter's threads)
_MAX_REQUEST_RATE = 100_000
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


def catalog_for(target: Target) -> Catalog:
    """The target's catalog, with the regions ``cloudtmpl.yaml`` declares for it on top.

    Private clouds (OpenStack) have no public region list: their regions, with
    country and jurisdiction, are declared per target (``regions:``).
    """
    base = load_catalog(str(target.options.get("catalog", target.type)))
    if target.type == "libcloud":
        base = replace(base, replace_only=_GENERIC_REPLACE_ONLY)
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
        # not only a regular file: a FIFO, a directory or a broken link is refused by
        # load_file (a diagnostic), not skipped over for a parent directory's file
        if os.path.lexists(candidate):
            return candidate
    return None


def _closest(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1)
    return f"did you mean {match[0]!r}? " if match else ""


def _setting_error(ttype: str, name: str, loc: Loc, err: ValueError) -> Diagnostic:
    return Diagnostic(
        f"config-{ttype}-settings", f"target {name!r} has no region: and its default region "
        f"cannot be read: {err}", loc,
        "fix that file or variable, or give the target region: in cloudtmpl.yaml")


def _aws_region(doc: Document, name: str, spec: Mapping[str, Any],
                environ: Mapping[str, str]) -> tuple[str | None, list[Diagnostic]]:
    """``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's ``region``
    (:mod:`cloudtmpl.settings.aws`); None when nothing says."""
    try:
        return aws_settings.load(environ, spec.get("profile")).region, []
    except aws_settings.AwsSettingsError as err:
        return None, [_setting_error("aws", name, doc.loc(("providers", name)), err)]


def _auth_type_loc(entry: os_settings.CloudEntry) -> Loc:
    """Where an entry's ``auth_type`` is written (clouds or secure file)."""
    for file in (entry.file, entry.secure_file):
        if file is None or file.suffix == ".json":
            continue
        try:
            found = load_file(str(file))
        except DiagnosticError:
            continue
        for key in ("auth_type", "auth-type"):
            if found.get(("clouds", entry.name, key)) is not None:
                return found.key_loc(("clouds", entry.name, key))
    return Loc(str(entry.file))


def _openstack_settings(doc: Document, name: str, spec: Mapping[str, Any],
                        environ: Mapping[str, str], cwd: Path
                        ) -> tuple[str | None, list[Diagnostic]]:
    """The clouds.yaml entry's ``auth_type`` checked; the default region of a target
    without ``region:`` (``OS_REGION_NAME``, the entry's ``regions``/``region_name``,
    :mod:`cloudtmpl.settings.openstack`).  A missing entry is no error here: the
    adapter reports it when credentials are needed."""
    cloud = spec.get("cloud") or environ.get("OS_CLOUD")
    home = Path(environ.get("HOME") or Path.home())
    loc = doc.loc(("providers", name))
    try:
        entry = os_settings.find_cloud(str(cloud), environ, cwd, home) if cloud else None
    except os_settings.CloudsYamlError as err:
        return None, [_setting_error("openstack", name, loc, err)]
    diags = []
    if entry is not None:
        try:
            os_settings.auth_method(entry.config.get("auth_type"),
                                    f"cloud {entry.name!r} ({entry.source})")
        except os_settings.CloudsYamlError as err:
            diags.append(Diagnostic(
                "openstack-auth-type", f"target {name!r}: {err}", _auth_type_loc(entry),
                "application credentials are auth_type v3applicationcredential, an "
                "existing token is v3token"))
    if spec.get("region") is not None:
        return str(spec["region"]), diags
    try:
        return os_settings.default_region(entry, environ)[0], diags
    except os_settings.CloudsYamlError as err:
        return None, [*diags, _setting_error("openstack", name, loc, err)]


def _parse(doc: Document, environ: Mapping[str, str] | None = None, cwd: Path | None = None
           ) -> tuple[dict[str, Target], str | None, str | None, list[Diagnostic]]:
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    diags: list[Diagnostic] = []
    data = doc.data if isinstance(doc.data, dict) else {}
    if not isinstance(doc.data, dict) and doc.data is not None:
        diags.append(
            Diagnostic(
                "config-shape",
                "cloudtmpl.yaml must be a mapping",
                doc.loc(()),
                "write keys, e.g. 'providers: {aws-eu: {type: aws, region: eu-central-1}}', "
                "'default_target: aws-eu', 'state: sqlite:///.cloudtmpl/state.db' "
                "(README.md, \"Projects, targets and state\")",
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
            if ttype == "libcloud" and str(key).lower() in _SECRET_KEYS:
                diags.append(_secret_in_config(doc, ("providers", name, key), name))
                continue
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
        diags.extend(_check_request_rate(doc, name, spec))
        if ttype == "libcloud":
            generic, more = _libcloud_target(doc, name, spec)
            diags.extend(more)
            if generic is not None:
                targets[name] = generic
            continue
        options = {k: v for k, v in spec.items() if k in _OPTION_KEYS}
        region = spec.get("region")
        if ttype == "openstack":
            region, more = _openstack_settings(doc, name, spec, environ, cwd)
            diags.extend(more)
        elif region is None:
            region, more = _aws_region(doc, name, spec, environ)
            diags.extend(more)
        targets[name] = Target(name=name, type=str(ttype), region=region, options=options)
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


def _check_request_rate(doc: Document, target: str, spec: Mapping[str, Any]) -> list[Diagnostic]:
    if "request_rate" not in spec:
        return []
    rate = spec["request_rate"]
    ok = (isinstance(rate, (int, float)) and not isinstance(rate, bool)
          and 0 < rate <= _MAX_REQUEST_RATE)
    if ok:
        return []
    return [
        Diagnostic(
            "config-request-rate",
            f"request_rate of target {target!r} must be a number of requests per second "
            f"above 0 and at most {_MAX_REQUEST_RATE}, not {rate!r}",
            doc.loc(("providers", target, "request_rate")),
            "e.g. request_rate: 20 (omit it for no limit)",
        )
    ]


def load_project(cwd: Path, environ: Mapping[str, str] | None = None) -> ProjectConfig:
    """The project configuration for ``cwd`` (sandbox targets only if there is no file).

    ``environ`` (default: the process environment) supplies the default regions of
    targets without ``region:`` (:func:`_aws_region`, :func:`_openstack_settings`).
    """
    path = find_project_file(cwd)
    if path is None:
        return ProjectConfig(directory=cwd, file=None,
                             targets={**SANDBOX_TARGETS, "local": LOCAL})
    targets, default, state, diags = _parse(load_file(str(path)), environ, cwd)
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


# -- generic libcloud targets ---------------------------------------------------------
#
#     do-ams:
#       type: libcloud
#       driver: digitalocean            # any libcloud compute provider id
#       key_env: DIGITALOCEAN_ACCESS_TOKEN  # the variable's NAME; or credentials_file:
#       args: {api_version: v2}         # non-secret constructor arguments
#       region: ams3
#       capabilities: {kinds: [Cloud::Compute::Server], tags: false}

# Keys that would hold a secret: never in cloudtmpl.yaml (a target's keys or its args).
_SECRET_KEYS = frozenset({
    "key", "secret", "password", "passwd", "token", "api_key", "apikey", "api_token",
    "access_key", "secret_key", "access_token", "auth", "credentials", "private_key",
    "user_id", "username"})
# libcloud drivers the local sandbox ships beside libcloud's own (driver id -> class):
# ``filecloud`` keeps its cloud in a JSON file (cloudtmpl_sandbox/filecloud.py).
SANDBOX_DRIVERS = {"filecloud": "cloudtmpl_sandbox.filecloud:FileNodeDriver"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CAPABILITY_KEYS = {"kinds", "tags", "regions"}


@dataclass(frozen=True)
class LibcloudCaps:
    """What a libcloud driver can do for cloudtmpl, known before any request."""

    kinds: frozenset[str]
    tags: bool  # ownership tags/metadata at creation (else: deterministic names only)
    regions: bool  # regions are the driver's locations (else: one region)
    key_env: str | None = None  # the usual variable of the API key, when key_env is not set


# Built-in per driver id (over what the driver class's verbs say):
# * DigitalOcean: droplets, SSH keys, volumes; tags at creation; regions are slugs;
# * Linode (API v4): linodes and volumes; libcloud cannot delete an SSH key there;
# * Vultr (API v2): instances, SSH keys, block storage; one tag per instance;
# * dummy: libcloud's in-memory driver (no names kept, nothing persists): plan only.
LIBCLOUD_BUILTIN: dict[str, LibcloudCaps] = {
    "digitalocean": LibcloudCaps(LIBCLOUD_KINDS, True, True, "DIGITALOCEAN_ACCESS_TOKEN"),
    "linode": LibcloudCaps(frozenset({_SERVER, _VOLUME, _ATTACHMENT}), True, True,
                           "LINODE_TOKEN"),
    "vultr": LibcloudCaps(LIBCLOUD_KINDS, True, True, "VULTR_API_KEY"),
    "dummy": LibcloudCaps(frozenset({_SERVER}), False, False, None),
}


def libcloud_driver_ids() -> dict[str, str]:
    """Every name a libcloud compute driver answers to (``digitalocean``, ``digital_ocean``)
    -> its provider id."""
    from libcloud.compute.providers import DRIVERS
    from libcloud.compute.types import Provider

    names = {str(pid): str(pid) for pid in DRIVERS}
    for attr in dir(Provider):
        value = getattr(Provider, attr)
        if not attr.startswith("_") and isinstance(value, str) and value in names:
            names.setdefault(attr.lower(), value)
    names.update({pid: pid for pid in SANDBOX_DRIVERS})
    return names


def libcloud_driver_class(driver_id: str, args: Mapping[str, Any] | None = None,
                          *, concrete: bool = True) -> Any:
    """The NodeDriver class of a provider id.  ``concrete``: for the drivers whose class
    picks an API version when instantiated (DigitalOcean, Linode, Vultr, ...), the class
    it picks (to read its verbs); else the class to instantiate."""
    shipped = SANDBOX_DRIVERS.get(driver_id)
    if shipped:  # imported by name: the engine does not depend on the sandbox
        module, _, name = shipped.partition(":")
        return getattr(importlib.import_module(module), name)
    from libcloud.compute.providers import get_driver

    cls: Any = get_driver(driver_id)
    if concrete and "__new__" in vars(cls):
        version = (args or {}).get("api_version")
        try:
            obj = cls.__new__(cls, "key", **({"api_version": version} if version else {}))
        except Exception:  # only a probe: fall back to the class itself
            return cls
        if isinstance(obj, cls):
            return type(obj)
    return cls


def driver_implements(cls: Any, *verbs: str) -> bool:
    """The driver class overrides each of libcloud's ``NodeDriver`` ``verbs``."""
    from libcloud.compute.base import NodeDriver

    return all(callable(getattr(cls, v, None))
               and getattr(cls, v) is not getattr(NodeDriver, v, None) for v in verbs)


def detect_libcloud_caps(cls: Any) -> LibcloudCaps:
    """Capabilities from the driver class's own verbs (what it overrides of NodeDriver)."""
    kinds = {_SERVER}
    if driver_implements(cls, "list_key_pairs", "delete_key_pair") and (
            driver_implements(cls, "import_key_pair_from_string")
            or driver_implements(cls, "create_key_pair")):
        kinds.add(_KEYPAIR)
    if driver_implements(cls, "list_volumes", "create_volume", "destroy_volume"):
        kinds.add(_VOLUME)
        if driver_implements(cls, "attach_volume", "detach_volume"):
            kinds.add(_ATTACHMENT)
    try:
        params = inspect.signature(cls.create_node).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    tags = any(p in params for p in ("ex_metadata", "ex_tags", "ex_tag"))
    return LibcloudCaps(frozenset(kinds), tags, "location" in params)


def _secret_in_config(doc: Document, path: tuple[str | int, ...], target: str) -> Diagnostic:
    return Diagnostic(
        "config-credentials",
        f"target {target!r}: {path[-1]!r} would put a credential in {PROJECT_FILE}, "
        "which is checked in",
        doc.key_loc(path),
        "name the environment variable that holds it (key_env: DIGITALOCEAN_ACCESS_TOKEN, "
        "secret_env: ...), or a credentials_file outside the project (INI, mode 0600)",
    )


def _libcloud_target(doc: Document, name: str, spec: Mapping[str, Any]
                     ) -> tuple[Target | None, list[Diagnostic]]:
    """A ``type: libcloud`` target with its capabilities (kinds, tags, regions)."""
    diags: list[Diagnostic] = []
    base: tuple[str | int, ...] = ("providers", name)
    raw_driver = spec.get("driver")
    if not isinstance(raw_driver, str) or not raw_driver:
        return None, [Diagnostic("config-libcloud-driver",
                                 f"target {name!r} (type libcloud) needs driver:",
                                 doc.loc(base), "e.g. driver: digitalocean (a libcloud "
                                 "compute provider id)")]
    ids = libcloud_driver_ids()
    driver = ids.get(raw_driver) or ids.get(raw_driver.lower())
    if driver is None:
        close = difflib.get_close_matches(raw_driver.lower(), sorted(ids), n=3, cutoff=0.6)
        return None, [Diagnostic(
            "config-libcloud-driver",
            f"target {name!r}: {raw_driver!r} is not a libcloud compute driver",
            doc.loc((*base, "driver")),
            (f"did you mean {', '.join(repr(c) for c in close)}? " if close else "")
            + f"libcloud's compute providers: {', '.join(sorted(set(ids.values())))}")]
    args = spec.get("args") or {}
    if not isinstance(args, dict):
        diags.append(Diagnostic("config-shape", f"'args' of target {name!r} must be a mapping",
                                doc.loc((*base, "args")), "e.g. args: {api_version: v2}"))
        args = {}
    for arg, value in args.items():
        if str(arg).lower() in _SECRET_KEYS or str(arg).lower().endswith(
                ("_key", "_secret", "_password", "_token")):
            diags.append(_secret_in_config(doc, (*base, "args", arg), name))
        elif isinstance(value, (dict, list)):
            diags.append(Diagnostic("config-shape", f"args.{arg} of target {name!r} must be "
                                    "a string, number or boolean", doc.loc((*base, "args", arg)),
                                    "constructor keyword arguments are plain values"))
    for var_key in ("key_env", "secret_env"):
        var = spec.get(var_key)
        if var is not None and not (isinstance(var, str) and _ENV_NAME.match(var)):
            diags.append(Diagnostic(
                "config-credentials", f"{var_key} of target {name!r} must name an environment "
                f"variable, not {'a value' if isinstance(var, str) else repr(var)}",
                doc.loc((*base, var_key)),
                f"{var_key}: MY_CLOUD_TOKEN (the variable's name; export the value yourself)"))
    cred_file = spec.get("credentials_file")
    if cred_file is not None:
        path = Path(str(cred_file)).expanduser()
        project = Path(doc.file).resolve().parent
        if not path.is_absolute():
            diags.append(Diagnostic(
                "config-credentials-file", f"credentials_file of target {name!r} must be an "
                "absolute path (or start with ~)", doc.loc((*base, "credentials_file")),
                "e.g. credentials_file: ~/.config/cloudtmpl/credentials.ini"))
        elif path.resolve().is_relative_to(project):
            diags.append(Diagnostic(
                "config-credentials-file", f"credentials_file of target {name!r} is inside the "
                f"project ({project}), where it could be checked in",
                doc.loc((*base, "credentials_file")),
                "keep it outside the project, e.g. ~/.config/cloudtmpl/credentials.ini"))
    cls = None
    try:
        cls = libcloud_driver_class(driver, args)
    except Exception as exc:  # a broken driver module is a diagnostic
        diags.append(Diagnostic("config-libcloud-driver", f"target {name!r}: libcloud driver "
                                f"{driver!r} cannot be loaded: {exc}",
                                doc.loc((*base, "driver")), "check the libcloud installation"))
    caps = LIBCLOUD_BUILTIN.get(driver) or (detect_libcloud_caps(cls) if cls is not None
                                             else LibcloudCaps(frozenset({_SERVER}), False, False))
    overrides = spec.get("capabilities") or {}
    if not isinstance(overrides, dict):
        diags.append(Diagnostic("config-shape", f"'capabilities' of target {name!r} must be a "
                                "mapping", doc.loc((*base, "capabilities")),
                                "capabilities: {kinds: [Cloud::Compute::Server], tags: false}"))
        overrides = {}
    kinds, tags, has_regions = caps.kinds, caps.tags, caps.regions
    for key, value in overrides.items():
        loc = doc.loc((*base, "capabilities", key))
        if key not in _CAPABILITY_KEYS:
            diags.append(Diagnostic("config-unknown-key", f"unknown capability {key!r} of "
                                    f"target {name!r}", loc, _closest(str(key), sorted(
                                        _CAPABILITY_KEYS)) + "allowed: kinds, tags, regions"))
        elif key == "kinds":
            wanted = value if isinstance(value, list) else [value]
            bad = [str(k) for k in wanted if k not in LIBCLOUD_KINDS]
            if bad:
                diags.append(Diagnostic(
                    "config-capabilities", f"target {name!r}: libcloud targets cannot provide "
                    f"{', '.join(bad)}", loc, _closest(bad[0], sorted(LIBCLOUD_KINDS))
                    + f"possible: {', '.join(sorted(LIBCLOUD_KINDS))}"))
            kinds = frozenset(str(k) for k in wanted if k in LIBCLOUD_KINDS)
        elif not isinstance(value, bool):
            diags.append(Diagnostic("config-capabilities", f"capabilities.{key} of target "
                                    f"{name!r} must be true or false", loc,
                                    f"{key}: false"))
        elif key == "tags":
            tags = value
        else:
            has_regions = value
    catalog = str(spec.get("catalog") or f"libcloud-{driver}")
    region = spec.get("region")
    if region is None:
        declared = spec.get("regions") if isinstance(spec.get("regions"), dict) else {}
        known = list(declared or {}) or list(load_catalog(catalog).regions)
        region = known[0] if known else (None if has_regions else "global")
    if region is None:
        diags.append(Diagnostic(
            "config-libcloud-region", f"target {name!r}: driver {driver!r} places resources in "
            "regions (its locations): give region:, or declare regions:",
            doc.loc(base), "e.g. region: fra1, regions: {fra1: {country: DE}}"))
    options: dict[str, Any] = {
        "driver": driver, "args": dict(args), "catalog": catalog,
        "kinds": tuple(sorted(kinds)), "tags": tags, "has_regions": has_regions,
        "snapshots": cls is not None and driver_implements(
            cls, "create_volume_snapshot", "list_volume_snapshots"),
        "key_env": spec.get("key_env") or (None if cred_file else caps.key_env),
    }
    for key in ("secret_env", "credentials_file", "credentials_section", "regions",
                "request_rate"):
        if spec.get(key) is not None:
            options[key] = spec[key]
    options["project_dir"] = str(Path(doc.file).resolve().parent)
    target = Target(name=name, type="libcloud", region=str(region) if region else None,
                    options=options)
    return target, diags
