"""What CI relies on, through the real CLI against the sandbox clouds.

* every JSON output validates against its schema in ``schemas/`` (and a broken
  document does not: no schema accepts everything);
* ``plan --format markdown`` matches a stored snapshot;
* bad plan files are diagnostics and reach no cloud;
* no colour, spinner or prompt without a person at a terminal;
* the commands in ``examples/ci/`` run as written: the install line into a throwaway
  virtualenv, then the ``cloudtmpl`` lines with that virtualenv's cloudtmpl.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cloudtmpl_sandbox import control
from tests.integration.clitools import (
    QUICKSTART,
    REPO,
    Result,
    cli_env,
    invoke,
    stack_instances,
    write,
)
from tests.integration.terminal import no_ci_env, run_pty

REGION = "eu-central-1"
SCHEMAS = REPO / "schemas"
SNAPSHOTS = REPO / "tests" / "unit" / "snapshots"
CI_DIR = REPO / "examples" / "ci"
SCHEMA_NAMES = (
    "plan",
    "validate",
    "outputs",
    "apply-events",
    "show-stack",
    "sandbox-status",
    "providers",
)


# -- helpers ---------------------------------------------------------------------------
def validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def valid(name: str, document: Any) -> Any:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(name).iter_errors(document)
              ]
    assert not errors, f"{name}: {errors[:5]}"
    return document


def rejects(name: str, document: Any, breakage: Callable[[Any], Any]) -> None:
    """``breakage`` applied to a copy of a valid ``document`` makes it invalid."""
    broken = copy.deepcopy(document)
    result = breakage(broken)
    broken = broken if result is None else result
    assert not validator(name).is_valid(broken), f"{name} accepted a broken document: {broken}"


def requests(sandbox: dict[str, Any]) -> int:
    """The sandbox's request counter (every cloud API request it served)."""
    status, counts = control.call(sandbox["endpoint"], sandbox["token"], "GET",
                                  "/_sandbox/requests")
    assert status == 200, counts
    return int(counts["total"])


def events(r: Result) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in r.out.splitlines() if line.strip()]
    for line in lines:
        valid("apply-events", line)
    assert lines and lines[-1]["event"] == "result", r.out
    assert all(e["event"] != "result" for e in lines[:-1])
    return lines


@pytest.fixture
def project(tmp_path: Path, aws_reset: dict[str, Any]) -> Path:
    """An empty project directory (own state) with the quickstart template in it."""
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "stack.yaml", QUICKSTART.read_text())
    return tmp_path


# -- 1. schemas -------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schemas_are_draft_2020_12_versioned_and_not_permissive(name: str) -> None:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:cloudtmpl:schema:{name}:{schema['version']}"
    assert isinstance(schema["version"], int) and schema["version"] >= 1
    assert schema.get("description")
    for nonsense in ([], "text", 42, None, [{"event": "done"}]):
        assert not validator(name).is_valid(nonsense), (name, nonsense)


