"""What the user gave a command: the template, environment files and parameters.

:class:`Inputs` is the command line as a value; the functions here read the files it
names (each a regular file within its size limit, UTF-8) and derive the stack name.
Nothing here opens a cloud or the state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cloudtmpl import limits
from cloudtmpl.config import ProjectConfig
from cloudtmpl.diagnostics import NOWHERE, Diagnostic, DiagnosticError, Loc, error
from cloudtmpl.model import STACK_NAME_RE, STACK_NAME_RULE, default_stack_name


@dataclass(frozen=True)
class Inputs:
    """What the user named on the command line."""

    template: str | None = None
    environments: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    stack: str | None = None
    target: str | None = None
    state: str | None = None
    allow_relocation: bool = False
    # --replace-template: the template may replace the one the stack was applied from
    # even where that deletes resources
    replace_template: bool = False
    # the template's path relative to the project directory, when it is known apart
    # from ``template`` (a saved plan: ``template`` is relative to where it was made)
    stack_template: str = ""
    # --allow-dir: directories outside the project the template's files may be read from
    allow_dirs: tuple[str, ...] = ()


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs; ``KEY=@FILE`` reads the value from a file (no secrets in argv)."""
    out: dict[str, str] = {}
    diags = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            diags.append(
                Diagnostic(
                    "bad-parameter-arg",
                    f"-p {pair!r} is not KEY=VALUE",
                    hint="write -p name=value, or -p name=@file to read the value from a file",
                )
            )
            continue
        if value.startswith("@"):
            try:
                value = read_value_file(value[1:]).rstrip("\n")
            except DiagnosticError as err:
                diags.extend(replace(d, message=f"-p {key}: {d.message}")
                             for d in err.diagnostics)
                continue
        out[key] = value
    if diags:
        raise DiagnosticError(diags)
    return out


def read_value_file(path: str) -> str:
    """A ``-p KEY=@FILE`` value: a regular file of at most one value's size, UTF-8."""
    cap = limits.LIMITS.value_bytes
    try:
        return limits.read_text(path, cap, "value size")
    except limits.FileRefused as err:
        raise err.diagnostic(NOWHERE, f"cannot read {path}") from None
    except UnicodeDecodeError as err:
        raise error("file-not-found", f"cannot read {path}: not UTF-8 text ({err.reason})",
                    hint="a parameter value is text; save the file as UTF-8") from None
    except OSError as err:
        raise error("file-not-found", f"cannot read {path}: {err.strerror}",
                    hint="check the path after '@'") from None


def stack_name(inputs: Inputs) -> str:
    """``-s`` if given (it must be a valid name), else derived from the template's stem."""
    if inputs.stack is None:
        if inputs.template is None:
            raise error("no-stack", "no stack named", hint="pass a TEMPLATE or -s STACK")
        return default_stack_name(Path(inputs.template).stem)
    if not STACK_NAME_RE.match(inputs.stack):
        raise error(
            "invalid-stack-name",
            f"stack name {inputs.stack!r} is not valid: stack names are {STACK_NAME_RULE}",
            hint=f"pass -s {default_stack_name(inputs.stack)}",
        )
    return inputs.stack


def stack_template(project: ProjectConfig, inputs: Inputs) -> str:
    """The template file as the state records it: relative to the project directory,
    in POSIX form ("" without a template)."""
    if inputs.stack_template or not inputs.template:
        return inputs.stack_template
    relative = os.path.relpath(os.path.abspath(inputs.template),
                               os.path.abspath(project.directory))
    return Path(relative).as_posix()


def read_sources(inputs: Inputs) -> dict[str, str]:
    """The text of the template and environment files, by the path the user gave."""
    out: dict[str, str] = {}
    for path in (inputs.template, *inputs.environments):
        if path is None:
            continue
        try:
            out[path] = limits.read_text(path, limits.LIMITS.file_bytes)
        except limits.FileRefused as err:
            raise err.diagnostic(Loc(path), f"cannot read {path}") from None
        except UnicodeDecodeError as err:
            raise error("file-not-found", f"cannot read {path}: not UTF-8 text ({err.reason})",
                        Loc(path), "save the file as UTF-8") from None
        except OSError as err:
            raise error(
                "file-not-found", f"cannot read {path}: {err.strerror}", Loc(path), "check the path"
            ) from None
    return out
