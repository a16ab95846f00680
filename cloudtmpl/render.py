"""Views: plans, diagnostics, apply events and outputs as text, JSON or Markdown.

Nothing here decides anything; it only turns values into text.  Colour and
live progress only on a terminal, never with ``CI=true`` or ``NO_COLOR``.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from cloudtmpl.diagnostics import Diagnostic, error
from cloudtmpl.model import Action, to_jsonable
from cloudtmpl.plan import Change, Plan, PropertyChange
from cloudtmpl.state import ResourceRecord

SYMBOL = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.REPLACE: "-/+",
    Action.DELETE: "-",
    Action.NOOP: " ",
}
STYLE = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.REPLACE: "magenta",
    Action.DELETE: "red",
    Action.NOOP: "dim",
}


def interactive(stream: IO[str] | None = None) -> bool:
    """A person at a terminal (not CI): may prompt, show colour and spinners."""
    stream = stream or sys.stdout
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return not ci and bool(getattr(stream, "isatty", lambda: False)())


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    tty = interactive(stream)
    no_color = not tty or "NO_COLOR" in os.environ
    return Console(
        file=stream,
        no_color=no_color,
        highlight=False,
        soft_wrap=True,
        force_terminal=tty if tty else False,
        emoji=False,
    )


def value_text(value: Any) -> str:
    value = to_jsonable(value)
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True)


# -- diagnostics -------------------------------------------------------------
def diagnostics_text(diags: Iterable[Diagnostic], out: Console) -> None:
    for d in diags:
        colour = "red" if d.severity == "error" else "yellow"
        out.print(
            f"[bold]{escape(str(d.loc))}[/bold]: [{colour}]{d.severity}[/{colour}]"
            + escape(f"[{d.code}]: {d.message}")
        )
        if d.hint:
            out.print(f"  [dim]hint:[/dim] {escape(d.hint)}")


def diagnostics_json(diags: Iterable[Diagnostic]) -> dict[str, Any]:
    items = [d.to_json() for d in diags]
    return {"valid": not any(d["severity"] == "error" for d in items), "diagnostics": items}


# -- plans -------------------------------------------------------------------
def summary_line(plan: Plan) -> str:
    s = plan.summary
    return (
        f"{s['create']} to create, {s['update']} to update, {s['replace']} to replace, "
        f"{s['delete']} to delete, {s['no-op']} unchanged"
    )


def _where(change: Change) -> str:
    p = change.placement
    return f"{p.target}/{p.region}" + (f" ({p.country})" if p.country else "")


def residency_line(plan: Plan) -> str:
    """``Residency: DE 3, NL 1 (jurisdictions: EU 4)`` - where the stack will live."""
    r = plan.residency
    if not r["countries"]:
        return ""
    countries = ", ".join(f"{k} {v}" for k, v in r["countries"].items())
    jurisdictions = ", ".join(f"{k} {v}" for k, v in r["jurisdictions"].items())
    text = f"Residency: {countries} (jurisdictions: {jurisdictions})"
    if r["drift"]:
        text += f"; outside the residency now: {', '.join(r['drift'])}"
    return text


LONG = 80  # a list property longer than this on one line is shown entry by entry


@dataclass(frozen=True)
class ListChange:
    """A long list property's change, entry by entry (entries compared as JSON)."""

    removed: tuple[Any, ...]
    added: tuple[Any, ...]
    unchanged: int


def list_change(old: Any, new: Any) -> ListChange | None:
    """How a long list changed (``old`` None: created), else None (show it whole)."""
    old = [] if old is None and isinstance(new, list) else old
    if not (isinstance(old, list) and isinstance(new, list)):
        return None
    if max(len(value_text(old)), len(value_text(new))) <= LONG:
        return None

    def missing(items: list[Any], among: list[Any]) -> list[Any]:
        pool = Counter(value_text(x) for x in among)
        out = []
        for item in items:
            key = value_text(item)
            if pool[key]:
                pool[key] -= 1
            else:
                out.append(item)
        return out

    removed = missing(old, new)
    return ListChange(tuple(removed), tuple(missing(new, old)), len(old) - len(removed))


