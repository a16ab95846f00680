"""A server's ``networks`` attribute in Heat's shape, through the CLI on sandbox-openstack:
keyed by the network's name (as Heat templates write ``{get_attr: [server, networks,
private, 0]}``) and by its id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.clitools import invoke, write
from tests.integration.openstack_api import http, token

pytestmark = pytest.mark.integration

TEMPLATE = """\
heat_template_version: 2013-05-23
resources:
  db:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: small
      networks: [{network: private}]
outputs:
  by_name: {value: {get_attr: [db, networks, private, 0]}}
  by_id: {value: {get_attr: [db, networks, PRIVATE_ID, 0]}}
  first: {value: {get_attr: [db, first_address]}}
"""


def test_networks_is_keyed_by_name_and_id(tmp_path: Path,
                                          openstack_reset: dict[str, Any]) -> None:
    status, _, body = http(openstack_reset, "GET", "/network/de-fra-1/v2.0/networks?name=private",
                           token=token(openstack_reset))
    assert status == 200, body
    (private,) = body["networks"]
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "db.yaml", TEMPLATE.replace("PRIVATE_ID", private["id"]))
    r = invoke(tmp_path, "apply", "db.yaml", "--target", "sandbox-openstack/de-fra-1", "--yes")
    assert r.code == 0, r.err + r.out
    out = invoke(tmp_path, "outputs", "-s", "db", "--format", "json").json()
    assert out["first"].startswith("10.")
    assert out["by_name"] == out["by_id"] == out["first"]
    r = invoke(tmp_path, "destroy", "db.yaml", "--target", "sandbox-openstack/de-fra-1", "--yes")
    assert r.code == 0, r.err + r.out
