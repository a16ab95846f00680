"""Resource names: the rule validate enforces, and cloud names that never collide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudtmpl.config import SANDBOX_TARGETS, load_project
from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.loader import load_file, load_text
from cloudtmpl.model import (
    ADDRESS_RE,
    MAX_ADDRESS,
    address_from_name,
    physical_name,
)
from cloudtmpl.names import name_problem
from cloudtmpl.providers.aws.lb import lb_name
from cloudtmpl.providers.aws.storage import bucket_name
from cloudtmpl.resolve import ResolveOptions, resolve
from cloudtmpl.workflow import file_reader

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*REPO.glob("examples/**/*.yaml"), *REPO.glob("tests/corpus/*.yaml"),
                  *REPO.glob("templates/*.yaml")])


def before(stack: str, address: str) -> str:
    """physical_name as it was before names were checked (it collapsed what it changed)."""
    return f"{stack}." + re.sub(r"[^A-Za-z0-9_.-]", "-", address)


def _template(path: Path) -> bool:
    text = path.read_text()
    return "heat_template_version" in text and not path.name.endswith(".env.yaml")


@pytest.mark.parametrize("path", [p for p in SHIPPED if _template(p)],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_templates_keep_their_physical_names(path: Path) -> None:
    env = path.with_name(path.stem + ".env.yaml")
    envs = (load_file(str(env)),) if env.exists() else ()
    stack = resolve(load_file(str(path)),
                    ResolveOptions(stack="shop", mode="validate", target="sandbox-aws",
                                   targets=load_project(path.parent).targets,
                                   environments=envs,
                                   read_file=file_reader(str(path), {})))
    assert stack.resources
    for address in stack.resources:
        assert ADDRESS_RE.fullmatch(address), address
        assert physical_name("shop", address) == before("shop", address) == f"shop.{address}"
        assert address_from_name("shop", physical_name("shop", address)) == address


def test_the_quickstart_names_are_pinned() -> None:
    path = REPO / "examples" / "quickstart" / "quickstart.yaml"
    stack = resolve(load_file(str(path)), ResolveOptions(
        stack="stack", mode="validate", target="sandbox-aws", targets=SANDBOX_TARGETS))
    names = {physical_name("stack", a) for a in stack.resources}
    assert {"stack.key", "stack.web1", "stack.web2_ip", "stack.data_attachment"} <= names


def resolve_text(text: str) -> DiagnosticError:
    with pytest.raises(DiagnosticError) as exc:
        resolve(load_text(text, "t.yaml"), ResolveOptions(
            stack="coll", mode="validate", target="sandbox-aws", targets=SANDBOX_TARGETS))
    return exc.value


def test_names_that_used_to_collapse_into_one_are_refused_one_diagnostic_each() -> None:
    err = resolve_text("heat_template_version: 2021-04-16\nresources:\n"
                       '  "a/b": {type: Cloud::Compute::KeyPair}\n'
                       '  "a-b": {type: Cloud::Compute::KeyPair}\n'
                       '  "a;b": {type: Cloud::Compute::KeyPair}\n')
    assert [(d.code, d.loc.line, d.loc.column) for d in err.diagnostics] == [
        ("invalid-resource-name", 3, 3), ("invalid-resource-name", 5, 3)]
    assert "'/'" in err.diagnostics[0].message and "Heat refuses" in err.diagnostics[0].message
    assert "';'" in err.diagnostics[1].message
    assert all(d.hint.startswith("rename it, e.g. 'a_b'") for d in err.diagnostics)


def test_control_characters_in_names_are_refused_and_shown_escaped() -> None:
    err = resolve_text("heat_template_version: 2021-04-16\nresources:\n"
                       '  "k\\0ey": {type: Cloud::Compute::KeyPair}\n'
                       '  "new\\nline": {type: Cloud::Compute::KeyPair}\n'
                       '  "t\\tab": {type: Cloud::Compute::KeyPair}\n'
                       "  fine: {type: Cloud::Compute::KeyPair}\n")
    assert [(d.code, d.loc.line) for d in err.diagnostics] == [
        ("invalid-resource-name", 3), ("invalid-resource-name", 4),
        ("invalid-resource-name", 5)]
    text = "\n".join(str(d) for d in err.diagnostics)
    assert "\0" not in text and "\t" not in text and "new\nline" not in text
    assert "U+0000" in text and "U+000A" in text and "U+0009" in text


def test_a_bad_name_inside_a_nested_template_is_located_there() -> None:
    files = {"inner.yaml": "heat_template_version: 2021-04-16\nresources:\n"
                           "  'x y': {type: Cloud::Compute::KeyPair}\n"}
    with pytest.raises(DiagnosticError) as exc:
        resolve(load_text("heat_template_version: 2021-04-16\nresources:\n"
                          "  pool:\n    type: OS::Heat::ResourceGroup\n"
                          "    properties:\n      count: 3\n"
                          "      resource_def: {type: inner.yaml}\n", "outer.yaml"),
                ResolveOptions(stack="s", mode="validate", target="sandbox-aws",
                               targets=SANDBOX_TARGETS, read_file=files.__getitem__))
    [diag] = exc.value.diagnostics  # one, not one per group member
    assert diag.code == "invalid-resource-name" and diag.loc.file == "inner.yaml"
    assert diag.loc.line == 3 and "U+0020" in diag.message


def test_long_addresses_and_colliding_bucket_names_are_refused() -> None:
    long = "g" * (MAX_ADDRESS - 1)
    err = resolve_text("heat_template_version: 2021-04-16\nresources:\n"
                       "  assets_a: {type: Cloud::Storage::Bucket}\n"
                       "  assets-a: {type: Cloud::Storage::Bucket}\n"
                       "  logs: {type: Cloud::Storage::Bucket, properties: {name_suffix: x}}\n"
                       "  logs-x: {type: Cloud::Storage::Bucket}\n"
                       "  keys_a: {type: Cloud::Compute::KeyPair}\n"
                       "  keys-a: {type: Cloud::Compute::KeyPair}\n"
                       f"  {long}:\n    type: OS::Heat::ResourceGroup\n"
                       "    properties:\n      count: 12\n"
                       "      resource_def: {type: Cloud::Compute::KeyPair}\n")
    got = [(d.code, d.loc.line) for d in err.diagnostics]
    assert got == [("resource-name-collision", 3), ("resource-name-collision", 6),
                   ("invalid-resource-name", 13)], got  # key pairs keep '_' apart from '-'
    assert f"'{long}.0' is {MAX_ADDRESS + 1} characters long" in err.diagnostics[2].message


@pytest.mark.parametrize("name", ["a/b", "a;b", "a.b", "-a", "", "a b", "é", "a\0", 7, None])
def test_name_problem(name: object) -> None:
    assert name_problem(name)


@pytest.mark.parametrize("name", ["a", "A-b_c", "_x", "0", "WebServer", "x" * MAX_ADDRESS])
def test_name_ok(name: str) -> None:
    assert name_problem(name) == ""


NAMES = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_-]{0,12}\Z")
ADDRESSES = st.lists(NAMES, min_size=1, max_size=4).map(".".join)
STACKS = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,62}\Z")


@settings(max_examples=500, deadline=None)
@given(STACKS, ADDRESSES, ADDRESSES)
def test_distinct_valid_addresses_never_share_a_physical_name(stack: str, a: str,
                                                              b: str) -> None:
    assert ADDRESS_RE.fullmatch(a) and ADDRESS_RE.fullmatch(b)
    if a != b:
        assert physical_name(stack, a) != physical_name(stack, b)
    assert physical_name(stack, a) == before(stack, a)  # nothing valid changes name
    assert address_from_name(stack, physical_name(stack, a)) == a


@settings(max_examples=500, deadline=None)
@given(STACKS, st.text(max_size=20), st.text(max_size=20))
def test_any_addresses_map_to_distinct_safe_names_and_back(stack: str, a: str,
                                                           b: str) -> None:
    name = physical_name(stack, a)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", name), name  # every cloud takes these
    assert address_from_name(stack, name) == a
    if a != b:
        assert name != physical_name(stack, b)


def test_escaped_names_look_like_no_valid_address() -> None:
    assert physical_name("coll", "a/b") == "coll.-612f62"
    assert physical_name("coll", "a\0b") == "coll.-610062"
    assert address_from_name("coll", "coll.-612f62") == "a/b"
    # names an older version made (or made by hand) come back as they are
    assert address_from_name("coll", "coll.-x") == "-x"
    assert address_from_name("coll", "coll.-61") == "-61"  # 'a' would be coll.a
    assert address_from_name("other", "coll.a") is None


@settings(max_examples=300, deadline=None)
@given(STACKS, ADDRESSES, ADDRESSES)
def test_the_bucket_collision_rule_matches_the_aws_names(stack: str, a: str, b: str) -> None:
    """Two addresses the collision check lets through get two S3 bucket names and two
    ELB names (the rule: equal after lower-casing and turning runs of anything but
    letters and digits into one '-')."""
    def fold(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")

    if fold(a) != fold(b):
        assert bucket_name(stack, a) != bucket_name(stack, b)
        assert lb_name(stack, a) != lb_name(stack, b)


def test_a_name_yaml_reads_as_a_boolean_is_refused_not_dropped() -> None:
    # YAML 1.1 reads `off:` as false: such a resource used to vanish without a word
    err = resolve_text("heat_template_version: 2021-04-16\nresources:\n"
                       "  off: {type: Cloud::Compute::KeyPair}\n")
    [diag] = err.diagnostics
    assert (diag.code, diag.loc.line, diag.loc.column) == ("invalid-resource-name", 3, 3)
    assert "is true/false, not a string" in diag.message and "in quotes" in diag.hint
