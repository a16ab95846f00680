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
import json
import os
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

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
from cloudtmpl.loader import Document, load_text
from cloudtmpl.model import (
    STACK_NAME_RE,
    STACK_NAME_RULE,
    Action,
    LiveResource,
    Placement,
    Target,
    canonical_json,
    default_stack_name,
)
from cloudtmpl.plan import (
    CHOICES,
    FORMAT_VERSION,
    LIFECYCLE,
    Plan,
    live_fingerprint,
    make_plan,
    removal,
    snapshots,
    translate,
)
from cloudtmpl.providers import make_adapter
from cloudtmpl.providers.base import Adapter, Choice, CloudError
from cloudtmpl.providers.deploy import DeployAdapter
from cloudtmpl.providers.local import LocalAdapter
from cloudtmpl.resolve import ResolvedStack, ResolveOptions, resolve
from cloudtmpl.resources import LOCAL_TARGET
from cloudtmpl.sandbox import manager as sandbox
from cloudtmpl.state import StateStore, default_state_url


@dataclass(frozen=True)
class Inputs:
    """What the user named on the command line."""

    template: str | None = None
    environments: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    stack: str | None = None
    target: str | None = None
    state: str | None = None
    allow_relocation: bool = False
    # --replace-template: the template may replace the one the stack was applied from
    # even where that deletes resources
    replace_template: bool = False
    # the template's path relative to the project directory, when it is known apart
    # from ``template`` (a saved plan: ``template`` is relative to where it was made)
    stack_template: str = ""


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs; ``KEY=@FILE`` reads the value from a file (no secrets in argv)."""
    out: dict[str, str] = {}
    diags = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            diags.append(
                Diagnostic(
                    "bad-parameter-arg",
                    f"-p {pair!r} is not KEY=VALUE",
                    hint="write -p name=value, or -p name=@file to read the value from a file",
                )
            )
            continue
        if value.startswith("@"):
            try:
                value = Path(value[1:]).read_text().rstrip("\n")
            except OSError as err:
                diags.append(
                    Diagnostic(
                        "file-not-found",
                        f"-p {key}: cannot read {value[1:]}: {err.strerror}",
                        hint="check the path after '@'",
                    )
                )
                continue
        out[key] = value
    if diags:
        raise DiagnosticError(diags)
    return out


def stack_name(inputs: Inputs) -> str:
    """``-s`` if given (it must be a valid name), else derived from the template's stem."""
    if inputs.stack is None:
        if inputs.template is None:
            raise error("no-stack", "no stack named", hint="pass a TEMPLATE or -s STACK")
        return default_stack_name(Path(inputs.template).stem)
    if not STACK_NAME_RE.match(inputs.stack):
        raise error(
            "invalid-stack-name",
            f"stack name {inputs.stack!r} is not valid: stack names are {STACK_NAME_RULE}",
            hint=f"pass -s {default_stack_name(inputs.stack)}",
        )
    return inputs.stack


def stack_template(project: ProjectConfig, inputs: Inputs) -> str:
    """The template file as the state records it: relative to the project directory,
    in POSIX form ("" without a template)."""
    if inputs.stack_template or not inputs.template:
        return inputs.stack_template
    relative = os.path.relpath(os.path.abspath(inputs.template),
                               os.path.abspath(project.directory))
    return Path(relative).as_posix()


def read_sources(inputs: Inputs) -> dict[str, str]:
    """The text of the template and environment files, by the path the user gave."""
    out: dict[str, str] = {}
    for path in (inputs.template, *inputs.environments):
        if path is None:
            continue
        try:
            out[path] = Path(path).read_text()
        except OSError as err:
            raise error(
                "file-not-found", f"cannot read {path}: {err.strerror}", Loc(path), "check the path"
            ) from None
    return out


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
        path = (base / relative).resolve()
        if not path.is_relative_to(base.resolve()):
            raise OSError(errno.EACCES, "a symbolic link leads outside the template's directory")
        if not path.exists():
            shipped = library_file(relative)
            if shipped is not None:
                return shipped.read_text()
        return path.read_text()

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
CUSTOM_CONSTRAINTS = {"nova.flavor": "flavor", "glance.image": "image",
                      "neutron.network": "network", "nova.keypair": "keypair"}


