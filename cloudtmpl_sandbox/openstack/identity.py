"""Keystone v3: tokens (password, application credential, token), application
credentials, token validation and the service catalog.

One user (``sandbox`` / ``sandbox-password``, domain ``Default``, default project
``sandbox``) in one project (``sandbox``) with the roles ``member`` and ``reader``.
Tokens go out in ``X-Subject-Token``; every other service checks ``X-Auth-Token``
against them (:func:`check_token`: a valid, project-scoped token).

``POST /v3/auth/tokens`` takes one method, as Keystone does:

* ``password`` - the user by id or by name and domain; the scope: the request's
  project, else the user's default project; ``"scope": "unscoped"`` gives a token
  without project (which no service accepts);
* ``application_credential`` - by ``id``, or by ``name`` and its ``user``, with the
  ``secret``: an unknown id is a 404, a wrong secret or an expired credential a 401;
  the token is scoped to the credential's project (another scope is a 401), carries
  its roles and expires no later than the credential;
* ``token`` - an existing token (unknown or expired: 404); the new token keeps the
  old one's expiry (Keystone's rule), scoped as asked, else as the old one.

What a project member may read of the directory, as Keystone's default policies let
it: ``/v3/auth/projects``, ``/v3/users/{me}/projects`` and ``/v3/projects/{ours}``
(its one project), ``/v3/users/{me}`` and the regions (``/v3/regions[/{id}]``);
listing every project or user (``/v3/projects``, ``/v3/users``) and reading another
user or project is a 403 ("identity:list_users", ...).  The directory an admin manages
(``admin`` / ``admin-password``, project ``admin``: domains, projects, users, groups,
roles, assignments, regions, services, endpoints) is :mod:`.identity_models` and
:mod:`.identity_responses`; its users sign in with the ``password`` method too.

Application credentials (``/v3/users/{user_id}/application_credentials``):
create (201; ``name`` required and unique per user - 409 otherwise; ``secret``
generated unless given, returned by this answer only, stored hashed;
``expires_at`` must lie in the future; ``roles`` a subset of the token's -
400 otherwise), list (``?name=``), show, delete (204; the credential's tokens are
revoked).  Only the user itself may manage its credentials (403), and a token
made from a restricted application credential may not (403).  ``/_sandbox/reset``
deletes every application credential.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from . import identity_models, identity_responses
from .core import ApiError, Reply, hex_id, iso, now
from .state import REGIONS, Store

USERNAME = "sandbox"
PASSWORD = "sandbox-password"
PROJECT_NAME = "sandbox"
DOMAIN_NAME = "Default"
DOMAIN_ID = "default"
USER_ID = hex_id("user", USERNAME)
PROJECT_ID = hex_id("project", PROJECT_NAME)
ROLES = ({"id": hex_id("role", "member"), "name": "member"},
         {"id": hex_id("role", "reader"), "name": "reader"})

# (type, name, path template below the endpoint); libcloud matches type AND name.
SERVICES = (
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/{region}/v2.1"),
    ("image", "glance", "/image/{region}"),
    ("network", "neutron", "/network/{region}"),
    ("volumev3", "cinderv3", "/volume/{region}/v3/{project_id}"),
    ("block-storage", "cinder", "/volume/{region}/v3/{project_id}"),
    ("object-store", "swift", "/object-store/{region}/v1/AUTH_{project_id}"),
    ("load-balancer", "octavia", "/load-balancer/{region}"),
    ("key-manager", "barbican", "/key-manager/{region}"),
)


@dataclass(frozen=True)
class Token:
    """What a token stands for (``Store.tokens`` maps the token string to one)."""

    expires: float
    project_id: str | None  # None: unscoped
    methods: tuple[str, ...]
    user_id: str = USER_ID
    app_cred: str | None = None  # the application credential it was made from
    roles: tuple[str, ...] = tuple(r["id"] for r in ROLES)


def seed_directory() -> identity_models.Directory:
    """The directory (:mod:`.identity_models`) a reset leaves: this module's user,
    project and roles, the admin, the catalog's services and endpoints, the regions."""
    return identity_models.seed(SERVICES, REGIONS, USERNAME, PASSWORD, PROJECT_NAME,
                                tuple(r["name"] for r in ROLES))


