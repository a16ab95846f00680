"""``cloudtmpl signal STACK POLICY``: what Heat does when a scaling policy is
signalled, then the apply of the new size.

Under the stack lock: the stack's template (the one it was last applied from,
unless named) is resolved with its groups at their recorded sizes; the policy's
adjustment gives the new size (:func:`cloudtmpl.scaling.new_capacity`, clamped to
the group's ``min_size`` .. ``max_size``, and said so); a signal inside the
policy's or the group's cooldown is refused.  The plan of the new size is shown
and confirmed, then the size is **recorded before any member is made or
deleted**, with the cooldowns it starts, and the plan is carried out: a run
killed half way leaves the new size in the state, and the next ``apply`` of the
unchanged template makes (or deletes) the members still missing, each found by
its tags first, so none is made twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from cloudtmpl import scaling
from cloudtmpl.config import ProjectConfig
from cloudtmpl.diagnostics import error
from cloudtmpl.inputs import Inputs, read_sources
from cloudtmpl.resolve import ResolvedStack
from cloudtmpl.scaling import Resize, ScalingGroup
from cloudtmpl.scaling_kinds import SCALING_POLICY
from cloudtmpl.session import check_targets, holder, open_session, open_store, targets_of
from cloudtmpl.state.scaling_groups import GroupRecord
from cloudtmpl.workflow import (
    Outcome,
    Ui,
    as_recorded,
    execute,
    plan_stack,
    prune_state,
    resolve_stack,
)


@dataclass(frozen=True)
class Signalled:
    """A signal carried out: the group, how it was resized, and the apply of the new
    size (None: the size did not change, so nothing ran and no cooldown started)."""

    policy: str
    group: str
    resize: Resize
    outcome: Outcome | None


def _template(project: ProjectConfig, inputs: Inputs) -> Inputs:
    """``inputs`` with the template the stack was last applied from, if none is named."""
    if inputs.template is not None:
        return inputs
    assert inputs.stack is not None
    with open_store(project, inputs) as store:
        template = store.template(inputs.stack)
        known = store.stacks()
    if template is None:
        raise error("unknown-stack",
                    f"stack {inputs.stack!r} has no template recorded (never applied, or "
                    "destroyed)",
                    hint=("the state has: " + ", ".join(known) if known else
                          "apply the stack first") + "; or name its template with -t")
    return replace(inputs, template=str(project.directory / template))


def _policy(stack: ResolvedStack, name: str) -> tuple[Mapping[str, Any], ScalingGroup]:
    """The policy's properties and the group it scales, or a diagnostic."""
    res = stack.resources.get(name)
    policies = sorted(a for a, r in stack.resources.items() if r.kind == SCALING_POLICY.kind)
    if res is None:
        raise error("unknown-resource", f"stack {stack.name!r} has no resource {name!r}",
                    hint="its scaling policies: " + ", ".join(policies) if policies
                    else "the stack has no scaling policy (OS::Heat::ScalingPolicy)")
    if res.kind != SCALING_POLICY.kind:
        raise error("not-a-scaling-policy",
                    f"resource {name!r} of stack {stack.name!r} is a {res.type}, not a "
                    "scaling policy: only an OS::Heat::ScalingPolicy takes a signal",
                    res.loc, hint="its scaling policies: " + ", ".join(policies)
                    if policies else "the stack has no scaling policy")
    props = res.properties
    ref = props.get("auto_scaling_group_id")
    for group in stack.scaling.values():
        if ref in (group.name, f"{stack.name}.{group.name}"):
            if not group.scalable:
                raise error("not-scalable",
                            f"policy {name!r}: group {group.name!r} is an "
                            "OS::Heat::InstanceGroup, whose size is its Size: no policy "
                            "scales it", res.loc,
                            hint="change its Size and apply, or make it an "
                            "AWS::AutoScaling::AutoScalingGroup")
            return props, group
    raise error("unknown-scaling-group",
                f"policy {name!r}: auto_scaling_group_id {ref!r} is not a scaling group of "
                f"stack {stack.name!r}", res.loc,
                hint="auto_scaling_group_id: {get_resource: an_OS::Heat::AutoScalingGroup}")


