"""EC2 placement groups, which moto does not have, answered as EC2 answers them.

* ``CreatePlacementGroup`` (``GroupName``, ``Strategy`` cluster | spread | partition,
  ``PartitionCount`` 1-7 for partition only, ``SpreadLevel`` host | rack for spread
  only, ``TagSpecification.N`` of resource type ``placement-group``): a duplicate name
  is ``InvalidPlacementGroup.Duplicate``; a bad value ``InvalidParameterValue``.
* ``DescribePlacementGroups`` (``GroupName.N``, ``GroupId.N``, filters ``group-name``,
  ``group-id``, ``strategy``, ``state``, ``tag:KEY``, ``tag-key``): a named group that
  does not exist is ``InvalidPlacementGroup.Unknown``.
* ``DeletePlacementGroup`` (``GroupName``): unknown as above; a group that still has
  instances which are not terminated is ``InvalidPlacementGroup.InUse``.
* ``CreateTags``/``DeleteTags`` on placement group ids (``pg-…``) only: the group's tags.
* ``RunInstances`` with ``Placement.GroupName``: a group that does not exist is
  ``InvalidPlacementGroup.Unknown`` (nothing is launched); a spread group holds at most
  seven running instances per availability zone (EC2's limit).  The instances that
  launch are the group's members.

State (the groups) is kept apart from the wire (the XML): :class:`PlacementGroups` is
the model, :func:`answer` turns a query into its reply.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

ACTIONS = frozenset({"CreatePlacementGroup", "DescribePlacementGroups", "DeletePlacementGroup"})
TAG_ACTIONS = frozenset({"CreateTags", "DeleteTags"})
STRATEGIES = ("cluster", "spread", "partition")
SPREAD_LIMIT = 7  # running instances per availability zone in a spread group
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

Params = list[tuple[str, str]]
# (region, instance ids) -> {instance id: (state, zone)} for the ids that exist
InstanceStates = Callable[[str, list[str]], Mapping[str, tuple[str, str]]]


class Ec2Error(Exception):
    """An EC2 error answer: HTTP status, code, message."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class Group:
    name: str
    group_id: str
    strategy: str
    partition_count: int | None
    spread_level: str | None
    tags: dict[str, str]
    members: set[str] = field(default_factory=set)


def _get(params: Params, key: str) -> str | None:
    return next((v for k, v in params if k == key), None)


def _numbered(params: Params, prefix: str) -> list[str]:
    """The values of ``prefix.1``, ``prefix.2``, ... in order."""
    found = []
    for key, value in params:
        head, _, index = key.rpartition(".")
        if head == prefix and index.isdigit():
            found.append((int(index), value))
    return [v for _, v in sorted(found)]


def _tags(params: Params) -> dict[str, str]:
    tags: dict[str, str] = {}
    for n in range(1, 100):
        rtype = _get(params, f"TagSpecification.{n}.ResourceType")
        if rtype is None:
            break
        if rtype != "placement-group":
            raise Ec2Error("InvalidParameterValue",
                           f"'{rtype}' is not a valid taggable resource type for this "
                           "operation.")
        for m in range(1, 100):
            key = _get(params, f"TagSpecification.{n}.Tag.{m}.Key")
            if key is None:
                break
            tags[key] = _get(params, f"TagSpecification.{n}.Tag.{m}.Value") or ""
    return tags


def _filters(params: Params) -> list[tuple[str, list[str]]]:
    out = []
    for n in range(1, 100):
        name = _get(params, f"Filter.{n}.Name")
        if name is None:
            break
        out.append((name, _numbered(params, f"Filter.{n}.Value")))
    return out


def _matches(group: Group, name: str, values: list[str]) -> bool:
    if name == "group-name":
        return group.name in values
    if name == "group-id":
        return group.group_id in values
    if name == "strategy":
        return group.strategy in values
    if name == "state":
        return "available" in values
    if name == "tag-key":
        return any(k in group.tags for k in values)
    if name.startswith("tag:"):
        return group.tags.get(name[4:]) in values
    raise Ec2Error("InvalidParameterValue", f"The filter '{name}' is invalid")


