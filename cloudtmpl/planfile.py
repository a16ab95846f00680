"""Plan files: what ``plan --out FILE`` writes and ``apply FILE`` accepts.

A plan file is the plan as JSON (its schema is ``schemas/plan.schema.json``) plus a
snapshot of the template and environment files it was made from (hidden defaults cut
out, see :mod:`cloudtmpl.hidden_defaults`) and their digests.  Reading one checks it
whole before anything is opened: JSON within the size limit, the schema, the
snapshot's digests, the stack.  :func:`check_plan_fresh` refuses a plan whose inputs,
state or live resources moved on since it was made.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from cloudtmpl import hidden_defaults, limits
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc, error
from cloudtmpl.inputs import Inputs, parse_params, read_sources
from cloudtmpl.model import Action, canonical_json
from cloudtmpl.plan import FORMAT_VERSION, Plan
from cloudtmpl.resolve import ResolvedStack
from cloudtmpl.shipped import data_dir
from cloudtmpl.state import StateStore

PLAN_HINT = "make a new one with `cloudtmpl plan TEMPLATE --out FILE`"


def is_plan_file(path: str) -> bool:
    """Whether ``apply`` should read ``path`` as a saved plan rather than a template.

    A ``.json`` file is a plan unless it is a (JSON) HOT template: a damaged plan
    (truncated, not JSON at all) must be reported as a bad plan file, not as a
    bad template.  Any other file is a plan only if it reads as one.
    """
    try:
        raw = limits.read_bytes(path, limits.LIMITS.plan_file_bytes, "plan file size")
    except (OSError, limits.FileRefused):
        return False  # not there, not a file, too large: the template path reports it
    try:
        data = json.loads(raw)
    except ValueError:  # includes undecodable bytes
        looks_like_plan = b'"format_version"' in raw or b"heat_template_version" not in raw
        return path.endswith(".json") and looks_like_plan
    if isinstance(data, dict) and "format_version" in data and "changes" in data:
        return True
    is_template = isinstance(data, dict) and "heat_template_version" in data
    return path.endswith(".json") and not is_template


def _plan_file_error(path: str, message: str, hint: str = PLAN_HINT) -> DiagnosticError:
    return DiagnosticError([Diagnostic("plan-file", message, Loc(path), hint)])


def _parse_plan_json(path: str) -> Any:
    try:
        raw = limits.read_bytes(path, limits.LIMITS.plan_file_bytes, "plan file size")
    except limits.FileRefused as err:
        raise err.diagnostic(Loc(path), f"cannot read plan file {path}") from None
    except OSError as err:
        raise _plan_file_error(
            path, f"cannot read plan file {path}: {err.strerror or err}"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _plan_file_error(
            path, f"{path} is not a plan file: it is not JSON text (binary data)"
        ) from None
    if not text.strip():
        raise _plan_file_error(path, f"plan file {path} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        body = text.strip()
        loc = Loc(path, err.lineno, err.colno)
        if not body.startswith(("{", "[")):
            message = f"{path} is not a plan file: it is not JSON (it starts with {body[:40]!r})"
            loc = Loc(path)
        elif not body.endswith(("}", "]")) or err.pos >= len(text.rstrip()):
            lines = text.rstrip().splitlines()
            loc = Loc(path, len(lines), len(lines[-1]) + 1)
            message = (
                f"plan file {path} is truncated: it ends at line {loc.line}, "
                f"column {loc.column} before the plan is complete"
            )
        else:
            message = (
                f"plan file {path} is corrupted: {err.msg} (line {err.lineno}, column {err.colno})"
            )
        raise DiagnosticError([Diagnostic("plan-file", message, loc, PLAN_HINT)]) from None


_MAX_PROBLEMS = 100  # schema errors collected (a hostile plan file could have millions)


def _schema_problems(data: Any) -> list[str]:
    """Where ``data`` breaks the plan schema (empty when the schema is not installed)."""
    try:
        schema_path = data_dir("schemas") / "plan.schema.json"
        schema = json.loads(schema_path.read_text())
    except (OSError, ValueError):
        return []
    from jsonschema import Draft202012Validator

    problems = []
    found = itertools.islice(Draft202012Validator(schema).iter_errors(data), _MAX_PROBLEMS)
    for err in sorted(found, key=lambda e: [str(p) for p in e.absolute_path]):
        at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        message = err.message if len(err.message) <= 160 else err.message[:157] + "..."
        problems.append(f"{at.lstrip('.') or 'top level'}: {message}")
    return problems


_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def read_plan_data(path: str) -> dict[str, Any]:
    """The JSON of a plan file, checked: a format this cloudtmpl reads, the plan schema."""
    data = _parse_plan_json(path)
    if not isinstance(data, dict):
        kind = _JSON_TYPES.get(type(data), "value")
        raise _plan_file_error(
            path, f"{path} is not a plan file: it holds a JSON {kind}, not an object"
        )
    if "format_version" not in data:
        raise _plan_file_error(
            path, f"{path} is not a plan file: it has no format_version"
        )
    version = data["format_version"]
    if type(version) is not int or version < 1:
        raise error(
            "plan-format",
            f"plan file {path} has format_version {version!r}, which no cloudtmpl writes "
            f"(this one reads format {FORMAT_VERSION})",
            Loc(path),
            PLAN_HINT,
        )
    if version > FORMAT_VERSION:
        raise error(
            "plan-format",
            f"plan file {path} was written by a newer cloudtmpl (plan format {version}; "
            f"this one reads format {FORMAT_VERSION})",
            Loc(path),
            "apply it with the cloudtmpl version that made it, or plan again with this one",
        )
    if version < FORMAT_VERSION:
        raise error(
            "plan-format",
            f"plan file {path} has the old plan format {version} "
            f"(this cloudtmpl reads format {FORMAT_VERSION})",
            Loc(path),
            "plan again with this version of cloudtmpl",
        )
    changes = data.get("changes")
    most = 2 * limits.LIMITS.resources  # every resource replaced by another one
    if isinstance(changes, list) and len(changes) > most:
        raise _plan_file_error(
            path, f"plan file {path} is corrupted: it has {len(changes):,} changes, more "
            f"than a stack of at most {limits.LIMITS.resources:,} resources can have")
    problems = _schema_problems(data)
    if problems:
        many = f"{len(problems)}" if len(problems) < _MAX_PROBLEMS else f"{_MAX_PROBLEMS} or more"
        shown = "; ".join(problems[:3]) + (f"; ... ({many} in all)"
                                           if len(problems) > 3 else "")
        raise _plan_file_error(path, f"plan file {path} is corrupted: {shown}")
    return data


def load_plan_file(path: str) -> Plan:
    """A saved plan (for ``show`` and ``apply``); a damaged file is a ``plan-file`` error."""
    return _plan_of(path, read_plan_data(path))


def _plan_of(path: str, data: Mapping[str, Any]) -> Plan:
    try:
        return Plan.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        what = f"missing {err}" if isinstance(err, KeyError) else str(err)
        raise _plan_file_error(path, f"plan file {path} is corrupted: {what}") from None


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_plan_file(plan: Plan, path: str, data: Mapping[str, Any]) -> None:
    """Write ``data`` (the plan's JSON, with its sources) to ``path``, mode 0600.

    Adds ``source_hashes`` (one sha256 per snapshot file) so that a snapshot
    edited afterwards is reported by file name.  Written to a temporary file
    and renamed, so an interrupted write never leaves a truncated plan.
    """
    data = dict(data)
    sources = data.get("sources") or {}
    data["source_hashes"] = {name: _text_hash(text) for name, text in sorted(sources.items())}
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            size = fh.tell()
        cap = limits.LIMITS.plan_file_bytes
        if size > cap:  # it could not be read back
            raise error("limit-exceeded", f"the plan is {size:,} bytes as a file, more than "
                        f"{limits.size_text(cap)}", Loc(path),
                        limits.too_large_hint(cap, "plan file size").split(";")[0]
                        + "; apply the template directly, without --out")
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def snapshot(sources: Mapping[str, str], inputs: Inputs, hidden: frozenset[str]) -> dict[str, str]:
    """The files a plan travels with; hidden parameter values are cut out of environments.

    The template itself is kept as written (it is source code, checked in);
    environment files often carry secrets, so the values of hidden parameters
    are removed from them and must be given again when the plan is applied.
    """
    out = dict(sources)
    for path in inputs.environments:
        data = yaml.safe_load(sources[path]) or {}
        cut = False
        for section in ("parameters", "parameter_defaults"):
            values = data.get(section) if isinstance(data, dict) else None
            if isinstance(values, dict):
                for name in hidden & set(values):
                    del values[name]
                    cut = True
        if cut:
            out[path] = yaml.safe_dump(data, sort_keys=False)
    return out


def sources_hash(sources: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(sources.items())).encode()).hexdigest()


def modified_sources(sources: Mapping[str, str], hashes: Mapping[str, str] | None) -> list[str]:
    """The snapshot files whose text no longer matches the hashes written with the plan."""
    if hashes is None:
        return []
    names = sorted(set(sources) | set(hashes))
    return [n for n in names if n not in sources or _text_hash(sources[n]) != hashes.get(n)]


def _snapshot_problem(plan: Plan, hashes: Mapping[str, str] | None) -> str:
    """Why the plan's template snapshot cannot be trusted ("" if it can)."""
    changed = modified_sources(plan.sources, hashes)
    if not changed and sources_hash(plan.sources) == plan.template_hash:
        return ""
    if changed:
        return (
            "the plan file's snapshot of "
            + ", ".join(changed)
            + (" was" if len(changed) == 1 else " were")
            + " modified after planning (the plan applies its own copy of the template, "
            "not the work tree)"
        )
    return (
        "the plan file's template snapshot was modified after planning (its hash no longer "
        f"matches; it holds {', '.join(sorted(plan.sources)) or 'no files'})"
    )


def from_plan_file(
    path: str,
    params: Sequence[str],
    environments: Sequence[str],
    state: str | None,
    stack: str | None = None,
) -> tuple[Plan, Inputs, dict[str, str]]:
    """A saved plan and the inputs to rebuild its stack from its own snapshot.

    ``params``/``environments`` given now supply hidden parameter values, which a
    plan file never holds.  ``stack`` (``-s``), when given, must be the plan's
    own stack.  A damaged plan, one
    for another stack or one whose snapshot was edited is refused here, before
    any cloud or state is opened.
    """
    data = read_plan_data(path)
    saved = _plan_of(path, data)
    wanted = stack
    if wanted is not None and wanted != saved.stack:
        raise error(
            "plan-stack",
            f"plan file {path} is a plan for stack {saved.stack!r}, not {wanted!r}",
            Loc(path),
            f"apply it without -s (it applies to stack {saved.stack!r}), or make a plan for "
            f"{wanted!r} with `cloudtmpl plan TEMPLATE -s {wanted} --out FILE`",
        )
    missing = [
        name
        for name in (saved.template_file, *saved.environment_files)
        if name not in saved.sources
    ]
    if missing:
        raise _plan_file_error(
            path,
            f"plan file {path} holds no snapshot of {', '.join(missing)} (a plan printed by "
            "`plan --format json` cannot be applied; one saved by `plan --out FILE` can)",
        )
    hashes = data.get("source_hashes")
    problem = _snapshot_problem(saved, hashes if isinstance(hashes, dict) else None)
    if problem:
        raise error(
            "stale-plan",
            f"the saved plan {path} cannot be applied: {problem}",
            Loc(path),
            "run `cloudtmpl plan --out FILE` again and apply the new plan",
        )
    inputs = Inputs(
        template=saved.template_file,
        environments=(*saved.environment_files, *environments),
        params={**saved.params, **parse_params(params)},
        stack=saved.stack,
        target=saved.target,
        state=state,
        allow_relocation=saved.allow_relocation,
        replace_template=saved.replace_template,
        stack_template=saved.stack_template,
    )
    sources = {**saved.sources, **read_sources(Inputs(environments=tuple(environments)))}
    return saved, inputs, sources


def with_hidden_defaults(saved: Plan, inputs: Inputs, sources: Mapping[str, str],
                         key: bytes) -> dict[str, str]:
    """``sources`` (a plan file's snapshot) with the hidden defaults the plan cut out
    (:mod:`cloudtmpl.hidden_defaults`) taken back from the work tree: a file whose work
    tree copy is the plan's copy with defaults of the same digests is used instead.
    A default that is needed (not given now with -p or -e) and cannot be taken back is
    a ``hidden-default`` diagnostic."""
    given = set(inputs.params)
    for path in inputs.environments[len(saved.environment_files):]:
        data = yaml.safe_load(sources.get(path) or "") or {}
        for section in ("parameters", "parameter_defaults"):
            values = data.get(section) if isinstance(data, dict) else None
            given |= set(values) if isinstance(values, dict) else set()
    out = dict(sources)
    for file, digests in sorted(saved.hidden_defaults.items()):
        needed = sorted(set(digests) - given) if file == saved.template_file else sorted(digests)
        if not needed:
            continue
        try:
            work = Path(file).read_text()
        except (OSError, UnicodeDecodeError):
            work = None
        if work is not None and hidden_defaults.restore(sources[file], file, work, digests, key):
            out[file] = work
            continue
        why = ("cannot be read" if work is None else
               "is no longer the plan's copy, or its default changed")
        top = file == saved.template_file
        raise error(
            "hidden-default",
            f"the plan file holds no default of the hidden parameter"
            f"{'s' if len(needed) > 1 else ''} {', '.join(map(repr, needed))} ({file}: a plan "
            f"file never holds hidden values), and {file} in the work tree {why}",
            Loc(file),
            (f"give {' '.join(f'-p {n}=VALUE' for n in needed)} (or -e FILE) with the apply, "
             "or make a new plan with `cloudtmpl plan --out FILE`") if top else
            "restore the file as it was when the plan was made, or make a new plan with "
            "`cloudtmpl plan --out FILE`",
        )
    return out


def plan_id(plan: Plan) -> str:
    """A saved plan's identity: the digest of everything it holds."""
    return hashlib.sha256(canonical_json(plan.to_json()).encode()).hexdigest()[:32]


def check_plan_fresh(plan: Plan, stack: ResolvedStack, store: StateStore, fresh: Plan) -> None:
    """Refuse a plan whose inputs, state or live resources moved on since it was made
    (saying so plainly when the reason is that this very plan was applied)."""
    if fresh.state_serial != plan.state_serial and \
            store.applied_plan(plan.stack) == plan_id(plan):
        raise error(
            "stale-plan",
            f"this plan was already applied (stack {plan.stack!r} went from state serial "
            f"{plan.state_serial} to {fresh.state_serial} since it was made)",
            hint="nothing is left to do with it; run `cloudtmpl plan` again for what the "
            "template would change now",
        )
    problems = []
    snapshot_problem = _snapshot_problem(plan, None)
    if snapshot_problem:
        problems.append(snapshot_problem)
    if stack.params_hash != plan.params_hash:
        problems.append(
            "the parameter values differ (hidden parameters must be given again "
            f"with -p/-e: {', '.join(plan.hidden_params) or 'none'})"
        )
    if fresh.state_serial != plan.state_serial:
        problems.append(
            f"the state serial moved from {plan.state_serial} to "
            f"{fresh.state_serial} (another apply ran)"
        )
    if fresh.live_fingerprint != plan.live_fingerprint:
        before = {(c.address, c.prior.physical_id) for c in plan.changes if c.prior}
        after = {(c.address, c.prior.physical_id) for c in fresh.changes if c.prior}
        moved = sorted({a for a, _ in before ^ after}) or sorted(
            c.address for c in fresh.changes if c.action is not Action.NOOP
        )
        problems.append(
            "the live resources changed since planning"
            + (f" ({', '.join(moved)})" if moved else "")
        )
    if problems:
        raise error(
            "stale-plan",
            "the saved plan is out of date: " + "; ".join(problems),
            hint="run `cloudtmpl plan` again and apply the new plan",
        )
