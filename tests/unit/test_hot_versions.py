"""Which functions each HOT version has (Heat's template classes and HOT specification)."""

from __future__ import annotations

from typing import Any

import pytest

from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.functions import CONDITION_FUNCTIONS, FUNCTIONS, SINCE, available
from cloudtmpl.loader import load_text
from cloudtmpl.model import Target
from cloudtmpl.resolve import ResolveOptions, resolve
from cloudtmpl.schema import HOT_DATES, HOT_RELEASES, HOT_VERSIONS, canonical_version

BASE = {"get_attr", "get_file", "get_param", "get_resource", "list_join", "str_replace",
        "resource_facade"}
CFN = {"Fn::GetAZs", "Fn::Join", "Fn::Split", "Fn::Replace", "Fn::Base64",
       "Fn::MemberListToMap", "Fn::ResourceFacade", "Fn::Select", "Ref"}
PIKE = {"digest", "filter", "get_attr", "get_file", "get_param", "get_resource", "list_join",
        "make_url", "list_concat", "list_concat_unique", "contains", "map_merge",
        "map_replace", "repeat", "resource_facade", "str_replace", "str_replace_strict",
        "str_replace_vstrict", "str_split", "yaql", "if"}

#: The spec's "complete list of supported functions" per version.
EXPECTED: dict[str, set[str]] = {
    "2013-05-23": BASE | CFN,
    "2014-10-16": BASE | {"Fn::Select"},
    "2015-04-30": BASE | {"Fn::Select", "repeat", "digest"},
    "2015-10-15": BASE | {"repeat", "digest", "str_split"},
    "2016-04-08": BASE | {"repeat", "digest", "str_split", "map_merge"},
    "2016-10-14": BASE | {"repeat", "digest", "str_split", "map_merge", "map_replace",
                          "yaql", "if"},
    "2017-02-24": BASE | {"repeat", "digest", "str_split", "map_merge", "map_replace",
                          "yaql", "if", "filter", "str_replace_strict"},
    "2017-09-01": PIKE,
    "2018-03-02": PIKE,
    "2018-08-31": PIKE,
    "2021-04-16": PIKE,
}
CONDITIONS_NEWTON = {"equals", "get_param", "not", "and", "or"}
EXPECTED_CONDITIONS: dict[str, set[str]] = {
    **{v: set() for v in HOT_DATES if v < "2016-10-14"},
    "2016-10-14": CONDITIONS_NEWTON, "2017-02-24": CONDITIONS_NEWTON,
    **{v: CONDITIONS_NEWTON | {"yaql", "contains"} for v in HOT_DATES if v >= "2017-09-01"},
}


def test_versions_and_release_names() -> None:
    assert HOT_DATES[0] == "2013-05-23" and HOT_DATES[-1] == "2021-04-16"
    assert HOT_RELEASES == {"newton": "2016-10-14", "ocata": "2017-02-24", "pike": "2017-09-01",
                            "queens": "2018-03-02", "rocky": "2018-08-31",
                            "wallaby": "2021-04-16"}
    assert set(HOT_VERSIONS) == set(HOT_DATES) | set(HOT_RELEASES)
    assert canonical_version("pike") == "2017-09-01"
    assert canonical_version("2015-10-15") == "2015-10-15"
    assert canonical_version("2015-10-16") is None and canonical_version(20151015) is None


@pytest.mark.parametrize("version", HOT_DATES)
def test_function_table_per_version(version: str) -> None:
    assert set(FUNCTIONS[version]) == EXPECTED[version]
    assert set(CONDITION_FUNCTIONS[version]) == EXPECTED_CONDITIONS[version]


@pytest.mark.parametrize(("name", "date"), sorted(HOT_RELEASES.items()))
def test_release_names_have_their_dates_functions(name: str, date: str) -> None:
    for fn in EXPECTED[date]:
        assert available(fn, name) and available(fn, date)
    for fn in PIKE - EXPECTED[date]:
        assert not available(fn, name)


