"""What get_resource / get_attr read from live resources (RefContext): a random string is
referenced by its value; {get_attr: [r]} is the kind's attributes without show; a
path's missing step is null with one warning per place."""

from __future__ import annotations

import string
from typing import Any, cast

from cloudtmpl import functions
from cloudtmpl.desired import RefContext
from cloudtmpl.diagnostics import Loc
from cloudtmpl.model import LiveResource, Placement
from cloudtmpl.providers.local import random_string
from cloudtmpl.resources import RANDOM_STRING, SERVER
from cloudtmpl.sensitive import is_marked

WHERE = Placement("t", "r")
SRV = LiveResource("web", SERVER.kind, "i-1", WHERE, attributes={
    "networks": {"private": ["10.0.0.5"]}, "first_address": "10.0.0.5",
    "show": {"id": "i-1"}, "internal": 1})
PW = LiveResource("pw", RANDOM_STRING.kind, "s.pw", WHERE, attributes={"value": "Xy9!"})


def ctx() -> RefContext:
    lives = {"web": SRV, "pw": PW}
    return RefContext(cast(Any, None), lives.get)


def test_a_random_string_is_referenced_by_its_value_marked() -> None:
    value = ctx().resource_ref("pw")
    assert value == "Xy9!" and is_marked(value)
    assert ctx().resource_ref("web") == "i-1"


def test_all_attributes_are_the_kinds_without_show() -> None:
    assert ctx().resource_attrs("web") == {"networks": {"private": ["10.0.0.5"]},
                                           "first_address": "10.0.0.5"}


def test_a_missing_step_warns_once_per_place() -> None:
    c = ctx()
    loc = Loc("t.yaml", 4, 9)
    for _ in range(2):
        assert c.resource_attr_at("web", "networks", ("public", 0), loc) is None
    assert c.resource_attr_at("web", "networks", ("private", 0), loc) == "10.0.0.5"
    (w,) = c.warnings
    assert (w.code, w.loc, w.severity) == ("attribute-path-missing", loc, "warning")
    assert w.hint == "its keys: private"


def test_get_attr_nodes_carry_their_place_to_the_context() -> None:
    c = ctx()
    tree = functions.GetAttr(("web", "networks", "nope", 0), Loc("t.yaml", 2, 3))
    assert functions.evaluate(tree, c) is None
    (w,) = c.warnings
    assert w.loc == Loc("t.yaml", 2, 3)


def test_random_string_minimums() -> None:
    props = {"length": 12, "character_classes": [{"class": "digits", "min": 3},
                                                 {"class": "uppercase", "min": 2}],
             "character_sequences": [{"sequence": "!@", "min": 1}]}
    value = random_string(b"k" * 32, "s", "pw", props)
    assert len(value) == 12
    assert sum(c in string.digits for c in value) >= 3
    assert sum(c in string.ascii_uppercase for c in value) >= 2
    assert sum(c in "!@" for c in value) >= 1
    assert set(value) <= set(string.digits + string.ascii_uppercase + "!@")
