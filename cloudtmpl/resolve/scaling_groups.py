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
from cloudtmpl.scaling import Bounds, ScalingGroup, policy_problems, scaled_in, size_now
from cloudtmpl.scaling_kinds import (
    AWS_GROUP_PROPERTIES,
    AWS_POLICY,
    AWS_POLICY_NAMES,
    GROUP_PROPERTIES,
    INSTANCE_GROUP,
    INSTANCE_GROUP_PROPERTIES,
    LAUNCH_PROPERTIES,
    LAUNCH_TYPE,
    ROLLING_UPDATES,
    SCALING_POLICY,
    UNSUPPORTED_GROUP_PROPERTIES,
)
from cloudtmpl.schema import describe, did_you_mean

SERVER_TYPE = "Cloud::Compute::Server"


def _whole(scope: Scope, name: str, props: Mapping[str, Any], key: str, required: bool
           ) -> int | None:
    path: Path = ("resources", name, "properties", key)
    if key not in props:
        if required:
            scope.add("missing-property", f"resource '{name}': property '{key}' is required",
                      scope.doc.key_loc(("resources", name)),
                      "a group's sizes bound how many members it has")
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
    return sized(scope, name, props, HOT_SIZES)


#: the names of a group's sizes: min, max, desired, cooldown
HOT_SIZES = ("min_size", "max_size", "desired_capacity", "cooldown")
AWS_SIZES = ("MinSize", "MaxSize", "DesiredCapacity", "Cooldown")


def sized(scope: Scope, name: str, props: Mapping[str, Any], keys: tuple[str, ...],
          scalable: bool = True, member: Any = None) -> ScalingGroup | None:
    """The group's bounds (``keys``: the names of min, max, desired, cooldown) checked
    as Heat validates them, and its size for this run (``member``: a definition of the
    members kept elsewhere, a launch configuration's, part of the group's)."""
    ppath: Path = ("resources", name, "properties")
    lo, hi, want, cool = keys
    minimum = _whole(scope, name, props, lo, True)
    maximum = _whole(scope, name, props, hi, True)
    desired = _whole(scope, name, props, want, False)
    cooldown = props.get(cool)
    if cooldown is not None and (isinstance(cooldown, bool)
                                 or not isinstance(cooldown, (int, float))):
        scope.add("invalid-value", f"resource '{name}': {cool} must be a number of "
                  f"seconds, not {describe(cooldown)}", scope.doc.loc((*ppath, cool)),
                  f"{cool}: 60")
        cooldown = None
    if minimum is None or maximum is None or (want in props and desired is None):
        return None
    if maximum < minimum:
        scope.add("invalid-value", f"resource '{name}': {lo} ({minimum}) can not be "
                  f"greater than {hi} ({maximum})", scope.doc.loc((*ppath, lo)),
                  f"make {hi} at least {lo}")
        return None
    if desired is not None and not minimum <= desired <= maximum:
        scope.add("invalid-value", f"resource '{name}': {want} ({desired}) must be "
                  f"between {lo} ({minimum}) and {hi} ({maximum})",
                  scope.doc.loc((*ppath, want)), f"leave {want} out to start at {lo}")
        return None
    bounds = Bounds(minimum, maximum, desired)
    digest = definition_digest({**props, "\0member": member} if member is not None else props)
    # a group in a nested template has no record of its own (its size is its template's)
    source = scope.options.scaling_records
    records = source() if source is not None and not scope.options.nested else {}
    rec = records.get(name)
    size = size_now(bounds, rec.size if rec else None,
                    rec is not None and rec.definition == digest)
    return ScalingGroup(name, bounds, size, digest,
                        float(cooldown) if cooldown is not None else None, scalable,
                        scaled_in(rec, size))


def _launch_configuration(scope: Scope, name: str) -> str | None:
    """The launch configuration a group's LaunchConfigurationName names (a
    get_resource or Ref of it, or its name), or None (reported)."""
    path: Path = ("resources", name, "properties", "LaunchConfigurationName")
    raw = scope.doc.get(path)
    if isinstance(raw, Mapping) and len(raw) == 1:
        raw = raw.get("get_resource", raw.get("Ref"))
    resources = scope.data.get("resources")
    resources = resources if isinstance(resources, Mapping) else {}
    target = resources.get(raw) if isinstance(raw, str) else None
    if raw is None and "LaunchConfigurationName" not in (scope.doc.get(path[:-1]) or {}):
        scope.add("missing-property", f"resource '{name}': property 'LaunchConfigurationName'"
                  " is required", scope.doc.key_loc(("resources", name)),
                  "LaunchConfigurationName: {get_resource: a_launch_configuration}")
        return None
    if not isinstance(target, Mapping) or target.get("type") != LAUNCH_TYPE:
        scope.add("invalid-value", f"resource '{name}': LaunchConfigurationName must name an "
                  f"{LAUNCH_TYPE} of this template, not "
                  f"{repr(raw) if isinstance(raw, str) else describe(raw)}", scope.doc.loc(path),
                  "LaunchConfigurationName: {get_resource: a_launch_configuration}")
        return None
    return str(raw)


