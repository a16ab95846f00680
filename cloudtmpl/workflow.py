"""The phases of the commands, in order: resolve → look up → discover → plan →
apply, and the entry points :func:`plan`, :func:`apply` and :func:`destroy` the CLI
calls and renders.

Each phase is its own module (:mod:`cloudtmpl.resolve`, :mod:`cloudtmpl.lookup`,
:mod:`cloudtmpl.discover`, :mod:`cloudtmpl.plan`, :mod:`cloudtmpl.apply`); the
clouds and state they work on are a :class:`cloudtmpl.session.Session`; saved
plans are :mod:`cloudtmpl.planfile`.  What the user must see or answer goes through
a :class:`Ui`, so the order of the phases lives here and nowhere else.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from cloudtmpl import capabilities, hidden_defaults, scaling
from cloudtmpl.apply import ApplyResult, Event, Executor
from cloudtmpl.config import ProjectConfig
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc, error
from cloudtmpl.discover import Discovery, discover
from cloudtmpl.inputs import Inputs, read_sources, stack_name, stack_template
from cloudtmpl.loader import Document, load_text
from cloudtmpl.lookup import Lookups, check_choices, check_custom_constraints
from cloudtmpl.model import (
    Action,
    canonical_json,
    default_stack_name,
)
from cloudtmpl.plan import (
    Plan,
    live_fingerprint,
    make_plan,
    removal,
)
from cloudtmpl.planfile import (
    check_plan_fresh,
    from_plan_file,
    plan_id,
    snapshot,
    sources_hash,
    with_hidden_defaults,
)
from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.deploy import DeployAdapter
from cloudtmpl.providers.local import LocalTarget
from cloudtmpl.resolve import ResolvedStack, ResolveOptions, resolve
from cloudtmpl.resources import LOCAL_TARGET
from cloudtmpl.session import (
    SandboxStarted,
    Session,
    check_targets,
    holder,
    open_session,
    open_store,
    secret_key,
    targets_of,
)

# file_reader and library_file are this module's as well (tests and callers name them here)
from cloudtmpl.shipped import data_dir  # noqa: F401  (as before: tests patch it here)
from cloudtmpl.sourcefiles import allowed_roots, file_reader, library_file, source_key  # noqa: F401
from cloudtmpl.state import StateStore
from cloudtmpl.state.scaling_groups import GroupRecord


def resolve_stack(
    inputs: Inputs, project: ProjectConfig, mode: str, sources: Mapping[str, str],
    scaling_records: Callable[[], Mapping[str, scaling.Recorded]] | None = None,
) -> ResolvedStack:
    """The template resolved as stack ``stack_name(inputs)``.  An invalid ``-s`` is
    reported together with the template's own problems (resolved under the default name).
    A plan's scaling groups follow their sizes in the state (``scaling_records``, by
    default read from the store when the template has one)."""
    assert inputs.template is not None
    diags: list[Diagnostic] = []
    docs: list[Document] = []
    for path in (inputs.template, *inputs.environments):
        try:
            docs.append(load_text(sources[path], path))
        except DiagnosticError as err:
            diags.extend(err.diagnostics)
    name_diags: list[Diagnostic] = []
    try:
        name = stack_name(inputs)
    except DiagnosticError as err:
        name_diags = list(err.diagnostics)
        name = default_stack_name(Path(inputs.template).stem)
    if diags:
        raise DiagnosticError([*name_diags, *diags])
    options = ResolveOptions(
        stack=name,
        params=dict(inputs.params),
        environments=tuple(docs[1:]),
        mode=mode,  # type: ignore[arg-type]
        target=inputs.target,
        default_target=project.default_target,
        targets=project.targets,
        read_file=file_reader(inputs.template, sources, allowed_roots(
            project.directory, inputs.template, inputs.allow_dirs)),
        scaling_records=scaling_records or (
            recorded_sizes(project, inputs, name) if mode == "plan" else None),
    )
    try:
        resolved = resolve(docs[0], options)
    except DiagnosticError as err:
        raise DiagnosticError([*name_diags, *err.diagnostics]) from None
    if name_diags:
        raise DiagnosticError(name_diags)
    return resolved


def recorded_sizes(project: ProjectConfig, inputs: Inputs, stack: str
                   ) -> Callable[[], Mapping[str, scaling.Recorded]]:
    """The stack's scaling groups as recorded, read from the store once, when the
    resolver first meets a scaling group."""
    cache: dict[str, scaling.Recorded] | None = None

    def read() -> Mapping[str, scaling.Recorded]:
        nonlocal cache
        if cache is None:
            with open_store(project, inputs) as store:
                cache = as_recorded(store.scaling_groups(stack))
        return cache

    return read


def as_recorded(records: Mapping[str, GroupRecord]) -> dict[str, scaling.Recorded]:
    """The store's group records as the resolver takes them."""
    return {g: scaling.Recorded(r.size, r.definition, frozenset(r.removed))
            for g, r in records.items()}


