"""AWS (and EC2-compatible clouds, and the AWS sandbox) through libcloud's EC2 driver.

The adapter implements :class:`cloudtmpl.providers.base.Adapter` for nine kinds:

* ``Cloud::Compute::Server`` - an instance; physical id: the instance id;
* ``Cloud::Compute::KeyPair`` - a key pair; physical id: the key pair name;
* ``Cloud::Network::SecurityGroup`` - a VPC security group; physical id: group id;
* ``Cloud::Block::Volume`` - an EBS volume; physical id: the volume id;
* ``Cloud::Block::VolumeAttachment`` - no cloud object, tags on the volume;
  physical id: ``"{volume_id}:{instance_id}"``;
* ``Cloud::Network::FloatingIP`` - a VPC elastic IP; physical id: the allocation id;
  on a ``server`` (AssociateAddress InstanceId) or a ``port`` (NetworkInterfaceId),
  not both; ``floating_network`` has no AWS meaning (one pool) and is not reported;
* ``Cloud::Network::Network`` - a VPC (``cidr``); ``admin_state_up`` is always True
  (false is refused: a VPC cannot be down);
* ``Cloud::Network::Subnet`` - a VPC subnet (IPv4 only; zone default ``{region}a``).
  ``enable_dhcp``/``gateway_ip``/``dns_nameservers`` mean nothing per EC2 subnet: they
  are accepted, not sent and not reported (the plan compares them with the
  last-applied spec); attribute ``gateway_ip`` is the first usable address (EC2's router);
* ``Cloud::Network::Port`` - an elastic network interface.  ``fixed_ips`` takes at
  most one entry ``{subnet, ip_address}`` (the subnet default: the network's first
  subnet by id in ``{region}a``, or the one holding ``ip_address``); a subnet of
  another network is refused (the interface is deleted again).  ``security_groups``
  change in place (ModifyNetworkInterfaceAttribute; none = the VPC's default group).

Servers take Heat's ``networks``: ``[]`` launches as before (libcloud, default VPC);
otherwise one raw ``RunInstances`` (libcloud cannot launch on an existing interface
nor set a private address) with one ``NetworkInterface.N`` per entry, device index =
position, all at launch: ``{port}`` (the port as is; the server may then name no
security groups: they come from the port, as in Heat), ``{subnet}``, ``{network}``
(its first subnet in the server's zone, or the one holding ``fixed_ip``), optional
``fixed_ip``.  Interfaces made for the server are deleted with it; ports are not.

``cloudtmpl:shape`` records which keys a server's ``networks`` / a port's
``fixed_ips`` entries used (``port;subnet+fixed_ip``); discovery reports those
properties with the live values under exactly those keys, so a re-plan compares
like with like (without the tag they are not reported).  A VPC's ``default`` group
alone is reported as "no groups" (what EC2 gives an interface given none).

Security-group rules: ``ethertype: IPv6`` → ``Ipv6Ranges`` (default ``::/0``);
``remote_group_id`` → ``UserIdGroupPairs``.  An EC2 group rule covers both address
families, so ``IPv6`` together with ``remote_group_id`` is refused.

Identity: every object gets the deterministic ``name`` (the
``Name`` tag; the key pair / group name) and the tags ``cloudtmpl:stack``,
``cloudtmpl:resource`` and ``cloudtmpl:spec``.  They are written *in the create
call itself* (``TagSpecification``) so no untagged object ever exists:

* instances: ``RunInstances`` through libcloud's ``create_node(ex_metadata=…)``;
* volumes, security groups, elastic IPs, key pairs, VPCs, subnets and interfaces
  (and servers on ``networks``): the raw ``CreateVolume``, ``CreateSecurityGroup``,
  ``AllocateAddress``, ``ImportKeyPair``, ``CreateVpc``, ``CreateSubnet``,
  ``CreateNetworkInterface`` (``RunInstances``) actions sent through the driver's own
  signed connection with ``TagSpecification.1.*`` (libcloud itself tags these in a
  second call, or not at all).

Where a create needs follow-up calls (security-group rules, elastic-IP
association) the object is created with its stack/resource tags but *without*
``cloudtmpl:spec``; the spec tag is written only once the object matches the
spec.  A crash in between therefore leaves an adoptable object whose missing
hash makes the next plan converge it, never a "no-op" on a half-built object.

Volume attachments have no cloud object: the volume carries
``cloudtmpl:attachment`` (the attachment's address) and
``cloudtmpl:attachment-spec``.  The tags are written *before* ``AttachVolume``,
so an attachment never exists without its record; a record without an
attachment (crash between the two calls) is simply not reported.

deletion_policy Snapshot (:meth:`AwsAdapter.snapshot_volume`): ``CreateSnapshot``
with ``TagSpecification`` (``Name`` ``<stack>.<address>@<volume id>``,
``cloudtmpl:stack``/``resource``/``snapshot-of``; no ``cloudtmpl:spec``, and
discovery lists no snapshots: they are never resources of the stack), waited on until
``completed``, then the volume is deleted.  CreateSnapshot has no idempotency
token: a pending or completed snapshot of the volume by the stack is looked up
first and reused (an ambiguous failure retried, a run killed before the delete).

Residual risks (documented, not fixable from here):

* ``AllocateAddress``, ``CreateVpc``, ``CreateSubnet``, ``CreateSecurityGroup`` and
  ``ImportKeyPair`` have no idempotency token.  If such a call fails ambiguously
  (connection reset, 5xx) and is retried, the adapter first looks for an object with
  this stack's resource tag (elastic IP, VPC, subnet, interface) or the deterministic
  name (group, key pair, whose names are unique) and adopts it instead of creating a
  second one.
* Security groups are made in the default VPC (the kind has no network property):
  a port or server in a new VPC needs group ids of that VPC from elsewhere.
* A VPC gets no internet gateway: on AWS an elastic IP on an interface of a new VPC
  needs one (``Gateway.NotAttached`` otherwise, passed through); there is no router kind.
* Deletes wait while the cloud says "in use": VPCs, subnets and groups while
  ``DependencyViolation``, interfaces while ``InvalidNetworkInterface.InUse`` (a
  secondary attachment is detached first; a primary one goes with its server).
* ``RunInstances``/``CreateVolume`` are retried with the same ``ClientToken``
  (AWS then returns the first object).  moto ignores ``ClientToken``.
* Attachments are discovered from the volumes of the same stack only.
* EC2 requires a group description: when the template gives none the group's
  name is sent, and reported back as the empty description.

Discovery sends one listing per API and region (DescribeInstances,
DescribeVolumes, DescribeSecurityGroups, DescribeKeyPairs, DescribeAddresses,
DescribeVpcs, DescribeSubnets, DescribeNetworkInterfaces — only those ``kinds``
need), filtered server side by ``tag:cloudtmpl:stack``
(key pairs: by the name prefix ``"{stack}."``), following every ``NextToken``.

Credentials: botocore's chain (:mod:`cloudtmpl.providers.aws_credentials`); a
thread's driver is rebuilt when refreshed temporary credentials replace the ones it
signs with.  Endpoints per service: the target's ``endpoint:``, else the
``AWS_ENDPOINT_URL*`` variables and the profile (:mod:`cloudtmpl.settings.aws`).

Threads: libcloud drivers and their connections are not thread-safe, so each
thread gets its own driver per region (``threading.local``).  Every HTTP request
goes through one counting wrapper (:meth:`AwsAdapter.request_count`) and every
cloud call through :class:`cloudtmpl.providers.retry.Retrier`.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

# Imported here, not inside functions: importing in worker threads can deadlock
# on Python's module locks while other threads import the same modules.
from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.drivers.ec2 import EC2NetworkSubnet, EC2NodeLocation, ExEC2AvailabilityZone
from libcloud.compute.providers import get_driver
from libcloud.compute.types import Provider

from cloudtmpl.config import ImageFilter, newest_image
from cloudtmpl.model import (
    TAG_RESOURCE,
    TAG_SNAPSHOT_OF,
    TAG_SPEC,
    TAG_STACK,
    LiveResource,
    Placement,
    Target,
    address_from_name,
    physical_name,
    snapshot_name,
)
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws_credentials import AwsCredentials, Credentials  # botocore's chain
from cloudtmpl.providers.aws_services import (  # DNS, S3, ELB
    SERVICE_KINDS,
    AwsServices,
    reserved_tag,
)
from cloudtmpl.providers.base import (
    ATTACHMENT,
    FLOATING_IP,
    KEYPAIR,
    NETWORK,
    PORT,
    SECURITY_GROUP,
    SERVER,
    SUBNET,
    VOLUME,
    Choice,
    CloudError,
    poll,
)
from cloudtmpl.providers.retry import (
    DEFAULT_POLICY,
    SANDBOX_POLICY,
    Retrier,
    RetryPolicy,
    classify,
    error_codes,
    http_status,
    limiter_for,
)
from cloudtmpl.resources import (
    DEFAULT_EGRESS,
    DEFAULT_EGRESS_RULES,
    canonical_rule,
    canonical_rules,
)
from cloudtmpl.settings import aws as aws_settings

T = TypeVar("T")


TAG_ATTACHMENT = "cloudtmpl:attachment"
TAG_ATTACHMENT_SPEC = "cloudtmpl:attachment-spec"
# Which keys a list property of the template used (server networks, port
# fixed_ips), so discovery can report the live values in the template's shape.
TAG_SHAPE = "cloudtmpl:shape"
TAG_NAME = "Name"

# States in which an object is gone (or going) for discovery's purposes.
_GONE_INSTANCE_STATES = frozenset({"shutting-down", "terminated"})
_LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
_GONE_VOLUME_STATES = frozenset({"deleting", "deleted"})
_LIVE_ATTACHMENT_STATES = frozenset({"attaching", "attached", "busy"})

_PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp", "1": "icmp"}

_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"  # libcloud's EC2 API namespace


def _ns(path: str) -> str:
    return "/".join(f"{{{_NS}}}{part}" for part in path.split("/"))


def _text(el: ET.Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(_ns(path))
    if found is None or found.text is None:
        return None
    text = found.text.strip()
    return text or None


def _items(el: ET.Element | None, path: str) -> list[ET.Element]:
    return [] if el is None else el.findall(_ns(path))


def _tags_of(el: ET.Element | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in _items(el, "tagSet/item"):
        key = _text(item, "key")
        if key is not None:
            out[key] = _text(item, "value") or ""
    return out


def _user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k != TAG_NAME and not k.startswith("cloudtmpl:")}


def _has_code(err: BaseException, *codes: str) -> bool:
    found = error_codes(err)
    return any(c in found for c in codes)


def _tag_spec(resource_type: str, tags: Mapping[str, str]) -> dict[str, str]:
    params = {"TagSpecification.1.ResourceType": resource_type}
    for i, (key, value) in enumerate(tags.items(), 1):
        params[f"TagSpecification.1.Tag.{i}.Key"] = key
        params[f"TagSpecification.1.Tag.{i}.Value"] = value
    return params


def _filters(filters: Mapping[str, str | Iterable[str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for i, (name, values) in enumerate(filters.items(), 1):
        params[f"Filter.{i}.Name"] = name
        vals = [values] if isinstance(values, str) else list(values)
        for j, value in enumerate(vals, 1):
            params[f"Filter.{i}.Value.{j}"] = value
    return params


def _metadata(properties: Mapping[str, Any]) -> dict[str, str]:
    return kit.metadata(properties, reserved_tag)


def _identity_tags(name: str, stack: str, address: str, spec_hash: str | None) -> dict[str, str]:
    tags = {TAG_NAME: name, TAG_STACK: stack, TAG_RESOURCE: address}
    if spec_hash is not None:
        tags[TAG_SPEC] = spec_hash
    return tags


def _rule_from_permission(direction: str, perm: ET.Element) -> list[dict[str, Any]]:
    proto = (_text(perm, "ipProtocol") or "-1").lower()
    proto = _PROTOCOL_NUMBERS.get(proto, proto)
    lo = _text(perm, "fromPort")
    hi = _text(perm, "toPort")
    remotes: list[dict[str, Any]] = [
        {"remote_ip_prefix": _text(i, "cidrIp")} for i in _items(perm, "ipRanges/item")]
    remotes += [{"ethertype": "IPv6", "remote_ip_prefix": _text(i, "cidrIpv6")}
                for i in _items(perm, "ipv6Ranges/item")]
    remotes += [{"remote_group_id": _text(i, "groupId")} for i in _items(perm, "groups/item")]
    return [canonical_rule({
        "direction": direction,
        "protocol": proto,
        "port_range_min": int(lo) if lo is not None else None,
        "port_range_max": int(hi) if hi is not None else None,
        **remote,
    }) for remote in remotes if any(remote.values())]


def _is_default_egress(rule: Mapping[str, Any]) -> bool:
    return rule in DEFAULT_EGRESS_RULES


def _has_default_egress(group: ET.Element) -> bool:
    return any(r == DEFAULT_EGRESS
               for perm in _items(group, "ipPermissionsEgress/item")
               for r in _rule_from_permission("egress", perm))


def _check_rules(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        if rule["remote_group_id"] is not None and rule["ethertype"] == "IPv6":
            raise CloudError(
                f"rule {rule}: an EC2 rule naming a remote group covers IPv4 and IPv6 at "
                "once; write it once, without ethertype: IPv6", permanent=True)


def _permission_params(rules: list[dict[str, Any]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for n, rule in enumerate(rules, 1):
        prefix = f"IpPermissions.{n}."
        params[prefix + "IpProtocol"] = str(rule["protocol"])
        if rule["protocol"] != "-1":
            params[prefix + "FromPort"] = str(rule["port_range_min"])
            params[prefix + "ToPort"] = str(rule["port_range_max"])
        if rule["remote_group_id"] is not None:
            params[prefix + "Groups.1.GroupId"] = str(rule["remote_group_id"])
        elif rule["ethertype"] == "IPv6":
            params[prefix + "Ipv6Ranges.1.CidrIpv6"] = str(rule["remote_ip_prefix"])
        else:
            params[prefix + "IpRanges.1.CidrIp"] = str(rule["remote_ip_prefix"])
    return params


def _rule_key(rule: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in rule.items()))


def _entries(value: Any, allowed: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """A list-of-maps property (server networks, port fixed_ips), checked and as strings."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
        raise CloudError(f"{what} must be a list of maps", permanent=True)
    out = []
    for entry in value:
        clean = {str(k): str(v) for k, v in entry.items() if v is not None}
        unknown = sorted(set(clean) - set(allowed))
        if unknown or not clean:
            raise CloudError(f"{what} entry {dict(entry)!r}: the aws provider takes "
                             f"{', '.join(allowed)} (at least one)"
                             + (f", not {', '.join(unknown)}" if unknown else ""),
                             permanent=True)
        out.append(clean)
    return out


