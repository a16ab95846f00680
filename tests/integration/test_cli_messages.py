"""What the CLI says, through the real CLI: plans of long lists and moves, the wall time
of apply/destroy, the destroy prompt and its empty case, a re-applied plan file, and
Markdown plans (backticks, and a plan too long for a comment).

The messages about local resources need no cloud; the list diff runs against the AWS
sandbox and the move across regions against the OpenStack sandbox.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from tests.integration.clitools import QUICKSTART, edit, invoke, write
from tests.integration.terminal import no_ci_env, run_pty

LOCAL = """\
heat_template_version: 2021-04-16
resources:
  greeting:
    type: OS::Heat::Value
    properties:
      value: hello
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "local.yaml", LOCAL)
    return tmp_path


def code_spans(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    return [c.content for t in tokens for c in (t.children or ()) if c.type == "code_inline"]


# -- a re-applied plan file -------------------------------------------------------------
def test_reapplying_an_applied_plan_says_it_was_applied(project: Path) -> None:
    assert invoke(project, "plan", "local.yaml", "--out", "p.json").code == 0
    r = invoke(project, "apply", "p.json")
    assert r.code == 0, r.err + r.out
    r = invoke(project, "apply", "p.json")
    assert r.code == 1, r.out
    assert "error[stale-plan]: this plan was already applied (stack 'local' went from " \
           "state serial 0 to 1 since it was made)" in r.err, r.err
    assert "another apply ran" not in r.err

    # a plan overtaken by another apply is refused as before, and says that
    assert invoke(project, "plan", "local.yaml", "--out", "old.json").code == 0
    write(project / "local.yaml", LOCAL.replace("hello", "bonjour"))
    assert invoke(project, "apply", "local.yaml", "--yes").code == 0
    r = invoke(project, "apply", "old.json")
    assert r.code == 1 and "[stale-plan]" in r.err, r.err
    assert "already applied" not in r.err and "another apply ran" in r.err


# -- destroy ---------------------------------------------------------------------------------
def test_destroy_names_the_stack_and_says_when_there_is_nothing_to_destroy(
    project: Path,
) -> None:
    assert invoke(project, "apply", "local.yaml", "--yes").code == 0
    r = invoke(project, "destroy", "-s", "local")  # no terminal: refused, the name quoted
    assert r.code == 1 and "refusing to destroy stack 'local' without --yes" in r.err, r.err
    code, out = run_pty(project, no_ci_env(NO_COLOR="1"), "destroy", "-s", "local",
                        answer="n\n")
    assert b"Do you want to destroy stack 'local'? [y/N]" in out, out
    assert code == 1
    r = invoke(project, "destroy", "-s", "local", "--yes")
    assert r.code == 0, r.err + r.out
    assert re.search(r"^Destroy finished in \d+\.\ds: 1 done, 0 failed, 0 skipped\.$", r.out,
                     re.M), r.out
    r = invoke(project, "destroy", "-s", "local", "--yes")
    assert r.code == 0, r.err
    assert "Nothing to destroy: stack 'local' has no resources in the clouds." in r.out, r.out
    assert "match the template" not in r.out


# -- markdown ----------------------------------------------------------------------------------
def many_values(n: int) -> str:
    body = "".join(
        f"  v{i:03d}:\n    type: OS::Heat::Value\n    properties:\n"
        f"      value: \"{'x' * 300} `date` {i}\"\n"
        for i in range(n)
    )
    return f"heat_template_version: 2021-04-16\nresources:\n{body}"


def test_markdown_keeps_backticks_in_code_and_cuts_a_plan_too_long_for_a_comment(
    project: Path,
) -> None:
    write(project / "big.yaml", many_values(200))
    r = invoke(project, "plan", "big.yaml", "--format", "markdown")
    assert r.code == 0, r.err
    assert len(r.out) <= 65_536
    note = re.search(r"The last (\d+) of 200 changes are not shown \(([\d,]+) characters left "
                     r"out\)\. The full plan: run the same `cloudtmpl plan` without "
                     r"`--format markdown`", r.out)
    assert note, r.out[-800:]
    shown = r.out.count("<details>")
    assert shown + int(note[1]) == 200 and shown > 50
    assert f'"{"x" * 300} `date` 7"' in code_spans(r.out)  # the backticks stay inside

    assert invoke(project, "plan", "big.yaml", "--out", "big.json").code == 0
    r = invoke(project, "show", "big.json", "--format", "markdown")
    assert r.code == 0 and len(r.out) <= 65_536, r.err
    assert "The full plan: in `big.json`; print it with `cloudtmpl show big.json`." in r.out

    r = invoke(project, "plan", "local.yaml", "--format", "markdown")  # short: never cut
    assert r.code == 0 and "too long" not in r.out and "<details>" in r.out


# -- against the clouds --------------------------------------------------------------------
def test_a_changed_rule_shows_as_one_entry_removed_and_one_added(
    project: Path, aws_reset: dict[str, Any]
) -> None:
    write(project / "stack.yaml", QUICKSTART.read_text())
    r = invoke(project, "apply", "stack.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert re.search(r"^Apply finished in \d+\.\ds: \d+ done, 0 failed, 0 skipped\.$", r.out,
                     re.M), r.out
    write(project / "stack.yaml", edit(QUICKSTART.read_text(), [(
        "port_range_min: 80, port_range_max: 80", "port_range_min: 8080, port_range_max: 8080")]))
    r = invoke(project, "plan", "stack.yaml")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    (head,) = [i for i, line in enumerate(lines) if line.startswith("      rules: ")]
    assert re.fullmatch(r"      rules: 1 removed, 1 added, \d+ unchanged", lines[head])
    removed, added = lines[head + 1], lines[head + 2]
    assert removed.startswith("        - {") and '"port_range_min": 80,' in removed, removed
    assert added.startswith("        + {") and '"port_range_min": 8080,' in added, added
    assert max(len(line) for line in lines) < 200, r.out
    assert invoke(project, "destroy", "stack.yaml", "--yes").code == 0


MOVING = """\
heat_template_version: 2021-04-16
resources:
  records:
    type: Cloud::Block::Volume
    placement: {provider: sandbox-openstack, region: de-fra-1, pinned: true}
    properties: {size: 1}
"""


def test_a_move_across_regions_still_shows_the_property_changes(
    project: Path, openstack_reset: dict[str, Any]
) -> None:
    write(project / "move.yaml", MOVING)
    assert invoke(project, "apply", "move.yaml", "--yes").code == 0
    write(project / "move.yaml", edit(MOVING, [("de-fra-1", "nl-ams-1"), ("size: 1", "size: 2")]))
    r = invoke(project, "plan", "move.yaml", "--allow-relocation")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    (i,) = [i for i, line in enumerate(lines) if line.startswith("-/+ records ")]
    assert lines[i].endswith("- moves from sandbox-openstack/de-fra-1"), lines[i]
    assert lines[i + 1] == "      size: 1 -> 2", r.out
    md = invoke(project, "plan", "move.yaml", "--allow-relocation", "--format", "markdown").out
    assert "| `size` | `1` | `2` |" in md, md
    assert invoke(project, "destroy", "-s", "move", "--yes").code == 0

