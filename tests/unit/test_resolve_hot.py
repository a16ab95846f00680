"""Resolve: Heat parameters (constraints, custom constraints, groups, hidden, immutable),
environments (merge strategies, resource_registry) and get_file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc
from cloudtmpl.loader import load_text
from cloudtmpl.model import Target
from cloudtmpl.resolve import CustomConstraint, ResolvedStack, ResolveOptions, resolve
from cloudtmpl.sourcefiles import OutsideRoots

TARGETS = {"sandbox-aws": Target("sandbox-aws", "aws", "us-east-1")}
HEAD = "heat_template_version: 2021-04-16\n"
KEYPAIR = "resources:\n  k: {type: Cloud::Compute::KeyPair}\n"


def run(text: str, envs: tuple[str, ...] = (), **kw: Any) -> ResolvedStack:
    docs = tuple(load_text(e, f"env{i}.yaml") for i, e in enumerate(envs, 1))
    return resolve(load_text(HEAD + text, "t.yaml"),
                   ResolveOptions(stack="s", target="sandbox-aws", targets=TARGETS,
                                  environments=docs, **kw))


def fail(text: str, envs: tuple[str, ...] = (), **kw: Any) -> list[Diagnostic]:
    with pytest.raises(DiagnosticError) as exc:
        run(text, envs, **kw)
    return list(exc.value.diagnostics)


def where(diags: list[Diagnostic]) -> list[tuple[str, str, int, int]]:
    return [(d.code, d.loc.file, d.loc.line, d.loc.column) for d in diags]


# ------------------------------------------------------------------ parameters


def test_custom_constraints_are_collected_for_the_engine() -> None:
    stack = run("""\
parameters:
  flavor: {type: string, default: m1.small, constraints: [{custom_constraint: nova.flavor}]}
  key: {type: string, hidden: true, constraints: [{custom_constraint: nova.keypair}]}
  nets: {type: comma_delimited_list, default: 'a,b',
         constraints: [{custom_constraint: neutron.network}]}
  other: {type: string, default: x, constraints: [{custom_constraint: my.own.check}]}
""" + KEYPAIR, params={"key": "mykey"})
    assert stack.custom_constraints == (
        CustomConstraint("flavor", "nova.flavor", "m1.small", Loc("t.yaml", 3, 35)),
        CustomConstraint("key", "nova.keypair", "mykey", Loc("<command line: -p key>"), True),
        CustomConstraint("nets", "neutron.network", ["a", "b"], Loc("t.yaml", 5, 47)),
        CustomConstraint("other", "my.own.check", "x", Loc("t.yaml", 7, 34)))


def test_immutable_and_parameter_locations() -> None:
    stack = run("parameters:\n  a: {type: string, default: x, immutable: true}\n"
                "  b: {type: string, default: y}\n" + KEYPAIR)
    assert stack.immutable == frozenset({"a"})
    assert stack.parameter_locs == {"a": Loc("t.yaml", 3, 3), "b": Loc("t.yaml", 4, 3)}


@pytest.mark.parametrize(("definition", "message"), [
    ("{type: number, default: 1, constraints: [{modulo: {step: 0, offset: 0}}]}",
     "modulo step must not be 0"),
    ("{type: number, default: 1, constraints: [{modulo: {step: 2, offset: 2}}]}",
     "modulo offset must be smaller (by absolute value) than step"),
    ("{type: number, default: 1, constraints: [{modulo: {step: 2, offset: -1}}]}",
     "modulo step and offset must be both positive or both negative"),
    ("{type: number, default: 1, constraints: [{modulo: {step: 1.5, offset: 0}}]}",
     "modulo step and offset must be integers"),
    ("{type: string, default: a, constraints: [{range: {min: 1}}]}",
     "a range constraint does not apply to a string parameter (only to number)"),
    ("{type: number, default: 1, constraints: [{allowed_pattern: x}]}",
     "a allowed_pattern constraint does not apply to a number parameter (only to string)"),
    ("{type: string, default: a, constraints: [{length: {min: 1}, allowed_pattern: a}]}",
     "one constraint per list item, not length and allowed_pattern: write each as its own "
     "'- ...' entry"),
])
def test_invalid_constraint_definitions(definition: str, message: str) -> None:
    (d,) = fail(f"parameters:\n  p: {definition}\n" + KEYPAIR)
    assert (d.code, d.message) == ("invalid-constraint", f"parameter 'p': {message}")


def test_modulo_with_negative_step_uses_heat_semantics() -> None:
    text = "parameters:\n  p: {type: number, constraints: [{modulo: {step: -3, offset: -1}}]}\n"
    assert run(text + KEYPAIR, params={"p": "-4"}).parameters["p"] == -4
    (d,) = fail(text + KEYPAIR, params={"p": "-3"})
    assert d.code == "parameter-constraint"


def test_hidden_values_never_appear_in_diagnostics() -> None:
    secret = "Sup3rS3cret"
    text = f"""\
