"""The scaling arithmetic as Heat's (heat/scaling/scalingutil.py), a group's size
across applies (Heat's AutoScalingGroup update), cooldowns, and the state store's
scaling-group records (with the schema 5 -> 6 migration)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cloudtmpl.loader import load_text
from cloudtmpl.resolve import ResolveOptions, resolve
from cloudtmpl.scaling import (
    Bounds,
    Recorded,
    Resize,
    cooldown_end,
    in_cooldown,
    members,
    new_capacity,
    policy_problems,
    scaled_in,
    size_now,
)
from cloudtmpl.state import SCHEMA_VERSION, StateStore
from cloudtmpl.state.scaling_groups import GroupRecord


@pytest.mark.parametrize(("current", "adjustment", "kind", "step", "expected"), [
    (2, 2, "change_in_capacity", None, Resize(2, 4, 4)),
    (4, -3, "change_in_capacity", None, Resize(4, 1, 2, "min_size")),
    (2, 9, "exact_capacity", None, Resize(2, 9, 5, "max_size")),
    (2, 3, "exact_capacity", None, Resize(2, 3, 3)),
    # percent: below one member rounds away from zero ...
    (3, 10, "percent_change_in_capacity", None, Resize(3, 4, 4)),      # +0.3 -> +1
    (4, -10, "percent_change_in_capacity", None, Resize(4, 3, 3)),     # -0.4 -> -1
    # ... one member or more rounds towards zero
    (3, 50, "percent_change_in_capacity", None, Resize(3, 4, 4)),      # +1.5 -> +1
    (5, -50, "percent_change_in_capacity", None, Resize(5, 3, 3)),     # -2.5 -> -2
    (2, 50, "percent_change_in_capacity", None, Resize(2, 3, 3)),      # +1.0 -> +1
    (0, 50, "percent_change_in_capacity", None, Resize(0, 0, 2, "min_size")),  # 0 -> 0
    # min_adjustment_step: at least that many
    (3, 10, "percent_change_in_capacity", 2, Resize(3, 5, 5)),
    (4, -10, "percent_change_in_capacity", 2, Resize(4, 2, 2)),
    (3, 50, "percent_change_in_capacity", 1, Resize(3, 4, 4)),        # step below: as is
    # AWS spellings
    (2, 1, "ChangeInCapacity", None, Resize(2, 3, 3)),
    (3, 100, "PercentChangeInCapacity", None, Resize(3, 6, 5, "max_size")),
])
def test_new_capacity_as_heat(current: int, adjustment: float, kind: str, step: int | None,
                              expected: Resize) -> None:
    assert new_capacity(current, adjustment, kind, step, 2, 5) == expected


def test_clamping_is_said() -> None:
    assert new_capacity(4, -3, "change_in_capacity", None, 2, 5).text() == \
        "scaled to 2 (min_size), asked 1"
    assert new_capacity(2, 9, "exact_capacity", None, 2, 5).text() == \
        "scaled to 5 (max_size), asked 9"
    assert new_capacity(2, 2, "change_in_capacity", None, 2, 5).text() == "scaled from 2 to 4"
    assert not new_capacity(5, 1, "change_in_capacity", None, 2, 5).changed


def test_unknown_adjustment_type_is_refused() -> None:
    with pytest.raises(ValueError):
        new_capacity(2, 1, "doubling", None, 0, 9)


def test_size_at_the_next_resolve() -> None:
    b = Bounds(2, 6, 3)
    assert size_now(b, None, False) == 3                # new: desired_capacity
    assert size_now(Bounds(2, 6), None, False) == 2     # new, no desired: min_size
    assert size_now(b, 5, True) == 5                    # unchanged definition: kept
    assert size_now(b, 5, False) == 3                   # changed, desired: back to it
    assert size_now(Bounds(2, 4), 5, False) == 4        # changed, no desired: clamped
    assert size_now(Bounds(6, 8), 5, True) == 6


def test_scaling_in_removes_the_oldest_and_never_reuses_an_index() -> None:
    assert scaled_in(None, 3) == frozenset()
    four = Recorded(4, "d")
    assert scaled_in(four, 4) == frozenset() and scaled_in(four, 6) == frozenset()
    gone = scaled_in(four, 2)
    assert gone == {0, 1} and members(2, gone) == [2, 3]
    assert members(5, gone) == [2, 3, 4, 5, 6]
    again = scaled_in(Recorded(5, "d", gone), 3)
    assert again == {0, 1, 2, 3} and members(3, again) == [4, 5, 6]
    assert members(0, frozenset()) == []


def test_cooldowns() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    end = cooldown_end(now, 60, None)
    assert end == now + timedelta(seconds=60)
    assert in_cooldown(now + timedelta(seconds=59), end)
    assert not in_cooldown(now + timedelta(seconds=60), end)
    assert cooldown_end(now, 10, end) == end            # the later end is kept
    assert cooldown_end(now, -5, None) == now           # negative: none
    assert cooldown_end(now, None, None) == now
    assert not in_cooldown(now, None)


def test_policy_problems_as_heat_validates() -> None:
    ok = {"adjustment_type": "percent_change_in_capacity", "scaling_adjustment": 10,
          "min_adjustment_step": 1}
    assert policy_problems(ok) == []
    assert [p for p, _ in policy_problems({"adjustment_type": "change_in_capacity",
                                           "scaling_adjustment": 1,
                                           "min_adjustment_step": 1})] == ["min_adjustment_step"]
    assert [p for p, _ in policy_problems({"adjustment_type": "more",
                                           "scaling_adjustment": 1})] == ["adjustment_type"]
    assert [p for p, _ in policy_problems({"adjustment_type": "exact_capacity",
                                           "scaling_adjustment": 1.5})] == ["scaling_adjustment"]


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A fresh store (tests/integration/test_state_postgres.py runs these on PostgreSQL
    too)."""
    return f"sqlite:///{tmp_path}/state/state.db"


