"""Every intrinsic function against the examples of Heat's HOT specification.

Each test quotes the spec's example input and its documented result, then the
documented error cases (and Heat's behaviour where the spec is silent).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc
from cloudtmpl.functions import OMIT, Function, evaluate, parse_tree, partial_evaluate
from cloudtmpl.loader import load_text
from cloudtmpl.model import UNKNOWN
from tests.unit.fnctx import Ctx as BaseCtx


class Ctx(BaseCtx):
    """The unit tests' context, with attribute paths and files."""

    def __init__(self, params: dict[str, Any] | None = None,
                 conditions: dict[str, Any] | None = None,
                 attrs: dict[tuple[str, str], Any] | None = None,
                 files: dict[str, str] | None = None) -> None:
        super().__init__(params, conditions, attrs)
        self.files = files or {}

    def resource_attr(self, name: str, attr: str, path: tuple[Any, ...]) -> Any:
        value = super().resource_attr(name, attr, path)
        for step in path:
            value = value[step]
        return value

    def get_file(self, path: str, loc: Loc) -> Any:
        return self.files[path]


def tree(text: str, version: str = "2021-04-16", condition: bool = False) -> Any:
    doc = load_text(text, "f.yaml")
    diags: list[Diagnostic] = []
    out = parse_tree(doc.data["v"], ("v",), doc, diags, version=version, condition=condition)
    assert diags == [], diags
    return out


def value(text: str, ctx: Ctx | None = None, **kw: Any) -> Any:
    return evaluate(tree(text, **kw), ctx or Ctx())


def diagnostics(text: str, version: str = "2021-04-16", condition: bool = False
                ) -> list[Diagnostic]:
    doc = load_text(text, "f.yaml")
    diags: list[Diagnostic] = []
    parse_tree(doc.data["v"], ("v",), doc, diags, version=version, condition=condition)
    return diags


def error(text: str, ctx: Ctx | None = None, **kw: Any) -> Diagnostic:
    with pytest.raises(DiagnosticError) as exc:
        value(text, ctx, **kw)
    (d,) = exc.value.diagnostics
    assert d.code == "function-error"
    return d


# ------------------------------------------------------------------ get_attr / get_param

NETWORKS = {"public": ["2001:0db8:0000:0000:0000:ff00:0042:8329", "1.2.3.4"],
            "private": ["10.0.0.1"]}


def test_get_attr_spec_example() -> None:
    ctx = Ctx(attrs={("my_instance", "first_address"): "10.0.0.1",
                     ("my_instance", "networks"): NETWORKS})
    assert value("v: {get_attr: [my_instance, first_address]}", ctx) == "10.0.0.1"
    assert value("v: {get_attr: [my_instance, networks, private, 0]}", ctx) == "10.0.0.1"
    # the one-argument (all attributes) form parses from 2015-10-15 on
    node = tree("v: {get_attr: [my_instance]}")
    assert isinstance(node, Function) and node.dependencies() == {"my_instance"}
    assert diagnostics("v: {get_attr: [my_instance]}", "2015-04-30")[0].code == "function-args"


def test_get_param_spec_example() -> None:
    ctx = Ctx({"instance_type": "m1.tiny",
               "server_data": {"metadata": {"foo": "bar"}, "keys": ["a_key", "other_key"]}})
    assert value("v: {get_param: instance_type}", ctx) == "m1.tiny"
    assert value("v: {get_param: [server_data, metadata]}", ctx) == {"foo": "bar"}
    assert value("v: {get_param: [server_data, keys, 0]}", ctx) == "a_key"
    assert error("v: {get_param: [server_data, keys, 5]}", ctx).message.startswith(
        "get_param: index '5'")


def test_get_resource_spec_example() -> None:
    node = tree("v: {port: {get_resource: instance_port}}")
    assert partial_evaluate(node, Ctx()) == node  # stays a node until apply
    assert value("v: {port: {get_resource: instance_port}}",
                 Ctx(attrs={("instance_port", "ref"): "p-1"})) == {"port": "p-1"}