class PlacementGroups:
    """Every region's placement groups (the model)."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], Group] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._groups.clear()

    def create(self, region: str, params: Params) -> Group:
        name = _get(params, "GroupName") or ""
        if not name:
            raise Ec2Error("MissingParameter",
                           "The request must contain the parameter GroupName")
        if len(name) > 255 or not name.isascii():
            raise Ec2Error("InvalidParameterValue",
                           f"Value ({name}) for parameter groupName is invalid.")
        strategy = _get(params, "Strategy") or ""
        if strategy not in STRATEGIES:
            raise Ec2Error("InvalidParameterValue",
                           f"Value ({strategy}) for parameter strategy is invalid. "
                           f"Valid values: {', '.join(STRATEGIES)}")
        raw_count = _get(params, "PartitionCount")
        count = None
        if raw_count is not None:
            if strategy != "partition":
                raise Ec2Error("InvalidParameterCombination",
                               "PartitionCount is only valid with the partition strategy.")
            if not raw_count.isdigit() or not 1 <= int(raw_count) <= 7:
                raise Ec2Error("InvalidParameterValue",
                               f"Value ({raw_count}) for parameter partitionCount is invalid.")
            count = int(raw_count)
        elif strategy == "partition":
            count = 2
        level = _get(params, "SpreadLevel")
        if level is not None and (strategy != "spread" or level not in ("host", "rack")):
            raise Ec2Error("InvalidParameterValue",
                           f"Value ({level}) for parameter spreadLevel is invalid.")
        tags = _tags(params)
        with self._lock:
            if (region, name) in self._groups:
                raise Ec2Error("InvalidPlacementGroup.Duplicate",
                               f"The Placement Group '{name}' already exists.")
            group = Group(name, f"pg-{uuid.uuid4().hex[:17]}", strategy, count,
                          level or ("rack" if strategy == "spread" else None), tags)
            self._groups[(region, name)] = group
            return group

    def describe(self, region: str, params: Params) -> list[Group]:
        names = _numbered(params, "GroupName")
        ids = _numbered(params, "GroupId")
        filters = _filters(params)
        with self._lock:
            mine = [g for (r, _), g in sorted(self._groups.items()) if r == region]
        for name in names:
            if not any(g.name == name for g in mine):
                raise Ec2Error("InvalidPlacementGroup.Unknown",
                               f"The Placement Group '{name}' is unknown.")
        for gid in ids:
            if not any(g.group_id == gid for g in mine):
                raise Ec2Error("InvalidPlacementGroupId.NotFound",
                               f"The placement group ID '{gid}' does not exist")
        return [g for g in mine
                if (not names or g.name in names) and (not ids or g.group_id in ids)
                and all(_matches(g, n, v) for n, v in filters)]

    def _named(self, region: str, name: str) -> Group:
        group = self._groups.get((region, name))
        if group is None:
            raise Ec2Error("InvalidPlacementGroup.Unknown",
                           f"The Placement Group '{name}' is unknown.")
        return group

    def delete(self, region: str, params: Params, states: InstanceStates) -> None:
        name = _get(params, "GroupName") or ""
        with self._lock:
            group = self._named(region, name)
            members = sorted(group.members)
        live = {i for i, (state, _) in states(region, members).items()
                if state not in ("terminated", "shutting-down")}
        with self._lock:
            group.members &= live
            if group.members:
                raise Ec2Error("InvalidPlacementGroup.InUse",
                               f"The placement group '{name}' is in use and may not be "
                               "deleted.")
            self._groups.pop((region, name), None)

    def check_launch(self, region: str, params: Params, states: InstanceStates) -> str | None:
        """Before RunInstances: the group it names (None: none), or an Ec2Error."""
        name = _get(params, "Placement.GroupName")
        if not name:
            return None
        with self._lock:
            group = self._named(region, name)
            members = sorted(group.members)
        if group.strategy == "spread":
            zone = _get(params, "Placement.AvailabilityZone")
            count = int(_get(params, "MinCount") or 1)
            running = [z for s, z in states(region, members).values()
                       if s in ("pending", "running") and (zone is None or z == zone)]
            if len(running) + count > SPREAD_LIMIT:
                raise Ec2Error("InsufficientInstanceCapacity",
                               f"A spread placement group can hold at most {SPREAD_LIMIT} "
                               f"running instances per Availability Zone; '{name}' has "
                               f"{len(running)}.")
        return name

    def joined(self, region: str, name: str, instance_ids: Iterable[str]) -> None:
        with self._lock:
            group = self._groups.get((region, name))
            if group is not None:
                group.members.update(instance_ids)

    def tag(self, region: str, action: str, params: Params) -> None:
        """CreateTags/DeleteTags on placement groups (every ``ResourceId.N`` a ``pg-`` id)."""
        ids = _numbered(params, "ResourceId")
        pairs: list[tuple[str, str | None]] = []
        for n in range(1, 100):
            key = _get(params, f"Tag.{n}.Key")
            if key is None:
                break
            pairs.append((key, _get(params, f"Tag.{n}.Value")))
        with self._lock:
            by_id = {g.group_id: g for (r, _), g in self._groups.items() if r == region}
            for gid in ids:
                if gid not in by_id:
                    raise Ec2Error("InvalidPlacementGroupId.NotFound",
                                   f"The placement group ID '{gid}' does not exist")
            for gid in ids:
                for key, value in pairs:
                    if action == "CreateTags":
                        by_id[gid].tags[key] = value or ""
                    elif value is None or by_id[gid].tags.get(key) == value:
                        by_id[gid].tags.pop(key, None)


# ---------------------------------------------------------------------------- wire


def _group_xml(group: Group) -> str:
    tags = "".join(f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>"
                   for k, v in sorted(group.tags.items()))
    extra = (f"<partitionCount>{group.partition_count}</partitionCount>"
             if group.partition_count else "")
    if group.spread_level:
        extra += f"<spreadLevel>{group.spread_level}</spreadLevel>"
    return (f"<groupName>{escape(group.name)}</groupName><state>available</state>"
            f"<strategy>{group.strategy}</strategy>{extra}<groupId>{group.group_id}</groupId>"
            f"<tagSet>{tags}</tagSet>"
            f"<groupArn>arn:aws:ec2::000000000000:placement-group/{escape(group.name)}"
            "</groupArn>")


def answer(model: PlacementGroups, region: str, action: str, params: Params,
           states: InstanceStates) -> tuple[int, str]:
    """(HTTP status, XML body) of one placement-group action; errors as EC2 gives them."""
    request = f"<requestId>{uuid.uuid4()}</requestId>"
    try:
        if action == "CreatePlacementGroup":
            group = model.create(region, params)
            inner = f"<return>true</return><placementGroup>{_group_xml(group)}</placementGroup>"
        elif action == "DescribePlacementGroups":
            items = "".join(f"<item>{_group_xml(g)}</item>"
                            for g in model.describe(region, params))
            inner = f"<placementGroupSet>{items}</placementGroupSet>"
        elif action in TAG_ACTIONS:
            model.tag(region, action, params)
            inner = "<return>true</return>"
        else:
            model.delete(region, params, states)
            inner = "<return>true</return>"
    except Ec2Error as err:
        return err.status, error_xml(err)
    return 200, (f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{EC2_NS}">'
                 f"{request}{inner}</{action}Response>")


def error_xml(err: Ec2Error) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{err.code}'
            f"</Code><Message>{escape(err.message)}</Message></Error></Errors>"
            f"<RequestID>{uuid.uuid4()}</RequestID></Response>")


def handles(action: str, params: Params) -> bool:
    """Whether the placement-group layer answers this EC2 query (moto does the rest)."""
    if action in ACTIONS:
        return True
    ids = _numbered(params, "ResourceId")
    return action in TAG_ACTIONS and bool(ids) and all(i.startswith("pg-") for i in ids)
