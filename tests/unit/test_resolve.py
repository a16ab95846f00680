"""Resolve: parameters, conditions, resources, references, placement; all errors at once."""

from __future__ import annotations

from typing import Any

import pytest

from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc
from cloudtmpl.functions import Function, GetAttr, GetResource, to_text
from cloudtmpl.loader import load_text
from cloudtmpl.model import Placement, Target
from cloudtmpl.resolve import ResolvedStack, ResolveOptions, convert_parameter, resolve

TARGETS = {
    "sandbox-aws": Target("sandbox-aws", "aws", "us-east-1"),
    "os-fra": Target("os-fra", "openstack", "RegionOne"),
    "bare": Target("bare", "openstack", None),
}

HEAD = "heat_template_version: 2021-04-16\n"


def options(**kw: Any) -> ResolveOptions:
    base: dict[str, Any] = {"stack": "demo", "target": "sandbox-aws", "targets": TARGETS}
    base.update(kw)
    return ResolveOptions(**base)


def run(text: str, **kw: Any) -> ResolvedStack:
    return resolve(load_text(HEAD + text, "t.yaml"), options(**kw))


def fail(text: str, **kw: Any) -> list[Diagnostic]:
    with pytest.raises(DiagnosticError) as exc:
        run(text, **kw)
    return list(exc.value.diagnostics)


def where(diags: list[Diagnostic]) -> list[tuple[str, int, int]]:
    return [(d.code, d.loc.line, d.loc.column) for d in diags]


SERVER = """\
resources:
  web:
    type: Cloud::Compute::Server
    properties: {image: ubuntu-22.04, flavor: small}
"""


# ------------------------------------------------------------------ the happy path

FULL = """\
description: a demo
parameters:
  flavor: {type: string, default: small, constraints: [{allowed_values: [small, large]}]}
  count: {type: number, default: 2}
  prod: {type: boolean, default: false}
  password: {type: string, hidden: true, default: s3cret}
conditions:
  is_prod: {equals: [{get_param: prod}, true]}
resources:
  key: {type: Cloud::Compute::KeyPair}
  vol:
    type: Cloud::Block::Volume
    properties: {size: 10}
    deletion_policy: retain
    condition: is_prod
  web:
    type: Cloud::Compute::Server
    depends_on: key
    properties:
      image: ubuntu-22.04
      flavor: {if: [is_prod, large, {get_param: flavor}]}
      key_name: {get_resource: key}
      user_data:
        str_replace:
          template: "n=$n stack=$s"
          params: {$n: {get_param: count}, $s: {get_param: OS::stack_name}}
  ip:
    type: Cloud::Network::FloatingIP
    properties: {server: {get_resource: web}}
outputs:
  addr: {value: {get_attr: [web, first_address]}, description: the address}
  vol_id: {value: {get_resource: vol}, condition: is_prod}
"""


def test_full_template_resolves() -> None:
    stack = run(FULL)
    assert stack.name == "demo" and stack.description == "a demo"
    assert list(stack.resources) == ["key", "web", "ip"]  # vol dropped by its condition
    web = stack.resources["web"]
    assert web.kind == "Cloud::Compute::Server" and web.type == "Cloud::Compute::Server"
    assert web.properties["flavor"] == "small"
    assert web.properties["user_data"] == "n=2 stack=demo"
    assert web.properties["key_name"] == GetResource(("key",))
    assert web.depends_on == frozenset({"key"})
    assert web.loc == Loc("t.yaml", 17, 3)
    assert web.placement == Placement("sandbox-aws", "us-east-1", "US", "US")
    assert stack.resources["ip"].depends_on == frozenset({"web"})
    assert stack.parameters == {"flavor": "small", "count": 2, "prod": False,
                                "password": "s3cret"}
    assert stack.hidden == frozenset({"password"})
    assert list(stack.outputs) == ["addr"]
    addr = stack.outputs["addr"]
    assert isinstance(addr.value, GetAttr)
    assert to_text(addr.value) == "{get_attr: [web, first_address]}"
    assert addr.description == "the address" and addr.loc == Loc("t.yaml", 32, 3)
    assert len(stack.template_hash) == 64 and len(stack.params_hash) == 64


