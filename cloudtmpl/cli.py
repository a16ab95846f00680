"""The command line: parse arguments, call the workflow, render, choose the exit code.

Exit codes are in one place, :class:`Exit` (the app's --help and README.md's
"Exit codes" show the same table).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from cloudtmpl import clihelp, render
from cloudtmpl import planfile as pf
from cloudtmpl import version as about
from cloudtmpl import workflow as wf
from cloudtmpl.apply import Event
from cloudtmpl.catalog import target_regions
from cloudtmpl.cliguard import Exit, guard
from cloudtmpl.clihelp import Command, Group, StateOpt, choice_option, completion_option
from cloudtmpl.config import load_project
from cloudtmpl.diagnostics import error
from cloudtmpl.graph import build_graph, to_dot, to_mermaid
from cloudtmpl.inputs import Inputs, parse_params
from cloudtmpl.plan import Plan
from cloudtmpl.session import SandboxStarted, one_output, open_store, recorded_outputs
from cloudtmpl.statecli import state_app
from cloudtmpl.steps import build_steps
from cloudtmpl_sandbox import manager as sandbox

EXIT_CODES = (
    (Exit.OK, "success (`plan --detailed-exitcode`: no changes)"),
    (Exit.ERROR, "error: invalid template, policy violation, cloud error, failed apply, "
                 "lock held; or a usage error: an unknown option, a missing argument, "
                 "a bad value"),
    (Exit.CHANGES, "`plan --detailed-exitcode` only: the plan has changes"),
)

# What each command's --format renders (a value not listed is a usage error).
TEXT_JSON = ("text", "json")
TEXT_JSON_MARKDOWN = ("text", "json", "markdown")

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
sandbox_app = typer.Typer(
    help="Local sandbox clouds on 127.0.0.1 (moto for AWS).", no_args_is_help=True, cls=Group
)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(state_app, name="state")

EnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-e",
        "--environment",
        metavar="FILE",
        help="Environment file (parameters, parameter_defaults); repeatable, merged in order.",
    ),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-p",
        "--parameter",
        metavar="KEY=VALUE",
        help="KEY=VALUE, or KEY=@FILE to read the value from a file (use that "
        "for hidden parameters: argv is visible to other users); repeatable.",
    ),
]
StackOpt = Annotated[
    str | None,
    typer.Option(
        "-s",
        "--stack",
        metavar="STACK",
        help="Stack name [default: derived from the template file's name, "
        "e.g. WordPress_Native.yaml is stack wordpress_native].",
    ),
]
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target",
        metavar="TARGET[/REGION]",
        help="Provider target (and region) for resources the template does not place: "
        "T or T/REGION, e.g. sandbox-aws/eu-central-1.",
    ),
]
RelocateOpt = Annotated[
    bool,
    typer.Option(
        "--allow-relocation",
        help="Let a pinned or data-bearing resource (volume) move to another target/region: "
        "that replaces it, and its data is not moved.",
    ),
]
ReplaceTemplateOpt = Annotated[
    bool,
    typer.Option(
        "--replace-template",
        help="Let this template replace the one the stack was applied from, even where "
        "that deletes the resources this one does not have.",
    ),
]
ParOpt = Annotated[
    int,
    typer.Option(
        "--parallelism", metavar="N", min=1, max=64, help="Cloud operations run at once."
    ),
]
TemplateArg = Annotated[str, typer.Argument(metavar="TEMPLATE", help="Template file.")]


def _format_opt(choices: tuple[str, ...], help: str | None = None) -> Any:
    return choice_option("--format", choices=choices,
                         help=help or f"Output format: {', '.join(choices)}.")


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
    )


def _announce(started: SandboxStarted) -> None:
    """Nothing starts silently: say which sandbox started, where, and how to stop it."""
    render.console(stderr=True).print(
        render.sandbox_started(started.endpoints, started.directory), markup=False
    )


def _confirm(yes: bool, what: str) -> None:
    if yes:
        return
    if not render.interactive(sys.stdin) or not render.interactive(sys.stdout):
        raise error(
            "confirmation-required",
            f"refusing to {what} without --yes: no terminal to ask on",
            hint=f"review the plan, then run again with --yes to {what}",
        )
    if not typer.confirm(f"Do you want to {what}?", default=False):
        raise error("aborted", f"{what} cancelled", hint="nothing was changed")


def _progress(out: Any, plan: Plan, json_lines: bool) -> Any:
    """Apply progress: a live bar on a terminal, plain lines (or JSON lines) otherwise."""
    if json_lines or not render.interactive():
        return contextlib.nullcontext(render.EventPrinter(out, json_lines=json_lines))
    return render.LiveProgress(out, total=build_steps(plan).number_of_nodes())


class _Ui:
    """What the phases show and ask (:class:`cloudtmpl.workflow.Ui`), on the terminal."""

    def __init__(self, yes: bool, out: Any = None, json_lines: bool = False) -> None:
        self.yes, self.out, self.json_lines = yes, out, json_lines

    def sandbox_started(self, started: SandboxStarted) -> None:
        _announce(started)

    def planned(self, plan: Plan, no_changes: str | None = None) -> None:
        if self.json_lines:
            return
        if no_changes is None:
            render.plan_text(plan, self.out)
        else:
            render.plan_text(plan, self.out, no_changes=no_changes)

    def confirm(self, what: str) -> None:
        _confirm(self.yes, what)

    @contextlib.contextmanager
    def running(self, plan: Plan) -> Iterator[tuple[threading.Event, Callable[[Event], None]]]:
        with _Interrupts() as stop, _progress(self.out, plan, self.json_lines) as emit:
            yield stop, emit


class _Interrupts:
    """First Ctrl-C/SIGTERM: start no new steps; second: abort at once."""

    def __init__(self) -> None:
        self.stop = threading.Event()

    def __enter__(self) -> threading.Event:
        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in self._old:
            signal.signal(s, self._handle)
        return self.stop

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        render.console(stderr=True).print(
            "stopping: no new steps start; running cloud calls finish (Ctrl-C again to abort)"
        )

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


# -- validate -------------------------------------------------------------------
@app.command(cls=Command)
def validate(
    template: TemplateArg,
    stack_opt: StackOpt = None,
    env: EnvOpt = None,
    param: ParamOpt = None,
    target: TargetOpt = None,
    fmt: Annotated[str, _format_opt(TEXT_JSON)] = "text",
) -> None:
    """Check a template without parameter values (values given are checked too)."""

    def body() -> None:
        stack, _ = wf.resolve_checked(_inputs(template, env, param, stack_opt, target),
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
    fmt: Annotated[str, _format_opt(TEXT_JSON_MARKDOWN)] = "text",
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
) -> None:
    """Show what apply would change, comparing the template with the live clouds."""

    def body() -> Plan:
        inputs = _inputs(template, env, param, stack, target, state, allow_relocation,
                         replace_template)
        result = wf.plan(load_project(Path.cwd()), inputs, parallelism, _Ui(yes=False))
        if out:
            pf.write_plan_file(result, out, render.plan_json(result, with_sources=True))
        if fmt == "json":
            print(json.dumps(render.plan_json(result), indent=2, sort_keys=True))
        elif fmt == "markdown":
            sys.stdout.write(render.plan_markdown(result, full_plan=render.full_plan_hint(out)))
        else:
            render.plan_text(result, render.console())
            if out:
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
        str, _format_opt(TEXT_JSON, "text, or json: one JSON event per line, then the result.")
    ] = "text",
    state: StateOpt = None,
    allow_relocation: RelocateOpt = False,
    replace_template: ReplaceTemplateOpt = False,
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
                             replace_template)
            resolved, sources = wf.resolve_checked(inputs, project, "plan")
        done = wf.apply(project, inputs, resolved, sources, parallelism,
                        _Ui(yes, out=out, json_lines=json_mode), saved=saved)
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
                        "seconds": round(seconds, 3),
                    },
                    indent=None,
                )
            )
        else:
            if todo.has_changes:
                out.print(render.apply_summary(result, seconds))
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
) -> None:
    """Delete every resource the stack owns (found by its tags), and nothing else."""

    def body() -> bool:
        out = render.console()
        inputs = _inputs(template, env, param, stack, target, state)
        done = wf.destroy(load_project(Path.cwd()), inputs, parallelism, _Ui(yes, out=out))
        if done.result is not None:
            out.print(render.apply_summary(done.result, done.seconds, "Destroy"))
        return done.ok

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
    fmt: Annotated[str, _format_opt(TEXT_JSON)] = "text",
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
        str, _format_opt(TEXT_JSON_MARKDOWN, "text, json, or markdown (a plan file only).")
    ] = "text",
    state: StateOpt = None,
) -> None:
    """Render a saved plan, or the recorded resources and outputs of a stack."""

    def body() -> None:
        if planfile:
            saved = pf.load_plan_file(planfile)
            if fmt == "json":
                print(json.dumps(render.plan_json(saved), indent=2, sort_keys=True))
            elif fmt == "markdown":
                sys.stdout.write(
                    render.plan_markdown(saved, full_plan=render.full_plan_hint(planfile))
                )
            else:
                render.plan_text(saved, render.console())
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
                            a: {
                                "kind": r.kind,
                                "target": r.target,
                                "region": r.region,
                                "physical_id": r.physical_id,
                                "spec": r.spec,
                                "attributes": r.attributes,
                            }
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
    fmt: Annotated[str, _format_opt(("dot", "mermaid"), "dot (Graphviz) or mermaid.")] = "dot",
) -> None:
    """Print the resource dependency graph (Graphviz dot or Mermaid)."""

    def body() -> None:
        stack, _ = wf.resolve_checked(_inputs(template, env, param, target=target),
                                      load_project(Path.cwd()), "validate")
        g = build_graph(stack)
        print(to_dot(g) if fmt == "dot" else to_mermaid(g))

    _guard(body)


# -- providers ------------------------------------------------------------------
@app.command(cls=Command)
def providers(
    fmt: Annotated[str, _format_opt(TEXT_JSON)] = "text",
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


# -- sandbox --------------------------------------------------------------------
@sandbox_app.command("start", cls=Command)
def sandbox_start(fmt: Annotated[str, _format_opt(TEXT_JSON)] = "text") -> None:
    """Start the local sandbox clouds in the background (reused if already running)."""
    _guard(sandbox.start)
    sandbox_status(fmt)


@sandbox_app.command("stop", cls=Command)
def sandbox_stop() -> None:
    """Stop the local sandbox clouds (their resources are lost)."""
    stopped = _guard(sandbox.stop)
    render.console().print("sandbox stopped" if stopped else "sandbox was not running")


@sandbox_app.command("status", cls=Command)
def sandbox_status(
    fmt: Annotated[str, _format_opt(TEXT_JSON)] = "text",
) -> None:
    """Show the sandbox endpoints (JSON: for boto3, the openstack CLI and tests)."""
    info = _guard(sandbox.status)
    if fmt == "json":
        print(json.dumps(info, indent=2, sort_keys=True))
        return
    out = render.console()
    for name, cloud in info.items():
        if cloud.get("running"):
            out.print(
                f"sandbox-{name}: running at {cloud.get('endpoint')} (pid {cloud.get('pid')},"
                f" regions {', '.join(cloud.get('regions', []))}, token {cloud.get('token')})"
            )
        else:
            out.print(f"sandbox-{name}: stopped")


# -- version --------------------------------------------------------------------
@app.command(cls=Command)
def version(fmt: Annotated[str, _format_opt(TEXT_JSON)] = "text") -> None:
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


def main() -> None:
    sys.exit(clihelp.run(app, prog_name="cloudtmpl", usage_code=Exit.USAGE))


if __name__ == "__main__":
    main()