def test_get_file_reads_through_the_context() -> None:
    ctx = Ctx(files={"my_instance_user_data.sh": "#!/bin/sh\n"})
    assert value("v: {get_file: my_instance_user_data.sh}", ctx) == "#!/bin/sh\n"
    assert diagnostics("v: {get_file: {get_param: p}}")[0].code == "function-args"


# ------------------------------------------------------------------ strings


def test_list_join_spec_examples() -> None:
    assert value("v: {list_join: [', ', ['one', 'two', 'and three']]}") == "one, two, and three"
    assert value("v: {list_join: [', ', ['one', 'two'], ['three', 'four']]}") == \
        "one, two, three, four"
    # from 2015-10-15 maps and lists are joined as JSON; numbers are an error, as in Heat
    assert value("v: {list_join: [',', [{a: 1}, [1]]]}") == '{"a": 1},[1]'
    assert "must be strings, maps or lists" in error("v: {list_join: [',', [1]]}").message
    # before 2015-10-15: a single list of strings
    assert value("v: {list_join: [',', [a, b]]}", version="2014-10-16") == "a,b"
    (d,) = diagnostics("v: {list_join: [',', [a], [b]]}", "2014-10-16")
    assert d.code == "function-args" and d.hint.startswith("write it as {list_join: [delimiter")
    assert "must be strings" in error("v: {list_join: [',', [[x]]]}", version="2014-10-16"
                                      ).message


def test_digest_spec_example() -> None:
    ctx = Ctx({"raw_password": "s3cret"})
    assert value("v: {digest: ['sha512', {get_param: raw_password}]}", ctx) == \
        hashlib.sha512(b"s3cret").hexdigest()
    for algorithm in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512"):
        assert value(f"v: {{digest: [{algorithm}, abc]}}") == \
            hashlib.new(algorithm, b"abc").hexdigest()
    assert diagnostics("v: {digest: [crc32, abc]}")[0].code == "function-args"
    assert diagnostics("v: {digest: [md5]}")[0].code == "function-args"
    assert value("v: {digest: [sha256, {get_param: p}]}") is UNKNOWN


def test_str_replace_spec_examples() -> None:
    ctx = Ctx({"DBRootPassword": "pw"}, attrs={("my_instance", "first_address"): "10.0.0.9"})
    assert value("v: {str_replace: {template: http://host/MyApplication, "
                 "params: {host: {get_attr: [my_instance, first_address]}}}}", ctx) == \
        "http://10.0.0.9/MyApplication"
    script = value("""\
v:
  str_replace:
    template: |
      #!/bin/bash
      echo "Hello world"
      mysqladmin -u root password $db_rootpassword
    params:
      $db_rootpassword: {get_param: DBRootPassword}
""", ctx)
    assert script.endswith("mysqladmin -u root password pw\n")


def test_str_replace_heat_semantics() -> None:
    # longer placeholders first, ties alphabetical, replacements never replaced again
    assert value("v: {str_replace: {template: 'xabc', params: {abc: 1, xa: 2}}}") == "x1"
    assert value("v: {str_replace: {template: AB, params: {A: B, B: C}}}") == "BC"
    # non-string values: numbers as text, maps/lists as JSON (2015-10-15 on)
    assert value("v: {str_replace: {template: '$m $n', params: {$m: {a: 1}, $n: 2}}}") == \
        '{"a": 1} 2'
    assert "strings or numbers" in error(
        "v: {str_replace: {template: '$m', params: {$m: [1]}}}", version="2015-04-30").message


