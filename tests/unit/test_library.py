"""Library templates (templates/): reachable from any project, documented, deterministic corpus."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cloudtmpl import workflow as wf
from cloudtmpl.cli import app
from cloudtmpl.config import SANDBOX_TARGETS, load_project
from cloudtmpl.inputs import Inputs, read_sources
from cloudtmpl.loader import load_file
from cloudtmpl.resolve import ResolvedStack, ResolveOptions, resolve
from cloudtmpl.shipped import data_dir

REPO = Path(__file__).resolve().parents[2]
LIBRARY = sorted((REPO / "templates").glob("*.yaml"))
CORPUS = REPO / "tests" / "corpus"
CORPUS_RUNS = [
    (p, env)
    for p in sorted(CORPUS.glob("*.yaml"))
    if not p.name.endswith(".env.yaml")
    for env in (
        [None] if not (CORPUS / f"{p.stem}.env.yaml").exists() else [f"{p.stem}.env.yaml"]
    )
]


def project(tmp_path: Path, template: str) -> Path:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    path = tmp_path / "stack.yaml"
    path.write_text(template)
    return path


# -- file_reader: templates/<file> falls back to the shipped library ----------------
def test_library_paths_fall_back_to_the_shipped_templates(tmp_path: Path) -> None:
    path = project(tmp_path, "heat_template_version: 2021-04-16\n")
    read = wf.file_reader(str(path), {})
    shipped = data_dir("templates") / "web_tier.yaml"
    assert read("templates/web_tier.yaml") == shipped.read_text()
    assert wf.library_file("templates/web_tier.yaml") == shipped.resolve()


def test_a_local_templates_directory_wins(tmp_path: Path) -> None:
    path = project(tmp_path, "heat_template_version: 2021-04-16\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "web_tier.yaml").write_text("# my own\n")
    assert wf.file_reader(str(path), {})("templates/web_tier.yaml") == "# my own\n"
    # a sibling the project does not have still comes from the library
    assert wf.file_reader(str(path), {})("templates/replicated_db_pair.yaml").startswith(
        "heat_template_version"
    )


def test_only_templates_paths_fall_back(tmp_path: Path) -> None:
    read = wf.file_reader(str(project(tmp_path, "")), {})
    for relative in ("web_tier.yaml", "lib/templates/web_tier.yaml", "templates/", "templates"):
        with pytest.raises(OSError):
            read(relative)
    with pytest.raises(FileNotFoundError):
        read("templates/no_such_template.yaml")


def test_library_paths_never_escape_the_library(tmp_path: Path) -> None:
    read = wf.file_reader(str(project(tmp_path, "")), {})
    # resolves inside the project (so passes its check), then must not climb out
    # of the shipped directory to the repository root's pyproject.toml
    assert (REPO / "pyproject.toml").exists()
    with pytest.raises(FileNotFoundError):
        read("templates/../pyproject.toml")
    assert wf.library_file("templates/../pyproject.toml") is None
    assert wf.library_file("templates/../../etc/passwd") is None
    assert wf.library_file("templates//etc/passwd") is None
    # a symbolic link in the project leading out is refused before any fallback
    (tmp_path / "templates").symlink_to("/etc")
    with pytest.raises(OSError) as exc:
        read("templates/passwd")
    assert exc.value.errno == errno.EACCES


def test_resolver_reaches_library_templates_as_template_resources(tmp_path: Path) -> None:
    path = project(
        tmp_path,
        """\
heat_template_version: 2021-04-16
resources:
  web:
    type: templates/web_tier.yaml
    properties: {count: 3, flavor: tiny}
  db:
    type: My::DbPair
    properties: {volume_size: 20, client_cidr: 10.1.0.0/16}
outputs:
  web: {value: {get_attr: [web, addresses]}}
  volumes: {value: {get_attr: [db, volume_ids]}}
