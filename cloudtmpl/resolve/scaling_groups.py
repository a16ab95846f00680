"""A scaling group's own properties checked (Heat's ``AutoScalingGroup``: ``min_size``
and ``max_size`` required, ``desired_capacity`` within them) and its size for this
run: the recorded size the caller hands in (``ResolveOptions.scaling_records``,
read from the state store), by :func:`cloudtmpl.scaling.size_now`.  Its members are
made as a resource group's (:mod:`.composites`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from cloudtmpl.functions import to_text
from cloudtmpl.loader import Path
from cloudtmpl.model import DesiredResource
from cloudtmpl.resolve.scope import Scope
from cloudtmpl.scaling import Bounds, ScalingGroup, policy_problems, size_now
from cloudtmpl.scaling_kinds import GROUP_PROPERTIES, ROLLING_UPDATES, SCALING_POLICY
from cloudtmpl.schema import describe, did_you_mean


def _whole(scope: Scope, name: str, props: Mapping[str, Any], key: str, required: bool
           ) -> int | None:
    path: Path = ("resources", name, "properties", key)
    if key not in props:
        if required:
            scope.add("missing-property", f"resource '{name}': property '{key}' is required",
                      scope.doc.key_loc(("resources", name)),
                      "min_size and max_size bound the group's size")
        return None
    value = props[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        scope.add("invalid-value", f"resource '{name}': {key} must be a known whole number "
                  f"of 0 or more, not {describe(value)}", scope.doc.loc(path),
                  "use a number or {get_param: a_number_parameter}")
        return None
    return value


def definition_digest(props: Mapping[str, Any]) -> str:
    """The group's definition as a digest: a change of any property (its member's
    definition included) is a changed definition, as a Heat stack update sees it."""
    return hashlib.sha256(to_text(dict(props)).encode()).hexdigest()[:16]


def scaling_group(scope: Scope, name: str, props: Mapping[str, Any]) -> ScalingGroup | None:
    """The group's bounds and size, or None (its problems reported) if they are wrong."""
    ppath: Path = ("resources", name, "properties")
    for key in props:
        if key not in GROUP_PROPERTIES:
            scope.add("unknown-property", f"resource '{name}': unknown property '{key}' for "
                      "a scaling group", scope.doc.key_loc((*ppath, key)),
                      did_you_mean(str(key), GROUP_PROPERTIES, "properties"))
    rolling = props.get("rolling_updates")
    if rolling is not None and not isinstance(rolling, Mapping):
        scope.add("invalid-value", f"resource '{name}': rolling_updates must be a mapping",
                  scope.doc.loc((*ppath, "rolling_updates")),
                  "rolling_updates: {min_in_service: 1, max_batch_size: 1, pause_time: 0}")
    for key in rolling or {}:
        if key not in ROLLING_UPDATES:
            scope.add("unknown-property", f"resource '{name}': unknown rolling_updates key "
                      f"'{key}'", scope.doc.key_loc((*ppath, "rolling_updates", key)),
                      did_you_mean(str(key), ROLLING_UPDATES, "keys"))
    minimum = _whole(scope, name, props, "min_size", True)
    maximum = _whole(scope, name, props, "max_size", True)
    desired = _whole(scope, name, props, "desired_capacity", False)
    cooldown = props.get("cooldown")
    if cooldown is not None and (isinstance(cooldown, bool)
                                 or not isinstance(cooldown, (int, float))):
        scope.add("invalid-value", f"resource '{name}': cooldown must be a number of "
                  f"seconds, not {describe(cooldown)}", scope.doc.loc((*ppath, "cooldown")),
                  "cooldown: 60")
        cooldown = None
    if minimum is None or maximum is None or ("desired_capacity" in props and desired is None):
        return None
    if maximum < minimum:
        scope.add("invalid-value", f"resource '{name}': min_size ({minimum}) can not be "
                  f"greater than max_size ({maximum})", scope.doc.loc((*ppath, "min_size")),
                  "make max_size at least min_size")
        return None
    if desired is not None and not minimum <= desired <= maximum:
        scope.add("invalid-value", f"resource '{name}': desired_capacity ({desired}) must be "
                  f"between min_size ({minimum}) and max_size ({maximum})",
                  scope.doc.loc((*ppath, "desired_capacity")),
                  "leave desired_capacity out to start at min_size")
        return None
    bounds = Bounds(minimum, maximum, desired)
    digest = definition_digest(props)
    # a group in a nested template has no record of its own (its size is its template's)
    source = scope.options.scaling_records
    records = source() if source is not None and not scope.options.nested else {}
    rec = records.get(name)
    size = size_now(bounds, rec[0] if rec else None, rec is not None and rec[1] == digest)
    return ScalingGroup(name, bounds, size, digest,
                        float(cooldown) if cooldown is not None else None)


def check_policies(scope: Scope, resources: Mapping[str, DesiredResource]) -> None:
    """What Heat refuses in a scaling policy's properties (:func:`policy_problems`)."""
    for address, res in resources.items():
        if res.kind != SCALING_POLICY.kind:
            continue
        for prop, message in policy_problems(dict(res.properties)):
            path: Path = ("resources", address, "properties", prop)
            scope.add("invalid-value", f"resource '{address}': {message}", scope.doc.loc(path),
                      "see Heat's OS::Heat::ScalingPolicy")