def _check_cooldown(rec: GroupRecord, keys: Mapping[str, str], now: datetime) -> None:
    """Refuse a signal inside the policy's or the group's cooldown (Heat: no action)."""
    for key, what in keys.items():
        end_text = rec.cooldowns.get(key)
        end = datetime.fromisoformat(end_text) if end_text else None
        if end is not None and scaling.in_cooldown(now, end):
            left = (end - now).total_seconds()
            raise error("in-cooldown",
                        f"{what} is in cooldown until {end.isoformat(timespec='seconds')} "
                        f"({left:.0f}s from now): not scaled",
                        hint="signal again when the cooldown has ended")


def signal(project: ProjectConfig, inputs: Inputs, policy: str, parallelism: int, ui: Ui,
           clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> Signalled:
    """``cloudtmpl signal``: scale the policy's group, record the size, apply it."""
    inputs = _template(project, inputs)
    sources = read_sources(inputs)
    first = resolve_stack(inputs, project, "plan", sources)
    check_targets(first, project)
    session = open_session(project, inputs, first.name, targets_of(first),
                           on_sandbox_start=ui.sandbox_started)
    try:
        with session.store.lock(first.name, holder()):
            records = session.store.scaling_groups(first.name)
            sizes = as_recorded(records)
            resolved = resolve_stack(inputs, project, "plan", sources, lambda: sizes)
            props, group = _policy(resolved, policy)
            rec = records.get(group.name)
            if rec is None or rec.definition != group.definition:
                raise error("group-not-applied",
                            f"scaling group {group.name!r} of stack {resolved.name!r} is not "
                            "applied as its template is now", hint="apply the stack first, "
                            "then signal its policy (with the -p/-e it was applied with)")
            now = clock()
            _check_cooldown(rec, {policy: f"policy {policy!r}",
                                  group.name: f"group {group.name!r}"}, now)
            step = props.get("min_adjustment_step")
            adjustment = props.get("scaling_adjustment")
            if isinstance(adjustment, bool) or not isinstance(adjustment, (int, float)) \
                    or not isinstance(step, (int, type(None))):
                raise error("invalid-value", f"policy {policy!r}: scaling_adjustment and "
                            "min_adjustment_step must be known numbers",
                            resolved.resources[policy].loc,
                            hint="use numbers or {get_param: a_number_parameter}")
            resize = scaling.new_capacity(
                group.size, float(adjustment), str(props.get("adjustment_type")), step,
                group.bounds.minimum, group.bounds.maximum)
            if not resize.changed:
                return Signalled(policy, group.name, resize, None)
            # scaling in removes the oldest members (the lowest indexes), as in Heat
            removed = scaling.scaled_in(
                scaling.Recorded(group.size, group.definition, group.removed), resize.size)
            sizes[group.name] = scaling.Recorded(resize.size, group.definition, removed)
            scaled = resolve_stack(inputs, project, "plan", sources, lambda: sizes)
            fresh = plan_stack(session, scaled, sources, inputs, parallelism)
            ui.planned(fresh)
            ui.confirm(f"scale group {group.name!r} to {resize.size}")
            cooldown = props.get("cooldown")
            ends = dict(rec.cooldowns)
            for key, seconds in ((policy, cooldown), (group.name, group.cooldown)):
                before = ends.get(key)
                ends[key] = scaling.cooldown_end(
                    now, float(seconds) if isinstance(seconds, (int, float)) else None,
                    datetime.fromisoformat(before) if before else None).isoformat()
            # recorded before the first member changes: a killed signal leaves it
            session.store.put_scaling_group(resolved.name, GroupRecord(
                group.name, resize.size, group.definition, ends, tuple(sorted(removed))))
            started = time.monotonic()
            with ui.running(fresh) as (stop, emit):
                result = execute(session, fresh, scaled, "apply", emit=emit,
                                 parallelism=parallelism, stop=stop)
            prune_state(session, fresh, scaled)
            return Signalled(policy, group.name, resize,
                             Outcome(fresh, result, time.monotonic() - started))
    finally:
        session.close()
