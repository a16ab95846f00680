"""The command line: parse arguments, call the workflow, render, choose the exit code.

Exit codes are in one place, :class:`Exit` (the app's --help and README.md's
"Exit codes" show the same table).  The options commands share are
:mod:`cloudtmpl.clihelp`'s; what the phases show and ask while they run is
:mod:`cloudtmpl.cliui`'s; the sub-apps are :mod:`cloudtmpl.statecli` and
:mod:`cloudtmpl.sandboxcli`.  :func:`run` runs a command with the streams,
environment and directory it is given (:class:`cloudtmpl.cliio.Io`); :func:`main`
gives it the process's own.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from cloudtmpl import clihelp, render, signalling
from cloudtmpl import planfile as pf
from cloudtmpl import version as about
from cloudtmpl import workflow as wf
from cloudtmpl.catalog import target_regions
from cloudtmpl.cliguard import Exit, guard
from cloudtmpl.clihelp import (
    TEXT_JSON,
    TEXT_JSON_MARKDOWN,
    AllowDirOpt,
    Command,
    EnvOpt,
    Group,
    ParamOpt,
    ParOpt,
    RelocateOpt,
    ReplaceTemplateOpt,
    StackOpt,
    StateOpt,
    TargetOpt,
    TemplateArg,
    completion_option,
    format_opt,
)
from cloudtmpl.cliio import Io, bound
from cloudtmpl.cliui import TerminalUi
from cloudtmpl.config import load_project
from cloudtmpl.diagnostics import error
from cloudtmpl.graph import build_graph, to_dot, to_mermaid
from cloudtmpl.inputs import Inputs, parse_params
from cloudtmpl.plan import Plan
from cloudtmpl.sandboxcli import sandbox_app
from cloudtmpl.session import one_output, open_store, recorded_outputs
from cloudtmpl.statecli import state_app

EXIT_CODES = (
    (Exit.OK, "success (`plan --detailed-exitcode`: no changes)"),
    (Exit.ERROR, "error: invalid template, policy violation, cloud error, failed apply, "
                 "lock held; or a usage error: an unknown option, a missing argument, "
                 "a bad value"),
    (Exit.CHANGES, "`plan --detailed-exitcode` only: the plan has changes"),
)

app = typer.Typer(
    name="cloudtmpl",
    help="Declarative multi-cloud provisioning from Heat-style templates.\n\n"
    "Exit codes:\n\n\b\n"
    + "\n".join(textwrap.fill(text, 76, initial_indent=f"  {int(code)}  ",
                               subsequent_indent="     ") for code, text in EXIT_CODES),
    cls=Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(state_app, name="state")


def _version(value: bool) -> None:
    if value:
        print(f"cloudtmpl {about.version()}")
        raise typer.Exit(Exit.OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_version,
                     help="Print the version and exit."),
    ] = False,
    install_completion: Annotated[
        str | None,
        completion_option("--install-completion",
                          "Install shell completion for SHELL (bash, zsh, fish, powershell)."),
    ] = None,
    show_completion: Annotated[
        str | None,
        completion_option("--show-completion",
                          "Print the completion script for SHELL, to install it by hand."),
    ] = None,
) -> None:
    pass


_LOCKED_HINT = ("wait for that run to finish (a lock left by a process that died "
                "is taken over automatically)")


def _guard(fn: Callable[[], Any], fmt: str = "text") -> Any:
    return guard(fn, fmt, _LOCKED_HINT)


def _inputs(
    template: str | None,
    env: list[str] | None,
    params: list[str] | None,
    stack: str | None = None,
    target: str | None = None,
    state: str | None = None,
    allow_relocation: bool = False,
    replace_template: bool = False,
    allow_dirs: list[str] | None = None,
) -> Inputs:
    return Inputs(
        template=template,
        environments=tuple(env or ()),
        params=parse_params(params or []),
        stack=stack,
        target=target,
        state=state,
        allow_relocation=allow_relocation,
        replace_template=replace_template,
        allow_dirs=tuple(allow_dirs or ()),
    )


# -- validate -------------------------------------------------------------------
@app.command(cls=Command)
def validate(
    template: TemplateArg,
    stack_opt: StackOpt = None,
    env: EnvOpt = None,
    param: ParamOpt = None,
    target: TargetOpt = None,
    fmt: Annotated[str, format_opt(TEXT_JSON)] = "text",
    allow_dir: AllowDirOpt = None,
) -> None:
    """Check a template without parameter values (values given are checked too)."""

    def body() -> None:
        stack, _ = wf.resolve_checked(_inputs(template, env, param, stack_opt, target,
                                              allow_dirs=allow_dir),
                                      load_project(Path.cwd()), "validate")
        if fmt == "json":
            print(json.dumps(render.diagnostics_json([]), indent=2))
        else:
            render.console().print(
                f"{template}: valid ({len(stack.resources)} resources, "
                f"{len(stack.outputs)} outputs)"
            )

    _guard(body, fmt)


# -- plan -----------------------------------------------------------------------
def _print_plan(plan: Plan, fmt: str, planfile: str | None) -> None:
    """A plan on stdout as ``fmt`` (``planfile``: where it is saved, if it is)."""
    if fmt == "json":
        print(json.dumps(render.plan_json(plan), indent=2, sort_keys=True))
    elif fmt == "markdown":
        sys.stdout.write(render.plan_markdown(plan, full_plan=render.full_plan_hint(planfile)))
    else:
        render.plan_text(plan, render.console())


@app.command(cls=Command)
def plan(
    template: TemplateArg,
    stack: StackOpt = None,
    env: EnvOpt = None,
    param: ParamOpt = None,
    target: TargetOpt = None,
    out: Annotated[
        str | None,
        typer.Option("--out", metavar="FILE",
                     help="Save the plan (JSON, mode 0600) for `cloudtmpl apply FILE`."),
    ] = None,
    fmt: Annotated[str, format_opt(TEXT_JSON_MARKDOWN)] = "text",
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode", help="Exit 0 with no changes, 2 with changes, 1 on error."
        ),
    ] = False,
    state: StateOpt = None,
    parallelism: ParOpt = 10,
    allow_relocation: RelocateOpt = False,
    replace_template: ReplaceTemplateOpt = False,
    allow_dir: AllowDirOpt = None,
) -> None:
    """Show what apply would change, comparing the template with the live clouds."""

    def body() -> Plan:
        inputs = _inputs(template, env, param, stack, target, state, allow_relocation,
                         replace_template, allow_dir)
        result = wf.plan(load_project(Path.cwd()), inputs, parallelism, TerminalUi(yes=False))
        if out:
            pf.write_plan_file(result, out, render.plan_json(result, with_sources=True))
        _print_plan(result, fmt, out)
        if out and fmt == "text":
            render.console().print(
                f"Saved the plan to {out}; apply it with `cloudtmpl apply {out}`."
            )
        return result

    result: Plan = _guard(body, fmt)
    if detailed_exitcode and result.has_changes:
        raise typer.Exit(Exit.CHANGES)


# -- apply ----------------------------------------------------------------------
@app.command(cls=Command)
def apply(
    source: Annotated[
        str,
        typer.Argument(
            metavar="TEMPLATE|PLANFILE", help="Template file, or a plan saved with --out."
        ),
    ],
    stack: StackOpt = None,
    env: EnvOpt = None,
    param: ParamOpt = None,
    target: TargetOpt = None,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Apply without asking (required without a terminal)."),
    ] = False,
    parallelism: ParOpt = 10,
    fmt: Annotated[
        str, format_opt(TEXT_JSON, "text, or json: one JSON event per line, then the result.")
    ] = "text",
    state: StateOpt = None,
    allow_relocation: RelocateOpt = False,
    replace_template: ReplaceTemplateOpt = False,
    allow_dir: AllowDirOpt = None,
) -> None:
    """Make the clouds match the template (or apply exactly a saved plan)."""
    json_mode = fmt == "json"

    def body() -> bool:
        out = render.console()
        project = load_project(Path.cwd())
        saved = None
        if pf.is_plan_file(source):
            saved, inputs, sources, resolved = wf.saved_plan(
                source, param or [], env or [], state, stack, project)
        else:
            inputs = _inputs(source, env, param, stack, target, state, allow_relocation,
                             replace_template, allow_dir)
            resolved, sources = wf.resolve_checked(inputs, project, "plan")
        done = wf.apply(project, inputs, resolved, sources, parallelism,
                        TerminalUi(yes, out=out, json_lines=json_mode), saved=saved)
        todo, result, seconds = done.plan, done.result, done.seconds
        assert result is not None
        if json_mode:
            print(
                render.json_text(
                    {
                        "event": "result",
                        "ok": result.ok,
                        "summary": {s: result.count(s) for s in ("done", "failed", "skipped")},
                        "outputs": result.outputs,
                        "warnings": [w.to_json() for w in result.warnings],
                        "seconds": round(seconds, 3),
                    },
                    indent=None,
                )
            )
        else:
            if todo.has_changes:
                out.print(render.apply_summary(result, seconds))
            # the plan shown before showed its own; these are known only now
            render.diagnostics_text([w for w in result.warnings if w not in todo.warnings], out)
            if result.outputs:
                out.print("\nOutputs:")
                render.outputs_text(result.outputs, out)
        return result.ok

    ok = _guard(body, fmt)
    if not ok:
        raise typer.Exit(Exit.ERROR)


# -- destroy --------------------------------------------------------------------
@app.command(cls=Command)
def destroy(
    template: Annotated[
        str | None, typer.Argument(metavar="TEMPLATE", help="Template file (or use -s).")
    ] = None,
    stack: StackOpt = None,
    env: EnvOpt = None,
    param: ParamOpt = None,
    target: TargetOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Destroy without asking.")] = False,
    parallelism: ParOpt = 10,
    state: StateOpt = None,
    allow_dir: AllowDirOpt = None,
) -> None:
    """Delete every resource the stack owns (found by its tags), and nothing else."""

    def body() -> bool:
        out = render.console()
        inputs = _inputs(template, env, param, stack, target, state, allow_dirs=allow_dir)
        done = wf.destroy(load_project(Path.cwd()), inputs, parallelism, TerminalUi(yes, out=out))
        if done.result is not None:
            out.print(render.apply_summary(done.result, done.seconds, "Destroy"))
        return done.ok

    if not _guard(body):
        raise typer.Exit(Exit.ERROR)


# -- signal ---------------------------------------------------------------------
@app.command(cls=Command)
def signal(
    stack: Annotated[str, typer.Argument(metavar="STACK", help="Stack name.")],
    policy: Annotated[str, typer.Argument(metavar="POLICY",
                                          help="The scaling policy (OS::Heat::ScalingPolicy).")],
    template: Annotated[
        str | None,
        typer.Option("-t", "--template", metavar="FILE",
                     help="Template (default: the one the stack was last applied from)."),
    ] = None,
    env: EnvOpt = None,
    param: ParamOpt = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Scale without asking (required without a "
                           "terminal)."),
    ] = False,
    parallelism: ParOpt = 10,
    state: StateOpt = None,
) -> None:
    """Signal a scaling policy: resize its group as Heat would, then apply the new size."""

    def body() -> bool:
        out = render.console()
        done = signalling.signal(load_project(Path.cwd()),
                                 _inputs(template, env, param, stack, None, state),
                                 policy, parallelism, TerminalUi(yes, out=out))
        out.print(f"{done.policy}: group {done.group} {done.resize.text()}")
        if done.outcome is None or done.outcome.result is None:
            return True
        out.print(render.apply_summary(done.outcome.result, done.outcome.seconds))
        return done.outcome.ok

    if not _guard(body):
        raise typer.Exit(Exit.ERROR)


# -- outputs / show / graph -----------------------------------------------------------
@app.command(cls=Command)
def outputs(
    stack: Annotated[str, typer.Option("-s", "--stack", metavar="STACK", help="Stack name.")],
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Print only this output.")
    ] = None,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Print output NAME bare, for a shell: a string without "
                     "quotes or newline (a number or boolean as its literal)."),
    ] = False,
    fmt: Annotated[str, format_opt(TEXT_JSON)] = "text",
    state: StateOpt = None,
) -> None:
    """Print a stack's outputs (or one of them) as recorded by its last apply, in the
    template's order."""

    def body() -> None:
        if raw and (name is None or fmt == "json"):
            raise error(
                "raw-output",
                "--raw prints one output bare: name it, and leave out --format json",
                hint=f"cloudtmpl outputs -s {stack} NAME --raw",
            )
        project = load_project(Path.cwd())
        with open_store(project, Inputs(stack=stack, state=state)) as store:
            values = recorded_outputs(store, stack)
        if name is not None:
            value = one_output(values, name, stack)
            if raw:
                sys.stdout.write(render.raw_text(stack, name, value))
            else:
                print(json.dumps(value, indent=2 if fmt == "json" else None, sort_keys=True))
        elif fmt == "json":
            print(render.outputs_json(values))
        else:
            render.outputs_text(values, render.console())

    _guard(body, fmt)


