"""Property tests: random well-formed templates never crash resolve, and resolve is
deterministic (the same template gives the same stack or the same diagnostics)."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.loader import load_text
from cloudtmpl.model import Target
from cloudtmpl.resolve import ResolvedStack, ResolveOptions, resolve
from cloudtmpl.schema import HOT_VERSIONS, PARAMETER_TYPES

TARGETS = {"sandbox-aws": Target("sandbox-aws", "aws", "us-east-1")}
PARAMS = ("p0", "p1", "p2", "p3")
CONDITIONS = ("c0", "c1", "c2")
RESOURCES = {
    "r0": ("Cloud::Compute::KeyPair", {"public_key"}, ("name", "fingerprint")),
    "r1": ("Cloud::Block::Volume", {"size", "volume_type", "metadata"}, ("size", "status")),
    "r2": ("Cloud::Network::SecurityGroup", {"description", "rules"}, ("id", "name")),
    "r3": ("OS::Nova::Server", {"image", "flavor", "key_name", "user_data", "metadata"},
           ("first_address", "networks")),
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000),
                    st.sampled_from(["a", "b,c", "", "80", "$x", "<%v%>", "{}", "yes"]))
names = st.sampled_from((*PARAMS, "OS::stack_name", "undeclared"))


def calls(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    lists = st.lists(children, max_size=3)
    maps = st.dictionaries(st.sampled_from(["k", "$x", "<%v%>"]), children, max_size=2)
    cond = st.one_of(st.sampled_from((*CONDITIONS, True, False)),
                     st.builds(lambda a, b: {"equals": [a, b]}, children, children))
    return st.one_of(
        lists, maps,
        st.builds(lambda n, path: {"get_param": [n, *path] if path else n}, names,
                  st.lists(st.sampled_from(["k", 0, 1]), max_size=2)),
        st.builds(lambda r: {"get_resource": r}, st.sampled_from([*RESOURCES, "nope"])),
        st.builds(lambda r, a, path: {"get_attr": [r, a, *path]},
                  st.sampled_from(list(RESOURCES)),
                  st.sampled_from(["name", "size", "id", "first_address", "networks"]),
                  st.lists(st.sampled_from(["k", 0]), max_size=1)),
        st.builds(lambda t, p: {"str_replace": {"template": t, "params": p}}, children, maps),
        st.builds(lambda t, p: {"str_replace_strict": {"template": t, "params": p}},
                  children, maps),
        st.builds(lambda d, ls: {"list_join": [d, *ls]}, children, st.lists(lists, max_size=2)),
        st.builds(lambda d, s, i: {"str_split": [d, s, *i]}, children, children,
                  st.lists(st.integers(-1, 3), max_size=1)),
        st.builds(lambda c, a, b: {"if": [c, a, *b]}, cond, children,
                  st.lists(children, max_size=1)),
        st.builds(lambda ms: {"map_merge": ms}, st.lists(children, max_size=3)),
        st.builds(lambda m, k: {"map_replace": [m, {"keys": k}]}, children, maps),
        st.builds(lambda ls: {"list_concat": ls}, st.lists(children, max_size=3)),
        st.builds(lambda ls: {"list_concat_unique": ls}, st.lists(children, max_size=3)),
        st.builds(lambda v, s: {"contains": [v, s]}, children, children),
        st.builds(lambda v, s: {"filter": [v, s]}, children, children),
        st.builds(lambda a, v: {"digest": [a, v]}, st.sampled_from(["sha256", "md5", "x"]),
                  children),
        st.builds(lambda f, t, perm: {"repeat": {"for_each": {"<%v%>": f}, "template": t,
                                                 **perm}},
                  children, children, st.sampled_from([{}, {"permutations": False}])),
        st.builds(lambda h, port: {"make_url": {"host": h, "port": port}}, children, children),
        st.just({"yaql": {"expression": "$.data"}}),
    )


trees = st.recursive(scalars, calls, max_leaves=8)


@st.composite
def parameter(draw: st.DrawFn) -> dict[str, Any]:
    ptype = draw(st.sampled_from(PARAMETER_TYPES))
    out: dict[str, Any] = {"type": ptype}
    if draw(st.booleans()):
        out["default"] = draw(st.one_of(scalars, st.lists(scalars, max_size=2),
                                        st.dictionaries(st.just("k"), scalars, max_size=1)))
    if draw(st.booleans()):
        out["hidden"] = True
    constraint = draw(st.sampled_from([
        None, {"allowed_values": ["a", 1, "80"]}, {"range": {"min": 0, "max": 100}},
        {"length": {"min": 1}}, {"allowed_pattern": "[a-z]*"}, {"modulo": {"step": 2,
                                                                            "offset": 1}},
        {"custom_constraint": "nova.flavor"}, {"range": {"min": 1}, "length": {"max": 2}}]))
    if constraint is not None:
        out["constraints"] = [constraint]
    return out


@st.composite
def templates(draw: st.DrawFn) -> dict[str, Any]:
    template: dict[str, Any] = {"heat_template_version": draw(st.sampled_from(HOT_VERSIONS))}
    params = draw(st.dictionaries(st.sampled_from(PARAMS), parameter(), max_size=4))
    if params:
        template["parameters"] = params
    conds = draw(st.dictionaries(st.sampled_from(CONDITIONS), st.one_of(
        st.booleans(), st.sampled_from(CONDITIONS),
        st.builds(lambda n, v: {"equals": [{"get_param": n}, v]}, names, scalars),
        st.builds(lambda c: {"not": c}, st.sampled_from(CONDITIONS)),
        st.builds(lambda a, b: {"or": [a, b]}, st.sampled_from(CONDITIONS), st.booleans())),
        max_size=3))
    if conds:
        template["conditions"] = conds
    resources: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(list(RESOURCES)), unique=True, max_size=4)):
        rtype, props, _ = RESOURCES[name]
        rdef: dict[str, Any] = {"type": rtype, "properties": draw(
            st.dictionaries(st.sampled_from(sorted(props)), trees, max_size=3))}
        if draw(st.booleans()):
            rdef["condition"] = draw(st.sampled_from((*CONDITIONS, True)))
        resources[name] = rdef
    template["resources"] = resources
    template["outputs"] = {"o": {"value": draw(trees)}}
    return template


def attempt(text: str, mode: str, params: dict[str, str]) -> Any:
    try:
        return resolve(load_text(text, "t.yaml"),
                       ResolveOptions(stack="s", mode=mode,  # type: ignore[arg-type]
                                      params=params, target="sandbox-aws", targets=TARGETS))
    except DiagnosticError as exc:
        return exc.diagnostics


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(templates(), st.sampled_from(["validate", "plan"]),
       st.dictionaries(st.sampled_from(PARAMS), st.sampled_from(["1", "a", "x,y", "{}"]),
                       max_size=2))
def test_resolve_never_crashes_and_is_deterministic(template: dict[str, Any], mode: str,
                                                    params: dict[str, str]) -> None:
    text = yaml.safe_dump(template, sort_keys=False)
    params = {k: v for k, v in params.items() if k in template.get("parameters", {})}
    first = attempt(text, mode, params)
    second = attempt(text, mode, params)
    assert isinstance(first, (ResolvedStack, tuple))
    assert first == second
