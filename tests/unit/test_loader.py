"""Loader: plain data, 1-based locations of values and keys, and its diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudtmpl.diagnostics import DiagnosticError, Loc
from cloudtmpl.loader import load_file, load_text

TEXT = """\
heat_template_version: 2016-10-14
resources:
  web:
    type: Cloud::Compute::Server
    properties: {image: x, ports: [1, 2.5, true, null]}
"""


def codes(exc: pytest.ExceptionInfo[DiagnosticError]) -> list[str]:
    return [d.code for d in exc.value.diagnostics]


def test_plain_data_and_dates_stay_strings() -> None:
    doc = load_text(TEXT, "t.yaml")
    assert doc.data == {
        "heat_template_version": "2016-10-14",
        "resources": {"web": {"type": "Cloud::Compute::Server",
                              "properties": {"image": "x", "ports": [1, 2.5, True, None]}}},
    }
    assert doc.file == "t.yaml" and doc.text == TEXT


def test_value_and_key_locations() -> None:
    doc = load_text(TEXT, "t.yaml")
    assert doc.loc(("heat_template_version",)) == Loc("t.yaml", 1, 24)
    assert doc.key_loc(("resources", "web")) == Loc("t.yaml", 3, 3)
    assert doc.loc(("resources", "web", "type")) == Loc("t.yaml", 4, 11)
    assert doc.key_loc(("resources", "web", "type")) == Loc("t.yaml", 4, 5)
    assert doc.loc(("resources", "web", "properties", "ports", 1)) == Loc("t.yaml", 5, 39)
    assert str(doc.loc(("resources", "web", "properties", "image"))) == "t.yaml:5:25"


def test_loc_falls_back_to_nearest_ancestor() -> None:
    doc = load_text(TEXT, "t.yaml")
    assert doc.loc(("resources", "web", "nope", 3)) == Loc("t.yaml", 4, 5)
    assert doc.key_loc(("resources", "nope")) == doc.loc(("resources",))
    assert doc.get(("resources", "web", "properties", "ports", 0)) == 1
    assert doc.get(("resources", "zz"), "dflt") == "dflt"


def test_malformed_yaml_reports_parser_position() -> None:
    with pytest.raises(DiagnosticError) as exc:
        load_text("a: [1, 2\nb: 3\n", "bad.yaml")
    (d,) = exc.value.diagnostics
    assert d.code == "yaml-syntax"
    assert d.loc.file == "bad.yaml" and d.loc.line == 2 and d.loc.column == 2
    assert d.hint


def test_tab_indentation_hint() -> None:
    with pytest.raises(DiagnosticError) as exc:
        load_text("a:\n\tb: 1\n", "tab.yaml")
    assert codes(exc) == ["yaml-syntax"]
    assert "tabs" in exc.value.diagnostics[0].hint
    assert exc.value.diagnostics[0].loc == Loc("tab.yaml", 2, 1)


def test_duplicate_keys_all_reported_at_the_key() -> None:
    with pytest.raises(DiagnosticError) as exc:
        load_text("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "dup.yaml")
    assert codes(exc) == ["duplicate-key", "duplicate-key"]
    assert [d.loc for d in exc.value.diagnostics] == [Loc("dup.yaml", 4, 3), Loc("dup.yaml", 5, 1)]
    assert "first defined at line 1" in exc.value.diagnostics[1].message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "", "# only a comment\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    with pytest.raises(DiagnosticError) as exc:
        load_text(text, "x.yaml")
    assert codes(exc) == ["not-a-mapping"]


def test_custom_tag_and_multiple_documents() -> None:
    with pytest.raises(DiagnosticError) as exc:
        load_text("a: !include other.yaml\n", "t.yaml")
    assert codes(exc) == ["yaml-syntax"]
    assert exc.value.diagnostics[0].loc == Loc("t.yaml", 1, 4)
    with pytest.raises(DiagnosticError) as exc:
        load_text("a: 1\n---\nb: 2\n", "t.yaml")
    assert codes(exc) == ["yaml-syntax"]


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(TEXT)
    doc = load_file(str(path))
    assert doc.file == str(path)
    assert doc.loc(("resources",)).line == 3
    with pytest.raises(DiagnosticError) as exc:
        load_file(str(tmp_path / "missing.yaml"))
    assert codes(exc) == ["file-not-found"]
    with pytest.raises(DiagnosticError) as exc:
        load_file(str(tmp_path))
    assert codes(exc) == ["file-not-found"]


def test_aliases_are_expanded() -> None:
    doc = load_text("a: &x {k: 1}\nb: *x\n", "t.yaml")
    assert doc.data == {"a": {"k": 1}, "b": {"k": 1}}