def record_scaling(store: StateStore, stack: str, resolved: ResolvedStack,
                   now: datetime | None = None) -> None:
    """Record each scaling group's size for this run, before its members are made (a
    killed run leaves the size it was going to; the next apply finishes it).  A
    group's first record starts its own cooldown, as Heat's does when it is created."""
    if not resolved.scaling:
        return
    recorded = store.scaling_groups(stack)
    now = now or datetime.now(timezone.utc)
    for name, group in resolved.scaling.items():
        rec = recorded.get(name)
        if rec is not None and (rec.size, rec.definition, frozenset(rec.removed)) == \
                (group.size, group.definition, group.removed):
            continue
        cooldowns = dict(rec.cooldowns) if rec is not None else {
            name: scaling.cooldown_end(now, group.cooldown, None).isoformat()}
        store.put_scaling_group(stack, GroupRecord(name, group.size, group.definition,
                                                   cooldowns, tuple(sorted(group.removed))))


def files_of(template: str, stack: ResolvedStack) -> dict[str, str]:
    """What the template's files read, keyed as :func:`file_reader` looks them up."""
    return {source_key(template, key): text for key, text in stack.files.items()}


def parameter_digest(value: Any) -> str:
    return hashlib.sha256(b"cloudtmpl-parameter\0" + canonical_json(value).encode()).hexdigest()


def immutable_digests(stack: ResolvedStack) -> dict[str, str]:
    return {name: parameter_digest(stack.parameters[name])
            for name in sorted(stack.immutable) if name in stack.parameters}


def check_immutable(session: Session, stack: ResolvedStack) -> None:
    """``immutable`` parameters keep the value of the stack's last apply (Heat's rule)."""
    before = session.store.parameter_digests(session.stack)
    diags = [
        Diagnostic("immutable-parameter",
                   f"parameter '{name}' is immutable: it cannot change once the stack exists",
                   stack.parameter_locs.get(name, Loc("<template>")),
                   "give it the value it was applied with, or destroy and recreate the stack")
        for name, digest in immutable_digests(stack).items()
        if name in before and before[name] != digest
    ]
    if diags:
        raise DiagnosticError(diags)


def scopes(session: Session, stack: ResolvedStack | None) -> dict[tuple[str, str], frozenset[str]]:
    """Where to look for the stack: every (target, region) the template or state uses.

    Every kind the target provides is listed in each scope (its on-demand ones only
    where used: :mod:`cloudtmpl.capabilities`), so a resource that left the template
    is found and deleted even if the state was lost.
    """
    used: dict[tuple[str, str], set[str]] = {}
    if stack is not None:
        for r in stack.resources.values():
            used.setdefault((r.placement.target, r.placement.region), set()).add(r.kind)
    for rec in session.store.resources(session.stack).values():
        used.setdefault((rec.target, rec.region), set()).add(rec.kind)
    if stack is None and not used:
        used = {(name, t.region): set() for name, t in session.targets.items() if t.region}
    out = {}
    for scope, kinds in used.items():
        if scope[0] not in session.adapters:
            continue
        caps = capabilities.of(session.targets[scope[0]])
        out[scope] = frozenset((caps.kinds - caps.on_demand) | (caps.kinds & kinds))
    return out