_WHAT = {"flavor": "flavor", "image": "image", "network": "network",
         "keypair": "key pair"}


def check_custom_constraints(session: Session, stack: ResolvedStack) -> None:
    """Parameters with ``custom_constraint: nova.flavor`` (etc.) name something that exists
    in every cloud region the stack uses.  Other custom constraints are not checked."""
    scopes = sorted({(r.placement.target, r.placement.region) for r in stack.resources.values()
                     if session.targets[r.placement.target].type != "local"})
    diags = []
    for c in stack.custom_constraints:
        what = CUSTOM_CONSTRAINTS.get(c.name)
        if what is None or not isinstance(c.value, str):
            continue
        for target, region in scopes:
            catalog = session.catalogs[target]
            native = (catalog.size(c.value) if what == "flavor" else
                      catalog.image(c.value, region) if what == "image" else c.value)
            choice = session.adapters[target].lookup_choice(region, what, native)
            if choice.canonical is not None:
                continue
            shown = "the value" if c.hidden else repr(c.value)
            diags.append(Diagnostic(
                "parameter-constraint",
                f"parameter '{c.parameter}': {shown} is not a {_WHAT[what]} on "
                f"{target}/{region} "
                f"(custom_constraint {c.name})",
                c.loc,
                f"{target} offers: {', '.join(choice.offered[:20])}" if choice.offered
                else f"give a {what} that exists in {region}"))
    if diags:
        raise DiagnosticError(diags)


def check_choices(session: Session, stack: ResolvedStack) -> dict[tuple[str, str, str, str], str]:
    """Flavors, images and external networks exist on their targets, and in what form.

    One lookup per distinct value.  Abstract names were translated through the
    catalog first; what is left must be something the cloud has, or the plan
    would fail half-way through apply.  Returns the cloud's own form of each
    value (an image named by name becomes its id) for the planner's comparison.
    """
    found: dict[tuple[str, str, str, str], Choice] = {}
    diags = []
    for res in stack.resources.values():
        catalog = session.catalogs[res.placement.target]
        for (kind, prop), what in CHOICES.items():
            value = res.properties.get(prop)
            if kind != res.kind or not isinstance(value, str):
                continue  # another kind, not given, or unknown until apply
            native = translate(res.kind, {prop: value}, catalog, res.placement)[prop]
            key = (res.placement.target, res.placement.region, what, native)
            if key not in found:
                try:
                    found[key] = session.adapters[res.placement.target].lookup_choice(
                        res.placement.region, what, native
                    )
                except CloudError as err:
                    raise error(
                        "cloud-error",
                        f"{res.placement.target}/{res.placement.region}: {err.message}",
                        res.loc,
                        "check the target's credentials, endpoint and region",
                    ) from None
            choice = found[key]
            if choice.canonical is not None:
                continue
            abstract = {"flavor": catalog.sizes, "image": catalog.images}.get(what, {})
            names = sorted(abstract) + [o for o in choice.offered if o not in abstract]
            shown = ", ".join(names[:20]) + (
                f", ... ({len(names)} in all)" if len(names) > 20 else ""
            )
            diags.append(
                Diagnostic(
                    f"unknown-{what}",
                    f"resource {res.address!r}: {what} {value!r} does not exist on target "
                    f"{res.placement.target!r} in region {res.placement.region}",
                    res.loc,
                    f"{res.placement.target} offers: {shown}"
                    if shown
                    else f"give a {what} id that exists in {res.placement.region}",
                )
            )
    if diags:
        raise DiagnosticError(diags)
    return {key: str(choice.canonical) for key, choice in found.items()}


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
    """The project's secret key for derived secrets (random strings).

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
    try:
        check_custom_constraints(session, stack)
    except DiagnosticError as err:
        diags.extend(err.diagnostics)
    try:
        natives = check_choices(session, stack)
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
    )
    snap = snapshot({**sources, **files_of(inputs.template or "", stack)}, inputs, stack.hidden)
    plan = replace(
        plan,
        sources=snap,
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

PLAN_HINT = "make a new one with `cloudtmpl plan TEMPLATE --out FILE`"


def is_plan_file(path: str) -> bool:
    """Whether ``apply`` should read ``path`` as a saved plan rather than a template.

    A ``.json`` file is a plan unless it is a (JSON) HOT template: a damaged plan
    (truncated, not JSON at all) must be reported as a bad plan file, not as a
    bad template.  Any other file is a plan only if it reads as one.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return False  # not there: the template path reports it
    try:
        data = json.loads(raw)
    except ValueError:  # includes undecodable bytes
        looks_like_plan = b'"format_version"' in raw or b"heat_template_version" not in raw
        return path.endswith(".json") and looks_like_plan
    if isinstance(data, dict) and "format_version" in data and "changes" in data:
        return True
    is_template = isinstance(data, dict) and "heat_template_version" in data
    return path.endswith(".json") and not is_template


