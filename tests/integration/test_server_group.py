"""``Cloud::Compute::ServerGroup`` (``OS::Nova::ServerGroup``) end to end: the adapters
against the sandboxes, and a Heat template through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudtmpl.providers.base import SERVER, SERVER_GROUP, CloudError
from tests.integration import adapters
from tests.integration.adapters import (
    AWS_REGION,
    OPENSTACK_REGION,
    STACK,
    Counted,
    create,
    update,
)
from tests.integration.clitools import ec2, os_driver, run

pytestmark = pytest.mark.integration


def _ami(info: dict[str, Any]) -> str:
    images = ec2(info, AWS_REGION).describe_images(Owners=["amazon"])["Images"]
    return str(sorted(i["ImageId"] for i in images)[0])


def test_aws_server_group_is_a_placement_group(aws_reset: dict[str, Any]) -> None:
    adapter = adapters.aws(aws_reset)
    with Counted(adapter) as c:
        group = create(adapter, AWS_REGION, SERVER_GROUP, "apart", {})
    assert c.n == 2  # CreatePlacementGroup (tags inside), then one read
    assert group.physical_id == "web.apart"
    assert group.properties == {"policies": ["anti-affinity"]}
    assert group.attributes["strategy"] == "spread" and group.spec_hash == "spec-1"
    together = create(adapter, AWS_REGION, SERVER_GROUP, "together",
                      {"policies": ["soft-affinity"]})
    assert together.attributes["strategy"] == "cluster"
    with pytest.raises(CloudError, match="policies must be a list of one of affinity"):
        create(adapter, AWS_REGION, SERVER_GROUP, "bad", {"policies": ["apart"]})
    # a retried create adopts its own group; another stack's of the same name is refused
    assert create(adapter, AWS_REGION, SERVER_GROUP, "apart", {}).physical_id == "web.apart"
    with pytest.raises(CloudError, match=r"InvalidPlacementGroup\.Duplicate"):
        adapter.create(AWS_REGION, SERVER_GROUP, stack="intruder", address="apart",
                       name="web.apart", properties={}, spec_hash="x", timeout=60.0)

    found = {r.address: r for r in adapter.discover(AWS_REGION, frozenset({SERVER_GROUP}),
                                                     STACK)}
    assert set(found) == {"apart", "together"}
    assert found["together"].properties == {"policies": ["soft-affinity"]}
    assert update(adapter, found["apart"], {}, set(), "spec-2").spec_hash == "spec-2"
    with pytest.raises(CloudError, match="policies cannot change in place"):
        update(adapter, found["apart"], {"policies": ["affinity"]}, {"policies"}, "spec-3")

    server = create(adapter, AWS_REGION, SERVER, "web0",
                    {"image": _ami(aws_reset), "flavor": "t3.micro",
                     "scheduler_hints": {"group": group.physical_id}})
    with pytest.raises(CloudError, match="scheduler_hints query mean nothing on AWS"):
        create(adapter, AWS_REGION, SERVER, "web1",
               {"image": _ami(aws_reset), "flavor": "t3.micro",
                "scheduler_hints": {"group": group.physical_id, "query": "x"}})
    with pytest.raises(CloudError, match=r"InvalidPlacementGroup\.Unknown"):
        create(adapter, AWS_REGION, SERVER, "web2",
               {"image": _ami(aws_reset), "flavor": "t3.micro",
                "scheduler_hints": {"group": "web.nope"}})

    # the group waits for its member to go, then goes
    slow = adapters.aws(aws_reset, sleep=lambda s: None)
    with pytest.raises(CloudError, match="in use"):
        slow.delete(group, timeout=0.5)
    adapter.delete(server, timeout=60.0)
    adapter.delete(group, timeout=60.0)
    adapter.delete(together, timeout=60.0)
    assert adapter.discover(AWS_REGION, frozenset({SERVER_GROUP}), STACK) == []
    adapter.delete(group, timeout=60.0)  # idempotent


def test_openstack_server_group_is_a_nova_server_group(
        openstack_reset: dict[str, Any]) -> None:
    adapter = adapters.openstack(openstack_reset)
    region = OPENSTACK_REGION
    assert adapter.discover(region, frozenset({SERVER_GROUP}), STACK) == []  # signs in
    with Counted(adapter) as c:
        group = create(adapter, region, SERVER_GROUP, "apart", {})
    assert c.n == 1  # one POST; Nova answers with the group
    assert group.name == "web.apart" and group.properties == {"policies": ["anti-affinity"]}
    soft = create(adapter, region, SERVER_GROUP, "soft", {"policies": ["soft-affinity"]})
    assert soft.properties == {"policies": ["soft-affinity"]}  # sent at microversion 2.15
    with pytest.raises(CloudError, match="policies must be a list of one of"):
        create(adapter, region, SERVER_GROUP, "bad", {"policies": ["apart", "together"]})
    found = {r.address: r for r in adapter.discover(region, frozenset({SERVER_GROUP}), STACK)}
    assert set(found) == {"apart", "soft"}
    assert adapter.discover(region, frozenset({SERVER_GROUP}), "other") == []

    image = next(i.id for i in os_driver(openstack_reset, region).list_images()
                 if i.name.startswith("ubuntu"))
    servers = [create(adapter, region, SERVER, f"web{i}",
                      {"image": image, "flavor": "m1.tiny",
                       "scheduler_hints": {"group": group.physical_id}}) for i in range(3)]
    driver = os_driver(openstack_reset, region)
    assert len({driver.ex_get_node_details(s.physical_id).extra["hostId"]
                for s in servers}) == 3  # apart: one host each
    assert sorted(driver.ex_get_server_group(group.physical_id).members) == sorted(
        s.physical_id for s in servers)
    with pytest.raises(CloudError, match="ERROR"):  # a fourth: no valid host is left
        create(adapter, region, SERVER, "web3", {"image": image, "flavor": "m1.tiny",
                                                 "scheduler_hints": {"group":
                                                                     group.physical_id}})
    for live in adapter.discover(region, frozenset({SERVER}), STACK):
        adapter.delete(live, timeout=60.0)
    for live in (group, soft):
        adapter.delete(live, timeout=60.0)
        adapter.delete(live, timeout=60.0)  # idempotent
    assert adapter.discover(region, frozenset({SERVER_GROUP}), STACK) == []


HEAT = """\
heat_template_version: 2018-08-31
description: two web servers kept apart
parameters:
  image: {type: string, default: ubuntu-22.04}