def _error(status: int, title: str, message: str) -> ApiError:
    return ApiError(status, {"error": {"code": status, "message": message, "title": title}})


def unauthorized(message: str = "The request you have made requires authentication.") -> ApiError:
    return ApiError(
        401,
        {"error": {"code": 401, "message": message, "title": "Unauthorized"}},
        {"WWW-Authenticate": 'Keystone uri="/identity"'},
    )


def _bad(message: str) -> ApiError:
    return _error(400, "Bad Request", message)


def _forbidden(message: str) -> ApiError:
    return _error(403, "Forbidden", f"You are not authorized to perform the requested "
                                    f"action: {message}")


def _not_found(message: str) -> ApiError:
    return _error(404, "Not Found", message)


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


def _valid(store: Store, token: str | None) -> Token | None:
    with store.lock:
        found = store.tokens.get(token or "")
    if not isinstance(found, Token) or found.expires <= now():
        return None
    return found


def check_token(store: Store, token: str | None) -> str:
    """The project a valid, project-scoped ``X-Auth-Token`` is scoped to, else 401."""
    found = _valid(store, token)
    if found is None or found.project_id is None:
        raise unauthorized()
    return found.project_id


def _token_body(endpoint: str, store: Store, token: Token, issued: float) -> dict[str, Any]:
    domain = {"id": DOMAIN_ID, "name": DOMAIN_NAME}
    with store.lock:  # the directory's names (a user other than the sandbox's)
        d = store.keystone
        user_name = d.users.get(token.user_id, {}).get("name", USERNAME)
        project_name = d.projects.get(token.project_id, {}).get("name", PROJECT_NAME)
        roles = [{"id": r, "name": d.roles[r]["name"]} for r in token.roles if r in d.roles]
    body: dict[str, Any] = {
        "methods": list(token.methods),
        "user": {"domain": domain, "id": token.user_id, "name": user_name,
                 "password_expires_at": None},
        "audit_ids": [secrets.token_urlsafe(16)],
        "expires_at": iso(token.expires, micro=True) + "Z",
        "issued_at": iso(issued, micro=True) + "Z",
    }
    if token.project_id is not None:
        body.update(
            project={"domain": domain, "id": token.project_id, "name": project_name},
            is_domain=False,
            roles=roles,
            catalog=catalog(endpoint),
        )
    if token.app_cred is not None:
        with store.lock:
            cred = store.app_creds.get(token.app_cred) or {}
        body["application_credential"] = {"id": token.app_cred, "name": cred.get("name"),
                                          "restricted": not cred.get("unrestricted")}
    return {"token": body}


def _domain_ok(ref: Any) -> bool:
    if not isinstance(ref, dict):
        return False
    return ref.get("id") == DOMAIN_ID or ref.get("name") == DOMAIN_NAME


def _user_ok(user: Any) -> bool:
    """The (only) user, named by id or by name and domain."""
    if not isinstance(user, dict):
        return False
    if user.get("id"):
        return bool(user["id"] == USER_ID)
    return user.get("name") == USERNAME and _domain_ok(user.get("domain"))


def _scope(auth: dict[str, Any]) -> tuple[bool, str | None]:
    """(asked for a scope, the project it names): 401 for a project that is not ours."""
    scope = auth.get("scope")
    if scope is None:
        return False, None
    if scope == "unscoped":
        return True, None
    project = scope.get("project") if isinstance(scope, dict) else None
    if not isinstance(project, dict):
        raise unauthorized()  # a domain or system scope: no such role assignment here
    named = project.get("name") == PROJECT_NAME and _domain_ok(project.get("domain"))
    if not (named or project.get("id") == PROJECT_ID):
        raise unauthorized()
    return True, PROJECT_ID


def _hash(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, 10_000)
    return base64.b64encode(salt + digest).decode()


def _secret_ok(secret: Any, stored: str) -> bool:
    raw = base64.b64decode(stored)
    salt, digest = raw[:16], raw[16:]
    given = hashlib.pbkdf2_hmac("sha256", str(secret or "").encode(), salt, 10_000)
    return hmac.compare_digest(given, digest)


