"""Keystone requests against the OpenStack sandbox, for the tests of its identity
service and of credentials."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from cloudtmpl_sandbox import control

Answer = tuple[int, dict[str, str], Any]


def http(info: dict[str, Any], method: str, path: str, body: Any = None,
         token: str | None = None) -> Answer:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(info["endpoint"] + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    if path.startswith("/_sandbox/"):
        req.add_header(control.TOKEN_HEADER, info["token"])
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, headers, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        status, headers, raw = err.code, dict(err.headers), err.read()
    return status, headers, json.loads(raw) if raw else None


def authenticate(info: dict[str, Any], identity: dict[str, Any],
                 scope: Any = None) -> Answer:
    auth: dict[str, Any] = {"identity": identity}
    if scope is not None:
        auth["scope"] = scope
    return http(info, "POST", "/identity/v3/auth/tokens", {"auth": auth})


def password_identity(info: dict[str, Any]) -> dict[str, Any]:
    return {"methods": ["password"], "password": {"user": {
        "name": info["username"], "domain": {"name": "Default"}, "password": info["password"]}}}


def password_token(info: dict[str, Any], scope: Any = None) -> tuple[str, dict[str, Any]]:
    status, headers, body = authenticate(info, password_identity(info), scope)
    assert status == 201, body
    return headers["X-Subject-Token"], body["token"]


def creds_path(user_id: str, cred_id: str = "") -> str:
    return f"/identity/v3/users/{user_id}/application_credentials" + (
        f"/{cred_id}" if cred_id else "")
