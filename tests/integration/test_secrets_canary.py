"""The secrets canary: a distinct secret in every value shape, looked for in every sink.

One stack on the OpenStack sandbox (a server with an sshd, a software deployment
on it) takes a canary in each shape a secret comes in: a hidden string, a hidden
number, a leaf of a hidden ``json``, an item of a hidden ``comma_delimited_list``,
a ``str_split`` piece of a hidden string, a random string, a deployment input and
the default of a hidden parameter. The whole CLI cycle runs on it - plan (text,
JSON, Markdown), plan --out, apply PLANFILE (its process tree sampled), apply,
outputs, show, state show - on SQLite and on PostgreSQL, and two stacks fail with
a canary in their properties (at plan time and in the cloud); a wait condition
handle's signal URL (a credential the cloud makes) is the last canary. Every sink is then
searched for every canary: the commands' output, the plan file, the SQLite file
or a dump of the PostgreSQL database, cloudtmpl's logs, the sandbox logs, the argv
and environment of every process of the apply's tree. Each count must be 0.

Where a canary must be in clear, it is checked there: the cloud holds the server's
metadata, the deployment's script got its inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cloudtmpl_sandbox import control
from cloudtmpl_sandbox.sshd import sshd_path
from tests.integration import adapters
from tests.integration.clitools import REPO, cli_args, cli_env, os_driver, owned, run, write
from tests.integration.pgfixtures import new_database
from tests.integration.test_secret import _barbican as barbican
from tests.integration.test_secret import _token as barbican_token

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sshd_path() is None, reason="needs openssh-server (scripts/test.sh "
                       "installs it)"),
]

TARGET = "sandbox-openstack/de-fra-1"
# one canary per shape; each is given once, and appears nowhere else
GIVEN = {
    "string": "CanaryStr7Qx",
    "number": "73519264",
    "json leaf": "CanaryJsonLeaf5Wz",
    "list element": "CanaryListItem3Kp",
    "str_split piece": "CanarySplitPiece8Rv",
    "deployment input": "CanaryDeployIn2Mn",
    "hidden default": "CanaryDefault6Ty",
    "failure": "CanaryFailure4Hs",
}
SHAPES = (*GIVEN, "random string", "signal URL")

APP = """heat_template_version: 2018-08-31
parameters:
  s_str: {type: string, hidden: true}
  s_num: {type: number, hidden: true}
  s_json: {type: json, hidden: true}
  s_list: {type: comma_delimited_list, hidden: true}
  s_split: {type: string, hidden: true}
  s_dep: {type: string, hidden: true}
  s_default:
    type: string
    hidden: true
    default: CanaryDefault6Ty
  plain: {type: string, default: visible-value}
resources:
  key:
    type: Cloud::Compute::KeyPair
  rand:
    type: OS::Heat::RandomString
    properties: {length: 24, character_classes: [{class: letters}]}
  web:
    type: Cloud::Compute::Server
    properties:
      image: ubuntu-22.04
      flavor: tiny
      key_name: {get_resource: key}
      metadata:
        leaf: {get_param: [s_json, password]}
        item: {get_param: [s_list, 1]}
        piece: {str_split: [':', {get_param: s_split}, 1]}
        joined: {list_join: ['-', [{get_param: s_str}, {get_param: plain}]]}
        default: {get_param: s_default}
        plain: {get_param: plain}
  signal:
    type: OS::Heat::SwiftSignalHandle
  boot:
    type: OS::Heat::Value
    properties:
      value:
        str_replace:
          template: |
            wc_notify --data-binary '{"status": "SUCCESS"}'
          params: {wc_notify: {get_attr: [signal, curl_cli]}}
  web_ip:
    type: Cloud::Network::FloatingIP
    properties: {server: {get_resource: web}, floating_network: public}
  deploy:
    type: Cloud::Software::Deployment
    properties:
      server: {get_resource: web}
      address: {get_attr: [web_ip, floating_ip_address]}
      ssh: {key_pair: {get_resource: key}, timeout: 30}
      inputs:
        dep_in: {get_param: s_dep}
        rand: {get_attr: [rand, value]}
        num: {get_param: s_num}
      outputs: [message]
      config: |
        #!/bin/sh
        set -e
        echo "$dep_in" > "$SERVER_ROOT/dep_in"
        echo "$rand" > "$SERVER_ROOT/rand"
        echo "$num" > "$SERVER_ROOT/num"
        printf 'got %s' "$dep_in" > "$heat_outputs_path.message"
        echo "input is $dep_in, random is $rand, number is $num"
        echo "input is $dep_in" >&2
