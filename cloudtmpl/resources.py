"""The resource kinds: the cloud kinds (servers, key pairs, server groups, volumes,
networks, ...) and the local ones (random strings, values) as tables, and the registry
of every kind (:data:`TYPES`) with its Heat aliases (:data:`ALIASES`).

The provider-agnostic ``Cloud::*`` kinds are the native vocabulary; ``OS::*``
names are aliases onto them.  What a schema is made of is :mod:`cloudtmpl.resource_spec`;
the software kinds are in :mod:`cloudtmpl.software_kinds`, the service kinds (DNS,
buckets, load balancers) in :mod:`cloudtmpl.service_kinds`, Keystone's in
:mod:`cloudtmpl.identity_kinds`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cloudtmpl import (
    identity_kinds,
    network_kinds,
    orchestration_kinds,
    scaling_kinds,
    secret_kinds,
    service_kinds,
    software_kinds,
)
from cloudtmpl.resource_spec import Alias, P, ResourceType, local_kind
from cloudtmpl.security_rules import DEFAULT_EGRESS_RULES, canonical_rules
from cloudtmpl.sensitive import mark

SERVER = ResourceType(
    kind="Cloud::Compute::Server",
    description="A virtual machine.",
    properties={
        "image": P("string", required=True, description="Image id or abstract image name"),
        "flavor": P("string", required=True, update_allowed=True,
                    description="Size (instance type); changed by stop/resize/start"),
        "key_name": P("string", description="Key pair name (get_resource of a KeyPair)"),
        "security_groups": P("list", default=[], description="Security group ids"),
        "user_data": P("string", default="", description="Boot-time user data"),
        "availability_zone": P("string", description="Zone inside the region"),
        "metadata": P("map", default={}, update_allowed=True, description="Tags/metadata"),
        "networks": P("list", default=[],
                      description="Heat-style NICs: [{network: id}, {port: id}, "
                      "{subnet: id}, {network: id, fixed_ip: addr}]; empty: the default network"),
        "scheduler_hints": P("map", default={},
                             description="Heat's scheduler hints; group: a ServerGroup "
                             "(get_resource) whose policy places the server"),
    },
    attributes={
        "first_address": "The first private IP address",
        "networks": "Map of network -> list of its addresses, keyed as Heat keys it by "
                    "name and by id (AWS: by VPC id and subnet id)",
        "addresses": "Map of network -> list of {addr, version, OS-EXT-IPS:type, "
                     "OS-EXT-IPS-MAC:mac_addr, port}, keyed like networks (Heat's shape)",
        "accessIPv4": "The IPv4 address the cloud says reaches the server ('' if none)",
        "accessIPv6": "The IPv6 address the cloud says reaches the server ('' if none)",
        "show": "The server as the cloud describes it (OpenStack: the Nova server JSON; "
                "AWS: the EC2 instance's fields)",
        "private_ip": "The private IP address",
        "public_ip": "The public IP address (an elastic/floating IP once associated)",
        "name": "The server's cloud-side name",
        "status": "The server's status",
        "console_urls": "Console type -> URL (novnc, xvpvnc, spice-html5, rdp-html5, serial, webmks), asked of Nova when read, as Heat's (OpenStack)",  # noqa: E501
    },
    ref="server id",
    tags=True,
    ready_timeout=600.0,
    layer=3,
    # Heat saves an image of it: so does cloudtmpl where the cloud can (OpenStack's
    # createImage, capabilities.images); elsewhere the server is kept
    on_snapshot="retain",
)

KEYPAIR = ResourceType(
    kind="Cloud::Compute::KeyPair",
    description="An SSH key pair; without public_key one is generated and its private "
    "key stored with mode 0600 under .cloudtmpl/keys/.",
    properties={
        "public_key": P("string", description="OpenSSH public key to import"),
    },
    attributes={
        "name": "The key pair's cloud-side name",
        "public_key": "The public key",
        "fingerprint": "The key's fingerprint",
    },
    ref="key pair name",
    tags=True,
)

SECURITY_GROUP = ResourceType(
    kind="Cloud::Network::SecurityGroup",
    description="A firewall rule set; rules change in place.",
    properties={
        "description": P("string", default=""),
        "rules": P("list", default=[], update_allowed=True,
                   description="Heat-style rules: direction, protocol, port_range_min, "
                   "port_range_max, remote_ip_prefix"),
        "network": P("string", description="AWS: the VPC the group is made in (default: "
                     "the network of the ports and servers that use it, when they share "
                     "one; else the default VPC). OpenStack groups are project-wide: "
                     "ignored"),
    },
    attributes={"name": "The group's cloud-side name", "id": "The group id"},
    ref="security group id",
    tags=True,
    layer=1,
)

VOLUME = ResourceType(
    kind="Cloud::Block::Volume",
    description="A block storage volume; size may grow in place.",
    properties={
        "size": P("integer", required=True, update_allowed=True, description="Size in GiB"),
        "volume_type": P("string", description="Volume type, e.g. gp3"),
        "availability_zone": P("string", description="Zone inside the region"),
        "metadata": P("map", default={}, update_allowed=True),
    },
    attributes={"size": "Size in GiB", "status": "Volume status", "name": "Cloud-side name"},
    ref="volume id",
    tags=True,
    ready_timeout=300.0,
    data_bearing=True,
    on_snapshot="snapshot",
)

#: A server group's policies (Heat's ``OS::Nova::ServerGroup``; Nova takes one).
SERVER_GROUP_POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")

SERVER_GROUP = ResourceType(
    kind="Cloud::Compute::ServerGroup",
    description="A placement policy for the servers that name it in scheduler_hints: "
    "together (affinity) or apart (anti-affinity); an OpenStack server group, an EC2 "
    "placement group (cluster or spread).",
    properties={
        "policies": P("list", default=["anti-affinity"],
                      description="One of " + ", ".join(SERVER_GROUP_POLICIES)
                      + " (a list of one, as Heat's)"),
    },
    attributes={"name": "The group's cloud-side name", "policies": "Its policies",
                "strategy": "The EC2 strategy it maps to (AWS only)"},
    ref="server group id (AWS: the placement group's name)",
    tags=False,  # Nova's server groups have no tags: known by their name
    ready_timeout=120.0,
    delete_timeout=300.0,
    layer=1,
)

VOLUME_ATTACHMENT = ResourceType(
    kind="Cloud::Block::VolumeAttachment",
    description="Attaches a volume to a server.",
    properties={
        "instance_uuid": P("string", required=True, description="Server id"),
        "volume_id": P("string", required=True, description="Volume id"),
        "mountpoint": P("string", default="/dev/sdh", description="Device name"),
    },
    attributes={},
    ref="volume id:server id",
    tags=True,  # recorded as tags on the volume
    ready_timeout=300.0,
    layer=4,
)

FLOATING_IP = ResourceType(
    kind="Cloud::Network::FloatingIP",
    description="A public address (AWS elastic IP, OpenStack floating IP), optionally "
    "associated with a server or a port.",
    properties={
        "server": P("string", update_allowed=True, description="Server id to associate with"),
        "port": P("string", update_allowed=True, description="Port id to associate with"),
        "floating_network": P("string", description="External network name or id the "
                              "address comes from (OpenStack; AWS has one pool)"),
    },
    attributes={
        "floating_ip_address": "The public IP address",
        "ip": "The public IP address",
        "port_id": "The port it is associated with",
        "fixed_ip_address": "The private address it maps to",
        "floating_network_id": "The external network it comes from (OpenStack)",
    },
    ref="floating ip id (AWS: allocation id)",
    tags=True,
    layer=4,
)

NETWORK = ResourceType(
    kind="Cloud::Network::Network",
    description="A private network (AWS VPC, OpenStack Neutron network).",
    properties={
        "cidr": P("string", default="10.0.0.0/16",
                  description="Address range of an AWS VPC; OpenStack networks take their "
                  "ranges from their subnets"),
        "admin_state_up": P("boolean", default=True, update_allowed=True),
    },
    attributes={"name": "Cloud-side name", "id": "Network id", "status": "Network status"},
    ref="network id",
    tags=True,
)

SUBNET = ResourceType(
    kind="Cloud::Network::Subnet",
    description="An address range inside a network.",
    properties={
        "network": P("string", required=True, description="Network id"),
        "cidr": P("string", required=True, description="Address range, e.g. 10.0.1.0/24"),
        "ip_version": P("integer", default=4),
        "enable_dhcp": P("boolean", default=True, update_allowed=True),
        "gateway_ip": P("string", description="Gateway address (OpenStack)"),
        "dns_nameservers": P("list", default=[], update_allowed=True),
        "availability_zone": P("string", description="Zone inside the region (AWS)"),
    },
    attributes={
        "name": "Cloud-side name",
        "cidr": "Address range",
        "gateway_ip": "Gateway address",
        "network_id": "Network id",
    },
    ref="subnet id",
    tags=True,
    layer=1,
)

PORT = ResourceType(
    kind="Cloud::Network::Port",
    description="A network interface (OpenStack port, AWS elastic network interface).",
    properties={
        "network": P("string", required=True, description="Network id"),
        "fixed_ips": P("list", default=[],
                       description="[{subnet: id, ip_address: addr}] (AWS: the subnet is "
                       "required, else the network's first subnet is used)"),
        "security_groups": P("list", default=[], update_allowed=True),
        "admin_state_up": P("boolean", default=True, update_allowed=True),
    },
    attributes={
        "name": "Cloud-side name",
        "fixed_ips": "[{subnet_id, ip_address}]",
        "ip_address": "The first fixed IP address",
        "mac_address": "MAC address",
        "network_id": "Network id",
        "status": "Port status",
    },
    ref="port id",
    tags=True,
    layer=2,
)

RANDOM_STRING = local_kind(
    "Cloud::Random::String",
    "A random string, generated once and kept; never shown in clear text. It is "
    "derived from the project's secret key (.cloudtmpl/keys/secret.key, or "
    "CLOUDTMPL_SECRET_KEY), so only its parameters are stored.",
    properties={
        "length": P("integer", default=32),
        "sequence": P("string", default="lettersdigits",
                      description="lettersdigits, letters, lowercase, uppercase, digits, "
                      "hexdigits or octdigits"),
        "character_classes": P("list", description="[{class: digits, min: 2}, ...]"),
        "character_sequences": P("list", description="[{sequence: '!@#', min: 1}, ...]"),
        "salt": P("string", default="", description="Change it to get a new value"),
    },
    attributes={"value": "The random string"},
    ref="the random string",
)

VALUE = local_kind(
    "Cloud::Local::Value",
    "A value computed from other values (Heat's OS::Heat::Value).",
    properties={
        "value": P("any", required=True, update_allowed=True),
        "type": P("string", update_allowed=True),
    },
    attributes={"value": "The value"},
    ref="the resource's name",
)

NONE = local_kind(
    "Cloud::Local::None",
    "A placeholder that makes nothing (Heat's OS::Heat::None); any properties.",
    properties={}, attributes={}, ref="the resource's name", open_properties=True,
)

TEST_RESOURCE = local_kind(
    "Cloud::Local::Test",
    "Heat's OS::Heat::TestResource, value only: its 'output' is its 'value'.",
    properties={"value": P("any", update_allowed=True, default="")},
    attributes={"output": "The value"}, ref="the resource's name", open_properties=True,
)

TYPES: dict[str, ResourceType] = {
    t.kind: t
    for t in (
        SERVER, KEYPAIR, SERVER_GROUP, SECURITY_GROUP, VOLUME, VOLUME_ATTACHMENT,
        FLOATING_IP, NETWORK, SUBNET, PORT, RANDOM_STRING, VALUE, NONE, TEST_RESOURCE,
        *network_kinds.KINDS, *software_kinds.KINDS, *service_kinds.KINDS,
        *scaling_kinds.KINDS,
        *orchestration_kinds.KINDS,
        *identity_kinds.KINDS,
        *secret_kinds.KINDS,
    )
}

DEPLOY_KINDS = frozenset({software_kinds.DEPLOYMENT.kind, software_kinds.DEPLOYMENT_GROUP.kind})
#: A deployment's properties that only say how to reach the server: a change of these
#: alone is recorded without running the script again (Heat re-runs a deployment when its
#: config or inputs change).
CONNECTION_PROPERTIES = frozenset({"ssh", "address", "addresses"})


def connection_only(kind: str, changed: Iterable[str]) -> bool:
    """True when ``changed`` names only connection settings (``ssh``, ``address``,
    ``addresses``) of a deployment or deployment group: the change is recorded, the
    script is not run again (as in Heat, which re-runs on config or input changes)."""
    names = set(changed)
    return kind in DEPLOY_KINDS and bool(names) and names <= CONNECTION_PROPERTIES


LOCAL_TARGET = "local"  # the placement of local resources

_NAMED = frozenset({"name", "description"})
ALIASES: dict[str, Alias] = {
    a.name: a
    for a in (
        Alias("OS::Nova::Server", SERVER.kind,
              ignored=frozenset({"name", "admin_pass", "config_drive", "diskConfig",
                                 "user_data_format", "software_config_transport"})),
        Alias("OS::Nova::ServerGroup", SERVER_GROUP.kind, ignored=frozenset({"name"})),
        Alias("OS::Nova::KeyPair", KEYPAIR.kind, ignored=frozenset({"name", "save_private_key",
                                                                    "type"})),
        Alias("OS::Neutron::Net", NETWORK.kind,
              ignored=_NAMED | {"shared", "port_security_enabled", "dns_domain", "value_specs"}),
        Alias("OS::Neutron::Subnet", SUBNET.kind,
              properties={"network_id": "network"},
              ignored=_NAMED | {"allocation_pools", "host_routes", "value_specs"}),
        Alias("OS::Neutron::SecurityGroup", SECURITY_GROUP.kind, ignored=frozenset({"name"})),
        Alias("OS::Neutron::FloatingIP", FLOATING_IP.kind,
              properties={"port_id": "port", "floating_network_id": "floating_network"},
              ignored=frozenset({"fixed_ip_address", "value_specs", "dns_name",
                                 "dns_domain", "floating_ip_address"})),
        Alias("OS::Nova::FloatingIP", FLOATING_IP.kind,
              properties={"pool": "floating_network"},
              attributes={"pool": "floating_network_id"}),
        Alias("OS::Neutron::Port", PORT.kind,
              properties={"network_id": "network"},
              ignored=_NAMED | {"mac_address", "binding:vnic_type", "value_specs",
                                "replacement_policy"}),
        Alias("OS::Cinder::Volume", VOLUME.kind,
              ignored=_NAMED | {"backup_id", "image", "snapshot_id", "read_only",
                                "multiattach", "scheduler_hints"}),
        Alias("OS::Cinder::VolumeAttachment", VOLUME_ATTACHMENT.kind),
        Alias("OS::Heat::RandomString", RANDOM_STRING.kind),
        Alias("OS::Heat::Value", VALUE.kind),
        Alias("OS::Heat::None", NONE.kind),
        Alias("OS::Heat::TestResource", TEST_RESOURCE.kind),
        *network_kinds.ALIASES, *software_kinds.ALIASES, *service_kinds.ALIASES,
        *scaling_kinds.ALIASES,
        *orchestration_kinds.ALIASES,
        *identity_kinds.ALIASES,
        *secret_kinds.ALIASES,
    )
}


def lookup(type_name: str) -> tuple[ResourceType, Alias | None] | None:
    """The schema for a type name as written in a template (native or alias)."""
    if type_name in TYPES:
        return TYPES[type_name], None
    alias = ALIASES.get(type_name)
    if alias is not None:
        return TYPES[alias.kind], alias
    return None


def known_type_names() -> list[str]:
    return sorted([*TYPES, *ALIASES])


def with_defaults(rtype: ResourceType, properties: Mapping[str, Any]) -> dict[str, Any]:
    """Properties with schema defaults filled in for those not given."""
    out = dict(properties)
    for name, spec in rtype.properties.items():
        if name not in out and spec.default is not None:
            out[name] = spec.default
    return out


def canonical(kind: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """Desired properties in the form adapters report them, for comparison."""
    rtype = TYPES[kind]
    out = with_defaults(rtype, properties)
    if kind == SECURITY_GROUP.kind:
        out["rules"] = [r for r in canonical_rules(out.get("rules", []))
                        if r not in DEFAULT_EGRESS_RULES]
    if kind in (SERVER.kind, PORT.kind) and isinstance(out.get("security_groups"), list):
        out["security_groups"] = sorted(out["security_groups"], key=str)
    for name, spec in rtype.properties.items():  # a secret whatever it was written with
        if spec.sensitive and out.get(name) is not None:
            out[name] = mark(out[name])
    if kind == secret_kinds.SECRET.kind:
        out = secret_kinds.canonical_secret(out)
    return service_kinds.canonical_service(kind, out)
