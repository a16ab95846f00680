"""The arithmetic of scaling groups, as Heat does it: a policy's adjustment turned
into a new size (``heat/scaling/scalingutil.py``), a group's size at the next
resolve (Heat's update of an ``AutoScalingGroup``), and cooldowns.

Pure values and functions; the state they read and write is
:mod:`cloudtmpl.state.scaling_groups`, the command :mod:`cloudtmpl.signalling`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

CHANGE = "change_in_capacity"
EXACT = "exact_capacity"
PERCENT = "percent_change_in_capacity"
ADJUSTMENT_TYPES = (CHANGE, EXACT, PERCENT)
#: AWS::AutoScaling::ScalingPolicy's spellings of the same three
CFN_ADJUSTMENT_TYPES = {"ChangeInCapacity": CHANGE, "ExactCapacity": EXACT,
                        "PercentChangeInCapacity": PERCENT}


@dataclass(frozen=True)
class Resize:
    """A policy's adjustment worked out: the size it asked for, and the size within
    the group's bounds (``bound`` names the bound that clipped it, if one did)."""

    current: int
    asked: int
    size: int
    bound: str | None = None  # "min_size" or "max_size"

    @property
    def changed(self) -> bool:
        return self.size != self.current

    def text(self) -> str:
        """What a user is told: ``scaled to 2 (min_size), asked 1``."""
        if self.bound is not None:
            return f"scaled to {self.size} ({self.bound}), asked {self.asked}"
        if not self.changed:
            return f"size stays {self.size}"
        return f"scaled from {self.current} to {self.size}"


def _percent_delta(current: int, adjustment: float, min_step: int | None) -> int:
    """Heat's rounding of a percent change: a change of less than one member rounds
    away from zero (to ±1), a larger one towards zero; then at least ``min_step``."""
    delta = current * adjustment / 100.0
    if math.fabs(delta) < 1.0:
        rounded = int(math.ceil(delta) if delta > 0.0 else math.floor(delta))
    else:
        rounded = int(math.floor(delta) if delta > 0.0 else math.ceil(delta))
    if min_step and min_step > abs(rounded):
        rounded = min_step if rounded > 0 else -min_step
    return rounded


def new_capacity(current: int, adjustment: float, adjustment_type: str,
                 min_step: int | None, minimum: int, maximum: int) -> Resize:
    """The group's new size after an adjustment of ``adjustment_type``, within
    ``minimum`` .. ``maximum`` (Heat's ``calculate_new_capacity``).  A zero percent
    change is no change, as in Heat (ceil(0) = 0)."""
    kind = CFN_ADJUSTMENT_TYPES.get(adjustment_type, adjustment_type)
    if kind == CHANGE:
        asked = current + int(adjustment)
    elif kind == EXACT:
        asked = int(adjustment)
    elif kind == PERCENT:
        asked = current + _percent_delta(current, adjustment, min_step)
    else:
        raise ValueError(f"unknown adjustment type {adjustment_type!r}")
    if asked > maximum:
        return Resize(current, asked, maximum, "max_size")
    if asked < minimum:
        return Resize(current, asked, minimum, "min_size")
    return Resize(current, asked, asked)


@dataclass(frozen=True)
class Bounds:
    """A group's sizes as its template says: ``min_size``, ``max_size`` and
    ``desired_capacity`` (None: not given)."""

    minimum: int
    maximum: int
    desired: int | None = None

    def clamp(self, size: int) -> int:
        return max(self.minimum, min(self.maximum, size))


def size_now(bounds: Bounds, recorded: int | None, same_definition: bool) -> int:
    """The group's size for this run.

    A new group starts at ``desired_capacity`` (else ``min_size``).  A group whose
    definition is as last recorded keeps its recorded size (a signal's, or the last
    apply's): Heat does not touch a group its template update does not change.  A
    changed definition with a ``desired_capacity`` goes back to it (Heat's
    ``handle_update`` adjusts to the exact desired capacity); without one the recorded
    size is clamped to the new ``min_size`` .. ``max_size``."""
    if recorded is None:
        return bounds.desired if bounds.desired is not None else bounds.minimum
    if same_definition:
        return bounds.clamp(recorded)
    if bounds.desired is not None:
        return bounds.clamp(bounds.desired)
    return bounds.clamp(recorded)