def _shape(entries: list[dict[str, str]]) -> str:
    """The ``cloudtmpl:shape`` tag value: each entry's keys (``a+b``), entries ``;``-joined."""
    return ";".join("+".join(sorted(e)) for e in entries)


def _unshape(tags: Mapping[str, str | None]) -> list[list[str]] | None:
    """The entries' keys recorded at creation (None: not recorded, shape unknown)."""
    if TAG_SHAPE not in tags:
        return None
    shape = tags.get(TAG_SHAPE) or ""
    return [part.split("+") for part in shape.split(";")] if shape else []


def _own_groups(groups: list[tuple[str, str]]) -> list[str]:
    """Group ids as a template names them: a VPC's ``default`` group alone (what EC2
    gives an interface that was given none) is reported as no group."""
    if len(groups) == 1 and groups[0][1] == "default":
        return []
    return sorted(gid for gid, _ in groups if gid)


@dataclass(frozen=True)
class _RawKind:
    """A kind the adapter reads as raw EC2 XML: how to describe, tag and identify it."""

    describe: str  # the Describe* action
    id_param: str  # its id list parameter (``VpcId`` → ``VpcId.1``)
    items: str  # path of the objects in the Describe* answer
    id_field: str  # the id element of one object
    page: int | None  # MaxResults (None: the action does not paginate)
    missing: tuple[str, ...]  # error codes that mean "no such object"
    tag_type: str  # TagSpecification resource type
    what: str  # for messages
    delete: str  # the action that deletes one (takes ``id_param`` without ``.1``)


_RAW: dict[str, _RawKind] = {
    SECURITY_GROUP: _RawKind("DescribeSecurityGroups", "GroupId", "securityGroupInfo/item",
                             "groupId", 1000, ("InvalidGroup.NotFound", "InvalidGroupId.Malformed",
                                               "InvalidGroupId.NotFound"),
                             "security-group", "security group", "DeleteSecurityGroup"),
    FLOATING_IP: _RawKind("DescribeAddresses", "AllocationId", "addressesSet/item",
                          "allocationId", None, ("InvalidAllocationID.NotFound",
                                                 "InvalidAllocationID.Malformed"),
                          "elastic-ip", "elastic IP", "ReleaseAddress"),
    NETWORK: _RawKind("DescribeVpcs", "VpcId", "vpcSet/item", "vpcId", 1000,
                      ("InvalidVpcID.NotFound", "InvalidVpcID.Malformed"), "vpc", "network",
                      "DeleteVpc"),
    SUBNET: _RawKind("DescribeSubnets", "SubnetId", "subnetSet/item", "subnetId", 1000,
                     ("InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed"), "subnet",
                     "subnet", "DeleteSubnet"),
    PORT: _RawKind("DescribeNetworkInterfaces", "NetworkInterfaceId", "networkInterfaceSet/item",
                   "networkInterfaceId", 1000, ("InvalidNetworkInterfaceID.NotFound",
                                                "InvalidNetworkInterfaceID.Malformed"),
                   "network-interface", "port", "DeleteNetworkInterface"),
}


