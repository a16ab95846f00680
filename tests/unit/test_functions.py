"""Intrinsic functions: parsing (argument shapes), dependencies, evaluation."""

from __future__ import annotations

from typing import Any

import pytest

from cloudtmpl.diagnostics import DiagnosticError, Loc
from cloudtmpl.functions import (
    REGISTRY,
    Function,
    GetAttr,
    GetParam,
    GetResource,
    dependencies,
    evaluate,
    partial_evaluate,
    to_text,
    walk,
)
from cloudtmpl.model import UNKNOWN
from tests.unit.fnctx import Ctx, ok, parse


def cond(text: str) -> Any:
    """A tree parsed in condition scope (the conditions section, if's first item)."""
    return ok(text, condition=True)


def test_registry_names() -> None:
    assert set(REGISTRY) == {
        "get_param", "get_resource", "get_attr", "get_file", "str_replace",
        "str_replace_strict", "str_replace_vstrict", "list_join", "str_split", "digest",
        "repeat", "map_merge", "map_replace", "list_concat", "list_concat_unique", "filter",
        "contains", "make_url", "if", "yaql", "resource_facade",
        "equals", "not", "and", "or"}


def test_nodes_are_frozen_hashable_and_readable() -> None:
    tree = ok("v: {get_attr: [web, first_address]}\n")
    assert isinstance(tree, GetAttr)
    assert repr(tree) == "{get_attr: [web, first_address]}"
    assert tree.loc == Loc("f.yaml", 1, 5)
    assert hash(tree) == hash(ok("v:\n  get_attr: [web, first_address]\n"))
    assert tree == ok("v:\n  get_attr: [web, first_address]\n")  # loc is not part of equality
    with pytest.raises(AttributeError):
        tree.args = ()  # type: ignore[misc]
    nested = ok("v: {str_replace: {template: 'http://$h/', params: {$h: {get_param: [m, k]}}}}\n")
    assert {nested: 1}[nested] == 1
    assert to_text(nested) == (
        '{str_replace: {template: "http://$h/", params: {$h: {get_param: [m, k]}}}}')


def test_unknown_function_like_key_is_data() -> None:
    tree = ok("v: {get_params: x}\n")
    assert tree == {"get_params": "x"}
    assert ok("v: {get_param: x, other: 1}\n") == {"get_param": "x", "other": 1}


@pytest.mark.parametrize(("text", "line", "col", "usage"), [
    ("v: {get_param: 3}", 1, 5, "{get_param: name}"),
    ("v: {get_param: []}", 1, 5, "{get_param: name}"),
    ("v: {get_param: [1, a]}", 1, 5, "{get_param: name}"),
    ("v: {get_resource: [a]}", 1, 5, "{get_resource: resource_name}"),
    ("v: {get_attr: web}", 1, 5, "{get_attr: [resource_name, attribute_name"),
    ("v: {get_attr: []}", 1, 5, "{get_attr: [resource_name, attribute_name"),
    ("v: {get_attr: [web, {a: 1}]}", 1, 5, "{get_attr: [resource_name, attribute_name"),
    ("v: {str_replace: abc}", 1, 5, "{str_replace: {template:"),
    ("v: {str_replace: {template: x}}", 1, 5, "{str_replace: {template:"),
    ("v: {str_replace: {template: x, params: {}, extra: 1}}", 1, 5, "{str_replace: {template:"),
    ("v: {str_replace: {template: [x], params: {}}}", 1, 19, "{str_replace: {template:"),
    ("v: {str_replace: {template: x, params: [a]}}", 1, 32, "{str_replace: {template:"),
    ("v: {list_join: ','}", 1, 5, "{list_join: [delimiter"),
    ("v: {list_join: [',']}", 1, 5, "{list_join: [delimiter"),
    ("v: {list_join: [',', abc]}", 1, 22, "{list_join: [delimiter"),
    ("v: {list_join: [[x], [a]]}", 1, 17, "{list_join: [delimiter"),
    ("v: {if: [c]}", 1, 5, "{if: [condition_name_or_function"),
    ("v: {if: [[c], a, b]}", 1, 10, "{if: [condition_name_or_function"),
    ("v: {equals: [a]}", 1, 5, "{equals: [value1, value2]}"),
    ("v: {equals: a}", 1, 5, "{equals: [value1, value2]}"),
    ("v: {not: [a]}", 1, 5, "{not: condition_name_or_function}"),
    ("v: {not: {x: 1}}", 1, 5, "{not: condition_name_or_function}"),
    ("v: {and: [a]}", 1, 5, "{and: [condition1, condition2, ...]}"),
    ("v: {or: c}", 1, 5, "{or: [condition1, condition2, ...]}"),
])
def test_wrong_argument_shapes(text: str, line: int, col: int, usage: str) -> None:
    condition_only = any(f"{{{n}:" in text for n in ("equals", "not", "and", "or"))
    tree, diags = parse(text + "\n", condition=condition_only)
    assert tree is UNKNOWN
    (d,) = diags
    assert d.code == "function-args"
    assert (d.loc.line, d.loc.column) == (line, col)
    assert d.hint.startswith("write it as " + usage)


