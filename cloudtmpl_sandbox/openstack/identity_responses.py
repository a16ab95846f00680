"""Keystone's v3 directory API on the wire: routes, query filters, views, policy.

Routes (below ``/identity``): ``/v3/{domains,projects,users,groups,roles,regions,
services,endpoints}[/{id}]`` (GET, POST, PATCH, DELETE; a region also ``PUT`` with its
id), a group's users (``/v3/groups/{g}/users[/{u}]``: GET, PUT, HEAD, DELETE), a user's
groups (``/v3/users/{u}/groups``), the role assignments of a user or group on a project
or domain (``/v3/{projects,domains}/{t}/{users,groups}/{a}/roles[/{r}]``: GET, PUT,
HEAD, DELETE) and ``/v3/role_assignments`` (filters ``user.id``, ``group.id``,
``role.id``, ``scope.project.id``, ``scope.domain.id``; ``effective`` expands groups
into their users, ``include_names`` adds names).  Listings filter by ``name``,
``domain_id``, ``enabled``, ``parent_id``, ``type``, ``service_id``, ``interface``,
``region_id`` and ``parent_region_id``.

Policy, as Keystone's defaults have it: a token with the ``admin`` role may do all of
it; any token may read the regions; anyone else changing the directory, or reading
what only an admin may (services, endpoints, domains, groups, roles, assignments), is
refused (403 ``identity:<action>``).  What a project member may read of its own user
and project stays :mod:`.identity`'s (this module answers None for it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import identity_models as models
from .core import ApiError, Call, Reply, Router, dispatch
from .identity_models import Directory, Refused

JSON = dict[str, Any]
router = Router()

COLLECTIONS = ("domains", "projects", "users", "groups", "roles", "regions", "services",
               "endpoints")
_FILTERS = ("name", "domain_id", "enabled", "parent_id", "type", "service_id", "interface",
            "region_id", "parent_region_id")
_HIDDEN = frozenset({"password_hash", "path"})


def error(status: int, title: str, message: str) -> ApiError:
    return ApiError(status, {"error": {"code": status, "message": message, "title": title}})


def _d(call: Call) -> Directory:
    directory: Directory = call.store.keystone
    return directory


def _root(call: Call) -> str:
    return call.root  # ".../identity/v3"


def view(call: Call, collection: str, obj: JSON) -> JSON:
    out = {k: v for k, v in obj.items() if k not in _HIDDEN}
    if collection == "endpoints":
        if "path" in obj:
            out["url"] = call.root.rsplit("/identity", 1)[0] + obj["path"]
        out["region"] = obj.get("region_id")
    out["links"] = {"self": f"{_root(call)}/{collection}/{obj['id']}"}
    return out


def _listing(call: Call, collection: str, items: list[JSON]) -> Reply:
    for key in _FILTERS:
        wanted = call.arg(key)
        if wanted is None:
            continue
        if key == "enabled":
            flag = wanted.lower() not in ("0", "false", "no", "off")
            items = [i for i in items if bool(i.get("enabled", True)) == flag]
        else:
            items = [i for i in items if str(i.get(key)) == wanted]
    return Reply(200, {collection: [view(call, collection, i) for i in items],
                       "links": {"self": f"{_root(call)}/{collection}", "previous": None,
                                 "next": None}})


def _data(call: Call, key: str) -> JSON:
    obj = call.body.get(key) if isinstance(call.body, dict) else None
    if not isinstance(obj, dict):
        raise Refused(400, "Bad Request", f"Invalid input for field '{key}': None is not of "
                                          "type 'object'")
    return obj


# ------------------------------------------------------------------ the collections


def _crud(collection: str) -> None:
    key = collection.rstrip("s")

    def listing(call: Call) -> Reply:
        return _listing(call, collection, list(getattr(_d(call), collection).values()))

    def create(call: Call) -> Reply:
        obj = getattr(_d(call), f"create_{key}")(_data(call, key))
        return Reply(201, {key: view(call, collection, obj)})

    def show(call: Call) -> Reply:
        return Reply(200, {key: view(call, collection,
                                     _d(call).get(collection, call.params["id"]))})

    def update(call: Call) -> Reply:
        obj = getattr(_d(call), f"update_{key}")(call.params["id"], _data(call, key))
        return Reply(200, {key: view(call, collection, obj)})

    def delete(call: Call) -> Reply:
        getattr(_d(call), f"delete_{key}")(call.params["id"])
        return Reply(204)

    router.route("GET", f"/{collection}")(listing)
    router.route("POST", f"/{collection}")(create)
    router.route("GET", f"/{collection}/{{id}}")(show)
    router.route("PATCH", f"/{collection}/{{id}}")(update)
    router.route("DELETE", f"/{collection}/{{id}}")(delete)


for _collection in COLLECTIONS:
    _crud(_collection)


@router.route("PUT", "/regions/{id}")
def _put_region(call: Call) -> Reply:
    region = _d(call).create_region(_data(call, "region"), call.params["id"])
    return Reply(201, {"region": view(call, "regions", region)})


@router.route("GET", "/groups/{group}/users")
def _group_users(call: Call) -> Reply:
    d = _d(call)
    d.get("groups", call.params["group"])
    users = [d.users[u] for g, u in sorted(d.members) if g == call.params["group"]]
    return _listing(call, "users", users)


@router.route("GET", "/users/{user}/groups")
def _user_groups(call: Call) -> Reply:
    d = _d(call)
    d.get("users", call.params["user"])
    groups = [d.groups[g] for g, u in sorted(d.members) if u == call.params["user"]]
    return _listing(call, "groups", groups)


def _membership(method: str) -> Callable[[Call], Reply]:
    def handler(call: Call) -> Reply:
        d, group, user = _d(call), call.params["group"], call.params["user"]
        if method == "PUT":
            d.add_member(group, user)
        elif method == "DELETE":
            d.remove_member(group, user)
        else:
            d.get("groups", group)
            d.get("users", user)
            if (group, user) not in d.members:
                raise models.not_found("membership", f"user {user} in group {group}")
        return Reply(204)
    return handler


for _method in ("PUT", "HEAD", "DELETE"):
    router.route(_method, "/groups/{group}/users/{user}")(_membership(_method))


def _grant(method: str) -> Callable[[Call], Reply]:
    def handler(call: Call) -> Reply:
        p = call.params
        d = _d(call)
        _grant_path(p)
        found = d.assignment(p["scope"].rstrip("s"), p["target"], p["actor"].rstrip("s"),
                             p["who"], p["role"])
        if method == "PUT":
            d.assignments.add(found)
        elif found not in d.assignments:
            raise models.not_found("role assignment", f"role {p['role']} of {p['who']}")
        elif method == "DELETE":
            d.assignments.discard(found)
        return Reply(204)
    return handler


_GRANT = "/{scope}/{target}/{actor}/{who}/roles"
for _method in ("PUT", "HEAD", "GET", "DELETE"):
    router.route(_method, _GRANT + "/{role}")(_grant(_method))


def _grant_path(p: dict[str, str]) -> None:
    if p["scope"] not in ("projects", "domains") or p["actor"] not in ("users", "groups"):
        raise models.Refused(404, "Not Found", "The resource could not be found.")


@router.route("GET", "/users/{user}/projects")
def _user_projects(call: Call) -> Reply:
    d = _d(call)
    d.get("users", call.params["user"])
    return _listing(call, "projects", [p for p in d.projects.values()
                                       if d.roles_on(call.params["user"], p["id"])])


@router.route("GET", _GRANT)
def _granted(call: Call) -> Reply:
    p, d = call.params, _d(call)
    _grant_path(p)
    d.get(p["scope"], p["target"])
    d.get(p["actor"], p["who"])
    roles = [d.roles[r] for r, kind, actor, scope, target in sorted(d.assignments)
             if (kind, actor, scope, target) ==
             (p["actor"].rstrip("s"), p["who"], p["scope"].rstrip("s"), p["target"])]
    return _listing(call, "roles", roles)


@router.route("GET", "/role_assignments")
def _role_assignments(call: Call) -> Reply:
    d = _d(call)
    rows = sorted(d.assignments)
    if call.arg("effective") is not None:
        expanded = []
        for role, kind, actor, scope, target in rows:
            if kind == "group":
                expanded += [(role, "user", u, scope, target) for g, u in sorted(d.members)
                             if g == actor]
            else:
                expanded.append((role, kind, actor, scope, target))
        rows = sorted(set(expanded))
    wanted = {"user": call.arg("user.id"), "group": call.arg("group.id")}
    out = []
    names = call.arg("include_names") not in (None, "0", "false", "False")
    for role, kind, actor, scope, target in rows:
        if call.arg("role.id") not in (None, role):
            continue
        if any(v is not None and (kind != k or actor != v) for k, v in wanted.items()):
            continue
        if call.arg(f"scope.{scope}.id") is None and \
                call.arg(f"scope.{'domain' if scope == 'project' else 'project'}.id"):
            continue
        if call.arg(f"scope.{scope}.id") not in (None, target):
            continue
        entry: JSON = {"role": {"id": role}, kind: {"id": actor},
                       "scope": {scope: {"id": target}},
                       "links": {"assignment": f"{_root(call)}/{scope}s/{target}/{kind}s/"
                                               f"{actor}/roles/{role}"}}
        if names:
            entry["role"]["name"] = d.roles[role]["name"]
            who = getattr(d, f"{kind}s")[actor]
            entry[kind].update(name=who["name"], domain=_domain_names(d, who["domain_id"]))
            where = getattr(d, f"{scope}s")[target]
            entry["scope"][scope]["name"] = where["name"]
            if scope == "project":
                entry["scope"][scope]["domain"] = _domain_names(d, where["domain_id"])
            if d.roles[role].get("domain_id"):
                entry["role"]["domain"] = _domain_names(d, d.roles[role]["domain_id"])
        out.append(entry)
    return Reply(200, {"role_assignments": out,
                       "links": {"self": f"{_root(call)}/role_assignments", "previous": None,
                                 "next": None}})


def _domain_names(d: Directory, ident: str) -> JSON:
    return {"id": ident, "name": d.domains.get(ident, {}).get("name", ident)}


# ------------------------------------------------------------------ entry


def _action(method: str, parts: list[str]) -> str:
    verb = {"GET": "get" if len(parts) > 1 else "list", "POST": "create",
            "PATCH": "update", "PUT": "create", "DELETE": "delete",
            "HEAD": "check"}.get(method, method.lower())
    return f"identity:{verb}_{parts[0].rstrip('s')}"


def handle(store: Any, method: str, path: str, body: Any, endpoint: str, args: Any,
           token: Any) -> Reply | None:
    """A directory request below ``/v3`` (``token``: the caller's valid token, None for
    an invalid one), or None where :mod:`.identity` answers it."""
    parts = path.strip("/").split("/")
    if parts[:1] != ["v3"] or len(parts) < 2 or parts[1] not in (
            *COLLECTIONS, "role_assignments"):
        return None
    rest = parts[1:]
    if token is None:
        return None  # identity answers 401
    with store.lock:
        admin = store.keystone.admin_role() in token.roles
    if not admin:
        if method == "GET" and rest[0] == "regions":
            pass  # any token reads the catalog's regions
        elif method == "GET" and rest[0] in ("projects", "users"):
            return None  # a member's own user and project: identity.py
        else:
            raise error(403, "Forbidden", "You are not authorized to perform the requested "
                                          f"action: {_action(method, rest)}.")
    call = Call(method=method, path="/" + "/".join(rest),
                args={k: args.getlist(k) for k in args} if args is not None else {},
                body=body, region="", root=f"{endpoint}/identity/v3", project_id="",
                user_id=token.user_id, store=store)
    try:
        return dispatch(router, call, error(404, "Not Found",
                                            "The resource could not be found."),
                        lambda m: error(400, "Bad Request", m))
    except Refused as exc:
        raise error(exc.status, exc.title, exc.message) from None