outputs:
  o_str: {value: {get_param: s_str}}
  o_num: {value: {get_param: s_num}}
  o_leaf: {value: {get_param: [s_json, password]}}
  o_json: {value: {get_param: s_json}}
  o_item: {value: {get_param: [s_list, 1]}}
  o_piece: {value: {str_split: [':', {get_param: s_split}, 1]}}
  o_rand: {value: {get_attr: [rand, value]}}
  o_default: {value: {get_param: s_default}}
  o_message: {value: {get_attr: [deploy, outputs, message]}}
  o_stdout: {value: {get_attr: [deploy, deploy_stdout]}}
  o_plain: {value: {get_param: plain}}
  o_signal: {value: {get_attr: [signal, curl_cli]}}
  o_boot: {value: {get_attr: [boot, value]}}
"""

# the hidden values come in an environment file: never on a command line
SECRETS = {
    "parameters": {
        "s_str": GIVEN["string"],
        "s_num": int(GIVEN["number"]),
        "s_json": {"user": "app", "password": GIVEN["json leaf"]},
        "s_list": f"first-item,{GIVEN['list element']}",
        "s_split": f"app:{GIVEN['str_split piece']}",
        "s_dep": GIVEN["deployment input"],
    }
}
PARAMS = ["-e", "secrets.yaml"]

# fails while planning: the image is looked up in the target's catalog
BAD_PLAN = """heat_template_version: 2018-08-31
parameters:
  s_bad: {type: string, hidden: true}
resources:
  box:
    type: Cloud::Compute::Server
    properties:
      image: {str_replace: {template: img-$x, params: {$x: {get_param: s_bad}}}}
      flavor: tiny
"""

# fails in the cloud: the script prints the secret and exits 1
BAD_APPLY = """heat_template_version: 2018-08-31
parameters:
  s_bad: {type: string, hidden: true}
resources:
  key:
    type: Cloud::Compute::KeyPair
  web:
    type: Cloud::Compute::Server
    properties: {image: ubuntu-22.04, flavor: tiny, key_name: {get_resource: key}}
  web_ip:
    type: Cloud::Network::FloatingIP
    properties: {server: {get_resource: web}, floating_network: public}
  deploy:
    type: Cloud::Software::Deployment
    properties:
      server: {get_resource: web}
      address: {get_attr: [web_ip, floating_ip_address]}
      ssh: {key_pair: {get_resource: key}, timeout: 30}
      inputs: {bad: {get_param: s_bad}}
      config: |
        #!/bin/sh
        echo "failing with $bad"
        echo "no good: $bad" >&2
        exit 3
