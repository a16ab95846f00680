"""How the command line reads and shows its parameters, and how it treats usage errors.

* Help shows what to type, never a Python type: every parameter is named by its
  metavar (``KEY=VALUE``, ``FILE``, ``text|json``); typer would print
  ``<list[str]>`` or ``TEMPLATE <str>``.  :class:`Command` and :class:`Group`
  draw the usage line and the parameter lists from the metavars; the help text
  and its ``[default: ...]`` notes stay typer's.
* A choice option (:func:`choice_option`) lists exactly the values it accepts;
  any other value is a usage error naming them.
* The options several commands share (``-e``, ``-p``, ``-s``, ``--target``, ``--state``,
  ``--format``...) are declared here once.
* :func:`run` runs the app and turns a usage error (an unknown option, a missing
  argument, a bad value) into exit code ``usage_code``: click's own code for
  them is 2, which ``plan --detailed-exitcode`` uses for "the plan has changes".

typer vendors click since 0.26 (``typer._click``); the dependency is pinned to
the typer line these are written against.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from typer._click.exceptions import ClickException, UsageError
from typer.core import TyperCommand, TyperGroup

SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")

# --state, the same on every command that opens the state
StateOpt = Annotated[
    str | None,
    typer.Option(
        "--state",
        metavar="URL",
        envvar="CLOUDTMPL_STATE",
        help="State store URL [default: sqlite:///<project>/.cloudtmpl/state.db].",
    ),
]
EnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-e",
        "--environment",
        metavar="FILE",
        help="Environment file (parameters, parameter_defaults); repeatable, merged in order.",
    ),
]
# --allow-dir: where the template's files may be read besides the project directory
AllowDirOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-dir",
        metavar="DIR",
        help="A directory outside the project that get_file, template resources and "
        "resource_registry files may be read from; repeatable.",
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

# What each command's --format renders (a value not listed is a usage error).
TEXT_JSON = ("text", "json")
TEXT_JSON_MARKDOWN = ("text", "json", "markdown")


def _name(param: Any) -> str:
    """A parameter as help and usage show it: ``-s, --stack STACK``, ``TEMPLATE``."""
    if param.param_type_name == "argument":
        name = param.metavar or param.name.upper()
        return name + ("..." if param.nargs != 1 else "")
    opts = ", ".join(sorted(param.opts, key=lambda o: (o.startswith("--"), o)))
    if param.is_flag or param.count:
        return opts
    return f"{opts} {param.metavar or param.name.upper()}"


def _format_params(command: Any, ctx: Any, formatter: Any) -> None:
    args: list[tuple[str, str]] = []
    opts: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        row = (_name(param), record[1])
        (args if param.param_type_name == "argument" else opts).append(row)
    if args:
        with formatter.section("Arguments"):
            formatter.write_dl(args)
    if opts:
        with formatter.section("Options"):
            formatter.write_dl(opts)


class Command(TyperCommand):
    """A command whose help names every parameter by its metavar."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_params(self, ctx, formatter)


class Group(TyperGroup):
    """A group of commands whose options are named by their metavars."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)


def choice_option(*flags: str, choices: Sequence[str], help: str) -> Any:
    """A ``typer.Option`` that takes one of ``choices`` (a ``str``), named ``a|b|c``."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    def complete(incomplete: str) -> list[str]:
        return [c for c in choices if c.startswith(incomplete)]

    return typer.Option(
        *flags, metavar="|".join(choices), help=help, callback=check, autocompletion=complete
    )


def format_opt(choices: tuple[str, ...], help: str | None = None) -> Any:
    """``--format a|b``: one of ``choices``."""
    return choice_option("--format", choices=choices,
                         help=help or f"Output format: {', '.join(choices)}.")


def completion_option(flag: str, help: str) -> Any:
    """``--show-completion SHELL`` / ``--install-completion SHELL``: typer's own, for the
    shell named (typer's would guess it from the parent process, ignoring the name)."""
    from typer import completion

    completion.completion_init()  # the shells typer completes (also for the _COMPLETE protocol)
    action = completion.show_callback if flag == "--show-completion" else \
        completion.install_callback

    def callback(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> None:
        if value is None or ctx.resilient_parsing:
            return
        if value not in SHELLS:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(SHELLS)}")
        action(ctx, param, value)  # prints or installs, then exits 0

    return typer.Option(
        flag, metavar="SHELL", help=help, callback=callback, is_eager=True, expose_value=False,
        autocompletion=lambda incomplete: [s for s in SHELLS if s.startswith(incomplete)],
    )


def run(app: Callable[..., Any], args: Sequence[str], prog_name: str, usage_code: int) -> int:
    """Run a typer app on ``args``; returns the exit code (a usage error's is
    ``usage_code``)."""
    try:
        code = app(args=list(args), prog_name=prog_name, standalone_mode=False)
    except UsageError as err:
        err.show()
        return usage_code
    except ClickException as err:
        err.show()
        return err.exit_code
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        return 1
    # typer.Exit(code) comes back as its code; a command's own return value is not a code
    return int(code) if isinstance(code, int) and not isinstance(code, bool) else 0
