"""Stack names: the default derived from a template's stem, and an explicit -s."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.inputs import Inputs, stack_name
from cloudtmpl.model import STACK_NAME_RE, default_stack_name


@pytest.mark.parametrize(("stem", "name"), [
    ("quickstart", "quickstart"),            # a valid name is kept as it is
    ("web-", "web-"),
    ("web_tier_2", "web_tier_2"),
    ("WordPress_Native", "wordpress_native"),  # Heat's template names
    ("WordPress_2_Instances", "wordpress_2_instances"),
    ("servers.in.new.net", "servers-in-new-net"),
    ("my stack (copy)", "my-stack-copy"),
    ("__init", "init"),
    ("-x", "x"),
    ("Café-Tier", "cafe-tier"),
    ("a" * 62 + ".b", "a" * 62),
    ("x" * 80, "x" * 63),
])
def test_default_stack_name(stem: str, name: str) -> None:
    assert default_stack_name(stem) == name


def test_a_stem_with_nothing_usable_still_gets_a_stack_of_its_own() -> None:
    first, second = default_stack_name("日本"), default_stack_name("...")
    assert first.startswith("stack-") and second.startswith("stack-") and first != second
    assert default_stack_name("日本") == first  # deterministic


@given(st.text(max_size=100))
def test_every_stem_gives_a_valid_stable_name(stem: str) -> None:
    name = default_stack_name(stem)
    assert STACK_NAME_RE.match(name), name
    assert default_stack_name(name) == name


def test_stack_name_defaults_to_the_stem_and_checks_an_explicit_one() -> None:
    assert stack_name(Inputs(template="examples/heat/WordPress_Native.yaml")) == \
        "wordpress_native"
    assert stack_name(Inputs(template="WordPress_Native.yaml", stack="wp")) == "wp"
    with pytest.raises(DiagnosticError) as err:
        stack_name(Inputs(template="t.yaml", stack="WordPress.Native"))
    (diag,) = err.value.diagnostics
    assert diag.code == "invalid-stack-name" and "'WordPress.Native'" in diag.message
    assert diag.hint == "pass -s wordpress-native"
    with pytest.raises(DiagnosticError) as err:
        stack_name(Inputs())
    assert err.value.diagnostics[0].code == "no-stack"