def cooldown_end(now: datetime, seconds: float | None, previous: datetime | None
                 ) -> datetime:
    """When a cooldown that starts ``now`` ends; a later end already recorded stays
    (Heat keeps the later of the two).  A negative or missing cooldown is zero."""
    end = now + timedelta(seconds=max(0.0, float(seconds or 0)))
    return max(end, previous) if previous is not None else end


def in_cooldown(now: datetime, end: datetime | None) -> bool:
    return end is not None and now < end


@dataclass(frozen=True)
class Recorded:
    """A group as the state has it: its size, the digest of its definition, and the
    member indexes scaled in (never used again, as Heat never reuses a name)."""

    size: int
    definition: str
    removed: frozenset[int] = frozenset()


def members(size: int, removed: frozenset[int]) -> list[int]:
    """The member indexes of a group of ``size``: the lowest not removed."""
    out: list[int] = []
    i = 0
    while len(out) < size:
        if i not in removed:
            out.append(i)
        i += 1
    return out


def scaled_in(before: Recorded | None, size: int) -> frozenset[int]:
    """The removed indexes after resizing ``before`` to ``size``: a smaller group loses
    its oldest members (the lowest indexes), as Heat's keeps the newest."""
    if before is None:
        return frozenset()
    current = members(before.size, before.removed)
    gone = current[:max(0, len(current) - size)]
    return before.removed | frozenset(gone)


@dataclass(frozen=True)
class ScalingGroup:
    """A scaling group as one resolve found it: its bounds, the size its members
    follow this run, the digest of its definition (what :func:`size_now` compares),
    and its own cooldown (seconds; None: none given)."""

    name: str
    bounds: Bounds
    size: int
    definition: str
    cooldown: float | None = None
    scalable: bool = True  # False: an InstanceGroup (its size is its Size; no policy)
    removed: frozenset[int] = frozenset()  # member indexes scaled in

    @property
    def indexes(self) -> list[int]:
        return members(self.size, self.removed)


def policy_problems(props: dict[str, object], cfn: bool = False) -> list[tuple[str, str]]:
    """What Heat's validation refuses in a scaling policy's properties, as
    (property, message): an unknown adjustment type, a ``min_adjustment_step`` with
    any other type than percent_change_in_capacity, a fractional adjustment of whole
    members.  ``cfn``: an AWS::AutoScaling::ScalingPolicy, whose types are spelt
    ChangeInCapacity, ExactCapacity and PercentChangeInCapacity."""
    out: list[tuple[str, str]] = []
    allowed = tuple(CFN_ADJUSTMENT_TYPES) if cfn else ADJUSTMENT_TYPES
    kind = props.get("adjustment_type")
    if isinstance(kind, str) and kind not in allowed:
        out.append(("adjustment_type", f"adjustment_type must be one of "
                    f"{', '.join(allowed)}, not {kind!r}"))
    kind = CFN_ADJUSTMENT_TYPES.get(kind, kind) if isinstance(kind, str) else kind
    step = props.get("min_adjustment_step")
    adjustment = props.get("scaling_adjustment")
    if step is not None and kind != PERCENT:
        out.append(("min_adjustment_step", "min_adjustment_step is only for adjustment_type "
                    f"{PERCENT}"))
    if isinstance(step, int) and not isinstance(step, bool) and step < 0:
        out.append(("min_adjustment_step", "min_adjustment_step must be 0 or more"))
    if kind in (CHANGE, EXACT) and isinstance(adjustment, float) \
            and not adjustment.is_integer():
        out.append(("scaling_adjustment", f"a {kind} adjustment is a whole number of "
                    f"members, not {adjustment}"))
    return out
