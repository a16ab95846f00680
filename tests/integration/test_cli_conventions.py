"""The conventions of the command line, through the real CLI (in this process: `invoke`).

* ``--version`` and ``version --format json`` (what a bug report needs);
* shell completion (the script typer writes, and the completion protocol it runs);
* usage errors exit 1, never 2 (which ``plan --detailed-exitcode`` means "changes");
* every command's --help names parameters by what to type, never by Python type,
  and every --format lists exactly the values that command renders.

None of these needs a cloud.
"""

from __future__ import annotations

import json
import platform
import re
from importlib import metadata
from pathlib import Path

import pytest

from tests.integration.clitools import QUICKSTART, REPO, Result, invoke, write

# What each command's --format renders, by the command's path.
FORMATS = {
    "validate": ("text", "json"),
    "plan": ("text", "json", "markdown"),
    "apply": ("text", "json"),
    "outputs": ("text", "json"),
    "show": ("text", "json", "markdown"),
    "graph": ("dot", "mermaid"),
    "providers": ("text", "json"),
    "version": ("text", "json"),
    "sandbox start": ("text", "json"),
    "sandbox status": ("text", "json"),
    "state list": ("text", "json"),
    "state show": ("text", "json"),
}
# The arguments each command needs before its options are read.
ARGS = {
    "validate": ["t.yaml"], "plan": ["t.yaml"], "apply": ["t.yaml"], "graph": ["t.yaml"],
    "outputs": ["-s", "x"], "state show": ["x"], "state unlock": ["x"],
}
FLAGS = {"--help", "--version", "--yes", "-y", "--force", "--detailed-exitcode",
         "--allow-relocation", "--replace-template", "--raw"}
# Python or click type names as typer/click would print them for a parameter
TYPE_NAMES = re.compile(
    r"<(str|int|float|bool|path|file|datetime|uuid)>|list\[|\{[a-z_]+\}|int range|"
    r"\b(TEXT|INTEGER|FLOAT|BOOLEAN|PATH|FILENAME|UUID)\b"
)
OPTION_ROW = re.compile(r"^  (-[-\w]+(?:, -[-\w]+)?)(?: (\S+))?(?:\s{2,}|$)")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "t.yaml", QUICKSTART.read_text())
    return tmp_path


