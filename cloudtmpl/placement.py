"""Placement: every resource gets one (target, region) before any cloud is asked.

The residency solver (pure): the stack's ``placement`` (default provider and
region, and ``residency``: countries, jurisdictions or explicit regions) and
each resource's own ``placement`` (provider, region, country, jurisdiction,
pinned) restrict the candidate (target, region) pairs, which come from the
provider catalogs and ``cloudtmpl.yaml``.  Preferences choose among what is
left, first match wins: the resource's own rule, the stack's
placement, ``--target``, ``default_target``.  Resources that refer to each other
by id are kept together.  Every choice carries a ``why``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from cloudtmpl.catalog import RegionInfo, catalog_for, is_country, target_regions
from cloudtmpl.diagnostics import NOWHERE, Diagnostic, Loc
from cloudtmpl.model import Placement, Target


class PlacementOptions(Protocol):
    """The part of the resolve options placement needs."""

    @property
    def target(self) -> str | None: ...

    @property
    def default_target(self) -> str | None: ...

    @property
    def targets(self) -> Mapping[str, Target]: ...


def split_target(spec: str | None) -> tuple[str | None, str | None]:
    """``"T/REGION"`` -> ``("T", "REGION")``; ``"T"`` -> ``("T", None)``."""
    if not spec:
        return None, None
    name, _, region = spec.partition("/")
    return (name or None), (region or None)


# -- the residency solver -------------------------------------------------------
#
# Every resource gets exactly one (target, region) that satisfies the stack's
# residency and its own rules.  Resources that refer to each other by id
# (get_resource: a volume and its attachment's server, a floating IP and its
# server, a subnet and its network) are kept together: an id means something
# only in its own cloud region.  The choice is deterministic and explained.


@dataclass(frozen=True)
class Rule:
    """One placement rule as written (a resource's, or the stack's)."""

    source: str  # "resource 'db'", "stack placement", "--target"
    loc: Loc
    provider: str | None = None
    region: str | None = None
    country: str | None = None
    jurisdiction: str | None = None
    pinned: bool = False

    def text(self) -> str:
        parts = [f"{k}={v}" for k, v in (("provider", self.provider), ("region", self.region),
                                          ("country", self.country),
                                          ("jurisdiction", self.jurisdiction)) if v]
        return f"{self.source} ({', '.join(parts) or 'no constraint'})"


@dataclass(frozen=True)
class Residency:
    """Where the stack's resources may live (stack-level ``placement.residency``)."""

    loc: Loc
    countries: frozenset[str] = frozenset()
    jurisdictions: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()  # "target/region" or "region"

    def allows(self, c: Candidate) -> bool:
        if self.countries and c.country not in self.countries:
            return False
        if self.jurisdictions and c.jurisdiction not in self.jurisdictions:
            return False
        return not self.regions or bool({c.key, c.region} & self.regions)

    def text(self) -> str:
        parts = [f"{k}: [{', '.join(sorted(v))}]" for k, v in (
            ("countries", self.countries), ("jurisdictions", self.jurisdictions),
            ("regions", self.regions)) if v]
        return "stack residency (" + "; ".join(parts) + ")"


@dataclass(frozen=True)
class Candidate:
    target: str
    region: str
    country: str | None
    jurisdiction: str | None
    order: tuple[int, int]  # target order, region order: the deterministic tie-break

    @property
    def key(self) -> str:
        return f"{self.target}/{self.region}"

    def placement(self) -> Placement:
        return Placement(self.target, self.region, self.country, self.jurisdiction)

    def text(self) -> str:
        where = "/".join(x for x in (self.country, self.jurisdiction) if x) or "country unknown"
        return f"{self.key} ({where})"


@dataclass(frozen=True)
class Request:
    """What the solver needs of one resource."""

    address: str
    loc: Loc
    rules: tuple[Rule, ...] = ()  # its own, and those inherited from groups/nested stacks
    links: frozenset[str] = frozenset()  # addresses it refers to by id
    # the residencies of the nested templates it comes from, innermost first
    residencies: tuple[Residency, ...] = ()