parameters:
  pw: {{type: number, hidden: true}}
  pw2: {{type: string, hidden: true, constraints: [{{allowed_values: [a]}}]}}
  blob: {{type: json, hidden: true, default: {{token: {secret}}}}}
resources:
  k:
    type: Cloud::Compute::KeyPair
    properties:
      public_key: {{get_param: [blob, missing]}}
"""
    diags = fail(text, params={"pw": secret, "pw2": secret})
    assert {d.code for d in diags} == {"parameter-type", "parameter-constraint",
                                       "function-error"}
    for d in diags:
        assert secret not in d.message and secret not in d.hint, d


def test_parameter_groups_list_each_parameter_once() -> None:
    diags = fail("""\
parameter_groups:
- {label: a, parameters: [x, y]}
- {label: b, parameters: [x]}
- {label: c}
parameters:
  x: {type: string, default: a}
  y: {type: string, default: a}
""" + KEYPAIR)
    assert [(d.code, d.loc.line, d.loc.column) for d in diags] == [
        ("duplicate-parameter", 4, 27), ("missing-key", 5, 3)]
    assert "first at line 3" in diags[0].message


# ------------------------------------------------------------------ environments

LIST_TEMPLATE = """\
parameters:
  names: {type: comma_delimited_list, default: base}
  text: {type: string, default: ''}
  conf: {type: json, default: {}}
  size: {type: number, default: 1}
""" + KEYPAIR


def test_environments_overwrite_in_order() -> None:
    stack = run(LIST_TEMPLATE, ("parameters: {names: 'a,b', size: 2}\n",
                                "parameters: {names: c}\n"))
    assert stack.parameters["names"] == ["c"] and stack.parameters["size"] == 2


def test_merge_strategies() -> None:
    stack = run(LIST_TEMPLATE, (
        "parameters: {names: 'a,b', text: 'x', conf: {a: {b: 1, l: [1]}, s: p}}\n",
        "parameter_merge_strategies: {default: merge, conf: deep_merge}\n"
        "parameters: {names: [c], text: 'y', conf: {a: {c: 2, l: [2]}, s: q}}\n"))
    assert stack.parameters["names"] == ["a", "b", "c"]
    assert stack.parameters["text"] == "xy"
    assert stack.parameters["conf"] == {"a": {"b": 1, "c": 2, "l": [1, 2]}, "s": "pq"}
    shallow = run(LIST_TEMPLATE, (
        "parameters: {conf: {a: {b: 1}, k: v}}\n",
        "parameter_merge_strategies: {conf: merge}\nparameters: {conf: {a: {c: 2}}}\n"))
    assert shallow.parameters["conf"] == {"a": {"c": 2}, "k": "v"}


def test_parameter_defaults_merge_separately_from_parameters() -> None:
    stack = run(LIST_TEMPLATE, (
        "parameter_defaults: {names: x}\n",
        "parameter_merge_strategies: {default: merge}\nparameter_defaults: {names: y}\n"))
    assert stack.parameters["names"] == ["x", "y"]


def test_merge_errors_point_into_the_environment_file() -> None:
    diags = fail(LIST_TEMPLATE, (
        "parameters: {size: 1, names: a}\n",
        "parameter_merge_strategies: {size: merge, names: merge}\n"
        "parameters: {size: 2, names: b}\n",
        "parameter_merge_strategies: {names: overwrite}\nparameters: {names: c}\n"))
    assert where(diags) == [
        ("invalid-merge-strategy", "env2.yaml", 2, 20),
        ("merge-strategy-conflict", "env3.yaml", 1, 30)]
    assert diags[0].message == ("parameter 'size' (number): 'merge' and 'deep_merge' apply to "
                                "json, comma_delimited_list and string parameters, not number")


def test_environment_shape_is_validated_with_locations() -> None:
    diags = fail(LIST_TEMPLATE, ("parameter_merge_strategies: {names: mix}\n"
                                 "encrypted_param_names: [text]\n"
                                 "resource_registry: {'My::T': [x]}\n",))
    assert where(diags) == [("invalid-value", "env1.yaml", 1, 37),
                            ("invalid-type", "env1.yaml", 3, 30)]


def test_resource_registry_aliases_wildcards_and_per_resource() -> None:
    text = """\