def discover_stack(session: Session, stack: ResolvedStack | None, parallelism: int) -> Discovery:
    try:
        return discover(session.stack, scopes(session, stack), session.adapters, parallelism)
    except CloudError as err:
        raise error(
            "cloud-error",
            f"discovery failed: {err.message}",
            hint="check the target's credentials and endpoint; for the local "
            "sandbox see `cloudtmpl sandbox status`",
        ) from None


def plan_stack(
    session: Session,
    stack: ResolvedStack,
    sources: Mapping[str, str],
    inputs: Inputs,
    parallelism: int = 10,
) -> Plan:
    before = sum(a.request_count() for a in session.adapters.values())
    check_immutable(session, stack)
    diags: list[Diagnostic] = []
    lookups = Lookups(session)
    try:
        check_custom_constraints(session, stack, lookups)
    except DiagnosticError as err:
        diags.extend(err.diagnostics)
    try:
        natives = check_choices(session, stack, lookups)
    except DiagnosticError as err:
        raise DiagnosticError([*diags, *err.diagnostics]) from None
    if diags:
        raise DiagnosticError(diags)
    found = discover_stack(session, stack, parallelism)
    found = replace(
        found, api_requests=sum(a.request_count() for a in session.adapters.values()) - before
    )
    last = {a: r.spec for a, r in session.store.resources(session.stack).items()}
    plan = make_plan(
        stack,
        found,
        last,
        session.catalogs,
        state_serial=session.store.serial(session.stack),
        allow_relocation=inputs.allow_relocation,
        natives=natives,
        seal_key=secret_key(session.project),
    )
    snap = snapshot({**sources, **files_of(inputs.template or "", stack)}, inputs, stack.hidden)
    snap, cut_defaults = hidden_defaults.cut_all(snap, secret_key(session.project))
    plan = replace(
        plan,
        sources=snap,
        hidden_defaults=cut_defaults,
        template_hash=sources_hash(snap),
        template_file=inputs.template or "",
        environment_files=tuple(inputs.environments),
        params={k: v for k, v in inputs.params.items() if k not in stack.hidden},
        hidden_params=tuple(sorted(stack.hidden)),
        target=inputs.target,
        allow_relocation=inputs.allow_relocation,
        stack_template=stack_template(session.project, inputs),
        replace_template=inputs.replace_template,
    )
    check_template(session, stack, plan)
    return plan


def check_template(session: Session, stack: ResolvedStack, plan: Plan) -> None:
    """Refuse a plan of another template file onto a stack applied from a different one
    when it would delete resources (stack-template-changed), unless --replace-template.

    A template that was renamed or moved (the same resources) passes, and so does a
    stack whose template is not recorded (a state written before schema 3).
    """
    recorded = session.store.template(session.stack)
    if recorded is None or recorded == plan.stack_template or plan.replace_template:
        return
    deleted = [c.address for c in plan.changes
               if c.action is Action.DELETE and c.address not in stack.resources]
    if not deleted:
        return
    shown = ", ".join(deleted[:20]) + (f", ... ({len(deleted)} in all)"
                                       if len(deleted) > 20 else "")
    raise error(
        "stack-template-changed",
        f"stack {session.stack!r} was applied from {recorded}; {plan.stack_template} is "
        f"another template, and applying it to this stack would delete {len(deleted)} "
        f"resource{'s' if len(deleted) != 1 else ''} it does not have: {shown}",
        Loc(plan.template_file),
        f"give {plan.stack_template} a stack of its own with -s NAME, or pass "
        "--replace-template to make it the stack's template and delete those resources",
    )


def destroy_plan(session: Session, stack: ResolvedStack | None, parallelism: int = 10) -> Plan:
    found = discover_stack(session, stack, parallelism)
    last = {a: r.spec for a, r in session.store.resources(session.stack).items()}
    changes = tuple(
        removal(live, last.get(live.address), "destroy", session.catalogs)
        for group in found.live.values()
        for live in group
    )
    return Plan(
        stack=session.stack,
        changes=changes,
        template_hash="",
        params_hash="",
        state_serial=session.store.serial(session.stack),
        live_fingerprint=live_fingerprint(found),
        api_requests=found.api_requests,
        seconds=found.seconds,
    )


def empty_stack(name: str) -> ResolvedStack:
    return ResolvedStack(
        name=name,
        description="",
        resources={},
        outputs={},
        parameters={},
        hidden=frozenset(),
        template_hash="",
        params_hash="",
    )


