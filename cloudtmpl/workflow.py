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
import itertools
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
from cloudtmpl.diagnostics import NOWHERE, Diagnostic, DiagnosticError, Loc, error
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
    catalog_choice,
    live_fingerprint,
    make_plan,
    removal,
    snapshots,
)
from cloudtmpl.providers import make_adapter
from cloudtmpl.providers.base import Adapter, Choice, CloudError, image_finder
from cloudtmpl.providers.deploy import DeployAdapter
from cloudtmpl.providers.local import LocalAdapter
from cloudtmpl.resolve import ResolvedStack, ResolveOptions, resolve
from cloudtmpl.resources import LOCAL_TARGET
from cloudtmpl.sandbox import manager as sandbox
from cloudtmpl.sensitive import is_marked
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
                value = read_value_file(value[1:]).rstrip("\n")
            except DiagnosticError as err:
                diags.extend(replace(d, message=f"-p {key}: {d.message}")
                             for d in err.diagnostics)
                continue
        out[key] = value
    if diags:
        raise DiagnosticError(diags)
    return out


def read_value_file(path: str) -> str:
    """A ``-p KEY=@FILE`` value: a regular file of at most one value's size, UTF-8."""
    cap = limits.LIMITS.value_bytes
    try:
        return limits.read_text(path, cap, "value size")
    except limits.FileRefused as err:
        raise err.diagnostic(NOWHERE, f"cannot read {path}") from None
    except UnicodeDecodeError as err:
        raise error("file-not-found", f"cannot read {path}: not UTF-8 text ({err.reason})",
                    hint="a parameter value is text; save the file as UTF-8") from None
    except OSError as err:
        raise error("file-not-found", f"cannot read {path}: {err.strerror}",
                    hint="check the path after '@'") from None


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
            out[path] = limits.read_text(path, limits.LIMITS.file_bytes)
        except limits.FileRefused as err:
            raise err.diagnostic(Loc(path), f"cannot read {path}") from None
        except UnicodeDecodeError as err:
            raise error("file-not-found", f"cannot read {path}: not UTF-8 text ({err.reason})",
                        Loc(path), "save the file as UTF-8") from None
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


_NOT_OPTIONS = {"running", "pid", "regions", "started", "token"}


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


ChoiceKey = tuple[str, str, str, str]  # (target, region, what, value after the catalog)


class Lookups:
    """The clouds' answers on the flavors, images, networks and key pairs of one plan:
    each distinct value is asked once per (target, region), catalog filters included."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.answers: dict[ChoiceKey, Choice] = {}

    def ask(self, target: str, region: str, what: str, value: str) -> tuple[ChoiceKey, Choice]:
        """``value`` (abstract or native) as the cloud has it; raises CloudError."""
        key_value, query = catalog_choice(what, value, self.session.catalogs[target], region)
        key = (target, region, what, key_value)
        if key not in self.answers:
            adapter = self.session.adapters[target]
            if isinstance(query, str):
                self.answers[key] = adapter.lookup_choice(region, what, query)
            else:
                finder = image_finder(adapter)
                self.answers[key] = (finder.find_image(region, query) if finder is not None
                                     else Choice(None))
        return key, self.answers[key]

    def missing(self, target: str, region: str, what: str, value: str) -> str:
        """Why ``value`` was not found, naming the catalog's filter when it has one."""
        query = catalog_choice(what, value, self.session.catalogs[target], region)[1]
        if is_marked(value):
            return (f"{what} (a sensitive value) does not exist on target {target!r} "
                    f"in region {region}")
        if isinstance(query, str):
            return f"{what} {value!r} does not exist on target {target!r} in region {region}"
        if image_finder(self.session.adapters[target]) is None:
            return (f"image {value!r} is a catalog filter ({query.text()}), which target "
                    f"{target!r} ({self.session.targets[target].type}) cannot search")
        return (f"image {value!r} (the catalog's filter: {query.text()}) matches no image "
                f"on target {target!r} in region {region}")

    def offers(self, target: str, region: str, what: str, choice: Choice) -> list[str]:
        """What to suggest instead: the catalog's abstract names (images: only those
        that exist in ``region``, each looked up once), then what the cloud listed."""
        catalog = self.session.catalogs[target]
        if what == "image":
            abstract = [name for name in sorted(catalog.images)
                        if self.ask(target, region, what, name)[1].canonical is not None]
        else:
            abstract = sorted(catalog.sizes) if what == "flavor" else []
        return abstract + [o for o in choice.offered if o not in abstract]