def test_str_replace_strict_and_vstrict() -> None:
    assert value("v: {str_replace_strict: {template: 'a $x', params: {$x: 1}}}") == "a 1"
    d = error("v: {str_replace_strict: {template: 'a $x', params: {$x: 1, $y: 2, $zz: 3}}}")
    assert d.message == ("str_replace_strict: the following params were not found in the "
                         "template: $zz,$y")
    assert value("v: {str_replace_strict: {template: 'a $x', params: {$x: ''}}}") == "a "
    assert "empty value" in error(
        "v: {str_replace_vstrict: {template: 'a $x', params: {$x: ''}}}").message
    assert "empty value" in error(
        "v: {str_replace_vstrict: {template: 'a $x', params: {$x: null}}}").message


def test_str_split_spec_examples() -> None:
    assert value("v: {str_split: [',', 'string,to,split']}") == ["string", "to", "split"]
    assert value("v: {str_split: [',', 'string,to,split', 0]}") == "string"
    d = error("v: {str_split: [',', 'string,to,split', 3]}")
    assert "out of range" in d.message
    assert diagnostics("v: {str_split: ','}")[0].code == "function-args"
    assert value("v: {str_split: [',', {get_param: s}]}") is UNKNOWN


# ------------------------------------------------------------------ lists and maps


def test_repeat_spec_examples() -> None:
    ctx = Ctx({"ports": ["80", "443", "8080"], "protocols": ["tcp", "udp"]})
    rules = value("""\
v:
  repeat:
    for_each:
      <%port%>: { get_param: ports }
    template:
      protocol: tcp
      port_range_min: <%port%>
      port_range_max: <%port%>
""", ctx)
    assert rules == [{"protocol": "tcp", "port_range_min": p, "port_range_max": p}
                     for p in ("80", "443", "8080")]
    nested = value("""\
v:
  repeat:
    for_each:
      <%port%>: { get_param: ports }
      <%protocol%>: { get_param: protocols }
    template:
      protocol: <%protocol%>
      port_range_min: <%port%>
""", ctx)
    assert nested == [{"protocol": proto, "port_range_min": port}
                      for port in ("80", "443", "8080") for proto in ("tcp", "udp")]


def test_repeat_permutations_false_spec_example() -> None:
    ctx = Ctx({"subnets": ["sub1", "sub2"], "networks": ["net1", "net2"]})
    text = """\
v:
  repeat:
    for_each:
      <%sub%>: { get_param: subnets }
      <%net%>: { get_param: networks }
    template:
      subnet: <%sub%>
      network: <%net%>
    permutations: false
"""
    assert value(text, ctx) == [{"subnet": "sub1", "network": "net1"},
                                {"subnet": "sub2", "network": "net2"}]
    assert "same length" in error(text, Ctx({"subnets": ["a"], "networks": ["b", "c"]})).message
    (d,) = diagnostics(text, "2016-10-14")
    assert d.code == "function-not-available" and "2017-09-01" in d.hint


def test_repeat_over_map_keys_from_newton() -> None:
    text = "v: {repeat: {for_each: {'%k%': {a: 1, b: 2}}, template: 'key-%k%'}}"
    assert value(text) == ["key-a", "key-b"]
    assert "must be lists" in error(text, version="2016-04-08").message
    assert "must be lists" in error(
        "v: {repeat: {for_each: {'%k%': {a: 1}}, template: x, permutations: false}}").message


def test_map_merge_spec_example() -> None:
    assert value("v: {map_merge: [{'k1': 'v1', 'k2': 'v2'}, {'k1': 'v2'}]}") == \
        {"k1": "v2", "k2": "v2"}
    assert value("v: {map_merge: [{}, null]}") == {}
    assert "must be maps" in error("v: {map_merge: [{a: 1}, [b]]}").message
    assert value("v: {map_merge: {get_param: maps}}", Ctx({"maps": [{"a": 1}, {"b": 2}]})) == \
        {"a": 1, "b": 2}


