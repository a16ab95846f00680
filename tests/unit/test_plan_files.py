"""Plan files: every bad input is a diagnostic with a code and a hint (pure: tmp files only).

The CLI side (nothing reaches the cloud) is in tests/integration/test_ci_outputs.py.
"""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cloudtmpl import planfile
from cloudtmpl import workflow as wf
from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.inputs import Inputs
from cloudtmpl.model import Action, LiveResource, Placement
from cloudtmpl.plan import FORMAT_VERSION, Change, Plan, PropertyChange
from cloudtmpl.render import plan_json

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = "heat_template_version: 2021-04-16\nresources: {}\n"
ENV = "parameters: {size: 2}\n"
WHERE = Placement("sandbox-aws", "eu-central-1", "DE", "EU")


def make_plan(stack: str = "web", sources: dict[str, str] | None = None) -> Plan:
    sources = {"stack.yaml": TEMPLATE, "env.yaml": ENV} if sources is None else sources
    live = LiveResource("old", "Cloud::Compute::Server", "i-0123", WHERE, name=f"{stack}.old")
    return Plan(
        stack=stack,
        changes=(
            Change(
                "web1",
                "Cloud::Compute::Server",
                "OS::Nova::Server",
                Action.CREATE,
                WHERE,
                diff=(PropertyChange("flavor", None, "t3.small"),),
                reason="not in the cloud yet",
            ),
            Change(
                "old",
                "Cloud::Compute::Server",
                "Cloud::Compute::Server",
                Action.DELETE,
                WHERE,
                reason="no longer in the template",
                prior=live,
            ),
        ),
        template_hash=planfile.sources_hash(sources),
        params_hash="a" * 64,
        state_serial=3,
        live_fingerprint="b" * 32,
        sources=sources,
        template_file="stack.yaml",
        environment_files=("env.yaml",),
        params={"flavor": "small"},
    )


def save(tmp_path: Path, plan: Plan | None = None, name: str = "plan.json") -> Path:
    path = tmp_path / name
    plan = plan or make_plan()
    planfile.write_plan_file(plan, str(path), plan_json(plan, with_sources=True))
    return path


def edit(path: Path, change: Any) -> Path:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def refused(call: Any, code: str, path: Path) -> str:
    """Run ``call``; it must fail with exactly one ``code`` diagnostic about ``path``."""
    with pytest.raises(DiagnosticError) as caught:
        call()
    (diag,) = caught.value.diagnostics
    assert diag.code == code, diag
    assert diag.hint, diag
    assert diag.loc.file == str(path), diag
    assert "Traceback" not in diag.message
    return diag.message


def plan_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((REPO / "schemas" / "plan.schema.json").read_text())
    return schema


# -- writing and reading ---------------------------------------------------------------
def test_round_trip_private_atomic_and_schema_valid(tmp_path: Path) -> None:
    plan = make_plan()
    path = save(tmp_path, plan)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]  # no temporary left
    data = json.loads(path.read_text())
    assert data["source_hashes"] == {
        name: planfile._text_hash(text) for name, text in plan.sources.items()
    }
    jsonschema.Draft202012Validator(plan_schema()).validate(data)
    assert planfile.load_plan_file(str(path)) == plan
    assert plan_schema()["properties"]["format_version"]["const"] == FORMAT_VERSION


