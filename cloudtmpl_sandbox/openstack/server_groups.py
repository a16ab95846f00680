"""Nova server groups (``/os-server-groups``) and where the scheduler puts their members.

The model, as Nova's: a group has a name (1-255 characters, not unique) and exactly one
policy, ``affinity`` or ``anti-affinity``; ``soft-affinity`` and ``soft-anti-affinity``
need compute microversion 2.15 (else 400, as the base microversion's schema refuses
them).  Server groups have no metadata to set.  Deleting a group that still has
members is allowed (they keep running); deleting a server takes it out of its group.

Scheduling: the emulated cloud has :data:`HOSTS` compute hosts.  A server booted with
``os:scheduler_hints: {group: ID}`` (a group that does not exist: 400) is placed by the
group's policy: ``affinity`` on its members' host; ``anti-affinity`` on a host none of
them uses, and when there is none the server goes to ``ERROR`` with Nova's fault "No
valid host was found" (the create itself is accepted, as Nova's is); the soft forms
never fail.  A server's ``hostId`` is the SHA-224 of project and host, as Nova's.
"""

from __future__ import annotations

import hashlib
import re

from . import versions
from .core import JSON, fault, new_id
from .identity import PROJECT_ID, USER_ID
from .state import Region

HOSTS = ("sandbox-compute", "sandbox-compute-2", "sandbox-compute-3")
BASE_POLICIES = ("affinity", "anti-affinity")
SOFT_POLICIES = ("soft-affinity", "soft-anti-affinity")
SOFT_MICROVERSION = (2, 15)
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def microversion(headers: dict[str, str]) -> tuple[int, int]:
    """The compute microversion a request asks for (the base, 2.1, when none)."""
    return versions.compute(headers)


def create(region: Region, spec: JSON, version: tuple[int, int]) -> JSON:
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise fault(400, "Invalid input for field/attribute name.")
    policies = spec.get("policies")
    allowed = BASE_POLICIES + (SOFT_POLICIES if version >= SOFT_MICROVERSION else ())
    if (not isinstance(policies, list) or len(policies) != 1
            or policies[0] not in allowed):
        raise fault(400, "Invalid input for field/attribute policies. Value: "
                    f"{policies!r}. {policies!r} is not one of {list(allowed)!r}")
    extra = set(spec) - {"name", "policies"}
    if extra:
        raise fault(400, "Invalid input for field/attribute server_group. Additional "
                    f"properties are not allowed ({', '.join(sorted(extra))!r} were "
                    "unexpected)")
    group: JSON = {"id": new_id(), "name": name, "policies": list(policies), "members": [],
             "metadata": {}, "project_id": PROJECT_ID, "user_id": USER_ID}
    region.server_groups[group["id"]] = group
    return group


def get(region: Region, group_id: str) -> JSON:
    group = region.server_groups.get(group_id)
    if group is None:
        raise fault(404, f"Server group {group_id} could not be found.")
    return group


def view(group: JSON) -> JSON:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in group.items()}


def delete(region: Region, group_id: str) -> None:
    get(region, group_id)
    del region.server_groups[group_id]


def hinted_group(region: Region, hints: object) -> JSON | None:
    """The group a create's ``os:scheduler_hints`` name (None: none), or a 400."""
    if hints is None:
        return None
    if not isinstance(hints, dict):
        raise fault(400, "Invalid input for field/attribute os:scheduler_hints.")
    group_id = hints.get("group")
    if group_id is None:
        return None
    if not isinstance(group_id, str) or not _UUID.match(group_id):
        raise fault(400, f"Invalid input for field/attribute group. Value: {group_id}. "
                    f"'{group_id}' is not a 'uuid'")
    group = region.server_groups.get(group_id)
    if group is None:
        raise fault(400, f"Instance group {group_id} could not be found.")
    return group


def place(region: Region, group: JSON | None, server_id: str) -> str | None:
    """The host a new server goes to (None: no valid host), joining ``group``."""
    if group is None:
        return HOSTS[0]
    used = [region.servers[m]["_host"] for m in group["members"]
            if m in region.servers and region.servers[m].get("_host")]
    policy = group["policies"][0]
    if policy in ("affinity", "soft-affinity"):
        host: str | None = used[0] if used else HOSTS[0]
    else:
        free = [h for h in HOSTS if h not in used]
        host = free[0] if free else (None if policy == "anti-affinity" else
                                     min(HOSTS, key=used.count))
    group["members"].append(server_id)
    return host


def host_id(host: str) -> str:
    return hashlib.sha224(f"{PROJECT_ID}{host}".encode()).hexdigest()


def leave(region: Region, server_id: str) -> None:
    """A deleted server is no group's member any more."""
    for group in region.server_groups.values():
        if server_id in group["members"]:
            group["members"].remove(server_id)
