"""A template's placement, read for the solver (:mod:`cloudtmpl.placement`): the
stack's and each resource's ``placement:`` rules and residency, one request per
resource, and every resource placed at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cloudtmpl.compose import Composite, expand_deps
from cloudtmpl.functions import GetAttr, GetResource, walk
from cloudtmpl.loader import Path
from cloudtmpl.model import DesiredResource, Placement
from cloudtmpl.placement import Request, Residency, Rule, solve
from cloudtmpl.resolve.scope import Scope
from cloudtmpl.resources import LOCAL_TARGET, TYPES


def rule(scope: Scope, path: Path, source: str) -> Rule | None:
    """The placement rule written at ``path`` (None when it sets nothing)."""
    ext = scope.doc.get(path)
    if not isinstance(ext, Mapping):
        return None

    def text(key: str) -> str | None:
        value = ext.get(key)
        return str(value) if isinstance(value, (str, int)) and value != "" else None

    country, jurisdiction = text("country"), text("jurisdiction")
    if not any(text(k) for k in ("provider", "region", "country", "jurisdiction")) \
            and ext.get("pinned") is not True:
        return None  # e.g. only a group's spread: no rule of its own
    return Rule(source=source, loc=scope.doc.key_loc(path), provider=text("provider"),
                region=text("region"), country=country.upper() if country else None,
                jurisdiction=jurisdiction.upper() if jurisdiction else None,
                pinned=ext.get("pinned") is True)


def stack_residency(scope: Scope) -> Residency | None:
    """The template's ``placement: {residency: ...}``."""
    raw = scope.doc.get(("placement", "residency"))
    if not isinstance(raw, Mapping):
        return None

    def codes(key: str) -> frozenset[str]:
        items = raw.get(key)
        items = items if isinstance(items, list) else [items] if items else []
        return frozenset(str(i).upper() if key != "regions" else str(i) for i in items)

    return Residency(loc=scope.doc.key_loc(("placement", "residency")),
                     countries=codes("countries"),
                     jurisdictions=codes("jurisdictions"), regions=codes("regions"))


#: Properties whose ``get_attr`` of another resource ties the two together as an id
#: does: a pool member's address must be on the balancer's own network, so the server
#: it names is on the same cloud and region.  (Elsewhere an attribute may cross
#: clouds on purpose: a web server's user data may carry another cloud's address.)
LINKING_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {"Cloud::LB::PoolMember": ("address",)}


def request(scope: Scope, address: str, rpath: Path, props: Any,
            inherited: tuple[Rule, ...] = (), kind: str = "") -> Request:
    """What the placement solver needs of one resource: its rules, and the resources it
    refers to by id (or by an attribute that ties it as an id does)."""
    own = rule(scope, (*rpath, "placement"), f"resource '{address}' placement")
    links = {n.resource for n in walk(props) if isinstance(n, GetResource)}
    if isinstance(props, Mapping):
        for prop in LINKING_ATTRIBUTES.get(kind, ()):
            links |= {n.resource for n in walk(props.get(prop)) if isinstance(n, GetAttr)}
    return Request(
        address=address,
        loc=scope.doc.key_loc(rpath),
        rules=(*inherited, *((own,) if own else ())),
        links=frozenset(links),
    )


def relink(requests: Mapping[str, Request], composites: Mapping[str, Composite]
           ) -> dict[str, Request]:
    """Links to composites become links to everything they stand for."""
    return {a: replace(q, links=frozenset(expand_deps(set(q.links), composites)))
            for a, q in requests.items()}


def place_all(scope: Scope, resources: dict[str, DesiredResource],
              requests: Mapping[str, Request]
              ) -> tuple[dict[str, DesiredResource], Residency | None]:
    """Every resource's placement from the residency solver (one pass, co-located),
    and the stack's residency."""
    local = {a for a, r in resources.items() if r.kind in TYPES and TYPES[r.kind].local}
    asked = {a: q for a, q in requests.items() if a in resources and a not in local}
    stack_rule = rule(scope, ("placement",), "stack placement")
    residency = stack_residency(scope)
    solution = solve(asked, stack_rule=stack_rule, residency=residency,
                     options=scope.options, require_target=scope.options.mode == "plan")
    scope.diags.extend(solution.diagnostics)
    placed = {
        name: replace(res, placement=solution.placements.get(name, Placement("", "")),
                      why=solution.why.get(name, ""), pinned=name in solution.pinned)
        if name not in local else replace(
            res, placement=Placement(LOCAL_TARGET, LOCAL_TARGET),
            why="computed by cloudtmpl itself: no cloud")
        for name, res in resources.items()
    }
    return placed, residency