def test_overwriting_a_plan_file_keeps_it_private(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text("old")
    path.chmod(0o644)
    save(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert planfile.load_plan_file(str(path)).stack == "web"


def test_is_plan_file_tells_plans_and_damaged_plans_from_templates(tmp_path: Path) -> None:
    plan = save(tmp_path)
    (tmp_path / "truncated.json").write_text(plan.read_text()[:300])
    (tmp_path / "corrupted.json").write_text(plan.read_text().replace("[", "[}", 1))
    (tmp_path / "prose.json").write_text("this is not a plan\n")
    (tmp_path / "binary.json").write_bytes(bytes(range(256)))
    (tmp_path / "array.json").write_text("[1, 2]")
    (tmp_path / "template.json").write_text(json.dumps({"heat_template_version": "2021-04-16"}))
    (tmp_path / "broken-template.json").write_text('{"heat_template_version": "2021-04-16",')
    (tmp_path / "stack.yaml").write_text(TEMPLATE)
    (tmp_path / "plan.out").write_text(plan.read_text())
    (tmp_path / "notes.txt").write_text("{not json")
    expected = {
        "plan.json": True,
        "truncated.json": True,
        "corrupted.json": True,  # its snapshot names heat_template_version: still a plan
        "prose.json": True,
        "binary.json": True,
        "array.json": True,
        "template.json": False,
        "broken-template.json": False,
        "stack.yaml": False,
        "plan.out": True,
        "notes.txt": False,
        "missing.json": False,
    }
    assert {name: planfile.is_plan_file(str(tmp_path / name)) for name in expected} == expected


# -- bad files ----------------------------------------------------------------------
def test_truncated_plan_file(tmp_path: Path) -> None:
    path = save(tmp_path)
    text = path.read_text()
    for cut in (1, 40, len(text) // 2, len(text) - 3):
        path.write_text(text[:cut])
        message = refused(lambda: planfile.load_plan_file(str(path)), "plan-file", path)
        assert "truncated" in message, (cut, message)


def test_corrupted_json_syntax(tmp_path: Path) -> None:
    path = save(tmp_path)
    path.write_text(path.read_text().replace('"changes": [', '"changes": [,', 1))
    message = refused(lambda: planfile.load_plan_file(str(path)), "plan-file", path)
    assert "corrupted" in message and "line" in message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"stack: web\nchanges: []\n", "not JSON"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "binary"),
        (b"[1, 2, 3]", "JSON array"),
        (b'"a plan"', "JSON string"),
        (b'{"stack": "web", "changes": []}', "no format_version"),
    ],
)
def test_not_a_plan_at_all(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    message = refused(lambda: planfile.load_plan_file(str(path)), "plan-file", path)
    assert words in message


def test_unreadable_plan_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    assert "cannot read" in refused(lambda: planfile.load_plan_file(str(path)), "plan-file", path)


def test_plan_from_a_newer_format(tmp_path: Path) -> None:
    path = edit(save(tmp_path), lambda d: d.update(format_version=FORMAT_VERSION + 1))
    message = refused(lambda: planfile.load_plan_file(str(path)), "plan-format", path)
    assert "newer" in message and str(FORMAT_VERSION + 1) in message


@pytest.mark.parametrize("version", [0, -1, "1", 1.5, True, None])
def test_format_version_that_no_cloudtmpl_writes(tmp_path: Path, version: Any) -> None:
    path = edit(save(tmp_path), lambda d: d.update(format_version=version))
    refused(lambda: planfile.load_plan_file(str(path)), "plan-format", path)


@pytest.mark.parametrize(
    ("damage", "where"),
    [
        (lambda d: d["changes"][0].update(action="explode"), "changes[0].action"),
        (lambda d: d.update(changes={"web1": "create"}), "changes"),
        (lambda d: d.pop("stack"), "stack"),
        (lambda d: d["changes"][1].pop("prior"), "changes[1]"),
        (lambda d: d["changes"][0]["placement"].pop("region"), "changes[0].placement"),
        (lambda d: d.update(state_serial="three"), "state_serial"),
        (lambda d: d.update(template_hash="not-a-hash"), "template_hash"),
        (lambda d: d.update(stack="Not A Stack"), "stack"),
    ],
)
def test_corrupted_plan_structure_names_the_place(
    tmp_path: Path, damage: Any, where: str
) -> None:
    path = edit(save(tmp_path), damage)
    message = refused(lambda: planfile.load_plan_file(str(path)), "plan-file", path)
    assert "corrupted" in message and where in message, message


def test_corrupted_structure_without_the_schema_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_data(name: str) -> Path:
        raise FileNotFoundError(name)

    monkeypatch.setattr(wf, "data_dir", no_data)
    path = edit(save(tmp_path), lambda d: d["changes"][0].pop("placement"))
    message = refused(lambda: planfile.load_plan_file(str(path)), "plan-file", path)
    assert "placement" in message


# -- applying a saved plan -------------------------------------------------------------
def test_from_plan_file_rebuilds_the_inputs(tmp_path: Path) -> None:
    path = save(tmp_path)
    saved, inputs, sources = planfile.from_plan_file(str(path), ["extra=1"], [], None, stack="web")
    assert saved.stack == inputs.stack == "web"
    assert inputs.template == "stack.yaml" and inputs.environments == ("env.yaml",)
    assert dict(inputs.params) == {"flavor": "small", "extra": "1"}
    assert sources == {"stack.yaml": TEMPLATE, "env.yaml": ENV}


def test_a_plan_carries_the_stack_template_and_replace_template(tmp_path: Path) -> None:
    plan = replace(make_plan(), stack_template="infra/stack.yaml", replace_template=True)
    saved, inputs, _ = planfile.from_plan_file(str(save(tmp_path, plan)), [], [], None)
    assert (saved.stack_template, saved.replace_template) == ("infra/stack.yaml", True)
    assert (inputs.stack_template, inputs.replace_template) == ("infra/stack.yaml", True)
    # a plan written before these keys existed still applies (no template override)
    path = edit(save(tmp_path, name="old.json"),
                lambda d: (d.pop("stack_template"), d.pop("replace_template")))
    saved, inputs, _ = planfile.from_plan_file(str(path), [], [], None)
    assert (inputs.stack_template, inputs.replace_template) == ("", False)


def test_plan_for_another_stack(tmp_path: Path) -> None:
    path = save(tmp_path)
    message = refused(
        lambda: planfile.from_plan_file(str(path), [], [], None, stack="other"), "plan-stack", path
    )
    assert "'web'" in message and "'other'" in message


def test_edited_snapshot_names_the_file(tmp_path: Path) -> None:
    path = edit(
        save(tmp_path), lambda d: d["sources"].update({"env.yaml": "parameters: {size: 9}\n"})
    )
    message = refused(lambda: planfile.from_plan_file(str(path), [], [], None), "stale-plan", path)
    assert "env.yaml" in message and "stack.yaml" not in message


def test_edited_snapshot_and_hash_still_caught_by_file_hash(tmp_path: Path) -> None:
    def tamper(d: dict[str, Any]) -> None:
        d["sources"]["stack.yaml"] += "# edited\n"
        d["template_hash"] = planfile.sources_hash(d["sources"])

    path = edit(save(tmp_path), tamper)
    message = refused(lambda: planfile.from_plan_file(str(path), [], [], None), "stale-plan", path)
    assert "stack.yaml" in message and "env.yaml" not in message


def test_edited_snapshot_of_a_plan_without_file_hashes(tmp_path: Path) -> None:
    def tamper(d: dict[str, Any]) -> None:
        del d["source_hashes"]
        d["sources"]["stack.yaml"] += "# edited\n"

    path = edit(save(tmp_path), tamper)
    message = refused(lambda: planfile.from_plan_file(str(path), [], [], None), "stale-plan", path)
    assert "modified" in message and "stack.yaml" in message


def test_plan_printed_without_its_snapshot_cannot_be_applied(tmp_path: Path) -> None:
    plan = make_plan()
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan_json(plan)))  # `plan --format json`: no sources
    assert planfile.load_plan_file(str(path)).stack == "web"  # show renders it
    message = refused(lambda: planfile.from_plan_file(str(path), [], [], None), "plan-file", path)
    assert "--out" in message


def test_snapshot_cuts_hidden_values_out_of_environments() -> None:
    inputs = Inputs(template="t.yaml", environments=("secrets.yaml",))
    sources = {
        "t.yaml": TEMPLATE,
        "secrets.yaml": "parameters:\n  db_password: hunter2\n  size: 3\n",
    }
    snap = planfile.snapshot(sources, inputs, frozenset({"db_password"}))
    assert "hunter2" not in snap["secrets.yaml"] and "size: 3" in snap["secrets.yaml"]
    assert snap["t.yaml"] == TEMPLATE
