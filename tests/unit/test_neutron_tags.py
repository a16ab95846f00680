"""The Neutron tags that record routers' interfaces, gateways, routes and floating-IP
associations (pure logic)."""

from __future__ import annotations

import pytest

from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.openstack import neutron


def test_a_tag_names_the_stack_and_address_and_reads_back() -> None:
    tag = neutron.marker_tag("rt", "web", "default_route", "1a2b3c4d")
    assert tag == "cloudtmpl:rt=1a2b3c4d:web.default_route"
    assert neutron.tagged({"tags": [tag]}, "rt", "web") == [("1a2b3c4d", "default_route")]
    plain = neutron.marker_tag("if", "web", "app.0.if")
    assert neutron.tagged({"tags": [plain, "other", tag]}, "if", "web") == [("", "app.0.if")]


def test_another_stack_or_mark_is_not_ours() -> None:
    tags = {"tags": [neutron.marker_tag("if", "webx", "a"), neutron.marker_tag("gw", "web", "a"),
                     "cloudtmpl:if=web", "cloudtmpl:if=", None]}
    assert neutron.tagged(tags, "if", "web") == []
    assert neutron.tagged(tags, "gw", "web") == [("", "a")]
    assert neutron.tagged({}, "gw", "web") == []


def test_a_tag_longer_than_neutron_allows_is_refused() -> None:
    assert len(neutron.marker_tag("fa", "s" * 20, "a" * 26)) == 60
    with pytest.raises(CloudError, match="61 characters") as info:
        neutron.marker_tag("fa", "s" * 20, "a" * 27)
    assert info.value.permanent
