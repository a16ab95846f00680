"""The Keystone v3 credentials of an OpenStack target, and how libcloud is given them.

Where they come from (:func:`resolve_auth`): a sandbox target's options; else the
``clouds.yaml`` entry that ``cloud:`` (else ``OS_CLOUD``) names, with ``secure.yaml``
merged in (search path and merge: :mod:`cloudtmpl.settings.openstack`); else the
``OS_*`` variables.

Three keystoneauth ``auth_type`` s, as openstacksdk reads them (``auth:`` keys;
``OS_<KEY>`` upper-cased in the environment, ``OS_AUTH_TYPE`` for the type):

* ``password``/``v3password`` (the default): ``username`` (or ``user_id``) and
  ``password``, ``user_domain_name``/``_id``, a project (``project_name`` or
  ``project_id``, ``project_domain_name``/``_id``; ``domain_name``/``domain_id``
  stand for both domains);
* ``v3applicationcredential`` (what CI runners use): ``application_credential_id``
  and ``application_credential_secret``, or ``application_credential_name`` +
  the owner (``user_id``, or ``username`` with ``user_domain_name``/``_id``) + the
  secret.  The token is scoped to the credential's project (no project keys);
* ``token``/``v3token``: an existing ``token`` and a project to scope the new one to.

libcloud's Keystone connection sends the request (``POST /v3/auth/tokens``), keeps
and renews the token; the body it sends is :meth:`OpenStackAuth.auth_body` (the
adapter replaces libcloud's own, which knows neither application credentials by
name nor the token method nor project ids).  Secrets never show in a repr or a
message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudtmpl.model import Target
from cloudtmpl.providers.base import CloudError
from cloudtmpl.settings import openstack as os_settings

# Every ``auth:`` key read (clouds.yaml, or OS_<KEY> in the environment).
AUTH_FIELDS = ("auth_url", "username", "user_id", "password", "project_name", "project_id",
               "user_domain_name", "user_domain_id", "project_domain_name",
               "project_domain_id", "application_credential_id",
               "application_credential_name", "application_credential_secret", "token")


@dataclass(frozen=True)
class OpenStackAuth:
    """Keystone v3 credentials of one target (never logged: repr hides the secrets)."""

    auth_url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    project_name: str | None = None
    project_id: str | None = None
    user_domain_name: str | None = None
    user_domain_id: str | None = None
    project_domain_name: str | None = None
    project_domain_id: str | None = None
    region_name: str | None = None
    source: str = ""
    method: str = "password"  # Keystone's: password, application_credential, token
    user_id: str | None = None
    application_credential_id: str | None = None
    application_credential_name: str | None = None
    application_credential_secret: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @property
    def identity_url(self) -> str:
        """The auth URL without a trailing ``/v3`` (libcloud appends ``/v3/auth/tokens``)."""
        url = self.auth_url.rstrip("/")
        for suffix in ("/v3", "/v3.0"):
            if url.endswith(suffix):
                url = url[: -len(suffix)]
        return url

    @property
    def who(self) -> str:
        """Who authenticates, for messages (no secret)."""
        if self.method == "application_credential":
            return ("application credential "
                    f"{self.application_credential_id or self.application_credential_name!r}")
        if self.method == "token":
            return "a token"
        return f"user {self.username or self.user_id!r}"

    def _user(self) -> dict[str, Any]:
        if self.user_id:
            return {"id": self.user_id}
        domain = ({"id": self.user_domain_id} if self.user_domain_id
                  else {"name": self.user_domain_name or "Default"})
        return {"name": self.username, "domain": domain}

    def _project_scope(self) -> dict[str, Any]:
        project: dict[str, Any]
        if self.project_id:
            return {"project": {"id": self.project_id}}
        project = {"name": self.project_name}
        if self.project_domain_id:
            project["domain"] = {"id": self.project_domain_id}
        elif self.project_domain_name:
            project["domain"] = {"name": self.project_domain_name}
        elif self.user_domain_id:
            project["domain"] = {"id": self.user_domain_id}
        else:
            project["domain"] = {"name": self.user_domain_name or "Default"}
        return {"project": project}

    def auth_body(self) -> dict[str, Any]:
        """The ``POST /v3/auth/tokens`` body for the method."""
        if self.method == "application_credential":
            cred: dict[str, Any] = {"secret": self.application_credential_secret}
            if self.application_credential_id:
                cred["id"] = self.application_credential_id
            else:
                cred["name"] = self.application_credential_name
                cred["user"] = self._user()
            return {"auth": {"identity": {"methods": ["application_credential"],
                                          "application_credential": cred}}}
        if self.method == "token":
            return {"auth": {"identity": {"methods": ["token"], "token": {"id": self.token}},
                             "scope": self._project_scope()}}
        user = {**self._user(), "password": self.password}
        return {"auth": {"identity": {"methods": ["password"], "password": {"user": user}},
                         "scope": self._project_scope()}}

    def libcloud_args(self) -> tuple[str, str, dict[str, Any]]:
        """(key, secret, keyword arguments) for a libcloud OpenStack driver.

        libcloud's Keystone v3 classes: ``3.x_appcred`` for application credentials
        (unscoped: no project needed), ``3.x_password`` for the others.  The body
        they send is replaced by :meth:`auth_body`, so key and secret only have to
        satisfy their constructors.
        """
        kwargs: dict[str, Any] = {"ex_force_auth_url": self.identity_url}
        if self.method == "application_credential":
            kwargs["ex_force_auth_version"] = "3.x_appcred"
            key = str(self.application_credential_id or self.application_credential_name)
            return key, str(self.application_credential_secret), kwargs
        kwargs.update(
            ex_force_auth_version="3.x_password",
            ex_tenant_name=self.project_name or self.project_id,
            ex_domain_name=self.user_domain_name or "Default",
            ex_tenant_domain_id=self.project_domain_id or "default",
        )
        if self.method == "token":
            return "token", str(self.token), kwargs
        return str(self.username or self.user_id), str(self.password), kwargs


def _text_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _missing(method: str, vals: Mapping[str, str | None]) -> list[str]:
    missing = [] if vals["auth_url"] else ["auth_url"]
    has_project = vals["project_name"] or vals["project_id"]
    if method == "application_credential":
        if not vals["application_credential_secret"]:
            missing.append("application_credential_secret")
        if not vals["application_credential_id"]:
            if not vals["application_credential_name"]:
                missing.append("application_credential_id (or application_credential_name)")
            elif not vals["user_id"] and not vals["username"]:
                missing.append("user_id (or username) of the application credential's owner")
        return missing
    if method == "token":
        missing += [] if vals["token"] else ["token"]
    else:
        if not vals["username"] and not vals["user_id"]:
            missing.append("username")
        missing += [] if vals["password"] else ["password"]
    if not has_project:
        missing.append("project_name (or project_id)")
    return missing


def _auth_from_fields(target: str, values: Mapping[str, Any], auth_type: Any, region: Any,
                      source: str, where: str) -> OpenStackAuth:
    try:
        method = os_settings.auth_method(auth_type, where)
    except os_settings.CloudsYamlError as err:
        raise CloudError(f"target {target!r}: {err.message}", permanent=True) from None
    vals = {k: _text_or_none(values.get(k)) for k in AUTH_FIELDS}
    # openstacksdk: domain_name/domain_id stand for both the user's and project's domain
    for kind in ("name", "id"):
        common = _text_or_none(values.get(f"domain_{kind}"))
        if common:
            for who in ("user", "project"):
                vals[f"{who}_domain_{kind}"] = vals[f"{who}_domain_{kind}"] or common
    missing = _missing(method, vals)
    if missing:
        raise CloudError(f"target {target!r}: {where} lacks {', '.join(missing)} "
                         f"(auth_type {auth_type or 'password'})", permanent=True)
    return OpenStackAuth(**{k: v for k, v in vals.items() if k != "auth_url"},
                         auth_url=str(vals["auth_url"]), method=method,
                         region_name=_text_or_none(region), source=source)


def load_clouds_yaml(target: str, cloud: str, environ: Mapping[str, str], cwd: Path,
                     home: Path) -> OpenStackAuth:
    """The credentials of ``cloud`` from the first ``clouds.yaml`` that names it."""
    try:
        entry = os_settings.find_cloud(cloud, environ, cwd, home)
        if entry is None:
            raise CloudError(
                f"target {target!r}: no cloud {cloud!r} in clouds.yaml (searched: "
                f"{os_settings.searched(environ, cwd, home)})", permanent=True)
        region, _ = os_settings.default_region(entry, {})  # the entry's own first region
    except os_settings.CloudsYamlError as err:
        raise CloudError(f"target {target!r}: {err.message}", permanent=True) from None
    raw_auth = entry.config.get("auth")
    auth: Mapping[str, Any] = raw_auth if isinstance(raw_auth, Mapping) else {}
    return _auth_from_fields(target, auth, entry.config.get("auth_type"), region,
                             entry.source, f"cloud {cloud!r} in {entry.source}")


def resolve_auth(target: Target, environ: Mapping[str, str], cwd: Path,
                 home: Path) -> OpenStackAuth:
    """Credentials from the ecosystem's own places (see the module docstring).

    Sandbox targets: their options.  Otherwise ``cloud`` in the target (else
    ``OS_CLOUD``) names a ``clouds.yaml`` entry; without either, the ``OS_*``
    variables.
    """
    opts = target.options
    if target.sandbox:
        return _auth_from_fields(target.name, opts, opts.get("auth_type"),
                                 opts.get("region_name"), "sandbox target options",
                                 "the sandbox target's options")
    cloud = opts.get("cloud") or environ.get("OS_CLOUD")
    if cloud:
        return load_clouds_yaml(target.name, str(cloud), environ, cwd, home)
    if environ.get("OS_AUTH_URL"):
        values = {k: environ.get(f"OS_{k.upper()}") for k in AUTH_FIELDS}
        values["domain_name"] = environ.get("OS_DOMAIN_NAME")
        values["domain_id"] = environ.get("OS_DOMAIN_ID")
        if not values["project_name"]:
            values["project_name"] = environ.get("OS_TENANT_NAME")
        return _auth_from_fields(target.name, values, environ.get("OS_AUTH_TYPE"),
                                 environ.get("OS_REGION_NAME"), "OS_* environment variables",
                                 "the OS_* environment")
    raise CloudError(
        f"no OpenStack credentials for target {target.name!r}: name a clouds.yaml entry "
        f"with `cloud:` in cloudtmpl.yaml or OS_CLOUD (clouds.yaml searched: "
        f"{os_settings.searched(environ, cwd, home)}), or set OS_AUTH_URL and "
        "OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, OS_USER_DOMAIN_NAME, "
        "OS_PROJECT_DOMAIN_NAME (or OS_AUTH_TYPE=v3applicationcredential with "
        "OS_APPLICATION_CREDENTIAL_ID and OS_APPLICATION_CREDENTIAL_SECRET)", permanent=True)