class AwsAdapter:
    """The EC2 adapter.  See the module docstring for identity and discovery rules."""

    def __init__(
        self,
        target: Target,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry_policy: RetryPolicy | None = None,
        page_size: int = 1000,
        poll_max_interval: float = 3.0,
    ) -> None:
        self.target = target
        self._sleep = sleep
        self._clock = clock
        policy = retry_policy or (SANDBOX_POLICY if target.sandbox else DEFAULT_POLICY)
        self._retrier = Retrier(policy, sleep=sleep)
        # request_rate: one token bucket for all of this adapter's threads
        self._limiter = limiter_for(target.options, clock=clock, sleep=sleep)
        self.page_size = max(5, min(1000, int(page_size)))  # DescribeInstances: 5..1000
        self._poll_max = poll_max_interval
        self._local = threading.local()
        self._lock = threading.Lock()
        self._count = 0
        self._creds = AwsCredentials(target, target.region)
        self._subnets: dict[tuple[str, str], str] = {}
        # the target's own endpoint: every service, before any AWS_ENDPOINT_URL*
        self._endpoint = self._parse_endpoint(target.options.get("endpoint"), "cloudtmpl.yaml")
        self._endpoints: dict[str, tuple[str, int, bool] | None] = {}

    # ------------------------------------------------------------------ plumbing

    def request_count(self) -> int:
        with self._lock:
            return self._count

    def _counted(self) -> None:
        with self._lock:
            self._count += 1

    def _parse_endpoint(self, endpoint: Any, source: str) -> tuple[str, int, bool] | None:
        if not endpoint:
            return None
        parts = urlsplit(str(endpoint))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CloudError(
                f"target {self.target.name!r}: endpoint {endpoint!r} ({source}) is not an "
                "http(s) URL",
                permanent=True,
            )
        secure = parts.scheme == "https"
        return parts.hostname, parts.port or (443 if secure else 80), secure

    def _endpoint_for(self, service: str) -> tuple[str, int, bool] | None:
        """(host, port, https) of ``service`` (ec2, s3, route53, elb); None: AWS's own.

        The target's ``endpoint:`` serves every service; a sandbox target has only
        that.  Otherwise the AWS_ENDPOINT_URL* variables and the profile's settings
        (:mod:`cloudtmpl.settings.aws`).
        """
        if self._endpoint is not None or self.target.sandbox:
            return self._endpoint
        with self._lock:
            if service not in self._endpoints:
                try:
                    found = aws_settings.load(os.environ,
                                              self.target.options.get("profile")).endpoint(service)
                except aws_settings.AwsSettingsError as err:
                    raise CloudError(f"target {self.target.name!r}: {err.message}",
                                     permanent=True) from None
                self._endpoints[service] = (self._parse_endpoint(found.url, found.source)
                                            if found else None)
            return self._endpoints[service]

    def _credentials(self) -> Credentials:
        return self._creds.current()

    def _driver(self, region: str) -> Any:
        drivers: dict[str, tuple[Credentials, Any]] | None = getattr(self._local, "drivers", None)
        if drivers is None:
            drivers = self._local.drivers = {}
        creds = self._credentials()
        cached = drivers.get(region)
        if cached is None or cached[0] != creds:  # new, or temporary credentials refreshed
            cached = drivers[region] = (creds, self._new_driver(region, creds))
        return cached[1]

    def _new_driver(self, region: str, creds: Credentials) -> Any:
        kwargs: dict[str, Any] = {
            "region": region,
            "signature_version": "4",
            "token": creds.token,
            "timeout": float(self.target.options.get("request_timeout", 60)),
        }
        endpoint = self._endpoint_for("ec2")
        if endpoint is not None:
            host, port, secure = endpoint
            kwargs.update(host=host, port=port, secure=secure)
        try:
            driver = get_driver(Provider.EC2)(creds.key, creds.secret, **kwargs)
        except ValueError as exc:  # libcloud: "Invalid region: …"
            raise CloudError(f"target {self.target.name!r}: {exc}", permanent=True) from None
        conn = driver.connection
        original = conn.request

        def counted_request(*args: Any, **kw: Any) -> Any:
            # One call here is exactly one HTTP request: libcloud's own retry loop
            # is switched off (retries are ours, and counted).
            kw["retry_failed"] = False
            self._limiter.acquire()  # before every HTTP request, retries included
            self._counted()
            return original(*args, **kw)

        setattr(conn, "request", counted_request)  # noqa: B010 - instance-level wrap
        return driver

    def _translate(self, exc: BaseException) -> CloudError:
        if isinstance(exc, CloudError):
            return exc
        name = type(exc).__name__
        verdict = classify(exc)
        if name == "InvalidCredsError":
            return CloudError(f"AWS rejected the credentials of target {self.target.name!r}: "
                              f"{exc}", permanent=True)
        if name == "KeyPairDoesNotExistError":
            key = getattr(exc, "name", "?")
            return CloudError(f"InvalidKeyPair.NotFound: The key pair '{key}' does not exist",
                              permanent=True)
        message = getattr(exc, "message", None)
        if not isinstance(message, str) or not message:
            message = str(exc) or name
        if verdict.retryable and not error_codes(exc) and http_status(exc) is None:
            endpoint = self._endpoint_for("ec2")
            where = endpoint[0] if endpoint else "the EC2 endpoint"
            message = f"cannot reach {where} ({name}): {message}"
        return CloudError(message, permanent=not verdict.retryable)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return self._retrier.call(fn)
        except CloudError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc

    def _ec2(self, region: str, action: str, params: Mapping[str, str] | None = None,
             *, retry: bool = True) -> ET.Element:
        """One raw EC2 query action through the (thread's) driver connection."""
        full = {"Action": action, **(params or {})}

        def go() -> ET.Element:
            driver = self._driver(region)
            return driver.connection.request(driver.path, params=dict(full)).object

        if retry:
            return self._call(go)
        try:
            return go()
        except Exception as exc:
            raise self._translate(exc) from exc

    def _paged(self, region: str, action: str, params: Mapping[str, str],
               max_results: int | None) -> Iterable[ET.Element]:
        """Every page of a paginated Describe* action (follows every NextToken)."""
        page = dict(params)
        if max_results is not None:
            page["MaxResults"] = str(max_results)
        seen: set[str] = set()
        while True:
            obj = self._ec2(region, action, page)
            yield obj
            token = _text(obj, "nextToken")
            if not token or token in seen:
                return
            seen.add(token)
            page["NextToken"] = token

    def _placement(self, region: str) -> Placement:
        return Placement(self.target.name, region)

    def _services(self) -> AwsServices:
        """Route53, S3 and ELB (aws_services.py), made on first use."""
        with self._lock:
            svc: AwsServices | None = getattr(self, "_svc", None)
            if svc is None:
                svc = self._svc = AwsServices(self)
            return svc

    def _poll(self, timeout: float, what: str,
              fetch: Callable[[], tuple[bool, str, T]]) -> T:
        return poll(timeout, what, fetch, clock=self._clock, sleep=self._sleep,
                    first=0.25, max_interval=self._poll_max)

    def _create_tags(self, region: str, resource_id: str, tags: Mapping[str, str]) -> None:
        if not tags:
            return
        params = {"ResourceId.1": resource_id}
        for i, (key, value) in enumerate(tags.items(), 1):
            params[f"Tag.{i}.Key"] = key
            params[f"Tag.{i}.Value"] = value
        self._ec2(region, "CreateTags", params)

    def _delete_tags(self, region: str, resource_id: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return
        params = {"ResourceId.1": resource_id}
        for i, key in enumerate(keys, 1):
            params[f"Tag.{i}.Key"] = key
        self._ec2(region, "DeleteTags", params)

    def _sync_user_tags(self, region: str, resource_id: str, current: Mapping[str, str],
                        desired: Mapping[str, str] | None, extra: Mapping[str, str]) -> None:
        """Make the user tags ``desired`` (None: leave alone) and set ``extra`` tags."""
        to_set = dict(extra)
        if desired is not None:
            have = _user_tags(current)
            self._delete_tags(region, resource_id, sorted(set(have) - set(desired)))
            to_set.update({k: v for k, v in desired.items() if have.get(k) != v})
        self._create_tags(region, resource_id, to_set)

    # ------------------------------------------------------------------ choices

    def lookup_choice(self, region: str, what: str, value: str) -> Choice:
        """A flavor, image or network in the form discovery reports it (one request at most).

        * flavor: libcloud's built-in instance type data (no request); offered: every type;
        * image: one DescribeImages by id, or by name when it is not an ``ami-`` id (the
          newest match, as :meth:`find_image`); never listed (thousands of public
          images): offered is empty;
        * network (a floating IP's external network): AWS has one address pool per
          region, so any value is accepted as it is (no request);
        * keypair: one DescribeKeyPairs by name (a second lists the names when missing).
        """
        if what == "flavor":
            names = sorted({str(size.id) for size in self._driver(region).list_sizes()})
            return Choice(value) if value in names else Choice(None, tuple(names))
        if what == "image" and not value.startswith("ami-"):
            return self.find_image(region, ImageFilter(value))
        if what == "image":
            try:
                obj = self._ec2(region, "DescribeImages", {"ImageId.1": value})
            except CloudError as err:
                if _has_code(err, "InvalidAMIID.NotFound", "InvalidAMIID.Malformed",
                             "InvalidAMIID.Unavailable"):
                    return Choice(None)
                raise
            items = _items(obj, "imagesSet/item")
            return Choice(_text(items[0], "imageId") if items else None)
        if what == "keypair":
            if self._get_key_pair(region, value) is not None:
                return Choice(value)
            obj = self._ec2(region, "DescribeKeyPairs", {})
            return Choice(None, tuple(sorted(_text(el, "keyName") or ""
                                             for el in _items(obj, "keySet/item"))))
        return Choice(value)  # nothing to check

    def find_image(self, region: str, flt: ImageFilter) -> Choice:
        """The newest available image ``flt`` matches: one DescribeImages with the
        owners (``Owner.N``) and the name and state filters, as Terraform's ``aws_ami``
        with ``most_recent``; what comes back is matched again (a compatible cloud
        may ignore a filter)."""
        params = {f"Owner.{i}": owner for i, owner in enumerate(flt.owners, 1)}
        obj = self._ec2(region, "DescribeImages",
                        {**params, **_filters({"name": flt.name, "state": "available"})})
        return Choice(newest_image(flt, [
            {"id": _text(el, "imageId") or "", "name": _text(el, "name") or "",
             "owner_id": _text(el, "imageOwnerId") or "",
             "owner_alias": _text(el, "imageOwnerAlias") or "",
             "created": _text(el, "creationDate") or ""}
            for el in _items(obj, "imagesSet/item")]))

    # ------------------------------------------------------------------ discovery

    def discover(self, region: str, kinds: frozenset[str], stack: str) -> list[LiveResource]:
        jobs: list[Callable[[], list[LiveResource]]] = []
        if SERVER in kinds:
            jobs.append(lambda: self._discover_servers(region, stack))
        if VOLUME in kinds or ATTACHMENT in kinds:
            jobs.append(lambda: self._discover_volumes(region, stack, kinds))
        if KEYPAIR in kinds:
            jobs.append(lambda: self._discover_key_pairs(region, stack))
        for kind in sorted(kinds & set(_RAW)):
            jobs.append(partial(self._discover_raw, region, stack, kind))
        # -- DNS zones/records, buckets, load balancers (aws_services.py)
        jobs.extend(self._services().discover_jobs(region, kinds, stack))
        if not jobs:
            return []
        self._credentials()  # fail once, clearly, before fanning out
        if len(jobs) == 1:
            return jobs[0]()
        # Each worker thread gets its own driver (threading.local): safe in parallel.
        with ThreadPoolExecutor(max_workers=len(jobs),
                                thread_name_prefix="cloudtmpl-aws-discover") as pool:
            futures = [pool.submit(job) for job in jobs]
            out: list[LiveResource] = []
            for fut in futures:
                out.extend(fut.result())
        return out

    def _owned(self, tags: Mapping[str, str], stack: str) -> str | None:
        """The address of an object of ``stack`` (None: not ours)."""
        if tags.get(TAG_STACK) != stack:
            return None
        return tags.get(TAG_RESOURCE) or address_from_name(stack, tags.get(TAG_NAME, ""))

    def _list_instances(self, region: str, params: Mapping[str, str],
                        paginate: bool) -> list[Any]:
        driver = self._driver(region)
        nodes: list[Any] = []
        pages = (self._paged(region, "DescribeInstances", params, self.page_size) if paginate
                 else [self._ec2(region, "DescribeInstances", params)])
        for obj in pages:
            for rs in _items(obj, "reservationSet/item"):
                nodes.extend(driver._to_nodes(rs, "instancesSet/item"))
        return nodes

    def _discover_servers(self, region: str, stack: str) -> list[LiveResource]:
        params = _filters({f"tag:{TAG_STACK}": stack,
                           "instance-state-name": _LIVE_INSTANCE_STATES})
        out = []
        for node in self._list_instances(region, params, paginate=True):
            if node.extra.get("status") in _GONE_INSTANCE_STATES:
                continue
            address = self._owned(node.extra.get("tags") or {}, stack)
            if address is not None:
                out.append(self._server_live(region, address, node))
        return out

    def _discover_volumes(self, region: str, stack: str,
                          kinds: frozenset[str]) -> list[LiveResource]:
        driver = self._driver(region)
        out = []
        params = _filters({f"tag:{TAG_STACK}": stack})
        for obj in self._paged(region, "DescribeVolumes", params, 500):
            for el in _items(obj, "volumeSet/item"):
                vol = driver._to_volume(el)
                if vol.extra.get("state") in _GONE_VOLUME_STATES:
                    continue
                tags = vol.extra.get("tags") or {}
                address = self._owned(tags, stack)
                if address is None:
                    continue
                if VOLUME in kinds:
                    out.append(self._volume_live(region, address, vol))
                if ATTACHMENT in kinds:
                    att = self._attachment_live(region, vol)
                    if att is not None:
                        out.append(att)
        return out

    def _discover_raw(self, region: str, stack: str, kind: str) -> list[LiveResource]:
        """One tag-filtered listing of a raw-XML kind, every page."""
        api = _RAW[kind]
        params = _filters({f"tag:{TAG_STACK}": stack})
        pages = (self._paged(region, api.describe, params, api.page) if api.page
                 else [self._ec2(region, api.describe, params)])
        out = []
        for obj in pages:
            for el in _items(obj, api.items):
                address = self._owned(_tags_of(el), stack)
                if address is not None:
                    out.append(self._snapshot(region, kind, address, el))
        return out

    def _discover_key_pairs(self, region: str, stack: str) -> list[LiveResource]:
        params = {"IncludePublicKey": "true", **_filters({"key-name": f"{stack}.*"})}
        obj = self._ec2(region, "DescribeKeyPairs", params)
        out = []
        for el in _items(obj, "keySet/item"):
            name = _text(el, "keyName") or ""
            tags = _tags_of(el)
            address = address_from_name(stack, name)
            if address is None:
                continue
            if tags.get(TAG_STACK, stack) != stack:
                continue
            out.append(self._key_pair_live(region, tags.get(TAG_RESOURCE) or address, el))
        return out

    # ------------------------------------------------------------------ snapshots

    def _server_live(self, region: str, address: str, node: Any) -> LiveResource:
        extra = node.extra
        tags = extra.get("tags") or {}
        private_ip = node.private_ips[0] if node.private_ips else None
        public_ip = node.public_ips[0] if node.public_ips else None
        name = tags.get(TAG_NAME) or node.name or node.id
        status = extra.get("status") or ""
        shape = _unshape(tags)
        nics = sorted(extra.get("network_interfaces") or [],
                      key=lambda n: n.extra.get("attachment", {}).get("device_index") or 0)
        if shape:  # launched on networks: the groups of the interfaces made for it (a
            # port brings its own groups; the server may name none with one)
            group_sets = [nic.extra.get("groups") or [] for keys, nic in zip(shape, nics,
                                                                              strict=False)
                          if "port" not in keys]
            if any("port" in keys for keys in shape):
                group_sets = []
        else:
            group_sets = [extra.get("groups") or []]
        groups = _own_groups(sorted({(g.get("group_id") or "", g.get("group_name") or "")
                                     for gs in group_sets for g in gs}))
        networks: dict[str, list[str]] = {}
        for nic in nics:
            networks.setdefault(nic.extra.get("vpc_id") or "", []).extend(
                ip["private_ip"] for ip in nic.extra.get("private_ips") or [] if ip["private_ip"])
        properties: dict[str, Any] = {
            "image": extra.get("image_id"),
            "flavor": extra.get("instance_type"),
            "key_name": extra.get("key_name") or None,
            "security_groups": groups,
            "availability_zone": extra.get("availability"),
            "metadata": _user_tags(tags),
        }
        if shape is not None:
            properties["networks"] = [
                {key: self._nic_value(nic, key) for key in keys}
                for keys, nic in zip(shape, nics, strict=False)]
        return LiveResource(
            address=address,
            kind=SERVER,
            physical_id=node.id,
            placement=self._placement(region),
            name=name,
            properties=properties,
            attributes={
                "first_address": private_ip,
                "networks": networks,
                "private_ip": private_ip,
                "public_ip": public_ip,
                "name": name,
                "status": status,
            },
            spec_hash=tags.get(TAG_SPEC),
            status=status,
        )

    @staticmethod
    def _nic_value(nic: Any, key: str) -> str | None:
        """One Heat ``networks`` key as a launched interface shows it."""
        if key == "port":
            return str(nic.id)
        if key == "fixed_ip":
            ips = [ip["private_ip"] for ip in nic.extra.get("private_ips") or []
                   if str(ip.get("primary")).lower() == "true"]
            return ips[0] if ips else None
        return nic.extra.get("subnet_id" if key == "subnet" else "vpc_id")

    def _volume_live(self, region: str, address: str, vol: Any) -> LiveResource:
        tags = vol.extra.get("tags") or {}
        status = vol.extra.get("state") or ""
        name = tags.get(TAG_NAME) or vol.id
        return LiveResource(
            address=address,
            kind=VOLUME,
            physical_id=vol.id,
            placement=self._placement(region),
            name=name,
            properties={
                "size": int(vol.size),
                "volume_type": vol.extra.get("volume_type"),
                "availability_zone": vol.extra.get("zone"),
                "metadata": _user_tags(tags),
            },
            attributes={"size": int(vol.size), "status": status, "name": name},
            spec_hash=tags.get(TAG_SPEC),
            status=status,
        )

    def _attachment_live(self, region: str, vol: Any) -> LiveResource | None:
        tags = vol.extra.get("tags") or {}
        address = tags.get(TAG_ATTACHMENT)
        instance = vol.extra.get("instance_id")
        att_status = vol.extra.get("attachment_status") or ""
        if not address or not instance or att_status not in _LIVE_ATTACHMENT_STATES:
            return None
        return LiveResource(
            address=address,
            kind=ATTACHMENT,
            physical_id=f"{vol.id}:{instance}",
            placement=self._placement(region),
            name=address,
            properties={
                "instance_uuid": instance,
                "volume_id": vol.id,
                "mountpoint": vol.extra.get("device"),
            },
            attributes={},
            spec_hash=tags.get(TAG_ATTACHMENT_SPEC),
            status=att_status,
        )

    def _group_live(self, region: str, address: str, el: ET.Element) -> LiveResource:
        tags = _tags_of(el)
        gid = _text(el, "groupId") or ""
        name = _text(el, "groupName") or tags.get(TAG_NAME) or gid
        description = _text(el, "groupDescription") or ""
        if description == name:  # we send the name when the template gave none
            description = ""
        rules = [r for perm in _items(el, "ipPermissions/item")
                 for r in _rule_from_permission("ingress", perm)]
        rules += [r for perm in _items(el, "ipPermissionsEgress/item")
                  for r in _rule_from_permission("egress", perm) if not _is_default_egress(r)]
        return LiveResource(
            address=address,
            kind=SECURITY_GROUP,
            physical_id=gid,
            placement=self._placement(region),
            name=name,
            properties={"description": description, "rules": canonical_rules(rules)},
            attributes={"name": name, "id": gid},
            spec_hash=tags.get(TAG_SPEC),
            status="active",
        )

    def _key_pair_live(self, region: str, address: str, el: ET.Element) -> LiveResource:
        tags = _tags_of(el)
        return self._key_pair_snapshot(region, address, _text(el, "keyName") or "",
                                       _text(el, "keyFingerprint"), _text(el, "publicKey"),
                                       tags.get(TAG_SPEC))

    def _key_pair_snapshot(self, region: str, address: str, name: str,
                           fingerprint: str | None, public_key: str | None,
                           spec_hash: str | None) -> LiveResource:
        attributes: dict[str, Any] = {"name": name, "fingerprint": fingerprint}
        if public_key:
            attributes["public_key"] = public_key
        return LiveResource(
            address=address,
            kind=KEYPAIR,
            physical_id=name,
            placement=self._placement(region),
            name=name,
            properties={},
            attributes=attributes,
            spec_hash=spec_hash,
            status="available",
        )

    def _address_live(self, region: str, address: str, el: ET.Element) -> LiveResource:
        tags = _tags_of(el)
        ip = _text(el, "publicIp")
        instance = _text(el, "instanceId")
        port = _text(el, "networkInterfaceId")
        status = "associated" if instance or port else "allocated"
        return LiveResource(
            address=address,
            kind=FLOATING_IP,
            physical_id=_text(el, "allocationId") or "",
            placement=self._placement(region),
            name=tags.get(TAG_NAME, ""),
            properties={"server": instance, "port": port},
            attributes={"floating_ip_address": ip, "ip": ip, "port_id": port,
                        "fixed_ip_address": _text(el, "privateIpAddress")},
            spec_hash=tags.get(TAG_SPEC),
            status=status,
        )

    def _snapshot(self, region: str, kind: str, address: str, el: ET.Element) -> LiveResource:
        snap = {
            SECURITY_GROUP: self._group_live,
            FLOATING_IP: self._address_live,
            NETWORK: self._network_live,
            SUBNET: self._subnet_live,
            PORT: self._port_live,
        }[kind]
        return snap(region, address, el)

    def _raw_live(self, region: str, kind: str, address: str, el: ET.Element, status: str,
                  properties: dict[str, Any], attributes: dict[str, Any]) -> LiveResource:
        tags = _tags_of(el)
        pid = _text(el, _RAW[kind].id_field) or ""
        name = tags.get(TAG_NAME) or pid
        return LiveResource(address=address, kind=kind, physical_id=pid,
                            placement=self._placement(region), name=name,
                            properties=properties, attributes={"name": name, **attributes},
                            spec_hash=tags.get(TAG_SPEC), status=status)

    def _network_live(self, region: str, address: str, el: ET.Element) -> LiveResource:
        status = _text(el, "state") or ""
        return self._raw_live(region, NETWORK, address, el, status,
                              {"cidr": _text(el, "cidrBlock"), "admin_state_up": True},
                              {"id": _text(el, "vpcId"), "status": status})

    def _subnet_live(self, region: str, address: str, el: ET.Element) -> LiveResource:
        cidr = _text(el, "cidrBlock")
        gateway = None
        if cidr:  # EC2's router is the first usable address of every subnet
            gateway = str(ipaddress.ip_network(cidr, strict=False).network_address + 1)
        vpc = _text(el, "vpcId")
        return self._raw_live(region, SUBNET, address, el, _text(el, "state") or "",
                              {"network": vpc, "cidr": cidr, "ip_version": 4,
                               "availability_zone": _text(el, "availabilityZone")},
                              {"cidr": cidr, "gateway_ip": gateway, "network_id": vpc})

    def _port_live(self, region: str, address: str, el: ET.Element) -> LiveResource:
        status = _text(el, "status") or ""
        vpc = _text(el, "vpcId")
        subnet = _text(el, "subnetId")
        ip = _text(el, "privateIpAddress")
        live_values = {"subnet": subnet, "ip_address": ip}
        properties: dict[str, Any] = {
            "network": vpc,
            "security_groups": _own_groups([(_text(g, "groupId") or "", _text(g, "groupName")
                                             or "") for g in _items(el, "groupSet/item")]),
            "admin_state_up": True,
        }
        shape = _unshape(_tags_of(el))
        if shape is not None:
            properties["fixed_ips"] = [{k: live_values.get(k) for k in keys} for keys in shape]
        return self._raw_live(region, PORT, address, el, status, properties, {
            "fixed_ips": [{"subnet_id": subnet, "ip_address": ip}],
            "ip_address": ip,
            "mac_address": _text(el, "macAddress"),
            "network_id": vpc,
            "status": status,
        })

    # ------------------------------------------------------------------ single lookups

    def _get_instance(self, region: str, instance_id: str) -> Any | None:
        try:
            nodes = self._list_instances(region, {"InstanceId.1": instance_id}, paginate=False)
        except CloudError as err:
            if _has_code(err, "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            raise
        return nodes[0] if nodes else None

    def _get_volume(self, region: str, volume_id: str) -> Any | None:
        try:
            obj = self._ec2(region, "DescribeVolumes", {"VolumeId.1": volume_id})
        except CloudError as err:
            if _has_code(err, "InvalidVolume.NotFound", "InvalidVolume.Malformed"):
                return None
            raise
        items = _items(obj, "volumeSet/item")
        return self._driver(region)._to_volume(items[0]) if items else None

    def _get_raw(self, region: str, kind: str, object_id: str) -> ET.Element | None:
        api = _RAW[kind]
        try:
            obj = self._ec2(region, api.describe, {f"{api.id_param}.1": object_id})
        except CloudError as err:
            if _has_code(err, *api.missing):
                return None
            raise
        items = _items(obj, api.items)
        return items[0] if items else None

    def _get_group(self, region: str, group_id: str) -> ET.Element | None:
        return self._get_raw(region, SECURITY_GROUP, group_id)

    def _get_address(self, region: str, allocation_id: str) -> ET.Element | None:
        return self._get_raw(region, FLOATING_IP, allocation_id)

    def _refresh(self, region: str, kind: str, address: str, object_id: str) -> LiveResource:
        el = self._require(self._get_raw(region, kind, object_id),
                           LiveResource(address, kind, object_id, self._placement(region)))
        return self._snapshot(region, kind, address, el)

    def _get_key_pair(self, region: str, name: str) -> ET.Element | None:
        try:
            obj = self._ec2(region, "DescribeKeyPairs",
                            {"KeyName.1": name, "IncludePublicKey": "true"})
        except CloudError as err:
            if _has_code(err, "InvalidKeyPair.NotFound") or "does not exist" in err.message:
                return None
            raise
        for el in _items(obj, "keySet/item"):
            if _text(el, "keyName") == name:
                return el
        return None

    def _require(self, value: T | None, live: LiveResource) -> T:
        if value is None:
            raise CloudError(f"{live.kind} {live.address} ({live.physical_id}) no longer exists "
                             f"in {live.placement.region}", permanent=True)
        return value

    # ------------------------------------------------------------------ waits

    def _wait_instance(self, region: str, instance_id: str, want: str, timeout: float,
                       what: str) -> Any:
        def fetch() -> tuple[bool, str, Any]:
            node = self._get_instance(region, instance_id)
            if node is None:  # eventual consistency right after RunInstances
                return False, "pending", None
            state = node.extra.get("status") or ""
            if state == want:
                return True, state, node
            if want != "terminated" and state in _GONE_INSTANCE_STATES:
                reason = node.extra.get("reason") or ""
                raise CloudError(f"{what} went to {state} instead of {want}"
                                 + (f": {reason}" if reason else ""), permanent=True,
                                 status=state)
            return False, state, node

        return self._poll(timeout, what, fetch)

    def _settled_instance(self, region: str, instance_id: str, timeout: float,
                          what: str) -> None:
        """Wait out a server that is still pending: EC2 refuses to attach a volume or
        associate an address with it (IncorrectInstanceState). A server adopted after a
        killed run may be in exactly that state while its dependents are created."""
        node = self._get_instance(region, instance_id)
        if node is not None and node.extra.get("status") == "pending":
            self._wait_instance(region, instance_id, "running", timeout, what)

    def _wait_instance_gone(self, region: str, instance_id: str, timeout: float,
                            what: str) -> None:
        def fetch() -> tuple[bool, str, None]:
            node = self._get_instance(region, instance_id)
            state = "terminated" if node is None else (node.extra.get("status") or "")
            return state == "terminated", state, None

        self._poll(timeout, what, fetch)

    def _wait_volume(self, region: str, volume_id: str, timeout: float, what: str,
                     ready: Callable[[Any], bool], status_of: Callable[[Any], str]) -> Any:
        def fetch() -> tuple[bool, str, Any]:
            vol = self._get_volume(region, volume_id)
            if vol is None:
                return False, "creating", None
            status = status_of(vol)
            if vol.extra.get("state") == "error":
                raise CloudError(f"{what} is in state error", permanent=True, status="error")
            return ready(vol), status, vol

        return self._poll(timeout, what, fetch)

    # ------------------------------------------------------------------ create

    def create(
        self,
        region: str,
        kind: str,
        *,
        stack: str,
        address: str,
        name: str,
        properties: Mapping[str, Any],
        spec_hash: str,
        timeout: float,
    ) -> LiveResource:
        if kind in SERVICE_KINDS:  # -- DNS, buckets, load balancers (aws_services.py)
            return self._services().create(region, kind, stack, address, properties,
                                           spec_hash, timeout)
        creators = {
            SERVER: self._create_server,
            KEYPAIR: self._create_key_pair,
            SECURITY_GROUP: self._create_group,
            VOLUME: self._create_volume,
            ATTACHMENT: self._create_attachment,
            FLOATING_IP: self._create_address,
            NETWORK: self._create_network,
            SUBNET: self._create_subnet,
            PORT: self._create_port,
        }
        creator = creators.get(kind)
        if creator is None:
            raise CloudError(f"the aws provider cannot create {kind}", permanent=True)
        return creator(region, stack, address, name, properties, spec_hash, timeout)

    def _default_subnet(self, region: str, zone: str) -> str:
        with self._lock:
            cached = self._subnets.get((region, zone))
        if cached:
            return cached
        obj = self._ec2(region, "DescribeSubnets",
                        _filters({"availability-zone": zone, "default-for-az": "true"}))
        ids = [s for s in (_text(el, "subnetId") for el in _items(obj, "subnetSet/item")) if s]
        if not ids:
            raise CloudError(
                f"no default subnet in availability zone {zone} ({region}): security groups by "
                "id need a VPC subnet; create a default VPC or choose another zone",
                permanent=True)
        with self._lock:
            self._subnets[(region, zone)] = ids[0]
        return ids[0]

    def _create_server(self, region: str, stack: str, address: str, name: str,
                       props: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        image, flavor = props.get("image"), props.get("flavor")
        if not image or not flavor:
            raise CloudError("a server needs image and flavor", permanent=True)
        nets = _entries(props.get("networks"), ("network", "subnet", "port", "fixed_ip"),
                        "networks")
        tags = {**_metadata(props), TAG_STACK: stack, TAG_RESOURCE: address, TAG_SPEC: spec_hash,
                TAG_SHAPE: _shape(nets)}
        if nets:
            node = self._run_on_networks(region, name, props, tags, nets)
            node = self._wait_instance(region, node.id, "running", timeout,
                                       f"server {name} ({node.id})")
            return self._server_live(region, address, node)
        zone = str(props.get("availability_zone") or f"{region}a")
        groups = [str(g) for g in props.get("security_groups") or []]
        by_id = [g for g in groups if g.startswith("sg-")]
        if by_id and len(by_id) != len(groups):
            raise CloudError("security_groups must be all group ids (sg-…) or all group names",
                             permanent=True)
        subnet_id = self._default_subnet(region, zone) if by_id else None
        token = uuid.uuid4().hex  # same token on every retry: AWS returns the first instance

        def run() -> Any:
            driver = self._driver(region)
            kwargs: dict[str, Any] = {
                "name": name,
                "size": NodeSize(str(flavor), str(flavor), 0, 0, None, 0.0, driver),
                "image": NodeImage(str(image), str(image), driver),
                "location": EC2NodeLocation(zone, zone, None, driver,
                                            ExEC2AvailabilityZone(zone, "available", region)),
                "ex_metadata": tags,
                "ex_clienttoken": token,
            }
            if props.get("key_name"):
                kwargs["ex_keyname"] = str(props["key_name"])
            if props.get("user_data"):
                kwargs["ex_userdata"] = str(props["user_data"])
            if by_id:
                kwargs["ex_security_group_ids"] = by_id
                kwargs["ex_subnet"] = EC2NetworkSubnet(subnet_id, subnet_id, "available")
            elif groups:
                kwargs["ex_security_groups"] = groups
            return driver.create_node(**kwargs)

        try:
            node = self._call(run)
        except CloudError as err:
            if not (by_id and _has_code(err, "InvalidSubnetID.NotFound")):
                raise
            with self._lock:  # the cached default subnet is gone: look it up again
                self._subnets.pop((region, zone), None)
            subnet_id = self._default_subnet(region, zone)
            node = self._call(run)
        what = f"server {name} ({node.id})"
        node = self._wait_instance(region, node.id, "running", timeout, what)
        return self._server_live(region, address, node)

    def _run_on_networks(self, region: str, name: str, props: Mapping[str, Any],
                         tags: Mapping[str, str], nets: list[dict[str, str]]) -> Any:
        """RunInstances with one interface per ``networks`` entry (device index = position).

        libcloud's create_node can neither launch on an existing interface nor set a
        private address, so this is the raw action (tags inside it, as create_node does).
        Interfaces made here are deleted with the instance; ports are not.
        """
        groups = [str(g) for g in props.get("security_groups") or []]
        if any(not g.startswith("sg-") for g in groups):
            raise CloudError("with networks, security_groups must be group ids (sg-…) of the "
                             "network's VPC", permanent=True)
        if groups and any("port" in n for n in nets):
            raise CloudError("a server on a port gets its security groups from the port: set "
                             "them on the Cloud::Network::Port, not on the server",
                             permanent=True)
        zone = str(props.get("availability_zone") or "")
        params: dict[str, str] = {
            "Action": "RunInstances", "ImageId": str(props["image"]),
            "InstanceType": str(props["flavor"]), "MinCount": "1", "MaxCount": "1",
            "ClientToken": uuid.uuid4().hex,
        }
        if zone:
            params["Placement.AvailabilityZone"] = zone
        if props.get("key_name"):
            params["KeyName"] = str(props["key_name"])
        if props.get("user_data"):
            params["UserData"] = base64.b64encode(str(props["user_data"]).encode()).decode()
        for i, net in enumerate(nets):
            prefix = f"NetworkInterface.{i + 1}."
            params[prefix + "DeviceIndex"] = str(i)
            if "port" in net:
                if len(net) > 1:
                    raise CloudError(f"networks entry {net}: a port brings its own network "
                                     "and addresses; give port alone", permanent=True)
                params[prefix + "NetworkInterfaceId"] = net["port"]
                continue
            ip = net.get("fixed_ip")
            params[prefix + "SubnetId"] = net.get("subnet") or self._pick_subnet(
                region, net["network"], zone or f"{region}a", ip)
            params[prefix + "DeleteOnTermination"] = "true"
            if ip:
                params[prefix + "PrivateIpAddress"] = ip
            for j, group in enumerate(groups, 1):
                params[f"{prefix}SecurityGroupId.{j}"] = group
        params.update(_tag_spec("instance", {TAG_NAME: name, **tags}))

        def run() -> Any:
            driver = self._driver(region)
            obj = driver.connection.request(driver.path, params=dict(params)).object
            return driver._to_nodes(obj, "instancesSet/item")[0]

        return self._call(run)

    def _create_volume(self, region: str, stack: str, address: str, name: str,
                       props: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        size = props.get("size")
        if size is None:
            raise CloudError("a volume needs size", permanent=True)
        zone = str(props.get("availability_zone") or f"{region}a")
        tags = {**_identity_tags(name, stack, address, spec_hash), **_metadata(props)}
        params = {"Size": str(int(size)), "AvailabilityZone": zone,
                  "ClientToken": uuid.uuid4().hex, **_tag_spec("volume", tags)}
        if props.get("volume_type"):
            params["VolumeType"] = str(props["volume_type"])
        obj = self._ec2(region, "CreateVolume", params)
        volume_id = _text(obj, "volumeId") or ""
        vol = self._wait_volume(region, volume_id, timeout, f"volume {name} ({volume_id})",
                                ready=lambda v: v.extra.get("state") == "available",
                                status_of=lambda v: v.extra.get("state") or "")
        return self._volume_live(region, address, vol)

    def _create_group(self, region: str, stack: str, address: str, name: str,
                      props: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        rules = canonical_rules(props.get("rules") or [])
        _check_rules(rules)
        # Without follow-up calls the spec tag goes in atomically; with rules it is
        # written once the rules are in place (see the module docstring).
        tags = _identity_tags(name, stack, address, None if rules else spec_hash)
        params = {"GroupName": name,
                  "GroupDescription": str(props.get("description") or "") or name,
                  **_tag_spec("security-group", tags)}
        try:
            obj = self._ec2(region, "CreateSecurityGroup", params)
        except CloudError as err:
            if not _has_code(err, "InvalidGroup.Duplicate"):
                raise
            # Ours from an earlier attempt (retried or crashed)?  Converge it.
            group_id = self._adopt_group(region, stack, address, name, err)
            el = self._require(self._get_group(region, group_id),
                               LiveResource(address, SECURITY_GROUP, group_id,
                                            self._placement(region)))
            current = self._group_live(region, address, el)
            self._apply_rules(region, group_id, current.properties["rules"], rules,
                              has_default_egress=_has_default_egress(el))
            if current.spec_hash != spec_hash:
                self._create_tags(region, group_id, {TAG_SPEC: spec_hash})
            return self._refresh(region, SECURITY_GROUP, address, group_id)
        group_id = _text(obj, "groupId") or ""
        if rules:
            # A new VPC group has no ingress rules and EC2's default allow-all egress.
            self._apply_rules(region, group_id, [], rules, has_default_egress=True)
            self._create_tags(region, group_id, {TAG_SPEC: spec_hash})
        return self._refresh(region, SECURITY_GROUP, address, group_id)

    def _adopt_group(self, region: str, stack: str, address: str, name: str,
                     err: CloudError) -> str:
        """A group with our name exists: adopt it if it is ours (retried create)."""
        obj = self._ec2(region, "DescribeSecurityGroups", _filters({"group-name": name}))
        for el in _items(obj, "securityGroupInfo/item"):
            tags = _tags_of(el)
            if tags.get(TAG_STACK) == stack and tags.get(TAG_RESOURCE) == address:
                return _text(el, "groupId") or ""
        raise err

    def _apply_rules(self, region: str, group_id: str, current: list[dict[str, Any]],
                     desired: list[dict[str, Any]], *, has_default_egress: bool) -> None:
        """Authorize the added rules, revoke the removed ones (batched per direction).

        Declaring any egress rule replaces EC2's default allow-all egress; declaring
        none restores it.
        """
        have = {_rule_key(r): r for r in current}
        want = {_rule_key(r): r for r in desired}
        has_default = has_default_egress
        wants_egress = any(r["direction"] == "egress" for r in desired)
        for direction in ("ingress", "egress"):
            action = "Ingress" if direction == "ingress" else "Egress"
            removed = [r for k, r in have.items() if k not in want and r["direction"] == direction]
            added = [r for k, r in want.items() if k not in have and r["direction"] == direction]
            if direction == "egress" and wants_egress and has_default:
                removed.append(DEFAULT_EGRESS)
            if direction == "egress" and not wants_egress and not has_default:
                added.append(DEFAULT_EGRESS)
            if removed:
                self._change_rules(region, group_id, f"RevokeSecurityGroup{action}", removed,
                                   "InvalidPermission.NotFound")
            if added:
                self._change_rules(region, group_id, f"AuthorizeSecurityGroup{action}", added,
                                   "InvalidPermission.Duplicate")

    def _change_rules(self, region: str, group_id: str, action: str,
                      rules: list[dict[str, Any]], benign: str) -> None:
        """One batched call; if EC2 refuses it because a rule is already (or no longer)
        there — a stale view or a retried call that had succeeded — go rule by rule."""
        try:
            self._ec2(region, action, {"GroupId": group_id, **_permission_params(rules)})
            return
        except CloudError as err:
            if not _has_code(err, benign) or len(rules) == 1:
                if _has_code(err, benign):
                    return
                raise
        for rule in rules:
            try:
                self._ec2(region, action, {"GroupId": group_id, **_permission_params([rule])})
            except CloudError as err:
                if not _has_code(err, benign):
                    raise

    def _create_key_pair(self, region: str, stack: str, address: str, name: str,
                         props: Mapping[str, Any], spec_hash: str,
                         timeout: float) -> LiveResource:
        public_key = str(props.get("public_key") or "").strip()
        if not public_key:
            raise CloudError(f"key pair {name}: public_key is required (cloudtmpl generates "
                             "one when the template gives none)", permanent=True)
        tags = _identity_tags(name, stack, address, spec_hash)
        params = {"KeyName": name,
                  "PublicKeyMaterial": base64.b64encode(public_key.encode()).decode("ascii"),
                  **_tag_spec("key-pair", tags)}
        try:
            obj = self._ec2(region, "ImportKeyPair", params)
        except CloudError as err:
            if not _has_code(err, "InvalidKeyPair.Duplicate"):
                raise
            # Same name: ours from an earlier (retried or crashed) attempt?
            el = self._get_key_pair(region, name)
            existing = (_text(el, "publicKey") or "").split()[:2] if el is not None else []
            if el is None or existing != public_key.split()[:2]:
                raise
            return self._key_pair_snapshot(region, address, name, _text(el, "keyFingerprint"),
                                           public_key, _tags_of(el).get(TAG_SPEC))
        return self._key_pair_snapshot(region, address, _text(obj, "keyName") or name,
                                       _text(obj, "keyFingerprint"), public_key, spec_hash)

    def _create_tagged(self, region: str, kind: str, stack: str, address: str, action: str,
                       params: Mapping[str, str], tags: Mapping[str, str]) -> str:
        """One create call with the tags inside it (``TagSpecification``); its new id.

        These actions have no (honoured) idempotency token: after an ambiguous failure
        the retry first looks for an object with this stack's resource tags and adopts it.
        """
        api = _RAW[kind]
        full = {"Action": action, **params, **_tag_spec(api.tag_type, tags)}
        attempts = 0

        def once() -> str:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # an ambiguous failure: did the first try create one?
                found = self._find_tagged(region, kind, stack, address)
                if found is not None:
                    return found
            driver = self._driver(region)
            obj = driver.connection.request(driver.path, params=dict(full)).object
            ids = [el.text.strip() for el in obj.iter(f"{{{_NS}}}{api.id_field}") if el.text]
            return ids[0] if ids else ""

        return self._call(once)

    def _find_tagged(self, region: str, kind: str, stack: str, address: str) -> str | None:
        # No retry inside a retry: one look, then let the outer loop decide.
        api = _RAW[kind]
        obj = self._ec2(region, api.describe,
                        _filters({f"tag:{TAG_STACK}": stack, f"tag:{TAG_RESOURCE}": address}),
                        retry=False)
        for el in _items(obj, api.items):
            return _text(el, api.id_field)
        return None

    def _wait_raw(self, region: str, kind: str, address: str, object_id: str,
                  timeout: float) -> LiveResource:
        """Poll a new network, subnet or port until it is available."""
        def fetch() -> tuple[bool, str, LiveResource | None]:
            el = self._get_raw(region, kind, object_id)
            if el is None:  # eventual consistency right after the create
                return False, "pending", None
            live = self._snapshot(region, kind, address, el)
            return live.status in ("available", "in-use"), live.status, live

        live = self._poll(timeout, f"{_RAW[kind].what} {address} ({object_id})", fetch)
        assert live is not None
        return live

    @staticmethod
    def _check_admin_state(props: Mapping[str, Any], what: str) -> None:
        if props.get("admin_state_up") is False:
            raise CloudError(f"{what}: AWS cannot take a VPC or network interface "
                             "administratively down (admin_state_up: false)", permanent=True)

    def _create_network(self, region: str, stack: str, address: str, name: str,
                        props: Mapping[str, Any], spec_hash: str,
                        timeout: float) -> LiveResource:
        self._check_admin_state(props, f"network {name}")
        vpc_id = self._create_tagged(
            region, NETWORK, stack, address, "CreateVpc",
            {"CidrBlock": str(props.get("cidr") or "10.0.0.0/16")},
            _identity_tags(name, stack, address, spec_hash))
        return self._wait_raw(region, NETWORK, address, vpc_id, timeout)

    def _create_subnet(self, region: str, stack: str, address: str, name: str,
                       props: Mapping[str, Any], spec_hash: str,
                       timeout: float) -> LiveResource:
        if str(props.get("ip_version") or 4) != "4":
            raise CloudError(f"subnet {name}: the aws provider makes IPv4 subnets only "
                             "(ip_version: 4)", permanent=True)
        if not props.get("network") or not props.get("cidr"):
            raise CloudError(f"subnet {name} needs network and cidr", permanent=True)
        # enable_dhcp, gateway_ip, dns_nameservers: EC2 always serves DHCP, its router
        # is the first usable address, DNS servers are set per VPC: nothing to send.
        subnet_id = self._create_tagged(
            region, SUBNET, stack, address, "CreateSubnet",
            {"VpcId": str(props["network"]), "CidrBlock": str(props["cidr"]),
             "AvailabilityZone": str(props.get("availability_zone") or f"{region}a")},
            _identity_tags(name, stack, address, spec_hash))
        return self._wait_raw(region, SUBNET, address, subnet_id, timeout)

    def _pick_subnet(self, region: str, vpc_id: str, zone: str | None,
                     ip: str | None = None) -> str:
        """The network's first subnet (by id) in ``zone`` (and holding ``ip``)."""
        filters: dict[str, str] = {"vpc-id": vpc_id}
        if zone:
            filters["availability-zone"] = zone
        obj = self._ec2(region, "DescribeSubnets", _filters(filters))
        try:
            wanted = ipaddress.ip_address(ip) if ip else None
        except ValueError:
            raise CloudError(f"{ip!r} is not an IP address", permanent=True) from None
        for el in sorted(_items(obj, "subnetSet/item"), key=lambda e: _text(e, "subnetId") or ""):
            cidr = _text(el, "cidrBlock")
            if wanted is None or (cidr and wanted in ipaddress.ip_network(cidr, strict=False)):
                return _text(el, "subnetId") or ""
        where = " ".join(filter(None, (f"in zone {zone}" if zone else "",
                                       f"holding {ip}" if ip else "")))
        raise CloudError(f"network {vpc_id} has no subnet {where}: add a "
                         "Cloud::Network::Subnet", permanent=True)

    def _create_port(self, region: str, stack: str, address: str, name: str,
                     props: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        self._check_admin_state(props, f"port {name}")
        network = str(props.get("network") or "")
        if not network:
            raise CloudError(f"port {name} needs network", permanent=True)
        fixed = _entries(props.get("fixed_ips"), ("subnet", "ip_address"), "fixed_ips")
        if len(fixed) > 1:
            raise CloudError(f"port {name}: an AWS network interface has one subnet and "
                             "cloudtmpl sets its one primary address: give at most one "
                             "fixed_ips entry", permanent=True)
        entry = fixed[0] if fixed else {}
        ip = entry.get("ip_address")
        subnet = entry.get("subnet") or self._pick_subnet(
            region, network, None if ip else f"{region}a", ip)
        params = {"SubnetId": subnet, "ClientToken": uuid.uuid4().hex}
        if ip:
            params["PrivateIpAddress"] = ip
        for i, group in enumerate(props.get("security_groups") or [], 1):
            params[f"SecurityGroupId.{i}"] = str(group)
        tags = {**_identity_tags(name, stack, address, spec_hash), TAG_SHAPE: _shape(fixed)}
        eni = self._create_tagged(region, PORT, stack, address, "CreateNetworkInterface",
                                  params, tags)
        live = self._wait_raw(region, PORT, address, eni, timeout)
        if live.properties["network"] != network:
            self._ec2(region, "DeleteNetworkInterface", {"NetworkInterfaceId": eni})
            raise CloudError(f"port {name}: subnet {subnet} is not in network {network}",
                             permanent=True)
        return live

    @staticmethod
    def _fip_target(props: Mapping[str, Any]) -> tuple[str, str] | None:
        """What an elastic IP should be on: ("InstanceId", id), ("NetworkInterfaceId", id)."""
        server, port = props.get("server"), props.get("port")
        if server and port:
            raise CloudError("a floating IP is associated with a server or a port, not both",
                             permanent=True)
        if port:
            return "NetworkInterfaceId", str(port)
        return ("InstanceId", str(server)) if server else None

    def _create_address(self, region: str, stack: str, address: str, name: str,
                        props: Mapping[str, Any], spec_hash: str,
                        timeout: float) -> LiveResource:
        # floating_network: AWS has one address pool per region; nothing to choose.
        target = self._fip_target(props)
        tags = _identity_tags(name, stack, address, None if target else spec_hash)
        allocation_id = self._create_tagged(region, FLOATING_IP, stack, address,
                                            "AllocateAddress", {"Domain": "vpc"}, tags)
        if target:
            self._associate(region, allocation_id, target, timeout)
            self._create_tags(region, allocation_id, {TAG_SPEC: spec_hash})
        return self._refresh(region, FLOATING_IP, address, allocation_id)

    def _associate(self, region: str, allocation_id: str, target: tuple[str, str],
                   timeout: float, move: bool = False) -> None:
        if target[0] == "InstanceId":
            self._settled_instance(region, target[1], timeout, f"server {target[1]}")
        self._ec2(region, "AssociateAddress",
                  {"AllocationId": allocation_id, target[0]: target[1],
                   "AllowReassociation": "true" if move else "false"})

    def _create_attachment(self, region: str, stack: str, address: str, name: str,
                           props: Mapping[str, Any], spec_hash: str,
                           timeout: float) -> LiveResource:
        volume_id = str(props.get("volume_id") or "")
        instance_id = str(props.get("instance_uuid") or "")
        device = str(props.get("mountpoint") or "/dev/sdh")
        if not volume_id or not instance_id:
            raise CloudError("a volume attachment needs volume_id and instance_uuid",
                             permanent=True)
        vol = self._get_volume(region, volume_id)
        if vol is None:
            raise CloudError(f"InvalidVolume.NotFound: The volume '{volume_id}' does not exist.",
                             permanent=True)
        attached_to = vol.extra.get("instance_id")
        if attached_to and attached_to != instance_id:
            raise CloudError(f"VolumeInUse: volume {volume_id} is attached to {attached_to}",
                             permanent=True)
        if not attached_to:
            self._settled_instance(region, instance_id, timeout, f"server {instance_id}")
        # Record first, then attach: no attachment ever exists without its record.
        self._create_tags(region, volume_id,
                          {TAG_ATTACHMENT: address, TAG_ATTACHMENT_SPEC: spec_hash})
        if not attached_to:
            try:
                self._ec2(region, "AttachVolume",
                          {"VolumeId": volume_id, "InstanceId": instance_id, "Device": device})
            except CloudError:
                self._forget_attachment(region, volume_id)
                raise
        vol = self._wait_volume(
            region, volume_id, timeout, f"attachment {address} ({volume_id} → {instance_id})",
            ready=lambda v: (v.extra.get("state") == "in-use"
                             and v.extra.get("attachment_status") == "attached"),
            status_of=lambda v: v.extra.get("attachment_status") or v.extra.get("state") or "")
        live = self._attachment_live(region, vol)
        if live is None:  # pragma: no cover - waited for exactly this
            raise CloudError(f"attachment {address} vanished", permanent=True)
        return live

    def _forget_attachment(self, region: str, volume_id: str) -> None:
        try:
            self._delete_tags(region, volume_id, [TAG_ATTACHMENT, TAG_ATTACHMENT_SPEC])
        except CloudError as err:
            if not _has_code(err, "InvalidVolume.NotFound"):
                raise

    # ------------------------------------------------------------------ update

    def update(
        self,
        live: LiveResource,
        properties: Mapping[str, Any],
        changed: frozenset[str],
        *,
        stack: str,
        spec_hash: str,
        timeout: float,
    ) -> LiveResource:
        if live.kind in SERVICE_KINDS:  # -- DNS, buckets, load balancers (aws_services.py)
            return self._services().update(live, properties, changed, stack, spec_hash)
        allowed = {
            SERVER: {"flavor", "metadata"},
            VOLUME: {"size", "metadata"},
            SECURITY_GROUP: {"rules"},
            FLOATING_IP: {"server", "port"},
            ATTACHMENT: set(),
            KEYPAIR: set(),
            NETWORK: {"admin_state_up"},
            SUBNET: {"enable_dhcp", "dns_nameservers"},  # no per-subnet meaning in EC2
            PORT: {"security_groups", "admin_state_up"},
        }.get(live.kind)
        if allowed is None:
            raise CloudError(f"the aws provider cannot update {live.kind}", permanent=True)
        refused = sorted(set(changed) - allowed)
        if refused:
            raise CloudError(f"{live.kind} {live.address}: {', '.join(refused)} cannot change "
                             "in place; the resource must be replaced", permanent=True)
        region = live.placement.region
        if live.kind == SERVER:
            return self._update_server(region, live, properties, changed, spec_hash, timeout)
        if live.kind == VOLUME:
            return self._update_volume(region, live, properties, changed, spec_hash, timeout)
        if live.kind in (SECURITY_GROUP, NETWORK, SUBNET, PORT):
            if live.kind == SECURITY_GROUP and "rules" in changed:
                rules = canonical_rules(properties.get("rules") or [])
                _check_rules(rules)
                el = self._require(self._get_group(region, live.physical_id), live)
                current = self._group_live(region, live.address, el)
                self._apply_rules(region, live.physical_id, current.properties["rules"], rules,
                                  has_default_egress=_has_default_egress(el))
            if live.kind in (NETWORK, PORT):
                self._check_admin_state(properties, f"{live.kind} {live.address}")
            if live.kind == PORT and "security_groups" in changed:
                self._set_port_groups(region, live, [str(g) for g in
                                                     properties.get("security_groups") or []])
            self._create_tags(region, live.physical_id, {TAG_SPEC: spec_hash})
            return self._refresh(region, live.kind, live.address, live.physical_id)
        if live.kind == FLOATING_IP:
            return self._update_address(region, live, properties, changed, spec_hash, timeout)
        if live.kind == ATTACHMENT:
            volume_id = live.physical_id.split(":", 1)[0]
            self._create_tags(region, volume_id, {TAG_ATTACHMENT_SPEC: spec_hash})
            vol = self._require(self._get_volume(region, volume_id), live)
            return self._require(self._attachment_live(region, vol), live)
        # key pair: only the spec tag can change
        el = self._require(self._get_key_pair(region, live.physical_id), live)
        key_id = _text(el, "keyPairId")
        if key_id:
            self._create_tags(region, key_id, {TAG_SPEC: spec_hash})
            el = self._require(self._get_key_pair(region, live.physical_id), live)
        return self._key_pair_live(region, live.address, el)

    def _update_server(self, region: str, live: LiveResource, props: Mapping[str, Any],
                       changed: frozenset[str], spec_hash: str, timeout: float) -> LiveResource:
        iid = live.physical_id
        what = f"server {live.name or live.address} ({iid})"
        node = self._require(self._get_instance(region, iid), live)
        deadline = self._clock() + timeout
        flavor = str(props.get("flavor") or "")
        if "flavor" in changed and flavor and node.extra.get("instance_type") != flavor:
            if node.extra.get("status") != "stopped":
                self._call(lambda: self._driver(region).stop_node(node))
                node = self._wait_instance(region, iid, "stopped", timeout, what)
            size = NodeSize(flavor, flavor, 0, 0, None, 0.0, self._driver(region))
            self._call(lambda: self._driver(region).ex_change_node_size(node, size))
            self._call(lambda: self._driver(region).start_node(node))
            node = self._wait_instance(region, iid, "running",
                                       max(1.0, deadline - self._clock()), what)
        desired = _metadata(props) if "metadata" in changed else None
        self._sync_user_tags(region, iid, node.extra.get("tags") or {}, desired,
                             {TAG_SPEC: spec_hash})
        node = self._require(self._get_instance(region, iid), live)
        return self._server_live(region, live.address, node)

    def _update_volume(self, region: str, live: LiveResource, props: Mapping[str, Any],
                       changed: frozenset[str], spec_hash: str, timeout: float) -> LiveResource:
        vid = live.physical_id
        vol = self._require(self._get_volume(region, vid), live)
        if "size" in changed:
            want = int(props.get("size") or 0)
            have = int(vol.size)
            if want < have:
                raise CloudError(
                    f"volume {live.address} ({vid}): EBS volumes cannot shrink ({have} GiB → "
                    f"{want} GiB); the volume must be replaced", permanent=True)
            if want > have:
                self._call(lambda: self._driver(region).ex_modify_volume(vol,
                                                                         {"Size": str(want)}))
                vol = self._wait_volume(region, vid, timeout, f"volume {live.address} ({vid})",
                                        ready=lambda v: int(v.size) >= want,
                                        status_of=lambda v: f"{v.size} GiB, resizing")
        desired = _metadata(props) if "metadata" in changed else None
        self._sync_user_tags(region, vid, vol.extra.get("tags") or {}, desired,
                             {TAG_SPEC: spec_hash})
        vol = self._require(self._get_volume(region, vid), live)
        return self._volume_live(region, live.address, vol)

    def _update_address(self, region: str, live: LiveResource, props: Mapping[str, Any],
                        changed: frozenset[str], spec_hash: str,
                        timeout: float) -> LiveResource:
        alloc = live.physical_id
        el = self._require(self._get_address(region, alloc), live)
        target = self._fip_target(props)
        have = {"InstanceId": _text(el, "instanceId"),
                "NetworkInterfaceId": _text(el, "networkInterfaceId")}
        on_target = (target is None and not any(have.values())) or (
            target is not None and have[target[0]] == target[1])
        if changed & {"server", "port"} and not on_target:
            association = _text(el, "associationId")
            if target:  # moved in one call (AllowReassociation): never on nothing
                self._associate(region, alloc, target, timeout, move=bool(association))
            elif association:
                self._ec2(region, "DisassociateAddress", {"AssociationId": association})
        self._create_tags(region, alloc, {TAG_SPEC: spec_hash})
        return self._refresh(region, FLOATING_IP, live.address, alloc)

    def _set_port_groups(self, region: str, live: LiveResource, groups: list[str]) -> None:
        """An interface always has a group: none means its VPC's default group again."""
        if not groups:
            vpc = str(live.properties.get("network") or "")
            obj = self._ec2(region, "DescribeSecurityGroups",
                            _filters({"vpc-id": vpc, "group-name": "default"}))
            groups = [g for g in (_text(el, "groupId") for el in
                                  _items(obj, "securityGroupInfo/item")) if g][:1]
        params = {"NetworkInterfaceId": live.physical_id}
        params.update({f"SecurityGroupId.{i}": g for i, g in enumerate(groups, 1)})
        self._ec2(region, "ModifyNetworkInterfaceAttribute", params)

    # ------------------------------------------------------------------ delete

    def delete(self, live: LiveResource, *, timeout: float) -> None:
        region = live.placement.region
        kind = live.kind
        if kind in SERVICE_KINDS:  # -- DNS, buckets, load balancers (aws_services.py)
            self._services().delete(live, timeout)
        elif kind == SERVER:
            self._delete_server(region, live, timeout)
        elif kind in (SECURITY_GROUP, NETWORK, SUBNET):
            self._delete_while_busy(region, live, timeout, "DependencyViolation")
        elif kind == PORT:
            self._delete_port(region, live, timeout)
        elif kind == VOLUME:
            self._delete_volume(region, live, timeout)
        elif kind == ATTACHMENT:
            self._delete_attachment(region, live, timeout)
        elif kind == FLOATING_IP:
            self._delete_address(region, live)
        elif kind == KEYPAIR:
            try:
                self._ec2(region, "DeleteKeyPair", {"KeyName": live.physical_id})
            except CloudError as err:
                if not _has_code(err, "InvalidKeyPair.NotFound"):
                    raise
        else:
            raise CloudError(f"the aws provider cannot delete {kind}", permanent=True)

    def _delete_server(self, region: str, live: LiveResource, timeout: float) -> None:
        iid = live.physical_id
        try:
            self._ec2(region, "TerminateInstances", {"InstanceId.1": iid})
        except CloudError as err:
            if _has_code(err, "InvalidInstanceID.NotFound"):
                return
            raise
        self._wait_instance_gone(region, iid, timeout, f"server {live.name or live.address} "
                                                       f"({iid})")

    def _delete_while_busy(self, region: str, live: LiveResource, timeout: float,
                           *busy: str) -> None:
        """Delete; while the cloud says the object is still in use, wait and try again."""
        api = _RAW[live.kind]
        oid = live.physical_id

        def attempt() -> tuple[bool, str, None]:
            try:
                self._ec2(region, api.delete, {api.id_param: oid})
            except CloudError as err:
                if _has_code(err, *api.missing):
                    return True, "deleted", None
                codes = [c for c in busy if _has_code(err, c)]
                if codes:
                    return False, f"in use ({codes[0]})", None
                raise
            return True, "deleted", None

        self._poll(timeout, f"{api.what} {live.name or live.address} ({oid})", attempt)

    def _delete_port(self, region: str, live: LiveResource, timeout: float) -> None:
        """Detach from a server where it is a secondary interface; a primary interface
        detaches when its server terminates: wait for that."""
        el = self._get_raw(region, PORT, live.physical_id)
        if el is None:
            return
        attachment = _text(el, "attachment/attachmentId")
        if attachment and _text(el, "attachment/deviceIndex") not in (None, "0") and \
                _text(el, "attachment/status") in ("attaching", "attached"):
            try:
                self._ec2(region, "DetachNetworkInterface", {"AttachmentId": attachment})
            except CloudError as err:
                if not _has_code(err, "InvalidAttachmentID.NotFound"):
                    raise
        self._delete_while_busy(region, live, timeout, "InvalidNetworkInterface.InUse")

    def _delete_volume(self, region: str, live: LiveResource, timeout: float) -> None:
        vid = live.physical_id
        try:
            self._ec2(region, "DeleteVolume", {"VolumeId": vid})
        except CloudError as err:
            if _has_code(err, "InvalidVolume.NotFound"):
                return
            raise

        def gone() -> tuple[bool, str, None]:
            vol = self._get_volume(region, vid)
            state = "deleted" if vol is None else (vol.extra.get("state") or "")
            return state == "deleted", state, None

        self._poll(timeout, f"volume {live.name or live.address} ({vid})", gone)

    # ------------------------------------------------------------------ snapshot

    snapshot_kind = "EBS snapshot"

    def snapshot_volume(self, live: LiveResource, *, stack: str, timeout: float) -> str | None:
        """deletion_policy Snapshot: an EBS snapshot of the volume (``CreateSnapshot``,
        tagged in the call), waited on until ``completed``.  CreateSnapshot has no
        idempotency token: a snapshot of this volume by this stack that is pending or
        completed (an ambiguous failure retried, or a killed run) is reused."""
        if live.kind != VOLUME:
            raise CloudError(f"the aws provider cannot snapshot {live.kind}", permanent=True)
        region = live.placement.region
        vid = live.physical_id
        name = snapshot_name(stack, live.address, vid)
        tags = {TAG_NAME: name, TAG_STACK: stack, TAG_RESOURCE: live.address,
                TAG_SNAPSHOT_OF: vid}
        what = f"snapshot {name}"

        def find(retry: bool) -> str | None:
            obj = self._ec2(region, "DescribeSnapshots", {
                "Owner.1": "self",
                **_filters({"volume-id": vid, f"tag:{TAG_SNAPSHOT_OF}": vid,
                            f"tag:{TAG_STACK}": stack})}, retry=retry)
            for el in _items(obj, "snapshotSet/item"):
                if _text(el, "status") != "error":  # a failed one is no snapshot
                    return _text(el, "snapshotId")
            return None

        attempts = 0

        def once() -> str | None:
            nonlocal attempts
            attempts += 1
            found = find(retry=False) if attempts > 1 else None
            if found is not None:
                return found
            try:
                obj = self._ec2(region, "CreateSnapshot", {
                    "VolumeId": vid, **_tag_spec("snapshot", tags),
                    "Description": f"cloudtmpl: volume {vid} ({physical_name(stack, live.address)})"
                                   " before it was deleted (deletion_policy Snapshot)"},
                    retry=False)
            except CloudError as err:
                if _has_code(err, "InvalidVolume.NotFound"):
                    return None  # already gone: nothing to keep
                raise
            return _text(obj, "snapshotId") or ""

        snap_id = find(retry=True) or self._call(once)
        if not snap_id:
            return None

        def fetch() -> tuple[bool, str, None]:
            try:
                obj = self._ec2(region, "DescribeSnapshots", {"SnapshotId.1": snap_id})
            except CloudError as err:
                if _has_code(err, "InvalidSnapshot.NotFound"):  # eventual consistency
                    return False, "pending", None
                raise
            items = _items(obj, "snapshotSet/item")
            status = (_text(items[0], "status") or "") if items else "pending"
            if status == "error":  # it holds nothing: deleted, the cloud's words kept
                message = _text(items[0], "stateMessage") or "state error"
                with contextlib.suppress(CloudError):
                    self._ec2(region, "DeleteSnapshot", {"SnapshotId": snap_id})
                raise CloudError(f"{what} ({snap_id}) of volume {vid} failed: {message}",
                                 permanent=True, status=status)
            progress = _text(items[0], "progress") if items else None
            return status == "completed", f"{status} {progress or ''}".strip(), None

        self._poll(timeout, f"{what} ({snap_id})", fetch)
        return snap_id

    def _delete_attachment(self, region: str, live: LiveResource, timeout: float) -> None:
        volume_id, _, instance_id = live.physical_id.partition(":")
        vol = self._get_volume(region, volume_id)
        if vol is None:
            return
        if vol.extra.get("instance_id") == instance_id and \
                vol.extra.get("attachment_status") in _LIVE_ATTACHMENT_STATES:
            try:
                self._ec2(region, "DetachVolume",
                          {"VolumeId": volume_id, "InstanceId": instance_id})
            except CloudError as err:
                if not _has_code(err, "IncorrectState", "InvalidAttachment.NotFound",
                                 "InvalidVolume.NotFound"):
                    raise

            def detached() -> tuple[bool, str, None]:
                v = self._get_volume(region, volume_id)
                if v is None:
                    return True, "deleted", None
                if v.extra.get("instance_id") == instance_id:
                    return False, v.extra.get("attachment_status") or "detaching", None
                return True, v.extra.get("state") or "", None

            self._poll(timeout, f"attachment {live.address} ({volume_id} → {instance_id})",
                       detached)
        tags = vol.extra.get("tags") or {}
        if tags.get(TAG_ATTACHMENT) in (None, live.address):
            self._forget_attachment(region, volume_id)

    def _delete_address(self, region: str, live: LiveResource) -> None:
        alloc = live.physical_id
        el = self._get_address(region, alloc)
        if el is None:
            return
        association = _text(el, "associationId")
        if association:
            try:
                self._ec2(region, "DisassociateAddress", {"AssociationId": association})
            except CloudError as err:
                if not _has_code(err, "InvalidAssociationID.NotFound"):
                    raise
        self._delete_while_busy(region, live, 0.0)
