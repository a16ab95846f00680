"""Catalog images found by filter: matching, the newest match, and the plan's use of it.

Pure logic (the filter, the newest selection, the translation through the plan's
lookups) with an in-memory adapter; the AWS adapter's DescribeImages against the
sandbox is tested in tests/integration/test_aws_adapter.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest

from cloudtmpl.catalog import Catalog, ImageFilter, _image_entry, newest_image
from cloudtmpl.desired import Natives, RefContext, catalog_choice, desired_spec, translate
from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.lookup import Lookups, check_choices
from cloudtmpl.model import Action, LiveResource, Placement, Target, spec_hash
from cloudtmpl.plan import Plan, make_plan
from cloudtmpl.providers.base import Choice
from cloudtmpl.resolve import ResolvedStack
from cloudtmpl.workflow import Session
from tests.unit.planning import discovery, stack

AL2023 = ImageFilter("al2023-ami-2023.*-kernel-6.1-x86_64", ("amazon",))


def image(id: str, name: str, created: str, owner_id: str = "137112412989",
          owner_alias: str = "amazon") -> dict[str, str]:
    return {"id": id, "name": name, "created": created, "owner_id": owner_id,
            "owner_alias": owner_alias}


def test_filter_matches_aws_wildcards_over_the_whole_name() -> None:
    assert AL2023.matches("al2023-ami-2023.12.20260930.0-kernel-6.1-x86_64", owner_alias="amazon")
    assert not AL2023.matches("al2023-ami-minimal-2023.12.0-kernel-6.1-x86_64", "", "amazon")
    assert not AL2023.matches("al2023-ami-2023.1-kernel-6.1-x86_64-extra", "", "amazon")
    assert not AL2023.matches("xal2023-ami-2023.1-kernel-6.1-x86_64", "", "amazon")
    one = ImageFilter("img-?")
    assert one.matches("img-a") and not one.matches("img-") and not one.matches("img-ab")
    # AWS's wildcards only: brackets and dots are literal, a backslash escapes
    assert ImageFilter("a[1].b").matches("a[1].b") and not ImageFilter("a[1].b").matches("a1xb")
    assert ImageFilter(r"a\*b").matches("a*b") and not ImageFilter(r"a\*b").matches("axb")
    assert ImageFilter(r"a\?").matches("a?") and not ImageFilter(r"a\?").matches("ab")


def test_filter_owner_by_id_or_alias() -> None:
    canonical = ImageFilter("ubuntu/*", ("099720109477",))
    assert canonical.matches("ubuntu/x", "099720109477", "")
    assert not canonical.matches("ubuntu/x", "123456789012", "amazon")
    assert AL2023.matches("al2023-ami-2023.1-kernel-6.1-x86_64", "137112412989", "amazon")
    assert not AL2023.matches("al2023-ami-2023.1-kernel-6.1-x86_64", "137112412989", "")
    assert ImageFilter("x", ("111", "amazon")).matches("x", "111", "")  # any of several
    assert ImageFilter("x").matches("x", "anyone", "")  # no owner: anyone's
    assert ImageFilter("x", ("self",)).matches("x", "999", "")  # the cloud knows "self"


def test_newest_creation_date_wins() -> None:
    images = [
        image("ami-old", "al2023-ami-2023.9.1-kernel-6.1-x86_64", "2025-01-01T00:00:00.000Z"),
        image("ami-new", "al2023-ami-2023.1.1-kernel-6.1-x86_64", "2026-03-01T10:00:00.000Z"),
        image("ami-mid", "al2023-ami-2023.5.1-kernel-6.1-x86_64", "2025-06-01T00:00:00.000Z"),
        # newer, but not matching: another kernel, another owner
        image("ami-612", "al2023-ami-2023.9.9-kernel-6.12-x86_64", "2027-01-01T00:00:00.000Z"),
        image("ami-fake", "al2023-ami-2023.9.9-kernel-6.1-x86_64", "2027-01-01T00:00:00.000Z",
              owner_id="666666666666", owner_alias=""),
    ]
    assert newest_image(AL2023, images) == "ami-new"
    assert newest_image(AL2023, images[3:]) is None
    assert newest_image(AL2023, []) is None


def test_equal_dates_go_to_the_greater_name_then_id() -> None:
    same = "2026-12-03T08:46:43.000Z"  # the AWS sandbox stamps its images alike
    amzn2 = ImageFilter("amzn2-ami-hvm-2.0.*-x86_64-gp2", ("amazon",))
    images = [image("ami-2026", "amzn2-ami-hvm-2.0.20260930.0-x86_64-gp2", same),
              image("ami-2018", "amzn2-ami-hvm-2.0.20180810-x86_64-gp2", same)]
    assert newest_image(amzn2, images) == "ami-2026"
    assert newest_image(amzn2, list(reversed(images))) == "ami-2026"
    twins = [image("ami-b", "amzn2-ami-hvm-2.0.1-x86_64-gp2", same),
             image("ami-a", "amzn2-ami-hvm-2.0.1-x86_64-gp2", same)]
    assert newest_image(amzn2, twins) == newest_image(amzn2, twins[::-1]) == "ami-b"


def test_catalog_entries_filter_per_region_and_plain_ids() -> None:
    assert _image_entry("al", {"owner": "amazon", "name": "al2023-*"}) == ImageFilter(
        "al2023-*", ("amazon",))
    assert _image_entry("u", {"owner": ["099720109477", "self"], "name": "u*"}) == ImageFilter(
        "u*", ("099720109477", "self"))
    assert _image_entry("u", {"name": "u*"}) == ImageFilter("u*")
    assert _image_entry("r", {"us-east-1": "ami-1", "eu-central-1": "ami-2"}) == {
        "us-east-1": "ami-1", "eu-central-1": "ami-2"}
    assert _image_entry("p", "ami-3") == "ami-3"
    for bad in ({"name": "x", "owners": "amazon"}, {"name": 3}, {"name": "x", "owner": [1]}):
        with pytest.raises(ValueError, match="a filter is"):
            _image_entry("bad", bad)


CATALOG = Catalog(name="t", type="aws", sizes={"small": "t3.small"},
                  images={"al": AL2023, "ubuntu": {"r1": "ami-1"}, "debian": "ami-2"})


def test_translate_keys_a_filter_by_its_abstract_name() -> None:
    where = Placement("t", "r1")
    assert catalog_choice("image", "al", CATALOG, "r1") == ("al", AL2023)
    assert catalog_choice("image", "ubuntu", CATALOG, "r1") == ("ami-1", "ami-1")
    assert catalog_choice("image", "ubuntu", CATALOG, "r2") == ("ubuntu", "ubuntu")
    assert catalog_choice("flavor", "small", CATALOG, "r1") == ("t3.small", "t3.small")
    natives = {("t", "r1", "image", "al"): "ami-al-new", ("t", "r1", "image", "ami-1"): "ami-1"}
    server = "Cloud::Compute::Server"
    assert translate(server, {"image": "al"}, CATALOG, where, natives)["image"] == "ami-al-new"
    assert translate(server, {"image": "ubuntu"}, CATALOG, where, natives)["image"] == "ami-1"
    assert translate(server, {"image": "debian"}, CATALOG, where, natives)["image"] == "ami-2"
    assert translate(server, {"image": "ami-9"}, CATALOG, where, natives)["image"] == "ami-9"


class Images:
    """An adapter that finds images by filter from a fixed list, counting requests."""

    def __init__(self, images: list[dict[str, str]]) -> None:
        self.images = images
        self.asked: list[Any] = []

    def lookup_choice(self, region: str, what: str, value: str) -> Choice:
        self.asked.append((region, what, value))
        known = {i["id"] for i in self.images}
        return Choice(value if what != "image" or value in known else None)

    def find_image(self, region: str, flt: ImageFilter) -> Choice:
        self.asked.append((region, "find", flt))
        return Choice(newest_image(flt, self.images))


def session(adapter: Any, catalog: Catalog = CATALOG) -> Session:
    return Session(project=cast(Any, None), store=cast(Any, None), stack="s",
                   targets={"t": Target(name="t", type="aws", region="r1")},
                   adapters={"t": adapter}, catalogs={"t": catalog})


TWO_SERVERS = """\
heat_template_version: 2021-04-16
parameters:
  image: {type: string, default: al}