@app.command(cls=Command)
def show(
    planfile: Annotated[
        str | None, typer.Argument(metavar="PLANFILE", help="A plan saved with --out.")
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option("-s", "--stack", metavar="STACK", help="Show a stack's state."),
    ] = None,
    fmt: Annotated[
        str, format_opt(TEXT_JSON_MARKDOWN, "text, json, or markdown (a plan file only).")
    ] = "text",
    state: StateOpt = None,
) -> None:
    """Render a saved plan, or the recorded resources and outputs of a stack."""

    def body() -> None:
        if planfile:
            _print_plan(pf.load_plan_file(planfile), fmt, planfile)
            return
        if not stack:
            raise error(
                "no-stack",
                "show needs a PLANFILE or -s STACK",
                hint="cloudtmpl show plan.json, or cloudtmpl show -s mystack",
            )
        if fmt == "markdown":
            raise error(
                "format-unsupported",
                "show -s STACK renders text or json; markdown is for a plan file",
                hint=f"cloudtmpl show -s {stack} --format json, or "
                "cloudtmpl show PLANFILE --format markdown",
            )
        project = load_project(Path.cwd())
        with open_store(project, Inputs(stack=stack, state=state)) as store:
            values = recorded_outputs(store, stack)
            records = store.resources(stack)
            serial = store.serial(stack)
        if fmt == "json":
            print(
                render.json_text(
                    {
                        "stack": stack,
                        "serial": serial,
                        "resources": {
                            a: render.record_json(r, spec=r.spec, attributes=r.attributes)
                            for a, r in records.items()
                        },
                        "outputs": values,
                    }
                )
            )
            return
        out = render.console()
        out.print(f"Stack {stack} (serial {serial}): {len(records)} resources")
        for address, r in sorted(records.items()):
            out.print(f"  {address:24} {r.kind:32} {r.target}/{r.region} {r.physical_id}")
        if values:
            out.print("Outputs:")
            render.outputs_text(values, out)

    _guard(body, fmt)


