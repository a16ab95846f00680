"""Fuzzing the template front end: only ``DiagnosticError`` may escape.

Hypothesis mutates real templates (``examples/``, ``templates/``, ``tests/corpus/``)
two ways and runs each result through ``loader.load_text`` and
``resolve.resolve`` (plan and validate mode, the sandbox targets):

* **text**: delete, duplicate, swap and truncate lines, splice in YAML syntax
  (anchors, aliases, tags, flow brackets, quotes, tabs), intrinsic-function
  snippets and odd scalars;
* **structure**: load, then replace, delete, rename or add values anywhere in
  the tree (random scalars, lists and maps, calls of every intrinsic function
  with random arguments, resources of every type and alias), dump again.

Any other exception (a ``KeyError``, ``TypeError``, ``RecursionError``, ...) is a
bug: hypothesis shrinks it and prints the reproducing input.  Bugs already found
are pinned below as ``xfail(strict=True)`` tests with a minimal template each
(:data:`KNOWN_BUGS`); the fuzz tests count them as ``known-bug:...`` instead of
failing, so a *new* bug still fails them, and a fixed one turns its xfail into a
failure that says to delete the entry.  Examples per test:
``CLOUDTMPL_FUZZ_EXAMPLES`` (default 1500: about a minute for the file; set
20000 or more for a long run).  Each test prints how many inputs ran and how
many were accepted or refused.
"""

from __future__ import annotations

import collections
import os
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudtmpl import functions, resources
from cloudtmpl.config import SANDBOX_TARGETS
from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.loader import load_text
from cloudtmpl.resolve import ResolveOptions, resolve
from cloudtmpl.workflow import file_reader

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("CLOUDTMPL_FUZZ_EXAMPLES", "1500"))
# One input taking this long is a finding (a template that hangs the front end), but
# generous: CI machines are shared and slow.
DEADLINE = timedelta(seconds=20)
SOURCES = sorted(
    p for p in [*REPO.glob("examples/**/*.yaml"), *REPO.glob("templates/*.yaml"),
                *REPO.glob("tests/corpus/**/*.yaml")]
    if not p.name.endswith(".env.yaml") and "ci" not in p.relative_to(REPO).parts)
ENVS = sorted(REPO.glob("tests/corpus/*.env.yaml"))
TEXTS = {p: p.read_text() for p in [*SOURCES, *ENVS]}
FUNCTION_NAMES = [*sorted(functions.REGISTRY), "get_file", "Fn::GetAtt", "Ref", "repeat",
                  "yaql", "map_merge", "no_such_function"]
TYPE_NAMES = sorted(resources.TYPES) + sorted(resources.ALIASES) + [
    "OS::Heat::ResourceGroup", "OS::Heat::Stack", "Cloud::Group", "nested/app_node.yaml",
    "templates/web_tier.yaml", "../../etc/passwd", "No::Such::Type"]
SNIPPETS = [
    ":", ": ", "- ", "-", "{", "}", "[", "]", ",", "&a ", "*a", "*undefined", "&a [*a]",
    "!!str ", "!!int ", "!!binary ", "!!python/object:os.system ", "!custom ", "? ",
    "|\n", ">-\n", "'", '"', "\\", "\t", "\n", "\n  ", "\n    ", "#", "%YAML 1.1\n", "---\n",
    "...\n", "~", "null", "true", "no", "0x1F", "0o17", "1e9999", "-.inf", ".nan",
    "2024-01-01", "12:30:00", "9" * 40, "\u00e9\u4e2d\U0001f600", "\x00", "\ufeff",
    "{get_param: flavor}", "{get_resource: web}", "{get_attr: [web, first_address]}",
    "{get_attr: [web, networks, 0, 1]}", "{get_file: ../../../etc/passwd}",
    "{str_replace: {template: x, params: {x: {get_param: x}}}}", "{list_join: [',', 3]}",
    "{if: [c, 1, 2]}", "{equals: [1]}", "{repeat: {for_each: {x: [1]}, template: x}}",
    "{yaql: {expression: 1}}", "{map_merge: [{}, 1]}", "{digest: [sha512, 1]}",
    "{str_split: [',', {get_param: x}, 99]}", "{list_concat_unique: [[1], 2]}",
    "{contains: [1, 2]}", "{filter: [[1], [1, 2]]}", "{make_url: {host: 1}}",
    "{get_param: [p, 0, k]}", "{Fn::Select: [99, [1]]}", "{get_resource: {get_param: x}}",
    "type: OS::Heat::ResourceGroup\n    properties: {count: 100000000, resource_def: {}}",
    "depends_on: [web, web, nonexistent]", "condition: {not: x}", "deletion_policy: Snapshot",
    "placement: {provider: sandbox-aws, region: mars-1}", "placement: {spread: [x]}",
    "placement: {country: XX, pinned: maybe}", "update_policy: {rolling_update: {}}",
    "count: -1", "count: 1e12", "size: -5", "cidr: 10.0.0.0/33", "port_range_min: 70000",
    "heat_template_version: 2013-05-23", "heat_template_version: 2099-01-01",
    "heat_template_version: wallaby", "parameters: {x: {type: json, default: '{'}}",
    "parameter_groups: [{parameters: [nope]}]", "outputs: {o: {value: {get_attr: [x]}}}",
]


