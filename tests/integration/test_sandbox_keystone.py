"""The OpenStack emulator's Keystone: application credentials and the token method.

Request and answer shapes follow Keystone's v3 API (``/v3/users/{user_id}/
application_credentials``, ``POST /v3/auth/tokens`` with the methods
``application_credential`` and ``token``), errors included.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from tests.integration.keystone_api import (
    Answer,
    authenticate,
    creds_path,
    http,
    password_token,
)


def app_cred_identity(cred: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    return {"methods": ["application_credential"],
            "application_credential": {**cred, "secret": secret}}




def create(info: dict[str, Any], token: str, user_id: str, **fields: Any) -> Answer:
    return http(info, "POST", creds_path(user_id), {"application_credential": fields}, token)


def compute_ok(info: dict[str, Any], token: str) -> int:
    return http(info, "GET", "/compute/de-fra-1/v2.1/flavors", token=token)[0]


@pytest.fixture
def admin(openstack_reset: dict[str, Any]) -> tuple[str, str]:
    """A project-scoped password token and the user's id."""
    token, body = password_token(openstack_reset)
    return token, body["user"]["id"]


def test_create_list_show_and_delete(openstack_reset: dict[str, Any],
                                     admin: tuple[str, str]) -> None:
    info = openstack_reset
    token, user_id = admin
    status, _, body = create(info, token, user_id, name="ci", description="runners")
    assert status == 201, body
    cred = body["application_credential"]
    assert cred["name"] == "ci" and cred["description"] == "runners"
    assert len(cred["secret"]) >= 64 and cred["unrestricted"] is False
    assert cred["expires_at"] is None and cred["project_id"]
    assert {r["name"] for r in cred["roles"]} == {"member", "reader"}  # the token's roles
    assert cred["links"]["self"].endswith(creds_path(user_id, cred["id"]))

    # the secret is in the create answer only
    status, _, shown = http(info, "GET", creds_path(user_id, cred["id"]), token=token)
    assert status == 200 and "secret" not in shown["application_credential"]
    assert shown["application_credential"]["id"] == cred["id"]
    create(info, token, user_id, name="other", secret="chosen-secret")
    status, _, listed = http(info, "GET", creds_path(user_id), token=token)
    assert status == 200 and sorted(c["name"] for c in listed["application_credentials"]) == [
        "ci", "other"]
    assert all("secret" not in c for c in listed["application_credentials"])
    status, _, named = http(info, "GET", creds_path(user_id) + "?name=ci", token=token)
    assert [c["id"] for c in named["application_credentials"]] == [cred["id"]]

    # a second one of the same name, another user's, no token, no name: refused
    status, _, body = create(info, token, user_id, name="ci")
    assert status == 409 and body["error"]["title"] == "Conflict"
    assert create(info, token, "someone-else", name="x")[0] == 403
    assert create(info, "", user_id, name="x")[0] == 401
    status, _, body = create(info, token, user_id, description="no name")
    assert status == 400 and "'name' is a required property" in body["error"]["message"]
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat()
    status, _, body = create(info, token, user_id, name="old", expires_at=past)
    assert status == 400 and "must not be before now" in body["error"]["message"]
    status, _, body = create(info, token, user_id, name="admin", roles=[{"name": "admin"}])
    assert status == 400 and "unassigned role" in body["error"]["message"]
    status, _, body = create(info, token, user_id, name="reader", roles=[{"name": "reader"}])
    assert status == 201 and [r["name"] for r in body["application_credential"]["roles"]] == [
        "reader"]

    # delete: gone, and so are the tokens made from it
    status, headers, _ = authenticate(info, app_cred_identity({"id": cred["id"]},
                                                              cred["secret"]))
    cred_token = headers["X-Subject-Token"]
    assert compute_ok(info, cred_token) == 200
    assert http(info, "DELETE", creds_path(user_id, cred["id"]), token=token)[0] == 204
    assert compute_ok(info, cred_token) == 401
    assert http(info, "GET", creds_path(user_id, cred["id"]), token=token)[0] == 404
    assert http(info, "DELETE", creds_path(user_id, cred["id"]), token=token)[0] == 404
    status, _, body = authenticate(info, app_cred_identity({"id": cred["id"]}, cred["secret"]))
    assert status == 404 and "Could not find Application Credential" in body["error"]["message"]

    # /_sandbox/reset forgets every application credential
    http(info, "POST", "/_sandbox/reset")
    status, _, listed = http(info, "GET", creds_path(user_id), token=token)
    assert status == 200 and listed["application_credentials"] == []