@dataclass(frozen=True)
class Solution:
    placements: Mapping[str, Placement]
    why: Mapping[str, str]
    pinned: frozenset[str]
    diagnostics: tuple[Diagnostic, ...]


def candidates(targets: Mapping[str, Target],
               named: Iterable[tuple[str | None, str | None]] = ()) -> list[Candidate]:
    """Every (target, region) the project knows, in a stable order.

    A target whose catalog lists no regions (a private cloud that declares none)
    is open: any region a rule names for it is a candidate, with no country.
    """
    out = []
    for t_index, (name, target) in enumerate(targets.items()):
        if target.type == "local":
            continue  # cloudtmpl itself: only for local resources, never a cloud placement
        regions = target_regions(target)
        if not catalog_for(target).regions:
            for provider, region in named:
                if provider == name and region and region not in regions:
                    regions[region] = RegionInfo(name=region)
        for r_index, (region, info) in enumerate(regions.items()):
            out.append(Candidate(name, region, info.country, info.jurisdiction,
                                 (t_index, r_index)))
    return out


def _matches(rule: Rule, c: Candidate) -> bool:
    return ((rule.provider is None or rule.provider == c.target)
            and (rule.region is None or rule.region == c.region)
            and (rule.country is None or rule.country == c.country)
            and (rule.jurisdiction is None or rule.jurisdiction == c.jurisdiction))


def check_rule(rule: Rule, targets: Mapping[str, Target], pool: list[Candidate]
               ) -> list[Diagnostic]:
    """Diagnostics for names a rule uses that nothing knows."""
    diags = []
    if rule.provider and rule.provider not in targets:
        diags.append(Diagnostic("unknown-target", f"{rule.source}: unknown provider target "
                                f"{rule.provider!r}", rule.loc,
                                f"known targets: {', '.join(sorted(targets)) or '(none)'}"))
    if rule.region and not any(c.region == rule.region for c in pool
                               if rule.provider in (None, c.target)):
        offered = sorted({c.region for c in pool if rule.provider in (None, c.target)})
        diags.append(Diagnostic("unknown-region", f"{rule.source}: no target has a region "
                                f"{rule.region!r}" + (f" ({rule.provider})" if rule.provider
                                                      else ""), rule.loc,
                                f"regions: {', '.join(offered)}"))
    if rule.country and not is_country(rule.country):
        diags.append(Diagnostic("unknown-country", f"{rule.source}: {rule.country!r} is not an "
                                "ISO 3166 country code", rule.loc,
                                "use a two-letter code such as DE, NL, FR, US"))
    jurisdictions = {c.jurisdiction for c in pool if c.jurisdiction}
    if rule.jurisdiction and rule.jurisdiction not in jurisdictions and not is_country(
            rule.jurisdiction):
        diags.append(Diagnostic("unknown-jurisdiction", f"{rule.source}: unknown jurisdiction "
                                f"{rule.jurisdiction!r}", rule.loc,
                                f"jurisdictions the targets declare: "
                                f"{', '.join(sorted(jurisdictions))}"))
    return diags


def check_residency(res: Residency, pool: list[Candidate]) -> list[Diagnostic]:
    diags = []
    for code in sorted(res.countries):
        if not is_country(code):
            diags.append(Diagnostic("unknown-country", f"residency: {code!r} is not an ISO 3166 "
                                    "country code", res.loc,
                                    "use two-letter codes such as DE, NL, FR, US"))
    for region in sorted(res.regions):
        if not any(region in (c.key, c.region) for c in pool):
            diags.append(Diagnostic("unknown-region", f"residency: no target has a region "
                                    f"{region!r}", res.loc, "regions: " + ", ".join(
                                        sorted(c.key for c in pool))))
    return diags


