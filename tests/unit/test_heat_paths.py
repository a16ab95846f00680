"""Heat's file rules, as python-heatclient reads files: ``get_file``, template
resources and ``resource_registry`` files are relative to the file naming them, may
go up (``../``) and be absolute, and are confined to the project directory (or
``--allow-dir``).  The pure path logic, then the real CLI on real files."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from cloudtmpl import cli
from cloudtmpl.cliio import Io
from cloudtmpl.resolve.files import file_key, file_path_problem
from cloudtmpl.sourcefiles import OutsideRoots, allowed_roots, file_reader, source_key

HEAD = "heat_template_version: 2021-04-16\n"


# -- the pure path logic -------------------------------------------------------------
@pytest.mark.parametrize(("base", "path", "key"), [
    ("", "scripts/x.sh", "scripts/x.sh"),
    ("", "./scripts/../x.sh", "x.sh"),
    ("nested", "../scripts/x.sh", "scripts/x.sh"),
    ("a/b", "../../../x.sh", "../x.sh"),
    ("nested", "/abs/x.sh", "/abs/x.sh"),
])
def test_a_key_is_relative_to_the_naming_files_directory(base: str, path: str, key: str) -> None:
    assert file_key(base, path) == key


@pytest.mark.parametrize(("path", "refused"), [
    ("../x.sh", False), ("/abs/x.sh", False), ("x.sh", False),
    ("http://h/x.sh", True), ("file:///x.sh", True), ("C:/x.sh", True), ("a\\b", True),
    (".", True), ("dir/", True), ("a\0b", True),
])
def test_which_paths_are_refused_before_reading(path: str, refused: bool) -> None:
    assert (file_path_problem(path) is not None) is refused


def test_source_key_is_the_snapshot_key() -> None:
    assert source_key("stacks/main.yaml", "../scripts/x.sh") == "scripts/x.sh"
    assert source_key("main.yaml", "x.sh") == "x.sh"
    assert source_key("main.yaml", "../x.sh") == "../x.sh"


def test_roots_are_the_project_the_template_and_the_allowed(tmp_path: Path) -> None:
    roots = allowed_roots(tmp_path, str(tmp_path / "t" / "main.yaml"), [str(tmp_path / "x")])
    assert roots.dirs == (tmp_path, tmp_path / "t", tmp_path / "x")
    assert roots.lexical(tmp_path / "a" / "b") and not roots.lexical(tmp_path.parent)


def test_the_reader_confines_paths_and_links(tmp_path: Path) -> None:
    proj, outside = tmp_path / "proj", tmp_path / "outside"
    (proj / "stacks").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("s\n")
    (proj / "in.txt").write_text("in\n")
    (proj / "stacks" / "link").symlink_to(outside / "secret")
    template = str(proj / "stacks" / "main.yaml")
    read = file_reader(template, {}, allowed_roots(proj, template))
    assert read("../in.txt") == "in\n"
    assert read(str(proj / "in.txt")) == "in\n"  # absolute, inside: as heatclient
    with pytest.raises(OutsideRoots) as escaped:
        read("../../outside/secret")
    assert not escaped.value.link
    with pytest.raises(OutsideRoots) as linked:
        read("link")
    assert linked.value.link
    allowed = file_reader(template, {}, allowed_roots(proj, template, [str(outside)]))
    assert allowed("../../outside/secret") == "s\n" and allowed("link") == "s\n"
    # a saved plan's snapshot is read first, by the same key
    saved = file_reader(template, {source_key(template, "../in.txt"): "saved\n"},
                        allowed_roots(proj, template))
    assert saved("../in.txt") == "saved\n"


# -- the real CLI on real files ------------------------------------------------------
def run(cwd: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.run(list(args), Io(io.StringIO(""), out, err, dict(os.environ), cwd))
    return code, out.getvalue(), err.getvalue()


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def values(cwd: Path, *args: str) -> dict[str, Any]:
    """The planned values of a local stack: address -> value."""
    code, out, err = run(cwd, "plan", *args, "--target", "local", "--format", "json")
    assert code == 0, err
    return {c["address"]: {d["property"]: d["new"] for d in c["diff"]}.get("value")
            for c in json.loads(out)["changes"]}


def diagnostics(cwd: Path, *args: str) -> list[dict[str, Any]]:
    code, out, _ = run(cwd, "validate", *args, "--target", "local", "--format", "json")
    assert code != 0, out
    return list(json.loads(out)["diagnostics"])


def value(expr: str) -> str:
    return f"  v:\n    type: OS::Heat::Value\n    properties:\n      value: {expr}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = write(tmp_path / "proj", {
        "cloudtmpl.yaml": "providers: {}\n",
        "scripts/x.sh": "echo from-scripts\n",
        "stacks/nested/inner.yaml": HEAD + "resources:\n" + value(
            "{get_file: ../../scripts/x.sh}"),
    })
    write(tmp_path / "outside", {"secret.txt": "top secret\n"})
    return proj


def test_nested_templates_get_file_goes_up_from_its_own_file(project: Path) -> None:
    write(project, {"stacks/main.yaml": HEAD + "resources:\n  n: {type: nested/inner.yaml}\n"})
    assert values(project, "stacks/main.yaml") == {"n.v": "echo from-scripts\n"}


def test_a_saved_plan_applies_from_its_snapshot(project: Path) -> None:
    write(project, {"stacks/main.yaml": HEAD + "resources:\n  n: {type: nested/inner.yaml}\n"})
    code, _, err = run(project, "plan", "stacks/main.yaml", "--target", "local",
                       "--out", "p.json")
    assert code == 0, err
    saved = json.loads((project / "p.json").read_text())["sources"]
    assert saved["stacks/nested/inner.yaml"].startswith(HEAD)
    assert saved["scripts/x.sh"] == "echo from-scripts\n"
    (project / "scripts" / "x.sh").unlink()  # the plan holds what was read
    code, out, err = run(project, "apply", "p.json", "--format", "json")
    assert code == 0, err + out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"] and result["summary"]["done"] == 1


def test_registry_paths_are_relative_to_the_environment_file(project: Path) -> None:
    write(project, {
        "boot-config/env.yaml": "resource_registry:\n  My::Thing: ../nested/thing.yaml\n",
        "nested/thing.yaml": HEAD + "resources:\n" + value("{get_file: ../scripts/x.sh}"),
        "stacks/main.yaml": HEAD + "resources:\n  t: {type: My::Thing}\n",
    })
    assert values(project, "stacks/main.yaml", "-e", "boot-config/env.yaml") == {
        "t.v": "echo from-scripts\n"}
    # the same from inside stacks/: the environment named by a path going up
    assert values(project / "stacks", "main.yaml", "-e", "../boot-config/env.yaml") == {
        "t.v": "echo from-scripts\n"}


def test_a_registry_cycle_is_a_diagnostic(project: Path) -> None:
    write(project, {
        "env/env.yaml": "resource_registry:\n  My::A: ../a/a.yaml\n",
        "a/a.yaml": HEAD + "resources:\n  again: {type: My::A}\n",
        "main.yaml": HEAD + "resources:\n  x: {type: My::A}\n",
    })
    (d,) = diagnostics(project, "main.yaml", "-e", "env/env.yaml")
    assert d["code"] == "template-cycle" and "a/a.yaml -> a/a.yaml" in d["message"]


def test_os_heat_stack_template_from_get_file(project: Path) -> None:
    write(project, {"stacks/main.yaml": HEAD + """\