def test_group_records_in_the_store(url: str) -> None:
    with StateStore.open(url) as s:
        assert s.scaling_groups("app") == {}
        s.put_scaling_group("app", GroupRecord("asg", 2, "d1", {"asg": "2026-01-01T00:00:00"}))
        s.put_scaling_group("app", GroupRecord("asg", 4, "d1", {"up": "2026-01-01T00:01:00"},
                                               (0, 1)))
        s.put_scaling_group("db", GroupRecord("asg", 1, "d9"))
    with StateStore.open(url) as s:
        assert s.scaling_groups("app") == {
            "asg": GroupRecord("asg", 4, "d1", {"up": "2026-01-01T00:01:00"}, (0, 1))}
        s.forget_stack("app")
        assert s.scaling_groups("app") == {}
        assert s.scaling_groups("db") == {"asg": GroupRecord("asg", 1, "d9")}


def test_a_schema_5_database_gets_scaling_groups(url: str) -> None:
    with StateStore.open(url) as s:
        s.set_template("app", "app.yaml")
        with s._write() as tx:
            tx.run("DROP TABLE scaling_groups")
            tx.run("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    with StateStore.open(url) as s:
        assert s.schema_version() == SCHEMA_VERSION == 6
        assert s.template("app") == "app.yaml"
        s.put_scaling_group("app", GroupRecord("asg", 3, "d"))
        assert s.scaling_groups("app")["asg"].size == 3


ROLLING = """\
heat_template_version: 2016-10-14
resources:
  asg:
    type: OS::Heat::AutoScalingGroup
    properties:
      min_size: 2
      max_size: 4
      rolling_updates: {min_in_service: 1, max_batch_size: 2, pause_time: 5}
      resource:
        type: member.yaml
        properties: {greeting: hi}
outputs:
  greetings: {value: {get_attr: [asg, outputs_list, said]}}
  size: {value: {get_attr: [asg, current_size]}}
"""
MEMBER = """\
heat_template_version: 2016-10-14
parameters:
  greeting: {type: string}
resources:
  v:
    type: OS::Heat::Value
    properties: {value: {get_param: greeting}}
outputs:
  said: {value: {get_attr: [v, value]}}
"""


def _resolve(records: dict[str, Recorded]) -> Any:
    files = {"member.yaml": MEMBER}
    return resolve(load_text(ROLLING, "asg.yaml"),
                   ResolveOptions(stack="t", read_file=files.__getitem__,
                                  scaling_records=lambda: records))


def test_a_group_of_nested_stacks_at_its_recorded_size_with_its_rolling_updates() -> None:
    stack = _resolve({})
    assert sorted(stack.resources) == ["asg.0.v", "asg.1.v"]
    group = stack.scaling["asg"]
    assert (group.size, group.bounds) == (2, Bounds(2, 4, None))
    member = stack.resources["asg.0.v"]
    assert member.group == "asg" and member.update_policy == {
        "rolling_update": {"min_in_service": 1, "max_batch_size": 2, "pause_time": 5}}
    assert stack.outputs["size"].value == 2
    # outputs_list of a member that is a nested stack: its output, per member
    assert [str(v.args[0]) for v in stack.outputs["greetings"].value] == ["asg.0.v", "asg.1.v"]
    # recorded at 4 with this definition, two of them scaled in: the newest four stay
    later = _resolve({"asg": Recorded(4, group.definition, frozenset({0, 1}))})
    assert sorted(later.resources) == ["asg.2.v", "asg.3.v", "asg.4.v", "asg.5.v"]
    assert later.outputs["size"].value == 4
    # another definition (recorded before an edit), no desired_capacity: clamped
    edited = _resolve({"asg": Recorded(9, "another", frozenset())})
    assert edited.scaling["asg"].size == 4