""",
    )
    env = tmp_path / "env.yaml"
    env.write_text("resource_registry:\n  My::DbPair: templates/replicated_db_pair.yaml\n")
    inputs = Inputs(
        template=str(path), environments=(str(env),), target="sandbox-openstack"
    )
    sources = read_sources(inputs)
    stack = wf.resolve_stack(inputs, load_project(tmp_path), "plan", sources)
    assert list(stack.resources) == [
        "web.security_group", "web.servers.0", "web.servers.1", "web.servers.2",
        "db.security_group", "db.primary", "db.primary_volume", "db.primary_attachment",
        "db.replica", "db.replica_volume", "db.replica_attachment",
    ]  # fmt: skip
    assert stack.resources["db.replica_volume"].properties["size"] == 20
    assert [repr(v) for v in stack.outputs["web"].value] == [
        f"{{get_attr: [web.servers.{i}, first_address]}}" for i in range(3)
    ]
    # what the nested templates were read from travels with a saved plan
    files = wf.files_of(str(path), stack)
    assert set(files) == {
        str(tmp_path / "templates" / "web_tier.yaml"),
        str(tmp_path / "templates" / "replicated_db_pair.yaml"),
    }
    replay = wf.file_reader(str(path), files)
    shipped = (data_dir("templates") / "web_tier.yaml").read_text()
    assert replay("templates/web_tier.yaml") == shipped


# -- the library templates themselves -------------------------------------------------
@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
@pytest.mark.parametrize("target", ["sandbox-openstack", "sandbox-aws/eu-central-1"])
def test_library_templates_resolve_on_both_clouds(path: Path, target: str) -> None:
    stack = resolve(
        load_file(str(path)),
        ResolveOptions(stack="t", mode="plan", target=target, targets=SANDBOX_TARGETS),
    )
    assert stack.resources and stack.outputs
    where = {(r.placement.target, r.placement.region) for r in stack.resources.values()}
    assert where == {
        ("sandbox-openstack", "de-fra-1")
        if target == "sandbox-openstack"
        else ("sandbox-aws", "eu-central-1")
    }


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_readme_documents_every_parameter_and_output(path: Path) -> None:
    readme = (REPO / "templates" / "README.md").read_text()
    section = readme.partition(f"### `{path.name}`")[2].partition("\n### ")[0]
    assert section, f"templates/README.md has no section for {path.name}"
    data = yaml.safe_load(path.read_text())
    for name in [*data.get("parameters", {}), *data.get("outputs", {})]:
        assert f"`{name}`" in section, f"{path.name}: {name} is not documented"


# -- the corpus validates deterministically --------------------------------------------
def resolved_dump(stack: ResolvedStack) -> str:
    """Everything a resolve decided, as stable text (repr shows unevaluated functions)."""
    return json.dumps(
        {
            "resources": [
                [a, r.kind, r.placement.target, r.placement.region, r.why,
                 sorted(r.depends_on), repr(r.properties)]
                for a, r in stack.resources.items()
            ],
            "outputs": {o: repr(out.value) for o, out in stack.outputs.items()},
            "files": sorted(stack.files),
        },
        sort_keys=True,
    )  # fmt: skip


def corpus_dump(target: str) -> str:
    out = []
    for path, env in CORPUS_RUNS:
        envs = (str(CORPUS / env),) if env else ()
        inputs = Inputs(template=str(path), environments=envs, target=target)
        stack = wf.resolve_stack(inputs, load_project(CORPUS), "validate",
                                 read_sources(inputs))  # fmt: skip
        out.append(resolved_dump(stack))
    return "\n".join(out)


def validate_json(path: Path, env: str | None) -> Any:
    args = ["validate", str(path), "--format", "json"]
    if env:
        args += ["-e", str(CORPUS / env)]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout


def test_corpus_validate_is_deterministic() -> None:
    for path, env in CORPUS_RUNS:
        first = validate_json(path, env)
        assert first == validate_json(path, env)
        assert first[0] == 0 and json.loads(first[1]) == {"valid": True, "diagnostics": []}
    # diagnostics come out in the same order too
    broken = CORPUS / "parameter_groups.yaml"
    args = ["validate", str(broken), "--format", "json", "-p", "replicas=3", "-p",
            "service_name=X", "-p", "flavor=huge"]  # fmt: skip
    runs = [CliRunner().invoke(app, args) for _ in range(2)]
    assert runs[0].exit_code == runs[1].exit_code == 1
    assert runs[0].stdout == runs[1].stdout
    assert len(json.loads(runs[0].stdout)["diagnostics"]) >= 3


def test_corpus_resolve_is_deterministic_across_processes() -> None:
    """The same resolved stacks twice in-process, and in two processes with other hash
    seeds (started together, so both see the same source tree)."""
    assert corpus_dump("sandbox-openstack") == corpus_dump("sandbox-openstack")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from tests.unit.test_library import corpus_dump;"
        "sys.stdout.write(corpus_dump('sandbox-openstack'))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(REPO)], stdout=subprocess.PIPE,
                         text=True, env={**os.environ, "PYTHONHASHSEED": seed}, cwd=REPO)
        for seed in ("1", "12345")
    ]  # fmt: skip
    outs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert outs[0] and outs[0] == outs[1]
