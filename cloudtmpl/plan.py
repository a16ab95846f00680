"""The planner: a pure diff of the desired stack against live state (+ last-applied).

Inputs are values (the resolved stack, what discovery found, the last-applied
specs from the state store, the provider catalogs); the output is a
:class:`Plan` value that can be rendered, saved to a file and applied later by
another process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from cloudtmpl import functions, resources
from cloudtmpl.catalog import Catalog
from cloudtmpl.deletion import cloud_of, retained_replace_refused, snapshots
from cloudtmpl.desired import (
    LIFECYCLE,
    POLICY,
    Natives,
    RefContext,
    derived,
    free_texts,
    local_secrets,
    real_properties,
    secrets_of,
    spec_of,
)
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc
from cloudtmpl.discover import Discovery
from cloudtmpl.graph import build_graph
from cloudtmpl.model import (
    Action,
    DesiredResource,
    LiveResource,
    Placement,
    canonical_json,
    is_unknown,
    key_id,
    legacy_sealed,
    seal,
    seal_keys,
    seal_like,
    spec_hash,
    to_jsonable,
)
from cloudtmpl.placement import Candidate, Residency
from cloudtmpl.providers.local import attributes as local_attributes
from cloudtmpl.resolve import ResolvedStack

FORMAT_VERSION = 1


@dataclass(frozen=True)
class PropertyChange:
    name: str
    old: Any
    new: Any
    forces_replacement: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "property": self.name,
            "old": to_jsonable(self.old),
            "new": to_jsonable(self.new),
            "forces_replacement": self.forces_replacement,
        }


@dataclass(frozen=True)
class Change:
    address: str
    kind: str
    type: str
    action: Action
    placement: Placement
    diff: tuple[PropertyChange, ...] = ()
    reason: str = ""
    prior: LiveResource | None = None  # the live resource an update/replace/delete acts on
    depends_on: tuple[str, ...] = ()
    why: str = ""  # how the placement was chosen
    drift: str = ""  # set when the live resource sits where the residency no longer allows
    retain: bool = False  # leaves the stack but stays in the cloud (deletion_policy Retain)
    snapshot: bool = False  # the delete (or a replace's delete) snapshots it first
    hooks: Mapping[str, Any] = field(default_factory=dict)  # lifecycle of the old resource

    @property
    def key(self) -> str:
        """Unique within a plan (duplicates share an address, not a physical id)."""
        return f"{self.address}#{self.prior.physical_id}" if self.prior else self.address

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "type": self.type,
            "kind": self.kind,
            "action": self.action.value,
            "placement": {**self.placement.to_json(), "why": self.why},
            "diff": [d.to_json() for d in self.diff],
            "drift": self.drift,
            "retain": self.retain,
            "snapshot": self.snapshot,
            "hooks": dict(self.hooks),
            "reason": self.reason,
            "physical_id": self.prior.physical_id if self.prior else None,
            "prior": self.prior.to_json() if self.prior else None,
            "depends_on": list(self.depends_on),
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Change:
        return Change(
            address=data["address"],
            kind=data["kind"],
            type=data["type"],
            action=Action(data["action"]),
            placement=Placement.from_json(data["placement"]),
            diff=tuple(
                PropertyChange(d["property"], d["old"], d["new"], d["forces_replacement"])
                for d in data.get("diff", [])
            ),
            reason=data.get("reason", ""),
            prior=LiveResource.from_json(data["prior"]) if data.get("prior") else None,
            depends_on=tuple(data.get("depends_on", [])),
            why=data["placement"].get("why", ""),
            drift=data.get("drift", ""),
            retain=bool(data.get("retain", False)),
            snapshot=bool(data.get("snapshot", False)),
            hooks=dict(data.get("hooks") or {}),
        )


@dataclass(frozen=True)
class Plan:
    stack: str
    changes: tuple[Change, ...]
    template_hash: str
    params_hash: str
    state_serial: int
    live_fingerprint: str
    api_requests: int = 0
    seconds: float = 0.0
    # What the plan was built from, so `apply PLANFILE` does not read the work tree:
    # file name -> text for the template and environment files, and the
    # non-hidden parameter values given on the command line.
    sources: Mapping[str, str] = field(default_factory=dict)
    template_file: str = ""
    environment_files: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    hidden_params: tuple[str, ...] = ()
    # file -> hidden parameter -> keyed digest of its default, cut out of ``sources``
    # (see :mod:`cloudtmpl.hidden_defaults`)
    hidden_defaults: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    target: str | None = None
    allow_relocation: bool = False
    natives: Natives = field(default_factory=dict)
    # The template as the state records it (relative to the project directory), and
    # --replace-template: applying the plan may make it the stack's template even where
    # that deletes resources the stack's recorded template has.
    stack_template: str = ""
    replace_template: bool = False
    # what evaluating the template against the live resources warned about (a get_attr
    # path the live value does not have: null, as Heat answers); shown with the plan
    warnings: tuple[Diagnostic, ...] = ()

    @property
    def summary(self) -> dict[str, int]:
        counts = {a.value: 0 for a in Action}
        for c in self.changes:
            counts[c.action.value] += 1
        return counts

    @property
    def has_changes(self) -> bool:
        return any(c.action is not Action.NOOP for c in self.changes)

    @property
    def residency(self) -> dict[str, Any]:
        """Where the stack's resources will be, counted per country and jurisdiction."""
        countries: dict[str, int] = {}
        jurisdictions: dict[str, int] = {}
        for c in self.changes:
            if c.action is Action.DELETE or c.placement.target == resources.LOCAL_TARGET:
                continue  # local resources live in cloudtmpl's state, not in a country
            country = c.placement.country or "unknown"
            countries[country] = countries.get(country, 0) + 1
            jurisdiction = c.placement.jurisdiction or "unknown"
            jurisdictions[jurisdiction] = jurisdictions.get(jurisdiction, 0) + 1
        return {
            "countries": dict(sorted(countries.items())),
            "jurisdictions": dict(sorted(jurisdictions.items())),
            "drift": sorted(c.address for c in self.changes if c.drift),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "stack": self.stack,
            "changes": [c.to_json() for c in self.changes],
            "summary": self.summary,
            "residency": self.residency,
            "stats": {"api_requests": self.api_requests, "seconds": round(self.seconds, 3)},
            "template_hash": self.template_hash,
            "params_hash": self.params_hash,
            "state_serial": self.state_serial,
            "live_fingerprint": self.live_fingerprint,
            "template_file": self.template_file,
            "environment_files": list(self.environment_files),
            "sources": dict(self.sources),
            "params": dict(self.params),
            "hidden_params": list(self.hidden_params),
            "hidden_defaults": {f: dict(d) for f, d in sorted(self.hidden_defaults.items())},
            "target": self.target,
            "allow_relocation": self.allow_relocation,
            "natives": [[*key, value] for key, value in sorted(self.natives.items())],
            "stack_template": self.stack_template,
            "replace_template": self.replace_template,
            "warnings": [w.to_json() for w in self.warnings],
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Plan:
        stats = data.get("stats", {})
        return Plan(
            stack=data["stack"],
            changes=tuple(Change.from_json(c) for c in data["changes"]),
            template_hash=data["template_hash"],
            params_hash=data["params_hash"],
            state_serial=int(data["state_serial"]),
            live_fingerprint=data["live_fingerprint"],
            api_requests=int(stats.get("api_requests", 0)),
            seconds=float(stats.get("seconds", 0.0)),
            sources=dict(data.get("sources", {})),
            template_file=data.get("template_file", ""),
            environment_files=tuple(data.get("environment_files", [])),
            params=dict(data.get("params", {})),
            hidden_params=tuple(data.get("hidden_params", [])),
            hidden_defaults={str(f): dict(d) for f, d in
                             dict(data.get("hidden_defaults") or {}).items()},
            target=data.get("target"),
            allow_relocation=bool(data.get("allow_relocation", False)),
            natives={(t, r, w, v): c for t, r, w, v, c in data.get("natives", [])},
            stack_template=str(data.get("stack_template", "")),
            replace_template=bool(data.get("replace_template", False)),
            warnings=tuple(diagnostic_from_json(w) for w in data.get("warnings") or ()),
        )


def diagnostic_from_json(data: Mapping[str, Any]) -> Diagnostic:
    """A diagnostic as :meth:`Diagnostic.to_json` wrote it (a plan file's warnings)."""
    return Diagnostic(str(data["code"]), str(data["message"]),
                      Loc(str(data.get("file", "")), int(data.get("line") or 0),
                          int(data.get("column") or 0)),
                      str(data.get("hint", "")),
                      "error" if data.get("severity") == "error" else "warning")


def live_fingerprint(discovery: Discovery) -> str:
    """A digest of everything discovery saw, to detect a stale plan."""
    items = sorted(
        (r.address, r.physical_id, r.kind, r.spec_hash or "", canonical_json(r.properties))
        for group in discovery.live.values()
        for r in group
    )
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:32]


