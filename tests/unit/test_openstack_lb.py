"""The pure part of the OpenStack load balancer handler (providers/openstack/lb.py):
listener entries and the health check as Octavia takes them, refused before anything
is made; tags for metadata and the spec."""

from __future__ import annotations

import pytest
from libcloud.common.types import LibcloudError

from cloudtmpl import resources
from cloudtmpl.model import Placement, Target, canonical_json
from cloudtmpl.providers.base import LOAD_BALANCER, CloudError
from cloudtmpl.providers.openstack import lb, octavia
from cloudtmpl.providers.openstack.client import OpenStackClient


def test_listener_entries_are_canonical_and_checked() -> None:
    got = lb.entries([{"port": 443, "protocol": "https", "instance_protocol": "tcp",
                       "instance_port": "8443"},
                      {"port": 80}])
    assert got == [lb.Entry("HTTP", 80, "HTTP", 80), lb.Entry("HTTPS", 443, "TCP", 8443)]
    assert got[0].listener("web.lb") == "web.lb:HTTP:80"
    assert got[1].pool("web.lb") == "web.lb:HTTPS:443:TCP:8443"
    assert lb.entries([]) == []
    for bad, words in (([{"port": 443, "protocol": "SSL"}], "not offered on OpenStack"),
                       ([{"port": 80, "instance_protocol": "TCP"}], "cannot send TCP"),
                       ([{"port": 80}, {"port": 80, "protocol": "TCP"}], "listed twice"),
                       ([{"protocol": "HTTP"}], "needs at least a port"),
                       ("80", "must be a list")):
        with pytest.raises(CloudError, match=words) as info:
            lb.entries(bad)
        assert info.value.permanent
    # UDP and TCP may share a port number
    assert len(lb.entries([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}])) \
        == 2


def test_health_checks_map_onto_octavias_monitor() -> None:
    got = lb.check({"target": "HTTP:8080/health", "interval": 10, "healthy_threshold": 3})
    assert got is not None
    assert (got.kind, got.port, got.url_path, got.delay, got.timeout, got.max_retries,
            got.max_retries_down) == ("HTTP", 8080, "/health", 10, 5, 3, 2)
    assert got.value() == {"target": "HTTP:8080/health", "interval": 10, "timeout": 5,
                           "healthy_threshold": 3, "unhealthy_threshold": 2}
    assert got.name("web.lb") == "web.lb:check:HTTP:8080/health"
    tcp = lb.check({"target": "TCP:22", "healthy_threshold": 10})
    assert tcp is not None and (tcp.kind, tcp.url_path, tcp.fields().get("url_path")) == \
        ("TCP", None, None)
    ssl = lb.check({"target": "ssl:443"})
    assert ssl is not None and ssl.kind == "TLS-HELLO"
    root = lb.check({"target": "HTTP:80"})
    assert root is not None and root.url_path == "/" and root.target == "HTTP:80"
    assert lb.check(None) is None and lb.check({}) is None
    for bad, words in (({"target": "HTTP:80/", "healthy_threshold": 11}, "must be 1-10"),
                       ({"target": "HTTP:80/", "unhealthy_threshold": 0}, "must be 1-10"),
                       ({"target": "HTTP:80/", "interval": 3, "timeout": 5},
                        "must not exceed its interval"),
                       ({"target": "TCP:22/x"}, "has no path"),
                       ({"target": "ICMP:0"}, "expected PROTOCOL:PORT"),
                       ({"target": "HTTP:70000/"}, "expected PROTOCOL:PORT"),
                       ({"target": "HTTP:80/", "every": 5}, "unknown keys every"),
                       ({"interval": 5}, "needs a target")):
        with pytest.raises(CloudError, match=words) as info:
            lb.check(bad)
        assert info.value.permanent


def test_metadata_and_the_spec_are_tags() -> None:
    tags = lb.tags_of({"metadata": {"team": "web", "tier": "front"}})
    assert tags == ["team=web", "tier=front"]
    marked = octavia.spec_tags("abc123", tags)
    assert "cloudtmpl:spec=abc123" in marked
    assert octavia.spec_of({"tags": marked}) == "abc123"
    assert octavia.spec_of({"tags": tags}) is None
    assert lb.metadata_of(marked) == {"team": "web", "tier": "front"}
    with pytest.raises(CloudError, match="reserved"):
        lb.tags_of({"metadata": {"cloudtmpl:spec": "x"}})


