"""Keystone's directory: domains, projects, users, groups and their members, roles,
role assignments, regions, services and endpoints; what Keystone refuses of them.

Seeded by every reset (``Store.keystone``): the domain ``default`` (``Default``), the
projects ``sandbox`` and ``admin``, the users ``sandbox`` (a member and reader of
``sandbox``) and ``admin`` / ``admin-password`` (``admin`` of the ``admin`` project: the
credentials that may change the directory), the roles ``member``, ``reader`` and
``admin``, the regions and the catalog's services and endpoints.

Refused as Keystone refuses (raised as :class:`Refused`, the responses module makes
Keystone's error body of it): a name taken in its domain (409; roles per domain, global
roles among themselves), a region id taken (409); what a body names that does not
exist (404: a domain, a parent project, a parent region, a user, group, role, project
of an assignment), an endpoint's service or region that does not exist (400, Keystone's
"validation" of the endpoint), an interface outside public/internal/admin (400), a
region tree with a cycle (400), a project moved to another domain or parent (400,
403), deleting an enabled domain (403), a project with children (403), disabling a
project whose subtree has enabled projects (403).  Deleting a domain deletes what is
in it; a user or group goes with its memberships and assignments; a project with the
assignments on it; a service with its endpoints; a region with its children.
Passwords are kept as salted PBKDF2 digests and never shown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from .core import hex_id, new_id

JSON = dict[str, Any]

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-password"
ADMIN_PROJECT = "admin"
ADMIN_ROLE = "admin"
INTERFACES = ("public", "internal", "admin")
_TAG_MAX = 80


class Refused(Exception):
    """What Keystone refuses: its HTTP status, title and message."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def bad(message: str) -> Refused:
    return Refused(400, "Bad Request", message)


def not_found(what: str, ident: Any) -> Refused:
    return Refused(404, "Not Found", f"Could not find {what}: {ident}.")


def forbidden(message: str) -> Refused:
    return Refused(403, "Forbidden", message)


def conflict(what: str, message: str) -> Refused:
    return Refused(409, "Conflict", f"Conflict occurred attempting to store {what} - "
                                    f"{message}")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 10_000)
    return base64.b64encode(salt + digest).decode()


def password_ok(password: Any, stored: str | None) -> bool:
    if not stored or not isinstance(password, str):
        return False
    raw = base64.b64decode(stored)
    given = hashlib.pbkdf2_hmac("sha256", password.encode(), raw[:16], 10_000)
    return hmac.compare_digest(given, raw[16:])