resources:
  a: {type: My::Key}
  b: {type: Net::KeyPair}
  c: {type: Other::Key}
"""
    env = """\
resource_registry:
  My::Key: Cloud::Compute::KeyPair
  "Net::*": "OS::Nova::*"
  resources:
    c: {Other::Key: OS::Nova::KeyPair, hooks: pre-create}
"""
    stack = run(text, (env,))
    assert {n: r.kind for n, r in stack.resources.items()} == {
        "a": "Cloud::Compute::KeyPair", "b": "Cloud::Compute::KeyPair",
        "c": "Cloud::Compute::KeyPair"}
    assert stack.registry.lookup("b", "Net::KeyPair").mapped("Net::KeyPair") == "OS::Nova::KeyPair"
    assert stack.registry.lookup("x", "Other::Key") is None


def test_template_resources_need_a_file_reader() -> None:
    env = "resource_registry:\n  My::DB: db.yaml\n"
    diags = fail("resources:\n  db: {type: My::DB}\n  n: {type: nested.template}\n", (env,))
    assert [(d.code, d.loc.line) for d in diags] == [("file-not-found", 3),
                                                      ("file-not-found", 4)]
    assert "'db.yaml'" in diags[0].message and "'nested.template'" in diags[1].message


def test_get_file_reads_relative_files_once_and_records_them() -> None:
    reads: list[str] = []

    def reader(path: str) -> str:
        reads.append(path)
        if path == "scripts/boot.sh":
            return "#!/bin/sh\necho hi\n"
        raise FileNotFoundError(2, "No such file or directory")

    text = """\
resources:
  k:
    type: Cloud::Compute::KeyPair
    properties: {public_key: {get_file: scripts/../scripts/boot.sh}}
outputs:
  o: {value: {get_file: ./scripts/boot.sh}}
"""
    stack = run(text, read_file=reader)
    assert stack.files == {"scripts/boot.sh": "#!/bin/sh\necho hi\n"}
    assert stack.outputs["o"].value == "#!/bin/sh\necho hi\n"
    assert reads == ["scripts/boot.sh"]


# Heat's paths: relative to the template, '..' and absolute paths allowed; where they
# may lead is the reader's to refuse (cloudtmpl.sourcefiles: the project directory),
# so the resolver asks the reader for the normalized key and reports its refusal
@pytest.mark.parametrize(("path", "key", "code"), [
    ("../secrets.txt", "../secrets.txt", "file-outside-project"),
    ("a/../../b", "../b", "file-outside-project"),
    ("/etc/passwd", "/etc/passwd", "file-outside-project"),
    ("http://example.com/x.sh", None, "file-path-refused"),
    ("file:///etc/passwd", None, "file-path-refused"),
    ("C:/x.sh", None, "file-path-refused"),
    ("missing.sh", "missing.sh", "file-not-found"),
])
def test_get_file_refusals(path: str, key: str | None, code: str) -> None:
    asked: list[str] = []

    def reader(p: str) -> str:
        asked.append(p)
        if p.startswith(("..", "/")):
            raise OutsideRoots(p, (Path("/project"),), link=False)
        raise FileNotFoundError(2, "No such file or directory")

    (d,) = fail(KEYPAIR + f"outputs:\n  o: {{value: {{get_file: '{path}'}}}}\n", read_file=reader)
    assert (d.code, d.loc.line, d.loc.column) == (code, 5, 15)
    assert asked == ([key] if key else [])
    if code == "file-outside-project":
        assert "--allow-dir" in d.hint and "/project" in d.message


def test_get_file_without_a_reader() -> None:
    (d,) = fail(KEYPAIR + "outputs:\n  o: {value: {get_file: a.sh}}\n")
    assert d.code == "file-not-found" and "no files can be read here" in d.message