def test_every_json_output_of_a_lifecycle_matches_its_schema(
    project: Path, aws_reset: dict[str, Any]
) -> None:
    # validate: a valid template, then one with errors
    ok = valid("validate", invoke(project, "validate", "stack.yaml", "--format", "json").json())
    assert ok == {"valid": True, "diagnostics": []}
    write(project / "bad.yaml", "heat_template_version: 2021-04-16\nresources:\n  a: {type: X}\n")
    r = invoke(project, "validate", "bad.yaml", "--format", "json")
    assert r.code == 1
    bad = valid("validate", r.json())
    assert bad["valid"] is False and bad["diagnostics"][0]["code"]
    rejects("validate", bad, lambda d: d.update(valid=True))  # errors, yet "valid"
    rejects("validate", bad, lambda d: d["diagnostics"][0].update(code="Not Kebab"))
    rejects("validate", bad, lambda d: d["diagnostics"][0].pop("hint"))
    rejects("validate", bad, lambda d: d["diagnostics"][0].update(line=-1))

    # plan (create everything), saved and printed
    r = invoke(project, "plan", "stack.yaml", "--out", "plan.json", "--format", "json")
    assert r.code == 0, r.err
    printed = valid("plan", r.json())
    assert "sources" not in printed
    saved = valid("plan", json.loads((project / "plan.json").read_text()))
    assert saved["sources"]["stack.yaml"] and saved["source_hashes"]["stack.yaml"]
    assert {c["action"] for c in printed["changes"]} == {"create"}
    shown = valid("plan", invoke(project, "show", "plan.json", "--format", "json").json())
    assert shown["changes"] == printed["changes"]
    rejects("plan", printed, lambda d: d["changes"][0].update(action="recreate"))
    rejects("plan", printed, lambda d: d["changes"][0].pop("placement"))
    rejects("plan", printed, lambda d: d["changes"][0]["placement"].update(country="Germany"))
    rejects("plan", printed, lambda d: d["changes"][0]["diff"].append({"property": "x"}))
    rejects("plan", printed, lambda d: d["changes"][0].update(physical_id="i-123"))  # a create
    rejects("plan", printed, lambda d: d["summary"].update(create=-1))
    rejects("plan", printed, lambda d: d["stats"].pop("api_requests"))
    rejects("plan", printed, lambda d: d.update(format_version=2))
    rejects("plan", printed, lambda d: d.update(stack="Bad Name"))
    rejects("plan", printed, lambda d: d.pop("residency"))

    # apply the saved plan: JSON lines, then the result
    r = invoke(project, "apply", "plan.json", "--format", "json")
    assert r.code == 0, r.err + r.out
    lines = events(r)
    steps = lines[:-1]
    assert {e["address"] for e in steps if e["event"] == "done"} == {
        c["address"] for c in printed["changes"]
    }
    assert all(e["action"] == "create" for e in steps)
    result = lines[-1]
    assert result["ok"] is True and result["summary"]["done"] == len(printed["changes"])
    rejects("apply-events", steps[0], lambda d: d.update(event="finished"))
    rejects("apply-events", steps[0], lambda d: d.update(action="replace"))
    rejects("apply-events", steps[0], lambda d: d.pop("seconds"))
    rejects("apply-events", result, lambda d: d["summary"].update(failed=1))  # ok with failures
    rejects("apply-events", result, lambda d: d.pop("outputs"))
    rejects("apply-events", {**steps[0], "event": "failed", "message": ""}, lambda d: None)

    # the saved plan is stale now: the refusal is a diagnostics document
    r = invoke(project, "apply", "plan.json", "--format", "json")
    assert r.code == 1
    stale = valid("validate", r.json())
    assert [d["code"] for d in stale["diagnostics"]] == ["stale-plan"]

    # outputs and the recorded stack
    outputs = valid("outputs", invoke(project, "outputs", "-s", "stack", "--format", "json").json())
    assert outputs == result["outputs"] and outputs["web1_id"].startswith("i-")
    rejects("outputs", outputs, lambda d: [d])
    rejects("outputs", outputs, lambda d: d.update({"": 1}))
    show = valid("show-stack", invoke(project, "show", "-s", "stack", "--format", "json").json())
    assert set(show["resources"]) == {c["address"] for c in printed["changes"]}
    assert show["outputs"] == outputs
    rejects("show-stack", show, lambda d: d.pop("serial"))
    rejects("show-stack", show, lambda d: d["resources"]["web1"].pop("physical_id"))
    rejects("show-stack", show, lambda d: d.update(resources=[]))

    # a plan of live resources: no-ops and an update carry the prior resource
    r = invoke(project, "plan", "stack.yaml", "-p", "flavor=medium", "--format", "json")
    replan = valid("plan", r.json())
    actions = {c["address"]: c["action"] for c in replan["changes"]}
    assert actions["web1"] == "update" and actions["key"] == "no-op"
    web1 = next(c for c in replan["changes"] if c["address"] == "web1")
    assert web1["physical_id"] == outputs["web1_id"] == web1["prior"]["physical_id"]
    rejects("plan", replan, lambda d: d["changes"][0].update(prior=None))  # a no-op has one
    rejects("plan", replan, lambda d: d["changes"][0]["prior"].pop("physical_id"))

    # providers and the sandbox
    providers = valid("providers", invoke(project, "providers", "--format", "json").json())
    assert providers["sandbox-aws"]["regions"][REGION]["country"] == "DE"
    rejects("providers", providers, lambda d: d["sandbox-aws"].pop("regions"))
    rejects("providers", providers, lambda d: d["sandbox-aws"].update(sandbox="yes"))
    rejects(
        "providers", providers, lambda d: d["sandbox-aws"]["regions"][REGION].update(country="de")
    )
    status = valid("sandbox-status",
                   invoke(project, "sandbox", "status", "--format", "json").json())
    assert status["aws"]["running"] and status["aws"]["endpoint"] == aws_reset["endpoint"]
    rejects("sandbox-status", status, lambda d: d["aws"].update(endpoint=None))  # running
    rejects("sandbox-status", status, lambda d: d.pop("openstack"))
    rejects("sandbox-status", status, lambda d: d["openstack"].pop("auth_url"))
    stopped = {
        "running": False,
        "endpoint": None,
        "pid": None,
        "regions": status["aws"]["regions"],
        "access_key": "sandbox",
        "secret_key": "sandbox",
        "token": None,
    }
    valid("sandbox-status", {**status, "aws": stopped})  # what a stopped cloud reports

    r = invoke(project, "destroy", "stack.yaml", "--yes")
    assert r.code == 0, r.err + r.out


