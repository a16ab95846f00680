"""The capability table against what the adapters and the kind schemas say."""

from __future__ import annotations

from cloudtmpl import capabilities, resources
from cloudtmpl.capabilities import CLOUDS, Capabilities
from cloudtmpl.model import Target
from cloudtmpl.providers.aws import ROUTING_KINDS, SERVICE_KINDS
from cloudtmpl.providers.openstack import LB_KINDS, WAIT_KINDS
from cloudtmpl.providers.openstack.identity import IDENTITY_KINDS
from cloudtmpl.providers.openstack.routers import ROUTER_KINDS
from cloudtmpl.providers.openstack.storage import STORAGE_KINDS
from cloudtmpl.providers.software import SOFTWARE_KINDS


def test_every_declared_kind_has_a_schema_and_local_ones_are_local() -> None:
    for cloud, caps in CLOUDS.items():
        for kind in caps.kinds:
            assert kind in resources.TYPES, (cloud, kind)
            assert resources.TYPES[kind].local == (cloud == "local"), (cloud, kind)
        assert caps.on_demand <= caps.kinds, cloud


def test_every_kind_of_the_schema_is_offered_somewhere() -> None:
    offered = set().union(*(caps.kinds for caps in CLOUDS.values()))
    assert set(resources.TYPES) - offered == set()


def test_on_demand_kinds_are_the_service_modules_kinds() -> None:
    # each on-demand kind is one more service to ask: exactly what the service
    # modules (Route 53/S3/ELB, Swift) handle, apart from the compute API
    # (and server groups, the routing kinds: one more listing, four on AWS, that most
    # stacks do not need); Octavia's; the wait condition kinds (Swift's, S3's);
    # Barbican's secrets (on AWS Secrets Manager is one of SERVICE_KINDS)
    assert CLOUDS["aws"].on_demand == (SERVICE_KINDS | {capabilities.SERVER_GROUP}
                                       | ROUTING_KINDS)
    assert capabilities.SECRET in SERVICE_KINDS
    # and Keystone's (the identity service)
    assert CLOUDS["openstack"].on_demand == STORAGE_KINDS | LB_KINDS | {
        capabilities.SERVER_GROUP, capabilities.SECRET} | ROUTER_KINDS | WAIT_KINDS \
        | IDENTITY_KINDS
    assert IDENTITY_KINDS == capabilities.IDENTITY
    assert len(LB_KINDS) == 5 and capabilities.LOAD_BALANCER in LB_KINDS
    assert CLOUDS["local"].kinds >= SOFTWARE_KINDS


def test_a_libcloud_target_offers_what_its_driver_has() -> None:
    plain = Target("lab", "libcloud", "global", {"driver": "dummy"})
    assert capabilities.of(plain) == Capabilities(capabilities.LIBCLOUD_KINDS)
    small = Target("lab", "libcloud", "global", {"driver": "linode", "snapshots": True,
                                                 "kinds": (capabilities.SERVER,)})
    assert capabilities.of(small) == Capabilities(frozenset({capabilities.SERVER}),
                                                  snapshots=True)
    assert capabilities.of(Target("x", "nope", "r", {})).kinds == frozenset()


def test_each_adapter_provides_exactly_the_kinds_declared_for_it() -> None:
    from cloudtmpl.providers.aws import AwsAdapter
    from cloudtmpl.providers.libcloud import GenericAdapter
    from cloudtmpl.providers.openstack import OpenStackAdapter

    aws = AwsAdapter(Target("aws-x", "aws", "eu-central-1", {}))
    assert aws.kinds == CLOUDS["aws"].kinds and aws.on_demand == CLOUDS["aws"].on_demand
    os_ = OpenStackAdapter(Target("os", "openstack", "RegionOne", {}), environ={})
    assert os_.kinds == CLOUDS["openstack"].kinds
    assert os_.on_demand == CLOUDS["openstack"].on_demand
    os_ = OpenStackAdapter(Target("os", "openstack", "RegionOne", {}), environ={})
    assert os_.kinds == CLOUDS["openstack"].kinds
    assert os_.on_demand == CLOUDS["openstack"].on_demand
    small = Target("lab", "libcloud", "global", {"driver": "dummy",
                                                 "kinds": (capabilities.SERVER,)})
    assert GenericAdapter(small).kinds == frozenset({capabilities.SERVER})