SNAPSHOT_NOTE = "a snapshot is taken first"


def _diff(
    res: DesiredResource,
    desired: Mapping[str, Any],
    live: LiveResource,
    last_applied: Mapping[str, Any] | None,
    replace_only: frozenset[tuple[str, str]] = frozenset(),
    real: Mapping[str, Any] | None = None,
    key: bytes = b"",
) -> tuple[PropertyChange, ...]:
    rtype = resources.TYPES[res.kind]
    changes = []
    for name in sorted(set(desired) | set(last_applied or {})):
        new = desired.get(name)
        if new is None or name in (POLICY, LIFECYCLE):
            continue  # not set in the template: the cloud's choice stands
        if name in live.properties:
            old = live.properties[name]
        elif last_applied is not None and name in last_applied:
            old = last_applied[name]
        else:
            continue  # not observable and never recorded: cannot tell, assume unchanged
        if is_unknown(new) or canonical_json(old) != canonical_json(new):
            if not is_unknown(new) and real is not None and resealed(old, real.get(name), key):
                continue  # the same value, sealed the old way or with another key
            forced = rtype.forces_replacement(name) or (res.kind, name) in replace_only
            changes.append(PropertyChange(name, old, new, forced))
    return tuple(changes)


def resealed(old: Any, real: Any, key: bytes) -> bool:
    """Whether a recorded value that differs from the new seal of ``real`` is only sealed
    differently: by an older cloudtmpl (an unkeyed ``sha256:`` digest, which it still
    matches), or with another secret key (which cannot be compared: assumed unchanged,
    as a property that cannot be observed is)."""
    if legacy_sealed(old, real):
        return True
    found = seal_keys(old)
    return bool(found) and key_id(key) not in found


