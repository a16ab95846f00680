"""AWS settings as the AWS CLI and SDKs read them: the profile, its region, endpoint URLs.

Profile
    the target's ``profile:``, else ``AWS_DEFAULT_PROFILE``, else ``AWS_PROFILE``,
    else ``default`` (botocore's order).
Shared config file
    ``AWS_CONFIG_FILE``, else ``~/.aws/config`` (``~`` is ``$HOME``); the profile's
    section is ``[default]`` or ``[profile NAME]``, read by botocore's own loader.
Region (of a target without ``region:``)
    ``AWS_REGION``, then ``AWS_DEFAULT_REGION``, then the profile's ``region`` - the
    order of the AWS CLI v2 and the AWS SDKs (botocore alone reads only
    ``AWS_DEFAULT_REGION``).  None when nothing sets one.
Endpoint URL of a service
    botocore's "service-specific endpoints"; the first one set wins:

    1. ``AWS_ENDPOINT_URL_<SERVICE>``: the service id upper-cased, spaces and
       hyphens as ``_`` - ``EC2``, ``S3``, ``ROUTE_53``, ``ELASTIC_LOAD_BALANCING``
       (classic ELB), ``STS``;
    2. ``AWS_ENDPOINT_URL``;
    3. ``endpoint_url`` of the service in the profile's services section
       (``services = NAME`` in the profile, then ``[services NAME]`` with
       ``ec2 =`` and an indented ``endpoint_url = URL`` below it; the keys are the
       service ids lower-cased: ``ec2``, ``s3``, ``route_53``,
       ``elastic_load_balancing``, ``sts``);
    4. the profile's own ``endpoint_url``.

    None of them counts when ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` (else the
    profile's ``ignore_configured_endpoint_urls``) is ``true``.

Credentials are not read here: botocore's credential chain resolves them
(:mod:`cloudtmpl.providers.aws.credentials`).  Everything here is a pure function
of the environment mapping and the config file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.configloader
import botocore.exceptions

from cloudtmpl.settings import SettingsError

# cloudtmpl's service names -> the AWS service id in botocore's spelling (env suffix)
SERVICE_IDS = {
    "ec2": "EC2",
    "s3": "S3",
    "route53": "ROUTE_53",
    "elb": "ELASTIC_LOAD_BALANCING",
    "sts": "STS",
}


class AwsSettingsError(SettingsError):
    """The shared config file cannot be read, or names what it does not define."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    source: str  # where it was set: "AWS_ENDPOINT_URL_EC2", "<file> [profile x]", ...


@dataclass(frozen=True)
class AwsSettings:
    """What the environment and the shared config file say for one profile."""

    profile: str
    explicit_profile: bool  # named by the target (not by the environment)
    config_file: Path
    profile_found: bool  # the config file has a section for the profile
    region: str | None
    region_source: str | None
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)  # by SERVICE_IDS key
    endpoint_problem: str | None = None  # raised by endpoint(), as botocore does

    def endpoint(self, service: str) -> Endpoint | None:
        if self.endpoint_problem:
            raise AwsSettingsError(self.endpoint_problem)
        return self.endpoints.get(service)


def profile_name(explicit: str | None, environ: Mapping[str, str]) -> str:
    return str(explicit or environ.get("AWS_DEFAULT_PROFILE") or environ.get("AWS_PROFILE")
               or "default")


def _expand(path: str, environ: Mapping[str, str]) -> Path:
    if path == "~" or path.startswith("~/"):
        home = environ.get("HOME") or str(Path.home())
        return Path(home + path[1:])
    return Path(path)


def config_file(environ: Mapping[str, str]) -> Path:
    return _expand(environ.get("AWS_CONFIG_FILE") or "~/.aws/config", environ)


def credentials_file(environ: Mapping[str, str]) -> Path:
    return _expand(environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials", environ)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"profiles": {}, "services": {}}
    try:
        return dict(botocore.configloader.load_config(str(path)))
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        raise AwsSettingsError(f"cannot read the AWS config file {path}: {exc}") from None


def _true(value: Any) -> bool:
    return str(value).strip().lower() == "true"  # botocore's ensure_boolean


def load(environ: Mapping[str, str], profile: str | None = None) -> AwsSettings:
    """The settings of ``profile`` (else the environment's) from ``environ`` and the file."""
    name = profile_name(profile, environ)
    path = config_file(environ)
    parsed = _read(path)
    profiles = parsed.get("profiles") or {}
    found = name in profiles
    scoped: Mapping[str, Any] = profiles.get(name) or {}
    section = f"{path} [{'default' if name == 'default' else 'profile ' + name}]"

    region, region_source = None, None
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if environ.get(var):
            region, region_source = environ[var].strip(), var
            break
    else:
        if str(scoped.get("region") or "").strip():
            region, region_source = str(scoped["region"]).strip(), section

    endpoints: dict[str, Endpoint] = {}
    problem = None
    ignore = environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
    if not _true(ignore if ignore is not None else scoped.get("ignore_configured_endpoint_urls")):
        services: Mapping[str, Any] = {}
        if scoped.get("services"):
            services_name = str(scoped["services"])
            found_services = (parsed.get("services") or {}).get(services_name)
            if not found_services:
                problem = (f"profile {name!r} in {path} names services section "
                           f"{services_name!r}, which {path} does not define "
                           f"([services {services_name}])")
            services = found_services or {}
        for service, service_id in SERVICE_IDS.items():
            var = f"AWS_ENDPOINT_URL_{service_id}"
            nested = services.get(service_id.lower())
            candidates = (
                (environ.get(var), var),
                (environ.get("AWS_ENDPOINT_URL"), "AWS_ENDPOINT_URL"),
                (nested.get("endpoint_url") if isinstance(nested, Mapping) else None,
                 f"{path} [services {scoped.get('services')}] {service_id.lower()}"),
                (scoped.get("endpoint_url"), section),
            )
            for url, source in candidates:
                if url and str(url).strip():
                    endpoints[service] = Endpoint(str(url).strip(), source)
                    break
    return AwsSettings(profile=name, explicit_profile=bool(profile), config_file=path,
                       profile_found=found, region=region, region_source=region_source,
                       endpoints=endpoints, endpoint_problem=problem)