resources:
  s:
    type: OS::Heat::Stack
    properties:
      template: {get_file: nested/inner.yaml}
  inline:
    type: OS::Heat::Stack
    properties:
      template:
        heat_template_version: 2021-04-16
        resources:
          v: {type: OS::Heat::Value, properties: {value: {get_file: ../scripts/x.sh}}}
"""})
    assert values(project, "stacks/main.yaml") == {"s.v": "echo from-scripts\n",
                                                    "inline.v": "echo from-scripts\n"}


def test_os_heat_stack_template_of_another_function_is_refused(project: Path) -> None:
    write(project, {"main.yaml": HEAD + "parameters:\n  t: {type: string, default: x}\n"
                    "resources:\n  s:\n    type: OS::Heat::Stack\n"
                    "    properties:\n      template: {get_param: t}\n"})
    (d,) = diagnostics(project, "main.yaml")  # and nothing about a template {get_param: t}
    assert (d["code"], d["line"]) == ("invalid-value", 8) and "{get_file: FILE}" in d["message"]


def test_an_escape_from_the_project_is_refused_then_allowed(project: Path) -> None:
    write(project, {"main.yaml": HEAD + "resources:\n" + value(
        "{get_file: ../outside/secret.txt}")})
    (d,) = diagnostics(project, "main.yaml")
    assert (d["code"], d["file"], d["line"], d["column"]) == (
        "file-outside-project", "main.yaml", 6, 15)
    assert "--allow-dir DIR" in d["hint"] and str(project) in d["message"]
    assert values(project, "main.yaml", "--allow-dir", "../outside") == {
        "v": "top secret\n"}


def test_a_symlink_out_of_the_project_is_refused(project: Path) -> None:
    (project / "scripts" / "link.sh").symlink_to(project.parent / "outside" / "secret.txt")
    write(project, {"main.yaml": HEAD + "resources:\n" + value("{get_file: scripts/link.sh}")})
    (d,) = diagnostics(project, "main.yaml")
    assert d["code"] == "file-outside-project" and "symbolic link" in d["message"]
    assert "top secret" not in json.dumps(d)


def test_an_absolute_path_inside_the_project_is_read(project: Path) -> None:
    write(project, {"main.yaml": HEAD + "resources:\n" + value(
        f"{{get_file: '{project / 'scripts' / 'x.sh'}'}}")})
    assert values(project, "main.yaml") == {"v": "echo from-scripts\n"}


def test_a_nested_stacks_region_the_target_lacks_is_a_diagnostic(project: Path) -> None:
    write(project, {"main.yaml": HEAD + """\