def test_conditions_and_params_change_result_and_hashes() -> None:
    a = run(FULL)
    b = run(FULL, params={"prod": "yes"})
    assert list(b.resources) == ["key", "vol", "web", "ip"]
    assert b.resources["web"].properties["flavor"] == "large"
    assert b.resources["vol"].deletion_policy == "Retain"
    assert list(b.outputs) == ["addr", "vol_id"]
    assert a.template_hash == b.template_hash
    assert a.params_hash != b.params_hash


def test_str_replace_around_get_attr_stays_a_node() -> None:
    stack = run("""\
parameters:
  port: {type: number, default: 80}
resources:
  db: {type: Cloud::Compute::Server, properties: {image: i, flavor: f}}
  web:
    type: Cloud::Compute::Server
    properties:
      image: i
      flavor: f
      user_data:
        str_replace:
          template: "$h:$p"
          params: {$h: {get_attr: [db, first_address]}, $p: {get_param: port}}
""")
    ud = stack.resources["web"].properties["user_data"]
    assert isinstance(ud, Function)
    assert to_text(ud) == ('{str_replace: {template: "$h:$p", '
                           'params: {$h: {get_attr: [db, first_address]}, $p: 80}}}')
    assert stack.resources["web"].depends_on == frozenset({"db"})


def test_environments_and_cli_precedence() -> None:
    env1 = load_text("parameters: {a: env1}\nparameter_defaults: {b: d1, undeclared: 1}\n",
                     "e1.yaml")
    env2 = load_text("parameter_defaults: {b: d2}\nparameters: {c: env2}\n", "e2.yaml")
    text = """\
parameters:
  a: {type: string}
  b: {type: string, default: tmpl}
  c: {type: string}
"""
    stack = run(text, environments=[env1, env2], params={"c": "cli"})
    assert stack.parameters == {"a": "env1", "b": "d2", "c": "cli"}
    assert stack.template_hash != run(text, environments=[env1], params={"c": "x"}).template_hash


def test_environment_parameter_must_be_declared() -> None:
    env = load_text("parameters: {flavr: x}\n", "env.yaml")
    (d,) = fail("parameters:\n  flavor: {type: string, default: a}\n", environments=[env])
    assert (d.code, d.loc) == ("unknown-parameter", Loc("env.yaml", 1, 14))
    assert d.hint.startswith("did you mean 'flavor'?")


def test_environment_schema_errors_are_included() -> None:
    env = load_text("paramters: {}\n", "env.yaml")
    assert where(fail("", environments=[env])) == [("unknown-section", 1, 1)]


def test_resource_registry_maps_types() -> None:
    env = load_text('resource_registry: {"My::Server": Cloud::Compute::Server}\n', "env.yaml")
    stack = run("resources:\n  w: {type: My::Server, properties: {image: i, flavor: f}}\n",
                environments=[env])
    assert stack.resources["w"].kind == "Cloud::Compute::Server"
    assert stack.resources["w"].type == "My::Server"


# ------------------------------------------------------------------ parameters


@pytest.mark.parametrize(("ptype", "raw", "value"), [
    ("string", "abc", "abc"),
    ("string", 8080, "8080"),
    ("number", "42", 42),
    ("number", " 2.5 ", 2.5),
    ("number", 7, 7),
    ("boolean", "yes", True),
    ("boolean", "OFF", False),
    ("boolean", "1", True),
    ("boolean", True, True),
    ("json", '{"a": [1]}', {"a": [1]}),
    ("json", "[1, 2]", [1, 2]),
    ("json", {"k": "v"}, {"k": "v"}),
    ("comma_delimited_list", "a, b,c", ["a", "b", "c"]),
    ("comma_delimited_list", "", []),
    ("comma_delimited_list", ["x", 1], ["x", "1"]),
])
def test_parameter_conversions(ptype: str, raw: Any, value: Any) -> None:
    assert convert_parameter(ptype, raw) == (value, None)


@pytest.mark.parametrize(("ptype", "raw"), [
    ("number", "ten"), ("number", True), ("boolean", "maybe"), ("json", "{bad"),
    ("json", '"a string"'), ("string", [1]), ("comma_delimited_list", {"a": 1}),
])
def test_parameter_conversion_failures(ptype: str, raw: Any) -> None:
    value, problem = convert_parameter(ptype, raw)
    assert value is None and problem