def _app_cred_token(store: Store, auth: dict[str, Any], payload: Any) -> Token:
    if not isinstance(payload, dict):
        raise _bad("Expecting to find application_credential in identity. The server could "
                   "not comply with the request since it is either malformed or otherwise "
                   "incorrect. The client is assumed to be in error.")
    with store.lock:
        if payload.get("id"):
            cred = store.app_creds.get(str(payload["id"]))
            if cred is None:
                raise _not_found(f"Could not find Application Credential: {payload['id']}.")
        elif payload.get("name"):
            if not _user_ok(payload.get("user")):
                raise unauthorized()
            cred = next((c for c in store.app_creds.values()
                         if c["name"] == payload["name"] and c["user_id"] == USER_ID), None)
            if cred is None:
                raise unauthorized()
        else:
            raise _bad("Invalid input for field 'identity': application credential needs "
                       "an id or a name")
        cred = dict(cred)
    if not _secret_ok(payload.get("secret"), cred["secret_hash"]):
        raise unauthorized()
    expires = store.knobs.token_ttl + now()
    if cred["expires"] is not None:
        if cred["expires"] <= now():
            raise unauthorized()
        expires = min(expires, cred["expires"])
    asked, project = _scope(auth)
    if asked and project != cred["project_id"]:
        raise unauthorized()
    return Token(expires, cred["project_id"], ("application_credential",), cred["user_id"],
                 cred["id"], tuple(r["id"] for r in cred["roles"]))


def _token_token(store: Store, auth: dict[str, Any], payload: Any) -> Token:
    if not isinstance(payload, dict) or not payload.get("id"):
        raise _bad("Expecting to find id in token. The server could not comply with the "
                   "request since it is either malformed or otherwise incorrect. The client "
                   "is assumed to be in error.")
    old = _valid(store, str(payload["id"]))
    if old is None:
        raise _not_found(f"Could not find token: {payload['id']}.")
    asked, project = _scope(auth)
    methods = ("token", *[m for m in old.methods if m != "token"])
    return Token(old.expires, project if asked else old.project_id, methods, old.user_id,
                 old.app_cred, old.roles)


def _password_token(store: Store, auth: dict[str, Any], payload: Any) -> Token:
    user = payload.get("user") if isinstance(payload, dict) else None
    if not isinstance(user, dict):
        raise _bad("Malformed auth request.")
    if not _user_ok(user):  # another user of the directory (the admin, or one made)
        with store.lock:
            try:
                user_id, project_id, roles = identity_models.login(
                    store.keystone, user, auth.get("scope"))
            except identity_models.Refused:
                raise unauthorized() from None
        return Token(now() + store.knobs.token_ttl, project_id, ("password",), user_id,
                     roles=roles)
    if user.get("password") != PASSWORD:
        raise unauthorized()
    asked, project = _scope(auth)
    return Token(now() + store.knobs.token_ttl, project if asked else PROJECT_ID,
                 ("password",))


_METHODS = {"password": _password_token, "application_credential": _app_cred_token,
            "token": _token_token}


def issue_token(store: Store, endpoint: str, body: Any) -> Reply:
    """``POST /v3/auth/tokens``."""
    try:
        auth = body["auth"]
        identity = auth["identity"]
        methods = identity["methods"]
    except (KeyError, TypeError):
        raise _bad("Malformed auth request.") from None
    if not isinstance(methods, list) or len(methods) != 1 or methods[0] not in _METHODS:
        raise unauthorized("Attempted to authenticate with an unsupported method.")
    method = methods[0]
    token = _METHODS[method](store, auth, identity.get(method))
    value = "gAAAAA" + secrets.token_urlsafe(48)
    issued = now()
    with store.lock:
        store.tokens = {t: v for t, v in store.tokens.items() if v.expires > issued}
        store.tokens[value] = token
    return Reply(201, _token_body(endpoint, store, token, issued), {"X-Subject-Token": value})


# ------------------------------------------------------------ application credentials


def _cred_view(endpoint: str, cred: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": cred["id"], "name": cred["name"], "description": cred["description"],
        "expires_at": iso(cred["expires"], micro=True) if cred["expires"] else None,
        "project_id": cred["project_id"], "unrestricted": cred["unrestricted"],
        "roles": [{**r, "domain_id": None} for r in cred["roles"]], "access_rules": [],
        "links": {"self": f"{endpoint}/identity/v3/users/{cred['user_id']}/"
                          f"application_credentials/{cred['id']}"},
    }


