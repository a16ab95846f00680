"""Keystone's kinds: domains, projects, roles, groups, users, regions, services and
endpoints (``Cloud::Identity::*``, Heat's ``OS::Keystone::*``), over Keystone's v3
admin API (the catalog's ``identity`` endpoint, :class:`.client.KeystoneConnection`).
They need an admin's credentials: a project member's token is refused (403).

How a resource is known as the stack's: Keystone has no tags on most of these (a
project's tags are the template's), so every one carries a marker as the last line
of its ``description`` (an extra attribute Keystone keeps and returns where the object
has no description of its own: endpoints), ``cloudtmpl:owner=<region>/<stack>.<address>
spec=<hash>``; the description reported is the template's text before it.  The region
is in the marker because Keystone is one directory for every region: a stack's
Keystone resource is the one its placement region made.  Names are the template's
``name`` (a user logs in with it), else ``<stack>.<address>``; a region's id likewise.

What a crash can leave: a create is one POST, retried by looking for the marker first
(:func:`.client.OpenStackClient.create_or_adopt`), so an object whose answer was lost
is adopted; a user's or group's memberships and role assignments are made after it and
set again, whole, by every update (those not wanted are removed: the stack's user and
group are the stack's to manage).  A role assignment of a user or group is deleted
with it by Keystone.  Deleting a domain disables it first (Keystone refuses an
enabled domain: 403); deleting a project with children is refused by Keystone (403)
until they are gone: a parent's delete waits for them (children and parent are of one
layer, so a destroy may delete them at the same time).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cloudtmpl import identity_kinds as kinds
from cloudtmpl.model import LiveResource, address_from_name, physical_name
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.openstack.client import OpenStackClient, status_of

MARK = "cloudtmpl:owner="
_MARK_RE = re.compile(r"(?:^|\n)" + re.escape(MARK) + r"(\S+)/(\S+) spec=(\S*)$")
ID = "identity"

Body = dict[str, Any]


def describe(text: str, region: str, name: str, spec: str) -> str:
    """The description Keystone keeps: the template's ``text``, then the marker."""
    marker = f"{MARK}{region}/{name} spec={spec}"
    return f"{text}\n{marker}" if text else marker


def split(description: Any) -> tuple[str, tuple[str, str, str | None] | None]:
    """(the template's text, (region, stack-qualified name, spec) of the marker)."""
    text = str(description or "")
    m = _MARK_RE.search(text)
    if m is None:
        return text, None
    return text[: m.start()], (m.group(1), m.group(2), m.group(3) or None)


# ------------------------------------------------------------------ references


def ref(client: OpenStackClient, region: str, collection: str, value: Any,
        domain_id: str | None = None) -> str:
    """The id of the ``collection`` object ``value`` names (an id, else a name, in
    ``domain_id`` where given): exactly one, or a permanent CloudError."""
    what = collection.rstrip("s")
    text = str(value or "")
    if not text:
        raise CloudError(f"a {what} must be named (a name or an id)", permanent=True)
    found = client.get(region, ID, f"/v3/{collection}/{quote(text, safe='')}", what)
    if found is not None:
        return str(found["id"])
    params = {"name": text, **({"domain_id": domain_id} if domain_id else {})}
    named = client.list_all(region, ID, f"/v3/{collection}", collection, params)
    if len(named) != 1:
        raise CloudError(f"{'no' if not named else 'more than one'} Keystone {what} named "
                         f"{text!r}" + (f" in domain {domain_id}" if domain_id else ""),
                         permanent=True)
    return str(named[0]["id"])


def _domain(client: OpenStackClient, region: str, props: Mapping[str, Any]) -> str:
    return ref(client, region, "domains", props.get("domain") or "default")


def _assignments(client: OpenStackClient, region: str, raw: Any,
                 ) -> set[tuple[str, str, str]]:
    """``roles`` as (role id, "projects"|"domains", target id)."""
    if not isinstance(raw, list):
        raise CloudError("roles must be a list of {role, project} or {role, domain}",
                         permanent=True)
    out = set()
    for entry in raw:
        if not isinstance(entry, Mapping) or not entry.get("role") or \
                (entry.get("project") is None) == (entry.get("domain") is None):
            raise CloudError(f"roles: {entry!r} needs a role and one of project or domain",
                             permanent=True)
        role = ref(client, region, "roles", entry["role"])
        if entry.get("project") is not None:
            out.add((role, "projects", ref(client, region, "projects", entry["project"])))
        else:
            out.add((role, "domains", ref(client, region, "domains", entry["domain"])))
    return out