def test_wrong_type_value_from_cli_and_default() -> None:
    diags = fail("parameters:\n  n: {type: number, default: abc}\n  b: {type: boolean}\n",
                 params={"b": "perhaps"})
    assert where(diags) == [("parameter-type", 0, 0), ("parameter-type", 3, 30)]
    assert diags[0].loc.file == "<command line: -p b>"
    assert diags[0].message.startswith("parameter 'b' (boolean): expected a boolean")


def test_missing_required_parameter_plan_vs_validate() -> None:
    text = "parameters:\n  image: {type: string}\n" + SERVER.replace(
        "image: ubuntu-22.04", "image: {get_param: image}")
    (d,) = fail(text)
    assert (d.code, d.loc) == ("missing-parameter", Loc("t.yaml", 3, 3))
    assert "-p image=VALUE" in d.hint
    stack = run(text, mode="validate", target=None)
    assert stack.parameters == {}
    assert repr(stack.resources["web"].properties["image"]) == "(known after apply)"
    assert stack.resources["web"].placement == Placement("", "")


def test_validate_mode_still_checks_given_values() -> None:
    text = "parameters:\n  n: {type: number, constraints: [{range: {max: 3}}]}\n"
    assert where(fail(text, mode="validate", params={"n": "5"})) == [
        ("parameter-constraint", 0, 0)]


def test_unknown_cli_parameter_with_hint() -> None:
    (d,) = fail("parameters:\n  flavor: {type: string, default: a}\n", params={"flavour": "x"})
    assert d.code == "unknown-parameter"
    assert d.hint.startswith("did you mean 'flavor'?")


@pytest.mark.parametrize(("definition", "value", "message"), [
    ("{type: string, constraints: [{allowed_values: [a, b]}]}", "c",
     "parameter 'p': 'c' is not one of the allowed values: a, b"),
    ("{type: number, constraints: [{allowed_values: [1, 2]}]}", "3",
     "parameter 'p': '3' is not one of the allowed values: 1, 2"),
    ("{type: comma_delimited_list, constraints: [{allowed_values: [a, b]}]}", "a,c",
     "parameter 'p': '[a, c]' is not one of the allowed values: a, b"),
    ("{type: number, constraints: [{range: {min: 1, max: 10}}]}", "11",
     "parameter 'p': 11 is out of range (must be between 1 and 10)"),
    ("{type: number, constraints: [{range: {min: 1}}]}", "0.5",
     "parameter 'p': 0.5 is out of range (must be at least 1)"),
    ("{type: string, constraints: [{length: {min: 2, max: 4}}]}", "abcde",
     "parameter 'p': length 5 is out of range (must be between 2 and 4)"),
    ("{type: comma_delimited_list, constraints: [{length: {max: 2}}]}", "a,b,c",
     "parameter 'p': length 3 is out of range (must be at most 2)"),
    ("{type: string, constraints: [{allowed_pattern: '[a-z]+'}]}", "abc1",
     "parameter 'p': 'abc1' does not match the pattern '[a-z]+'"),
    ("{type: number, constraints: [{modulo: {step: 2, offset: 1}}]}", "4",
     "parameter 'p': 4 is not a multiple of 2 plus 1"),
    ("{type: number, constraints: [{range: {max: 3}, description: at most three}]}", "9",
     "parameter 'p': at most three"),
])
def test_constraint_violations(definition: str, value: str, message: str) -> None:
    (d,) = fail(f"parameters:\n  p: {definition}\n", params={"p": value})
    assert d.code == "parameter-constraint"
    assert d.message == message
    assert d.hint.startswith("the value must satisfy: {")


