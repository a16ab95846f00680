"""Keystone v3: password authentication, token validation and the service catalog.

One user (``sandbox`` / ``sandbox-password``, domain ``Default``) in one project
(``sandbox``).  Tokens go out in ``X-Subject-Token``; every other service checks
``X-Auth-Token`` against them (:func:`check_token`).
"""

from __future__ import annotations

import secrets
from typing import Any

from .core import ApiError, Reply, hex_id, iso, now
from .state import REGIONS, Store

USERNAME = "sandbox"
PASSWORD = "sandbox-password"
PROJECT_NAME = "sandbox"
DOMAIN_NAME = "Default"
DOMAIN_ID = "default"
USER_ID = hex_id("user", USERNAME)
PROJECT_ID = hex_id("project", PROJECT_NAME)

# (type, name, path template below the endpoint); libcloud matches type AND name.
SERVICES = (
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/{region}/v2.1"),
    ("image", "glance", "/image/{region}"),
    ("network", "neutron", "/network/{region}"),
    ("volumev3", "cinderv3", "/volume/{region}/v3/{project_id}"),
    ("block-storage", "cinder", "/volume/{region}/v3/{project_id}"),
    ("object-store", "swift", "/object-store/{region}/v1/AUTH_{project_id}"),
)


def unauthorized(message: str = "The request you have made requires authentication.") -> ApiError:
    return ApiError(
        401,
        {"error": {"code": 401, "message": message, "title": "Unauthorized"}},
        {"WWW-Authenticate": 'Keystone uri="/identity"'},
    )


def catalog(endpoint: str) -> list[dict[str, Any]]:
    entries = []
    for stype, name, template in SERVICES:
        endpoints = []
        for region in REGIONS:
            url = endpoint + template.format(region=region, project_id=PROJECT_ID)
            endpoints.append(
                {
                    "id": hex_id("endpoint", stype, region),
                    "interface": "public",
                    "region": region,
                    "region_id": region,
                    "url": url,
                }
            )
        entries.append(
            {"endpoints": endpoints, "id": hex_id("service", stype), "type": stype, "name": name}
        )
    return entries


def check_token(store: Store, token: str | None) -> str:
    """The project a valid ``X-Auth-Token`` is scoped to, else 401."""
    with store.lock:
        found = store.tokens.get(token or "")
    if found is None or found[0] <= now():
        raise unauthorized()
    return found[1]


def _token_body(endpoint: str, issued: float, expires: float) -> dict[str, Any]:
    domain = {"id": DOMAIN_ID, "name": DOMAIN_NAME}
    return {
        "token": {
            "methods": ["password"],
            "user": {
                "domain": domain,
                "id": USER_ID,
                "name": USERNAME,
                "password_expires_at": None,
            },
            "audit_ids": [secrets.token_urlsafe(16)],
            "expires_at": iso(expires, micro=True) + "Z",
            "issued_at": iso(issued, micro=True) + "Z",
            "project": {"domain": domain, "id": PROJECT_ID, "name": PROJECT_NAME},
            "is_domain": False,
            "roles": [
                {"id": hex_id("role", "member"), "name": "member"},
                {"id": hex_id("role", "reader"), "name": "reader"},
            ],
            "catalog": catalog(endpoint),
        }
    }


def _domain_ok(ref: Any) -> bool:
    if not isinstance(ref, dict):
        return False
    return ref.get("id") == DOMAIN_ID or ref.get("name") == DOMAIN_NAME


def issue_token(store: Store, endpoint: str, body: Any) -> Reply:
    """``POST /v3/auth/tokens`` with the password method, project scope."""
    try:
        auth = body["auth"]
        user = auth["identity"]["password"]["user"]
        project = auth.get("scope", {}).get("project")
    except (KeyError, TypeError):
        raise ApiError(
            400,
            {"error": {"code": 400, "message": "Malformed auth request.", "title": "Bad Request"}},
        ) from None
    user_ok = (user.get("name") == USERNAME and _domain_ok(user.get("domain"))) or user.get(
        "id"
    ) == USER_ID
    if not user_ok or user.get("password") != PASSWORD:
        raise unauthorized()
    if project is not None:
        named = project.get("name") == PROJECT_NAME and _domain_ok(project.get("domain"))
        if not (named or project.get("id") == PROJECT_ID):
            raise unauthorized()
    token = "gAAAAA" + secrets.token_urlsafe(48)
    issued = now()
    expires = issued + store.knobs.token_ttl
    with store.lock:
        store.tokens = {t: v for t, v in store.tokens.items() if v[0] > issued}
        store.tokens[token] = (expires, PROJECT_ID)
    return Reply(201, _token_body(endpoint, issued, expires), {"X-Subject-Token": token})


def handle(store: Store, method: str, path: str, headers: Any, body: Any, endpoint: str) -> Reply:
    """Everything below ``/identity``."""
    path = path.rstrip("/")
    if path in ("", "/v3") and method == "GET":
        version = {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{endpoint}/identity/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }
        return Reply(200, {"version": version} if path else {"versions": {"values": [version]}})
    if path == "/v3/auth/tokens" and method == "POST":
        return issue_token(store, endpoint, body)
    if path == "/v3/auth/tokens" and method == "GET":
        check_token(store, headers.get("X-Auth-Token"))
        subject = headers.get("X-Subject-Token")
        with store.lock:
            found = store.tokens.get(subject or "")
        if found is None or found[0] <= now():
            raise ApiError(
                404,
                {"error": {"code": 404, "message": "Could not find token.", "title": "Not Found"}},
            )
        reply = Reply(
            200, _token_body(endpoint, now(), found[0]), {"X-Subject-Token": subject or ""}
        )
        return reply
    raise ApiError(
        404,
        {
            "error": {
                "code": 404,
                "message": "The resource could not be found.",
                "title": "Not Found",
            }
        },
    )