def test_openstack_outputs_match_the_schemas(
    tmp_path: Path, openstack_reset: dict[str, Any]
) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "net.yaml", (REPO / "examples/heat/servers_in_new_net.yaml").read_text())
    target = ("--target", "sandbox-openstack/de-fra-1")
    r = invoke(tmp_path, "plan", "net.yaml", *target, "--out", "plan.json", "--format", "json")
    assert r.code == 0, r.err
    plan = valid("plan", r.json())
    assert {c["placement"]["country"] for c in plan["changes"]} == {"DE"}
    valid("plan", json.loads((tmp_path / "plan.json").read_text()))
    r = invoke(tmp_path, "apply", "plan.json", "--format", "json")
    assert r.code == 0, r.err + r.out
    assert events(r)[-1]["ok"] is True
    valid("outputs", invoke(tmp_path, "outputs", "-s", "net", "--format", "json").json())
    show = valid("show-stack", invoke(tmp_path, "show", "-s", "net", "--format", "json").json())
    assert {r["target"] for r in show["resources"].values()} == {"sandbox-openstack"}
    valid("plan", invoke(tmp_path, "plan", "net.yaml", *target, "--format", "json").json())
    assert invoke(tmp_path, "destroy", "net.yaml", *target, "--yes").code == 0


# -- 2. Markdown snapshot -----------------------------------------------------------------
SNAP_V1 = f"""\
heat_template_version: 2021-04-16
description: The fixed template of the Markdown snapshot test.
placement: {{provider: sandbox-aws, region: {REGION}}}
resources:
  sg:
    type: Cloud::Network::SecurityGroup
    properties:
      description: https
      rules: [{{protocol: tcp, port_range_min: 443, port_range_max: 443}}]
  app:
    type: Cloud::Compute::Server
    properties:
      image: ubuntu-22.04
      flavor: tiny
      security_groups: [{{get_resource: sg}}]
      metadata: {{tier: app}}
  worker:
    type: Cloud::Compute::Server
    properties: {{image: ubuntu-22.04, flavor: tiny}}
  scratch:
    type: Cloud::Block::Volume
    properties: {{size: 1}}
"""
# sg: unchanged; app: updated in place; worker: replaced (new image); scratch: deleted;
# cache: created
SNAP_V2 = f"""\
heat_template_version: 2021-04-16
description: The fixed template of the Markdown snapshot test.
placement: {{provider: sandbox-aws, region: {REGION}}}
resources:
  sg:
    type: Cloud::Network::SecurityGroup
    properties:
      description: https
      rules: [{{protocol: tcp, port_range_min: 443, port_range_max: 443}}]
  app:
    type: Cloud::Compute::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      security_groups: [{{get_resource: sg}}]
      metadata: {{tier: app}}
  worker:
    type: Cloud::Compute::Server
    properties: {{image: ubuntu-20.04, flavor: tiny}}
  cache:
    type: Cloud::Compute::Server
    properties: {{image: ubuntu-22.04, flavor: tiny, metadata: {{tier: cache}}}}
"""