def sealed_live(live: LiveResource, real: Mapping[str, Any], secrets: tuple[str, ...],
                key: bytes) -> LiveResource:
    """``live`` as a plan may hold it: its properties sealed where the template's
    ``real`` values are sensitive (:func:`~cloudtmpl.model.seal_like`), and any property
    or attribute text holding a secret."""
    return replace(live, properties=seal_like(dict(live.properties), dict(real), secrets, key),
                   attributes=seal(to_jsonable(dict(live.attributes)), secrets, key))


def where(placement: Placement, catalogs: Mapping[str, Catalog]) -> Placement:
    """``placement`` with its country and jurisdiction from the target's catalog."""
    catalog = catalogs.get(placement.target)
    info = catalog.regions.get(placement.region) if catalog else None
    if info is None or placement.country:
        return placement
    return replace(placement, country=info.country, jurisdiction=info.jurisdiction)


def drift(
    live: LiveResource | None, residency: Residency | None, catalogs: Mapping[str, Catalog]
) -> str:
    """Why a live resource sits where the residency no longer allows ("" if it does not)."""
    if live is None or residency is None:
        return ""
    p = where(live.placement, catalogs)
    candidate = Candidate(p.target, p.region, p.country, p.jurisdiction, (0, 0))
    if residency.allows(candidate):
        return ""
    return f"live in {candidate.text()}, outside the {residency.text()}"


def relocation_refused(
    res: DesiredResource, live: LiveResource, catalogs: Mapping[str, Catalog]
) -> Diagnostic:
    old = where(live.placement, catalogs)
    new = res.placement
    what = "is pinned" if res.pinned else "holds data"
    return Diagnostic(
        "relocation-refused",
        f"resource '{res.address}' {what} in {old.target}/{old.region} ({old.country or '?'}); "
        f"the template now places it in {new.target}/{new.region} ({new.country or '?'}), "
        "which replaces it: the new one starts empty and the old one is deleted",
        res.loc,
        "put its placement back, or pass --allow-relocation to replace it anyway",
    )


def with_snapshot(change: Change) -> Change:
    """``change`` (a delete or replace) marked to snapshot the old resource first."""
    what = "a snapshot of the old one is taken first" if change.action is Action.REPLACE \
        else SNAPSHOT_NOTE
    if change.kind == resources.SERVER.kind:  # what stays: an image of it
        what = "an image of the old server is taken first and kept" \
            if change.action is Action.REPLACE else "an image of it is taken first and kept"
    return replace(change, snapshot=True,
                   reason=f"{change.reason}; deletion_policy Snapshot: {what}")


