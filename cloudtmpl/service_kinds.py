"""The service kinds: DNS zones and records, object storage buckets, load balancers;
and their values in the form adapters report them (sets sorted, the cloud's defaults
filled in).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cloudtmpl.resource_spec import Alias, P, ResourceType

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
        "url": "The bucket's URL (Swift's WebsiteURL: the account URL and the container)",
        "root_url": "The URL the bucket is under (Swift's RootURL: the account URL; S3: "
                    "the endpoint)",
        "domain_name": "The endpoint's host name",
        "region": "The bucket's region",
        "object_count": "How many objects it holds (Swift: X-Container-Object-Count)",
        "bytes_used": "The bytes its objects take (Swift: X-Container-Bytes-Used)",
    },
    ref="bucket name",
    tags=True,
    data_bearing=True,
)

LOAD_BALANCER = ResourceType(
    kind="Cloud::LB::LoadBalancer",
    description="A load balancer in front of servers (AWS: a classic ELB; OpenStack: an "
    "Octavia load balancer with a listener, pool and health monitor per listener entry, "
    "its members the servers); listeners, members and the health check change in place.",
    properties={
        "listeners": P("list", default=[], update_allowed=True,
                       description="[{protocol: HTTP|HTTPS|TCP|SSL, port, instance_port, "
                       "instance_protocol}] (AWS needs at least one; OpenStack: none when "
                       "OS::Octavia::Listener resources add them)"),
        "members": P("list", default=[], update_allowed=True,
                     description="Server ids (e.g. {get_attr: [group, refs]})"),
        "health_check": P("map", update_allowed=True,
                          description="{target: 'HTTP:80/', interval, timeout, "
                          "healthy_threshold, unhealthy_threshold}"),
        "availability_zones": P("list", description="Zones (AWS; default: the region's "
                                "first)"),
        "subnet": P("string", description="The subnet of the balancer (OpenStack: of its "
                    "VIP, default the first member's subnet; AWS: a VPC subnet, default "
                    "the region's zones outside any VPC of the template)"),
        "metadata": P("map", default={}, update_allowed=True),
    },
    attributes={
        "dns_name": "The load balancer's DNS name (OpenStack: its VIP address)",
        "name": "Cloud-side name",
        "members": "The registered server ids",
        "vip_address": "OpenStack: the VIP address",
        "vip_port_id": "OpenStack: the VIP's port (for a floating IP)",
    },
    ref="load balancer name (OpenStack: its id)",
    tags=True,
    layer=4,
)

#: Octavia's protocols of a listener, and of a pool.
LISTENER_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "UDP", "TERMINATED_HTTPS", "SCTP", "PROMETHEUS")
POOL_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "UDP", "PROXY", "PROXYV2", "SCTP")

LISTENER = ResourceType(
    kind="Cloud::LB::Listener",
    description="An Octavia listener: a protocol and port of a load balancer "
    "(OpenStack only).",
    properties={
        "loadbalancer": P("string", required=True, description="Load balancer id"),
        "protocol": P("string", required=True,
                      description="One of " + ", ".join(LISTENER_PROTOCOLS)),
        "protocol_port": P("integer", required=True, description="The port it listens on"),
        "default_pool": P("string", update_allowed=True, description="Pool id"),
        "connection_limit": P("integer", default=-1, update_allowed=True),
        "admin_state_up": P("boolean", default=True, update_allowed=True),
    },
    attributes={"name": "Cloud-side name", "id": "Listener id",
                "provisioning_status": "Octavia's provisioning status"},
    ref="listener id",
    tags=True,
    layer=5,
)

POOL = ResourceType(
    kind="Cloud::LB::Pool",
    description="An Octavia pool of members behind a listener (OpenStack only).",
    properties={
        "listener": P("string", description="Listener id (this or loadbalancer)"),
        "loadbalancer": P("string", description="Load balancer id (this or listener)"),
        "protocol": P("string", required=True,
                      description="One of " + ", ".join(POOL_PROTOCOLS)),
        "lb_algorithm": P("string", required=True, update_allowed=True,
                          description="ROUND_ROBIN, LEAST_CONNECTIONS, SOURCE_IP or "
                          "SOURCE_IP_PORT"),
        "admin_state_up": P("boolean", default=True, update_allowed=True),
    },
    attributes={"name": "Cloud-side name", "id": "Pool id",
                "provisioning_status": "Octavia's provisioning status"},
    ref="pool id",
    tags=True,
    layer=6,
)

POOL_MEMBER = ResourceType(
    kind="Cloud::LB::PoolMember",
    description="A member of an Octavia pool: an address and port (OpenStack only).",
    properties={
        "pool": P("string", required=True, description="Pool id"),
        "address": P("string", required=True, description="The member's IP address"),
        "protocol_port": P("integer", required=True, description="The member's port"),
        "subnet": P("string", description="Subnet the address is on"),
        "weight": P("integer", default=1, update_allowed=True),
        "admin_state_up": P("boolean", default=True, update_allowed=True),
    },
    attributes={"id": "Member id", "address": "The member's address",
                "operating_status": "Octavia's view of its health"},
    ref="member id",
    tags=True,
    layer=7,
)

HEALTH_MONITOR = ResourceType(
    kind="Cloud::LB::HealthMonitor",
    description="An Octavia health monitor of a pool (OpenStack only).",
    properties={
        "pool": P("string", required=True, description="Pool id"),
        "type": P("string", required=True,
                  description="HTTP, HTTPS, PING, TCP, TLS-HELLO or UDP-CONNECT"),
        "delay": P("integer", required=True, update_allowed=True,
                   description="Seconds between checks"),
        "timeout": P("integer", required=True, update_allowed=True,
                     description="Seconds a check may take (at most delay)"),
        "max_retries": P("integer", required=True, update_allowed=True,
                         description="Successes to go ONLINE (1-10)"),
        "max_retries_down": P("integer", default=3, update_allowed=True,
                              description="Failures to go ERROR (1-10)"),
        "url_path": P("string", default="/", update_allowed=True),
        "http_method": P("string", default="GET", update_allowed=True),
        "expected_codes": P("string", default="200", update_allowed=True),
        "admin_state_up": P("boolean", default=True, update_allowed=True),
    },
    attributes={"id": "Health monitor id"},
    ref="health monitor id",
    tags=True,
    layer=7,
)

OCTAVIA_KINDS = (LISTENER, POOL, POOL_MEMBER, HEALTH_MONITOR)

KINDS = (DNS_ZONE, DNS_RECORD, BUCKET, LOAD_BALANCER, *OCTAVIA_KINDS)
ALIASES = (
    Alias("OS::Designate::Zone", DNS_ZONE.kind,
          properties={"name": "domain", "description": "comment"},
          ignored=frozenset({"email", "masters", "type", "primaries"})),
    Alias("OS::Designate::RecordSet", DNS_RECORD.kind,
          ignored=frozenset({"description"})),
    # Designate's v1 names (Heat keeps them, deprecated): a domain is a zone, a record
    # one value of a record set (an MX or SRV record's priority: write it in data)
    Alias("OS::Designate::Domain", DNS_ZONE.kind,
          properties={"name": "domain", "description": "comment"},
          ignored=frozenset({"email"})),
    Alias("OS::Designate::Record", DNS_RECORD.kind,
          properties={"domain": "zone", "data": "records"},
          ignored=frozenset({"description"}), one_of_list=frozenset({"data"})),
    Alias("OS::Swift::Container", BUCKET.kind,
          properties={"PurgeOnDelete": "force", "X-Container-Meta": "metadata"},
          attributes={"WebsiteURL": "url", "RootURL": "root_url",
                      "DomainName": "domain_name", "ObjectCount": "object_count",
                      "BytesUsed": "bytes_used"},
          ignored=frozenset({"name", "X-Account-Meta", "X-Container-Read",
                             "X-Container-Write"})),
    Alias("OS::Octavia::LoadBalancer", LOAD_BALANCER.kind,
          properties={"vip_subnet": "subnet"},
          ignored=frozenset({"name", "description", "provider", "flavor", "vip_address",
                             "admin_state_up", "tenant_id", "availability_zone"})),
    Alias("OS::Octavia::Listener", LISTENER.kind,
          ignored=frozenset({"name", "description", "sni_container_refs",
                             "default_tls_container_ref", "tenant_id", "allowed_cidrs"})),
    Alias("OS::Octavia::Pool", POOL.kind,
          ignored=frozenset({"name", "description", "session_persistence", "tenant_id",
                             "tls_enabled"})),
    Alias("OS::Octavia::PoolMember", POOL_MEMBER.kind,
          ignored=frozenset({"tenant_id", "monitor_address", "monitor_port"})),
    Alias("OS::Octavia::HealthMonitor", HEALTH_MONITOR.kind,
          ignored=frozenset({"tenant_id"})),
)


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


def canonical_service(kind: str, out: dict[str, Any]) -> dict[str, Any]:
    """A service kind's values in the form adapters report them (sets sorted); any
    other kind's as they are."""
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