def _sync_roles(client: OpenStackClient, region: str, actor: str, actor_id: str,
                raw: Any) -> None:
    """The direct role assignments of a user (``actor`` "users") or group ("groups")
    made exactly ``raw``."""
    want = _assignments(client, region, raw)
    which = "user" if actor == "users" else "group"
    have = set()
    for item in client.list_all(region, ID, "/v3/role_assignments", "role_assignments",
                                {f"{which}.id": actor_id}):
        scope = item.get("scope") or {}
        for target in ("project", "domain"):
            if isinstance(scope.get(target), Mapping):
                have.add((str(item["role"]["id"]), f"{target}s", str(scope[target]["id"])))
    for role, scope, target in sorted(want - have):
        client.api(region, ID, f"/v3/{scope}/{target}/{actor}/{actor_id}/roles/{role}",
                   method="PUT")
    for role, scope, target in sorted(have - want):
        client.delete_call(region, ID, f"/v3/{scope}/{target}/{actor}/{actor_id}/roles/{role}")


def _sync_groups(client: OpenStackClient, region: str, user_id: str, raw: Any,
                 domain_id: str) -> None:
    if not isinstance(raw, list):
        raise CloudError("groups must be a list of group names or ids", permanent=True)
    want = {ref(client, region, "groups", g, domain_id) for g in raw}
    have = {str(g["id"]) for g in client.list_all(region, ID, f"/v3/users/{user_id}/groups",
                                                   "groups")}
    for group in sorted(want - have):
        client.api(region, ID, f"/v3/groups/{group}/users/{user_id}", method="PUT")
    for group in sorted(have - want):
        client.delete_call(region, ID, f"/v3/groups/{group}/users/{user_id}")


# ------------------------------------------------------------------ the kinds


@dataclass(frozen=True)
class Spec:
    """What differs between Keystone's kinds: where they live, what a body holds."""

    kind: str
    collection: str  # the path below /v3, and the listing's key
    key: str  # the object's key in a body
    listing: str  # the client's listing name
    body: Callable[[OpenStackClient, str, Mapping[str, Any], str], Body]  # props, name
    reported: tuple[str, ...]  # properties read back as they are
    attributes: Callable[[Mapping[str, Any]], dict[str, Any]]
    after: Callable[[OpenStackClient, str, str, Mapping[str, Any]], None] | None = None
    named_by: str = "name"  # the field that holds the cloud-side name
    fixed: frozenset[str] = field(default_factory=frozenset)  # fields a PATCH may not send


def _enabled(props: Mapping[str, Any]) -> bool:
    value = props.get("enabled", True)
    return bool(True if value is None else value)


def _domain_body(client: OpenStackClient, region: str, props: Mapping[str, Any],
                 name: str) -> Body:
    return {"name": name, "enabled": _enabled(props)}


def _project_body(client: OpenStackClient, region: str, props: Mapping[str, Any],
                  name: str) -> Body:
    domain = _domain(client, region, props)
    body: Body = {"name": name, "domain_id": domain, "enabled": _enabled(props),
                  "tags": [str(t) for t in props.get("tags") or []]}
    if props.get("parent"):
        body["parent_id"] = ref(client, region, "projects", props["parent"], domain)
    return body


def _role_body(client: OpenStackClient, region: str, props: Mapping[str, Any],
               name: str) -> Body:
    body: Body = {"name": name}
    if props.get("domain"):
        body["domain_id"] = ref(client, region, "domains", props["domain"])
    return body


def _group_body(client: OpenStackClient, region: str, props: Mapping[str, Any],
                name: str) -> Body:
    return {"name": name, "domain_id": _domain(client, region, props)}