@app.command(cls=Command)
def graph(
    template: TemplateArg,
    env: EnvOpt = None,
    param: ParamOpt = None,
    target: TargetOpt = None,
    fmt: Annotated[str, format_opt(("dot", "mermaid"), "dot (Graphviz) or mermaid.")] = "dot",
    allow_dir: AllowDirOpt = None,
) -> None:
    """Print the resource dependency graph (Graphviz dot or Mermaid)."""

    def body() -> None:
        stack, _ = wf.resolve_checked(_inputs(template, env, param, target=target,
                                              allow_dirs=allow_dir),
                                      load_project(Path.cwd()), "validate")
        g = build_graph(stack)
        print(to_dot(g) if fmt == "dot" else to_mermaid(g))

    _guard(body)


# -- providers ------------------------------------------------------------------
@app.command(cls=Command)
def providers(
    fmt: Annotated[str, format_opt(TEXT_JSON)] = "text",
) -> None:
    """List provider targets and their regions with country and jurisdiction."""

    def body() -> None:
        project = load_project(Path.cwd())
        listing: dict[str, dict[str, Any]] = {
            name: {
                "type": target.type,
                "default_region": target.region,
                "sandbox": target.sandbox,
                "regions": {
                    region: {
                        "country": info.country,
                        "jurisdiction": info.jurisdiction,
                        "name": info.display_name,
                    }
                    for region, info in target_regions(target).items()
                },
            }
            for name, target in project.targets.items()
        }
        if fmt == "json":
            print(json.dumps(listing, indent=2, sort_keys=True))
            return
        out = render.console()
        for name, info in listing.items():
            out.print(f"{name} ({info['type']}, default region {info['default_region'] or '-'})")
            for region, r in info["regions"].items():
                where = "/".join(x for x in (r["country"], r["jurisdiction"]) if x)
                out.print(f"  {region:16} {where or 'country not declared':10} {r['name']}")

    _guard(body, fmt)


# -- version --------------------------------------------------------------------
@app.command(cls=Command)
def version(fmt: Annotated[str, format_opt(TEXT_JSON)] = "text") -> None:
    """Print the version, with Python's, the platform's and the cloud libraries', for a
    bug report."""
    info = about.versions()
    if fmt == "json":
        print(json.dumps(info, indent=2, sort_keys=True))
        return
    print(f"cloudtmpl {info['version']}")
    for name, value in info.items():
        if name != "version":
            print(f"  {name}: {value or 'not installed'}")


def run(args: Sequence[str], io: Io) -> int:
    """Run the command ``args`` (without the program name) with ``io``'s streams,
    environment and directory; returns its exit code."""
    with bound(io):
        try:
            return clihelp.run(app, args, prog_name="cloudtmpl", usage_code=Exit.USAGE)
        except SystemExit as done:  # e.g. the shell-completion protocol's own exit
            return _exit_code(done.code)


def _exit_code(code: object) -> int:
    """The exit code of ``sys.exit(code)``, as a process gives it (a text: printed, 1)."""
    if code is None:
        return Exit.OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return Exit.ERROR


def main() -> None:
    sys.exit(run(sys.argv[1:], Io.process()))


if __name__ == "__main__":
    main()