class Tally:
    """How many inputs a test ran and what became of them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.counts: collections.Counter[str] = collections.Counter()
        self.started = time.perf_counter()

    def report(self) -> str:
        total = sum(self.counts.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        return (f"[fuzz] {self.name}: {total} inputs in "
                f"{time.perf_counter() - self.started:.1f} s ({parts})")


TALLIES: dict[str, Tally] = {}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Any:
    yield
    for tally in TALLIES.values():
        print("\n" + tally.report())


# (exception type, function in cloudtmpl/resolve.py where it is raised) -> bug name;
# each would get a minimal reproduction below (the fixed ones keep theirs).
KNOWN_BUGS: dict[tuple[str, str], str] = {}  # none open: the ones found are fixed below


def known_bug(exc: BaseException) -> str | None:
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename.endswith("cloudtmpl/resolve.py")]
    if not frames:
        return None
    return KNOWN_BUGS.get((type(exc).__name__, frames[-1].name))


def run_front_end(text: str, source: Path, env_text: str | None, mode: str, tally: Tally) -> None:
    """The property: loading and resolving either works or raises DiagnosticError."""
    try:
        _front_end(text, source, env_text, mode, tally)
    except (TypeError, AttributeError) as exc:
        bug = known_bug(exc)
        if bug is None:
            raise
        tally.counts[f"known-bug:{bug}"] += 1


def _front_end(text: str, source: Path, env_text: str | None, mode: str, tally: Tally) -> None:
    try:
        doc = load_text(text, str(source))
        envs = [load_text(env_text, "env.yaml")] if env_text is not None else []
        resolve(doc, ResolveOptions(
            stack="fuzz", mode=mode,  # type: ignore[arg-type]
            target="sandbox-aws", targets=SANDBOX_TARGETS, environments=envs,
            read_file=file_reader(str(source), {})))
    except DiagnosticError as exc:
        assert exc.diagnostics, "a DiagnosticError always carries a diagnostic"
        for diag in exc.diagnostics:
            assert diag.code and diag.message
        tally.counts["refused"] += 1
        return
    tally.counts["accepted"] += 1


# ----------------------------------------------------------------- text mutations


@st.composite
def text_mutation(draw: st.DrawFn) -> tuple[Path, str]:
    source = draw(st.sampled_from(SOURCES))
    lines = TEXTS[source].splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "splice", "splice",
                                   "splice", "replace", "indent", "truncate"]))
        if not lines:
            lines = ["\n"]
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, line)
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "indent":
            lines[i] = draw(st.sampled_from(["", " ", "  ", "\t", "      "])) + line.lstrip(" ")
        elif op == "truncate":
            lines = [*lines[:i], line[:draw(st.integers(0, len(line)))]]
        else:
            pos = draw(st.integers(0, len(line)))
            if draw(st.booleans()):
                piece = draw(st.sampled_from(SNIPPETS))
            else:
                piece = draw(st.text(max_size=8))
            end = pos + (draw(st.integers(0, 12)) if op == "replace" else 0)
            lines[i] = line[:pos] + piece + line[end:]
    return source, "".join(lines)


@settings(max_examples=EXAMPLES, deadline=DEADLINE, derandomize=False, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
          print_blob=True)
@given(mutated=text_mutation(), mode=st.sampled_from(["plan", "validate"]),
       env=st.none() | st.sampled_from(ENVS))
def test_text_mutations_only_ever_raise_diagnostics(
        mutated: tuple[Path, str], mode: str, env: Path | None) -> None:
    tally = TALLIES.setdefault("text mutations", Tally("text mutations"))
    source, text = mutated
    run_front_end(text, source, TEXTS[env] if env else None, mode, tally)


# ------------------------------------------------------------ structure mutations


scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["", "web", "flavor", "ubuntu-22.04", "tiny", "sandbox-aws",
                              "de-fra-1", "10.0.0.0/24", "2016-10-14", "DE", "EU", "0"]))


def _call(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.builds(lambda name, arg: {name: arg}, st.sampled_from(FUNCTION_NAMES), children)


values = st.recursive(
    scalars,
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=8) | st.sampled_from(
                          ["type", "properties", "value", "template", "params", "get_param",
                           "count", "resource_def", "for_each", "default", "condition"]),
                          children, max_size=4)
                      | _call(children)),
    max_leaves=12)


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _parent(tree: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        tree = tree[part]
    return tree


@st.composite
def structure_mutation(draw: st.DrawFn) -> tuple[Path, str]:
    source = draw(st.sampled_from(SOURCES))
    tree = yaml.safe_load(TEXTS[source])
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(tree)[1:]
        op = draw(st.sampled_from(["replace", "replace", "delete", "rename", "add_resource",
                                   "call"]))
        if op == "add_resource" or not paths:
            resources_ = tree.setdefault("resources", {}) if isinstance(tree, dict) else {}
            if isinstance(resources_, dict):
                resources_[draw(st.sampled_from(["web", "db", "x", "new", "0"]))] = {
                    "type": draw(st.sampled_from(TYPE_NAMES)),
                    "properties": draw(st.dictionaries(st.sampled_from(
                        ["image", "flavor", "size", "server", "count", "resource_def",
                         "network", "cidr", "rules", "instance_uuid", "volume_id", "name",
                         "config", "value", "length"]), values, max_size=4)),
                    **draw(st.dictionaries(st.sampled_from(
                        ["depends_on", "condition", "placement", "deletion_policy",
                         "update_policy", "metadata", "external_id"]), values, max_size=2)),
                }
            continue
        path = draw(st.sampled_from(paths))
        parent = _parent(tree, path)
        key = path[-1]
        if op == "replace":
            parent[key] = draw(values)
        elif op == "call":
            parent[key] = {draw(st.sampled_from(FUNCTION_NAMES)): draw(values)}
        elif op == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            new_key = draw(st.text(max_size=8) | st.sampled_from(
                ["type", "properties", "resources", "parameters", "outputs", "conditions",
                 "get_param", "value", "default"]))
            parent[new_key] = parent.pop(key)
    try:
        text = yaml.safe_dump(tree, allow_unicode=draw(st.booleans()), sort_keys=False)
    except (yaml.YAMLError, ValueError, RecursionError):  # pragma: no cover - dumper limits
        text = TEXTS[source]
    return source, text


@settings(max_examples=EXAMPLES, deadline=DEADLINE, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
          print_blob=True)
@given(mutated=structure_mutation(), mode=st.sampled_from(["plan", "validate"]),
       env=st.none() | st.sampled_from(ENVS))
def test_structure_mutations_only_ever_raise_diagnostics(
        mutated: tuple[Path, str], mode: str, env: Path | None) -> None:
    tally = TALLIES.setdefault("structure mutations", Tally("structure mutations"))
    source, text = mutated
    run_front_end(text, source, TEXTS[env] if env else None, mode, tally)


def test_every_corpus_file_is_a_fuzz_seed() -> None:
    assert len(SOURCES) >= 15, SOURCES
    for source in SOURCES:  # the seeds themselves resolve (validate mode: no inputs needed)
        tally = TALLIES.setdefault("seeds", Tally("seeds"))
        run_front_end(TEXTS[source], source, None, "validate", tally)


# ---------------------------------------------------- bugs the fuzzer found (engine)


def _resolve(text: str, mode: str = "validate") -> None:
    resolve(load_text(text, "t.yaml"), ResolveOptions(
        stack="t", mode=mode, target="sandbox-aws", targets=SANDBOX_TARGETS))  # type: ignore[arg-type]


def test_range_bound_not_a_number_is_a_diagnostic() -> None:
    with pytest.raises(DiagnosticError):
        _resolve("heat_template_version: 2021-04-16\nparameters:\n"
                 "  n: {type: number, default: 5, constraints: [{range: {min: [1]}}]}\n"
                 "resources: {}\n")


@pytest.mark.parametrize("properties", [
    "{get_param: p}",  # AttributeError: 'GetParam' object has no attribute 'items'
    "{repeat: {for_each: {x: [a]}, template: {size: 1}}}",  # TypeError: Repeat.items()
], ids=["get_param", "repeat"])
def test_properties_not_a_mapping_is_a_diagnostic(properties: str) -> None:
    with pytest.raises(DiagnosticError):
        _resolve("heat_template_version: 2021-04-16\nparameters:\n  p: {type: json}\n"
                 "resources:\n  v:\n    type: Cloud::Block::Volume\n"
                 f"    properties: {properties}\n")


def test_group_property_unknown_is_a_diagnostic() -> None:
    with pytest.raises(DiagnosticError):
        _resolve("heat_template_version: 2021-04-16\nparameters:\n  p: {type: json}\n"
                 "resources:\n  g:\n    type: OS::Heat::ResourceGroup\n    properties:\n"
                 "      count: 2\n      removal_policies: {get_param: p}\n"
                 "      resource_def: {type: Cloud::Block::Volume, properties: {size: 1}}\n")