resources:
  apart:
    type: OS::Nova::ServerGroup
    properties:
      name: web-apart
      policies: [anti-affinity]
  web:
    type: OS::Heat::ResourceGroup
    properties:
      count: 2
      resource_def:
        type: OS::Nova::Server
        properties:
          image: {get_param: image}
          flavor: small
          scheduler_hints: {group: {get_resource: apart}}
outputs:
  group: {value: {get_resource: apart}}
"""


def test_a_heat_template_with_a_server_group_applies_and_destroys_on_openstack(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    (tmp_path / "apart.yaml").write_text(HEAT)
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    target = "sandbox-openstack/de-fra-1"
    applied = run(tmp_path, "apply", "apart.yaml", "--target", target, "--yes")
    assert applied.code == 0, applied.err
    driver = os_driver(openstack_reset, "de-fra-1")
    [group] = driver.ex_list_server_groups()
    assert group.name == "apart.apart" and group.policy == "anti-affinity"
    assert len(group.members) == 2 and group.id in applied.out
    hosts = {driver.ex_get_node_details(m).extra["hostId"] for m in group.members}
    assert len(hosts) == 2  # kept apart
    again = run(tmp_path, "plan", "apart.yaml", "--target", target, "--detailed-exitcode")
    assert again.code == 0, again.out + again.err  # a no-op
    gone = run(tmp_path, "destroy", "apart.yaml", "--target", target, "--yes")
    assert gone.code == 0, gone.err
    assert driver.ex_list_server_groups() == []


def test_a_heat_template_with_a_server_group_applies_and_destroys_on_aws(
        tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    target = "sandbox-aws/eu-central-1"
    (tmp_path / "apart.yaml").write_text(HEAT)
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    applied = run(tmp_path, "apply", "apart.yaml", "--target", target, "--yes")
    assert applied.code == 0, applied.err
    client = ec2(aws_reset, "eu-central-1")
    [group] = client.describe_placement_groups()["PlacementGroups"]
    assert group["Strategy"] == "spread"
    members = [i for r in client.describe_instances(Filters=[
        {"Name": "tag:cloudtmpl:stack", "Values": ["apart"]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
        for i in r["Instances"]]
    assert len(members) == 2
    assert group["GroupName"] in applied.out  # the output: the group's name
    again = run(tmp_path, "plan", "apart.yaml", "--target", target, "--detailed-exitcode")
    assert again.code == 0, again.out + again.err  # a no-op
    gone = run(tmp_path, "destroy", "apart.yaml", "--target", target, "--yes")
    assert gone.code == 0, gone.err
    assert client.describe_placement_groups()["PlacementGroups"] == []