def _user_body(client: OpenStackClient, region: str, props: Mapping[str, Any],
               name: str) -> Body:
    domain = _domain(client, region, props)
    body: Body = {"name": name, "domain_id": domain, "enabled": _enabled(props)}
    if props.get("email") is not None:
        body["email"] = str(props["email"])
    if props.get("password") is not None:
        body["password"] = str(props["password"])
    if props.get("default_project"):
        body["default_project_id"] = ref(client, region, "projects",
                                         props["default_project"])
    return body


def _region_body(client: OpenStackClient, region: str, props: Mapping[str, Any],
                 name: str) -> Body:
    body: Body = {"id": name, "enabled": _enabled(props)}
    if props.get("parent_region"):
        body["parent_region_id"] = str(props["parent_region"])
    return body


def _service_body(client: OpenStackClient, region: str, props: Mapping[str, Any],
                  name: str) -> Body:
    return {"name": name, "type": str(props.get("type") or ""), "enabled": _enabled(props)}


def _endpoint_body(client: OpenStackClient, region: str, props: Mapping[str, Any],
                   name: str) -> Body:
    interface = str(props.get("interface") or "")
    if interface not in kinds.INTERFACES:
        raise CloudError(f"interface must be one of {', '.join(kinds.INTERFACES)} "
                         f"(got {interface!r})", permanent=True)
    body: Body = {"name": name, "service_id": ref(client, region, "services",
                                                  props.get("service")),
                  "interface": interface, "url": str(props.get("url") or ""),
                  "enabled": _enabled(props)}
    if props.get("region"):
        body["region_id"] = str(props["region"])
    return body


def _user_after(client: OpenStackClient, region: str, user_id: str,
                props: Mapping[str, Any]) -> None:
    _sync_groups(client, region, user_id, props.get("groups") or [],
                 _domain(client, region, props))
    _sync_roles(client, region, "users", user_id, props.get("roles") or [])


def _group_after(client: OpenStackClient, region: str, group_id: str,
                 props: Mapping[str, Any]) -> None:
    _sync_roles(client, region, "groups", group_id, props.get("roles") or [])