def _plan_file_error(path: str, message: str, hint: str = PLAN_HINT) -> DiagnosticError:
    return DiagnosticError([Diagnostic("plan-file", message, Loc(path), hint)])


def _parse_plan_json(path: str) -> Any:
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise _plan_file_error(
            path, f"cannot read plan file {path}: {err.strerror or err}"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _plan_file_error(
            path, f"{path} is not a plan file: it is not JSON text (binary data)"
        ) from None
    if not text.strip():
        raise _plan_file_error(path, f"plan file {path} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        body = text.strip()
        loc = Loc(path, err.lineno, err.colno)
        if not body.startswith(("{", "[")):
            message = f"{path} is not a plan file: it is not JSON (it starts with {body[:40]!r})"
            loc = Loc(path)
        elif not body.endswith(("}", "]")) or err.pos >= len(text.rstrip()):
            lines = text.rstrip().splitlines()
            loc = Loc(path, len(lines), len(lines[-1]) + 1)
            message = (
                f"plan file {path} is truncated: it ends at line {loc.line}, "
                f"column {loc.column} before the plan is complete"
            )
        else:
            message = (
                f"plan file {path} is corrupted: {err.msg} (line {err.lineno}, column {err.colno})"
            )
        raise DiagnosticError([Diagnostic("plan-file", message, loc, PLAN_HINT)]) from None


def _schema_problems(data: Any) -> list[str]:
    """Where ``data`` breaks the plan schema (empty when the schema is not installed)."""
    try:
        schema_path = data_dir("schemas") / "plan.schema.json"
        schema = json.loads(schema_path.read_text())
    except (OSError, ValueError):
        return []
    from jsonschema import Draft202012Validator

    problems = []
    for err in sorted(Draft202012Validator(schema).iter_errors(data),
                      key=lambda e: [str(p) for p in e.absolute_path]):
        at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        message = err.message if len(err.message) <= 160 else err.message[:157] + "..."
        problems.append(f"{at.lstrip('.') or 'top level'}: {message}")
    return problems


_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def read_plan_data(path: str) -> dict[str, Any]:
    """The JSON of a plan file, checked: a format this cloudtmpl reads, the plan schema."""
    data = _parse_plan_json(path)
    if not isinstance(data, dict):
        kind = _JSON_TYPES.get(type(data), "value")
        raise _plan_file_error(
            path, f"{path} is not a plan file: it holds a JSON {kind}, not an object"
        )
    if "format_version" not in data:
        raise _plan_file_error(
            path, f"{path} is not a plan file: it has no format_version"
        )
    version = data["format_version"]
    if type(version) is not int or version < 1:
        raise error(
            "plan-format",
            f"plan file {path} has format_version {version!r}, which no cloudtmpl writes "
            f"(this one reads format {FORMAT_VERSION})",
            Loc(path),
            PLAN_HINT,
        )
    if version > FORMAT_VERSION:
        raise error(
            "plan-format",
            f"plan file {path} was written by a newer cloudtmpl (plan format {version}; "
            f"this one reads format {FORMAT_VERSION})",
            Loc(path),
            "apply it with the cloudtmpl version that made it, or plan again with this one",
        )
    if version < FORMAT_VERSION:
        raise error(
            "plan-format",
            f"plan file {path} has the old plan format {version} "
            f"(this cloudtmpl reads format {FORMAT_VERSION})",
            Loc(path),
            "plan again with this version of cloudtmpl",
        )
    problems = _schema_problems(data)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; ... ({len(problems)} in all)"
                                           if len(problems) > 3 else "")
        raise _plan_file_error(path, f"plan file {path} is corrupted: {shown}")
    return data


def load_plan_file(path: str) -> Plan:
    """A saved plan (for ``show`` and ``apply``); a damaged file is a ``plan-file`` error."""
    return _plan_of(path, read_plan_data(path))


def _plan_of(path: str, data: Mapping[str, Any]) -> Plan:
    try:
        return Plan.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        what = f"missing {err}" if isinstance(err, KeyError) else str(err)
        raise _plan_file_error(path, f"plan file {path} is corrupted: {what}") from None


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_plan_file(plan: Plan, path: str, data: Mapping[str, Any]) -> None:
    """Write ``data`` (the plan's JSON, with its sources) to ``path``, mode 0600.

    Adds ``source_hashes`` (one sha256 per snapshot file) so that a snapshot
    edited afterwards is reported by file name.  Written to a temporary file
    and renamed, so an interrupted write never leaves a truncated plan.
    """
    data = dict(data)
    sources = data.get("sources") or {}
    data["source_hashes"] = {name: _text_hash(text) for name, text in sorted(sources.items())}
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def snapshot(sources: Mapping[str, str], inputs: Inputs, hidden: frozenset[str]) -> dict[str, str]:
    """The files a plan travels with; hidden parameter values are cut out of environments.

    The template itself is kept as written (it is source code, checked in);
    environment files often carry secrets, so the values of hidden parameters
    are removed from them and must be given again when the plan is applied.
    """
    out = dict(sources)
    for path in inputs.environments:
        data = yaml.safe_load(sources[path]) or {}
        cut = False
        for section in ("parameters", "parameter_defaults"):
            values = data.get(section) if isinstance(data, dict) else None
            if isinstance(values, dict):
                for name in hidden & set(values):
                    del values[name]
                    cut = True
        if cut:
            out[path] = yaml.safe_dump(data, sort_keys=False)
    return out


def sources_hash(sources: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(sources.items())).encode()).hexdigest()