def removal(live: LiveResource, last_applied: Mapping[str, Any] | None, reason: str,
            catalogs: Mapping[str, Catalog]) -> Change:
    """A resource leaves the stack: deleted (a volume under Snapshot: snapshotted first),
    unless its deletion policy keeps it."""
    change = replace(delete_change(live, reason, catalogs),
                     hooks=dict((last_applied or {}).get(LIFECYCLE) or {}))
    policy = (last_applied or {}).get(POLICY)
    if snapshots(live.kind, policy, cloud=cloud_of(live.placement, catalogs)):
        return with_snapshot(change)
    if policy not in ("Retain", "Snapshot"):
        return change
    # Snapshot on a kind cloudtmpl cannot snapshot here (a server outside OpenStack:
    # Heat saves an image)
    note = "" if policy == "Retain" else \
        f" (cloudtmpl cannot snapshot a {live.kind}: kept, as with Retain)"
    return replace(change, action=Action.NOOP, retain=True,
                   reason=f"deletion_policy {policy}: stays in the cloud, no longer "
                   f"managed by this stack{note}")


def delete_change(
    live: LiveResource, reason: str, catalogs: Mapping[str, Catalog] | None = None
) -> Change:
    """A change that deletes ``live`` (left the template, a duplicate, or destroy)."""
    placement = where(live.placement, catalogs or {})
    return Change(
        live.address, live.kind, live.kind, Action.DELETE, placement, reason=reason, prior=live
    )


def decide(
    res: DesiredResource,
    desired: Mapping[str, Any],
    live: LiveResource | None,
    last_applied: Mapping[str, Any] | None,
    replace_only: frozenset[tuple[str, str]] = frozenset(),
    real: Mapping[str, Any] | None = None,
    key: bytes = b"",
) -> tuple[Action, tuple[PropertyChange, ...], str]:
    """What to do with one resource: (action, property diff, why).  With ``real`` (the
    unsealed properties) a value recorded under an older seal is not a change."""
    if live is None:
        created = tuple(
            PropertyChange(k, None, v) for k, v in sorted(desired.items()) if v is not None
        )
        why = "deleted outside cloudtmpl" if last_applied is not None else "not in the cloud yet"
        return Action.CREATE, created, why
    if live.kind != res.kind:
        return Action.REPLACE, (), f"type changed from {live.kind}"
    if (live.placement.target, live.placement.region) != (
        res.placement.target,
        res.placement.region,
    ):
        # the move replaces it; what else changes is still worth showing
        moved = _diff(res, desired, live, last_applied, replace_only, real, key)
        return Action.REPLACE, moved, f"moves from {live.placement.target}/{live.placement.region}"
    diff = _diff(res, desired, live, last_applied, replace_only, real, key)
    if not diff:
        want = None if is_unknown(desired) else spec_hash(desired)
        if live.spec_hash in (None, want):
            return Action.NOOP, (), ""
        if last_applied is not None and real is not None and any(
                resealed(last_applied[k], real.get(k), key) for k in last_applied
                if k in real and canonical_json(last_applied[k]) != canonical_json(desired.get(k))):
            return Action.UPDATE, (), ("its sensitive values were sealed by an older cloudtmpl "
                                       "or with another secret key: the record and spec tag "
                                       "are sealed again (nothing else changes)")
        if last_applied is not None and last_applied.get(POLICY) != desired.get(POLICY):
            return Action.UPDATE, (), f"deletion_policy is now {desired.get(POLICY, 'Delete')}"
        if last_applied is not None and last_applied.get(LIFECYCLE) != desired.get(LIFECYCLE):
            return Action.UPDATE, (), "lifecycle hooks changed"
        return (
            Action.UPDATE,
            (),
            "spec tag differs and the last-applied properties are "
            "unknown (state missing); the tag is refreshed",
        )
    forced = [d.name for d in diff if d.forces_replacement]
    if forced:
        return Action.REPLACE, diff, f"{', '.join(forced)} cannot change in place"
    if resources.connection_only(res.kind, (d.name for d in diff)):
        return Action.UPDATE, diff, "only how to connect changed: recorded, the script does not run"
    return Action.UPDATE, diff, "updated in place"