resources:
  s:
    type: OS::Heat::Stack
    properties:
      context: {region_name: xx-nowhere-1}
      template: {get_file: vol.yaml}
""", "vol.yaml": HEAD + "resources:\n  vol: {type: OS::Cinder::Volume, properties: {size: 1}}\n"})
    # placement is solved before any cloud is asked: plan refuses it with no sandbox
    code, out, err = run(project, "plan", "main.yaml", "--target", "sandbox-openstack",
                         "--format", "json")
    assert code != 0, out + err
    (d,) = json.loads(out)["diagnostics"]
    assert (d["code"], d["line"]) == ("unknown-region", 6)
    assert "xx-nowhere-1" in d["message"] and "de-fra-1" in d["hint"] \
        and "nl-ams-1" in d["hint"]


def test_template_resource_and_registry_escapes_are_refused(project: Path) -> None:
    write(project.parent / "outside", {"x.yaml": HEAD + "resources:\n" + value("1")})
    write(project, {
        "main.yaml": HEAD + "resources:\n  n: {type: ../outside/x.yaml}\n",
        "env/env.yaml": "resource_registry:\n  My::X: ../../outside/x.yaml\n",
        "reg.yaml": HEAD + "resources:\n  r: {type: My::X}\n",
    })
    (d,) = diagnostics(project, "main.yaml")
    assert (d["code"], d["line"], d["column"]) == ("file-outside-project", 3, 13)
    (d,) = diagnostics(project, "reg.yaml", "-e", "env/env.yaml")
    assert (d["code"], d["file"], d["line"]) == ("file-outside-project", "reg.yaml", 3)
    assert "--allow-dir" in d["hint"]
    assert values(project, "reg.yaml", "-e", "env/env.yaml", "--allow-dir",
                  str(project.parent / "outside")) == {"r.v": 1}


def test_a_saved_plan_holds_the_registry_files_of_an_environment_elsewhere(
        project: Path) -> None:
    write(project, {
        "boot-config/env.yaml": "resource_registry:\n  My::Thing: ../nested/thing.yaml\n",
        "nested/thing.yaml": HEAD + "resources:\n" + value("{get_file: ../scripts/x.sh}"),
        "stacks/main.yaml": HEAD + "resources:\n  t: {type: My::Thing}\n",
    })
    stacks = project / "stacks"
    code, _, err = run(stacks, "plan", "main.yaml", "-e", "../boot-config/env.yaml",
                       "--target", "local", "--out", "p.json")
    assert code == 0, err
    saved = json.loads((stacks / "p.json").read_text())["sources"]
    assert set(saved) == {"main.yaml", "../boot-config/env.yaml", "../nested/thing.yaml",
                          "../scripts/x.sh"}
    (project / "nested" / "thing.yaml").unlink()
    (project / "scripts" / "x.sh").unlink()
    code, out, err = run(stacks, "apply", "p.json", "--format", "json")
    assert code == 0, err + out
    assert json.loads(out.strip().splitlines()[-1])["summary"]["done"] == 1
