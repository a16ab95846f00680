"""OS::Heat::SoftwareComponent (a config per action: a deployment runs the one for its
current action) and OS::Heat::StructuredConfig with lists inside its config (the input
substitution walks them, as Heat's StructuredDeployment does), over real sshd servers on
sandbox-openstack, through the CLI; and what Heat refuses of a component, as
diagnostics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloudtmpl_sandbox import control
from cloudtmpl_sandbox.sshd import sshd_path
from tests.integration.clitools import invoke, write

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sshd_path() is None, reason="needs openssh-server (scripts/test.sh "
                       "installs it)"),
]

TARGET = "sandbox-openstack/de-fra-1"

TEMPLATE = """heat_template_version: 2018-08-31
parameters:
  tag: {type: string, default: one}
resources:
  key:
    type: OS::Nova::KeyPair
  web:
    type: OS::Nova::Server
    properties: {image: ubuntu-22.04, flavor: tiny, key_name: {get_resource: key}}
  web_ip:
    type: OS::Neutron::FloatingIP
    properties: {floating_network: public, port_id: {get_attr: [web, addresses, private, 0, port]}}
  component:
    type: OS::Heat::SoftwareComponent
    properties:
      inputs: [{name: tag}]
      outputs: [{name: result}]
      configs:
        - actions: [CREATE]
          tool: script
          config: |
            #!/bin/sh
            echo "create $tag" >> "$SERVER_ROOT/ran"
            printf 'created %s' "$tag" > "$heat_outputs_path.result"
        - actions: [UPDATE]
          tool: script
          config: |
            #!/bin/sh
            echo "update $tag" >> "$SERVER_ROOT/ran"
            printf 'updated %s' "$tag" > "$heat_outputs_path.result"
  deploy:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: component}
      server: {get_resource: web}
      input_values: {tag: {get_param: tag}}
      ssh: {key_pair: {get_resource: key}, timeout: 30}
  structured:
    type: OS::Heat::StructuredConfig
    properties:
      inputs: [{name: tag}]
      config:
        run: cp "$heat_config_path" "$SERVER_ROOT/config.json"
        tags: [{get_input: tag}, fixed, [{get_input: tag}, 2]]
        nested: {list: [{name: {get_input: tag}}]}
  sdeploy:
    type: OS::Heat::StructuredDeployment
    properties:
      config: {get_resource: structured}
      server: {get_resource: web}
      input_values: {tag: {get_param: tag}}
      ssh: {key_pair: {get_resource: key}, timeout: 30}
outputs:
  result: {value: {get_attr: [deploy, result]}}
"""


def _root(info: dict[str, Any]) -> Path:
    status, answer = control.call(info["endpoint"], info["token"], "GET", "/_sandbox/servers")
    assert status == 200, answer
    (host,) = dict(answer).values()
    return Path(host["root"])


def test_a_component_runs_the_config_of_its_action(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "c.yaml", TEMPLATE)
    r = invoke(tmp_path, "apply", "c.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    root = _root(openstack_reset)
    assert (root / "ran").read_text() == "create one\n"
    out = invoke(tmp_path, "outputs", "-s", "c", "--format", "json").json()
    assert out["result"] == "created one"
    # lists inside a structured config: every get_input replaced
    assert json.loads((root / "config.json").read_text()) == {
        "tags": ["one", "fixed", ["one", 2]], "nested": {"list": [{"name": "one"}]}}

    r = invoke(tmp_path, "apply", "c.yaml", "--target", TARGET, "--yes", "-p", "tag=two")
    assert r.code == 0, r.err + r.out
    assert (root / "ran").read_text() == "create one\nupdate two\n"  # UPDATE's config
    out = invoke(tmp_path, "outputs", "-s", "c", "--format", "json").json()
    assert out["result"] == "updated two"
    assert json.loads((root / "config.json").read_text())["tags"] == ["two", "fixed", ["two", 2]]
    r = invoke(tmp_path, "destroy", "c.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out


@pytest.mark.parametrize(("configs", "needle", "message"), [
    ("[{actions: [CREATE], config: a}, {actions: [CREATE, UPDATE], config: b}]",
     "configs:", "configs[1]: action CREATE already has a config (configs[0])"),
    ("[{actions: [CREAT], config: a}]", "configs:", "configs[0]: unknown action 'CREAT'"),
    ("[{actions: [CREATE]}]", "configs:", "configs[0] needs a 'config'"),
    ("[{config: a, tool: puppet}]", "configs:", "configs[0]: tool 'puppet' is not run here"),
])
def test_what_heat_refuses_of_a_component(tmp_path: Path, configs: str, needle: str,
                                          message: str) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    text = ("heat_template_version: 2018-08-31\nresources:\n  c:\n"
            "    type: OS::Heat::SoftwareComponent\n    properties:\n      configs: "
            + configs + "\n")
    write(tmp_path / "c.yaml", text)
    r = invoke(tmp_path, "validate", "c.yaml", "--format", "json")
    assert r.code == 1, r.err + r.out
    (d,) = r.json()["diagnostics"]
    (line,) = [n for n, t in enumerate(text.splitlines(), 1) if needle in t]
    assert (d["code"], d["line"], d["message"]) == ("invalid-component", line,
                                                    f"resource 'c': {message}"), d
    assert d["hint"]