def test_only_names_of_the_stack_without_a_colon_are_resources() -> None:
    assert octavia.stack_address("web", {"name": "web.listener"}) == "listener"
    assert octavia.stack_address("web", {"name": "web.lb:HTTP:80"}) is None  # a LB's own
    assert octavia.stack_address("web", {"name": "other.listener"}) is None


class _Client:
    """What live_of asks of a client: the placement."""

    def placement(self, region: str) -> Placement:
        return Placement("os", region)


def test_a_live_balancer_reports_what_the_template_canonically_says() -> None:
    listeners = [{"protocol": "TCP", "port": 22, "instance_port": 2222},
                 {"protocol": "HTTP", "port": 80, "instance_port": 8080},
                 {"port": 443, "protocol": "HTTPS", "instance_port": 443}]
    health = {"target": "HTTP:8080/health", "interval": 10}
    want = resources.canonical(LOAD_BALANCER, {"listeners": listeners,
                                               "members": ["s2", "s1"],
                                               "health_check": health})
    name = "web.lb"
    pools = [{"id": f"p{e.port}", "name": e.pool(name)} for e in lb.entries(listeners)]
    members = [{"name": f"{name}:member:{s}", "pool_id": "p80"} for s in ("s1", "s2")]
    check = lb.check(health)
    assert check is not None
    monitors = [{"name": check.name(name), "delay": 10, "timeout": 5, "max_retries": 10,
                 "max_retries_down": 2, "pools": [{"id": "p80"}]}]
    got = lb.live_of(_Client(), "r", "lb", lb.Parts(  # type: ignore[arg-type]
        {"id": "L", "name": name, "vip_address": "10.0.0.9", "tags": ["a=b"]}, [], pools,
        members, monitors))
    for key in ("listeners", "members", "health_check"):
        assert canonical_json(got.properties[key]) == canonical_json(want[key]), key
    assert got.properties["metadata"] == {"a": "b"}
    assert got.attributes["dns_name"] == got.attributes["vip_address"] == "10.0.0.9"


def test_a_monitor_may_not_take_longer_than_its_delay() -> None:
    props = {"pool": "p", "type": "TCP", "delay": 5, "timeout": 6, "max_retries": 3}
    with pytest.raises(CloudError, match=r"timeout \(6\) must not exceed delay \(5\)") as info:
        octavia.HEALTH_MONITORS.fields(None, "r", props)  # type: ignore[arg-type]
    assert info.value.permanent
    with pytest.raises(CloudError, match="must not exceed delay"):
        octavia.HEALTH_MONITORS.updates(props, frozenset({"timeout"}))
    with pytest.raises(CloudError, match="applies to HTTP and HTTPS monitors only"):
        octavia.HEALTH_MONITORS.fields(None, "r", {  # type: ignore[arg-type]
            **props, "timeout": 5, "url_path": "/x"})
    fields = octavia.HEALTH_MONITORS.fields(None, "r", {  # type: ignore[arg-type]
        **props, "timeout": 5, "url_path": "/", "http_method": "GET"})
    assert "url_path" not in fields and fields["delay"] == 5  # not sent on a TCP monitor


def test_a_cloud_without_octavia_says_so() -> None:
    class Catalog:
        def get_regions(self, service_type: str) -> list[str]:
            return []

    class Conn:
        service_catalog = Catalog()

        def request(self, *args: object, **kwargs: object) -> None:
            raise LibcloudError("Could not find specified endpoint")

    client = OpenStackClient(Target("lab", "openstack", "RegionOne", {}), environ={})
    client._conn = lambda region, service: Conn()  # type: ignore[method-assign]
    with pytest.raises(CloudError, match="target 'lab' offers no load balancers") as info:
        client._raw("RegionOne", "load-balancer", "/v2/lbaas/loadbalancers", "GET", None, None)
    assert info.value.permanent
    with pytest.raises(CloudError, match="region 'RegionOne' is not in the service catalog"):
        client._raw("RegionOne", "network", "/v2.0/ports", "GET", None, None)