@pytest.mark.parametrize(("definition", "value"), [
    ("{type: string, constraints: [{allowed_values: [a, b]}]}", "b"),
    ("{type: number, constraints: [{allowed_values: [1, 2]}]}", "2.0"),
    ("{type: number, constraints: [{range: {min: 1, max: 10}}]}", "10"),
    ("{type: string, constraints: [{length: {min: 2, max: 4}}]}", "abcd"),
    ("{type: string, constraints: [{allowed_pattern: '[a-z]+'}]}", "abc"),
    ("{type: number, constraints: [{modulo: {step: 2, offset: 1}}]}", "7"),
    ("{type: string, constraints: [{custom_constraint: nova.flavor}]}", "anything"),
])
def test_constraints_satisfied(definition: str, value: str) -> None:
    assert run(f"parameters:\n  p: {definition}\n", params={"p": value}).parameters["p"]


def test_default_is_checked_against_constraints_at_its_location() -> None:
    (d,) = fail("parameters:\n  p: {type: string, default: zz, constraints: "
                "[{allowed_values: [a]}]}\n")
    assert (d.code, d.loc) == ("parameter-constraint", Loc("t.yaml", 3, 30))
    assert d.hint.startswith("the default must satisfy")


def test_hidden_value_is_not_shown() -> None:
    (d,) = fail("parameters:\n  pw: {type: string, hidden: true, constraints: "
                "[{length: {min: 8}}]}\n", params={"pw": "short"})
    assert "short" not in d.message and "short" not in d.hint


def test_invalid_pattern_is_reported() -> None:
    diags = fail("parameters:\n  p: {type: string, default: a, constraints: "
                 "[{allowed_pattern: '[a-'}]}\n")
    assert [d.code for d in diags] == ["invalid-constraint"]


def test_parameter_group_names_must_be_declared() -> None:
    diags = fail("parameter_groups: [{parameters: [flavour]}]\nparameters:\n"
                 "  flavor: {type: string, default: a}\n")
    assert where(diags) == [("unknown-parameter", 2, 34)]


# ------------------------------------------------------------------ conditions


def test_condition_errors() -> None:
    diags = fail("""\
parameters:
  env: {type: string, default: prod}
conditions:
  a: {not: b}
  b: {not: a}
  c: {equals: [{get_param: env}, {get_resource: web}]}
  d: {and: [a, nope]}
  e: {foo: 1}
resources:
  web: {type: Cloud::Compute::KeyPair, condition: missing}
""")
    codes = [d.code for d in diags]
    assert codes.count("condition-cycle") == 1
    assert "invalid-condition" in codes
    unknown = [d for d in diags if d.code == "unknown-condition"]
    assert [(d.loc.line, d.loc.column) for d in unknown] == [(8, 7), (11, 51)]
    assert unknown[0].message == "unknown condition 'nope'"


def test_conditions_can_reference_conditions_and_params() -> None:
    stack = run("""\
parameters:
  env: {type: string, default: prod}
  zone: {type: string, default: a}
conditions:
  prod: {equals: [{get_param: env}, prod]}
  zone_a: {equals: [{get_param: zone}, a]}
  both: {and: [prod, zone_a]}
  neither: {not: {or: [prod, zone_a]}}
resources:
  enabled: {type: Cloud::Compute::KeyPair, condition: both}
  disabled: {type: Cloud::Compute::KeyPair, condition: neither}
  lit: {type: Cloud::Compute::KeyPair, condition: false}
  expr: {type: Cloud::Compute::KeyPair, condition: {not: neither}}
""")
    assert list(stack.resources) == ["enabled", "expr"]


def test_reference_to_resource_dropped_by_condition() -> None:
    (d,) = fail("""\
resources:
  ip: {type: Cloud::Network::FloatingIP, condition: false}
  web:
    type: Cloud::Compute::Server
    properties: {image: i, flavor: f, key_name: {get_attr: [ip, ip]}}
""")
    assert (d.code, d.loc) == ("unknown-resource", Loc("t.yaml", 6, 50))
    assert "its condition excludes" in d.message


# ------------------------------------------------------------------ resources


def test_unknown_resource_type_with_hint() -> None:
    (d,) = fail("resources:\n  w: {type: Cloud::Compute::Sever}\n")
    assert (d.code, d.loc) == ("unknown-resource-type", Loc("t.yaml", 3, 13))
    assert d.hint.startswith("did you mean 'Cloud::Compute::Server'?")


