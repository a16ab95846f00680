"""get_attr paths walked as Heat's select_from_attribute walks them: null where a step
is not there, with what was missing for the warning."""

from __future__ import annotations

from cloudtmpl.attr_paths import CODE, missing_warning, select
from cloudtmpl.diagnostics import Loc
from cloudtmpl.sensitive import is_marked, mark

NETS = {"private": ["10.0.0.5", "10.0.0.6"], "abc-id": ["10.0.0.5", "10.0.0.6"]}


def test_a_path_that_is_there() -> None:
    assert select(NETS, ("private", 1)) == ("10.0.0.6", None)
    assert select(NETS, ("private", -1)) == ("10.0.0.6", None)  # Python's index, as Heat
    assert select("abc", (0,)) == ("a", None)  # a string is a sequence in Heat too
    assert select(NETS, ()) == (NETS, None)


def test_each_way_a_path_is_not_there_is_null() -> None:
    value, miss = select(NETS, ("public", 0))
    assert value is None and miss is not None
    assert (miss.found, miss.step, miss.offers) == ((), "public", "its keys: abc-id, private")
    value, miss = select(NETS, ("private", 2))
    assert value is None and miss is not None and miss.offers == "its indexes: 0 to 1"
    assert miss.found == ("private",)
    value, miss = select(NETS, ("private", "0"))  # a key into a list
    assert value is None and miss is not None and "indexes, not keys" in miss.why
    value, miss = select({"a": None}, ("a", "b"))
    assert value is None and miss is not None and "null" in miss.why
    value, miss = select(NETS, (True,))
    assert value is None and miss is not None


def test_a_secrets_keys_are_not_listed_and_its_parts_stay_marked() -> None:
    secret = mark({"k": "v"})
    value, miss = select(secret, ("nope",))
    assert value is None and miss is not None and miss.offers == ""
    value, miss = select(secret, ("k",))
    assert value == "v" and miss is None and is_marked(value)


def test_the_warning() -> None:
    _, miss = select(NETS, ("private", 5))
    assert miss is not None
    w = missing_warning("db", "networks", ("private", 5), miss, Loc("t.yaml", 3, 7))
    assert (w.code, w.severity, w.loc) == (CODE, "warning", Loc("t.yaml", 3, 7))
    assert w.message == ("get_attr: [db, networks, private, 5]: networks[private] has no "
                         "5 (the list has no such index); the value is null, as Heat "
                         "resolves it")
    assert w.hint == "its indexes: 0 to 1"