"""


class Sinks:
    """What each sink held, by name; every canary is counted in every one."""

    def __init__(self) -> None:
        self.texts: dict[str, list[bytes]] = {}

    def add(self, sink: str, data: str | bytes) -> None:
        self.texts.setdefault(sink, []).append(data if isinstance(data, bytes)
                                               else data.encode())

    def counts(self, canaries: dict[str, str]) -> dict[tuple[str, str], int]:
        return {(shape, sink): sum(t.count(canary.encode()) for t in texts)
                for shape, canary in canaries.items() for sink, texts in self.texts.items()}


def admin(info: dict[str, Any], path: str) -> Any:
    status, answer = control.call(info["endpoint"], info["token"], "GET", path)
    assert status == 200, (path, status, answer)
    return answer


def cli(sinks: Sinks, sink: str, cwd: Path, *args: str, ok: bool = True) -> str:
    r = run(cwd, *args)
    sinks.add(sink, r.out + r.err)
    if ok:
        assert r.code == 0, f"{args}: {r.err}{r.out}"
    else:
        assert r.code != 0, f"{args} should fail: {r.out}"
    return r.out


def tree(root: int) -> list[int]:
    """``root`` and its descendants, now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def sampled_apply(sinks: Sinks, cwd: Path, env: dict[str, str], *args: str) -> tuple[int, int]:
    """Run ``cloudtmpl *args`` and read the argv and environ of its whole process tree
    every few milliseconds while it runs: (exit code, processes seen)."""
    proc = subprocess.Popen(cli_args(*args), cwd=cwd, env=cli_env(env), text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    seen: set[int] = set()
    try:
        while proc.poll() is None:
            for pid in tree(proc.pid):
                for name in ("cmdline", "environ"):
                    try:
                        sinks.add("argv/environ", Path(f"/proc/{pid}/{name}").read_bytes())
                    except OSError:
                        continue
                    seen.add(pid)
            time.sleep(0.02)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    sinks.add("apply output", out + err)
    assert proc.returncode == 0, err + out
    return proc.returncode, len(seen)


def pg_dump(url: str) -> bytes:
    """Every row of every table of the database, as text (what a dump holds)."""
    out = []
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            for row in conn.execute(f'SELECT t::text FROM "{table}" t'):
                out.append(str(row[0]))
    assert tables, "the state database has no tables"
    return "\n".join(out).encode()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_no_canary_reaches_any_sink(backend: str, tmp_path: Path,
                                    openstack_reset: dict[str, Any],
                                    request: pytest.FixtureRequest) -> None:
    project = tmp_path
    write(project / "cloudtmpl.yaml", "providers: {}\n")
    write(project / "app.yaml", APP)
    write(project / "bad_plan.yaml", BAD_PLAN)
    write(project / "bad_apply.yaml", BAD_APPLY)
    write(project / "secrets.yaml", json.dumps(SECRETS))
    write(project / "bad.yaml", json.dumps({"parameters": {"s_bad": GIVEN["failure"]}}))
    env: dict[str, str] = {}
    if backend == "postgresql":
        env["CLOUDTMPL_STATE"] = new_database(request.getfixturevalue("pg_server"))
    os.environ.update(env)  # run() passes the environment on
    sinks = Sinks()
    try:
        base = ("app.yaml", "--target", TARGET, *PARAMS)
        cli(sinks, "plan text", project, "plan", *base)
        cli(sinks, "plan JSON", project, "plan", *base, "--format", "json")
        cli(sinks, "plan Markdown", project, "plan", *base, "--format", "markdown")
        cli(sinks, "plan --out", project, "plan", *base, "--out", "app.plan")
        sinks.add("plan file", (project / "app.plan").read_bytes())
        cli(sinks, "show PLANFILE", project, "show", "app.plan")
        cli(sinks, "show PLANFILE", project, "show", "app.plan", "--format", "json")
        cli(sinks, "show PLANFILE", project, "show", "app.plan", "--format", "markdown")

        # apply PLANFILE: the hidden values again, the default taken from the work tree
        _, processes = sampled_apply(sinks, project, env, "apply", "app.plan", *PARAMS)
        assert processes >= 1

        # the cloud and the script got what they need, in clear
        [(_, host)] = admin(openstack_reset, "/_sandbox/servers").items()
        root = Path(host["root"])
        assert (root / "dep_in").read_text() == GIVEN["deployment input"] + "\n"
        assert (root / "num").read_text() == GIVEN["number"] + "\n"
        [web] = owned(os_driver(openstack_reset, "de-fra-1").list_nodes(), "app")
        meta = web.extra["metadata"]
        assert (meta["leaf"], meta["item"], meta["piece"], meta["default"]) == (
            GIVEN["json leaf"], GIVEN["list element"], GIVEN["str_split piece"],
            GIVEN["hidden default"])
        assert meta["joined"] == f"{GIVEN['string']}-visible-value"
        random = (root / "rand").read_text().strip()
        assert len(random) == 24 and random.isalpha()
        [handle] = adapters.openstack(openstack_reset).discover(
            "de-fra-1", frozenset({"Cloud::Orchestration::WaitConditionHandle"}), "app")
        signature = handle.attributes["endpoint"].split("temp_url_sig=")[1].split("&")[0]
        assert len(signature) == 64, handle.attributes
        canaries = {**GIVEN, "random string": random, "signal URL": signature}
        out = run(project, "outputs", "-s", "app", "--format", "json").json()
        sinks.add("outputs", json.dumps(out))
        assert out["o_plain"] == "visible-value"
        assert all(str(out[k]).startswith("(sensitive) hmac:") for k in out
                   if k not in ("o_plain",)), out

        cli(sinks, "outputs", project, "outputs", "-s", "app")
        for name in ("o_leaf", "o_item", "o_rand"):
            cli(sinks, "outputs", project, "outputs", "-s", "app", name, "--raw")
        cli(sinks, "show", project, "show", "-s", "app")
        cli(sinks, "show", project, "show", "-s", "app", "--format", "json")
        cli(sinks, "state show", project, "state", "show", "app")
        cli(sinks, "state show", project, "state", "show", "app", "--format", "json")
        # a second apply: nothing changes (the sealed values are stable)
        r = run(project, "plan", *base, "--detailed-exitcode")
        sinks.add("plan text", r.out + r.err)
        assert r.code == 0, r.out + r.err
        cli(sinks, "apply output", project, "apply", *base, "--yes")

        # failures with a canary in the properties
        bad = ("--target", TARGET, "-e", "bad.yaml")
        cli(sinks, "error messages", project, "plan", "bad_plan.yaml", *bad, ok=False)
        cli(sinks, "error messages", project, "apply", "bad_plan.yaml", *bad, "--yes", ok=False)
        cli(sinks, "error messages", project, "apply", "bad_apply.yaml", *bad, "--yes",
            ok=False)

        if backend == "sqlite":
            for path in (project / ".cloudtmpl").rglob("state.db*"):
                if path.is_file():
                    sinks.add("state (SQLite file)", path.read_bytes())
        else:
            sinks.add("state (PostgreSQL dump)", pg_dump(env["CLOUDTMPL_STATE"]))
        logs = [p for p in (project / ".cloudtmpl").rglob("*") if p.is_file()
                and "keys" not in p.parts and not any(q.startswith("state.db") for q in p.parts)]
        assert any(p.suffix == ".log" for p in logs), logs
        for path in logs:
            sinks.add("cloudtmpl logs", path.read_bytes())
        sandbox_logs = list(Path(os.environ["CLOUDTMPL_SANDBOX_DIR"]).glob("*.log"))
        assert len(sandbox_logs) == 2, sandbox_logs
        for path in sandbox_logs:
            assert oct(path.stat().st_mode)[-3:] == "600", path
            sinks.add("sandbox logs", path.read_bytes())

        counts = sinks.counts(canaries)
        print(f"\n{backend}: {len(canaries)} shapes x {len(sinks.texts)} sinks:")
        for sink in sinks.texts:
            print(f"  {sink:26} " + " ".join(
                f"{shape}={counts[shape, sink]}" for shape in canaries))
        hits = {k: v for k, v in counts.items() if v}
        assert hits == {}, [t for t in sinks.texts.get("error messages", [])
                            if any(c.encode() in t for c in canaries.values())]
        assert len(counts) == len(SHAPES) * len(sinks.texts)
    finally:
        for key in env:
            os.environ.pop(key, None)


MULTI = REPO / "examples" / "multicloud" / "multicloud.yaml"


def test_multicloud_plan_file_holds_no_hidden_default(
        tmp_path: Path, aws_reset: dict[str, Any], openstack_reset: dict[str, Any]) -> None:
    """The example's hidden default (``change-me-please``) never reaches the plan file nor
    the sandbox logs (its user data holds it); apply PLANFILE takes it from the work tree,
    and refuses with a diagnostic when the work tree's default changed."""
    write(tmp_path / "cloudtmpl.yaml", "providers: {}\n")
    template = write(tmp_path / "multicloud.yaml", MULTI.read_text())
    default = "change-me-please"
    r = run(tmp_path, "plan", "multicloud.yaml", "--out", "m.plan")
    assert r.code == 0, r.err + r.out
    saved = (tmp_path / "m.plan").read_text()
    assert default not in saved
    assert "hmac:" in json.loads(saved)["hidden_defaults"]["multicloud.yaml"]["db_password"]

    # the default changed in the work tree: not taken, the user is asked for the value
    template.write_text(MULTI.read_text().replace(default, "another-default"))
    r = run(tmp_path, "apply", "m.plan", "--yes")
    assert r.code == 1, r.out
    assert "error[hidden-default]" in r.err and "-p db_password=VALUE" in r.err
    assert "another-default" not in r.err + r.out
    # ... and given with -p it is the plan's own value again
    r = run(tmp_path, "apply", "m.plan", "--yes", "-p", "db_password=wrong-value")
    assert r.code == 1 and "error[stale-plan]" in r.err and "parameter values" in r.err

    template.write_text(MULTI.read_text())
    r = run(tmp_path, "apply", "m.plan", "--yes")
    assert r.code == 0, r.err + r.out
    assert default not in r.out + r.err
    assert run(tmp_path, "plan", "multicloud.yaml", "--detailed-exitcode").code == 0
    logs = list(Path(os.environ["CLOUDTMPL_SANDBOX_DIR"]).glob("*.log"))
    for path in logs:
        text = path.read_text()
        assert oct(path.stat().st_mode)[-3:] == "600", path
        assert default not in text and "UserData" not in text and "Tag." not in text, path
        requests = [line for line in text.splitlines() if " - - [" in line]
        assert requests and not [line for line in requests if "?" in line or "=" in line]
    aws_log = next(p for p in logs if "aws" in p.name).read_text()
    assert " RunInstances 200" in aws_log  # the action and status are still there


SECRET_CANARIES = {"secret payload": "CanarySecretKind3Vb",
                   "secret payload, changed": "CanarySecretNew8Pd"}
SECRET_APP = """heat_template_version: 2018-08-31
parameters:
  s_payload: {type: string, hidden: true}
resources:
  stored:
    type: OS::Barbican::Secret
    properties: {payload: {get_param: s_payload}, payload_content_type: text/plain}
  made:
    type: Cloud::Secret
    properties: {generate: {type: password, length: 20}}
outputs:
  href: {value: {get_attr: [stored, href]}}
  value: {value: {get_attr: [stored, decrypted_payload]}}
  made: {value: {get_attr: [made, value]}}
"""


def test_no_secret_payload_reaches_any_sink(tmp_path: Path,
                                            openstack_reset: dict[str, Any]) -> None:
    """A ``Cloud::Secret``'s payload, given and generated: plan (text, JSON, Markdown),
    plan file, apply PLANFILE (argv and environment sampled), outputs, show, state,
    a changed payload (a replacement), destroy; then the state, cloudtmpl's logs and
    the sandbox logs. The payloads are in Barbican, and nowhere else."""
    project = tmp_path
    write(project / "cloudtmpl.yaml", "providers: {}\n")
    write(project / "app.yaml", SECRET_APP)
    first, second = SECRET_CANARIES.values()
    write(project / "one.yaml", json.dumps({"parameters": {"s_payload": first}}))
    write(project / "two.yaml", json.dumps({"parameters": {"s_payload": second}}))
    sinks = Sinks()
    base = ("app.yaml", "--target", TARGET)
    for fmt in ("text", "json", "markdown"):
        cli(sinks, f"plan {fmt}", project, "plan", *base, "-e", "one.yaml", "--format", fmt)
    cli(sinks, "plan --out", project, "plan", *base, "-e", "one.yaml", "--out", "app.plan")
    saved = json.loads((project / "app.plan").read_text())
    sinks.add("plan file", json.dumps(saved))
    _, processes = sampled_apply(sinks, project, {}, "apply", "app.plan", "-e", "one.yaml")
    assert processes >= 1
    out = run(project, "outputs", "-s", "app", "--format", "json").json()
    sinks.add("outputs", json.dumps(out))
    assert out["href"].startswith("http://127.0.0.1") and "/v1/secrets/" in out["href"]
    assert out["value"].startswith("(sensitive) hmac:") and \
        out["made"].startswith("(sensitive) hmac:")
    cli(sinks, "outputs", project, "outputs", "-s", "app", "value", "--raw")
    cli(sinks, "show", project, "show", "-s", "app", "--format", "json")
    cli(sinks, "state show", project, "state", "show", "app", "--format", "json")
    # the cloud has them, in clear: the given one, and the one made for "made"
    token, url = barbican_token(openstack_reset)
    listed = barbican(f"{url}/v1/secrets", token=token)[1]["secrets"]
    refs = {s["name"]: s["secret_ref"] for s in listed}
    assert barbican(f"{out['href']}/payload", token=token,
                    headers={"Accept": "text/plain"}) == (200, first)
    status, made = barbican(f"{refs['app.made']}/payload", token=token,
                            headers={"Accept": "text/plain"})
    assert status == 200 and len(made) == 20
    canaries = {**SECRET_CANARIES, "generated password": made}
    cli(sinks, "plan text", project, "plan", *base, "-e", "two.yaml")
    _, _ = sampled_apply(sinks, project, {}, "apply", *base, "-e", "two.yaml", "--yes")
    cli(sinks, "destroy", project, "destroy", *base, "-e", "two.yaml", "--yes")
    for path in (project / ".cloudtmpl").rglob("*"):
        if path.is_file() and "keys" not in path.parts:
            sinks.add("state and logs", path.read_bytes())
    for path in Path(os.environ["CLOUDTMPL_SANDBOX_DIR"]).glob("*.log"):
        sinks.add("sandbox logs", path.read_bytes())
    assert barbican(f"{url}/v1/secrets", token=token)[1]["secrets"] == []
    counts = sinks.counts(canaries)
    assert len(sinks.texts) >= 9, list(sinks.texts)
    assert {k: v for k, v in counts.items() if v} == {}
