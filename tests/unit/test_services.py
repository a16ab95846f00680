"""DNS zones/records, buckets and load balancers: schemas, names and pre-cloud checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudtmpl import resources, workflow
from cloudtmpl.capabilities import CLOUDS
from cloudtmpl.config import SANDBOX_TARGETS, ProjectConfig
from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.loader import load_text
from cloudtmpl.model import UNKNOWN
from cloudtmpl.providers.aws.lb import lb_name, lb_prefix
from cloudtmpl.providers.aws.storage import bucket_name, bucket_prefix
from cloudtmpl.providers.openstack.storage import container_name
from cloudtmpl.resolve import ResolveOptions, resolve

PROJECT = ProjectConfig(directory=Path("."), file=None, targets=SANDBOX_TARGETS)

DESIGNATE = """\
heat_template_version: 2021-04-16
resources:
  zone:
    type: OS::Designate::Zone
    properties: {name: example.org., ttl: 600, email: admin@example.org}
  www:
    type: OS::Designate::RecordSet
    properties: {zone: {get_resource: zone}, name: www, type: A, records: [10.0.0.1]}
  lb:
    type: Cloud::LB::LoadBalancer
    properties: {listeners: [{port: 80}]}
  files:
    type: OS::Swift::Container
    properties: {PurgeOnDelete: true}
"""


def _stack(text: str, target: str) -> object:
    return resolve(load_text(text, "t.yaml"),
                   ResolveOptions(stack="t", target=target, targets=SANDBOX_TARGETS))


def test_aliases_map_onto_the_native_kinds() -> None:
    zone = resources.lookup("OS::Designate::Zone")
    assert zone is not None and zone[0].kind == "Cloud::DNS::Zone"
    assert zone[1] is not None and zone[1].properties["name"] == "domain"
    container = resources.lookup("OS::Swift::Container")
    assert container is not None and container[0].kind == "Cloud::Storage::Bucket"
    assert container[1] is not None and container[1].properties["PurgeOnDelete"] == "force"
    assert resources.TYPES["Cloud::Storage::Bucket"].data_bearing
    lb = resources.TYPES["Cloud::LB::LoadBalancer"]
    assert not lb.forces_replacement("members") and not lb.forces_replacement("listeners")
    record = resources.TYPES["Cloud::DNS::Record"]
    assert not record.forces_replacement("records") and record.forces_replacement("type")


OCTAVIA_KINDS = ("Cloud::LB::Listener", "Cloud::LB::Pool", "Cloud::LB::PoolMember",
                 "Cloud::LB::HealthMonitor")


def test_kinds_per_target_type() -> None:
    for kind in ("Cloud::DNS::Zone", "Cloud::DNS::Record", "Cloud::Storage::Bucket",
                 "Cloud::LB::LoadBalancer"):
        assert kind in CLOUDS["aws"].kinds
    for kind in ("Cloud::Storage::Bucket", "Cloud::LB::LoadBalancer", *OCTAVIA_KINDS):
        assert kind in CLOUDS["openstack"].kinds
        assert kind in CLOUDS["openstack"].on_demand  # another service to ask
    for kind in ("Cloud::DNS::Zone", "Cloud::DNS::Record"):
        assert kind not in CLOUDS["openstack"].kinds
    for kind in OCTAVIA_KINDS:  # Octavia's own: OpenStack only
        assert kind not in CLOUDS["aws"].kinds


def test_designate_is_a_diagnostic_on_openstack() -> None:
    stack = _stack(DESIGNATE, "sandbox-openstack/de-fra-1")
    with pytest.raises(DiagnosticError) as exc:
        workflow.check_targets(stack, PROJECT)  # type: ignore[arg-type]
    found = {d.message.split("'")[1]: d for d in exc.value.diagnostics}
    assert sorted(found) == ["www", "zone"]  # the container and the balancer are fine
    assert all(d.code == "unsupported-kind" for d in found.values())
    assert "(OS::Designate::Zone)" in found["zone"].message
    assert "Cloud::Storage::Bucket" in found["zone"].hint
    workflow.check_targets(_stack(DESIGNATE, "sandbox-aws/eu-central-1"),  # type: ignore[arg-type]
                           PROJECT)


OCTAVIA = """heat_template_version: 2021-04-16
resources:
  web:
    type: OS::Nova::Server
    properties: {image: ubuntu-22.04, flavor: small}
  lb:
    type: OS::Octavia::LoadBalancer
    properties: {vip_subnet: private-subnet}
  listener:
    type: OS::Octavia::Listener
    properties: {loadbalancer: {get_resource: lb}, protocol: HTTP, protocol_port: 80}
  pool:
    type: OS::Octavia::Pool
    properties: {listener: {get_resource: listener}, protocol: HTTP,
                 lb_algorithm: ROUND_ROBIN}
  member:
    type: OS::Octavia::PoolMember
    properties: {pool: {get_resource: pool}, address: {get_attr: [web, first_address]},
                 protocol_port: 80}
  monitor:
    type: OS::Octavia::HealthMonitor
    properties: {pool: {get_resource: pool}, type: TCP, delay: 5, timeout: 5,
                 max_retries: 3}
"""


def test_octavia_kinds_are_diagnostics_elsewhere_than_openstack() -> None:
    workflow.check_targets(_stack(OCTAVIA, "sandbox-openstack/de-fra-1"),  # type: ignore[arg-type]
                           PROJECT)
    with pytest.raises(DiagnosticError) as exc:
        workflow.check_targets(_stack(OCTAVIA, "sandbox-aws/eu-central-1"),  # type: ignore[arg-type]
                               PROJECT)
    found = {d.message.split("'")[1]: d for d in exc.value.diagnostics}
    assert sorted(found) == ["listener", "member", "monitor", "pool"]  # lb: an ELB there
    assert all(d.code == "unsupported-kind" for d in found.values())
    assert (found["listener"].loc.file, found["listener"].loc.line) == ("t.yaml", 9)
    assert "(OS::Octavia::Listener)" in found["listener"].message


def test_a_member_on_another_region_or_cloud_is_a_placement_conflict() -> None:
    balancer = """heat_template_version: 2021-04-16