def test_unknown_and_missing_property() -> None:
    diags = fail("resources:\n  w:\n    type: Cloud::Compute::Server\n"
                 "    properties: {image: i, flavour: f}\n")
    assert where(diags) == [("missing-property", 5, 5), ("unknown-property", 5, 28)]
    assert diags[0].message == "resource 'w': required property 'flavor' is missing"
    assert diags[1].hint.startswith("did you mean 'flavor'?")


def test_missing_properties_section() -> None:
    diags = fail("resources:\n  w: {type: Cloud::Block::Volume}\n")
    assert where(diags) == [("missing-property", 3, 3)]


def test_property_types() -> None:
    diags = fail("""\
resources:
  v: {type: Cloud::Block::Volume, properties: {size: big, metadata: [1]}}
  w:
    type: Cloud::Compute::Server
    properties: {image: i, flavor: f, security_groups: abc, user_data: {get_params: x}}
""")
    assert where(diags) == [("property-type", 3, 54), ("property-type", 3, 69),
                            ("property-type", 6, 56), ("property-type", 6, 72)]
    assert diags[0].message == "resource 'v': property 'size' must be an integer, not a string"
    assert "did you mean 'get_param'?" in diags[3].hint


def test_property_values_are_normalised_and_params_type_checked() -> None:
    stack = run("parameters:\n  s: {type: string, default: '20'}\n"
                "resources:\n  v: {type: Cloud::Block::Volume,\n"
                "      properties: {size: {get_param: s}}}\n")
    assert stack.resources["v"].properties["size"] == 20
    (d,) = fail("parameters:\n  s: {type: comma_delimited_list, default: 'a,b'}\n"
                "resources:\n  v: {type: Cloud::Block::Volume,\n"
                "      properties: {size: {get_param: s}}}\n")
    assert d.code == "property-type"


def test_unknown_resource_references() -> None:
    diags = fail("""\
resources:
  web:
    type: Cloud::Compute::Server
    depends_on: [db, wbe]
    properties: {image: i, flavor: f, key_name: {get_resource: kee}}
  key: {type: Cloud::Compute::KeyPair}
outputs:
  o: {value: {get_attr: [webb, first_address]}}
""")
    assert where(diags) == [("unknown-resource", 5, 18), ("unknown-resource", 5, 22),
                            ("unknown-resource", 6, 50), ("unknown-resource", 9, 15)]
    assert diags[1].hint.startswith("did you mean 'web'?")
    assert diags[2].hint.startswith("did you mean 'key'?")
    assert diags[3].message == "get_attr: unknown resource 'webb'"


def test_unknown_attribute() -> None:
    (d,) = fail(SERVER + "outputs:\n  o: {value: {get_attr: [web, frist_address]}}\n")
    assert (d.code, d.loc) == ("unknown-attribute", Loc("t.yaml", 7, 15))
    assert d.hint.startswith("did you mean 'first_address'?")


def test_get_param_of_undeclared_parameter() -> None:
    (d,) = fail(SERVER.replace("flavor: small", "flavor: {get_param: flavr}") +
                "parameters:\n  flavor: {type: string, default: x}\n")
    assert (d.code, d.loc) == ("unknown-parameter", Loc("t.yaml", 5, 48))
    assert d.hint.startswith("did you mean 'flavor'?")


def test_function_argument_errors_surface() -> None:
    (d,) = fail(SERVER.replace("flavor: small", "flavor: {get_param: []}"))
    assert (d.code, d.loc) == ("function-args", Loc("t.yaml", 5, 48))


# ------------------------------------------------------------------ placement


def test_placement_precedence() -> None:
    stack = run("""\
placement: {provider: os-fra}
resources:
  a: {type: Cloud::Compute::KeyPair}
  b: {type: Cloud::Compute::KeyPair, placement: {provider: sandbox-aws, region: eu-central-1}}
  c: {type: Cloud::Compute::KeyPair, placement: {region: RegionTwo}}
""", target="sandbox-aws/us-east-1")
    assert stack.resources["a"].placement == Placement("os-fra", "RegionOne")
    assert stack.resources["b"].placement == Placement("sandbox-aws", "eu-central-1", "DE", "EU")
    assert stack.resources["c"].placement == Placement("os-fra", "RegionTwo")