def _shown(names: list[str]) -> str:
    return ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


def _cloud_error(target: str, region: str, err: CloudError, loc: Loc,
                 asked: object = None) -> DiagnosticError:
    """``err`` as a diagnostic; a sensitive value that was asked for is not repeated."""
    message = err.message
    if isinstance(asked, str) and asked and is_marked(asked):
        message = message.replace(str(asked), "(sensitive)")
    return error("cloud-error", f"{target}/{region}: {message}", loc,
                 "check the target's credentials, endpoint and region")


def check_custom_constraints(session: Session, stack: ResolvedStack,
                             lookups: Lookups | None = None) -> None:
    """Parameters with ``custom_constraint: nova.flavor`` (etc.) name something that exists
    in every cloud region the stack uses.  Other custom constraints are not checked."""
    lookups = lookups or Lookups(session)
    scopes = sorted({(r.placement.target, r.placement.region) for r in stack.resources.values()
                     if session.targets[r.placement.target].type != "local"})
    diags = []
    for c in stack.custom_constraints:
        what = CUSTOM_CONSTRAINTS.get(c.name)
        if what is None or not isinstance(c.value, str):
            continue
        for target, region in scopes:
            try:
                _, choice = lookups.ask(target, region, what, c.value)
                if choice.canonical is not None:
                    continue
                offers = lookups.offers(target, region, what, choice)
            except CloudError as err:
                raise _cloud_error(target, region, err, c.loc) from None
            shown = "the value" if c.hidden else repr(c.value)
            query = catalog_choice(what, c.value, session.catalogs[target], region)[1]
            problem = (lookups.missing(target, region, what, c.value)
                       if not c.hidden and not isinstance(query, str)  # a catalog filter
                       else f"{shown} is not a {_WHAT[what]} on {target}/{region}")
            diags.append(Diagnostic(
                "parameter-constraint",
                f"parameter '{c.parameter}': {problem} (custom_constraint {c.name})",
                c.loc,
                f"{target} offers: {_shown(offers)}" if offers
                else f"give a {what} that exists in {region}"))
    if diags:
        raise DiagnosticError(diags)


