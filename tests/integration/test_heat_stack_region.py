"""``OS::Heat::Stack`` with ``template: {get_file: FILE}`` and ``context: {region_name:
R}`` through the CLI against the OpenStack sandbox: the nested stack's resources in
region R, the parent's in the target's own; apply, a no-op plan, destroy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.clitools import os_driver, run

pytestmark = pytest.mark.integration

PARENT = """\
heat_template_version: 2021-04-16
resources:
  here:
    type: OS::Cinder::Volume
    properties: {size: 1}
  there:
    type: OS::Heat::Stack
    properties:
      context: {region_name: nl-ams-1}
      template: {get_file: ../nested/data.yaml}
      parameters: {size: 2}
outputs:
  there_id: {value: {get_attr: [there, volume]}}
"""

NESTED = """\
heat_template_version: 2021-04-16
parameters:
  size: {type: number}
resources:
  data:
    type: OS::Cinder::Volume
    properties:
      size: {get_param: size}
      description: {get_file: ../notes/data.txt}
outputs:
  volume: {value: {get_resource: data}}
"""


def _volumes(info: dict[str, Any], region: str) -> dict[str, Any]:
    return {v.name: v for v in os_driver(info, region).list_volumes()}


def test_a_nested_stack_in_another_region(tmp_path: Path,
                                          openstack_reset: dict[str, Any]) -> None:
    for name, text in {"cloudtmpl.yaml": "providers: {}\n", "stacks/regions.yaml": PARENT,
                       "nested/data.yaml": NESTED, "notes/data.txt": "kept data"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    target = "sandbox-openstack"
    applied = run(tmp_path, "apply", "stacks/regions.yaml", "--target", target, "--yes")
    assert applied.code == 0, applied.out + applied.err
    fra, ams = _volumes(openstack_reset, "de-fra-1"), _volumes(openstack_reset, "nl-ams-1")
    assert set(fra) == {"regions.here"} and set(ams) == {"regions.there.data"}
    assert ams["regions.there.data"].size == 2
    assert ams["regions.there.data"].id in applied.out  # the nested output, through get_attr
    again = run(tmp_path, "plan", "stacks/regions.yaml", "--target", target,
                "--detailed-exitcode")
    assert again.code == 0, again.out + again.err  # a no-op
    gone = run(tmp_path, "destroy", "stacks/regions.yaml", "--target", target, "--yes")
    assert gone.code == 0, gone.out + gone.err
    assert _volumes(openstack_reset, "de-fra-1") == {}
    assert _volumes(openstack_reset, "nl-ams-1") == {}