def commands(cwd: Path, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path below ``path``, read from the help's Commands section."""
    r = invoke(cwd, *path, "--help")
    assert r.code == 0, r.err
    section = r.out.split("\nCommands:\n", 1)
    if len(section) == 1:
        return [path]
    names = [line.split()[0] for line in section[1].splitlines() if line.startswith("  ")]
    assert names, r.out
    return [p for name in names for p in commands(cwd, (*path, name))]


def usage_error(r: Result, *needles: str) -> None:
    assert r.code == 1, (r.code, r.out, r.err)
    assert r.out == "", r.out
    assert "Error: " in r.err and "Usage: cloudtmpl" in r.err, r.err
    assert re.search(r"Try 'cloudtmpl[\w ]*--help' for help", r.err), r.err
    assert "Traceback" not in r.err
    for needle in needles:
        assert needle in r.err, (needle, r.err)


# -- version --------------------------------------------------------------------------
def test_version_flag_and_machine_readable_version(tmp_path: Path) -> None:
    installed = metadata.version("cloudtmpl")
    r = invoke(tmp_path, "--version")
    assert (r.code, r.out) == (0, f"cloudtmpl {installed}\n"), r.err
    r = invoke(tmp_path, "version", "--format", "json")
    assert r.code == 0, r.err
    info = r.json()
    assert info["version"] == installed
    assert info["python"] == platform.python_version()
    assert info["libcloud"] == metadata.version("apache-libcloud")
    assert info["moto"] == metadata.version("moto")  # the test extra installs the sandbox
    assert info["botocore"] == metadata.version("botocore")
    assert set(info) == {"version", "python", "platform", "libcloud", "botocore", "moto"}
    text = invoke(tmp_path, "version").out
    assert text.startswith(f"cloudtmpl {installed}\n") and f"libcloud: {info['libcloud']}" in text


# -- completion -------------------------------------------------------------------------
@pytest.mark.parametrize(("shell", "marks"), [
    ("bash", ("complete -o default -F _cloudtmpl_completion cloudtmpl",
              "_CLOUDTMPL_COMPLETE=complete_bash")),
    ("zsh", ("#compdef cloudtmpl", "_CLOUDTMPL_COMPLETE=complete_zsh")),
    ("fish", ("complete --command cloudtmpl", "_CLOUDTMPL_COMPLETE=complete_fish")),
])
def test_show_completion_writes_the_named_shells_script(
    tmp_path: Path, shell: str, marks: tuple[str, ...]
) -> None:
    # the shell is the one named, whatever shell runs the test (SHELL says otherwise)
    r = invoke(tmp_path, "--show-completion", shell, env={"SHELL": "/bin/tcsh"})
    assert r.code == 0, r.err
    for mark in marks:
        assert mark in r.out, (mark, r.out)
    assert "python" not in r.out  # the program is named as the user types it


def test_completion_protocol_completes_commands_and_format_values(tmp_path: Path) -> None:
    def complete(words: str) -> list[str]:
        r = invoke(tmp_path, env={"_CLOUDTMPL_COMPLETE": "complete_bash", "COMP_WORDS": words,
                               "COMP_CWORD": str(len(words.split()) - (not words.endswith(" ")))})
        assert r.code == 0, r.err
        return r.out.split()

    assert complete("cloudtmpl pla") == ["plan"]
    assert complete("cloudtmpl sandbox st") == ["start", "stop", "status"]
    assert complete("cloudtmpl plan t.yaml --format ") == ["text", "json", "markdown"]
    assert complete("cloudtmpl outputs -s x --format ") == ["text", "json"]
    assert complete("cloudtmpl --show-completion ") == ["bash", "zsh", "fish", "powershell", "pwsh"]


def test_show_completion_of_an_unknown_shell_is_a_usage_error(tmp_path: Path) -> None:
    usage_error(invoke(tmp_path, "--show-completion", "tcsh"),
                "'tcsh' is not one of bash, zsh, fish, powershell, pwsh")


# -- usage errors ---------------------------------------------------------------------------
def test_usage_errors_exit_1_not_the_changes_code(project: Path) -> None:
    # a typo in a CI job's flags must not read as "the plan has changes" (2)
    usage_error(invoke(project, "plan", "t.yaml", "--detailed-exitcode", "--tagret", "x"),
                "No such option: --tagret", "--target")
    usage_error(invoke(project, "plan"), "Missing argument 'TEMPLATE'")
    usage_error(invoke(project, "validate", "t.yaml", "--format", "yaml"),
                "Invalid value for '--format': 'yaml' is not one of text, json")
    usage_error(invoke(project, "plan", "t.yaml", "--parallelism", "0"), "'--parallelism'")
    usage_error(invoke(project, "plan", "t.yaml", "--parallelism", "many"), "'--parallelism'")
    usage_error(invoke(project, "outputs"), "Missing option '-s' / '--stack'")
    usage_error(invoke(project, "plna", "t.yaml"), "No such command 'plna'", "'plan'")
    usage_error(invoke(project, "state", "show"), "Missing argument 'STACK'")
    usage_error(invoke(project, "validate", "t.yaml", "extra"), "unexpected extra argument")
    assert not (project / ".cloudtmpl").exists()  # nothing ran


def test_exit_codes_are_one_table_in_help_and_readme(tmp_path: Path) -> None:
    help_text = invoke(tmp_path, "--help").out
    block = help_text.split("Exit codes:\n", 1)[1].split("\nOptions:", 1)[0]
    from_help = {int(m[1]): " ".join(m[2].split())
                 for m in re.finditer(r"^\s+(\d)  (.+?)(?=^\s+\d  |\Z)", block, re.M | re.S)}
    readme = (REPO / "README.md").read_text().split("### Exit codes\n", 1)[1]
    table = readme.strip().split("\n\n", 1)[0]
    rows = re.finditer(r"^\| (\d) \| (.+) \|$", table, re.M)
    from_readme = {int(m[1]): m[2].strip() for m in rows}
    assert from_help == from_readme, (from_help, from_readme)
    assert sorted(from_help) == [0, 1, 2]
    assert "usage error" in from_help[1] and "usage" not in from_help[2]


# -- help ------------------------------------------------------------------------------------
def test_help_names_what_to_type_and_formats_list_what_is_rendered(project: Path) -> None:
    paths = commands(project)
    assert {" ".join(p) for p in paths} >= set(FORMATS) | {"destroy", "sandbox stop",
                                                            "state unlock"}
    for path in [(), ("sandbox",), ("state",), *paths]:
        name = " ".join(path)
        r = invoke(project, *path, "--help")
        assert r.code == 0, (name, r.err)
        assert not TYPE_NAMES.search(r.out), (name, TYPE_NAMES.search(r.out), r.out)
        usage = r.out.splitlines()[0]
        assert usage.startswith(f"Usage: cloudtmpl {name}".rstrip()), usage
        assert not re.search(r"[{}<>]", usage), usage
        options = r.out.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0]
        rows = [OPTION_ROW.match(line) for line in options.splitlines()]
        advertised = None
        for row in filter(None, rows):
            flags, metavar = row[1], row[2]
            if set(flags.split(", ")) & FLAGS:
                assert metavar is None, (name, row[0])
                continue
            assert metavar and re.fullmatch(r"[A-Z][A-Z=\[\]/|_]*|[a-z]+(\|[a-z]+)+", metavar), (
                name, row[0])
            if flags == "--format":
                advertised = tuple(metavar.split("|"))
        assert advertised == FORMATS.get(name), (name, advertised)
        if advertised:
            r = invoke(project, *path, *ARGS.get(name, []), "--format", "yaml")
            usage_error(r, f"'yaml' is not one of {', '.join(advertised)}")


