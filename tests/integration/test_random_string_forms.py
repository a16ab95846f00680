"""OS::Heat::RandomString's value in every form Heat allows, through the CLI: ``{get_attr:
[r, value]}``, ``{get_resource: r}`` (Heat references a RandomString by its value),
``{get_attr: [r]}`` (HOT 2015-10-15: the map of its attributes), passed through another
resource; sealed alike wherever it is written.  And what Heat's validate refuses, as
diagnostics with their place, changing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudtmpl.model import SEAL_RE
from tests.integration.clitools import invoke, write

pytestmark = pytest.mark.integration

TEMPLATE = """\
heat_template_version: 2015-10-15
resources:
  pw:
    type: OS::Heat::RandomString
    properties:
      length: 12
      character_classes: [{class: digits, min: 3}, {class: uppercase, min: 2}]
      character_sequences: [{sequence: "!@", min: 1}]
  copy:
    type: OS::Heat::Value
    properties:
      value: {get_resource: pw}
outputs:
  attr: {value: {get_attr: [pw, value]}}
  ref: {value: {get_resource: pw}}
  all: {value: {get_attr: [pw]}}
  copied: {value: {get_attr: [copy, value]}}
"""


def test_the_value_in_every_form(tmp_path: Path) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "r.yaml", TEMPLATE)
    r = invoke(tmp_path, "apply", "r.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    out = invoke(tmp_path, "outputs", "-s", "r", "--format", "json").json()
    assert SEAL_RE.match(out["attr"]), out  # a secret: never in clear text
    # one value whichever way it is read (equal values, equal seals); not the name
    assert out["ref"] == out["attr"] == out["copied"]
    # the map of its attributes holds the secret: sealed whole, as any such container
    assert SEAL_RE.match(out["all"]) and out["all"] != out["attr"]
    # unchanged on a second apply: the same value
    r = invoke(tmp_path, "apply", "r.yaml", "--yes")
    assert r.code == 0 and "No changes" in r.out, r.err + r.out
    assert invoke(tmp_path, "outputs", "-s", "r", "--format", "json").json() == out
    assert invoke(tmp_path, "destroy", "r.yaml", "--yes").code == 0


@pytest.mark.parametrize(("props", "needle", "message"), [
    ("length: 0", "length: 0", "length must be 1 to 512, not 0"),
    ("length: 513", "length: 513", "length must be 1 to 512, not 513"),
    ("length: 4\n      character_classes: [{class: digits, min: 3}]\n"
     "      character_sequences: [{sequence: ab, min: 2}]", "length: 4",
     "length 4 is smaller than the character classes' and sequences' minimums together (5)"),
    ("character_classes: [{class: digit}]", "class: digit",
     "unknown character class 'digit'"),
    ("character_classes: [{class: digits, min: 0}]", "min: 0",
     "character_classes[0] min must be 1 to 512, not 0"),
    ("character_sequences: [{min: 2}]", "{min: 2}", "character_sequences[0] needs a 'sequence'"),
    ("sequence: digits\n      character_classes: [{class: letters}]", "sequence: digits",
     "the deprecated 'sequence' cannot be used with 'character_classes'"),
])
def test_what_heat_refuses_is_a_diagnostic(tmp_path: Path, props: str, needle: str,
                                           message: str) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    text = ("heat_template_version: 2015-10-15\nresources:\n  pw:\n"
            "    type: OS::Heat::RandomString\n    properties:\n      " + props + "\n")
    write(tmp_path / "r.yaml", text)
    r = invoke(tmp_path, "validate", "r.yaml", "--format", "json")
    assert r.code == 1, r.err + r.out
    (d,) = r.json()["diagnostics"]
    (line,) = [n for n, t in enumerate(text.splitlines(), 1) if needle in t]
    assert (d["code"], d["line"], d["message"]) == (
        "invalid-random-string", line, f"resource 'pw': {message}"), d
    assert d["hint"]
    r = invoke(tmp_path, "apply", "r.yaml", "--yes")
    assert r.code == 1 and "invalid-random-string" in r.err + r.out
    assert invoke(tmp_path, "state", "list", "--format", "json").json() in ([], {"stacks": []})
