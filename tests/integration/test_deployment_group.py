"""OS::Heat::SoftwareDeploymentGroup passes its members' outputs through as Heat does:
``deploy_stdouts``/``deploy_stderrs``/``deploy_status_codes`` and any member attribute
(``result``, ``deploy_stdout``, a declared output's name) as server name -> value; over
real sshd servers on sandbox-openstack, through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudtmpl_sandbox.sshd import sshd_path
from tests.integration.clitools import invoke, write

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sshd_path() is None, reason="needs openssh-server (scripts/test.sh "
                       "installs it)"),
]

TARGET = "sandbox-openstack/de-fra-1"


def _server(name: str) -> str:
    return f"""
  {name}:
    type: OS::Nova::Server
    properties: {{image: ubuntu-22.04, flavor: tiny, key_name: {{get_resource: key}}}}
  {name}_ip:
    type: OS::Neutron::FloatingIP
    properties:
      floating_network: public
      port_id: {{get_attr: [{name}, addresses, private, 0, port]}}
"""


TEMPLATE = """heat_template_version: 2018-08-31
resources:
  key:
    type: OS::Nova::KeyPair
""" + _server("a") + _server("b") + """
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      outputs: [{name: result}, {name: role}]
      config: |
        #!/bin/sh
        echo "out of $deploy_server_id"
        echo "err" >&2
        printf 'ok-%s' "$deploy_server_id" > "$heat_outputs_path.result"
        printf 'role-%s' "$deploy_server_id" > "$heat_outputs_path.role"
  group:
    type: OS::Heat::SoftwareDeploymentGroup
    properties:
      config: {get_resource: config}
      servers: {a: {get_resource: a}, b: {get_resource: b}}
      addresses: {a: {get_attr: [a_ip, floating_ip_address]},
                  b: {get_attr: [b_ip, floating_ip_address]}}
      ssh: {key_pair: {get_resource: key}, timeout: 30}
outputs:
  stdouts: {value: {get_attr: [group, deploy_stdouts]}}
  stderrs: {value: {get_attr: [group, deploy_stderrs]}}
  codes: {value: {get_attr: [group, deploy_status_codes]}}
  results: {value: {get_attr: [group, result]}}
  stdout_each: {value: {get_attr: [group, deploy_stdout]}}
  roles: {value: {get_attr: [group, role]}}
  role_a: {value: {get_attr: [group, role, a]}}
  role_c: {value: {get_attr: [group, role, c]}}
  a_id: {value: {get_resource: a}}
  b_id: {value: {get_resource: b}}
"""


def test_a_group_passes_its_members_outputs_through(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "g.yaml", TEMPLATE)
    r = invoke(tmp_path, "apply", "g.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    # a server name the group does not have: null and a warning
    assert "warning[attribute-path-missing]: get_attr: [group, role, c]: role has no 'c'" \
        in r.out and "its keys: a, b" in r.out, r.out
    out = invoke(tmp_path, "outputs", "-s", "g", "--format", "json").json()
    a, b = out["a_id"], out["b_id"]
    assert out["stdouts"] == out["stdout_each"] == {"a": f"out of {a}\n", "b": f"out of {b}\n"}
    assert out["stderrs"] == {"a": "err\n", "b": "err\n"}
    assert out["codes"] == {"a": 0, "b": 0}
    assert out["results"] == {"a": f"ok-{a}", "b": f"ok-{b}"}
    assert out["roles"] == {"a": f"role-{a}", "b": f"role-{b}"}
    assert out["role_a"] == f"role-{a}" and out["role_c"] is None
    r = invoke(tmp_path, "destroy", "g.yaml", "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