def test_map_replace_spec_example() -> None:
    assert value("""\
v:
  map_replace:
  - k1: v1
    k2: v2
  - keys:
      k1: K1
    values:
      v2: V2
""") == {"K1": "v1", "k2": "V2"}
    assert value("v: {map_replace: [{k1: [v]}, {values: {v: x}}]}") == {"k1": ["v"]}
    assert "collides with a key in the input map" in error(
        "v: {map_replace: [{k1: a, k2: b}, {keys: {k1: k2}}]}").message
    assert "collides with a key in the output map" in error(
        "v: {map_replace: [{k1: a, k2: b}, {keys: {k1: x, k2: x}}]}").message
    assert diagnostics("v: {map_replace: [{k1: a}, {other: {}}]}")[0].code == "function-args"
    # a list or map as the new key is an error, never a crash (hypothesis found one)
    assert "must be a string, not a list" in error(
        "v: {map_replace: [{k1: a}, {keys: {k1: [x]}}]}").message


def test_filter_spec_example() -> None:
    assert value("v: {filter: [[3], {get_param: list_param}]}",
                 Ctx({"list_param": ["1", "2", "3"]})) == ["1", "2", "3"]
    assert value("v: {filter: [[3], [1, 2, 3]]}") == [1, 2]
    assert value("v: {filter: [null, [1, 2]]}") == [1, 2]
    assert "only" not in str(value("v: {filter: [[1], []]}"))
    assert "must be a list" in error("v: {filter: [[1], abc]}").message


def test_make_url_spec_example() -> None:
    ctx = Ctx(attrs={("server", "networks"): {"private": ["fd00::1"]}})
    text = """\
v:
  make_url:
    scheme: http
    host: {get_attr: [server, networks, private, 0]}
    port: 8080
    path: /hello
    query:
      recipient: world
    fragment: greeting
"""
    assert value(text, ctx) == "http://[fd00::1]:8080/hello?recipient=world#greeting"
    assert value("v: {make_url: {scheme: https, username: 'a b', password: 'p@ss', "
                 "host: example.com, path: /x y}}") == \
        "https://a%20b:p%40ss@example.com/x%20y"
    assert diagnostics("v: {make_url: {port: 70000}}")[0].code == "function-args"
    assert diagnostics("v: {make_url: {host: a, user: b}}")[0].code == "function-args"
    assert diagnostics("v: {make_url: {query: a}}")[0].code == "function-args"


def test_list_concat_spec_examples() -> None:
    assert value("v: {list_concat: [['v1', 'v2'], ['v3', 'v4']]}") == ["v1", "v2", "v3", "v4"]
    assert value("v: {list_concat: [[a], null]}") == ["a"]  # null values are ignored
    assert value("v: {list_concat_unique: [['v1', 'v2'], ['v2', 'v3']]}") == ["v1", "v2", "v3"]
    assert value("v: {list_concat_unique: [[a, b], [b, a]]}") == ["b", "a"]  # Heat's order
    assert "must be lists" in error("v: {list_concat: [[a], b]}").message


def test_contains_spec_example() -> None:
    assert value("v: {contains: ['v1', ['v1', 'v2', 'v3']]}") is True
    assert value("v: {contains: ['v4', ['v1', 'v2', 'v3']]}") is False
    assert value("v: {contains: [neutron, {get_param: ServiceNames}]}", condition=True) is \
        UNKNOWN
    assert "sequence" in error("v: {contains: [a, {b: 1}]}").message


# ------------------------------------------------------------------ conditions