@dataclass
class Directory:
    """Keystone's state (one for every region, as Keystone is)."""

    domains: dict[str, JSON] = field(default_factory=dict)
    projects: dict[str, JSON] = field(default_factory=dict)
    users: dict[str, JSON] = field(default_factory=dict)
    groups: dict[str, JSON] = field(default_factory=dict)
    members: set[tuple[str, str]] = field(default_factory=set)  # (group id, user id)
    roles: dict[str, JSON] = field(default_factory=dict)
    # (role id, "user"|"group", actor id, "project"|"domain", target id)
    assignments: set[tuple[str, str, str, str, str]] = field(default_factory=set)
    regions: dict[str, JSON] = field(default_factory=dict)
    services: dict[str, JSON] = field(default_factory=dict)
    endpoints: dict[str, JSON] = field(default_factory=dict)

    # ------------------------------------------------------------ lookups

    def get(self, collection: str, ident: str) -> JSON:
        found = getattr(self, collection).get(ident)
        if found is None:
            raise not_found(collection.rstrip("s"), ident)
        return found

    def admin_role(self) -> str:
        return hex_id("role", ADMIN_ROLE)

    def roles_on(self, user_id: str, project_id: str) -> set[str]:
        """The roles ``user_id`` holds on ``project_id``, directly or by a group."""
        groups = {g for g, u in self.members if u == user_id}
        return {r for r, kind, actor, scope, target in self.assignments
                if scope == "project" and target == project_id
                and ((kind == "user" and actor == user_id)
                     or (kind == "group" and actor in groups))}

    def _unique(self, collection: str, what: str, name: str, domain_id: str | None,
                skip: str | None = None) -> None:
        for obj in getattr(self, collection).values():
            if obj["id"] != skip and obj["name"] == name and obj.get("domain_id") == domain_id:
                where = f" at domain ID {domain_id}" if domain_id else ""
                raise conflict(what, f"Duplicate entry found with name {name}{where}.")

    # ------------------------------------------------------------ domains

    def create_domain(self, data: JSON) -> JSON:
        name = _name(data)
        if any(d["name"] == name for d in self.domains.values()):
            raise conflict("domain", f"Duplicate entry found with name {name}.")
        domain = {**_extra(data), "id": new_id().replace("-", ""), "name": name,
                  "description": _text(data.get("description")),
                  "enabled": _flag(data, "enabled"), "tags": []}
        self.domains[domain["id"]] = domain
        return domain

    def update_domain(self, ident: str, data: JSON) -> JSON:
        domain = self.get("domains", ident)
        if "name" in data:
            name = _name(data)
            if any(d["name"] == name and d["id"] != ident for d in self.domains.values()):
                raise conflict("domain", f"Duplicate entry found with name {name}.")
        _apply(domain, data, ("id",))
        return domain

    def delete_domain(self, ident: str) -> None:
        domain = self.get("domains", ident)
        if domain["enabled"]:
            raise forbidden("Cannot delete a domain that is enabled, please disable it "
                            "first.")
        for collection in ("users", "groups", "roles"):
            for obj in list(getattr(self, collection).values()):
                if obj.get("domain_id") == ident:
                    getattr(self, f"delete_{collection.rstrip('s')}")(obj["id"])
        while True:  # leaves first
            inside = [p for p in self.projects.values() if p["domain_id"] == ident]
            leaves = [p for p in inside if not self._children(p["id"])]
            if not leaves:
                break
            for project in leaves:
                self.delete_project(project["id"])
        self.assignments = {a for a in self.assignments if a[3:] != ("domain", ident)}
        del self.domains[ident]

    # ------------------------------------------------------------ projects

    def _children(self, ident: str) -> list[JSON]:
        return [p for p in self.projects.values() if p["parent_id"] == ident]

    def create_project(self, data: JSON) -> JSON:
        name = _name(data)
        domain_id = str(data.get("domain_id") or "default")
        self.get("domains", domain_id)
        parent = data.get("parent_id")
        if parent is not None and parent != domain_id:
            found = self.get("projects", str(parent))
            if found["domain_id"] != domain_id:
                raise bad(f"Cannot create project, the parent ({parent}) is in another "
                          f"domain than the project's ({domain_id}).")
        self._unique("projects", "project", name, domain_id)
        project = {**_extra(data), "id": new_id().replace("-", ""), "name": name,
                   "domain_id": domain_id, "parent_id": str(parent or domain_id),
                   "description": _text(data.get("description")),
                   "enabled": _flag(data, "enabled"), "is_domain": False,
                   "tags": _tags(data.get("tags", []))}
        if project["enabled"] and parent not in (None, domain_id) and \
                not self.projects[str(parent)]["enabled"]:
            raise forbidden(f"Cannot enable project {name} since it has disabled parents.")
        self.projects[project["id"]] = project
        return project

    def update_project(self, ident: str, data: JSON) -> JSON:
        project = self.get("projects", ident)
        if "domain_id" in data and data["domain_id"] != project["domain_id"]:
            raise bad("Update of `domain_id` is not allowed.")
        if "parent_id" in data and data["parent_id"] != project["parent_id"]:
            raise forbidden("Update of `parent_id` is not allowed.")
        if "name" in data:
            self._unique("projects", "project", _name(data), project["domain_id"], ident)
        if "tags" in data:
            data = {**data, "tags": _tags(data["tags"])}
        if data.get("enabled") is False and any(
                p["enabled"] for p in self._subtree(ident)):
            raise forbidden(f"Cannot disable project {ident} since its subtree contains "
                            "enabled projects.")
        _apply(project, data, ("id", "is_domain"))
        return project

    def _subtree(self, ident: str) -> list[JSON]:
        out = []
        for child in self._children(ident):
            out += [child, *self._subtree(child["id"])]
        return out

    def delete_project(self, ident: str) -> None:
        self.get("projects", ident)
        if self._children(ident):
            raise forbidden(f"Cannot delete the project {ident} since it is not a leaf in "
                            "the hierarchy. Use the cascade option if you want to delete "
                            "a whole subtree.")
        self.assignments = {a for a in self.assignments if a[3:] != ("project", ident)}
        del self.projects[ident]

    # ------------------------------------------------------------ users, groups

    def create_user(self, data: JSON) -> JSON:
        name = _name(data)
        domain_id = str(data.get("domain_id") or "default")
        self.get("domains", domain_id)
        self._unique("users", "user", name, domain_id)
        user = {**_extra(data, ("password",)), "id": new_id().replace("-", ""), "name": name,
                "domain_id": domain_id, "enabled": _flag(data, "enabled"),
                "password_expires_at": None, "options": {},
                "default_project_id": data.get("default_project_id")}
        user["password_hash"] = _password(data)
        self.users[user["id"]] = user
        return user

    def update_user(self, ident: str, data: JSON) -> JSON:
        user = self.get("users", ident)
        if "domain_id" in data and data["domain_id"] != user["domain_id"]:
            raise bad("Update of `domain_id` is not allowed.")
        if "name" in data:
            self._unique("users", "user", _name(data), user["domain_id"], ident)
        if "password" in data:
            user["password_hash"] = _password(data)
        _apply(user, {k: v for k, v in data.items() if k != "password"}, ("id",))
        return user

    def delete_user(self, ident: str) -> None:
        self.get("users", ident)
        self.members = {m for m in self.members if m[1] != ident}
        self.assignments = {a for a in self.assignments if a[1:3] != ("user", ident)}
        del self.users[ident]

    def create_group(self, data: JSON) -> JSON:
        name = _name(data)
        domain_id = str(data.get("domain_id") or "default")
        self.get("domains", domain_id)
        self._unique("groups", "group", name, domain_id)
        group = {**_extra(data), "id": new_id().replace("-", ""), "name": name,
                 "domain_id": domain_id, "description": _text(data.get("description"))}
        self.groups[group["id"]] = group
        return group

    def update_group(self, ident: str, data: JSON) -> JSON:
        group = self.get("groups", ident)
        if "domain_id" in data and data["domain_id"] != group["domain_id"]:
            raise bad("Update of `domain_id` is not allowed.")
        if "name" in data:
            self._unique("groups", "group", _name(data), group["domain_id"], ident)
        _apply(group, data, ("id",))
        return group

    def delete_group(self, ident: str) -> None:
        self.get("groups", ident)
        self.members = {m for m in self.members if m[0] != ident}
        self.assignments = {a for a in self.assignments if a[1:3] != ("group", ident)}
        del self.groups[ident]

    def add_member(self, group_id: str, user_id: str) -> None:
        self.get("groups", group_id)
        self.get("users", user_id)
        self.members.add((group_id, user_id))

    def remove_member(self, group_id: str, user_id: str) -> None:
        self.get("groups", group_id)
        self.get("users", user_id)
        if (group_id, user_id) not in self.members:
            raise not_found("membership", f"user {user_id} in group {group_id}")
        self.members.discard((group_id, user_id))

    # ------------------------------------------------------------ roles, assignments

    def create_role(self, data: JSON) -> JSON:
        name = _name(data, 255)
        domain_id = data.get("domain_id")
        if domain_id is not None:
            self.get("domains", str(domain_id))
        self._unique("roles", "role", name, domain_id)
        role = {**_extra(data), "id": new_id().replace("-", ""), "name": name,
                "domain_id": domain_id, "description": data.get("description"),
                "options": {}}
        self.roles[role["id"]] = role
        return role

    def update_role(self, ident: str, data: JSON) -> JSON:
        role = self.get("roles", ident)
        if "domain_id" in data and data["domain_id"] != role["domain_id"]:
            raise bad("Update of `domain_id` is not allowed.")
        if "name" in data:
            self._unique("roles", "role", _name(data, 255), role["domain_id"], ident)
        _apply(role, data, ("id",))
        return role

    def delete_role(self, ident: str) -> None:
        self.get("roles", ident)
        self.assignments = {a for a in self.assignments if a[0] != ident}
        del self.roles[ident]

    def assignment(self, scope: str, target: str, actor_kind: str, actor: str,
                   role: str) -> tuple[str, str, str, str, str]:
        """The assignment these name, each of them existing (404 otherwise)."""
        self.get(f"{scope}s", target)
        self.get(f"{actor_kind}s", actor)
        self.get("roles", role)
        return (role, actor_kind, actor, scope, target)

    # ------------------------------------------------------------ regions

    def create_region(self, data: JSON, ident: str | None = None) -> JSON:
        ident = str(ident or data.get("id") or new_id().replace("-", ""))
        if ident in self.regions:
            raise conflict("region", f"Duplicate ID, {ident}.")
        parent = data.get("parent_region_id")
        if parent is not None and parent not in self.regions:
            raise not_found("region", parent)
        region = {**_extra(data), "id": ident, "description": _text(data.get("description")),
                  "parent_region_id": parent}
        self.regions[ident] = region
        return region

    def update_region(self, ident: str, data: JSON) -> JSON:
        region = self.get("regions", ident)
        parent = data.get("parent_region_id", region["parent_region_id"])
        if parent is not None:
            if parent not in self.regions:
                raise not_found("region", parent)
            seen, at = {ident}, parent
            while at is not None:
                if at in seen:
                    raise bad(f"Circular reference or a repeated entry found in region "
                              f"tree - {ident}.")
                seen.add(at)
                at = self.regions[at]["parent_region_id"]
        _apply(region, data, ("id",))
        return region

    def delete_region(self, ident: str) -> None:
        self.get("regions", ident)
        for child in [r for r in self.regions.values() if r["parent_region_id"] == ident]:
            if child["id"] in self.regions:
                self.delete_region(child["id"])
        del self.regions[ident]

    # ------------------------------------------------------------ services, endpoints

    def create_service(self, data: JSON) -> JSON:
        stype = data.get("type")
        if not isinstance(stype, str) or not 1 <= len(stype) <= 255:
            raise bad("Invalid input for field 'type': 'type' is a required property.")
        service = {**_extra(data), "id": new_id().replace("-", ""), "type": stype,
                   "enabled": _flag(data, "enabled")}
        self.services[service["id"]] = service
        return service

    def update_service(self, ident: str, data: JSON) -> JSON:
        service = self.get("services", ident)
        if "type" in data and (not isinstance(data["type"], str) or not data["type"]):
            raise bad("Invalid input for field 'type'.")
        _apply(service, data, ("id",))
        return service

    def delete_service(self, ident: str) -> None:
        self.get("services", ident)
        self.endpoints = {k: e for k, e in self.endpoints.items() if e["service_id"] != ident}
        del self.services[ident]

    def _check_endpoint(self, endpoint: JSON) -> None:
        if endpoint.get("interface") not in INTERFACES:
            raise bad(f"Invalid input for field 'interface': {endpoint.get('interface')!r} "
                      f"does not match '^(admin|internal|public)$'")
        if not isinstance(endpoint.get("url"), str) or not endpoint["url"]:
            raise bad("Invalid input for field 'url': 'url' is a required property.")
        if endpoint.get("service_id") not in self.services:
            raise bad("Expecting to find endpoint service_id in service table. The server "
                      "could not comply with the request since it is either malformed or "
                      "otherwise incorrect. The client is assumed to be in error.")
        if endpoint.get("region_id") is not None and endpoint["region_id"] not in self.regions:
            raise bad("Expecting to find endpoint region_id in region table. The server "
                      "could not comply with the request since it is either malformed or "
                      "otherwise incorrect. The client is assumed to be in error.")

    def create_endpoint(self, data: JSON) -> JSON:
        data = dict(data)
        if data.get("region") and not data.get("region_id"):
            data["region_id"] = data.pop("region")  # Keystone's old spelling
        endpoint = {**_extra(data), "id": new_id().replace("-", ""),
                    "enabled": _flag(data, "enabled"), "region_id": data.get("region_id")}
        self._check_endpoint(endpoint)
        self.endpoints[endpoint["id"]] = endpoint
        return endpoint

    def update_endpoint(self, ident: str, data: JSON) -> JSON:
        endpoint = self.get("endpoints", ident)
        changed = {**endpoint, **data}
        self._check_endpoint(changed)
        _apply(endpoint, data, ("id",))
        return endpoint

    def delete_endpoint(self, ident: str) -> None:
        self.get("endpoints", ident)
        del self.endpoints[ident]