resources:
  web:
    type: OS::Nova::Server
    placement: {provider: sandbox-openstack, region: nl-ams-1}
    properties: {image: ubuntu-22.04, flavor: small}
  lb:
    type: Cloud::LB::LoadBalancer
    placement: {provider: sandbox-openstack, region: de-fra-1}
    properties: {members: [{get_resource: web}], listeners: [{port: 80}]}
"""
    with pytest.raises(DiagnosticError) as exc:
        _stack(balancer, "sandbox-openstack/de-fra-1")
    (d,) = exc.value.diagnostics
    assert d.code == "placement-conflict"
    assert "refer to each other by id" in d.message and "'web'" in d.message
    assert d.loc.file == "t.yaml" and d.loc.line in (5, 9)


def test_an_octavia_member_of_a_server_on_another_cloud_is_a_diagnostic() -> None:
    on_aws = OCTAVIA.replace(
        "    type: OS::Nova::Server\n",
        "    type: OS::Nova::Server\n    placement: {provider: sandbox-aws}\n")
    # the member's address ties the server to the pool as an id would: with nothing
    # else pinned, the whole balancer follows the server to AWS, which has no Octavia
    with pytest.raises(DiagnosticError) as exc:
        workflow.check_targets(_stack(on_aws, "sandbox-openstack/de-fra-1"),  # type: ignore[arg-type]
                               PROJECT)
    assert {d.code for d in exc.value.diagnostics} == {"unsupported-kind"}
    assert "'member'" in " ".join(d.message for d in exc.value.diagnostics)
    # with the balancer pinned to OpenStack, the two pins conflict
    pinned = on_aws.replace("    type: OS::Octavia::LoadBalancer\n",
                            "    type: OS::Octavia::LoadBalancer\n"
                            "    placement: {provider: sandbox-openstack}\n")
    with pytest.raises(DiagnosticError) as exc:
        _stack(pinned, "sandbox-openstack/de-fra-1")
    (d,) = exc.value.diagnostics
    assert d.code == "placement-conflict" and "'web'" in d.message


def test_a_record_in_a_zone_of_another_target_is_a_placement_conflict() -> None:
    text = """\
heat_template_version: 2021-04-16
resources:
  zone:
    type: Cloud::DNS::Zone
    placement: {provider: sandbox-aws, region: us-east-1}
    properties: {domain: example.org}
  www:
    type: Cloud::DNS::Record
    placement: {provider: sandbox-aws, region: eu-central-1}
    properties: {zone: {get_resource: zone}, type: A, records: [10.0.0.1]}
"""
    with pytest.raises(DiagnosticError) as exc:
        _stack(text, "sandbox-aws/eu-central-1")
    (d,) = exc.value.diagnostics
    assert d.code == "placement-conflict"
    assert "refer to each other by id" in d.message and "www" in d.message


def test_canonical_forms_are_what_the_adapters_report() -> None:
    rec = resources.canonical("Cloud::DNS::Record",
                              {"zone": "Z1", "name": "@", "type": "a",
                               "records": ["10.0.0.2", "10.0.0.1"]})
    assert rec == {"zone": "Z1", "name": "", "type": "A", "ttl": 300,
                   "records": ["10.0.0.1", "10.0.0.2"]}
    unknown = resources.canonical("Cloud::DNS::Record",
                                  {"zone": "Z1", "type": "A", "records": [UNKNOWN]})
    assert unknown["records"] == [UNKNOWN]  # never turned into text
    zone = resources.canonical("Cloud::DNS::Zone", {"domain": "Example.ORG"})
    assert zone["domain"] == "example.org." and zone["ttl"] == 3600
    lb = resources.canonical("Cloud::LB::LoadBalancer", {
        "listeners": [{"port": 443, "protocol": "tcp"}, {"port": 80, "instance_port": 8080}],
        "members": ["i-b", "i-a"], "health_check": {"target": "HTTP:80/"}})
    assert lb["members"] == ["i-a", "i-b"]
    assert lb["listeners"][0]["instance_protocol"] == lb["listeners"][0]["protocol"]
    assert {x["port"] for x in lb["listeners"]} == {80, 443}
    assert lb["health_check"]["interval"] == 30
    # other kinds are untouched
    assert resources.canonical("Cloud::Block::Volume", {"size": 1})["size"] == 1


def test_deterministic_names_follow_each_clouds_rules() -> None:
    assert bucket_name("my_stack", "Assets") == "my-stack-assets"
    assert bucket_name("s", "web_group.0", "acme") == "s-web-group-0-acme"
    long = bucket_name("s" * 40, "b" * 40)
    assert len(long) == 63 and long.startswith("s" * 40 + "-")
    assert long != bucket_name("s" * 40, "b" * 39 + "c")
    assert bucket_name("stack", "x").startswith(bucket_prefix("stack"))
    name = lb_name("services", "lb")
    assert name == "services-lb"
    long_lb = lb_name("a-very-long-stack-name", "and-a-long-address")
    assert len(long_lb) <= 32 and long_lb.startswith(lb_prefix("a-very-long-stack-name"))
    assert container_name("st", "data") == "st.data"
    assert container_name("st", "data", "v2") == "st.data-v2"
