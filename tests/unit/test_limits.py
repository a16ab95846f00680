"""The evaluation budget (cloudtmpl.limits), piece by piece, in process.

The end-to-end hostile inputs (each in a capped process) are in test_hostile.py;
these pin the parts: measuring stops at the cap however large a value is, files
are refused before they are read, a crossed limit stops a whole resolve, the
limits leave room for real templates, and the functions rewritten to stay
linear (str_replace, filter, list_concat_unique) give exactly Heat's results.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudtmpl import functions, limits
from cloudtmpl.config import SANDBOX_TARGETS
from cloudtmpl.diagnostics import DiagnosticError, Loc
from cloudtmpl.functions import Filter, ListConcatUnique, StrReplace, _replace_all
from cloudtmpl.loader import load_text
from cloudtmpl.resolve import ResolveOptions, resolve

HEAD = "heat_template_version: 2021-04-16\n"
HERE = Loc("t.yaml", 3, 5)


# --------------------------------------------------------------------------- measuring


def test_measure_is_the_json_size() -> None:
    import json

    for value in ["abc", "é", [1, "a", None], {"k": ["x", {"y": True}]}, [], {}]:
        size, _ = limits.measure(value, 10**9)
        written = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        assert written <= size <= written + 8 * 4  # numbers and null count 8


def test_measure_stops_at_the_cap_on_shared_values() -> None:
    value: Any = ["x" * 1000]
    for _ in range(200):  # 2^200 copies once written out: only references here
        value = [value, value]
    started = time.perf_counter()
    size, _ = limits.measure(value, limits.LIMITS.value_bytes)
    assert size > limits.LIMITS.value_bytes
    assert time.perf_counter() - started < 1


def test_count_nodes_stops_at_the_cap() -> None:
    value: Any = [1]
    for _ in range(100):
        value = [value, value]
    assert 1000 < limits.count_nodes(value, 1000) < 1010


# ------------------------------------------------------------------------------- files


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done: list[BaseException] = []

    def read() -> None:
        try:
            limits.read_prefix(fifo, 100)
        except limits.FileRefused as exc:
            done.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(5)
    assert done and isinstance(done[0], limits.FileRefused), "open() blocked on the FIFO"
    assert done[0].code == "not-a-regular-file" and "FIFO" in done[0].reason


def test_devices_and_directories_are_not_read(tmp_path: Path) -> None:
    with pytest.raises(limits.FileRefused) as exc:
        limits.read_bytes("/dev/zero", 100)
    assert exc.value.code == "not-a-regular-file" and "character device" in exc.value.reason
    with pytest.raises(IsADirectoryError):
        limits.read_bytes(tmp_path, 100)
    with pytest.raises(FileNotFoundError):
        limits.read_bytes(tmp_path / "missing", 100)


def test_a_huge_file_is_read_only_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge"
    with path.open("wb") as fh:
        fh.truncate(4 * 1024**3)  # 4 GB, sparse
    assert len(limits.read_prefix(path, 1000)) == 1001
    with pytest.raises(limits.FileRefused) as exc:
        limits.read_text(path, 1000)
    assert exc.value.code == "input-too-large" and "1,000 bytes" in exc.value.reason
    assert "'file size' is 1,000 bytes" in exc.value.hint
    small = tmp_path / "small"
    small.write_text("héllo")
    assert limits.read_text(small, 6) == "héllo"  # 6 bytes: exactly at the limit


# ------------------------------------------------------------------------------ budget


def test_outside_a_budget_a_limit_is_an_ordinary_diagnostic() -> None:
    with pytest.raises(DiagnosticError) as exc:
        limits.within(limits.LIMITS.value_bytes + 1, HERE, "x")
    (diag,) = exc.value.diagnostics
    assert diag.code == "limit-exceeded" and diag.loc == HERE
    assert "'value size' is 1 MiB" in diag.hint
    limits.charge_resources(10**9, HERE, "x")  # no budget: nothing to count against


def test_inside_a_budget_a_limit_stops_everything() -> None:
    swallowed = []
    with pytest.raises(DiagnosticError) as exc, limits.budget("t.yaml") as used:
        for i in range(limits.LIMITS.resources + 10):
            try:  # as resolve does around every resource: keep going on a diagnostic
                limits.charge_resources(1, Loc("t.yaml", i + 1, 3), f"resource r{i}")
            except DiagnosticError:
                swallowed.append(i)
    assert not swallowed  # LimitExceeded is not a DiagnosticError: it went through
    assert used.resources == limits.LIMITS.resources + 1
    (diag,) = exc.value.diagnostics
    assert diag.loc.line == limits.LIMITS.resources + 1 and "10,000 resources" in diag.message


def test_nested_templates_detect_cycles_and_depth() -> None:
    with pytest.raises(DiagnosticError) as exc, limits.budget("a.yaml"), \
            limits.nested("sub/../b.yaml", Loc("a.yaml", 4, 11)), \
            limits.nested("./a.yaml", Loc("b.yaml", 4, 11)):
        pass
    (diag,) = exc.value.diagnostics
    assert diag.code == "template-cycle" and diag.loc == Loc("b.yaml", 4, 11)
    assert "a.yaml -> b.yaml -> a.yaml" in diag.message
    with pytest.raises(DiagnosticError) as exc, limits.budget("n0.yaml"), ExitStack() as open_:
        for i in range(1, 10):
            open_.enter_context(limits.nested(f"n{i}.yaml", Loc(f"n{i - 1}.yaml", 4, 11)))
    (diag,) = exc.value.diagnostics
    assert diag.code == "limit-exceeded" and "depth 6" in diag.message
    assert diag.loc == Loc("n5.yaml", 4, 11)


def test_a_budget_is_per_run() -> None:
    with limits.budget() as first:
        limits.charge_resources(5, HERE, "x")
        with limits.budget() as inner:  # a nested resolve shares its parent's
            assert inner is first
    with limits.budget() as second:
        assert second.resources == 0


def test_the_limits_leave_room_for_large_real_templates() -> None:
    """5,000 servers with floating IPs and volumes use a few percent of the budget."""
    body = [HEAD, "resources:\n"]
    for i in range(1700):
        body.append(
            f"  s{i}:\n    type: OS::Nova::Server\n    properties: {{image: ubuntu-22.04, "
            f"flavor: tiny, metadata: {{n: '{i}'}}, user_data: {{str_replace: {{template: "
            f"'#!/bin/sh\\necho $name', params: {{$name: s{i}}}}}}}}}\n"
            f"  ip{i}:\n    type: Cloud::Network::FloatingIP\n    properties: {{server: "
            f"{{get_resource: s{i}}}, floating_network: public}}\n"
            f"  v{i}:\n    type: Cloud::Block::Volume\n    properties: {{size: 1}}\n")
    doc = load_text("".join(body), "big.yaml")
    options = ResolveOptions(stack="big", targets=SANDBOX_TARGETS, target="sandbox-openstack")
    with limits.budget() as used:
        stack = resolve(doc, options)
    assert len(stack.resources) == 5100
    assert used.resources == 5100 <= limits.LIMITS.resources / 1.9
    assert used.nodes < limits.LIMITS.total_nodes / 10
    assert used.value_bytes < limits.LIMITS.total_value_bytes / 50
    # Heat's own limits, for comparison: cloudtmpl's are at least as generous
    assert limits.LIMITS.file_bytes >= 512 * 1024  # max_template_size
    assert limits.LIMITS.value_bytes >= 1024 * 1024  # max_json_body_size (everything)
    assert limits.LIMITS.nesting_depth >= 5  # max_nested_stack_depth
    assert limits.LIMITS.resources >= 1000  # max_resources_per_stack


# ---------------------------------------- the functions rewritten to stay linear: as Heat


def heat_replace(texts: list[str], keys: list[str], mapping: dict[str, str],
                 found: set[str]) -> list[str]:
    """Heat's recursive str_replace (split on the longest key, replace in the pieces)."""
    if not keys:
        return texts
    key, rest = keys[0], keys[1:]
    out = []
    for text in texts:
        pieces = text.split(key)
        if len(pieces) > 1:
            found.add(key)
        out.append(mapping[key].join(heat_replace(pieces, rest, mapping, found)))
    return out


