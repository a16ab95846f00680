"""scripts/readme-check: which README blocks are commands, and how a README session runs.

The session tests run real bash sessions in a throwaway copy of the repository (no
cloudtmpl needed: the commands are plain shell), including the failures the check
exists to catch.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_readme_check() -> ModuleType:
    path = REPO / "scripts" / "readme-check"
    loader = importlib.machinery.SourceFileLoader("readme_check", str(path))
    spec = importlib.util.spec_from_loader("readme_check", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_check"] = module
    loader.exec_module(module)
    return module


rc = load_readme_check()

SAMPLE = """\
# Title

Install and run:

    pip install '.[sandbox]' && cloudtmpl apply x.yaml --yes
    cloudtmpl plan x.yaml --detailed-exitcode   # exit 2: changes

A project file:

    providers:
      aws-eu: {type: aws}

* a list item with its own block:

      cd examples/four-clouds
      # a comment line
      ENDPOINT=$(cloudtmpl sandbox status --format json | \\
        python -c 'print(1)')

<!-- readme-check: skip (needs a PostgreSQL server) -->

    export CLOUDTMPL_STATE=postgresql://db.example.com/x
    cloudtmpl apply x.yaml --yes

The layout:

    cloudtmpl/   the package
    tests/       the tests

```yaml
# used with: cloudtmpl plan stack.yaml -e env.yaml
resource_registry: {}
```

```sh
bash scripts/x.sh   # exit 0
```

Residency line:

    Residency: DE 11 (jurisdictions: EU 11)
"""


def test_which_blocks_are_commands() -> None:
    blocks = rc.code_blocks("X.md", SAMPLE)
    summary = [(b.line, rc.is_commands(b), b.skip) for b in blocks]
    assert summary == [
        (5, True, None),
        (10, False, None),  # YAML
        (15, True, None),  # inside a list item: six spaces
        (22, True, "needs a PostgreSQL server"),
        (27, False, None),  # a listing
        # the yaml fence is no candidate at all
        (36, True, None),  # a sh fence: the line after the fence
        (41, False, None),  # output, not a command
    ]
    cmds = [c for b in blocks if rc.is_commands(b) and not b.skip for c in rc.commands(b)]
    assert [(c.where, c.expected) for c in cmds] == [
        ("X.md:5", 0), ("X.md:6", 2), ("X.md:15", 0), ("X.md:17", 0), ("X.md:36", 0)
    ]
    assert cmds[3].text == (
        "ENDPOINT=$(cloudtmpl sandbox status --format json | \\\n  python -c 'print(1)')"
    )


def test_the_readme_starts_with_its_install_command_and_marks_what_it_skips() -> None:
    # The check's venv starts empty: README.md's first command must be the install.
    readme = REPO / "README.md"
    blocks = [b for b in rc.code_blocks("README.md", readme.read_text()) if rc.is_commands(b)]
    cmds = [c for b in blocks if not b.skip for c in rc.commands(b)]
    assert cmds[0].text.startswith("pip install ")
    assert len(cmds) >= 20
    # the suite runs the check: it must never run the suite
    assert any(b.skip and b.lines[0].startswith("bash scripts/test.sh") for b in blocks)
    assert rc.readmes()[0] == REPO / "README.md"


def session(tmp_path: Path, lines: list[str]) -> tuple[int, int, list[str]]:
    block = rc.Block("T.md", 10, tuple(lines), None)
    no_cloudtmpl = tmp_path / "venv"
    (no_cloudtmpl / "bin").mkdir(parents=True)
    result: tuple[int, int, list[str]] = rc.run_readme(
        "T.md", rc.commands(block), tmp_path / "root", no_cloudtmpl
    )
    return result


def test_one_shell_per_readme_and_documented_exit_codes(tmp_path: Path) -> None:
    passed, ran, failures = session(tmp_path, [
        "cd examples",
        "export GREETING=hello",
        'test "$(basename "$PWD")" = examples && test "$GREETING" = hello',
        "git rev-parse --show-toplevel   # the copy is a git repository",
        "test -f ../README.md && test -z \"$AWS_ACCESS_KEY_ID$CLOUDTMPL_STATE\"",
        'test "$HOME" != ~root && test -n "$CLOUDTMPL_SANDBOX_DIR"',
        "false   # exit 1: documented",
        "read -r line; test -z \"$line\"   # stdin is empty",
    ])
    assert failures == [] and (passed, ran) == (8, 8)


def test_a_failure_names_the_readme_line_and_stops_the_readme(tmp_path: Path) -> None:
    passed, ran, failures = session(tmp_path, [
        "true",
        "echo some output; echo the reason >&2; exit 3",
        "echo never runs",
    ])
    assert (passed, ran) == (1, 1)  # `exit 3` ends the shell: the line never finished
    (message,) = failures
    assert message.startswith("T.md:11: the shell ended during this command"), message
    assert "the reason" in message

    passed, ran, failures = session(tmp_path / "2", [
        "cloudtmpl-does-not-exist plan x.yaml",
        "echo never runs",
    ])
    assert (passed, ran) == (0, 1)
    (message,) = failures
    assert message.startswith("T.md:10: exited 127, the README expects 0:"), message
    assert "$ cloudtmpl-does-not-exist plan x.yaml" in message
    assert "command not found" in message

    passed, ran, failures = session(tmp_path / "3", ["true   # exit 2"])
    assert failures and failures[0].startswith("T.md:10: exited 0, the README expects 2")


def test_processes_left_running_are_killed_and_fail_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rc, "LINGER", 1)
    passed, ran, failures = session(tmp_path, ["setsid sleep 600 >/dev/null 2>&1 &"])
    assert (passed, ran) == (1, 1)
    (message,) = failures
    assert "still running after `cloudtmpl sandbox stop`, killed:" in message
    assert "sleep 600" in message
    assert rc.own_processes(tmp_path / "root") == {}
