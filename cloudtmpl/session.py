"""Open clouds and state for one stack: the targets a command needs (starting the
sandbox when a sandbox target is used), an adapter and a catalog for each, the state
store, and the project's secret key.

A :class:`Session` is what the phases in :mod:`cloudtmpl.workflow` work on; opening
one checks the targets and never changes a cloud.
"""

from __future__ import annotations

import base64
import difflib
import getpass
import os
import secrets
import socket
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudtmpl import capabilities
from cloudtmpl.catalog import Catalog, catalog_for
from cloudtmpl.config import ProjectConfig, with_endpoint
from cloudtmpl.deletion import snapshots
from cloudtmpl.desired import LIFECYCLE
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, error
from cloudtmpl.inputs import Inputs
from cloudtmpl.model import (
    LiveResource,
    Placement,
    Target,
)
from cloudtmpl.providers import make_adapter
from cloudtmpl.providers.base import Adapter
from cloudtmpl.providers.deploy import DeployAdapter
from cloudtmpl.providers.local import LocalAdapter
from cloudtmpl.resolve import ResolvedStack
from cloudtmpl.resources import LOCAL_TARGET
from cloudtmpl.state import StateStore, default_state_url
from cloudtmpl_sandbox import manager as sandbox


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
                and not capabilities.of(target).snapshots:
            diags.append(Diagnostic(
                "snapshot-unsupported",
                f"resource {res.address!r} ({res.type}) has deletion_policy Snapshot, but "
                f"target {target.name!r} ({target.type}, driver "
                f"{target.options.get('driver')!r}) cannot take volume snapshots",
                res.loc,
                "its libcloud driver does not implement create_volume_snapshot and "
                "list_volume_snapshots: use deletion_policy Retain or Delete, or place "
                "the volume on another target"))
        if target is None or res.kind in capabilities.of(target).kinds:
            continue
        caps = capabilities.of(target)
        diags.append(
            Diagnostic(
                "unsupported-kind",
                f"resource {res.address!r} ({res.type}) cannot be created on target "
                f"{target.name!r} ({target.type}, region {res.placement.region})",
                res.loc,
                capabilities.instead(target.type, res.kind)
                or f"{target.type} targets provide: " + ", ".join(sorted(caps.kinds)),
            )
        )
    if diags:
        raise DiagnosticError(diags)


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
        # the store also keeps what a cloud cannot (libcloud's attachment records)
        name: local_adapter(t, project, store, stack) if t.type == "local"
        else make_adapter(t, store=store)
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
