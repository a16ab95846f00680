"""The executor: walks a plan's steps in parallel, journaling every change.

A replace is two steps (delete the old resource, then create the new one: names
are deterministic, so the old one must go first).  With create_before_destroy the
new one is created first, what points at the old one (in-place updates of its
dependents: a floating IP) moves to it next, then the old one is drained (its
pre_replace hook) and deleted.  A step starts when every
step it depends on succeeded; a failure skips its dependents and nothing else.
A delete under deletion_policy Snapshot snapshots the volume (images the server, on
OpenStack) first, in the same step (a failed snapshot fails the step: it is kept).
Every step is journaled before ('intent') and after ('done'/'failed') it runs,
and the state cache is updated as each resource settles.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import networkx as nx

from cloudtmpl import functions, health, orchestration_kinds, resources
from cloudtmpl.catalog import Catalog
from cloudtmpl.desired import (
    RefContext,
    derived,
    free_texts,
    local_secrets,
    secrets_of,
    spec_of,
    translate,
)
from cloudtmpl.diagnostics import Diagnostic
from cloudtmpl.keygen import generated_public_key
from cloudtmpl.model import (
    Action,
    LiveResource,
    Output,
    is_unknown,
    physical_name,
    seal,
    spec_hash,
    to_jsonable,
)
from cloudtmpl.plan import Change, Plan
from cloudtmpl.providers.base import Adapter, CloudError, snapshots_of
from cloudtmpl.providers.local import LocalTarget
from cloudtmpl.providers.scripts import STOP_GRACE, output_lines
from cloudtmpl.resolve import ResolvedStack
from cloudtmpl.sensitive import carry, isolated, texts
from cloudtmpl.state import LockLost, ResourceRecord, StateStore
from cloudtmpl.steps import Step as _Step
from cloudtmpl.steps import build_steps


@dataclass(frozen=True)
class Event:
    """One line of apply progress: start, progress, done, failed or skipped."""

    event: str
    address: str
    action: str
    message: str = ""
    physical_id: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class StepResult:
    address: str
    action: str  # create, update, delete (a replace is a delete and a create)
    status: str  # done, failed, skipped
    message: str = ""
    physical_id: str | None = None


@dataclass(frozen=True)
class ApplyResult:
    steps: tuple[StepResult, ...]
    outputs: Mapping[str, Any] = field(default_factory=dict)
    # the plan's warnings and those of evaluating values known only now (a get_attr
    # path into a server just created that its value does not have), each once
    warnings: tuple[Diagnostic, ...] = ()

    @property
    def ok(self) -> bool:
        return all(s.status == "done" for s in self.steps)

    def count(self, status: str) -> int:
        return sum(1 for s in self.steps if s.status == status)


class Executor:
    """Runs a plan's steps (:func:`cloudtmpl.steps.build_steps`) against ``adapters``.

    ``local``: the built-in local target, asked explicitly (never through the
    adapters) for the value of an unchanged local resource and to run hooks and
    health check scripts over SSH; None when the stack has nothing local.
    """

    def __init__(
        self,
        plan: Plan,
        stack: ResolvedStack,
        adapters: Mapping[str, Adapter],
        store: StateStore,
        catalogs: Mapping[str, Catalog],
        *,
        keys_dir: Path,
        emit: Callable[[Event], None],
        parallelism: int = 10,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        seal_key: bytes = b"",
        local: LocalTarget | None = None,
    ) -> None:
        self.plan = plan
        self.stack = stack
        self.adapters = adapters
        self.store = store
        self.catalogs = catalogs
        self.keys_dir = keys_dir
        self.emit = emit
        self.parallelism = max(1, parallelism)
        self.stop = stop or threading.Event()
        self.clock = clock
        self.local = local
        # sealing: sensitive values are marked; ``secrets`` (hidden values whole) are
        # also searched for in specs, ``texts`` (also sensitive leaves, random strings,
        # sensitive property values seen) in free text: messages, output, attributes
        self.key = seal_key
        self.secrets = secrets_of(stack)
        self.texts = free_texts(stack)
        self._lock = threading.Lock()
        self._lost: LockLost | None = None  # the stack's lock was lost: start no new step
        # address -> the live resource as it stands now (no-ops from the plan,
        # creates/updates as they finish); what get_resource/get_attr read.
        self.current: dict[str, LiveResource] = {
            c.address: c.prior
            for c in plan.changes
            if c.action in (Action.NOOP, Action.UPDATE)
            and c.prior is not None
            and not resources.TYPES[c.kind].local
            and c.kind not in orchestration_kinds.SECRET_ATTRIBUTES
        }
        # unchanged resources whose attributes are credentials (a wait condition
        # handle's URL): the plan holds them sealed, so they are read from the cloud
        self.unchanged_secret = {
            c.address: c.prior for c in plan.changes
            if c.action in (Action.NOOP, Action.UPDATE) and c.prior is not None
            and c.kind in orchestration_kinds.SECRET_ATTRIBUTES
        }
        # the plan holds their secret attributes sealed (a stored secret's value): read
        # again from the cloud the first time get_attr asks
        self._sealed = {a for a, live in self.current.items()
                        if resources.TYPES[live.kind].sensitive_attributes}
        self.unchanged_local = {
            c.address: c for c in plan.changes
            if c.action is Action.NOOP and resources.TYPES[c.kind].local
        }
        self.ctx = RefContext(stack, self._known, lambda: self.texts)
        if local is not None:  # deployments: a running script's grace on stop
            local.watch_interrupts(self.stop)

    def _seal(self, value: Any) -> Any:
        """Free text or values from outside (messages, output, attributes), sealed."""
        return seal(value, self.texts, self.key)

    def _known(self, name: str) -> LiveResource | None:
        with self._lock:
            live = self.current.get(name)
            sealed = name in self._sealed
            self._sealed.discard(name)
        if live is not None and sealed:
            live = self._now(live)
            self._remember(live)
        prior = self.unchanged_secret.get(name)
        if live is None and prior is not None:
            live = self._now(prior)
            self._remember(live)
            return live
        change = self.unchanged_local.get(name)
        if live is None and change is not None:
            # a local resource's attributes never travel in the plan: compute them again
            # (its own evaluation: what it reads does not taint the one that asked)
            with isolated():
                props, spec = self._desired(change)
            if self.local is None:
                raise CloudError(f"{name}: no local target to compute it")
            live = self.local.value(change.kind, stack=self.plan.stack, address=name,
                                    properties=props, spec_hash=spec_hash(spec))
            live = derived(live, props)
            self._remember(live)
        return live

    def _show_output(self, change: Change, op: str, live: LiveResource) -> None:
        """A deployment's output, a progress line each, prefixed with where it ran."""
        for line in output_lines(live.attributes, self._seal):
            self.emit(Event("progress", change.address, op, line))

    def _hook(self, change: Change) -> None:
        """A server's pre_replace / pre_delete hook (the drain), run on it over SSH."""
        which = "pre_replace" if change.action is Action.REPLACE else "pre_delete"
        res = self.stack.resources.get(change.address)
        # the template's own hook (the plan holds it sealed); a removed resource's
        # recorded one
        hook = (res.lifecycle if res is not None else change.hooks).get(which)
        if not isinstance(hook, Mapping) or change.prior is None:
            return
        if self.local is None:
            raise CloudError(f"{change.address}: no SSH runner for its {which} hook")
        self.emit(Event("progress", change.address, "delete", f"running its {which} hook"))
        timeout = self._timeout(change.address, "delete",
                                resources.TYPES[change.prior.kind].delete_timeout)
        try:
            self.local.run_hook(self._now(change.prior), hook, which, timeout)
        except CloudError as err:
            if hook.get("on_failure") == "continue":
                self.emit(Event("progress", change.address, "delete",
                                f"{which} hook failed, continuing: {self._seal(err.message)}"))
                return
            raise CloudError(f"{which} hook failed, so the server is kept: {err.message}",
                             permanent=True) from None

    def _now(self, server: LiveResource) -> LiveResource:
        """The server as the cloud has it now: after a create_before_destroy its floating
        IP has moved to the replacement, and its own addresses may have changed (on AWS
        it gets a new public IP when its elastic IP leaves)."""
        adapter = self.adapters[server.placement.target]
        found = adapter.discover(server.placement.region, frozenset({server.kind}),
                                 self.plan.stack)
        return next((r for r in found if r.physical_id == server.physical_id), server)

    def _health(self, step: _Step) -> str:
        """The batch's health gate (:mod:`cloudtmpl.health`); '' when all are healthy."""

        def current(address: str) -> LiveResource | None:
            with self._lock:
                return self.current.get(address)

        return health.batch_problem(
            step.watch, current, step.check, clock=self.clock, stop=self.stop,
            run_script=self.local.run_hook if self.local is not None else None)

    def _timeout(self, address: str, what: str, default: float) -> float:
        res = self.stack.resources.get(address)
        return float(res.timeouts.get(what, default)) if res is not None else default

    def _remember(self, live: LiveResource) -> None:
        """Keep ``live`` for get_attr; a random string's value becomes a secret to seal."""
        with self._lock:
            self.current[live.address] = live
            self._sealed.discard(live.address)  # as the cloud has it now
            found = local_secrets([live])
            self.secrets += found
            # a stored secret's value (marked): sealed wherever free text echoes it
            self.texts += found + tuple(t for t in sorted(texts(live.attributes))
                                        if t not in self.texts)

    # -- one step ---------------------------------------------------------
    def _desired(self, change: Change) -> tuple[dict[str, Any], dict[str, Any]]:
        """(real properties for the cloud, sealed spec for state and tags)."""
        res = self.stack.resources[change.address]
        props = functions.evaluate(dict(res.properties), self.ctx)
        if is_unknown(props):
            raise CloudError(
                f"{change.address}: a value it needs is still unknown "
                "(a resource it depends on was not created)"
            )
        props = carry(props, translate(res.kind, props, self.catalogs[res.placement.target],
                                       res.placement, self.plan.natives))
        props = carry(props, resources.canonical(res.kind, props))
        seen = tuple(t for t in sorted(texts(props)) if t not in self.texts)
        if seen:  # a cloud's error message or a script's output may echo them
            with self._lock:
                self.texts += seen
        return props, spec_of(res, props, self.secrets, self.key)

    def _run(self, step: _Step, run_id: int) -> StepResult:
        change = step.change
        assert change is not None
        if step.op == "hook":
            self._hook(change)
            self.emit(Event("done", change.address, "hook", "", None))
            return StepResult(change.address, "hook", "done")
        adapter = self.adapters[
            change.placement.target
            if step.op != "delete" or not change.prior
            else change.prior.placement.target
        ]
        started = self.clock()
        prior_id = change.prior.physical_id if change.prior else None
        self.store.journal(
            run_id,
            self.plan.stack,
            change.address,
            step.op,
            "intent",
            physical_id=prior_id if step.op != "create" else None,
            detail={"snapshot": True} if step.op == "delete" and change.snapshot else None,
        )
        self.emit(Event("start", change.address, step.op, change.reason, prior_id))
        rtype = resources.TYPES[change.kind]
        detail: dict[str, Any] | None = None
        if step.op == "delete":
            assert change.prior is not None
            prior_type = resources.TYPES[change.prior.kind]
            timeout = self._timeout(change.address, "delete", prior_type.delete_timeout)
            if change.snapshot:
                detail = {"snapshot": self._snapshot(adapter, change, timeout)}
            adapter.delete(change.prior, timeout=timeout)
            if change.action is Action.DELETE:
                self.store.delete_resource(self.plan.stack, change.address)
            live_id = change.prior.physical_id
        else:
            props, spec = self._desired(change)
            digest = spec_hash(spec)
            cloud_props = dict(props)
            if change.kind == resources.KEYPAIR.kind and not props.get("public_key"):
                cloud_props["public_key"] = generated_public_key(
                    self.keys_dir, physical_name(self.plan.stack, change.address)
                )
            if step.op == "create":
                live = adapter.create(
                    change.placement.region,
                    change.kind,
                    stack=self.plan.stack,
                    address=change.address,
                    name=physical_name(self.plan.stack, change.address),
                    properties=cloud_props,
                    spec_hash=digest,
                    timeout=self._timeout(change.address, "create", rtype.ready_timeout),
                )
            else:
                assert change.prior is not None
                changed = frozenset(d.name for d in change.diff)
                live = adapter.update(
                    change.prior,
                    cloud_props,
                    changed,
                    stack=self.plan.stack,
                    spec_hash=digest,
                    timeout=self._timeout(change.address, "create", rtype.ready_timeout),
                )
            live = derived(live, cloud_props)
            self._remember(live)
            if not (step.op == "update" and resources.connection_only(
                    change.kind, (d.name for d in change.diff))):
                self._show_output(change, step.op, live)  # (nothing ran otherwise)
            self.store.put_resource(self.plan.stack, self._record(live, spec))
            live_id = live.physical_id
        self.store.journal(run_id, self.plan.stack, change.address, step.op, "done",
                           physical_id=live_id, detail=detail)
        self.emit(Event("done", change.address, step.op, "", live_id, self.clock() - started))
        return StepResult(change.address, step.op, "done", "", live_id)

    def _snapshot(self, adapter: Adapter, change: Change, timeout: float) -> str | None:
        """deletion_policy Snapshot: snapshot the old volume (or image the old server, where
        the cloud can) before it is deleted, in the
        same step (its intent is journaled already).  A failure raises: the volume is
        kept.  A run killed after the snapshot leaves the volume in the cloud; the next
        run plans its delete again and the adapter finds and reuses that snapshot."""
        assert change.prior is not None
        snapper = snapshots_of(adapter)
        noun = change.prior.kind.rsplit("::", 1)[-1].lower()  # volume, server
        if snapper is None:
            raise CloudError(
                f"target {change.prior.placement.target!r} cannot take {noun} snapshots "
                f"(deletion_policy Snapshot), so the {noun} is kept; use Retain or Delete",
                permanent=True)
        self.emit(Event("progress", change.address, "delete",
                        "deletion_policy Snapshot: taking a snapshot first"))
        try:
            snap = snapper.snapshot_volume(change.prior, stack=self.plan.stack,
                                           timeout=timeout)
        except CloudError as err:
            raise CloudError(f"the snapshot failed, so the {noun} is kept: {err.message}",
                             permanent=err.permanent, status=err.status) from None
        copy = dict(getattr(snapper, "snapshot_kinds", {})).get(change.prior.kind,
                                                                  snapper.snapshot_kind)
        self.emit(Event("progress", change.address, "delete",
                        f"{copy} {snap} complete" if snap
                        else "already gone: nothing to snapshot"))
        return snap

    def _record(self, live: LiveResource, spec: Mapping[str, Any]) -> ResourceRecord:
        attributes = to_jsonable(self._seal(dict(live.attributes)))
        return ResourceRecord.from_live(replace(live, attributes=attributes), spec)

    # -- the walk ---------------------------------------------------------
    def _record_adopted(self) -> None:
        """Record the unchanged resources the state has no (current) record of.

        A run killed after the cloud made a resource but before its record was written
        leaves it to the next plan, which finds it by its tags, unchanged: a no-op.
        What only the state answers later - the deletion policy and hooks of a
        resource that has left the template - must be recorded all the same.
        """
        records = self.store.resources(self.plan.stack)
        for change in self.plan.changes:
            live = change.prior
            if change.action is not Action.NOOP or change.retain or live is None \
                    or live.spec_hash is None or resources.TYPES[change.kind].local:
                continue
            known = records.get(change.address)
            if known is not None and known.spec_hash == live.spec_hash:
                continue
            try:
                _, spec = self._desired(change)
            except CloudError:
                continue
            if spec_hash(spec) == live.spec_hash:
                self.store.put_resource(self.plan.stack, self._record(live, spec))

    def run(self, run_id: int) -> ApplyResult:
        self._record_adopted()
        groups = {a: (r.group, r.index, r.update_policy)
                  for a, r in self.stack.resources.items() if r.group}
        g = build_steps(self.plan, groups)
        results: dict[str, StepResult] = {}
        pending = {n: set(g.predecessors(n)) for n in g.nodes}
        running: dict[Future[StepResult], str] = {}

        def skip(node: str, why: str) -> None:
            step: _Step = g.nodes[node]["step"]
            results[node] = StepResult(step.address, step.op, "skipped", why)
            if step.change is not None:
                self.emit(Event("skipped", step.address, step.op, why))

        def skip_dependents(node: str, why: str) -> None:
            for d in nx.descendants(g, node):
                if d not in results:
                    skip(d, why)

        pool = ThreadPoolExecutor(max_workers=self.parallelism)
        aborted = False
        told = False  # that running scripts get a grace after the first interrupt
        try:
            while True:
                if not self.stop.is_set() and self._lost is None:
                    ready = sorted(
                        n
                        for n, deps in pending.items()
                        if not deps and n not in results and n not in running.values()
                    )[: self.parallelism - len(running)]
                    if ready:  # before each step: is the stack's lock still ours?
                        try:
                            self.store.check_lock(self.plan.stack)
                        except LockLost as lost:
                            self._lost = lost
                            ready = []
                    for node in ready:
                        running[pool.submit(self._safe_run, g.nodes[node]["step"], run_id)] = node
                if not running:
                    break
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                if self.stop.is_set() and not told:
                    told = True
                    self._tell_stopping([g.nodes[n]["step"] for n in running.values()])
                for fut in done:
                    node = running.pop(fut)
                    result = fut.result()
                    results[node] = result
                    if result.status == "done":
                        for succ in g.successors(node):
                            pending[succ].discard(node)
                    else:
                        skip_dependents(node, f"{result.address} failed")
            for node in g.nodes:
                if node not in results:
                    skip(node, "not started: the stack's lock was lost" if self._lost
                         else "interrupted before it started")
        except KeyboardInterrupt:
            # a second Ctrl-C: stop now.  The steps still in flight keep their intent
            # in the journal, marked aborted, so the next run looks them up.
            aborted = True
            for node in running.values():
                step = g.nodes[node]["step"]
                if step.change is not None:
                    with contextlib.suppress(LockLost):  # a fenced-off run writes nothing
                        self.store.journal(run_id, self.plan.stack, step.address, step.op,
                                           "failed", detail={"error": "aborted while in flight"})
                    self.emit(Event("failed", step.address, step.op, "aborted while in flight"))
            if self.local is not None:  # deployments: kill the remote scripts
                self.local.abort_scripts()
            raise
        finally:
            pool.shutdown(wait=not aborted, cancel_futures=True)
        if self._lost is not None:  # in-flight steps ended; nothing new started: stop here
            raise self._lost
        ordered = tuple(results[n] for n in nx.topological_sort(g)
                        if g.nodes[n]["step"].change is not None)
        outputs = self.outputs()
        warnings = {(w.loc, w.message): w for w in (*self.plan.warnings, *self.ctx.warnings)}
        return ApplyResult(ordered, outputs, tuple(warnings.values()))

    def _tell_stopping(self, steps: list[_Step]) -> None:
        """After the first interrupt: what becomes of the deployments still running."""
        for step in steps:
            if step.change is not None and (step.op == "hook" or step.change.kind
                                            in resources.DEPLOY_KINDS):
                self.emit(Event("progress", step.address, step.op,
                                f"stopping: its script gets {STOP_GRACE:g} s more (within its "
                                "timeout), then its remote process group is killed; "
                                "interrupt again to kill it now"))

    def _safe_run(self, step: _Step, run_id: int) -> StepResult:
        if step.change is None:  # a pause or health gate between batches, or a barrier
            if step.seconds:
                self.emit(Event("progress", step.id, "pause", f"{step.seconds:g}s between batches"))
                self.stop.wait(step.seconds)
            if step.op == "gate" and not self.stop.is_set():
                try:
                    problem = self._health(step)
                except (TypeError, ValueError) as err:
                    problem = f"the health check is not usable: {err}"
                if problem:
                    problem = str(self._seal(problem))
                    self.emit(Event("failed", step.id, "health", problem))
                    return StepResult(step.id, "health", "failed", problem)
                self.emit(Event("done", step.id, "health", "the batch is healthy"))
            return StepResult(step.id, step.op, "skipped" if self.stop.is_set() else "done")
        try:
            return self._run(step, run_id)
        except LockLost as lost:  # another run owns the stack now: no journal, no record
            self._lost = self._lost or lost
            self.emit(Event("failed", step.change.address, step.op, str(lost)))
            return StepResult(step.change.address, step.op, "failed", str(lost))
        except CloudError as err:
            message = str(self._seal(err.message))
        except Exception as err:  # an adapter bug must not lose the journal
            message = str(self._seal(f"{type(err).__name__}: {err}"))
        change = step.change
        where = change.prior.placement if step.op == "delete" and change.prior else change.placement
        message = f"{where.target}/{where.region}: {message}"
        try:
            self.store.journal(run_id, self.plan.stack, change.address, step.op, "failed",
                               detail={"error": message})
        except LockLost as lost:
            self._lost = self._lost or lost
        self.emit(Event("failed", change.address, step.op, message))
        return StepResult(change.address, step.op, "failed", message)

    def outputs(self) -> dict[str, Any]:
        for name in self.unchanged_local:
            self._known(name)  # their secrets must be known before anything is sealed
        return evaluate_outputs(self.stack.outputs, self.ctx, self.secrets, self.key)


def evaluate_outputs(
    outputs: Mapping[str, Output], ctx: RefContext, secrets: tuple[str, ...],
    key: bytes = b"",
) -> dict[str, Any]:
    """Output values, sealed (a sensitive value, or text holding one of ``secrets``); an
    output whose inputs are unknown (a failed resource) is None."""
    out: dict[str, Any] = {}
    for name, output in outputs.items():
        value = functions.evaluate(output.value, ctx)
        out[name] = None if is_unknown(value) else to_jsonable(seal(value, secrets, key))
    return out