def test_nested_bad_calls_all_reported() -> None:
    tree, diags = parse("v:\n  - {get_attr: x}\n  - {list_join: [',', [{get_resource: 1}]]}\n"
                        "  - {if: [{and: [{equals: [1]}, {not: [2]}]}, a, b]}\n")
    assert [(d.code, d.loc.line, d.loc.column) for d in diags] == [
        ("function-args", 2, 6), ("function-args", 3, 25),
        ("function-args", 4, 19), ("function-args", 4, 34)]
    assert tree[0] is UNKNOWN


def test_get_param_with_path() -> None:
    ctx = Ctx({"m": {"a": [10, {"b": "deep"}]}, "s": "x"})
    assert evaluate(ok("v: {get_param: s}\n"), ctx) == "x"
    assert evaluate(ok("v: {get_param: [m, a, 1, b]}\n"), ctx) == "deep"
    assert evaluate(ok("v: {get_param: [m, a, 0]}\n"), ctx) == 10
    nested = ok("v: {get_param: [m, {get_param: s}]}\n")
    assert evaluate(nested, Ctx({"m": {"x": 5}, "s": "x"})) == 5
    assert evaluate(ok("v: {get_param: [missing, a]}\n"), ctx) is UNKNOWN
    with pytest.raises(DiagnosticError) as exc:
        evaluate(ok("v: {get_param: [m, nope]}\n"), ctx)
    assert exc.value.diagnostics[0].code == "function-error"
    assert exc.value.diagnostics[0].loc == Loc("f.yaml", 1, 5)


def test_get_resource_and_get_attr() -> None:
    ctx = Ctx(attrs={("web", "ref"): "i-123", ("web", "addresses"): "10.0.0.1"})
    assert evaluate(ok("v: {get_resource: web}\n"), ctx) == "i-123"
    assert evaluate(ok("v: {get_attr: [web, addresses, net, 0]}\n"), ctx) == "10.0.0.1"
    assert ctx.attr_calls == [("web", "addresses", ("net", 0))]
    assert evaluate(ok("v: {get_attr: [db, ip]}\n"), ctx) is UNKNOWN
    node = ok("v: {get_attr: [web, a, {get_param: k}]}\n")
    assert isinstance(node, GetAttr) and (node.resource, node.attribute) == ("web", "a")
    assert evaluate(node, Ctx()) is UNKNOWN  # path item unknown


def test_str_replace() -> None:
    tree = ok("v: {str_replace: {template: '$a-$ab-$a', params: {$a: 1, $ab: [x], $c: null}}}\n")
    assert evaluate(tree, Ctx()) == '1-["x"]-1'
    chained = ok("v: {str_replace: {template: 'AB', params: {A: B, B: C}}}\n")
    assert evaluate(chained, Ctx()) == "BC"  # one pass: a replacement is not replaced again
    with_attr = ok("v: {str_replace: {template: 'ip=$ip', params: {$ip: {get_attr: [w, ip]}}}}\n")
    assert evaluate(with_attr, Ctx()) is UNKNOWN
    assert evaluate(with_attr, Ctx(attrs={("w", "ip"): "1.2.3.4"})) == "ip=1.2.3.4"


def test_list_join() -> None:
    tree = ok("v: {list_join: [', ', [a, b], {get_param: l}, [{x: 1}, [2]]]}\n")
    assert evaluate(tree, Ctx({"l": ["c"]})) == 'a, b, c, {"x": 1}, [2]'
    assert evaluate(tree, Ctx()) is UNKNOWN
    with pytest.raises(DiagnosticError) as exc:
        evaluate(tree, Ctx({"l": "notalist"}))
    assert exc.value.diagnostics[0].code == "function-error"