def _caller(store: Store, headers: Any, user_id: str, manage: bool) -> Token:
    token = _valid(store, headers.get("X-Auth-Token"))
    if token is None:
        raise unauthorized()
    if manage and token.app_cred is not None:
        with store.lock:
            cred = store.app_creds.get(token.app_cred) or {}
        if not cred.get("unrestricted"):
            raise _forbidden("Using method 'application_credential' is not allowed for "
                             "managing additional application credentials.")
    if user_id != token.user_id:
        raise _forbidden("Cannot manage the application credentials of another user.")
    return token


def _parse_expiry(value: Any) -> float | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"Invalid input for field 'expires_at': {value!r} is not a "
                   "date-time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    if when.timestamp() <= now():
        raise _bad("The 'expires_at' must not be before now.")
    return when.timestamp()


def _roles(token: Token, wanted: Any) -> list[dict[str, str]]:
    held = [r for r in ROLES if r["id"] in token.roles]
    if wanted is None:
        return [dict(r) for r in held]
    if not isinstance(wanted, list):
        raise _bad("Invalid input for field 'roles': not a list")
    out = []
    for ref in wanted:
        ref = ref if isinstance(ref, dict) else {}
        role = next((r for r in held if r["id"] == ref.get("id")
                     or (not ref.get("id") and r["name"] == ref.get("name"))), None)
        if role is None:
            raise _bad("Invalid application credential: Cannot create an application "
                       "credential with unassigned role")
        out.append(dict(role))
    return out


def create_app_cred(store: Store, endpoint: str, headers: Any, user_id: str,
                    body: Any) -> Reply:
    token = _caller(store, headers, user_id, manage=True)
    data = body.get("application_credential") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise _bad("Invalid input for field 'application_credential': None is not of type "
                   "'object'")
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise _bad("Invalid input for field 'application_credential': 'name' is a required "
                   "property (a string of 1 to 255 characters)")
    if token.project_id is None:
        raise _bad("Invalid application credential: application credentials are created "
                   "with a project-scoped token")
    secret = data.get("secret") or base64.urlsafe_b64encode(
        secrets.token_bytes(64)).rstrip(b"=").decode()
    cred_id = secrets.token_hex(16)
    cred: dict[str, Any] = {
        "id": cred_id, "name": name, "user_id": user_id,
        "description": data.get("description"), "project_id": token.project_id,
        "expires": _parse_expiry(data.get("expires_at")),
        "unrestricted": bool(data.get("unrestricted", False)),
        "roles": _roles(token, data.get("roles")), "secret_hash": _hash(str(secret)),
    }
    with store.lock:
        if any(c["name"] == name and c["user_id"] == user_id
               for c in store.app_creds.values()):
            raise _error(409, "Conflict", "Conflict occurred attempting to store "
                                          "application_credential - Duplicate entry.")
        store.app_creds[cred_id] = cred
    return Reply(201, {"application_credential": {**_cred_view(endpoint, cred),
                                                  "secret": secret}})


def _app_creds(store: Store, endpoint: str, method: str, path: str, headers: Any,
               body: Any, args: Any) -> Reply | None:
    """``/v3/users/{user_id}/application_credentials[/{id}]``, else None."""
    parts = path.strip("/").split("/")
    if len(parts) not in (4, 5) or parts[:2] != ["v3", "users"] or \
            parts[3] != "application_credentials":
        return None
    user_id = parts[2]
    if len(parts) == 4:
        if method == "POST":
            return create_app_cred(store, endpoint, headers, user_id, body)
        if method != "GET":
            raise _error(405, "Method Not Allowed", "The method is not allowed for the "
                                                    "requested URL.")
        _caller(store, headers, user_id, manage=False)
        wanted = args.get("name") if args is not None else None  # ?name=
        with store.lock:
            creds = [dict(c) for c in store.app_creds.values() if c["user_id"] == user_id
                     and (wanted is None or c["name"] == wanted)]
        return Reply(200, {"application_credentials": [_cred_view(endpoint, c) for c in creds],
                           "links": {"self": f"{endpoint}/identity/{path.strip('/')}",
                                     "previous": None, "next": None}})
    cred_id = parts[4]
    _caller(store, headers, user_id, manage=method == "DELETE")
    with store.lock:
        cred = store.app_creds.get(cred_id)
        if cred is None or cred["user_id"] != user_id:
            raise _not_found(f"Could not find Application Credential: {cred_id}.")
        if method == "GET":
            return Reply(200, {"application_credential": _cred_view(endpoint, cred)})
        if method == "DELETE":
            del store.app_creds[cred_id]
            store.tokens = {t: v for t, v in store.tokens.items() if v.app_cred != cred_id}
            return Reply(204)
    raise _error(405, "Method Not Allowed", "The method is not allowed for the requested URL.")