def test_condition_examples_of_the_conditions_section() -> None:
    ctx = Ctx({"param1": True, "param2": "yes", "param3": "no", "env_type": "prod",
               "zone": "beijing", "ServiceNames": ["heat", "neutron"]},
              {"cd1": True, "cd2": True, "cd4": True})
    assert value("v: {get_param: param1}", ctx, condition=True) is True
    assert value("v: {equals: [{get_param: param2}, 'yes']}", ctx, condition=True) is True
    assert value("v: {not: {equals: [{get_param: param3}, 'yes']}}", ctx, condition=True) is True
    assert value("v: {and: [{equals: [{get_param: env_type}, prod]}, "
                 "{not: {equals: [{get_param: zone}, beijing]}}]}", ctx, condition=True) is False
    assert value("v: {or: [{equals: [{get_param: zone}, shanghai]}, "
                 "{equals: [{get_param: zone}, beijing]}]}", ctx, condition=True) is True
    assert value("v: {not: cd4}", ctx, condition=True) is False
    assert value("v: {and: [cd1, cd2]}", ctx, condition=True) is True
    assert value("v: {not: True}", condition=True) is False
    assert value("v: {contains: ['neutron', {get_param: ServiceNames}]}", ctx,
                 condition=True) is True


def test_condition_function_errors() -> None:
    (d,) = diagnostics("v: {and: [a]}", condition=True)
    assert d.code == "function-args" and "at least 2" in d.message
    (d,) = diagnostics("v: {str_replace: {template: a, params: {}}}", condition=True)
    assert d.code == "invalid-condition"
    (d,) = diagnostics("v: {yaql: {expression: $.data}}", condition=True)
    assert d.code == "function-unsupported"
    (d,) = diagnostics("v: {contains: [a, [a]]}", "2017-02-24", condition=True)
    assert d.code == "function-not-available" and "2017-09-01" in d.hint


def test_if_spec_example() -> None:
    text = "v: {name: {if: ['create_prod_res', 's_prod', 's_test']}}"
    assert value(text, Ctx(conditions={"create_prod_res": True})) == {"name": "s_prod"}
    assert value(text, Ctx(conditions={"create_prod_res": False})) == {"name": "s_test"}
    assert value(text) == {"name": UNKNOWN}


def test_if_two_argument_form_from_wallaby() -> None:
    text = "v: [a, {if: [c, b]}, {x: {if: [c, 1]}}]"
    assert value(text, Ctx(conditions={"c": True})) == ["a", "b", {"x": 1}]
    assert value(text, Ctx(conditions={"c": False})) == ["a", {}]
    assert value("v: {if: [c, b]}", Ctx(conditions={"c": False})) is OMIT
    (d,) = diagnostics("v: {if: [c, b]}", "2018-08-31")
    assert d.code == "function-args" and "exactly 3" in d.message


def test_equals_and_condition_functions_are_only_conditions() -> None:
    (d,) = diagnostics("v: {equals: [a, b]}")
    assert d.code == "function-not-available" and "condition function" in d.message
    doc = load_text("v: {x: {equals: [a, b]}}", "f.yaml")
    diags: list[Diagnostic] = []
    data = parse_tree(doc.data["v"], ("v",), doc, diags, version="2015-10-15")
    assert data == {"x": {"equals": ["a", "b"]}}  # stays data, as in Heat
    assert [d.code for d in diags] == ["function-not-available"]
    assert "conditions need HOT 2016-10-14 (newton)" in diags[0].hint


# ------------------------------------------------------------------ unsupported


def test_yaql_is_refused_with_a_clear_diagnostic() -> None:
    (d,) = diagnostics("""\
v:
  yaql:
    expression: $.data.list_param.select(int($)).max()
    data:
      list_param: {get_param: list_param}
""")
    assert d.code == "function-unsupported" and d.message.startswith("yaql:")
    assert "rewrite" in d.hint


def test_resource_facade_and_cfn_functions_are_refused() -> None:
    assert diagnostics("v: {resource_facade: metadata}")[0].code == "function-unsupported"
    assert diagnostics("v: {'Fn::Join': [',', [a]]}", "2013-05-23")[0].code == \
        "function-unsupported"
    (d,) = diagnostics("v: {'Fn::Select': [0, [a]]}")
    assert d.code == "function-not-available" and "removed" in d.message