def test_target_option_and_default_target() -> None:
    kp = "resources:\n  a: {type: Cloud::Compute::KeyPair}\n"
    assert run(kp, target="os-fra/RegionTwo").resources["a"].placement == \
        Placement("os-fra", "RegionTwo")
    assert run(kp, target=None, default_target="os-fra").resources["a"].placement == \
        Placement("os-fra", "RegionOne")


def test_placement_errors() -> None:
    kp = "resources:\n  a: {type: Cloud::Compute::KeyPair}\n  b: {type: Cloud::Compute::KeyPair}\n"
    (d,) = fail(kp, target=None)  # reported once, not once per resource
    assert (d.code, d.loc) == ("no-target", Loc("t.yaml", 3, 3))
    assert "--target sandbox-aws" in d.hint and "default_target" in d.hint
    (d,) = fail(kp, target="nowhere")
    assert d.code == "unknown-target"
    assert "bare, os-fra, sandbox-aws" in d.hint
    (d,) = fail(kp, target="bare")
    assert d.code == "no-region"


# ------------------------------------------------------------------ accumulation


def test_one_call_reports_many_different_errors() -> None:
    env = load_text("parameters: {nope: 1}\n", "env.yaml")
    diags = fail("""\
resorces: {}
parameters:
  n: {type: number, constraints: [{range: {min: 1, max: 3}, description: 1 to 3 please}]}
  name: {type: string}
resources:
  a: {type: Cloud::Compute::Sever}
  b:
    type: Cloud::Compute::Server
    depends_on: [a, zz]
    properties: {image: x, flavour: y, key_name: {get_resource: c}, user_data: {get_attr: b}}
  v: {type: Cloud::Block::Volume, properties: {size: big}}
outputs:
  o: {value: {get_attr: [b, frist_address]}}
""", params={"n": "7", "nme": "x"}, environments=[env])
    codes = {d.code for d in diags}
    assert codes == {
        "parameter-constraint", "unknown-parameter", "unknown-section", "missing-parameter",
        "unknown-resource-type", "missing-property", "unknown-property", "unknown-resource",
        "function-args", "property-type", "unknown-attribute",
    }
    assert len(diags) == 13
    # sorted: command line first, then the environment, then the template by position
    assert [d.loc.file for d in diags[:3]] == ["<command line: -p n>", "<command line>", "env.yaml"]
    lines = [d.loc.line for d in diags[3:]]
    assert lines == sorted(lines)


# ------------------------------------------------------------------ deletion_policy Snapshot

def test_snapshot_policy_is_refused_where_the_type_cannot_snapshot() -> None:
    diags = fail("""\
resources:
  net:
    type: OS::Neutron::Net
    deletion_policy: Snapshot
  group:
    type: OS::Heat::ResourceGroup
    deletion_policy: snapshot
    properties:
      count: 1
      resource_def: {type: Cloud::Block::Volume, properties: {size: 1}}
  vol:
    type: OS::Cinder::Volume
    deletion_policy: Snapshot
    properties: {size: 1}
  data:
    type: Cloud::Block::Volume
    deletion_policy: Snapshot
    properties: {size: 1}
""")
    refused = [d for d in diags if d.code == "deletion-policy-unsupported"]
    # the deletion_policy key of net and of group; both volumes are fine
    assert where(refused) == [("deletion-policy-unsupported", 5, 5),
                              ("deletion-policy-unsupported", 8, 5)]
    assert "OS::Neutron::Net" in refused[0].message
    assert "Snapshot is supported for Cloud::Block::Volume / OS::Cinder::Volume" in refused[0].hint
    assert "use Retain or Delete" in refused[0].hint


def test_snapshot_policy_on_volumes_and_servers_resolves() -> None:
    # Heat takes Snapshot on a server (it saves an image): accepted, kept as with Retain
    stack = run("""\
resources:
  vol:
    type: OS::Cinder::Volume
    deletion_policy: Snapshot
    properties: {size: 1}
  web:
    type: OS::Nova::Server
    deletion_policy: Snapshot
    properties: {image: ubuntu-22.04, flavor: small}
""")
    assert stack.resources["vol"].deletion_policy == "Snapshot"
    assert stack.resources["web"].deletion_policy == "Snapshot"