def handle(store: Store, method: str, path: str, headers: Any, body: Any, endpoint: str,
           args: Any = None) -> Reply:
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
        found = _valid(store, subject)
        if found is None:
            raise _not_found("Could not find token.")
        return Reply(200, _token_body(endpoint, store, found, now()),
                     {"X-Subject-Token": subject or ""})
    reply = _app_creds(store, endpoint, method, path, headers, body, args)
    if reply is None:  # the directory (identity_responses.py)
        reply = identity_responses.handle(store, method, path, body, endpoint, args,
                                          _valid(store, headers.get("X-Auth-Token")))
    if reply is None and method == "GET":
        reply = _directory(store, endpoint, path, headers)
    if reply is not None:
        return reply
    raise _not_found("The resource could not be found.")


# ------------------------------------------------------- projects, users and regions


def _project_view(endpoint: str) -> dict[str, Any]:
    return {"id": PROJECT_ID, "name": PROJECT_NAME, "domain_id": DOMAIN_ID,
            "description": "The sandbox's project", "enabled": True, "is_domain": False,
            "parent_id": DOMAIN_ID, "tags": [], "options": {},
            "links": {"self": f"{endpoint}/identity/v3/projects/{PROJECT_ID}"}}


def _user_view(endpoint: str) -> dict[str, Any]:
    return {"id": USER_ID, "name": USERNAME, "domain_id": DOMAIN_ID, "enabled": True,
            "default_project_id": PROJECT_ID, "password_expires_at": None, "options": {},
            "links": {"self": f"{endpoint}/identity/v3/users/{USER_ID}"}}


def _listing(endpoint: str, path: str, key: str, items: list[dict[str, Any]]) -> Reply:
    return Reply(200, {key: items, "links": {"self": f"{endpoint}/identity{path}",
                                             "previous": None, "next": None}})


def _directory(store: Store, endpoint: str, path: str, headers: Any) -> Reply | None:
    """What Keystone's default policies let a project member read: its own user and
    project (``/v3/users/{me}``, ``/v3/users/{me}/projects``, ``/v3/projects/{ours}``,
    ``/v3/auth/projects``; the regions are :mod:`.identity_responses`'); listing every
    project or user is a system or domain reader's (403), another user or project is
    a 403 too."""
    parts = path.strip("/").split("/")
    if parts[:1] != ["v3"] or len(parts) < 2 or parts[1] not in (
            "projects", "users", "regions", "auth"):
        return None
    token = _valid(store, headers.get("X-Auth-Token"))
    if token is None:
        raise unauthorized()
    rest = parts[1:]
    if rest in (["projects"], ["users"]):
        raise _forbidden(f"identity:list_{rest[0]}.")
    if rest == ["auth", "projects"] or (len(rest) == 3 and rest[0] == "users"
                                        and rest[2] == "projects"):
        if rest[0] == "users" and rest[1] != token.user_id:
            raise _forbidden("identity:list_user_projects.")
        return _listing(endpoint, path, "projects", [_project_view(endpoint)])
    if len(rest) == 2 and rest[0] == "projects":
        if rest[1] != token.project_id:
            raise _forbidden("identity:get_project.")
        return Reply(200, {"project": _project_view(endpoint)})
    if len(rest) == 2 and rest[0] == "users":
        if rest[1] != token.user_id:
            raise _forbidden("identity:get_user.")
        return Reply(200, {"user": _user_view(endpoint)})
    return None