def _components(requests: Mapping[str, Request]) -> list[list[str]]:
    """Groups of resources that must share a placement, in template order."""
    parent = {a: a for a in requests}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for address, req in requests.items():
        for other in req.links:
            if other in parent:
                parent[find(other)] = find(address)
    groups: dict[str, list[str]] = {}
    for address in requests:
        groups.setdefault(find(address), []).append(address)
    return list(groups.values())


def solve(
    requests: Mapping[str, Request],
    *,
    stack_rule: Rule | None,
    residency: Residency | None,
    options: PlacementOptions,
    require_target: bool = True,
) -> Solution:
    """Place every resource (pure: catalogs and targets in, placements out).

    Preferences, first match wins: a resource's own rule, the
    stack's ``placement`` default, ``--target``, ``default_target``.  Rules
    (resource rules and the stack residency) restrict the candidates; the
    preferences choose among those left; with no preference at all, the first
    allowed candidate in declaration order is taken (explained in ``why``).
    """
    targets = options.targets
    cli_target, cli_region = split_target(options.target)
    cli_rule = Rule("--target", NOWHERE, provider=cli_target, region=cli_region)
    rules = [r for q in requests.values() for r in q.rules] + ([stack_rule] if stack_rule else [])
    pool = candidates(targets, [(r.provider or (stack_rule.provider if stack_rule else None)
                                 or cli_target or options.default_target, r.region)
                                for r in [*rules, cli_rule]])
    diags: list[Diagnostic] = []
    for rule in [*rules, cli_rule]:
        diags.extend(check_rule(rule, targets, pool))
    if residency:
        diags.extend(check_residency(residency, pool))
    if diags:
        return Solution({}, {}, frozenset(), tuple(_unique(diags)))

    prefs: list[tuple[str, str | None, str | None]] = []  # (source, target, region)
    if stack_rule and (stack_rule.provider or stack_rule.region):
        prefs.append(("the stack's placement", stack_rule.provider, stack_rule.region))
    if cli_target:
        prefs.append(("--target", cli_target, cli_region))
    if options.default_target:
        prefs.append(("default_target in cloudtmpl.yaml", options.default_target, None))

    placements: dict[str, Placement] = {}
    why: dict[str, str] = {}
    for members in _components(requests):
        member_rules = list(dict.fromkeys(r for a in members for r in requests[a].rules))
        nested = [r for a in members for r in requests[a].residencies]
        allowed = [c for c in pool if all(_matches(r, c) for r in member_rules)
                   and (residency is None or residency.allows(c))
                   and all(n.allows(c) for n in nested)]
        head = requests[members[0]]

        if not allowed:
            diags.append(_conflict(members, requests, member_rules, residency, pool))
            continue
        choice, reason = _prefer(allowed, prefs, targets, member_rules)
        if choice is None:
            unconstrained = not member_rules and residency is None
            if unconstrained and require_target:
                if any(d.code in ("no-target", "no-region") for d in diags):
                    continue  # said once, at the first resource
                regionless = [t for _, t, r in prefs if t in targets and not r
                              and not any(c.target == t for c in pool)]
                if regionless:
                    t = regionless[0]
                    diags.append(Diagnostic(
                        "no-region", f"resource '{head.address}': no region chosen for target "
                        f"'{t}'", head.loc,
                        f"pass --target {t}/REGION, set 'region:' for {t} in cloudtmpl.yaml, "
                        "or add 'placement: {region: ...}' to the template"))
                    continue
                diags.append(Diagnostic(
                    "no-target", f"resource '{head.address}': no provider target chosen",
                    head.loc,
                    "pass --target sandbox-aws (or another target, optionally as "
                    "TARGET/REGION), set default_target in cloudtmpl.yaml, or add a "
                    "'placement: {provider: ...}' section to the template"))
                continue
            if unconstrained:
                continue  # validate without a target: nothing to place
            if prefs and not member_rules:
                # an explicit default that the residency forbids is an error, not a move
                source, t, r = prefs[0]
                diags.append(Diagnostic(
                    "residency-violation",
                    f"resource '{head.address}': {source} ({t or ''}{'/' + r if r else ''}) "
                    f"is outside the {residency.text() if residency else 'rules'}",
                    head.loc, "allowed: " + ", ".join(c.text() for c in allowed[:12])))
                continue
            choice = min(allowed, key=lambda c: c.order)
            reason = "the first allowed target/region in declaration order" + (
                f" ({prefs[0][0]} offers no region the rules allow)" if prefs else "")
        constraints = [r.text() for r in member_rules] + ([residency.text()] if residency else [])
        text = f"{choice.key}: {reason}"
        if constraints:
            text += "; satisfies " + ", ".join(constraints)
        for address in members:
            placements[address] = choice.placement()
            others = [m for m in members if m != address]
            why[address] = text + (f"; kept with {', '.join(others)} (they refer to each other "
                                   "by id)" if others else "")
    pinned = frozenset(a for a, q in requests.items() if any(r.pinned for r in q.rules))
    return Solution(placements, why, pinned, tuple(_unique(diags)))


