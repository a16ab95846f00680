"""The commands' shared steps: load → resolve → discover → plan → apply.

This is the glue the CLI calls; it holds no logic of its own beyond ordering
the phases, taking the stack lock and starting the sandbox when a sandbox
target is used.  Everything it returns is a value.
"""

from __future__ import annotations

import base64
import difflib
import errno
import getpass
import hashlib
import os
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cloudtmpl import hidden_defaults, limits
from cloudtmpl.apply import ApplyResult, Event, Executor
from cloudtmpl.config import (
    Catalog,
    ProjectConfig,
    catalog_for,
    data_dir,
    target_kinds,
    target_snapshots,
    with_endpoint,
)
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc, error
from cloudtmpl.discover import Discovery, discover
from cloudtmpl.inputs import Inputs, stack_name, stack_template
from cloudtmpl.loader import Document, load_text
from cloudtmpl.lookup import Lookups, check_choices, check_custom_constraints
from cloudtmpl.model import (
    Action,
    LiveResource,
    Placement,
    Target,
    canonical_json,
    default_stack_name,
)
from cloudtmpl.plan import (
    LIFECYCLE,
    Plan,
    live_fingerprint,
    make_plan,
    removal,
    snapshots,
)
from cloudtmpl.planfile import plan_id, snapshot, sources_hash
from cloudtmpl.providers import make_adapter
from cloudtmpl.providers.base import Adapter, CloudError
from cloudtmpl.providers.deploy import DeployAdapter
from cloudtmpl.providers.local import LocalAdapter
from cloudtmpl.resolve import ResolvedStack, ResolveOptions, resolve
from cloudtmpl.resources import LOCAL_TARGET
from cloudtmpl.sandbox import manager as sandbox
from cloudtmpl.state import StateStore, default_state_url


def resolve_stack(
    inputs: Inputs, project: ProjectConfig, mode: str, sources: Mapping[str, str]
) -> ResolvedStack:
    """The template resolved as stack ``stack_name(inputs)``.  An invalid ``-s`` is
    reported together with the template's own problems (resolved under the default name)."""
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
        read_file=file_reader(inputs.template, sources),
    )
    try:
        resolved = resolve(docs[0], options)
    except DiagnosticError as err:
        raise DiagnosticError([*name_diags, *err.diagnostics]) from None
    if name_diags:
        raise DiagnosticError(name_diags)
    return resolved


def file_reader(template: str, sources: Mapping[str, str]) -> Callable[[str], str]:
    """get_file's reader: paths relative to the template's directory, never outside it.

    ``templates/<file>`` that does not exist next to the template is read from the
    library templates shipped with cloudtmpl (``templates/`` in the wheel), so a
    project can use ``type: templates/web_tier.yaml`` without copying it; that
    directory confines such paths as the template's directory confines the rest.
    A saved plan carries what get_file read (see :func:`snapshot`), so applying
    it reads from the plan, not the work tree.
    """
    base = Path(template).parent

    def read(relative: str) -> str:
        key = str(base / relative)
        if key in sources:
            return sources[key]
        try:
            path = (base / relative).resolve()
        except RuntimeError:  # pathlib's word for a symbolic link loop
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from None
        if not path.is_relative_to(base.resolve()):
            raise OSError(errno.EACCES, "a symbolic link leads outside the template's directory")
        if not path.exists():
            shipped = library_file(relative)
            if shipped is not None:
                return limits.read_text(shipped, limits.LIMITS.file_bytes)
        return limits.read_text(path, limits.LIMITS.file_bytes)

    return read


def library_file(relative: str) -> Path | None:
    """The shipped library template ``relative`` (``templates/<file>``) names, if any."""
    head, sep, rest = relative.partition("/")
    if head != "templates" or not sep or not rest:
        return None
    try:
        library = data_dir("templates").resolve()
    except FileNotFoundError:
        return None
    path = (library / rest).resolve()
    return path if path.is_relative_to(library) and path.is_file() else None


def files_of(template: str, stack: ResolvedStack) -> dict[str, str]:
    """What get_file read, keyed as :func:`file_reader` looks it up."""
    base = Path(template).parent
    return {str(base / relative): text for relative, text in stack.files.items()}