def make_plan(
    stack: ResolvedStack,
    discovery: Discovery,
    last_applied: Mapping[str, Mapping[str, Any]],
    catalogs: Mapping[str, Catalog],
    *,
    state_serial: int,
    allow_relocation: bool = False,
    natives: Natives | None = None,
    seal_key: bytes = b"",
) -> Plan:
    """Diff ``stack`` against what ``discovery`` found.

    ``last_applied`` maps address -> the spec recorded at the last apply (used for
    properties the cloud does not report).  Live resources of the stack that the
    template no longer has are deleted.  A pinned or data-bearing resource that
    would move to another target/region is refused (a DiagnosticError) unless
    ``allow_relocation``.  Sensitive values are sealed with ``seal_key`` (the project's
    secret key) in everything the plan holds: the new values, the live resources' values
    at the same places, and any text holding a secret.
    """
    secrets = secrets_of(stack)
    graph = build_graph(stack)  # resolve refused cycles: this one has none

    planned: dict[str, Change] = {}
    # what get_attr reads: live resources, with local resources' attributes (random
    # strings, values) which never go into the plan itself
    readable: dict[str, LiveResource] = {}
    randoms = local_secrets(r for group in discovery.live.values() for r in group)
    secrets += randoms
    free = free_texts(stack) + randoms

    def known(name: str) -> LiveResource | None:
        change = planned.get(name)
        if change is None or change.action in (Action.CREATE, Action.REPLACE):
            return None
        return readable.get(name)

    ctx = RefContext(stack, known, lambda: free)
    changes: list[Change] = []
    refused: list[Diagnostic] = []
    for address in nx.topological_sort(graph):
        res = stack.resources[address]
        real = real_properties(res, ctx, catalogs[res.placement.target], natives)
        desired = spec_of(res, real, secrets, seal_key)
        found = sorted(
            discovery.live.get(address, ()),
            key=lambda r: (r.kind != res.kind, r.spec_hash != spec_hash(desired)),
        )
        live = found[0] if found else None
        last = last_applied.get(address) or {}
        for extra in found[1:]:
            dup = delete_change(
                sealed_live(extra, real, free, seal_key),
                f"duplicate of {found[0].physical_id}: a second live copy of this resource"
            )
            changes.append(with_snapshot(dup) if snapshots(
                extra.kind, desired.get(POLICY), last.get(POLICY),
                cloud=cloud_of(extra.placement, catalogs)) else dup)
        shown = None if live is None else sealed_live(live, real, free, seal_key)
        action, diff, why = decide(res, desired, shown, last_applied.get(address),
                                   catalogs[res.placement.target].replace_only, real, seal_key)
        if live is not None:
            local = resources.TYPES[res.kind].local
            readable[address] = live
            if res.kind in (resources.VALUE.kind, resources.TEST_RESOURCE.kind):
                readable[address] = derived(replace(live, attributes=local_attributes(
                    res.kind, real, b"", stack.name, address)), real)
            # what the plan holds (local attributes never: they may hold secrets)
            assert shown is not None
            live = replace(shown, attributes={}) if local else shown
        planned[address] = Change(
            address,
            res.kind,
            res.type,
            action,
            res.placement,
            diff=diff,
            reason=why,
            prior=live,
            depends_on=tuple(sorted(res.depends_on)),
            why=res.why,
            drift=drift(live, stack.residency, catalogs),
            hooks=seal(dict(res.lifecycle), secrets, seal_key),  # run from the template
        )
        # a replaced volume under Snapshot (then or now: when in doubt, keep the data)
        if action is Action.REPLACE and live is not None and \
                snapshots(live.kind, desired.get(POLICY), last.get(POLICY),
                          cloud=cloud_of(live.placement, catalogs)):
            planned[address] = with_snapshot(planned[address])
        changes.append(planned[address])
        moved = live is not None and (live.placement.target, live.placement.region) != (
            res.placement.target,
            res.placement.region,
        )
        guarded = res.pinned or resources.TYPES[res.kind].data_bearing
        if moved and guarded and action is Action.REPLACE and not allow_relocation:
            assert live is not None
            refused.append(relocation_refused(res, live, catalogs))
        elif action is Action.REPLACE and live is not None and \
                desired.get(POLICY) in ("Retain", "Snapshot") and \
                not snapshots(res.kind, desired.get(POLICY),
                              cloud=cloud_of(res.placement, catalogs)):
            refused.append(retained_replace_refused(res, str(desired.get(POLICY)), why))
    if refused:
        raise DiagnosticError(refused)
    with ctx.known_only():  # the outputs' warnings too (their values: at apply)
        for output in stack.outputs.values():
            with contextlib.suppress(DiagnosticError):
                functions.evaluate(output.value, ctx)

    changes.extend(
        replace(
            removal(sealed_live(live, {}, free, seal_key), last_applied.get(address),
                    "no longer in the template", catalogs),
            drift=drift(live, stack.residency, catalogs),
        )
        for address, group in sorted(discovery.live.items())
        if address not in stack.resources
        for live in group
    )
    order_index = {a: i for i, a in enumerate(stack.resources)}
    changes.sort(key=lambda c: (order_index.get(c.address, len(order_index)), c.address))
    return Plan(
        stack=stack.name,
        changes=tuple(changes),
        template_hash=stack.template_hash,
        params_hash=stack.params_hash,
        state_serial=state_serial,
        live_fingerprint=live_fingerprint(discovery),
        api_requests=discovery.api_requests,
        seconds=discovery.seconds,
        natives=dict(natives or {}),
        warnings=ctx.warnings,
    )