def modified_sources(sources: Mapping[str, str], hashes: Mapping[str, str] | None) -> list[str]:
    """The snapshot files whose text no longer matches the hashes written with the plan."""
    if hashes is None:
        return []
    names = sorted(set(sources) | set(hashes))
    return [n for n in names if n not in sources or _text_hash(sources[n]) != hashes.get(n)]


def _snapshot_problem(plan: Plan, hashes: Mapping[str, str] | None) -> str:
    """Why the plan's template snapshot cannot be trusted ("" if it can)."""
    changed = modified_sources(plan.sources, hashes)
    if not changed and sources_hash(plan.sources) == plan.template_hash:
        return ""
    if changed:
        return (
            "the plan file's snapshot of "
            + ", ".join(changed)
            + (" was" if len(changed) == 1 else " were")
            + " modified after planning (the plan applies its own copy of the template, "
            "not the work tree)"
        )
    return (
        "the plan file's template snapshot was modified after planning (its hash no longer "
        f"matches; it holds {', '.join(sorted(plan.sources)) or 'no files'})"
    )


def from_plan_file(
    path: str,
    params: Sequence[str],
    environments: Sequence[str],
    state: str | None,
    stack: str | None = None,
) -> tuple[Plan, Inputs, dict[str, str]]:
    """A saved plan and the inputs to rebuild its stack from its own snapshot.

    ``params``/``environments`` given now supply hidden parameter values, which a
    plan file never holds.  ``stack`` (``-s``), when given, must be the plan's
    own stack.  A damaged plan, one
    for another stack or one whose snapshot was edited is refused here, before
    any cloud or state is opened.
    """
    data = read_plan_data(path)
    saved = _plan_of(path, data)
    wanted = stack
    if wanted is not None and wanted != saved.stack:
        raise error(
            "plan-stack",
            f"plan file {path} is a plan for stack {saved.stack!r}, not {wanted!r}",
            Loc(path),
            f"apply it without -s (it applies to stack {saved.stack!r}), or make a plan for "
            f"{wanted!r} with `cloudtmpl plan TEMPLATE -s {wanted} --out FILE`",
        )
    missing = [
        name
        for name in (saved.template_file, *saved.environment_files)
        if name not in saved.sources
    ]
    if missing:
        raise _plan_file_error(
            path,
            f"plan file {path} holds no snapshot of {', '.join(missing)} (a plan printed by "
            "`plan --format json` cannot be applied; one saved by `plan --out FILE` can)",
        )
    hashes = data.get("source_hashes")
    problem = _snapshot_problem(saved, hashes if isinstance(hashes, dict) else None)
    if problem:
        raise error(
            "stale-plan",
            f"the saved plan {path} cannot be applied: {problem}",
            Loc(path),
            "run `cloudtmpl plan --out FILE` again and apply the new plan",
        )
    inputs = Inputs(
        template=saved.template_file,
        environments=(*saved.environment_files, *environments),
        params={**saved.params, **parse_params(params)},
        stack=saved.stack,
        target=saved.target,
        state=state,
        allow_relocation=saved.allow_relocation,
        replace_template=saved.replace_template,
        stack_template=saved.stack_template,
    )
    sources = {**saved.sources, **read_sources(Inputs(environments=tuple(environments)))}
    return saved, inputs, sources