def _property_lines(change: Change, d: PropertyChange) -> list[str]:
    """One property of a change, as markup lines under the change's line."""
    forced = (" [red]# forces replacement[/red]"
              if d.forces_replacement and change.action is Action.REPLACE else "")
    name = escape(d.name)
    entries = list_change(None if change.action is Action.CREATE else d.old, d.new)
    if entries is not None:
        head = f"      {name}:"
        if change.action is not Action.CREATE:
            head += (f" {len(entries.removed)} removed, {len(entries.added)} added, "
                     f"{entries.unchanged} unchanged")
        return [head + forced,
                *(f"        [red]-[/red] {escape(value_text(x))}" for x in entries.removed),
                *(f"        [green]+[/green] {escape(value_text(x))}" for x in entries.added)]
    if change.action is Action.CREATE:
        return [f"      {name}: {escape(value_text(d.new))}"]
    return [f"      {name}: {escape(value_text(d.old))} -> {escape(value_text(d.new))}{forced}"]


NO_CHANGES = "No changes. The live resources match the template."


def plan_text(plan: Plan, out: Console, *, show_noop: bool = False,
              no_changes: str = NO_CHANGES) -> None:
    out.print(f"Stack [bold]{escape(plan.stack)}[/bold]: {summary_line(plan)}")
    for change in plan.changes:
        if change.action is Action.NOOP and not show_noop and not change.retain:
            continue
        style = STYLE[change.action]
        pid = f" {change.prior.physical_id}" if change.prior else ""
        out.print(
            f"[{style}]{SYMBOL[change.action]:>3} {escape(change.address)}[/{style}] "
            f"({change.type}) {escape(_where(change))}{escape(pid)}"
            + (f" [dim]- {escape(change.reason)}[/dim]" if change.reason else "")
        )
        for d in change.diff:
            if change.action is Action.CREATE and d.new in ("", [], {}):
                continue  # an empty default says nothing
            for line in _property_lines(change, d):
                out.print(line)
        if change.drift:
            out.print(f"      [yellow]! {escape(change.drift)}[/yellow]")
    if not plan.has_changes:
        out.print(escape(no_changes))
    if residency_line(plan):
        out.print(escape(residency_line(plan)))
    diagnostics_text(plan.warnings, out)


def plan_json(plan: Plan, *, with_sources: bool = False) -> dict[str, Any]:
    data = plan.to_json()
    if not with_sources:
        data.pop("sources", None)
    return data


