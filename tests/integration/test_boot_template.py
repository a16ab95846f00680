"""A cloudtmpl template's user data runs on a sandbox-openstack server at boot, and the
server's ``console_urls`` attribute (Heat's) reaches an output, through the CLI.

The user data is an ``OS::Heat::MultipartMime`` of an ``OS::Heat::CloudConfig``
(``write_files``, ``runcmd``) and an ``OS::Heat::SoftwareConfig`` script, as
cloudtmpl renders it; what ran is read from the server root (the emulator's
``GET /_sandbox/boots``) and from the console log (Nova's ``os-getConsoleOutput``).
``console_urls`` is asked of Nova only when an output reads it: discovery's request
count does not grow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cloudtmpl_sandbox import control
from tests.integration.clitools import invoke, write
from tests.integration.openstack_api import http, token

pytestmark = pytest.mark.integration

TEMPLATE = """\
heat_template_version: 2016-10-14
resources:
  boot_config:
    type: OS::Heat::CloudConfig
    properties:
      cloud_config:
        write_files:
          - path: /etc/from-mime.conf
            content: "mime=1\\n"
            permissions: "0640"
        runcmd:
          - echo "runcmd from the template" > "$HOME/runcmd.txt"
        ntp: {enabled: true}
  boot_script:
    type: OS::Heat::SoftwareConfig
    properties:
      group: ungrouped
      config: |
        #!/bin/sh
        echo "script from the template on $SERVER_ID"
  mime:
    type: OS::Heat::MultipartMime
    properties:
      parts:
        - config: {get_resource: boot_config}
        - config: {get_resource: boot_script}
  web:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      networks: [{network: private}]
      user_data_format: RAW
      user_data: {get_resource: mime}
outputs:
  novnc: {value: {get_attr: [web, console_urls, novnc]}}
  consoles: {value: {get_attr: [web, console_urls]}}
  server_id: {value: {get_resource: web}}
"""


def _console(sandbox: dict[str, Any], server_id: str) -> str:
    status, _, body = http(sandbox, "POST", f"/compute/de-fra-1/v2.1/servers/{server_id}/action",
                           {"os-getConsoleOutput": {}}, token=token(sandbox))
    assert status == 200, body
    output: str = body["output"]
    return output


def _requests(sandbox: dict[str, Any]) -> int:
    status, body = control.call(sandbox["endpoint"], sandbox["token"], "GET",
                                "/_sandbox/requests")
    assert status == 200, body
    total: int = body["total"]
    return total


def test_multipart_user_data_runs_and_console_urls_reach_outputs(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "web.yaml", TEMPLATE)
    r = invoke(tmp_path, "apply", "web.yaml", "--target", "sandbox-openstack/de-fra-1", "--yes")
    assert r.code == 0, r.err + r.out
    out = invoke(tmp_path, "outputs", "-s", "web", "--format", "json").json()
    server_id = out["server_id"]
    assert "/console/novnc/vnc_lite.html?path=%3Ftoken%3D" in out["novnc"], out
    consoles = out["consoles"]
    assert set(consoles) == {"novnc", "xvpvnc", "spice-html5", "rdp-html5", "serial",
                             "webmks"}, consoles
    assert consoles["spice-html5"].startswith("http://") and \
        consoles["serial"].startswith("ws://"), consoles
    # the emulator's compute has no RDP nor MKS console: Heat's message for them
    assert consoles["rdp-html5"].startswith("Cannot get console url: ") and \
        "Unavailable console type rdp-html5" in consoles["rdp-html5"], consoles
    assert "Unavailable console type webmks" in consoles["webmks"], consoles

    deadline = time.monotonic() + 30
    while "finished at" not in (log := _console(openstack_reset, server_id)):
        assert time.monotonic() < deadline, log
        time.sleep(0.3)
    status, boots = control.call(openstack_reset["endpoint"], openstack_reset["token"], "GET",
                                 "/_sandbox/boots")
    assert status == 200, boots
    root = Path(boots[server_id]["root"])
    conf = root / "etc/from-mime.conf"
    assert conf.read_text() == "mime=1\n" and conf.stat().st_mode & 0o777 == 0o640
    assert (root / "runcmd.txt").read_text() == "runcmd from the template\n"
    assert f"script from the template on {server_id}" in log, log
    assert "'ntp' is not run in the sandbox" in log, log

    # a plan reads the live server and asks Nova for no console: the same count as a
    # template without console_urls
    control.call(openstack_reset["endpoint"], openstack_reset["token"], "POST",
                 "/_sandbox/requests/reset")
    r = invoke(tmp_path, "plan", "web.yaml", "--target", "sandbox-openstack/de-fra-1")
    assert r.code == 0, r.err + r.out
    with_consoles = _requests(openstack_reset)
    write(tmp_path / "web.yaml", TEMPLATE.split("outputs:")[0] +
          "outputs:\n  server_id: {value: {get_resource: web}}\n")
    control.call(openstack_reset["endpoint"], openstack_reset["token"], "POST",
                 "/_sandbox/requests/reset")
    r = invoke(tmp_path, "plan", "web.yaml", "--target", "sandbox-openstack/de-fra-1")
    assert r.code == 0, r.err + r.out
    assert _requests(openstack_reset) == with_consoles

    r = invoke(tmp_path, "destroy", "web.yaml", "--target", "sandbox-openstack/de-fra-1",
               "--yes")
    assert r.code == 0, r.err + r.out
    status, boots = control.call(openstack_reset["endpoint"], openstack_reset["token"], "GET",
                                 "/_sandbox/boots")
    assert server_id not in boots
