"""The planner's diff: pure values in, a Plan out (no cloud involved)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.model import UNKNOWN, Action, LiveResource, Placement
from cloudtmpl.plan import Plan, make_plan
from cloudtmpl.render import plan_markdown, plan_text
from tests.unit.planning import (
    CATALOG,
    EMPTY,
    SNAP,
    TEMPLATE,
    discovery,
    last_specs,
    live_for,
    plan_of,
    stack,
)


def actions(plan: Plan) -> dict[str, str]:
    return {c.address: c.action.value for c in plan.changes}


def test_empty_cloud_creates_everything_with_unknown_refs() -> None:
    plan = plan_of(stack(), {})
    assert actions(plan) == {"sg": "create", "web": "create", "vol": "create", "att": "create"}
    web = next(c for c in plan.changes if c.address == "web")
    diff = {d.name: d.new for d in web.diff}
    assert diff["flavor"] == "t3.small"  # abstract size translated by the catalog
    assert diff["image"] == "ami-1"
    assert diff["security_groups"] == [UNKNOWN]
    assert "s3cr3t-value" not in str(diff["user_data"])  # hidden parameter sealed
    assert web.depends_on == ("sg",)
    assert plan.summary == {"no-op": 0, "create": 4, "update": 0, "replace": 0, "delete": 0}
    assert plan.has_changes


def test_matching_live_state_is_a_noop() -> None:
    st = stack()
    plan = plan_of(st, live_for(st))
    assert set(actions(plan).values()) == {"no-op"}
    assert not plan.has_changes
    assert plan.api_requests == 5


def test_rule_change_updates_security_group_in_place() -> None:
    old = stack()
    plan = plan_of(stack(port="8080"), live_for(old))
    assert actions(plan)["sg"] == "update"
    (d,) = next(c for c in plan.changes if c.address == "sg").diff
    assert d.name == "rules" and not d.forces_replacement
    assert d.old[0]["port_range_min"] == 80 and d.new[0]["port_range_min"] == 8080
    assert actions(plan)["web"] == "no-op"  # the group id did not change


def test_flavor_change_is_an_in_place_update() -> None:
    plan = plan_of(stack(flavor="medium"), live_for(stack()))
    web = next(c for c in plan.changes if c.address == "web")
    assert web.action is Action.UPDATE
    assert [(d.name, d.old, d.new) for d in web.diff] == [("flavor", "t3.small", "t3.medium")]
    assert actions(plan)["att"] == "no-op"


def test_image_change_replaces_server_and_its_attachment() -> None:
    plan = plan_of(stack(image="debian"), live_for(stack()))
    assert actions(plan) == {"sg": "no-op", "web": "replace", "vol": "no-op", "att": "replace"}
    web = next(c for c in plan.changes if c.address == "web")
    assert [(d.name, d.new, d.forces_replacement) for d in web.diff] == [("image", "ami-2", True)]
    att = next(c for c in plan.changes if c.address == "att")
    assert [(d.name, d.old, d.new) for d in att.diff] == [("instance_uuid", "i-1", UNKNOWN)]


def test_unobservable_property_is_compared_with_the_last_applied_spec() -> None:
    st = stack()
    live = live_for(st)
    last = {"web": {**live["web"].properties, "user_data": "old-user-data"}}
    plan = plan_of(
        st,
        {**live, "web": LiveResource(**{**live["web"].__dict__, "spec_hash": "changed"})},
        last=last,
    )
    web = next(c for c in plan.changes if c.address == "web")
    assert web.action is Action.REPLACE
    assert [d.name for d in web.diff] == ["user_data"]


def test_removed_resource_and_duplicates_are_deleted() -> None:
    st = stack()
    live = live_for(st)
    orphan = LiveResource("old", "Cloud::Block::Volume", "vol-9", Placement("t", "r1"))
    dup = LiveResource(
        "web", "Cloud::Compute::Server", "i-2", Placement("t", "r1"), spec_hash="other"
    )
    plan = plan_of(st, live, orphan, dup)
    deletes = [
        (c.address, c.prior.physical_id)
        for c in plan.changes
        if c.action is Action.DELETE and c.prior
    ]
    assert sorted(deletes) == [("old", "vol-9"), ("web", "i-2")]
    kept = next(c for c in plan.changes if c.address == "web" and c.action is Action.NOOP)
    assert kept.prior is not None and kept.prior.physical_id == "i-1"


def test_region_move_of_a_volume_is_refused_unless_allowed() -> None:
    st = stack()
    with pytest.raises(DiagnosticError) as exc:
        plan_of(st, live_for(st, region="r0"))
    (d,) = exc.value.diagnostics
    assert d.code == "relocation-refused" and "'vol' holds data in t/r0" in d.message
    assert "--allow-relocation" in d.hint
    plan = make_plan(st, discovery(live_for(st, region="r0")), {}, {"t": CATALOG},
                     state_serial=3, allow_relocation=True)
    assert set(actions(plan).values()) == {"replace"}
    assert next(c for c in plan.changes if c.address == "vol").reason == "moves from t/r0"


def test_a_move_to_another_region_still_shows_the_property_changes() -> None:
    st = stack()
    live = live_for(st, region="r0", vol={"size": 20}, web={"flavor": "t3.medium"})
    plan = make_plan(st, discovery(live), {}, {"t": CATALOG}, state_serial=3,
                     allow_relocation=True)
    by = {c.address: c for c in plan.changes}
    assert by["vol"].action is Action.REPLACE and by["vol"].reason == "moves from t/r0"
    assert [(d.name, d.old, d.new) for d in by["vol"].diff] == [("size", 20, 10)]
    # web's security group is replaced too: its id is known after apply
    assert [(d.name, d.old, d.new) for d in by["web"].diff] == [
        ("flavor", "t3.medium", "t3.small"), ("security_groups", ["sg-1"], [UNKNOWN])]
    out = io.StringIO()
    plan_text(plan, Console(file=out, width=300, color_system=None))
    assert "-/+ vol (Cloud::Block::Volume) t/r1 vol-1 - moves from t/r0\n      size: 20 -> 10\n" \
        in out.getvalue(), out.getvalue()


def test_plan_round_trips_through_json() -> None:
    st = stack()
    plan = plan_of(stack(image="debian"), live_for(st))
    again = Plan.from_json(plan.to_json())
    assert again.to_json() == plan.to_json()
    assert again.summary == plan.summary


# -- deletion_policy Snapshot --------------------------------------------------------------


def test_removed_volume_under_snapshot_is_a_delete_that_snapshots_first() -> None:
    old = stack(SNAP)
    plan = plan_of(stack(EMPTY), live_for(old), last=last_specs(old))
    by = {c.address: c for c in plan.changes}
    assert by["vol"].action is Action.DELETE and by["vol"].snapshot
    assert by["vol"].reason == ("no longer in the template; deletion_policy Snapshot: "
                                "a snapshot is taken first")
    # a server under Snapshot (Heat: an image) is kept on AWS, as with Retain, and says why
    assert by["web"].action is Action.NOOP and by["web"].retain and not by["web"].snapshot
    assert "cannot snapshot a Cloud::Compute::Server: kept, as with Retain" in by["web"].reason
    assert by["att"].action is Action.DELETE and not by["att"].snapshot
    data = plan.to_json()
    vol = next(c for c in data["changes"] if c["address"] == "vol")
    assert vol["snapshot"] is True and vol["action"] == "delete"
    assert Plan.from_json(data) == plan


def test_snapshot_is_the_policy_recorded_at_the_last_apply() -> None:
    # removed from the template: only the state says what it was; without it, a delete
    plan = plan_of(stack(EMPTY), live_for(stack(SNAP)))
    vol = next(c for c in plan.changes if c.address == "vol")
    assert vol.action is Action.DELETE and not vol.snapshot


def test_replaced_volume_under_snapshot_is_snapshotted_before_its_delete() -> None:
    old = stack(SNAP)
    gp3 = {"vol": {"volume_type": "gp3"}}  # the live volume's type; the template wants io2
    grown = SNAP.replace("properties: {size: 10}", "properties: {size: 10, volume_type: io2}")
    plan = plan_of(stack(grown), live_for(old, **gp3), last=last_specs(old))
    vol = next(c for c in plan.changes if c.address == "vol")
    assert vol.action is Action.REPLACE and vol.snapshot
    assert vol.reason == ("volume_type cannot change in place; deletion_policy Snapshot: "
                          "a snapshot of the old one is taken first")
    # policy added in the same change as the replace: when in doubt, keep the data
    plan = plan_of(stack(grown), live_for(stack(), **gp3), last=last_specs(stack()))
    assert next(c for c in plan.changes if c.address == "vol").snapshot
    # no Snapshot then or now: a plain replace
    plain = TEMPLATE.replace("properties: {size: 10}", "properties: {size: 10, volume_type: io2}")
    plan = plan_of(stack(plain), live_for(stack(), **gp3), last=last_specs(stack()))
    vol = next(c for c in plan.changes if c.address == "vol")
    assert vol.action is Action.REPLACE and not vol.snapshot


def test_a_replace_that_would_delete_a_retained_resource_is_refused() -> None:
    gp3 = {"vol": {"volume_type": "gp3"}}  # the live volume's type; the template wants io2
    kept = TEMPLATE.replace(
        "  vol:\n    type: Cloud::Block::Volume\n",
        "  vol:\n    type: Cloud::Block::Volume\n    deletion_policy: Retain\n").replace(
        "properties: {size: 10}", "properties: {size: 10, volume_type: io2}")
    with pytest.raises(DiagnosticError) as exc:
        plan_of(stack(kept), live_for(stack(), **gp3))
    (d,) = exc.value.diagnostics
    assert d.code == "retained-replace" and d.loc.line > 1
    assert d.message == ("resource 'vol' has deletion_policy Retain, but this change replaces "
                         "it (volume_type cannot change in place), which would delete the "
                         "old one")
    assert "deletion_policy: Delete" in d.hint
    # Snapshot on an AWS server (kept instead: cloudtmpl images servers on OpenStack only):
    # refused the same
    with pytest.raises(DiagnosticError) as exc:
        plan_of(stack(SNAP, image="debian"), live_for(stack(SNAP)))
    assert [d.code for d in exc.value.diagnostics] == ["retained-replace"]
    assert "'web' has deletion_policy Snapshot" in exc.value.diagnostics[0].message
    # Delete in the template: the user lets it go
    plan = plan_of(stack(kept.replace("deletion_policy: Retain", "deletion_policy: Delete")),
                   live_for(stack(), **gp3))
    assert next(c for c in plan.changes if c.address == "vol").action is Action.REPLACE


def test_a_duplicate_volume_under_snapshot_is_snapshotted_too() -> None:
    st = stack(SNAP)
    dup = LiveResource("vol", "Cloud::Block::Volume", "vol-2", Placement("t", "r1"),
                       spec_hash="other")
    plan = plan_of(st, live_for(st), dup, last=last_specs(st))
    (extra,) = [c for c in plan.changes if c.action is Action.DELETE]
    assert extra.prior is not None and extra.prior.physical_id == "vol-2" and extra.snapshot


def test_snapshot_note_in_text_markdown_and_schema_valid_json() -> None:
    old = stack(SNAP)
    plan = plan_of(stack(EMPTY), live_for(old), last=last_specs(old))
    out = io.StringIO()
    plan_text(plan, Console(file=out, width=300, color_system=None))
    line = next(x for x in out.getvalue().splitlines() if " vol " in x)
    assert line.lstrip().startswith("-") and "a snapshot is taken first" in line, line
    assert "_no longer in the template; deletion_policy Snapshot: a snapshot is taken first_" \
        in plan_markdown(plan)
    schema = json.loads((Path(__file__).resolve().parents[2] / "schemas" /
                         "plan.schema.json").read_text())
    change = {"$ref": "#/$defs/change", "$defs": schema["$defs"]}
    for data in plan.to_json()["changes"]:
        jsonschema.Draft202012Validator(change).validate(json.loads(json.dumps(data)))
    assert schema["$defs"]["change"]["properties"]["snapshot"]["type"] == "boolean"