def check_choices(session: Session, stack: ResolvedStack,
                  lookups: Lookups | None = None) -> dict[ChoiceKey, str]:
    """Flavors, images and external networks exist on their targets, and in what form.

    One lookup per distinct value.  Abstract names were translated through the
    catalog first (a catalog filter is searched for in the cloud: the newest match);
    what is left must be something the cloud has, or the plan would fail half-way
    through apply.  Returns the cloud's own form of each value (an image named by
    name or by a catalog filter becomes its id) for the planner's comparison and the
    executor's requests.
    """
    lookups = lookups or Lookups(session)
    found: dict[ChoiceKey, Choice] = {}
    diags = []
    for res in stack.resources.values():
        target, region = res.placement.target, res.placement.region
        for (kind, prop), what in CHOICES.items():
            value = res.properties.get(prop)
            if kind != res.kind or not isinstance(value, str):
                continue  # another kind, not given, or unknown until apply
            try:
                key, choice = lookups.ask(target, region, what, value)
                found[key] = choice
                if choice.canonical is not None:
                    continue
                shown = _shown(lookups.offers(target, region, what, choice))
            except CloudError as err:
                raise _cloud_error(target, region, err, res.loc, value) from None
            diags.append(
                Diagnostic(
                    f"unknown-{what}",
                    f"resource {res.address!r}: {lookups.missing(target, region, what, value)}",
                    res.loc,
                    f"{target} offers: {shown}" if shown
                    else f"give a {what} id that exists in {region}",
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

PLAN_HINT = "make a new one with `cloudtmpl plan TEMPLATE --out FILE`"


def is_plan_file(path: str) -> bool:
    """Whether ``apply`` should read ``path`` as a saved plan rather than a template.

    A ``.json`` file is a plan unless it is a (JSON) HOT template: a damaged plan
    (truncated, not JSON at all) must be reported as a bad plan file, not as a
    bad template.  Any other file is a plan only if it reads as one.
    """
    try:
        raw = limits.read_bytes(path, limits.LIMITS.plan_file_bytes, "plan file size")
    except (OSError, limits.FileRefused):
        return False  # not there, not a file, too large: the template path reports it
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
        raw = limits.read_bytes(path, limits.LIMITS.plan_file_bytes, "plan file size")
    except limits.FileRefused as err:
        raise err.diagnostic(Loc(path), f"cannot read plan file {path}") from None
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


_MAX_PROBLEMS = 100  # schema errors collected (a hostile plan file could have millions)


def _schema_problems(data: Any) -> list[str]:
    """Where ``data`` breaks the plan schema (empty when the schema is not installed)."""
    try:
        schema_path = data_dir("schemas") / "plan.schema.json"
        schema = json.loads(schema_path.read_text())
    except (OSError, ValueError):
        return []
    from jsonschema import Draft202012Validator

    problems = []
    found = itertools.islice(Draft202012Validator(schema).iter_errors(data), _MAX_PROBLEMS)
    for err in sorted(found, key=lambda e: [str(p) for p in e.absolute_path]):
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
    changes = data.get("changes")
    most = 2 * limits.LIMITS.resources  # every resource replaced by another one
    if isinstance(changes, list) and len(changes) > most:
        raise _plan_file_error(
            path, f"plan file {path} is corrupted: it has {len(changes):,} changes, more "
            f"than a stack of at most {limits.LIMITS.resources:,} resources can have")
    problems = _schema_problems(data)
    if problems:
        many = f"{len(problems)}" if len(problems) < _MAX_PROBLEMS else f"{_MAX_PROBLEMS} or more"
        shown = "; ".join(problems[:3]) + (f"; ... ({many} in all)"
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
            size = fh.tell()
        cap = limits.LIMITS.plan_file_bytes
        if size > cap:  # it could not be read back
            raise error("limit-exceeded", f"the plan is {size:,} bytes as a file, more than "
                        f"{limits.size_text(cap)}", Loc(path),
                        limits.too_large_hint(cap, "plan file size").split(";")[0]
                        + "; apply the template directly, without --out")
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


def with_hidden_defaults(saved: Plan, inputs: Inputs, sources: Mapping[str, str],
                         project: ProjectConfig) -> dict[str, str]:
    """``sources`` (a plan file's snapshot) with the hidden defaults the plan cut out
    (:mod:`cloudtmpl.hidden_defaults`) taken back from the work tree: a file whose work
    tree copy is the plan's copy with defaults of the same digests is used instead.
    A default that is needed (not given now with -p or -e) and cannot be taken back is
    a ``hidden-default`` diagnostic."""
    given = set(inputs.params)
    for path in inputs.environments[len(saved.environment_files):]:
        data = yaml.safe_load(sources.get(path) or "") or {}
        for section in ("parameters", "parameter_defaults"):
            values = data.get(section) if isinstance(data, dict) else None
            given |= set(values) if isinstance(values, dict) else set()
    out = dict(sources)
    key = secret_key(project)
    for file, digests in sorted(saved.hidden_defaults.items()):
        needed = sorted(set(digests) - given) if file == saved.template_file else sorted(digests)
        if not needed:
            continue
        try:
            work = Path(file).read_text()
        except (OSError, UnicodeDecodeError):
            work = None
        if work is not None and hidden_defaults.restore(sources[file], file, work, digests, key):
            out[file] = work
            continue
        why = ("cannot be read" if work is None else
               "is no longer the plan's copy, or its default changed")
        top = file == saved.template_file
        raise error(
            "hidden-default",
            f"the plan file holds no default of the hidden parameter"
            f"{'s' if len(needed) > 1 else ''} {', '.join(map(repr, needed))} ({file}: a plan "
            f"file never holds hidden values), and {file} in the work tree {why}",
            Loc(file),
            (f"give {' '.join(f'-p {n}=VALUE' for n in needed)} (or -e FILE) with the apply, "
             "or make a new plan with `cloudtmpl plan --out FILE`") if top else
            "restore the file as it was when the plan was made, or make a new plan with "
            "`cloudtmpl plan --out FILE`",
        )
    return out


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
