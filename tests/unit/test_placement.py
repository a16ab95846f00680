"""The residency solver: pure rules in, one (target, region) per resource out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloudtmpl.config import SANDBOX_TARGETS
from cloudtmpl.diagnostics import Loc
from cloudtmpl.model import Placement, Target
from cloudtmpl.placement import Request, Residency, Rule, Solution, solve

TARGETS: dict[str, Target] = {
    **SANDBOX_TARGETS,
    # a private OpenStack that declares its regions' countries in cloudtmpl.yaml
    "os-ber": Target("os-ber", "openstack", "ber-1", options={"regions": {
        "ber-1": {"country": "DE", "jurisdiction": "EU"},
        "muc-1": {"country": "DE", "jurisdiction": "EU"}}}),
    # one that does not
    "os-lab": Target("os-lab", "openstack", "lab-1"),
}


@dataclass(frozen=True)
class Opts:
    target: str | None = None
    default_target: str | None = None
    targets: dict[str, Target] = field(default_factory=lambda: TARGETS)


def loc(line: int) -> Loc:
    return Loc("t.yaml", line, 3)


def req(address: str, line: int = 1, links: tuple[str, ...] = (), **rule: Any) -> Request:
    pinned = bool(rule.pop("pinned", False))
    r = Rule(f"resource '{address}' placement", loc(line), pinned=pinned, **rule)
    return Request(address, loc(line), (r,) if (rule or pinned) else (), frozenset(links))


def run(*requests: Request, stack: Rule | None = None, residency: Residency | None = None,
        **opts: Any) -> Solution:
    return solve({r.address: r for r in requests}, stack_rule=stack, residency=residency,
                 options=Opts(**opts))


def at(solution: Solution, address: str) -> tuple[str, str]:
    p = solution.placements[address]
    return p.target, p.region


def test_first_match_wins_without_rules() -> None:
    s = run(req("a"), target="sandbox-aws")
    assert s.diagnostics == ()
    assert s.placements["a"] == Placement("sandbox-aws", "us-east-1", "US", "US")
    assert "chosen by --target" in s.why["a"]
    s = run(req("a"), stack=Rule("stack placement", loc(1), provider="sandbox-openstack",
                                 region="nl-ams-1"), target="sandbox-aws")
    assert at(s, "a") == ("sandbox-openstack", "nl-ams-1")
    assert run(req("a"), default_target="os-ber").placements["a"].region == "ber-1"


def test_country_rule_picks_a_region_of_the_preferred_target() -> None:
    s = run(req("db", country="DE"), target="sandbox-aws")
    assert at(s, "db") == ("sandbox-aws", "eu-central-1")
    s = run(req("db", country="NL"), target="sandbox-aws")  # AWS has no NL region here
    assert at(s, "db") == ("sandbox-openstack", "nl-ams-1")
    assert "the first allowed target/region" in s.why["db"] or "country=NL" in s.why["db"]


def test_jurisdiction_and_explicit_regions_residency() -> None:
    eu = Residency(loc(2), jurisdictions=frozenset({"EU"}))
    s = run(req("a"), req("b", provider="os-ber"), residency=eu, target="sandbox-aws")
    assert at(s, "a") == ("sandbox-aws", "eu-central-1")
    assert at(s, "b") == ("os-ber", "ber-1")
    only = Residency(loc(2), regions=frozenset({"sandbox-openstack/nl-ams-1", "muc-1"}))
    s = run(req("a", provider="os-ber"), req("b"), residency=only, target="sandbox-openstack")
    assert at(s, "a") == ("os-ber", "muc-1")
    assert at(s, "b") == ("sandbox-openstack", "nl-ams-1")


def test_explicit_default_outside_the_residency_is_an_error_not_a_move() -> None:
    de = Residency(loc(2), countries=frozenset({"DE"}))
    s = run(req("a", 5), residency=de, target="sandbox-aws/us-east-1")
    (d,) = s.diagnostics
    assert d.code == "residency-violation" and d.loc == loc(5)
    assert "--target (sandbox-aws/us-east-1)" in d.message and "countries: [DE]" in d.message
    assert "sandbox-aws/eu-central-1 (DE/EU)" in d.hint


def test_co_location_follows_references() -> None:
    s = run(req("vol", 1, country="NL"), req("srv", 2), req("att", 3, links=("vol", "srv")),
            req("other", 4), target="sandbox-aws")
    assert at(s, "vol") == at(s, "srv") == at(s, "att") == ("sandbox-openstack", "nl-ams-1")
    assert at(s, "other") == ("sandbox-aws", "us-east-1")
    assert "kept with" in s.why["srv"]


def test_conflicting_rules_name_both_resources_and_rules() -> None:
    s = run(req("vol", 3, country="DE"), req("srv", 7, provider="sandbox-aws",
                                             region="us-east-1"),
            req("att", 9, links=("vol", "srv")), target="sandbox-aws")
    (d,) = s.diagnostics
    assert d.code == "placement-conflict"
    assert "resource 'vol' placement (country=DE)" in d.message
    assert "resource 'srv' placement (provider=sandbox-aws, region=us-east-1)" in d.message
    assert "refer to each other by id" in d.message
    assert d.loc == loc(7)


def test_rule_against_residency_and_undeclared_country() -> None:
    de = Residency(loc(2), countries=frozenset({"DE"}))
    (d,) = run(req("a", 4, region="nl-ams-1"), residency=de, target="sandbox-aws").diagnostics
    assert d.code == "placement-conflict" and "stack residency (countries: [DE])" in d.message
    assert "allowed:" in d.hint
    (d,) = run(req("a", 4, provider="os-lab"), residency=de).diagnostics
    assert d.code == "placement-conflict"
    assert "declare it in cloudtmpl.yaml" in d.hint and "os-lab" in d.hint


def test_bad_names_are_diagnostics_with_candidates() -> None:
    s = run(req("a", 1, country="XX"), req("b", 2, region="mars-1"), req("c", 3, provider="nope"),
            target="sandbox-aws")
    codes = {d.code: d for d in s.diagnostics}
    assert set(codes) == {"unknown-country", "unknown-region", "unknown-target"}
    assert codes["unknown-region"].loc == loc(2) and "eu-central-1" in codes[
        "unknown-region"].hint
    s = run(req("a"), residency=Residency(loc(2), countries=frozenset({"QQ"})))
    assert [d.code for d in s.diagnostics] == ["unknown-country"]


def test_open_private_cloud_accepts_named_regions_without_country() -> None:
    s = run(req("a", provider="os-lab", region="lab-7"))
    assert s.placements["a"] == Placement("os-lab", "lab-7", None, None)


def test_no_target_is_said_once_and_pinned_is_recorded() -> None:
    s = run(req("a", 1), req("b", 2))
    assert [(d.code, d.loc) for d in s.diagnostics] == [("no-target", loc(1))]
    s = run(req("a", pinned=True, country="DE"), target="sandbox-aws")
    assert s.pinned == frozenset({"a"})


def test_solution_is_deterministic() -> None:
    reqs = [req(f"r{i}", i, country="DE" if i % 2 else None) for i in range(30)]
    first = run(*reqs, target="sandbox-openstack")
    assert all(run(*reqs, target="sandbox-openstack") == first for _ in range(3))
