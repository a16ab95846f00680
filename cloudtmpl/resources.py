"""Resource type schemas: properties, which update in place, attributes.

Update-versus-replace is data here, not code: as Heat's ``update_allowed``, a
property marked ``update_allowed`` changes in place, any other change replaces.
The provider-agnostic ``Cloud::*`` kinds are the native vocabulary; ``OS::*``
names are aliases onto them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

PropType = Literal["string", "integer", "number", "boolean", "list", "map", "any"]


@dataclass(frozen=True)
class PropertySpec:
    type: PropType
    required: bool = False
    update_allowed: bool = False
    default: Any = None
    description: str = ""


@dataclass(frozen=True)
class ResourceType:
    kind: str
    properties: Mapping[str, PropertySpec]
    attributes: Mapping[str, str]  # name -> description
    ref: str  # what get_resource returns
    tags: bool  # can the cloud hold the cloudtmpl:* tags on this kind?
    description: str = ""
    ready_timeout: float = 600.0  # seconds to wait for a create to become ready
    delete_timeout: float = 600.0
    # Creation layer: a kind may refer to kinds of lower layers only.  Deletes of
    # resources the template no longer has run from the highest layer down, so the
    # order is right even when the old template (and its edges) is gone.
    layer: int = 0
    # Holds user data: never destroyed by a relocation without --allow-relocation.
    data_bearing: bool = False
    # Computed by cloudtmpl itself, no cloud involved (random strings, values).
    local: bool = False
    # Takes any properties (Heat's OS::Heat::None and TestResource ignore theirs).
    open_properties: bool = False
    # Has attributes named by the template (a deployment's declared outputs).
    open_attributes: bool = False
    # What deletion_policy Snapshot does: "snapshot" (a snapshot is taken before the
    # resource is deleted), "retain" (Heat would snapshot it, cloudtmpl cannot yet: kept
    # as with Retain) or "refuse" (Heat refuses it too: a diagnostic).
    on_snapshot: Literal["snapshot", "retain", "refuse"] = "refuse"

    def forces_replacement(self, prop: str) -> bool:
        spec = self.properties.get(prop)
        return spec is None or not spec.update_allowed


@dataclass(frozen=True)
class Alias:
    """A Heat type name mapped onto a native kind, with its property/attribute names."""

    name: str
    kind: str
    properties: Mapping[str, str] = field(default_factory=dict)  # alias name -> native name
    attributes: Mapping[str, str] = field(default_factory=dict)
    # Heat properties accepted and ignored: cloudtmpl names every resource
    # <stack>.<address> (its identity), so Heat's `name` and the like have no effect.
    ignored: frozenset[str] = frozenset()


P = PropertySpec

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
        "networks": "Map of network id -> list of its addresses",
        "private_ip": "The private IP address",
        "public_ip": "The public IP address (an elastic/floating IP once associated)",
        "name": "The server's cloud-side name",
        "status": "The server's status",
    },
    ref="server id",
    tags=True,
    ready_timeout=600.0,
    layer=3,
    on_snapshot="retain",  # Heat saves an image of it; cloudtmpl keeps the server
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
    },
    attributes={"name": "The group's cloud-side name", "id": "The group id"},
    ref="security group id",
    tags=True,
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

RANDOM_STRING = ResourceType(
    kind="Cloud::Random::String",
    description="A random string, generated once and kept; never shown in clear text. It is "
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
    tags=False,
    local=True,
)

VALUE = ResourceType(
    kind="Cloud::Local::Value",
    description="A value computed from other values (Heat's OS::Heat::Value).",
    properties={
        "value": P("any", required=True, update_allowed=True),
        "type": P("string", update_allowed=True),
    },
    attributes={"value": "The value"},
    ref="the resource's name",
    tags=False,
    local=True,
)

NONE = ResourceType(
    kind="Cloud::Local::None",
    description="A placeholder that makes nothing (Heat's OS::Heat::None); any properties.",
    properties={},
    attributes={},
    ref="the resource's name",
    tags=False,
    local=True,
    open_properties=True,
)

TEST_RESOURCE = ResourceType(
    kind="Cloud::Local::Test",
    description="Heat's OS::Heat::TestResource, value only: its 'output' is its 'value'.",
    properties={"value": P("any", update_allowed=True, default="")},
    attributes={"output": "The value"},
    ref="the resource's name",
    tags=False,
    local=True,
    open_properties=True,
)

TYPES: dict[str, ResourceType] = {
    t.kind: t
    for t in (
        SERVER, KEYPAIR, SERVER_GROUP, SECURITY_GROUP, VOLUME, VOLUME_ATTACHMENT,
        FLOATING_IP, NETWORK, SUBNET, PORT, RANDOM_STRING, VALUE, NONE, TEST_RESOURCE,
    )
}

# -- software configuration and deployments (run over SSH from the operator's machine)
#: The SSH connection settings: a deployment's or deployment group's ``ssh`` property, a
#: lifecycle hook's ``ssh``, and the template's top-level ``ssh:`` (the stack's defaults,
#: merged under each of those key by key: the resource's own value wins).
SSH_SETTINGS = ("user", "port", "key_file", "key_pair", "bastion", "timeout", "via")
#: ``ssh.via``: which of the server's addresses to connect to when no ``address`` is given
#: (absent: its floating IP, else its public, else its first address).
SSH_VIA = ("floating", "public", "private")
#: A deployment's properties that only say how to reach the server: a change of these
#: alone is recorded without running the script again (Heat re-runs a deployment when its
#: config or inputs change).
CONNECTION_PROPERTIES = frozenset({"ssh", "address", "addresses"})

_SSH_HELP = ("SSH settings: user (default cloudtmpl), port (22), key_file, or key_pair (a "
             "KeyPair's name: its generated key .cloudtmpl/keys/<name>.pem), bastion "
             "({host, port, user, key_file} or user@host:port), timeout (seconds to wait for "
             "SSH, default 120), via (floating, public or private: which of the server's "
             "addresses to use when no address is given; default floating, else public, else "
             "private). The template's top-level ssh: gives stack-wide defaults for any of "
             "them. A change of only ssh, address or addresses does not re-run the script")

SOFTWARE_CONFIG = ResourceType(
    kind="Cloud::Software::Config",
    description="A script and its declared inputs/outputs (Heat's OS::Heat::SoftwareConfig). "
    "Immutable: a change makes a new config (a new id), which re-runs its deployments.",
    properties={
        "group": P("string", default="script", description="script or ungrouped"),
        "config": P("string", default="", description="The script"),
        "inputs": P("list", default=[], description="[{name, default, description, type}]"),
        "outputs": P("list", default=[], description="[{name, description}]"),
        "options": P("map", default={}),
    },
    attributes={"config": "The script"},
    ref="the config id (derived from its content)",
    tags=False,
    local=True,
)

STRUCTURED_CONFIG = ResourceType(
    kind="Cloud::Software::StructuredConfig",
    description="A structured (map) config (Heat's OS::Heat::StructuredConfig): a deployment "
    "writes it, {get_input: NAME} substituted, as JSON to $heat_config_path; its 'run' key, "
    "if any, is the script run then.",
    properties={
        "group": P("string", default="script"),
        "config": P("map", default={}),
        "inputs": P("list", default=[]),
        "outputs": P("list", default=[]),
        "options": P("map", default={}),
    },
    attributes={"config": "The structured config"},
    ref="the config id (derived from its content)",
    tags=False,
    local=True,
)

CLOUD_CONFIG = ResourceType(
    kind="Cloud::Software::CloudConfig",
    description="cloud-init #cloud-config user data (Heat's OS::Heat::CloudConfig); "
    "get_resource gives the rendered text, ready for a server's user_data.",
    properties={"cloud_config": P("map", default={}, update_allowed=True)},
    attributes={"config": "The rendered user data"},
    ref="the rendered user data",
    tags=False,
    local=True,
)

MULTIPART_MIME = ResourceType(
    kind="Cloud::Software::MultipartMime",
    description="Several configs as one multipart MIME user data (Heat's "
    "OS::Heat::MultipartMime); get_resource gives the rendered text.",
    properties={
        "parts": P("list", default=[], update_allowed=True,
                   description="[{config: text or config id, filename, type: text|multipart, "
                   "subtype: cloud-config|x-shellscript|...}]"),
    },
    attributes={"config": "The rendered user data"},
    ref="the rendered user data",
    tags=False,
    local=True,
)

_DEPLOY_PROPS = {
    "config": P("string", update_allowed=True,
                description="A script, or a Software/StructuredConfig id (get_resource)"),
    "config_files": P("map", default={}, update_allowed=True,
                      description="Files to write on the server first: path -> content"),
    "inputs": P("map", default={}, update_allowed=True,
                description="name -> value, given to the script as environment variables"),
    "outputs": P("list", default=[], update_allowed=True,
                 description="Output names (or [{name}]) read from $heat_outputs_path.<name>"),
    "actions": P("list", default=["CREATE", "UPDATE"], update_allowed=True,
                 description="When to run: CREATE, UPDATE, DELETE"),
    "ssh": P("map", default={}, update_allowed=True, description=_SSH_HELP),
}

DEPLOYMENT = ResourceType(
    kind="Cloud::Software::Deployment",
    description="Runs a script on a server over SSH from the operator's machine (Heat's "
    "OS::Heat::SoftwareDeployment without an agent); re-runs when the config, inputs or "
    "files change.",
    properties={
        "server": P("string", description="Server id (get_resource); the address is "
                    "resolved from the stack's floating IPs/server if 'address' is not given"),
        "address": P("string", update_allowed=True,
                     description="Address to SSH to (get_attr of a floating IP or server)"),
        **_DEPLOY_PROPS,
    },
    attributes={
        "deploy_stdout": "The script's standard output",
        "deploy_stderr": "The script's standard error",
        "deploy_status_code": "The script's exit status",
        "outputs": "Map of output name -> value ({get_attr: [d, outputs, NAME]})",
        "result": "The output named 'result' (Heat's conventional name)",
        "host_key": "The server's SSH host key fingerprint (pinned after the first run)",
        "host": "address:port it ran on",
    },
    ref="the deployment's name",
    tags=False,
    local=True,
    layer=5,
    ready_timeout=3600.0,
    delete_timeout=3600.0,
    open_attributes=True,
)

DEPLOYMENT_GROUP = ResourceType(
    kind="Cloud::Software::DeploymentGroup",
    description="One config deployed to several servers at once (Heat's "
    "OS::Heat::SoftwareDeploymentGroup).",
    properties={
        "servers": P("map", required=True, update_allowed=True,
                     description="name -> server id"),
        "addresses": P("map", default={}, update_allowed=True,
                       description="name -> address (else resolved per server)"),
        **_DEPLOY_PROPS,
    },
    attributes={
        "deploy_stdouts": "name -> standard output",
        "deploy_stderrs": "name -> standard error",
        "deploy_status_codes": "name -> exit status",
        "outputs": "output name -> (server name -> value)",
        "host_keys": "name -> host key fingerprint",
    },
    ref="the group's name",
    tags=False,
    local=True,
    layer=5,
    ready_timeout=3600.0,
    delete_timeout=3600.0,
)

TYPES.update({t.kind: t for t in (SOFTWARE_CONFIG, STRUCTURED_CONFIG, CLOUD_CONFIG,
                                  MULTIPART_MIME, DEPLOYMENT, DEPLOYMENT_GROUP)})
DEPLOY_KINDS = frozenset({DEPLOYMENT.kind, DEPLOYMENT_GROUP.kind})


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
                                 "user_data_format", "software_config_transport"}),
              attributes={"addresses": "networks"}),
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
    )
}

_DEPLOY_IGNORED = frozenset({"name", "signal_transport", "input_key",
                             "input_values_validate"})
ALIASES.update({
    a.name: a
    for a in (
        Alias("OS::Heat::SoftwareConfig", SOFTWARE_CONFIG.kind),
        Alias("OS::Heat::StructuredConfig", STRUCTURED_CONFIG.kind),
        Alias("OS::Heat::CloudConfig", CLOUD_CONFIG.kind),
        Alias("OS::Heat::MultipartMime", MULTIPART_MIME.kind, ignored=frozenset({"group"})),
        Alias("OS::Heat::SoftwareDeployment", DEPLOYMENT.kind,
              properties={"input_values": "inputs"}, ignored=_DEPLOY_IGNORED),
        Alias("OS::Heat::StructuredDeployment", DEPLOYMENT.kind,
              properties={"input_values": "inputs"}, ignored=_DEPLOY_IGNORED),
        Alias("OS::Heat::SoftwareDeploymentGroup", DEPLOYMENT_GROUP.kind,
              properties={"input_values": "inputs"}, ignored=_DEPLOY_IGNORED),
        Alias("OS::Heat::StructuredDeploymentGroup", DEPLOYMENT_GROUP.kind,
              properties={"input_values": "inputs"}, ignored=_DEPLOY_IGNORED),
    )
})


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


_RULE_DEFAULTS: dict[str, Any] = {
    "direction": "ingress",
    "ethertype": "IPv4",
    "protocol": "tcp",
    "port_range_min": None,
    "port_range_max": None,
    "remote_ip_prefix": None,
    "remote_group_id": None,
}


def canonical_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A security-group rule in one comparable shape (Heat's names).

    A rule names either a remote address range (``remote_ip_prefix``, default:
    everything of its ethertype) or a remote security group (``remote_group_id``).
    Heat's ``remote_mode`` is implied by which of the two is given.
    """
    out = {k: rule.get(k, v) for k, v in _RULE_DEFAULTS.items()}
    if out["remote_group_id"] is not None:
        out["remote_ip_prefix"] = None
    elif out["remote_ip_prefix"] is None:
        out["remote_ip_prefix"] = "::/0" if out["ethertype"] == "IPv6" else "0.0.0.0/0"
    proto = out["protocol"]
    out["protocol"] = "-1" if proto in (None, "any", "all", "-1", -1) else str(proto).lower()
    if out["protocol"] == "-1":
        out["port_range_min"] = out["port_range_max"] = None
    else:
        lo, hi = out["port_range_min"], out["port_range_max"]
        if lo is None and hi is None and out["protocol"] in ("tcp", "udp"):
            lo, hi = 1, 65535
        if lo is None and hi is None:
            lo = hi = -1  # icmp: all types
        lo = int(lo) if lo is not None else int(hi)
        hi = int(hi) if hi is not None else lo
        out["port_range_min"], out["port_range_max"] = lo, hi
    return out