# -- plan files ---------------------------------------------------------------
# A plan file is JSON (schemas/plan.schema.json).  Whatever is wrong with one -
# unreadable, not JSON, truncated, corrupted, of another format, for another
# stack, its snapshot edited - is a diagnostic before any cloud is asked.

def record_applied(session: Session, plan: Plan) -> None:
    """After ``apply PLANFILE`` succeeded: remember it, so re-applying it says so."""
    session.store.set_applied_plan(session.stack, plan_id(plan))


# -- apply --------------------------------------------------------------------
def execute(
    session: Session,
    plan: Plan,
    stack: ResolvedStack,
    operation: str,
    *,
    emit: Callable[[Event], None],
    parallelism: int,
    stop: threading.Event | None = None,
) -> ApplyResult:
    """Run ``plan`` under the stack lock (taken by the caller) with a journaled run."""
    run_id = session.store.begin_run(session.stack, operation, holder())
    status = "failed"
    try:
        if operation == "apply" and plan.stack_template:
            # before the first change: a killed first apply still ties the stack to it
            session.store.set_template(session.stack, plan.stack_template)
        if operation == "apply":
            record_scaling(session.store, session.stack, stack)
        executor = Executor(
            plan,
            stack,
            session.adapters,
            session.store,
            session.catalogs,
            keys_dir=session.project.directory / ".cloudtmpl" / "keys",
            emit=emit,
            parallelism=parallelism,
            stop=stop,
            seal_key=secret_key(session.project),
            local=local_target(session),
        )
        result = executor.run(run_id)
        if operation == "destroy" and result.ok:
            forget_destroyed(session, plan)
        elif operation == "apply":
            session.store.set_outputs(session.stack, result.outputs)
            if result.ok:
                session.store.set_parameter_digests(session.stack, immutable_digests(stack))
        status = (
            "succeeded"
            if result.ok
            else ("interrupted" if stop is not None and stop.is_set() else "failed")
        )
        return result
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        session.store.end_run(run_id, status)


def local_target(session: Session) -> LocalTarget | None:
    """The built-in local target of the session, if the stack uses it."""
    local = session.adapters.get(LOCAL_TARGET)
    return local if isinstance(local, DeployAdapter) else None


def forget_destroyed(session: Session, plan: Plan) -> None:
    """After a destroy: forget the stack, except resources it retains (deletion_policy
    Retain), which stay known so that no later run deletes them."""
    kept = {c.address for c in plan.changes if c.retain}
    if not kept:
        session.store.forget_stack(session.stack)
        return
    for address in set(session.store.resources(session.stack)) - kept:
        session.store.delete_resource(session.stack, address)
    session.store.set_outputs(session.stack, {})


def prune_state(session: Session, plan: Plan, stack: ResolvedStack) -> None:
    """Forget state records of resources that exist neither in the cloud nor the template."""
    live = {c.address for c in plan.changes if c.prior is not None}
    for address in list(session.store.resources(session.stack)):
        if address not in live and address not in stack.resources:
            session.store.delete_resource(session.stack, address)


# -- the commands' phases, in order -------------------------------------------
class Ui(Protocol):
    """What the phases tell the user and ask of them; the CLI renders it."""

    def sandbox_started(self, started: SandboxStarted) -> None:
        """A sandbox was started for a target the command uses."""

    def planned(self, plan: Plan, no_changes: str | None = None) -> None:
        """The plan about to be carried out (``no_changes``: what to say if empty)."""

    def confirm(self, what: str) -> None:
        """Go ahead with ``what``, or raise a DiagnosticError (refused, cancelled)."""

    def running(self, plan: Plan) -> AbstractContextManager[
            tuple[threading.Event, Callable[[Event], None]]]:
        """While ``plan`` runs: the event that stops it, and where its events go."""


@dataclass(frozen=True)
class Outcome:
    """A finished apply or destroy: what was carried out and how it went."""

    plan: Plan
    result: ApplyResult | None  # None: there was nothing to do
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result is None or self.result.ok