def test_first_versions() -> None:
    assert {k: SINCE[k] for k in ("repeat", "digest", "str_split", "map_merge", "map_replace",
                                  "yaql", "if", "equals", "filter", "str_replace_strict",
                                  "make_url", "list_concat", "contains",
                                  "str_replace_vstrict")} == {
        "repeat": "2015-04-30", "digest": "2015-04-30", "str_split": "2015-10-15",
        "map_merge": "2016-04-08", "map_replace": "2016-10-14", "yaql": "2016-10-14",
        "if": "2016-10-14", "equals": "2016-10-14", "filter": "2017-02-24",
        "str_replace_strict": "2017-02-24", "make_url": "2017-09-01",
        "list_concat": "2017-09-01", "contains": "2017-09-01",
        "str_replace_vstrict": "2017-09-01"}


# ------------------------------------------------------------------ through resolve

TARGETS = {"sandbox-aws": Target("sandbox-aws", "aws", "us-east-1")}


def resolve_text(version: str, body: str, **kw: Any) -> Any:
    doc = load_text(f"heat_template_version: {version}\n" + body, "t.yaml")
    return resolve(doc, ResolveOptions(stack="s", target="sandbox-aws", targets=TARGETS, **kw))


def codes(version: str, body: str) -> list[tuple[str, int, int, str]]:
    with pytest.raises(DiagnosticError) as exc:
        resolve_text(version, body)
    return [(d.code, d.loc.line, d.loc.column, d.hint) for d in exc.value.diagnostics]


KEYPAIR = "resources:\n  k: {type: Cloud::Compute::KeyPair}\n"


@pytest.mark.parametrize("version", ["2016-04-08", "2015-10-15"])
def test_function_of_a_later_version_is_reported_with_its_version(version: str) -> None:
    body = KEYPAIR + "outputs:\n  o: {value: {map_replace: [{a: b}, {keys: {a: c}}]}}\n"
    ((code, line, col, hint),) = codes(version, body)
    assert (code, line, col) == ("function-not-available", 5, 15)
    assert hint.startswith("map_replace was introduced in HOT 2016-10-14 (newton)")


@pytest.mark.parametrize("version", ["newton", "2016-10-14", "wallaby"])
def test_function_available_by_name_and_date(version: str) -> None:
    body = KEYPAIR + "outputs:\n  o: {value: {map_replace: [{a: b}, {keys: {a: c}}]}}\n"
    assert resolve_text(version, body).outputs["o"].value == {"c": "b"}


def test_template_features_of_later_versions() -> None:
    body = """\
parameters:
  n: {type: number, default: 3, tags: [x], constraints: [{modulo: {step: 2, offset: 1}}]}
conditions:
  c: true
resources:
  k: {type: Cloud::Compute::KeyPair, condition: c, deletion_policy: retain}
"""
    found = [(c, line, col, hint.split(" (")[0]) for c, line, col, hint in
             codes("2015-10-15", body)]
    need = "declare heat_template_version: "
    assert found == [
        ("feature-not-available", 3, 33, need + "2018-03-02"),  # parameter tags
        ("feature-not-available", 3, 59, need + "2017-02-24"),  # modulo
        ("feature-not-available", 4, 1, need + "2016-10-14"),  # conditions
        ("feature-not-available", 7, 38, need + "2016-10-14"),  # a resource's condition
        ("feature-not-available", 7, 69, need + "2016-10-14")]  # lowercase deletion_policy
    assert resolve_text("queens", body).resources["k"].deletion_policy == "Retain"


def test_if_two_arguments_only_in_wallaby() -> None:
    body = """\
parameters:
  big: {type: boolean, default: false}
conditions:
  is_big: {get_param: big}
resources:
  v:
    type: Cloud::Block::Volume
    properties:
      size: 1
      volume_type: {if: [is_big, ssd]}
"""
    assert "volume_type" not in resolve_text("wallaby", body).resources["v"].properties
    assert resolve_text("wallaby", body, params={"big": "true"}).resources[
        "v"].properties["volume_type"] == "ssd"
    assert [c for c, *_ in codes("rocky", body)] == ["function-args"]
