"""The project file ``cloudtmpl.yaml``: its provider targets, default target and state.

``cloudtmpl.yaml`` (checked in, no secrets) names provider targets::

    providers:
      aws-eu: {type: aws, region: eu-central-1}
    default_target: aws-eu
    state: sqlite:///.cloudtmpl/state.db

The sandbox targets (``sandbox-aws``) always exist; their endpoints are filled
in by the CLI once the sandbox runs.  A target's catalog (sizes, images, regions)
is in :mod:`cloudtmpl.catalog`; ``type: libcloud`` targets are read by
:mod:`cloudtmpl.libcloud_targets`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cloudtmpl.catalog import is_country
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc
from cloudtmpl.hints import suggest
from cloudtmpl.libcloud_targets import SECRET_KEYS, libcloud_target, secret_in_config
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
    # any libcloud compute driver (cloudtmpl.libcloud_targets): credentials by reference
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


def _sandbox_target(cloud: str, region: str) -> Target:
    """The local sandbox's cloud ``cloud`` (its catalog ``sandbox-<cloud>``)."""
    name = f"sandbox-{cloud}"
    return Target(name=name, type=cloud, region=region,
                  options={"catalog": name, "sandbox": cloud}, sandbox=True)


SANDBOX_TARGETS: dict[str, Target] = {
    t.name: t for t in (_sandbox_target("aws", "us-east-1"),
                        _sandbox_target("openstack", "de-fra-1"))
}


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
                    suggest(key, sorted(_PROJECT_KEYS))
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
            hint = suggest(str(key), sorted(allowed)) + f"allowed: {', '.join(sorted(allowed))}"
            if ttype == "libcloud" and str(key).lower() in SECRET_KEYS:
                diags.append(secret_in_config(doc, ("providers", name, key), name))
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
            generic, more = libcloud_target(doc, name, spec)
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
                suggest(str(default), sorted(targets)) + f"known: {', '.join(sorted(targets))}",
            )
        )
    state = data.get("state")
    return targets, default, (str(state) if state is not None else None), diags


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
