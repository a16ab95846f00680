"""The OpenStack sandbox's Nova server groups, driven by libcloud's OpenStack driver
over HTTP (a client nobody here wrote): the API's answers, and the scheduler placing
members by policy."""

from __future__ import annotations

from typing import Any

import pytest
from libcloud.common.exceptions import BaseHTTPError
from libcloud.compute.types import NodeState

from tests.integration.clitools import os_driver

pytestmark = pytest.mark.integration

REGION = "de-fra-1"


def _post_group(driver: Any, body: dict[str, Any], version: str | None = None) -> Any:
    headers = {"OpenStack-API-Version": f"compute {version}"} if version else {}
    return driver.connection.request("/os-server-groups", method="POST",
                                     data={"server_group": body}, headers=headers)


def _boot(driver: Any, name: str, group: str | None) -> Any:
    image = next(i for i in driver.list_images() if i.name.startswith("ubuntu"))
    size = next(s for s in driver.list_sizes() if s.name == "m1.tiny")
    node = driver.create_node(name=name, size=size, image=image,
                              ex_os_scheduler_hints={"group": group} if group else None)
    for _ in range(600):
        node = driver.ex_get_node_details(node.id)
        if node.state != NodeState.PENDING:
            return node
    raise AssertionError(f"{name} stayed {node.state}")


def test_server_group_api_as_nova(openstack_reset: dict[str, Any]) -> None:
    driver = os_driver(openstack_reset, REGION)
    group = driver.ex_add_server_group("apart", "anti-affinity")  # 2.64's shape refused first
    assert (group.policy, group.members) == ("anti-affinity", [])
    assert [g.id for g in driver.ex_list_server_groups()] == [group.id]
    assert driver.ex_get_server_group(group.id).name == "apart"
    # the base microversion knows only the hard policies, and exactly one of them
    for body in ({"name": "soft", "policies": ["soft-anti-affinity"]},
                 {"name": "two", "policies": ["affinity", "anti-affinity"]},
                 {"name": "", "policies": ["affinity"]},
                 {"name": "x", "policy": "affinity"}):
        with pytest.raises(BaseHTTPError) as refused:
            _post_group(driver, body)
        assert refused.value.code == 400, body
    soft = _post_group(driver, {"name": "soft", "policies": ["soft-anti-affinity"]}, "2.15")
    assert soft.object["server_group"]["policies"] == ["soft-anti-affinity"]
    assert driver.ex_del_server_group(group)
    with pytest.raises(BaseHTTPError) as gone:
        driver.ex_get_server_group(group.id)
    assert gone.value.code == 404
    with pytest.raises(BaseHTTPError) as again:
        driver.ex_del_server_group(group)
    assert again.value.code == 404


def test_members_are_placed_by_policy(openstack_reset: dict[str, Any]) -> None:
    driver = os_driver(openstack_reset, REGION)
    apart = driver.ex_add_server_group("apart", "anti-affinity")
    together = driver.ex_add_server_group("together", "affinity")
    nodes = [_boot(driver, f"a{i}", apart.id) for i in range(3)]
    assert all(n.state == NodeState.RUNNING for n in nodes)
    assert len({n.extra["hostId"] for n in nodes}) == 3  # three hosts, one each
    # a fourth cannot be apart from the other three: Nova accepts it, then fails it
    failed = _boot(driver, "a3", apart.id)
    assert failed.state == NodeState.ERROR
    assert len(driver.ex_get_server_group(apart.id).members) == 4
    pair = [_boot(driver, f"t{i}", together.id) for i in range(2)]
    assert pair[0].extra["hostId"] == pair[1].extra["hostId"]
    # a group that does not exist, or is not a uuid, is refused before anything boots
    for bad in ("00000000-0000-0000-0000-000000000000", "apart"):
        with pytest.raises(BaseHTTPError) as refused:
            _boot(driver, "x", bad)
        assert refused.value.code == 400
    # deleting a member takes it out of its group
    assert driver.destroy_node(failed)
    assert len(driver.ex_get_server_group(apart.id).members) == 3
