"""The identity kinds: Keystone's projects, users, groups, roles, domains, regions,
services and endpoints (Heat's ``OS::Keystone::*``), OpenStack only.

Properties and ``update_allowed`` follow Heat's Keystone resources, except where
Keystone itself refuses the change Heat would send: a project's, user's or group's
``domain`` cannot move (Keystone answers 400 "update of domain_id is not allowed"),
so a new domain replaces.  ``name`` is the cloud-side name when given (a user logs in
with it); without one the resource is named ``<stack>.<address>``.  How a resource is
known as the stack's is :mod:`cloudtmpl.providers.openstack.identity`'s docstring.

Role assignments are the ``roles`` property of a user or group
(``[{role: R, project: P}]`` or ``[{role: R, domain: D}]``, names or ids), as Heat's
``KeystoneRoleAssignmentMixin`` adds it to both; Heat's standalone
``OS::Keystone::UserRoleAssignment``/``GroupRoleAssignment`` are not offered (an
assignment has nothing to carry the stack's mark).
"""

from __future__ import annotations

from cloudtmpl.resource_spec import Alias, P, ResourceType

_NAME = P("string", update_allowed=True,
          description="The cloud-side name (default: <stack>.<address>)")
_DESCRIPTION = P("string", default="", update_allowed=True, description="A description")
_ENABLED = P("boolean", default=True, update_allowed=True)
_DOMAIN = P("string", default="default",
            description="The domain (name or id); Keystone cannot move an object to "
            "another domain, so a change replaces")
_ROLES = P("list", default=[], update_allowed=True,
           description="Role assignments: [{role: name or id, project: name or id}] or "
           "[{role, domain}]")

#: The interfaces of an endpoint, as Keystone takes them.
INTERFACES = ("public", "internal", "admin")

DOMAIN = ResourceType(
    kind="Cloud::Identity::Domain",
    description="A Keystone domain; deleting it disables it first (Keystone refuses to "
    "delete an enabled domain).",
    properties={"name": _NAME, "description": _DESCRIPTION, "enabled": _ENABLED},
    attributes={"name": "The domain's name", "description": "Its description",
                "enabled": "Whether it is enabled", "id": "The domain id"},
    ref="domain id",
    tags=False,  # a marker in the description
    ready_timeout=60.0,
)

PROJECT = ResourceType(
    kind="Cloud::Identity::Project",
    description="A Keystone project (a tenant), optionally below a parent project.",
    properties={
        "name": _NAME, "description": _DESCRIPTION, "enabled": _ENABLED, "domain": _DOMAIN,
        "parent": P("string", description="The parent project (name or id)"),
        "tags": P("list", default=[], update_allowed=True, description="Project tags"),
    },
    attributes={"name": "The project's name", "domain_id": "Its domain",
                "parent_id": "Its parent (the domain when at the top)",
                "is_domain": "Whether it acts as a domain", "enabled": "Whether enabled",
                "description": "Its description", "id": "The project id"},
    ref="project id",
    tags=False,  # its Keystone tags stay the template's: a marker in the description
    ready_timeout=60.0,
    layer=1,
)

ROLE = ResourceType(
    kind="Cloud::Identity::Role",
    description="A Keystone role (global, or of one domain).",
    properties={"name": _NAME,
                "domain": P("string", description="The domain of a domain-specific role")},
    attributes={"name": "The role's name", "domain_id": "Its domain, if any",
                "id": "The role id"},
    ref="role id",
    tags=False,
    ready_timeout=60.0,
    layer=1,
)

GROUP = ResourceType(
    kind="Cloud::Identity::Group",
    description="A Keystone group of users, with its role assignments.",
    properties={"name": _NAME, "description": _DESCRIPTION, "domain": _DOMAIN,
                "roles": _ROLES},
    attributes={"name": "The group's name", "domain_id": "Its domain",
                "description": "Its description", "id": "The group id"},
    ref="group id",
    tags=False,
    ready_timeout=60.0,
    layer=2,
)

USER = ResourceType(
    kind="Cloud::Identity::User",
    description="A Keystone user, its groups and role assignments.  Its password is "
    "sent to Keystone only: sealed in the state and plan, never shown.",
    properties={
        "name": _NAME, "description": _DESCRIPTION, "enabled": _ENABLED, "domain": _DOMAIN,
        "email": P("string", update_allowed=True, description="The user's email address"),
        "password": P("string", update_allowed=True, sensitive=True,
                      description="The password (sensitive: sealed wherever it is written)"),
        "default_project": P("string", update_allowed=True,
                             description="The project a token is scoped to by default"),
        "groups": P("list", default=[], update_allowed=True,
                    description="The groups (names or ids) the user is a member of"),
        "roles": _ROLES,
    },
    attributes={"name": "The user's name", "default_project_id": "Its default project",
                "domain_id": "Its domain", "enabled": "Whether enabled",
                "password_expires_at": "When the password expires (None: never)",
                "id": "The user id"},
    ref="user id",
    tags=False,
    ready_timeout=60.0,
    layer=3,
)

REGION = ResourceType(
    kind="Cloud::Identity::Region",
    description="A Keystone region of the service catalog, optionally below a parent.",
    properties={
        "id": P("string", description="The region id (default: <stack>.<address>)"),
        "description": _DESCRIPTION,
        "parent_region": P("string", update_allowed=True, description="The parent region"),
        "enabled": _ENABLED,
    },
    attributes={"id": "The region id", "parent_region_id": "Its parent region",
                "description": "Its description"},
    ref="region id",
    tags=False,
    ready_timeout=60.0,
)

SERVICE = ResourceType(
    kind="Cloud::Identity::Service",
    description="A service of Keystone's catalog.",
    properties={"name": _NAME, "description": _DESCRIPTION, "enabled": _ENABLED,
                "type": P("string", required=True, update_allowed=True,
                          description="The service type, e.g. compute")},
    attributes={"name": "The service's name", "type": "Its type",
                "enabled": "Whether enabled", "id": "The service id"},
    ref="service id",
    tags=False,
    ready_timeout=60.0,
)

ENDPOINT = ResourceType(
    kind="Cloud::Identity::Endpoint",
    description="An endpoint of a catalog service.",
    properties={
        "service": P("string", required=True, update_allowed=True,
                     description="The service (id, e.g. get_resource of a Service)"),
        "interface": P("string", required=True, update_allowed=True,
                       description="One of " + ", ".join(INTERFACES)),
        "url": P("string", required=True, update_allowed=True, description="The URL"),
        "region": P("string", update_allowed=True, description="The region id"),
        "name": _NAME,
        "enabled": _ENABLED,
    },
    attributes={"service_id": "The service", "interface": "The interface",
                "url": "The URL", "region": "The region", "name": "The endpoint's name",
                "enabled": "Whether enabled", "id": "The endpoint id"},
    ref="endpoint id",
    tags=False,
    ready_timeout=60.0,
    layer=1,
)

KINDS = (DOMAIN, PROJECT, ROLE, GROUP, USER, REGION, SERVICE, ENDPOINT)
ALIASES = tuple(Alias(f"OS::Keystone::{kind.kind.rsplit('::', 1)[1]}", kind.kind)
                for kind in KINDS)