def code_span(text: str) -> str:
    """``text`` as a Markdown code span that no backtick inside it can end: the fence is
    one backtick longer than the longest run in the text, and a text that starts or
    ends with a backtick or a space is padded with one space (CommonMark strips it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if text.startswith(("`", " ")) or text.endswith(("`", " ")):
        text = f" {text} "
    return f"{fence}{text}{fence}"


def _cell(value: Any) -> str:
    """A value as a Markdown table cell: code, with '|' escaped (GitHub splits cells on
    it even inside code spans)."""
    return code_span(value_text(value)).replace("|", "\\|")


def _md_row(c: Change, d: PropertyChange) -> str:
    flag = " (forces replacement)" if d.forces_replacement and c.action is Action.REPLACE \
        else ""
    name = code_span(d.name).replace("|", "\\|")
    entries = list_change(None if c.action is Action.CREATE else d.old, d.new)
    if entries is not None:
        before = "<br>".join(f"\\- {_cell(x)}" for x in entries.removed)
        after = "<br>".join([*(f"\\+ {_cell(x)}" for x in entries.added),
                             *([f"_{entries.unchanged} unchanged_"] if entries.unchanged
                               else [])])
        return f"| {name} | {before} | {after}{flag} |"
    old = "" if c.action is Action.CREATE else _cell(d.old)
    return f"| {name} | {old} | {_cell(d.new)}{flag} |"


def _md_change(c: Change) -> str:
    """One change as a collapsible section."""
    lines = [
        f"<details><summary><code>{html.escape(SYMBOL[c.action])} {html.escape(c.address)}"
        f"</code> {c.action.value} ({html.escape(c.type)}, {html.escape(_where(c))})"
        "</summary>",
        "",
    ]
    if c.reason:
        lines += [f"_{c.reason}_", ""]
    if c.why:
        lines += [f"Placement: {c.why}", ""]
    if c.drift:
        lines += [f"> :warning: {c.drift}", ""]
    shown = [d for d in c.diff if not (c.action is Action.CREATE and d.new in ("", [], {}))]
    if shown:
        lines += ["| property | before | after |", "|---|---|---|"]
        lines += [_md_row(c, d) for d in shown]
        lines.append("")
    lines.append("</details>")
    return "\n".join(lines) + "\n"


COMMENT_LIMIT = 65_536  # characters a GitHub pull-request comment can hold


def plan_markdown(plan: Plan, *, full_plan: str = "", limit: int = COMMENT_LIMIT) -> str:
    """The plan as Markdown for a merge-request comment, at most ``limit`` characters.

    A longer one keeps the summary and the first changes that fit, and says how many
    changes (and characters) it leaves out and where the full plan is: ``full_plan``
    (e.g. "in plan.json: `cloudtmpl show plan.json`").
    """
    s = plan.summary
    head = "\n".join([
        f"### cloudtmpl plan: {code_span(plan.stack)}",
        "",
        "| create | update | replace | delete | unchanged |",
        "|---:|---:|---:|---:|---:|",
        f"| {s['create']} | {s['update']} | {s['replace']} | {s['delete']} | {s['no-op']} |",
        "",
        "",
    ])
    changed = [c for c in plan.changes if c.action is not Action.NOOP]
    sections = [_md_change(c) for c in changed] or ["No changes.\n"]
    tail = "\n" + warnings_markdown(plan.warnings)
    if residency_line(plan):
        tail += f"**{residency_line(plan)}**\n\n"
    tail += f"<sub>{plan.api_requests} cloud API requests, {plan.seconds:.1f}s</sub>\n"
    text = head + "".join(sections) + tail
    if len(text) <= limit:
        return text
    total = len(text)
    kept: list[str] = []
    for n in range(len(sections) + 1):
        note = _cut_note(len(sections) - n, len(sections), total, full_plan)  # (its longest)
        if n == len(sections) or len(head) + sum(map(len, kept)) + len(sections[n]) + \
                len(note) + len(tail) > limit:
            break
        kept.append(sections[n])
    left_out = len(sections) - len(kept)
    shown = head + "".join(kept)
    note = _cut_note(left_out, len(sections), total - len(shown) - len(tail), full_plan)
    return shown + note + tail


def warnings_markdown(warnings: Iterable[Diagnostic]) -> str:
    """Warnings as a Markdown quote, one item each with its place and hint."""
    items = [f"> - {code_span(str(w.loc))} `{w.code}`: {html.escape(w.message)}"
             + (f" _{html.escape(w.hint)}_" if w.hint else "") for w in warnings]
    return "> :warning: **Warnings**\n>\n" + "\n".join(items) + "\n\n" if items else ""


def _cut_note(left_out: int, changes: int, characters: int, full_plan: str) -> str:
    where = f" The full plan: {full_plan}." if full_plan else ""
    return (f"\n> :warning: **This plan is too long for a comment.** The last {left_out} of "
            f"{changes} changes are not shown ({characters:,} characters left out).{where}\n")


def full_plan_hint(planfile: str | None) -> str:
    """Where the full plan is, for the note of a cut Markdown plan."""
    if planfile:
        return f"in {code_span(planfile)}; print it with {code_span(f'cloudtmpl show {planfile}')}"
    return ("run the same `cloudtmpl plan` without `--format markdown`, or save it with "
            "`--out FILE` and print it with `cloudtmpl show FILE`")


# -- outputs -----------------------------------------------------------------
def _sorted(value: Any) -> Any:
    return json.loads(json.dumps(to_jsonable(value), sort_keys=True))


def json_text(doc: Mapping[str, Any], indent: int | None = 2) -> str:
    """A document as indented JSON with sorted keys, except its ``outputs``, which keep
    the template's order (the values inside them are sorted)."""
    out = {}
    for key in sorted(doc):
        value = doc[key]
        if key == "outputs" and isinstance(value, Mapping):
            out[key] = {name: _sorted(v) for name, v in value.items()}
        else:
            out[key] = _sorted(value)
    return json.dumps(out, indent=indent)