def _pick(*names: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    return lambda obj: {n: obj.get(n) for n in names}


SPECS = (
    Spec(kinds.DOMAIN.kind, "domains", "domain", "ks_domains", _domain_body,
         ("name", "enabled"), _pick("name", "enabled", "id")),
    Spec(kinds.PROJECT.kind, "projects", "project", "ks_projects", _project_body,
         ("name", "enabled", "tags"),
         _pick("name", "domain_id", "parent_id", "is_domain", "enabled", "id"),
         fixed=frozenset({"domain_id", "parent_id"})),
    Spec(kinds.ROLE.kind, "roles", "role", "ks_roles", _role_body, ("name",),
         _pick("name", "domain_id", "id"), fixed=frozenset({"domain_id"})),
    Spec(kinds.GROUP.kind, "groups", "group", "ks_groups", _group_body, ("name",),
         _pick("name", "domain_id", "id"), after=_group_after,
         fixed=frozenset({"domain_id"})),
    Spec(kinds.USER.kind, "users", "user", "ks_users", _user_body,
         ("name", "enabled", "email"),
         _pick("name", "default_project_id", "domain_id", "enabled", "password_expires_at",
               "id"),
         after=_user_after, fixed=frozenset({"domain_id"})),
    Spec(kinds.REGION.kind, "regions", "region", "ks_regions", _region_body,
         ("id", "parent_region", "enabled"), _pick("id", "parent_region_id"),
         named_by="id", fixed=frozenset({"id"})),
    Spec(kinds.SERVICE.kind, "services", "service", "ks_services", _service_body,
         ("name", "type", "enabled"), _pick("name", "type", "enabled", "id")),
    Spec(kinds.ENDPOINT.kind, "endpoints", "endpoint", "ks_endpoints", _endpoint_body,
         ("name", "interface", "url", "region", "enabled"),
         _pick("service_id", "interface", "url", "region", "name", "enabled", "id")),
)


class KeystoneHandler:
    """One Keystone kind, as its :class:`Spec` says."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.kind = spec.kind
        self.listings: tuple[str, ...] = (spec.listing,)

    def _live(self, client: OpenStackClient, region: str, address: str,
              obj: Mapping[str, Any]) -> LiveResource:
        spec = self.spec
        text, marker = split(obj.get("description"))
        view = {**obj, "parent_region": obj.get("parent_region_id"),
                "region": obj.get("region_id")}
        properties = {p: view.get(p) for p in spec.reported}
        properties["description"] = text
        attributes = {**spec.attributes(obj), "description": text}
        name = str(obj.get(spec.named_by) or "")
        return LiveResource(address=address, kind=self.kind, physical_id=str(obj["id"]),
                            placement=client.placement(region), name=name,
                            properties=properties, attributes=attributes,
                            spec_hash=marker[2] if marker else None,
                            status="available" if obj.get("enabled", True) else "disabled")

    @staticmethod
    def _owner(region: str, stack: str, obj: Mapping[str, Any]) -> str | None:
        _, marker = split(obj.get("description"))
        if marker is None or marker[0] != region:
            return None
        return address_from_name(stack, marker[1]) or None

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [self._live(client, region, address, obj) for address, obj in kit.stack_items(
            listings.get(self.spec.listing), lambda o: self._owner(region, stack, o))]

    def _name(self, want: kit.Desired) -> str:
        key = "id" if self.spec.named_by == "id" else "name"
        return str(want.properties.get(key) or want.name)

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        spec, props = self.spec, want.properties
        body = spec.body(client, region, props, self._name(want))
        owner = f"{want.stack}.{want.address}"
        body["description"] = describe(str(props.get("description") or ""), region, owner,
                                       want.spec_hash)

        def post() -> dict[str, Any]:
            obj = client.api(region, ID, f"/v3/{spec.collection}", method="POST",
                             body={spec.key: body}, retry=False) or {}
            return dict(obj[spec.key])

        def lookup() -> dict[str, Any] | None:
            return next((o for o in client.list_all(region, ID, f"/v3/{spec.collection}",
                                                    spec.collection)
                         if (split(o.get("description"))[1] or ("", "", ""))[:2]
                         == (region, owner)), None)

        obj = client.create_or_adopt(post, lookup)
        if spec.after is not None:
            spec.after(client, region, str(obj["id"]), props)
        return self._live(client, region, want.address, obj)

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        spec, props = self.spec, change.properties
        region = live.placement.region
        want = kit.Desired(change.stack, live.address, physical_name(change.stack, live.address),
                           props, change.spec_hash, change.timeout)
        full = spec.body(client, region, props, self._name(want))
        body = {k: v for k, v in full.items() if k not in spec.fixed}
        if "password" not in change.changed:
            body.pop("password", None)  # sent only when it changes (Keystone's history)
        body["description"] = describe(str(props.get("description") or ""), region,
                                       f"{change.stack}.{live.address}", change.spec_hash)
        if spec.kind == kinds.ENDPOINT.kind and not props.get("region"):
            body["region_id"] = None
        if spec.kind == kinds.REGION.kind and not props.get("parent_region"):
            body["parent_region_id"] = None
        obj = client.api(region, ID, f"/v3/{spec.collection}/{live.physical_id}",
                         method="PATCH", body={spec.key: body}) or {}
        if spec.after is not None:
            spec.after(client, region, live.physical_id, props)
        return self._live(client, region, live.address, dict(obj[spec.key]))

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        region, path = live.placement.region, f"/v3/{self.spec.collection}/{live.physical_id}"
        if self.kind == kinds.DOMAIN.kind:
            try:  # Keystone deletes only a disabled domain
                client.api(region, ID, path, method="PATCH",
                           body={"domain": {"enabled": False}})
            except CloudError as err:
                if status_of(err) == 404:
                    return
                raise
        if self.kind != kinds.PROJECT.kind:
            client.delete_call(region, ID, path)
            return

        def attempt() -> tuple[bool, str, None]:
            # a parent goes once its children have (they are of one layer: deleted at
            # the same time when the template no longer orders them)
            try:
                client.delete_call(region, ID, path)
            except CloudError as err:
                if status_of(err) == 403 and "not a leaf" in str(err):
                    return False, "a parent of projects", None
                raise
            return True, "deleted", None

        client.poll(timeout, f"project {live.address} ({live.physical_id})", attempt)


HANDLERS = {spec.kind: KeystoneHandler(spec) for spec in SPECS}
IDENTITY_KINDS = frozenset(HANDLERS)