placement: {provider: t, region: r1}
resources:
  a:
    type: Cloud::Compute::Server
    properties: {image: {get_param: image}, flavor: small}
  b:
    type: Cloud::Compute::Server
    properties: {image: {get_param: image}, flavor: small}
"""
AL_IMAGES = [image("ami-al-old", "al2023-ami-2023.1.0-kernel-6.1-x86_64", "2025-01-01T00:00:00Z"),
             image("ami-al-new", "al2023-ami-2023.2.0-kernel-6.1-x86_64", "2026-01-01T00:00:00Z")]


def applied(st: ResolvedStack, natives: Natives, **images: str) -> dict[str, LiveResource]:
    """The servers of ``st`` as an apply with ``natives`` left them, each on ``images``."""
    ctx = RefContext(st, lambda _name: None)
    out = {}
    for address, res in st.resources.items():
        spec = desired_spec(res, ctx, CATALOG, (), natives)
        out[address] = LiveResource(address, res.kind, f"i-{address}", Placement("t", "r1"),
                                    properties={**spec, "image": images[address]},
                                    spec_hash=spec_hash(spec))
    return out


def test_plan_resolves_a_filter_once_and_compares_the_resolved_id() -> None:
    adapter = Images(AL_IMAGES)
    st = stack(TWO_SERVERS)
    natives = check_choices(session(adapter), st)
    assert natives == {("t", "r1", "image", "al"): "ami-al-new",
                       ("t", "r1", "flavor", "t3.small"): "t3.small"}
    assert [a for a in adapter.asked if a[1] == "find"] == [("r1", "find", AL2023)]  # once

    plan = make_plan(st, discovery({}), {}, {"t": CATALOG}, state_serial=1, natives=natives)
    assert {d.name: d.new for c in plan.changes for d in c.diff if d.name == "image"} == {
        "image": "ami-al-new"}
    assert Plan.from_json(plan.to_json()).natives == natives  # a plan file keeps the id

    # live servers on the resolved image: nothing to do; on the older one: replaced
    live = applied(st, natives, a="ami-al-new", b="ami-al-new")
    same = make_plan(st, discovery(live), {}, {"t": CATALOG}, state_serial=1, natives=natives)
    assert {c.action for c in same.changes} == {Action.NOOP}
    older = applied(st, natives, a="ami-al-old", b="ami-al-new")
    moved = make_plan(st, discovery(older), {}, {"t": CATALOG}, state_serial=1, natives=natives)
    assert {c.address: c.action for c in moved.changes} == {"a": Action.REPLACE,
                                                            "b": Action.NOOP}


def test_a_filter_matching_nothing_names_it_and_offers_only_what_resolves() -> None:
    catalog = replace(CATALOG, images={**CATALOG.images, "gone": ImageFilter("gone-*", ("x",))})
    adapter = Images([*AL_IMAGES, image("ami-2", "debian", "2024-01-01T00:00:00Z")])
    with pytest.raises(DiagnosticError) as err:
        check_choices(session(adapter, catalog), stack(TWO_SERVERS, image="gone"))
    diags = err.value.diagnostics
    assert [d.code for d in diags] == ["unknown-image", "unknown-image"]
    assert diags[0].message == (
        "resource 'a': image 'gone' (the catalog's filter: name 'gone-*' owned by x) "
        "matches no image on target 't' in region r1")
    # al resolves (a filter), debian exists (an id), ubuntu's ami-1 does not, gone nothing
    assert diags[0].hint == "t offers: al, debian"
    assert sorted(a[2] if a[1] != "find" else a[2].name for a in adapter.asked
                  if a[1] in ("image", "find")) == sorted(
        ["gone-*", AL2023.name, "ami-1", "ami-2"])  # each asked once for both servers


def test_a_target_that_cannot_search_images_says_so() -> None:
    class NoFinder:
        def lookup_choice(self, region: str, what: str, value: str) -> Choice:
            return Choice(value if what == "flavor" else None)

    lookups = Lookups(session(NoFinder()))
    assert lookups.ask("t", "r1", "image", "al") == (("t", "r1", "image", "al"), Choice(None))
    assert lookups.missing("t", "r1", "image", "al") == (
        "image 'al' is a catalog filter (name 'al2023-ami-2023.*-kernel-6.1-x86_64' owned "
        "by amazon), which target 't' (aws) cannot search")