def instance_group(scope: Scope, name: str, tname: str, props: Mapping[str, Any]
                   ) -> tuple[ScalingGroup, Mapping[str, Any], Path] | None:
    """An ``OS::Heat::InstanceGroup`` (its size is ``Size``) or an
    ``AWS::AutoScaling::AutoScalingGroup`` (``MinSize`` .. ``MaxSize``, scaled by
    policies): its size, and the member's definition made of its launch configuration
    (a server: ``ImageId`` is its image, ``InstanceType`` its flavor, ...; the group's
    ``Tags`` its metadata, ``VPCZoneIdentifier`` its subnet), with the path of the
    launch configuration for its diagnostics."""
    ppath: Path = ("resources", name, "properties")
    allowed = INSTANCE_GROUP_PROPERTIES if tname == INSTANCE_GROUP else AWS_GROUP_PROPERTIES
    ok = True
    for key in props:
        if key not in allowed:
            scope.add("unknown-property", f"resource '{name}': unknown property '{key}' for "
                      f"{tname}", scope.doc.key_loc((*ppath, key)),
                      did_you_mean(str(key), allowed, "properties"))
        elif key in UNSUPPORTED_GROUP_PROPERTIES:
            scope.add("unsupported-property", f"resource '{name}': {key} of {tname} is not "
                      "supported", scope.doc.key_loc((*ppath, key)),
                      "define the members with LaunchConfigurationName" if key == "InstanceId"
                      else "put a load balancer's members in its own properties")
            ok = False
    if "AvailabilityZones" not in props:  # Heat requires it (and does not use it)
        scope.add("missing-property", f"resource '{name}': property 'AvailabilityZones' is "
                  "required", scope.doc.key_loc(("resources", name)),
                  "AvailabilityZones: [nova] (Heat does not use it; placement: does)")
        ok = False
    zones = scope.doc.get((*ppath, "VPCZoneIdentifier"))
    if zones is not None and (not isinstance(zones, list) or len(zones) != 1):
        scope.add("unsupported-property", f"resource '{name}': VPCZoneIdentifier must list "
                  "exactly one subnet (Heat supports no more)",
                  scope.doc.loc((*ppath, "VPCZoneIdentifier")), "VPCZoneIdentifier: [subnet]")
        ok = False
    lc = _launch_configuration(scope, name)
    raw = scope.doc.get(("resources", lc, "properties")) if lc is not None else None
    raw = raw if isinstance(raw, Mapping) else {}
    if tname == INSTANCE_GROUP:
        size = _whole(scope, name, props, "Size", True)
        group = sized(scope, name, {**props, "MinSize": size, "MaxSize": size},
                      AWS_SIZES, False, raw) if size is not None else None
    else:
        group = sized(scope, name, props, AWS_SIZES, True, raw)
    if group is None or lc is None or not ok:
        return None
    member: dict[str, Any] = {LAUNCH_PROPERTIES[k]: v for k, v in raw.items()
                              if k in LAUNCH_PROPERTIES}
    tags = scope.doc.get((*ppath, "Tags"))
    if isinstance(tags, list):
        member["metadata"] = {t.get("Key"): t.get("Value") for t in tags
                              if isinstance(t, Mapping)}
    if zones:
        member["networks"] = [{"subnet": zones[0]}]
    return group, {"type": SERVER_TYPE, "properties": member}, ("resources", lc)


def check_policies(scope: Scope, resources: Mapping[str, DesiredResource]) -> None:
    """What Heat refuses in a scaling policy's properties (:func:`policy_problems`)."""
    for address, res in resources.items():
        if res.kind != SCALING_POLICY.kind:
            continue
        cfn = res.type == AWS_POLICY
        names = {v: k for k, v in AWS_POLICY_NAMES.items()} if cfn else {}
        for prop, message in policy_problems(dict(res.properties), cfn):
            path: Path = ("resources", address, "properties", names.get(prop, prop))
            scope.add("invalid-value", f"resource '{address}': {message}", scope.doc.loc(path),
                      "see Heat's OS::Heat::ScalingPolicy")