def normalise_markdown(text: str, physical_ids: dict[str, str]) -> str:
    """Replace exactly the volatile bits: physical ids the sandbox chose, the seconds, and
    the request count (a measurement that changes whenever discovery lists more kinds)."""
    for address, pid in sorted(physical_ids.items(), key=lambda item: -len(item[1])):
        text = text.replace(pid, f"<id of {address}>")
    text, n = re.subn(r"<sub>\d+ (cloud API requests), \d+\.\ds</sub>",
                      r"<sub><n> \1, <seconds>s</sub>", text)
    assert n == 1, text
    return text


def test_plan_markdown_matches_the_snapshot(tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "snap.yaml", SNAP_V1)
    r = invoke(tmp_path, "apply", "snap.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    write(tmp_path / "snap.yaml", SNAP_V2)
    r = invoke(tmp_path, "plan", "snap.yaml", "--format", "markdown")
    assert r.code == 0, r.err
    recorded = invoke(tmp_path, "show", "-s", "snap", "--format", "json").json()["resources"]
    ids = {address: res["physical_id"] for address, res in recorded.items()}
    got = normalise_markdown(r.out, ids)
    snapshot = SNAPSHOTS / "plan_markdown.md"
    if os.environ.get("CLOUDTMPL_UPDATE_SNAPSHOTS") == "1":
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(got)
    assert got == snapshot.read_text(), (
        "plan --format markdown changed; if intended, rerun with CLOUDTMPL_UPDATE_SNAPSHOTS=1 "
        "and review the diff of " + str(snapshot)
    )
    assert invoke(tmp_path, "destroy", "snap.yaml", "--yes").code == 0


# -- 3. bad plan files reach no cloud -------------------------------------------------------
def test_bad_plan_files_are_diagnostics_and_reach_no_cloud(
    project: Path, aws_reset: dict[str, Any]
) -> None:
    r = invoke(project, "plan", "stack.yaml", "--out", "plan.json")
    assert r.code == 0, r.err
    good = (project / "plan.json").read_text()
    data = json.loads(good)
    newer = {**data, "format_version": data["format_version"] + 1}
    edited = copy.deepcopy(data)
    edited["sources"]["stack.yaml"] = edited["sources"]["stack.yaml"].replace(
        "default: small", "default: large"
    )
    broken = copy.deepcopy(data)
    broken["changes"][2]["action"] = "explode"
    cases = {
        "truncated.json": (good[: len(good) // 3], "plan-file", "truncated"),
        "corrupted.json": (
            good.replace('"changes": [', '"changes": [}', 1), "plan-file", "corrupted"
        ),
        "not-json.json": ("# a plan\nstack: stack\n", "plan-file", "not JSON"),
        "broken.json": (json.dumps(broken), "plan-file", "changes[2].action"),
        "newer.json": (json.dumps(newer), "plan-format", "newer"),
        "edited.json": (json.dumps(edited), "stale-plan", "snapshot of stack.yaml"),
    }
    before = requests(aws_reset)
    for name, (text, code, words) in cases.items():
        write(project / name, text)
        for extra in ((), ("--yes",), ("--format", "json")):
            r = invoke(project, "apply", name, *extra)
            assert r.code == 1, (name, r.out, r.err)
            assert "Traceback" not in r.err, r.err
            if extra == ("--format", "json"):
                report = valid("validate", r.json())
                (diag,) = report["diagnostics"]
                assert (diag["code"], diag["file"]) == (code, name), diag
                assert words in diag["message"] and diag["hint"], diag
            else:
                assert f"error[{code}]" in r.err and words in r.err, (name, r.err)
                assert "hint:" in r.err
        if code in ("plan-file", "plan-format"):
            r = invoke(project, "show", name)
            assert r.code == 1 and f"error[{code}]" in r.err, (name, r.err)

    r = invoke(project, "apply", "plan.json", "-s", "other")
    assert r.code == 1 and "error[plan-stack]" in r.err and "'other'" in r.err, r.err
    r = invoke(project, "apply", "plan.json", "--stack", "other", "--format", "json")
    assert [d["code"] for d in r.json()["diagnostics"]] == ["plan-stack"]

    assert requests(aws_reset) == before, "a refused plan file reached the cloud"
    assert stack_instances(aws_reset, REGION, "stack") == []
    assert not list(project.glob(".*.tmp"))

    # the good plan file is still good: show renders it, apply applies it
    r = invoke(project, "show", "plan.json")
    assert r.code == 0 and "Stack stack: 7 to create" in r.out, r.err
    r = invoke(project, "show", "plan.json", "--format", "markdown")
    assert r.code == 0 and "<details><summary><code>+ web1</code> create" in r.out
    r = invoke(project, "apply", "plan.json", "-s", "stack")
    assert r.code == 0, r.err + r.out
    assert len(stack_instances(aws_reset, REGION, "stack")) == 2
    assert invoke(project, "destroy", "stack.yaml", "--yes").code == 0


# -- 4. no colour, spinner or prompt without a person at a terminal ----------------------------
SGR = re.compile(rb"\x1b\[([0-9;]*)m")
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏━"


def colours(output: bytes) -> list[bytes]:
    """SGR sequences that set a colour (30-38, 40-48, 90-97, 100-107; not bold or dim)."""
    found = []
    for params in SGR.findall(output):
        codes = [int(p) for p in params.split(b";") if p]
        if any(30 <= c <= 38 or 40 <= c <= 48 or 90 <= c <= 97 or 100 <= c <= 107 for c in codes):
            found.append(params)
    return found




def run_env(cwd: Path, env: dict[str, str], *args: str) -> Result:
    return invoke(cwd, *args, environ=env)




def test_ci_or_no_terminal_means_no_colour_no_spinner_no_prompt(
    project: Path, aws_reset: dict[str, Any]
) -> None:
    for label, env in (("CI=true", cli_env()), ("no terminal", no_ci_env())):
        r = run_env(project, env, "apply", "stack.yaml")
        assert r.code == 1 and "error[confirmation-required]" in r.err, (label, r.err)
        assert "\x1b" not in r.out + r.err, label
        r = run_env(project, env, "plan", "stack.yaml", "-p", "flavor=nope")
        assert r.code == 1 and "\x1b" not in r.err, label  # diagnostics: no colour either
    assert stack_instances(aws_reset, REGION, "stack") == []

    # CI=true even on a terminal: no colour, no prompt, no live progress
    code, out = run_pty(project, cli_env(), "apply", "stack.yaml")
    assert code == 1 and b"confirmation-required" in out and b"\x1b" not in out, out
    code, out = run_pty(project, cli_env(), "apply", "stack.yaml", "--yes")
    assert code == 0, out
    assert b"\x1b" not in out and b"\r\n" in out, out[:500]
    assert not any(ch in out.decode() for ch in SPINNER), out
    assert b"done create web1" in out

    r = run_env(project, no_ci_env(), "destroy", "stack.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert "\x1b" not in r.out + r.err and "\r" not in r.out


def test_no_color_on_a_terminal_and_the_prompt(project: Path, aws_reset: dict[str, Any]) -> None:
    # a terminal without CI: colour (the control), and a prompt; "n" applies nothing
    code, out = run_pty(project, no_ci_env(), "apply", "stack.yaml", answer="n\n")
    assert b"Do you want to apply these changes? [y/N]" in out, out
    assert code == 1 and b"aborted" in out, out
    assert colours(out), "no colour on a terminal: the NO_COLOR check below would prove nothing"
    assert stack_instances(aws_reset, REGION, "stack") == []

    # NO_COLOR=1 on a terminal: no colour in the plan, the prompt or the live progress
    code, out = run_pty(project, no_ci_env(NO_COLOR="1"), "plan", "stack.yaml")
    assert code == 0 and b"7 to create" in out and colours(out) == [], out
    code, out = run_pty(project, no_ci_env(NO_COLOR="1"), "apply", "stack.yaml", answer="y\n")
    assert code == 0, out
    assert colours(out) == [], colours(out)
    assert len(stack_instances(aws_reset, REGION, "stack")) == 2
    assert invoke(project, "destroy", "stack.yaml", "--yes").code == 0


# -- 5. the CI examples, run as written -------------------------------------------------------
COMMAND = re.compile(r"(?:^|[;&|]\s*|\bthen\s+)(cloudtmpl\s[^\n;|&>]*)", re.MULTILINE)
INSTALL = re.compile(r"(?:^|[;&|]\s*)(pip\s+install\s[^\n;|&>]*)", re.MULTILINE)
# The only substitutions: the examples' source, template and target become this
# checkout and the sandbox's.
EXAMPLE_VALUES = {
    "CLOUDTMPL_SOURCE": "git+https://git.example.com/cloudtmpl.git@v0.1.0",
    "TEMPLATE": "infra/stack.yaml",
    "TARGET": "aws-prod/eu-central-1",
}
SANDBOX_VALUES = {
    "CLOUDTMPL_SOURCE": str(REPO),
    "TEMPLATE": "infra/stack.yaml",
    "TARGET": f"sandbox-aws/{REGION}",
}


@pytest.fixture(scope="module")
def ci_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty throwaway virtualenv: the examples' install lines install into it."""
    venv = tmp_path_factory.mktemp("ci-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    assert not (venv / "bin" / "cloudtmpl").exists()
    return venv


def ci_scripts(path: Path) -> tuple[dict[str, str], list[str]]:
    """The file's variables and its shell scripts (``run:`` steps, ``script:`` lines)."""
    doc = yaml.safe_load(path.read_text())
    if "jobs" in doc:  # GitHub Actions
        variables = doc["env"]
        scripts = [
            step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step
        ]
    else:  # GitLab CI
        variables = doc["variables"]
        scripts = [
            line
            for name, job in doc.items()
            if isinstance(job, dict) and ("script" in job or "before_script" in job)
            for key in ("before_script", "script")
            for line in job.get(key, [])
        ]
    return {k: variables[k] for k in EXAMPLE_VALUES}, scripts


def ci_commands(path: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """The file's source/template/target variables, its ``pip install`` lines and its
    ``cloudtmpl`` commands, in order."""
    variables, scripts = ci_scripts(path)
    installs = [m.group(1).strip() for script in scripts for m in INSTALL.finditer(script)]
    commands = [m.group(1).strip() for script in scripts for m in COMMAND.finditer(script)]
    return variables, installs, commands


@pytest.mark.parametrize("example", [".gitlab-ci.yml", "github-actions.yml"])
def test_ci_example_commands_run_verbatim(
    tmp_path: Path, aws_reset: dict[str, Any], ci_venv: Path, example: str
) -> None:
    variables, installs, commands = ci_commands(CI_DIR / example)
    assert variables == EXAMPLE_VALUES
    # installed from the repository, with what the product depends on (psycopg included)
    assert installs and {shlex.split(line)[-1] for line in installs} == {"$CLOUDTMPL_SOURCE"}
    assert not any("psycopg" in line for line in installs), installs
    verbs = [shlex.split(c)[1] for c in commands]
    assert verbs[:2] == ["validate", "plan"] and "apply" in verbs, commands
    plan_cmd = next(c for c in commands if c.startswith("cloudtmpl plan"))
    assert "--detailed-exitcode" in plan_cmd and "--out plan.json" in plan_cmd
    assert any("--format markdown" in c for c in commands)
    assert [c for c in commands if c.startswith("cloudtmpl apply")] == [
        "cloudtmpl apply plan.json --format json"
    ]

    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    (tmp_path / "infra").mkdir()
    stack = QUICKSTART.read_text().replace(
        "placement:\n  provider: sandbox-aws\n  region: eu-central-1\n", ""
    )
    assert "placement" not in stack  # the target comes from --target, as in the examples
    write(tmp_path / "infra" / "stack.yaml", stack)
    # the throwaway venv first on PATH (pip, then cloudtmpl); no PYTHONPATH, so what
    # runs is what the install line installed, not this checkout
    env = cli_env(
        {
            **SANDBOX_VALUES,
            "PATH": f"{ci_venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "VIRTUAL_ENV": str(ci_venv),
            "CLOUDTMPL_STATE": f"sqlite:///{tmp_path}/team-state.db",
        }
    )
    env.pop("PYTHONPATH")

    def sh(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=300, stdin=subprocess.DEVNULL,
        )

    for line in installs:
        proc = sh(line)
        assert proc.returncode == 0, (line, proc.stdout[-2000:], proc.stderr[-2000:])
    proc = sh('python -c "import cloudtmpl, psycopg; print(cloudtmpl.__file__)"')
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(ci_venv), proc.stdout  # installed, a copy
    assert sh("command -v cloudtmpl").stdout.strip() == str(ci_venv / "bin" / "cloudtmpl")

    results = [(command, sh(command)) for command in commands]
    for command, proc in results:
        assert "Traceback" not in proc.stderr, (command, proc.stderr)
        expected = 2 if command == plan_cmd else 0  # plan: changes; everything else: success
        assert proc.returncode == expected, (command, proc.returncode, proc.stdout, proc.stderr)
    outs = {command: proc.stdout for command, proc in results}
    markdown = next(out for command, out in outs.items() if "--format markdown" in command)
    assert "### cloudtmpl plan: `stack`" in markdown and "| create |" in markdown
    assert (tmp_path / "team-state.db").exists()  # CLOUDTMPL_STATE was used

    # the applied plan is the planned one: every planned create happened, nothing more
    plan = json.loads((tmp_path / "plan.json").read_text())
    lines = [json.loads(x) for x in outs["cloudtmpl apply plan.json --format json"].splitlines()]
    done = {e["address"] for e in lines if e.get("event") == "done"}
    assert done == {c["address"] for c in plan["changes"] if c["action"] != "no-op"}
    assert lines[-1]["ok"] is True
    recorded = invoke(tmp_path, "show", "-s", "stack", "--format", "json",
                      env={"CLOUDTMPL_STATE": env["CLOUDTMPL_STATE"]}).json()
    assert set(recorded["resources"]) == {c["address"] for c in plan["changes"]}
    assert {r["region"] for r in recorded["resources"].values()} == {REGION}
    r = sh(plan_cmd)
    assert r.returncode == 0, r.stdout + r.stderr  # converged: no changes left
    assert invoke(tmp_path, "destroy", "infra/stack.yaml", "--target", f"sandbox-aws/{REGION}",
                  "--yes", env={"CLOUDTMPL_STATE": env["CLOUDTMPL_STATE"]}).code == 0
