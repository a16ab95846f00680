"""``type: libcloud`` targets of ``cloudtmpl.yaml``: any libcloud compute driver, what
it can do for cloudtmpl (kinds, tags, regions: built in per driver or read from the
driver class's verbs), and the checks that keep credentials out of the project file::

    do-ams:
      type: libcloud
      driver: digitalocean            # any libcloud compute provider id
      key_env: DIGITALOCEAN_ACCESS_TOKEN  # the variable's NAME; or credentials_file:
      args: {api_version: v2}         # non-secret constructor arguments
      region: ams3
      capabilities: {kinds: [Cloud::Compute::Server], tags: false}
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudtmpl.capabilities import ATTACHMENT as _ATTACHMENT
from cloudtmpl.capabilities import KEYPAIR as _KEYPAIR
from cloudtmpl.capabilities import LIBCLOUD_KINDS
from cloudtmpl.capabilities import SERVER as _SERVER
from cloudtmpl.capabilities import VOLUME as _VOLUME
from cloudtmpl.catalog import load_catalog
from cloudtmpl.diagnostics import Diagnostic
from cloudtmpl.hints import suggest
from cloudtmpl.loader import Document
from cloudtmpl.model import Target

# Keys that would hold a secret: never in cloudtmpl.yaml (a target's keys or its args).
SECRET_KEYS = frozenset({
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


def secret_in_config(doc: Document, path: tuple[str | int, ...], target: str) -> Diagnostic:
    return Diagnostic(
        "config-credentials",
        f"target {target!r}: {path[-1]!r} would put a credential in cloudtmpl.yaml, "
        "which is checked in",
        doc.key_loc(path),
        "name the environment variable that holds it (key_env: DIGITALOCEAN_ACCESS_TOKEN, "
        "secret_env: ...), or a credentials_file outside the project (INI, mode 0600)",
    )


def libcloud_target(doc: Document, name: str, spec: Mapping[str, Any]
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
        if str(arg).lower() in SECRET_KEYS or str(arg).lower().endswith(
                ("_key", "_secret", "_password", "_token")):
            diags.append(secret_in_config(doc, (*base, "args", arg), name))
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
                                    f"target {name!r}", loc, suggest(str(key), sorted(
                                        _CAPABILITY_KEYS)) + "allowed: kinds, tags, regions"))
        elif key == "kinds":
            wanted = value if isinstance(value, list) else [value]
            bad = [str(k) for k in wanted if k not in LIBCLOUD_KINDS]
            if bad:
                diags.append(Diagnostic(
                    "config-capabilities", f"target {name!r}: libcloud targets cannot provide "
                    f"{', '.join(bad)}", loc, suggest(bad[0], sorted(LIBCLOUD_KINDS))
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