def test_each_listed_format_is_rendered(project: Path) -> None:
    """The commands that need no cloud, in every format they list (plan, show and
    apply's formats are checked against the sandbox in test_ci_outputs)."""
    state = ["--state", f"sqlite:///{project / 'state.db'}"]
    runs = {
        "validate": ["t.yaml"], "providers": [], "version": [], "state list": state,
        "graph": ["t.yaml"], "sandbox status": [],
    }
    env = {"CLOUDTMPL_SANDBOX_DIR": str(project / "sandbox")}
    for name, args in runs.items():
        seen = set()
        for fmt in FORMATS[name]:
            r = invoke(project, *name.split(), *args, "--format", fmt, env=env)
            assert r.code == 0, (name, fmt, r.err)
            if fmt == "json":
                json.loads(r.out)
            else:
                with pytest.raises(ValueError):
                    json.loads(r.out)
            if fmt == "dot":
                assert r.out.startswith("digraph"), r.out
            if fmt == "mermaid":
                assert r.out.startswith(("graph", "flowchart")), r.out
            seen.add(r.out)
        assert len(seen) == len(FORMATS[name]), name  # each format renders differently
    r = invoke(project, "show", "-s", "x", "--format", "markdown", *state)
    assert r.code == 1 and "[format-unsupported]" in r.err, r.err


# -- outputs ---------------------------------------------------------------------------------
OUTPUTS_TEMPLATE = """\
heat_template_version: 2021-04-16
resources:
  v:
    type: OS::Heat::Value
    properties:
      value: {b: [1, 2], a: 1}
outputs:
  zeta: {value: "hello world"}
  alpha: {value: 42}
  map: {value: {get_attr: [v, value]}}
  beta: {value: true}
"""
ORDER = ["zeta", "alpha", "map", "beta"]  # the template's, not sorted