def _prefer(allowed: list[Candidate], prefs: list[tuple[str, str | None, str | None]],
            targets: Mapping[str, Target], member_rules: list[Rule]
            ) -> tuple[Candidate | None, str]:
    explicit = [r for r in member_rules if r.provider or r.region]
    if explicit and len({(c.target, c.region) for c in allowed}) == 1:
        return allowed[0], f"named by {explicit[0].source}"
    for source, target, region in prefs:
        matching = [c for c in allowed if target in (None, c.target)
                    and region in (None, c.region)]
        if not matching and region and member_rules:
            # the resource's own rule overrides the default region, not the default target
            matching = [c for c in allowed if target in (None, c.target)]
        if matching:
            default = targets[matching[0].target].region if matching[0].target in targets else None
            best = min(matching, key=lambda c: (c.region != (region or default), c.order))
            return best, f"chosen by {source}"
    if explicit:
        best = min(allowed, key=lambda c: (c.region != targets[c.target].region, c.order))
        return best, f"named by {explicit[0].source}"
    return None, ""


def _conflict(members: list[str], requests: Mapping[str, Request], rules: list[Rule],
              residency: Residency | None, pool: list[Candidate]) -> Diagnostic:
    """Name the two rules that cannot both hold (or the rule the residency forbids)."""
    head = requests[members[0]]
    for i, a in enumerate(rules):
        alone = [c for c in pool if _matches(a, c)]
        if residency and not any(residency.allows(c) for c in alone):
            if any(c.country is None for c in alone) and (residency.countries
                                                          or residency.jurisdictions):
                hint = ("a region without a declared country cannot host a resource under a "
                        "residency rule: declare it in cloudtmpl.yaml, e.g. providers: "
                        f"{alone[0].target}: regions: {alone[0].region}: "
                        "{country: DE, jurisdiction: EU}")
            else:
                hint = "allowed: " + ", ".join(c.text() for c in pool if residency.allows(c))
            return Diagnostic("placement-conflict", f"{a.text()} conflicts with "
                              f"{residency.text()}", a.loc, hint)
        for b in rules[i + 1:]:
            if not any(_matches(a, c) and _matches(b, c) for c in pool):
                return Diagnostic(
                    "placement-conflict",
                    f"{a.text()} conflicts with {b.text()}: they must share a placement "
                    f"because {', '.join(members)} refer to each other by id",
                    b.loc, f"{a.source} allows: " + ", ".join(c.text() for c in alone[:8]))
    allowed = [c.text() for c in pool if residency is None or residency.allows(c)]
    return Diagnostic("placement-conflict",
                      f"resource '{head.address}': no target/region satisfies "
                      + ", ".join([r.text() for r in rules]
                                  + ([residency.text()] if residency else [])),
                      head.loc, "candidates: " + ", ".join(allowed[:12]))


def _unique(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[str, str]] = set()
    out = []
    for d in diags:
        if (d.code, d.message) not in seen:
            seen.add((d.code, d.message))
            out.append(d)
    return out
