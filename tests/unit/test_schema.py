"""Schema: every jsonschema error becomes a located diagnostic with a stable code."""

from __future__ import annotations

import pytest

from cloudtmpl.diagnostics import Diagnostic, Loc
from cloudtmpl.loader import load_text
from cloudtmpl.schema import HOT_VERSIONS, validate_environment, validate_template


def check(text: str) -> list[Diagnostic]:
    return validate_template(load_text(text, "t.yaml"))


@pytest.mark.parametrize("version", HOT_VERSIONS)
def test_every_published_version_is_accepted(version: str) -> None:
    assert check(f"heat_template_version: {version}\n") == []


def test_full_valid_template() -> None:
    text = """\
heat_template_version: 2021-04-16
description: demo
placement: {provider: os-fra, region: RegionOne, residency: {countries: [DE]}}
parameter_groups:
  - {label: main, parameters: [size]}
parameters:
  size:
    type: number
    default: 1
    hidden: false
    label: Size
    immutable: false
    tags: [a]
    constraints:
      - {range: {min: 1, max: 10}, description: one to ten}
      - {modulo: {step: 2, offset: 1}}
      - {allowed_values: [1, 3]}
      - {length: {min: 1}}
      - {allowed_pattern: "[0-9]+"}
      - {custom_constraint: nova.flavor}
conditions:
  big: {equals: [{get_param: size}, 3]}
  always: true
resources:
  vol:
    type: Cloud::Block::Volume
    properties: {size: {get_param: size}}
    depends_on: other
    condition: big
    metadata: {a: 1}
    deletion_policy: Retain
    update_policy: {}
    placement: {country: DE, pinned: true}
  other:
    type: Cloud::Block::Volume
    depends_on: [vol]
    deletion_policy: delete
outputs:
  id: {value: {get_resource: vol}, description: the id, condition: big}
"""
    assert check(text) == []


def test_unknown_version_with_closest_hint() -> None:
    (d,) = check("heat_template_version: 2016-10-15\n")
    assert d.code == "unknown-template-version"
    assert d.loc == Loc("t.yaml", 1, 24)
    assert "did you mean '2016-10-14'?" in d.hint


def test_missing_version() -> None:
    (d,) = check("resources: {}\n")
    assert (d.code, d.loc) == ("missing-key", Loc("t.yaml", 1, 1))
    assert "heat_template_version" in d.message


def test_unknown_section_points_at_key_with_suggestion() -> None:
    (d,) = check("heat_template_version: wallaby\nresorces: {}\n")
    assert d.code == "unknown-section"
    assert d.loc == Loc("t.yaml", 2, 1)
    assert d.hint.startswith("did you mean 'resources'?")
    assert "allowed sections:" in d.hint


def test_every_error_is_reported_sorted() -> None:
    text = """\
heat_template_version: 2018-08-31
parameters:
  p: {type: strng, hiden: true}
  q: {}
  r: {type: number, constraints: [{range: {}}, {modulo: {step: 2}}, 3]}
resources:
  a:
    typ: X
    depends_on: 3
    properties: []
    placement: {provder: x}
    deletion_policy: Keep
outputs:
  o: 4
"""
    got = [(d.code, d.loc.line, d.loc.column) for d in check(text)]
    assert got == [
        ("unknown-parameter-type", 3, 13),
        ("unknown-key", 3, 20),
        ("missing-key", 4, 3),
        ("missing-key", 5, 43),  # range: {} -> at the empty mapping
        ("missing-key", 5, 49),  # modulo without offset -> at the 'modulo' key
        ("invalid-type", 5, 69),
        ("missing-key", 7, 3),
        ("unknown-key", 8, 5),
        ("invalid-type", 9, 17),
        ("invalid-type", 10, 17),
        ("unknown-key", 11, 17),
        ("invalid-value", 12, 22),
        ("invalid-type", 14, 6),
    ]


def test_messages_and_hints() -> None:
    diags = check("heat_template_version: rocky\nresources:\n  a: {type: X, typ: Y}\n")
    (d,) = diags
    assert d.message == "unknown key in resources.a: 'typ'"
    assert d.hint.startswith("did you mean 'type'?")
    (d,) = check("heat_template_version: rocky\nresources:\n  a: {type: X, depends_on: {}}\n")
    assert d.code == "invalid-type"
    assert d.message == ("resources.a.depends_on must be a resource name or a list of resource "
                         "names, not a mapping")
    (d,) = check("heat_template_version: rocky\nresources: []\n")
    assert (d.code, d.loc) == ("invalid-type", Loc("t.yaml", 2, 12))


def test_environment_schema() -> None:
    good = load_text("""\
parameters: {a: 1}
parameter_defaults: {b: 2}
resource_registry: {"My::Server": Cloud::Compute::Server}
parameter_merge_strategies: {a: merge}
event_sinks: []
encrypted_param_names: [a]
""", "env.yaml")
    assert validate_environment(good) == []
    bad = load_text("parameter: {a: 1}\nparameter_merge_strategies: {a: mix}\n", "env.yaml")
    got = [(d.code, d.loc.line, d.loc.column) for d in validate_environment(bad)]
    assert got == [("unknown-section", 1, 1), ("invalid-value", 2, 33)]
    assert validate_environment(bad)[0].hint.startswith("did you mean 'parameters'?")