def test_conditions() -> None:
    ctx = Ctx({"env": "prod"}, {"yes": True, "no": False})
    assert evaluate(cond("v: {equals: [{get_param: env}, prod]}\n"), ctx) is True
    assert evaluate(cond("v: {equals: [1, '1']}\n"), ctx) is False
    assert evaluate(cond("v: {not: yes}\n"), ctx) is False
    assert evaluate(cond("v: {not: {equals: [1, 2]}}\n"), ctx) is True
    assert evaluate(cond("v: {and: [yes, true, {not: no}]}\n"), ctx) is True
    assert evaluate(cond("v: {or: [no, false]}\n"), ctx) is False
    assert evaluate(ok("v: {if: [yes, big, small]}\n"), ctx) == "big"
    tree = ok("v: {if: [{equals: [{get_param: env}, dev]}, big, small]}\n")
    assert evaluate(tree, ctx) == "small"


def test_unknown_propagation_and_decidable_cases() -> None:
    ctx = Ctx({}, {"no": False, "yes": True})  # every param and other condition is UNKNOWN
    assert evaluate(cond("v: {equals: [{get_param: p}, 1]}\n"), ctx) is UNKNOWN
    assert evaluate(cond("v: {and: [maybe, no]}\n"), ctx) is False
    assert evaluate(cond("v: {and: [maybe, yes]}\n"), ctx) is UNKNOWN
    assert evaluate(cond("v: {or: [maybe, yes]}\n"), ctx) is True
    assert evaluate(cond("v: {not: maybe}\n"), ctx) is UNKNOWN
    assert evaluate(ok("v: {if: [maybe, a, b]}\n"), ctx) is UNKNOWN
    assert evaluate(ok("v: {if: [yes, a, {get_param: p}]}\n"), ctx) == "a"


def test_condition_must_be_boolean() -> None:
    with pytest.raises(DiagnosticError) as exc:
        evaluate(ok("v: {if: [{get_param: p}, a, b]}\n"), Ctx({"p": "text"}))
    assert exc.value.diagnostics[0].code == "function-error"


def test_dependencies_and_walk() -> None:
    tree = ok("""\
v:
  a: {get_resource: net}
  b: [{get_attr: [web, ip]}, {get_param: x}]
  c:
    if:
      - cond
      - {get_resource: lb}
      - {list_join: [',', [{get_attr: [db, host, {get_attr: [k, n]}]}]]}
""")
    assert dependencies(tree) == {"net", "web", "lb", "db", "k"}
    names = [type(n).__name__ for n in walk(tree)]
    assert names.count("GetAttrAll") == 3 and names.count("GetParam") == 1


def test_partial_evaluate_keeps_resource_nodes() -> None:
    tree = ok("""\
v:
  name: {str_replace: {template: '$s-web', params: {$s: {get_param: stack}}}}
  flavor: {if: [prod, large, {get_param: flavor}]}
  user_data:
    str_replace:
      template: 'db=$db port=$port'
      params: {$db: {get_attr: [db, first_address]}, $port: {get_param: port}}
  pick: {if: [prod, {get_resource: big}, {get_resource: small}]}
""")
    ctx = Ctx({"stack": "demo", "flavor": "m1", "port": 5432}, {"prod": False})
    out = partial_evaluate(tree, ctx)
    assert out["name"] == "demo-web"
    assert out["flavor"] == "m1"
    assert out["pick"] == GetResource(("small",))
    ud = out["user_data"]
    assert isinstance(ud, Function) and ud.name == "str_replace"
    assert to_text(ud) == ('{str_replace: {template: "db=$db port=$port", '
                           'params: {$db: {get_attr: [db, first_address]}, $port: 5432}}}')
    assert dependencies(out) == {"db", "small"}
    final = evaluate(out, Ctx(attrs={("db", "first_address"): "10.0.0.5", ("small", "ref"): "i-1"}))
    assert final["user_data"] == "db=10.0.0.5 port=5432"
    assert final["pick"] == "i-1"


def test_get_param_node_fields() -> None:
    node = ok("v: {get_param: [m, a]}\n")
    assert isinstance(node, GetParam) and node.param_name == "m"
    assert to_text(node) == "{get_param: [m, a]}"
    assert to_text(ok("v: {get_param: m}\n")) == "{get_param: m}"