# -- clouds -------------------------------------------------------------------
def targets_of(stack: ResolvedStack) -> set[str]:
    """The targets a stack uses (the local one too when a server has lifecycle hooks)."""
    names = {r.placement.target for r in stack.resources.values() if r.placement.target}
    scripted = any(isinstance((r.update_policy.get("rolling_update") or {}).get("health_check"),
                              Mapping)
                   and "script" in r.update_policy["rolling_update"]["health_check"]
                   for r in stack.resources.values())
    if scripted or any(r.lifecycle for r in stack.resources.values()):
        names.add(LOCAL_TARGET)  # hooks and script health checks run over SSH
    return names


@dataclass(frozen=True)
class SandboxStarted:
    """The local sandbox clouds a command started because none was running."""

    endpoints: Mapping[str, str]  # sandbox-aws -> http://127.0.0.1:PORT
    directory: Path  # their logs and records


def live_targets(
    project: ProjectConfig,
    names: Iterable[str],
    *,
    on_sandbox_start: Callable[[SandboxStarted], None],
) -> dict[str, Target]:
    """The named targets, ready to use: sandbox targets get the running sandbox's endpoint.

    A sandbox that is not running is started; ``on_sandbox_start`` is told which
    clouds were started, so that nothing starts without the user hearing of it.
    """
    out: dict[str, Target] = {}
    status: dict[str, Any] | None = None
    for name in sorted(set(names)):
        target = project.targets[name]
        if target.sandbox:
            if status is None:
                before = sandbox.status()
                try:
                    sandbox.start()
                except sandbox.SandboxError as err:
                    raise error(
                        "sandbox-start",
                        f"the local sandbox did not start: {err}",
                        hint=f"see the logs in {sandbox.sandbox_dir()}; "
                        "`cloudtmpl sandbox stop` then try again",
                    ) from None
                status = sandbox.status()
                started = {f"sandbox-{cloud}": str(info["endpoint"])
                           for cloud, info in status.items()
                           if info["running"] and not before[cloud]["running"]}
                if started:
                    on_sandbox_start(SandboxStarted(started, sandbox.sandbox_dir()))
            info = status[str(target.options["sandbox"])]
            target = with_endpoint(
                target, **{k: v for k, v in info.items() if k not in _NOT_OPTIONS}
            )
        out[name] = target
    return out


_NOT_OPTIONS = {"running", "pid", "regions", "started"}


def check_targets(stack: ResolvedStack, project: ProjectConfig) -> None:
    """Every resource's kind is one its target can provide, and a volume under
    deletion_policy Snapshot is on a target that can snapshot it (before any cloud is
    asked)."""
    diags = []
    for res in stack.resources.values():
        target = project.targets.get(res.placement.target)
        if target is not None and snapshots(res.kind, res.deletion_policy) \
                and not target_snapshots(target):
            diags.append(Diagnostic(
                "snapshot-unsupported",
                f"resource {res.address!r} ({res.type}) has deletion_policy Snapshot, but "
                f"target {target.name!r} ({target.type}, driver "
                f"{target.options.get('driver')!r}) cannot take volume snapshots",
                res.loc,
                "its libcloud driver does not implement create_volume_snapshot and "
                "list_volume_snapshots: use deletion_policy Retain or Delete, or place "
                "the volume on another target"))
        if target is None or res.kind in target_kinds(target):
            continue
        diags.append(
            Diagnostic(
                "unsupported-kind",
                f"resource {res.address!r} ({res.type}) cannot be created on target "
                f"{target.name!r} ({target.type}, region {res.placement.region})",
                res.loc,
                f"{target.type} targets provide: "
                + ", ".join(sorted(target_kinds(target))),
            )
        )
    if diags:
        raise DiagnosticError(diags)


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


# Heat's custom constraints that a cloud can answer: name -> what lookup_choice checks
def open_store(project: ProjectConfig, inputs: Inputs) -> StateStore:
    url = (
        inputs.state
        or os.environ.get("CLOUDTMPL_STATE")
        or project.state_url
        or default_state_url(project.directory)
    )
    return StateStore.open(url)


def recorded_outputs(store: StateStore, stack: str) -> dict[str, Any]:
    """The outputs of the stack's last apply, in template order; an ``unknown-stack``
    error when the state holds nothing for it (never applied, or destroyed)."""
    values = store.outputs(stack)
    if not values and stack not in store.stacks():
        known = store.stacks()
        raise error(
            "unknown-stack",
            f"no stack named {stack!r} in the state (never applied, or destroyed)",
            hint=(f"{_did_you_mean(stack, known)}the state has: {', '.join(known)}" if known
                  else "the state has no stacks: apply one first")
            + "; pass --state for another store",
        )
    return values