# Clouds give every new security group these rules (EC2 the IPv4 one, Neutron
# both); adapters do not report them and desired rules drop them, so they never
# show up as a difference.
DEFAULT_EGRESS = canonical_rule({"direction": "egress", "protocol": "-1"})
DEFAULT_EGRESS_RULES = (
    DEFAULT_EGRESS,
    canonical_rule({"direction": "egress", "protocol": "-1", "ethertype": "IPv6"}),
)


def canonical_rules(rules: Any) -> list[dict[str, Any]]:
    if not isinstance(rules, list):
        return []
    return sorted((canonical_rule(r) for r in rules if isinstance(r, Mapping)),
                  key=lambda r: sorted((k, str(v)) for k, v in r.items()))


def canonical(kind: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """Desired properties in the form adapters report them, for comparison."""
    rtype = TYPES[kind]
    out = with_defaults(rtype, properties)
    if kind == SECURITY_GROUP.kind:
        out["rules"] = [r for r in canonical_rules(out.get("rules", []))
                        if r not in DEFAULT_EGRESS_RULES]
    if kind in (SERVER.kind, PORT.kind) and isinstance(out.get("security_groups"), list):
        out["security_groups"] = sorted(out["security_groups"], key=str)
    if kind in _SERVICE_KINDS:
        out = _canonical_services(kind, out)
    return out


# -- DNS, object storage and load balancers (issue #9 item 3) ----------------
DNS_ZONE = ResourceType(
    kind="Cloud::DNS::Zone",
    description="A DNS zone (AWS Route53 hosted zone).",
    properties={
        "domain": P("string", required=True, description="The zone's domain, e.g. example.com."),
        "ttl": P("integer", default=3600, update_allowed=True,
                 description="Default TTL of the zone's records (recorded with the zone)"),
        "comment": P("string", default="", update_allowed=True, description="A comment"),
        "metadata": P("map", default={}, update_allowed=True,
                      description="Tags (not read back: compared with the last-applied spec)"),
    },
    attributes={
        "domain": "The zone's domain, with its trailing dot",
        "name_servers": "The zone's name servers",
        "id": "The zone id",
    },
    ref="zone id",
    tags=True,  # in the zone's comment
)

DNS_RECORD = ResourceType(
    kind="Cloud::DNS::Record",
    description="A DNS record set in a zone of the same stack; values and TTL change in "
    "place.",
    properties={
        "zone": P("string", required=True, description="Zone id (get_resource of a Zone)"),
        "name": P("string", default="",
                  description="Name relative to the zone ('' or '@': the zone's apex)"),
        "type": P("string", required=True,
                  description="A, AAAA, CNAME, TXT, MX, NS, PTR, SRV, SPF or CAA"),
        "ttl": P("integer", default=300, update_allowed=True),
        "records": P("list", required=True, update_allowed=True,
                     description="The values (TXT values without their quotes)"),
    },
    attributes={"fqdn": "The record's full name", "records": "The values"},
    ref="zone id:type:full name",
    tags=True,  # an ownership TXT record written in the same change batch
    layer=1,
)

BUCKET = ResourceType(
    kind="Cloud::Storage::Bucket",
    description="An object storage bucket (S3 bucket, Swift container). A non-empty bucket "
    "is deleted only when the template says force: true (and deletion_policy Delete).",
    properties={
        "name_suffix": P("string",
                         description="Appended to the deterministic name (bucket names are "
                         "global on AWS)"),
        "versioning": P("boolean", default=False, update_allowed=True),
        "metadata": P("map", default={}, update_allowed=True,
                      description="Tags (S3) / container metadata (Swift)"),
        "force": P("boolean", default=False, update_allowed=True,
                   description="Delete the objects with the bucket (else a non-empty bucket "
                   "is never deleted)"),
    },
    attributes={
        "name": "The bucket's cloud-side name",
        "url": "The bucket's URL",
        "domain_name": "The endpoint's host name",
        "region": "The bucket's region",
    },
    ref="bucket name",
    tags=True,
    data_bearing=True,
)

LOAD_BALANCER = ResourceType(
    kind="Cloud::LB::LoadBalancer",
    description="A load balancer (AWS classic ELB) in front of servers; listeners, members "
    "and the health check change in place.",
    properties={
        "listeners": P("list", required=True, update_allowed=True,
                       description="[{protocol: HTTP|HTTPS|TCP|SSL, port, instance_port, "
                       "instance_protocol}]"),
        "members": P("list", default=[], update_allowed=True,
                     description="Server ids (e.g. {get_attr: [group, refs]})"),
        "health_check": P("map", update_allowed=True,
                          description="{target: 'HTTP:80/', interval, timeout, "
                          "healthy_threshold, unhealthy_threshold}"),
        "availability_zones": P("list", description="Zones (default: the region's first)"),
        "metadata": P("map", default={}, update_allowed=True),
    },
    attributes={
        "dns_name": "The load balancer's DNS name",
        "name": "Cloud-side name",
        "members": "The registered server ids",
    },
    ref="load balancer name",
    tags=True,
    layer=4,
)

TYPES.update({t.kind: t for t in (DNS_ZONE, DNS_RECORD, BUCKET, LOAD_BALANCER)})
ALIASES.update({
    a.name: a
    for a in (
        Alias("OS::Designate::Zone", DNS_ZONE.kind,
              properties={"name": "domain", "description": "comment"},
              ignored=frozenset({"email", "masters", "type", "primaries"})),
        Alias("OS::Designate::RecordSet", DNS_RECORD.kind,
              ignored=frozenset({"description"})),
        Alias("OS::Swift::Container", BUCKET.kind,
              properties={"PurgeOnDelete": "force", "X-Container-Meta": "metadata"},
              attributes={"RootURL": "url", "DomainName": "domain_name"},
              ignored=frozenset({"name", "X-Account-Meta", "X-Container-Read",
                                 "X-Container-Write"})),
    )
})


def _canonical_listener(raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        return raw
    out = dict(raw)
    proto = str(out.get("protocol") or "HTTP").upper()
    out["protocol"] = proto
    out["instance_protocol"] = str(out.get("instance_protocol") or proto).upper()
    for key in ("port", "instance_port"):
        value = out.get(key)
        if isinstance(value, str) and value.isdigit():
            out[key] = int(value)
    if out.get("instance_port") is None:
        out["instance_port"] = out.get("port")
    return out


_HEALTH_DEFAULTS = {"interval": 30, "timeout": 5, "healthy_threshold": 10,
                    "unhealthy_threshold": 2}


def _canonical_services(kind: str, out: dict[str, Any]) -> dict[str, Any]:
    """The service kinds' values in the form adapters report them (sets sorted)."""
    if kind == DNS_ZONE.kind and isinstance(out.get("domain"), str):
        out["domain"] = out["domain"].lower().rstrip(".") + "."
    elif kind == DNS_RECORD.kind:
        if isinstance(out.get("type"), str):
            out["type"] = out["type"].upper()
        if out.get("name") in ("@", None):
            out["name"] = ""
        records = out.get("records")
        if isinstance(records, list) and all(isinstance(v, (str, int)) for v in records):
            out["records"] = sorted(str(v) for v in records)
    elif kind == LOAD_BALANCER.kind:
        if isinstance(out.get("listeners"), list):
            out["listeners"] = sorted((_canonical_listener(x) for x in out["listeners"]),
                                      key=_json_key)
        members = out.get("members")
        if isinstance(members, list) and all(isinstance(m, str) for m in members):
            out["members"] = sorted(members)
        health = out.get("health_check")
        if isinstance(health, Mapping) and health.get("target"):
            # the cloud's defaults for what the template leaves out (AWS classic ELB)
            out["health_check"] = {**_HEALTH_DEFAULTS, **health}
    return out


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# kinds whose list properties are sets (reported sorted by the adapters)
_SERVICE_KINDS = frozenset({DNS_ZONE.kind, DNS_RECORD.kind, LOAD_BALANCER.kind})