def record_json(record: ResourceRecord, **more: Any) -> dict[str, Any]:
    """A state record as ``show``/``state show`` list it: kind, where, physical id, and
    ``more``."""
    return {"kind": record.kind, "target": record.target, "region": record.region,
            "physical_id": record.physical_id, **more}


def outputs_json(outputs: Mapping[str, Any]) -> str:
    """A stack's outputs as a JSON object, in template order."""
    return json.dumps({name: _sorted(v) for name, v in outputs.items()}, indent=2)


def raw_text(stack: str, name: str, value: Any) -> str:
    """An output for a shell (``terraform output -raw``): a string as it is, a number or
    a boolean as its literal, no quotes and no newline; anything else cannot be."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    what = "null (it was not known at the last apply)" if value is None else \
        f"a {'list' if isinstance(value, list) else 'map'}"
    raise error(
        "output-not-raw",
        f"output {name!r} is {what}: --raw prints only a string, number or boolean",
        hint=f"print it as JSON: cloudtmpl outputs -s {stack} {name} --format json",
    )


def outputs_text(outputs: Mapping[str, Any], out: Console) -> None:
    if not outputs:
        out.print("No outputs.")
    width = max((len(k) for k in outputs), default=0)
    for name, value in outputs.items():
        text = value if isinstance(value, str) else value_text(value)
        out.print(f"{escape(name.ljust(width))} = {escape(str(text))}")


# -- sandbox -------------------------------------------------------------------
def sandbox_started(endpoints: Mapping[str, str], directory: Any) -> str:
    """What a command says (on stderr) when it started the local sandbox clouds."""
    where = ", ".join(f"{name} at {url}" for name, url in sorted(endpoints.items()))
    return (f"Started the local sandbox clouds: {where} (logs in {directory}). They keep "
            "running in the background; stop them with `cloudtmpl sandbox stop`.")


# -- apply progress ------------------------------------------------------------
class EventPrinter:
    """Apply progress: JSON lines, or one plain line per event (coloured on a terminal)."""

    def __init__(self, out: Console, *, json_lines: bool) -> None:
        self.out = out
        self.json_lines = json_lines

    def __call__(self, event: Any) -> None:
        if self.json_lines:
            self.out.file.write(json.dumps(event.to_json(), sort_keys=True) + "\n")
            self.out.file.flush()
            return
        colour = {"done": "green", "failed": "red", "skipped": "yellow"}.get(event.event, "cyan")
        tail = ""
        if event.event == "done":
            tail = f" {event.physical_id or ''} ({event.seconds:.2f}s)"
        elif event.message and event.event != "start":
            tail = f": {event.message}"
        self.out.print(
            f"[{colour}]{event.event:>7}[/{colour}] {event.action} "
            f"{escape(event.address)}{escape(tail)}"
        )


class LiveProgress(EventPrinter):
    """On a terminal: finished steps scroll by above a live bar naming what runs now."""

    def __init__(self, out: Console, total: int) -> None:
        super().__init__(out, json_lines=False)
        self.total = total
        self.running: dict[str, None] = {}  # ordered set of "action address"
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=out,
            transient=True,
        )
        self._task = self._progress.add_task("", total=total)

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, event: Any) -> None:
        key = f"{event.action} {event.address}"
        if event.event == "progress":  # a line to show; the step is still running
            super().__call__(event)
            return
        if event.event == "start":
            self.running[key] = None
        else:
            self.running.pop(key, None)
            self._progress.advance(self._task)
            super().__call__(event)
        names = list(self.running)
        shown = ", ".join(names[:4]) + (f" +{len(names) - 4}" if len(names) > 4 else "")
        self._progress.update(self._task, description=escape(shown or "waiting"))


def duration(seconds: float) -> str:
    """``0.4s``, ``12.3s``, ``2m 05s``, ``1h 02m 05s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def apply_summary(result: Any, seconds: float, verb: str = "Apply") -> str:
    done = result.count("done")
    failed = result.count("failed")
    skipped = result.count("skipped")
    return (f"{verb} finished in {duration(seconds)}: {done} done, {failed} failed, "
            f"{skipped} skipped.")