def one_output(values: Mapping[str, Any], name: str, stack: str) -> Any:
    """Output ``name`` of ``values`` (the stack's recorded outputs)."""
    if name in values:
        return values[name]
    raise error(
        "unknown-output",
        f"stack {stack!r} has no output {name!r}",
        hint=f"{_did_you_mean(name, list(values))}its outputs: {', '.join(values)}" if values
        else "its template declares no outputs",
    )


def _did_you_mean(name: str, options: Sequence[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1)
    return f"did you mean {match[0]!r}? " if match else ""


def holder() -> str:
    argv = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:2]))
    return f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()} ({argv})"


@dataclass
class Session:
    """Open clouds and state for one stack."""

    project: ProjectConfig
    store: StateStore
    stack: str
    targets: dict[str, Target]
    adapters: dict[str, Adapter]
    catalogs: dict[str, Catalog]

    def close(self) -> None:
        self.store.close()


def open_session(
    project: ProjectConfig,
    inputs: Inputs,
    stack: str,
    target_names: Iterable[str],
    *,
    on_sandbox_start: Callable[[SandboxStarted], None],
) -> Session:
    store = open_store(project, inputs)
    records = store.resources(stack).values()
    names = set(target_names) | {r.target for r in records}
    if any(LIFECYCLE in r.spec for r in records):
        names.add(LOCAL_TARGET)  # a removed server's hook runs through the local adapter
    unknown = sorted(n for n in names if n not in project.targets)
    if unknown:
        store.close()
        raise error(
            "unknown-target",
            f"the state of stack {stack!r} names unknown targets {', '.join(unknown)}",
            hint="add them back to cloudtmpl.yaml",
        )
    try:
        targets = live_targets(project, names, on_sandbox_start=on_sandbox_start)
    except Exception:
        store.close()
        raise
    adapters = {
        name: local_adapter(t, project, store, stack) if t.type == "local" else make_adapter(t)
        for name, t in targets.items()
    }
    catalogs = {name: catalog_for(t) for name, t in targets.items()}
    return Session(project, store, stack, targets, adapters, catalogs)


def secret_key(project: ProjectConfig) -> bytes:
    """The project's secret key for derived secrets (random strings) and for sealing
    sensitive values (a keyed digest: see :func:`cloudtmpl.model.sealed_text`).

    ``CLOUDTMPL_SECRET_KEY`` (CI, shared state backends: give every runner the
    same one), else ``.cloudtmpl/keys/secret.key`` in the project, created with
    mode 0600 on first use.
    """
    env = os.environ.get("CLOUDTMPL_SECRET_KEY")
    if env:
        return env.encode()
    path = project.directory / ".cloudtmpl" / "keys" / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as fh:
            fh.write(base64.b64encode(secrets.token_bytes(32)))
    return path.read_bytes()


def local_adapter(target: Target, project: ProjectConfig, store: StateStore, stack: str
                  ) -> Adapter:
    """The built-in local target: its resources exist where the state says they do."""

    def records() -> list[LiveResource]:
        return [
            LiveResource(r.address, r.kind, r.physical_id, Placement(r.target, r.region),
                         name=r.name, properties=dict(r.spec), attributes=dict(r.attributes),
                         spec_hash=r.spec_hash)
            for r in store.resources(stack).values()
        ]

    def known() -> list[LiveResource]:
        return [r for r in records() if r.placement.target == target.name]

    key = secret_key(project)
    # software configs and deployments (over SSH) are routed to the DeployAdapter
    return DeployAdapter(LocalAdapter(target, key, known), key=key, stack=stack,
                         records=records, project_dir=project.directory)


# Kinds listed only where the template or the state has one: each is another
# service to ask (Route53, S3, ELB, Swift), and most stacks have none.  The price:
# such a resource dropped from the template *and* lost from the state is not found.
ON_DEMAND = frozenset({"Cloud::DNS::Zone", "Cloud::DNS::Record", "Cloud::Storage::Bucket",
                       "Cloud::LB::LoadBalancer"})


def scopes(session: Session, stack: ResolvedStack | None) -> dict[tuple[str, str], frozenset[str]]:
    """Where to look for the stack: every (target, region) the template or state uses.

    Every kind the target provides is listed in each scope (the ON_DEMAND ones only
    where used), so a resource that left the template is found and deleted even if
    the state was lost.
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
        provided = target_kinds(session.targets[scope[0]])
        out[scope] = frozenset((provided - ON_DEMAND) | (provided & kinds))
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