# ------------------------------------------------------------------ body checks


def _name(data: JSON, most: int = 64) -> str:
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= most or not name.strip():
        raise bad(f"Invalid input for field 'name': 'name' is a required property (a "
                  f"string of 1 to {most} characters).")
    return name


def _text(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise bad(f"Invalid input for field 'description': {value!r} is not of type "
                  "'string', 'null'")
    return value if value is not None else ""


def _flag(data: JSON, key: str) -> bool:
    value = data.get(key, True)
    if not isinstance(value, bool):
        raise bad(f"Invalid input for field '{key}': {value!r} is not of type 'boolean'")
    return value


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > _TAG_MAX:
        raise bad(f"Invalid input for field 'tags': a list of at most {_TAG_MAX} strings")
    for tag in value:
        if not isinstance(tag, str) or not 1 <= len(tag) <= 255 or "/" in tag or "," in tag:
            raise bad(f"Invalid input for field 'tags': {tag!r} (a tag is 1 to 255 "
                      "characters, without '/' or ',')")
    return list(value)


def _password(data: JSON) -> str | None:
    password = data.get("password")
    if password is None:
        return None
    if not isinstance(password, str) or len(password) > 4096:
        raise bad("Invalid input for field 'password': a string of at most 4096 characters")
    return hash_password(password)


def _extra(data: JSON, drop: tuple[str, ...] = ()) -> JSON:
    """The attributes Keystone keeps as they are (its "extra"), and the known ones."""
    return {k: v for k, v in data.items() if k not in drop and k != "id"}


def _apply(obj: JSON, data: JSON, fixed: tuple[str, ...]) -> None:
    for key in fixed:
        if key in data and data[key] != obj.get(key):
            raise bad(f"Update of `{key}` is not allowed.")
    for key in ("enabled",):
        if key in data:
            _flag(data, key)
    if "description" in data:
        _text(data["description"])
    obj.update({k: v for k, v in data.items() if k not in fixed})


# ------------------------------------------------------------------ the seed


def seed(services: tuple[tuple[str, str, str], ...], regions: tuple[str, ...],
         sandbox_user: str, sandbox_password: str, sandbox_project: str,
         sandbox_roles: tuple[str, ...]) -> Directory:
    """The directory a reset leaves: the sandbox's user and project, the admin, the
    catalog's services, their endpoints (a ``path`` below the emulator's address, which
    only a request knows) and the regions."""
    d = Directory()
    d.domains["default"] = {"id": "default", "name": "Default", "enabled": True,
                            "description": "The default domain", "tags": []}
    for name, description in ((sandbox_project, "The sandbox's project"),
                              (ADMIN_PROJECT, "The sandbox's administrators")):
        pid = hex_id("project", name)
        d.projects[pid] = {"id": pid, "name": name, "domain_id": "default",
                           "parent_id": "default", "description": description,
                           "enabled": True, "is_domain": False, "tags": [], "options": {}}
    for name in (*sandbox_roles, ADMIN_ROLE):
        rid = hex_id("role", name)
        d.roles[rid] = {"id": rid, "name": name, "domain_id": None, "description": None,
                        "options": {}}
    for name, password, project in ((sandbox_user, sandbox_password, sandbox_project),
                                    (ADMIN_USERNAME, ADMIN_PASSWORD, ADMIN_PROJECT)):
        uid = hex_id("user", name)
        d.users[uid] = {"id": uid, "name": name, "domain_id": "default", "enabled": True,
                        "default_project_id": hex_id("project", project),
                        "password_expires_at": None, "options": {},
                        "password_hash": hash_password(password)}
    for role in sandbox_roles:
        d.assignments.add((hex_id("role", role), "user", hex_id("user", sandbox_user),
                           "project", hex_id("project", sandbox_project)))
    d.assignments.add((d.admin_role(), "user", hex_id("user", ADMIN_USERNAME), "project",
                       hex_id("project", ADMIN_PROJECT)))
    for region in regions:
        d.regions[region] = {"id": region, "description": "", "parent_region_id": None}
    for stype, name, template in services:
        sid = hex_id("service", stype)
        d.services[sid] = {"id": sid, "type": stype, "name": name, "enabled": True,
                           "description": ""}
        for region in regions:
            eid = hex_id("endpoint", stype, region)
            path = template.format(region=region, project_id=hex_id("project", sandbox_project))
            d.endpoints[eid] = {"id": eid, "service_id": sid, "interface": "public",
                                "region_id": region, "enabled": True, "path": path}
    return d


def login(d: Directory, user: Any, scope: Any) -> tuple[str, str | None, tuple[str, ...]]:
    """(user id, project id or None, role ids) of a password sign-in by a user of the
    directory: 401 (``Refused``) for an unknown or disabled user, a wrong password, or a
    project it holds no role on (or a disabled one)."""
    denied = Refused(401, "Unauthorized", "The request you have made requires "
                                          "authentication.")
    if not isinstance(user, dict):
        raise denied
    if user.get("id"):
        found = d.users.get(str(user["id"]))
    else:
        domain = _domain_ref(d, user.get("domain"))
        found = next((u for u in d.users.values() if u["name"] == user.get("name")
                      and u["domain_id"] == domain), None)
    if found is None or not found["enabled"] or \
            not password_ok(user.get("password"), found.get("password_hash")):
        raise denied
    if scope == "unscoped":
        return found["id"], None, ()
    if scope is None:
        project_id = found.get("default_project_id")
        if project_id not in d.projects:
            return found["id"], None, ()
    else:
        ref = scope.get("project") if isinstance(scope, dict) else None
        if not isinstance(ref, dict):
            raise denied
        project_id = str(ref["id"]) if ref.get("id") else next(
            (p["id"] for p in d.projects.values() if p["name"] == ref.get("name")
             and p["domain_id"] == _domain_ref(d, ref.get("domain"))), None)
    project = d.projects.get(str(project_id))
    roles = d.roles_on(found["id"], str(project_id)) if project else set()
    if project is None or not project["enabled"] or not roles:
        raise denied
    return found["id"], project["id"], tuple(sorted(roles))


def _domain_ref(d: Directory, ref: Any) -> str | None:
    if not isinstance(ref, dict):
        return None
    if ref.get("id"):
        return str(ref["id"])
    return next((x["id"] for x in d.domains.values() if x["name"] == ref.get("name")), None)