def heat_unique(items: list[Any]) -> list[Any]:
    """Heat's list_concat_unique: a walk forward that deletes while it goes."""
    items = list(items)
    for item in items:
        while items.count(item) > 1:
            del items[items.index(item)]
    return items


TEXT = st.text(alphabet="ab$%x", max_size=30)


@settings(max_examples=400, deadline=None, database=None)
@given(template=TEXT, params=st.dictionaries(st.text(alphabet="ab$%", min_size=1, max_size=3),
                                            TEXT, max_size=4))
def test_str_replace_is_heats(template: str, params: dict[str, str]) -> None:
    keys = sorted(sorted(params), key=len, reverse=True)
    expected_found: set[str] = set()
    expected = heat_replace([template], keys, params, expected_found)[0]
    found: set[str] = set()
    assert _replace_all(StrReplace((template, params)), template, keys, params, found) \
        == expected
    assert found == expected_found


LEAF = st.one_of(st.integers(0, 3), st.sampled_from(["a", "b"]), st.booleans(), st.none(),
                 st.sampled_from([0.0, 1.0]))
VALUE = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2),
                     max_leaves=6)


@settings(max_examples=600, deadline=None, database=None)
@given(items=st.lists(VALUE, max_size=14))
def test_list_concat_unique_is_heats(items: list[Any]) -> None:
    got = ListConcatUnique(()).finish(list(items))
    expected = heat_unique(items)
    assert got == expected
    assert [type(v) for v in got] == [type(v) for v in expected]


@settings(max_examples=400, deadline=None, database=None)
@given(values=st.lists(VALUE, max_size=6), sequence=st.lists(VALUE, max_size=10))
def test_filter_is_heats(values: list[Any], sequence: list[Any]) -> None:
    fn = Filter((values, sequence))
    got = fn.result(functions_ctx())
    assert got == ([item for item in sequence if item not in values] if values else sequence)


def functions_ctx() -> Any:
    class Ctx:
        def param(self, name: str) -> Any:
            raise AssertionError(name)

    return Ctx()


def test_quadratic_list_functions_are_linear_now() -> None:
    items = [i % 997 for i in range(200_000)]
    started = time.perf_counter()
    ListConcatUnique(()).finish(list(items))
    Filter((items[:100_000], items)).result(functions_ctx())
    assert time.perf_counter() - started < 5  # was hours: O(n^2) count() and `in`


def test_functions_refuse_before_building() -> None:
    fn = functions.parse_tree({"str_replace": {"template": "$a" * 1000,
                                               "params": {"$a": "x" * 10_000}}},
                              ("v",), None, [])
    started = time.perf_counter()
    with pytest.raises(DiagnosticError) as exc:
        functions.evaluate(fn, functions_ctx())
    assert exc.value.diagnostics[0].code == "limit-exceeded"
    assert time.perf_counter() - started < 0.5
