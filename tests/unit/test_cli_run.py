"""``cli.run`` with an ``Io`` of the caller's: a command's output, exit code,
environment and directory are the caller's, and the process's are put back."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

from cloudtmpl import cli
from cloudtmpl.cliio import Io


def run(args: list[str], cwd: Path, **environ: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.run(args, Io(io.StringIO(""), out, err, {**os.environ, **environ}, cwd))
    return code, out.getvalue(), err.getvalue()


def test_output_and_exit_code_are_the_callers(tmp_path: Path) -> None:
    code, out, err = run(["version", "--format", "json"], tmp_path)
    assert (code, err) == (0, "")
    assert json.loads(out)["version"]


def test_usage_error_is_exit_1_on_the_callers_stderr(tmp_path: Path) -> None:
    code, out, err = run(["plan", "--no-such-option"], tmp_path)
    assert code == 1
    assert out == ""
    assert "No such option: --no-such-option" in err


def test_environment_and_directory_are_the_commands_then_the_processs(
    tmp_path: Path
) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    (tmp_path / "v.yaml").write_text(
        "heat_template_version: 2021-04-16\nresources:\n"
        "  v: {type: OS::Heat::Value, properties: {value: 1}}\n")
    before = dict(os.environ), Path.cwd(), sys.stdout
    code, out, err = run(["validate", "v.yaml"], tmp_path, CLOUDTMPL_TEST_ONLY="1")
    assert (code, err) == (0, ""), err
    assert out == "v.yaml: valid (1 resources, 0 outputs)\n"
    assert (dict(os.environ), Path.cwd(), sys.stdout) == before
    assert "CLOUDTMPL_TEST_ONLY" not in os.environ


def test_the_command_reads_the_callers_environment(tmp_path: Path) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    elsewhere = tmp_path / "elsewhere.db"
    code, out, err = run(["state", "list"], tmp_path, CLOUDTMPL_STATE=f"sqlite:///{elsewhere}")
    assert (code, out, err) == (0, "no stacks in the state\n", "")
    assert elsewhere.exists()
    assert not (tmp_path / ".cloudtmpl" / "state.db").exists()


def test_a_system_exit_is_an_exit_code() -> None:
    assert cli._exit_code(None) == 0
    assert cli._exit_code(3) == 3
    assert cli._exit_code("bye") == 1