def resolve_checked(inputs: Inputs, project: ProjectConfig, mode: str
                    ) -> tuple[ResolvedStack, dict[str, str]]:
    """The template named by ``inputs``, read and resolved, its targets checked."""
    sources = read_sources(inputs)
    stack = resolve_stack(inputs, project, mode, sources)
    check_targets(stack, project)
    return stack, sources


def plan(project: ProjectConfig, inputs: Inputs, parallelism: int, ui: Ui) -> Plan:
    """``cloudtmpl plan``: resolve, look up, discover and diff; nothing changes."""
    resolved, sources = resolve_checked(inputs, project, "plan")
    session = open_session(project, inputs, resolved.name, targets_of(resolved),
                           on_sandbox_start=ui.sandbox_started)
    try:
        return plan_stack(session, resolved, sources, inputs, parallelism)
    finally:
        session.close()


def saved_plan(path: str, params: Sequence[str], environments: Sequence[str],
               state: str | None, stack: str | None, project: ProjectConfig
               ) -> tuple[Plan, Inputs, dict[str, str], ResolvedStack]:
    """A plan file, checked whole, and its stack resolved again from its own snapshot
    (hidden values given now, hidden defaults taken back from the work tree)."""
    saved, inputs, sources = from_plan_file(path, params, environments, state, stack=stack)
    sources = with_hidden_defaults(saved, inputs, sources, secret_key(project))
    return saved, inputs, sources, resolve_stack(inputs, project, "plan", sources)


def apply(project: ProjectConfig, inputs: Inputs, resolved: ResolvedStack,
          sources: Mapping[str, str], parallelism: int, ui: Ui,
          saved: Plan | None = None) -> Outcome:
    """``cloudtmpl apply``: under the stack lock, plan again and carry it out.

    With ``saved`` (a plan file) the fresh plan only proves the saved one still holds,
    and the saved one is carried out without asking; else the fresh plan is shown
    and confirmed.  Outputs are recorded, the state pruned of what is gone."""
    session = open_session(project, inputs, resolved.name, targets_of(resolved),
                           on_sandbox_start=ui.sandbox_started)
    try:
        with session.store.lock(resolved.name, holder()):
            fresh = plan_stack(session, resolved, sources, inputs, parallelism)
            if saved is not None:
                check_plan_fresh(saved, resolved, session.store, fresh)
            todo = saved if saved is not None else fresh
            ui.planned(todo)
            started = time.monotonic()
            if todo.has_changes:
                if saved is None:
                    ui.confirm("apply these changes")
                with ui.running(todo) as (stop, emit):
                    result = execute(session, todo, resolved, "apply", emit=emit,
                                     parallelism=parallelism, stop=stop)
            else:  # nothing to change: outputs are still evaluated and recorded
                result = execute(session, todo, resolved, "apply", emit=lambda e: None,
                                 parallelism=parallelism)
            prune_state(session, todo, resolved)
            if saved is not None and result.ok:
                record_applied(session, saved)
            return Outcome(todo, result, time.monotonic() - started)
    finally:
        session.close()


def destroy(project: ProjectConfig, inputs: Inputs, parallelism: int, ui: Ui) -> Outcome:
    """``cloudtmpl destroy``: delete what the stack owns in the clouds (found by its
    tags, the template only adding where to look), after asking."""
    resolved = None
    if inputs.template is not None:
        resolved = resolve_stack(inputs, project, "validate", read_sources(inputs))
    name = resolved.name if resolved else stack_name(inputs)
    targets = targets_of(resolved) if resolved else set()
    session = open_session(project, inputs, name, targets, on_sandbox_start=ui.sandbox_started)
    try:
        with session.store.lock(name, holder()):
            todo = destroy_plan(session, resolved, parallelism)
            ui.planned(todo, no_changes=f"Nothing to destroy: stack {name!r} "
                       "has no resources in the clouds.")
            if not todo.has_changes:
                forget_destroyed(session, todo)
                return Outcome(todo, None)
            ui.confirm(f"destroy stack {name!r}")
            started = time.monotonic()
            with ui.running(todo) as (stop, emit):
                result = execute(session, todo, empty_stack(name), "destroy", emit=emit,
                                 parallelism=parallelism, stop=stop)
            return Outcome(todo, result, time.monotonic() - started)
    finally:
        session.close()