def test_outputs_one_by_name_raw_and_in_template_order(project: Path) -> None:
    write(project / "outs.yaml", OUTPUTS_TEMPLATE)  # local resources only: no cloud
    r = invoke(project, "apply", "outs.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    block = r.out.split("\nOutputs:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in block] == ORDER, r.out

    r = invoke(project, "outputs", "-s", "outs")
    assert [line.split()[0] for line in r.out.splitlines()] == ORDER, r.out
    assert list(invoke(project, "outputs", "-s", "outs", "--format", "json").json()) == ORDER
    shown = invoke(project, "show", "-s", "outs", "--format", "json").json()
    assert list(shown["outputs"]) == ORDER
    assert list(invoke(project, "state", "show", "outs", "--format", "json").json()["outputs"]) \
        == ORDER
    text = invoke(project, "show", "-s", "outs").out.split("Outputs:\n", 1)[1]
    assert [line.split()[0] for line in text.splitlines()] == ORDER
    last = invoke(project, "apply", "outs.yaml", "--format", "json", "--yes").out.splitlines()[-1]
    assert list(json.loads(last)["outputs"]) == ORDER

    # one output: as JSON text, as JSON, and bare for a shell
    assert invoke(project, "outputs", "-s", "outs", "zeta").out == '"hello world"\n'
    assert invoke(project, "outputs", "-s", "outs", "map", "--format", "json").json() == {
        "a": 1, "b": [1, 2]}
    for name, bare in [("zeta", "hello world"), ("alpha", "42"), ("beta", "true")]:
        r = invoke(project, "outputs", "-s", "outs", name, "--raw")
        assert (r.code, r.out, r.err) == (0, bare, ""), name

    # what --raw cannot print, and names that do not exist, are diagnostics
    r = invoke(project, "outputs", "-s", "outs", "map", "--raw")
    assert (r.code, r.out) == (1, "") and "[output-not-raw]" in r.err, r.err
    assert "cloudtmpl outputs -s outs map --format json" in r.err
    r = invoke(project, "outputs", "-s", "outs", "--raw")
    assert r.code == 1 and "[raw-output]" in r.err, r.err
    r = invoke(project, "outputs", "-s", "outs", "zet")
    assert r.code == 1 and "[unknown-output]" in r.err and "did you mean 'zeta'?" in r.err
    for args in (["outputs", "-s", "nope"], ["show", "-s", "nope"],
                 ["show", "-s", "nope", "--format", "json"]):
        r = invoke(project, *args)
        if "json" in args:
            assert r.code == 1 and r.json()["diagnostics"][0]["code"] == "unknown-stack", r.out
        else:
            assert r.code == 1 and "[unknown-stack]" in r.err, (args, r.err)
        assert "the state has: outs" in (r.err + r.out), r.err


# -- nothing starts silently ------------------------------------------------------------------
def test_plan_that_starts_the_sandbox_says_so_and_how_to_stop_it(project: Path) -> None:
    env = {"CLOUDTMPL_SANDBOX_DIR": str(project / "sandbox")}  # its own: none running
    try:
        r = invoke(project, "plan", "t.yaml", "--format", "json", env=env)
        assert r.code == 0, r.err
        json.loads(r.out)  # the notice is on stderr, never in the JSON
        status = invoke(project, "sandbox", "status", "--format", "json", env=env).json()
        assert status["aws"]["running"] and status["openstack"]["running"]
        notice = r.err.strip()
        assert notice.startswith("Started the local sandbox clouds:"), r.err
        for cloud in ("aws", "openstack"):
            assert f"sandbox-{cloud} at {status[cloud]['endpoint']}" in notice, notice
        assert f"(logs in {project / 'sandbox'})" in notice
        assert "stop them with `cloudtmpl sandbox stop`" in notice
        # already running: nothing is started, nothing is said
        r = invoke(project, "plan", "t.yaml", env=env)
        assert r.code == 0 and "Started" not in r.err + r.out, r.err
    finally:
        stopped = invoke(project, "sandbox", "stop", env=env)
    assert stopped.out.strip() == "sandbox stopped", stopped.out + stopped.err