def plan_id(plan: Plan) -> str:
    """A saved plan's identity: the digest of everything it holds."""
    return hashlib.sha256(canonical_json(plan.to_json()).encode()).hexdigest()[:32]


def record_applied(session: Session, plan: Plan) -> None:
    """After ``apply PLANFILE`` succeeded: remember it, so re-applying it says so."""
    session.store.set_applied_plan(session.stack, plan_id(plan))


def check_plan_fresh(plan: Plan, stack: ResolvedStack, session: Session, fresh: Plan) -> None:
    """Refuse a plan whose inputs, state or live resources moved on since it was made
    (saying so plainly when the reason is that this very plan was applied)."""
    if fresh.state_serial != plan.state_serial and \
            session.store.applied_plan(session.stack) == plan_id(plan):
        raise error(
            "stale-plan",
            f"this plan was already applied (stack {plan.stack!r} went from state serial "
            f"{plan.state_serial} to {fresh.state_serial} since it was made)",
            hint="nothing is left to do with it; run `cloudtmpl plan` again for what the "
            "template would change now",
        )
    problems = []
    snapshot_problem = _snapshot_problem(plan, None)
    if snapshot_problem:
        problems.append(snapshot_problem)
    if stack.params_hash != plan.params_hash:
        problems.append(
            "the parameter values differ (hidden parameters must be given again "
            f"with -p/-e: {', '.join(plan.hidden_params) or 'none'})"
        )
    if fresh.state_serial != plan.state_serial:
        problems.append(
            f"the state serial moved from {plan.state_serial} to "
            f"{fresh.state_serial} (another apply ran)"
        )
    if fresh.live_fingerprint != plan.live_fingerprint:
        before = {(c.address, c.prior.physical_id) for c in plan.changes if c.prior}
        after = {(c.address, c.prior.physical_id) for c in fresh.changes if c.prior}
        moved = sorted({a for a, _ in before ^ after}) or sorted(
            c.address for c in fresh.changes if c.action is not Action.NOOP
        )
        problems.append(
            "the live resources changed since planning"
            + (f" ({', '.join(moved)})" if moved else "")
        )
    if problems:
        raise error(
            "stale-plan",
            "the saved plan is out of date: " + "; ".join(problems),
            hint="run `cloudtmpl plan` again and apply the new plan",
        )


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
