"""Rendering, pure: values in, text out (no cloud, no CLI).

Markdown is checked by parsing it with markdown-it (CommonMark, with GitHub's
tables), the parser rich already depends on: what a reader sees is what the
parser finds, not what the text looks like.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from rich.console import Console

from cloudtmpl import render
from cloudtmpl.apply import ApplyResult, StepResult
from cloudtmpl.model import Action, LiveResource, Placement
from cloudtmpl.plan import Change, Plan, PropertyChange

SNAPSHOTS = Path(__file__).parent / "snapshots"
WHERE = Placement("sandbox-aws", "eu-central-1", "DE", "EU")


def rule(port: int, cidr: str = "0.0.0.0/0") -> dict[str, Any]:
    return {"direction": "ingress", "protocol": "tcp", "port_range_min": port,
            "port_range_max": port, "remote_ip_prefix": cidr}


def change(address: str, action: Action, *diff: PropertyChange, reason: str = "") -> Change:
    prior = None if action is Action.CREATE else LiveResource(
        address, "Cloud::Network::SecurityGroup", f"id-{address}", WHERE)
    return Change(address, "Cloud::Network::SecurityGroup", "OS::Neutron::SecurityGroup",
                  action, WHERE, diff=diff, reason=reason, prior=prior)


def plan_of(*changes: Change) -> Plan:
    return Plan("web", changes, template_hash="", params_hash="", state_serial=1,
                live_fingerprint="", api_requests=7, seconds=1.25)


def text_of(plan: Plan) -> str:
    out = io.StringIO()
    render.plan_text(plan, Console(file=out, width=100, color_system=None, soft_wrap=True))
    return out.getvalue()


def parse(markdown: str) -> list[Any]:
    return MarkdownIt("commonmark").enable("table").parse(markdown)


def code_texts(markdown: str) -> list[str]:
    """The text of every code span, as a Markdown reader sees it."""
    out = []
    for token in parse(markdown):
        for child in token.children or ():
            if child.type == "code_inline":
                out.append(child.content)
    return out


# -- long list properties -----------------------------------------------------------
RULES_BEFORE = [rule(22, "10.0.0.0/8"), rule(80), rule(443), rule(8080)]
RULES_AFTER = [rule(22, "10.0.0.0/8"), rule(80), rule(443), rule(9090), rule(9091)]


def test_a_long_list_diff_shows_the_entries_added_and_removed_one_per_line() -> None:
    c = change("sg", Action.UPDATE, PropertyChange("rules", RULES_BEFORE, RULES_AFTER),
               reason="updated in place")
    text = text_of(plan_of(c))
    lines = text.splitlines()
    start = lines.index("      rules: 1 removed, 2 added, 3 unchanged")
    assert lines[start + 1:start + 4] == [
        f"        - {render.value_text(rule(8080))}",
        f"        + {render.value_text(rule(9090))}",
        f"        + {render.value_text(rule(9091))}",
    ]
    assert max(map(len, lines)) < 140  # not the whole list twice on one line
    assert render.value_text(RULES_BEFORE) not in text


def test_a_short_list_and_other_values_stay_on_one_line() -> None:
    c = change("sg", Action.UPDATE, PropertyChange("tags", ["a"], ["a", "b"]),
               PropertyChange("name", "x", "y"))
    text = text_of(plan_of(c))
    assert '      tags: ["a"] -> ["a", "b"]\n' in text and '      name: "x" -> "y"\n' in text
    assert render.list_change(["a"], ["a", "b"]) is None
    assert render.list_change("a" * 100, "b" * 100) is None


def test_duplicate_entries_count_as_entries() -> None:
    old = [rule(80), rule(80), rule(443)]
    got = render.list_change(old, [rule(80), rule(443), rule(443)])
    assert got == render.ListChange((rule(80),), (rule(443),), 2)


def test_a_created_long_list_is_one_entry_per_line() -> None:
    c = change("sg", Action.CREATE, PropertyChange("rules", None, RULES_AFTER))
    lines = text_of(plan_of(c)).splitlines()
    start = lines.index("      rules:")
    assert lines[start + 1:start + 6] == [f"        + {render.value_text(r)}"
                                          for r in RULES_AFTER]


def test_markdown_shows_a_long_list_entry_by_entry() -> None:
    c = change("sg", Action.UPDATE, PropertyChange("rules", RULES_BEFORE, RULES_AFTER))
    md = render.plan_markdown(plan_of(c))
    row = next(line for line in md.splitlines() if line.startswith("| `rules`"))
    assert "_3 unchanged_" in row and row.count("\\+ `") == 2 and row.count("\\- `") == 1
    assert code_texts(md).count(render.value_text(rule(9090))) == 1
    assert render.value_text(rule(22, "10.0.0.0/8")) not in code_texts(md)


# -- summaries ---------------------------------------------------------------------------
@pytest.mark.parametrize(("seconds", "text"), [
    (0.04, "0.0s"), (12.34, "12.3s"), (59.94, "59.9s"), (125, "2m 05s"), (3725, "1h 02m 05s"),
])
def test_duration(seconds: float, text: str) -> None:
    assert render.duration(seconds) == text


def test_apply_and_destroy_summaries_give_the_wall_time() -> None:
    result = ApplyResult((StepResult("a", "create", "done"), StepResult("b", "create", "failed"),
                          StepResult("c", "create", "skipped")))
    assert render.apply_summary(result, 83.2) == \
        "Apply finished in 1m 23s: 1 done, 1 failed, 1 skipped."
    assert render.apply_summary(result, 4.56, "Destroy").startswith("Destroy finished in 4.6s:")


# -- markdown: code spans ---------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "plain", "echo `date`", "``double``", "`starts", "ends`", "a ``` b", " spaced ", "|pipe|",
])
def test_a_code_span_holds_any_text(text: str) -> None:
    span = render.code_span(text)
    assert code_texts(f"x {span} y") == [text], span


def test_a_value_with_backticks_and_pipes_stays_in_its_table_cell() -> None:
    script = "#!/bin/sh\necho `hostname` | tee /tmp/``x``"
    c = change("sg", Action.UPDATE, PropertyChange("user_data", "old `a`", script))
    md = render.plan_markdown(plan_of(c))
    tokens = parse(md)
    row = [t for t in tokens if t.type == "td_open"]
    # the summary's 5 cells, then property, before, after: no '|' inside split a cell
    assert len(row) == 5 + 3
    # each value is one code span holding all of it (the table unescapes '\\|')
    assert code_texts(md) == ["web", "user_data", render.value_text("old `a`"),
                              render.value_text(script)]


# -- markdown: a plan too long for a comment ---------------------------------------------------
def big_plan(n: int) -> Plan:
    return plan_of(*(
        change(f"sg{i:03d}", Action.UPDATE,
               PropertyChange("rules", RULES_BEFORE, RULES_AFTER),
               PropertyChange("description", "old", f"web tier {i}"), reason="updated in place")
        for i in range(n)
    ))


def test_a_plan_longer_than_a_comment_is_cut_with_a_note() -> None:
    plan = big_plan(400)
    full = render.plan_markdown(plan, limit=10**9)
    assert len(full) > render.COMMENT_LIMIT
    cut = render.plan_markdown(plan, full_plan=render.full_plan_hint("plan.json"))
    assert len(cut) <= render.COMMENT_LIMIT == 65_536
    shown = cut.count("<details>")
    note = re.search(r"The last (\d+) of (\d+) changes are not shown \(([\d,]+) characters "
                     r"left out\)\. The full plan: in `plan.json`; print it with "
                     r"`cloudtmpl show plan.json`\.", cut)
    assert note, cut[-600:]
    assert (int(note[1]), int(note[2])) == (400 - shown, 400) and 0 < shown < 400
    # what is shown is the full plan's beginning; the count is what is missing
    body = cut[:cut.index("\n> :warning: **This plan is too long")]
    assert full.startswith(body)
    tail = full[full.rindex("</details>\n") + len("</details>\n"):]  # residency, stats
    assert int(note[3].replace(",", "")) == len(full) - len(body) - len(tail)
    assert cut.endswith(tail) and tail.endswith("<sub>7 cloud API requests, 1.2s</sub>\n")
    assert cut.count("<details>") == cut.count("</details>")  # no section cut in half
    assert render.plan_markdown(big_plan(3)) == render.plan_markdown(big_plan(3), limit=10**9)


def test_a_cut_plan_without_a_file_says_how_to_print_it() -> None:
    cut = render.plan_markdown(big_plan(40), full_plan=render.full_plan_hint(None), limit=4000)
    assert len(cut) <= 4000
    assert "run the same `cloudtmpl plan` without `--format markdown`" in cut


def test_cut_markdown_matches_the_snapshot() -> None:
    plan = plan_of(
        change("web_sg", Action.UPDATE, PropertyChange("rules", RULES_BEFORE, RULES_AFTER),
               PropertyChange("description", "say `hi`", "say ``hello`` | bye"),
               reason="updated in place"),
        *big_plan(12).changes,
    )
    got = render.plan_markdown(plan, full_plan=render.full_plan_hint("plan.json"), limit=3000)
    snapshot = SNAPSHOTS / "plan_markdown_cut.md"
    if os.environ.get("CLOUDTMPL_UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(got)
    assert got == snapshot.read_text(), (
        "plan_markdown changed; if intended, rerun with CLOUDTMPL_UPDATE_SNAPSHOTS=1 and "
        f"review the diff of {snapshot}")