def test_authenticate_with_an_application_credential(openstack_reset: dict[str, Any],
                                                     admin: tuple[str, str]) -> None:
    info = openstack_reset
    token, user_id = admin
    cred = create(info, token, user_id, name="ci", roles=[{"name": "member"}])[2][
        "application_credential"]
    status, headers, body = authenticate(info, app_cred_identity({"id": cred["id"]},
                                                                 cred["secret"]))
    assert status == 201, body
    issued = body["token"]
    assert issued["methods"] == ["application_credential"]
    assert issued["project"]["id"] == cred["project_id"]  # the credential's project
    assert [r["name"] for r in issued["roles"]] == ["member"]  # the credential's roles
    assert issued["application_credential"] == {"id": cred["id"], "name": "ci",
                                                 "restricted": True}
    assert {e["type"] for e in issued["catalog"]} >= {"compute", "network", "volumev3"}
    assert compute_ok(info, headers["X-Subject-Token"]) == 200

    # by name, with its user by name and domain (or by id)
    by_name = {"name": "ci", "user": {"name": info["username"], "domain": {"id": "default"}}}
    assert authenticate(info, app_cred_identity(by_name, cred["secret"]))[0] == 201
    by_user_id = {"name": "ci", "user": {"id": user_id}}
    assert authenticate(info, app_cred_identity(by_user_id, cred["secret"]))[0] == 201

    # wrong secret, unknown name, other user, unknown id, another project: refused
    assert authenticate(info, app_cred_identity({"id": cred["id"]}, "wrong"))[0] == 401
    assert authenticate(info, app_cred_identity({"id": cred["id"]}))[0] == 401
    assert authenticate(info, app_cred_identity({**by_name, "name": "nope"},
                                                cred["secret"]))[0] == 401
    stranger = {"name": "ci", "user": {"name": "mallory", "domain": {"id": "default"}}}
    assert authenticate(info, app_cred_identity(stranger, cred["secret"]))[0] == 401
    assert authenticate(info, app_cred_identity({"id": "0" * 32}, cred["secret"]))[0] == 404
    other_project = {"project": {"id": "0" * 32}}
    assert authenticate(info, app_cred_identity({"id": cred["id"]}, cred["secret"]),
                        other_project)[0] == 401
    # a restricted credential's token may not manage application credentials
    cred_token = headers["X-Subject-Token"]
    assert create(info, cred_token, user_id, name="escalate")[0] == 403
    assert http(info, "DELETE", creds_path(user_id, cred["id"]), token=cred_token)[0] == 403
    # an unrestricted one's may
    free = create(info, token, user_id, name="free", unrestricted=True)[2][
        "application_credential"]
    free_token = authenticate(info, app_cred_identity({"id": free["id"]},
                                                      free["secret"]))[1]["X-Subject-Token"]
    assert create(info, free_token, user_id, name="made-by-free")[0] == 201


def test_an_expired_application_credential_is_refused(openstack_reset: dict[str, Any],
                                                      admin: tuple[str, str]) -> None:
    info = openstack_reset
    token, user_id = admin
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)
    status, _, body = create(info, token, user_id, name="short",
                             expires_at=expires.strftime("%Y-%m-%dT%H:%M:%S.%f"))
    assert status == 201, body
    cred = body["application_credential"]
    assert cred["expires_at"].startswith(expires.strftime("%Y-%m-%dT%H:%M:%S"))
    status, headers, body = authenticate(info, app_cred_identity({"id": cred["id"]},
                                                                 cred["secret"]))
    assert status == 201
    # the token does not outlive the credential
    token_expiry = dt.datetime.fromisoformat(body["token"]["expires_at"].replace("Z", "+00:00"))
    assert token_expiry <= expires + dt.timedelta(milliseconds=1)
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 0.2)
    status, _, body = authenticate(info, app_cred_identity({"id": cred["id"]},
                                                           cred["secret"]))
    assert status == 401 and body["error"]["title"] == "Unauthorized"
    assert compute_ok(info, headers["X-Subject-Token"]) == 401


def test_the_token_method(openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    token, first = password_token(info)
    status, headers, body = authenticate(info, {"methods": ["token"], "token": {"id": token}},
                                         {"project": {"name": "sandbox",
                                                      "domain": {"name": "Default"}}})
    assert status == 201, body
    issued = body["token"]
    assert issued["methods"] == ["token", "password"]
    assert issued["expires_at"] == first["expires_at"]  # never extends the original
    assert issued["project"]["name"] == "sandbox"
    assert compute_ok(info, headers["X-Subject-Token"]) == 200
    # an unscoped token serves no project API; the token method scopes it
    unscoped, body = password_token(info, "unscoped")
    assert "project" not in body and "catalog" not in body
    assert compute_ok(info, unscoped) == 401
    status, headers, body = authenticate(info, {"methods": ["token"], "token": {"id": unscoped}},
                                         {"project": {"id": first["project"]["id"]}})
    assert status == 201 and compute_ok(info, headers["X-Subject-Token"]) == 200
    # unknown token, no id, unsupported method
    status, _, body = authenticate(info, {"methods": ["token"], "token": {"id": "gAAAAAnope"}})
    assert status == 404 and "Could not find token" in body["error"]["message"]
    assert authenticate(info, {"methods": ["token"], "token": {}})[0] == 400
    status, _, body = authenticate(info, {"methods": ["totp"], "totp": {}})
    assert status == 401 and "unsupported method" in body["error"]["message"]
