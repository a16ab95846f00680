"""DNS zones and records (Route53), buckets (S3) and load balancers (classic ELB) on AWS.

Called by :class:`cloudtmpl.providers.aws.AwsAdapter` for four kinds; it shares the
adapter's credentials, retries, request counter and rate limiter, and takes each
service's endpoint from it (the target's ``endpoint:``, else ``AWS_ENDPOINT_URL_S3``,
``AWS_ENDPOINT_URL_ROUTE_53``, ``AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING``,
``AWS_ENDPOINT_URL`` or the profile's, see :mod:`cloudtmpl.settings.aws`).  The
connections are libcloud's own (``Route53DNSDriver``, ``S3StorageDriver``,
``ElasticLBDriver``: signing, endpoints), one per thread, service and region; the
requests are raw (XML built and read here) because libcloud's helpers cannot carry
what cloudtmpl needs (multi-value UPSERTs, tags, versioning) and its ELB parsing is
broken (``create_balancer`` gives ``ip=None``, ``list_balancers`` ``port=None``,
``ex_create_balancer_listeners`` sends nothing).  Every answer is read here, so a
libcloud error parser never runs (Route53's crashes without a zone context).

For a sandbox target every connection's host is checked to be loopback before its
first request (the ELB driver's constructor points at the real AWS host).

Identity (how each object is known as the stack's without the state):

* ``Cloud::DNS::Zone`` - physical id: the hosted zone id.  Route53 zones have no
  name of ours, so the zone's *comment* carries the marker
  ``cloudtmpl:stack=S;cloudtmpl:resource=A;cloudtmpl:region=R;ttl=N;cloudtmpl:spec=H``
  (`` -- `` and the template's comment after it), written by ``CreateHostedZone``
  itself (atomic).  Route53 is global: the zone belongs to the region its marker
  names.  Tags (``metadata``) go on with ``ChangeTagsForResource``; the spec goes in
  after them.
* ``Cloud::DNS::Record`` - physical id ``{zone id}:{TYPE}:{fqdn}``.  Records have no
  tags: each gets an ownership TXT record ``_cloudtmpl-{type}.{name}`` holding
  ``cloudtmpl:stack=…;cloudtmpl:resource=…;cloudtmpl:spec=…``, written in the same
  change batch (Route53 applies a batch atomically: no record without its marker).
  Records live in zones of the same stack (they are listed from those zones).
* ``Cloud::Storage::Bucket`` - physical id: the bucket name, deterministic
  ``<stack>-<address>[-<name_suffix>]`` in S3's alphabet (63 characters at most, a
  hash keeps long names unique) plus tags ``cloudtmpl:stack``/``resource``/
  ``region``/``spec`` (and ``cloudtmpl:force``).  CreateBucket takes no tags: a
  crash between the two calls leaves an untagged bucket that discovery does not
  report, and the next create adopts it (``BucketAlreadyOwnedByYou``).
* ``Cloud::LB::LoadBalancer`` - physical id: the balancer name,
  ``<stack>-<address>`` in ELB's alphabet (32 characters at most, hashed when
  longer); tags in ``CreateLoadBalancer`` itself, the spec tag after the health
  check and members are in place.

Discovery per (region): ``ListHostedZones`` (+ one ``ListResourceRecordSets`` per zone
of the stack in the region), ``ListBuckets`` (+ ``GetBucketTagging`` and
``GetBucketVersioning`` per bucket with the stack's name prefix),
``DescribeLoadBalancers`` (+ ``DescribeTags`` per 20 balancers with the stack's
name prefix) - every page of each.

Deleting a non-empty bucket is refused unless its live ``force`` tag says true
(``force: true`` in the template when it was last applied); then every object
version is deleted first.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from libcloud.dns.providers import get_driver as get_dns_driver
from libcloud.dns.types import Provider as DnsProvider
from libcloud.loadbalancer.providers import get_driver as get_lb_driver
from libcloud.loadbalancer.types import Provider as LbProvider
from libcloud.storage.providers import get_driver as get_storage_driver
from libcloud.storage.types import Provider as StorageProvider

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.retry import RETRYABLE_AWS_CODES, RETRYABLE_HTTP_STATUS

if TYPE_CHECKING:
    from cloudtmpl.providers.aws import AwsAdapter
    from cloudtmpl.providers.aws_credentials import Credentials

ZONE = "Cloud::DNS::Zone"
RECORD = "Cloud::DNS::Record"
BUCKET = "Cloud::Storage::Bucket"
LOAD_BALANCER = "Cloud::LB::LoadBalancer"
SERVICE_KINDS = frozenset({ZONE, RECORD, BUCKET, LOAD_BALANCER})

TAG_REGION = "cloudtmpl:region"
TAG_FORCE = "cloudtmpl:force"
R53 = "/2012-02-29"  # the Route53 API version libcloud's driver speaks
R53_NS = "https://route53.amazonaws.com/doc/2012-02-29/"
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
ELB_VERSION = "2012-06-01"
RECORD_TYPES = frozenset({"A", "AAAA", "CNAME", "TXT", "MX", "NS", "PTR", "SRV", "SPF", "CAA"})
_MARKER_PREFIX = "_cloudtmpl-"
_ZONE_MARKER = re.compile(
    r"^" + re.escape(TAG_STACK) + r"=([^;]*);" + re.escape(TAG_RESOURCE) + r"=([^;]*);"
    + re.escape(TAG_REGION) + r"=([^;]*);ttl=(\d+);" + re.escape(TAG_SPEC) + r"=([^; ]*)"
    r"(?: -- (.*))?$", re.S)
_RECORD_MARKER = re.compile(
    r"^" + re.escape(TAG_STACK) + r"=([^;]*);" + re.escape(TAG_RESOURCE) + r"=([^;]*);"
    + re.escape(TAG_SPEC) + r"=(.*)$")
_HEALTH_DEFAULTS = {"interval": 30, "timeout": 5, "healthy_threshold": 10,
                    "unhealthy_threshold": 2}
_HEALTH_KEYS = {"target": "Target", "interval": "Interval", "timeout": "Timeout",
                "healthy_threshold": "HealthyThreshold",
                "unhealthy_threshold": "UnhealthyThreshold"}


# ---------------------------------------------------------------------- names and XML


def _hashed(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return text[: limit - 9].rstrip("-.") + "-" + digest


def bucket_name(stack: str, address: str, suffix: str | None = None) -> str:
    """``<stack>-<address>[-<suffix>]`` in S3's alphabet (3-63 of ``a-z0-9-``)."""
    def clean(text: str) -> str:
        return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", text.lower())).strip("-")

    parts = [clean(stack), clean(address)] + ([clean(suffix)] if suffix else [])
    return _hashed("-".join(p for p in parts if p), 63)


def bucket_prefix(stack: str) -> str:
    return bucket_name(stack, "x")[:-1]


def lb_name(stack: str, address: str) -> str:
    """``<stack>-<address>`` in ELB's alphabet (1-32 of ``A-Za-z0-9-``)."""
    text = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9-]+", "-", f"{stack}-{address}"))
    return _hashed(text.strip("-"), 32)


def lb_prefix(stack: str) -> str:
    return lb_name(stack, "x")[:-1][:23]


def _find(el: ET.Element | None, path: str) -> ET.Element | None:
    if el is None:
        return None
    return el.find("/".join(f"{{*}}{p}" for p in path.split("/")))


def _all(el: ET.Element | None, path: str) -> list[ET.Element]:
    if el is None:
        return []
    return el.findall("/".join(f"{{*}}{p}" for p in path.split("/")))


def _txt(el: ET.Element | None, path: str) -> str | None:
    found = _find(el, path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _x(value: Any) -> str:
    return escape(str(value))


def _fqdn(name: str, domain: str) -> str:
    name = (name or "").strip()
    if name in ("", "@"):
        return domain
    if name.endswith("."):
        return name.lower()
    return f"{name}.{domain}".lower()


def _relative(fqdn: str, domain: str) -> str:
    fqdn = _unescape_name(fqdn).lower()
    if fqdn == domain:
        return ""
    return fqdn[: -len(domain) - 1] if fqdn.endswith("." + domain) else fqdn


def _unescape_name(name: str) -> str:
    """Route53 returns ``*`` and other specials as ``\\052``."""
    return re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), name)


def _marker_name(rtype: str, name: str, domain: str) -> str:
    rel = "" if name in ("", "@") else name.rstrip(".")
    if rel.endswith("." + domain.rstrip(".")):
        rel = rel[: -len(domain)]
    label = f"{_MARKER_PREFIX}{rtype.lower()}"
    return f"{label}.{rel}.{domain}" if rel else f"{label}.{domain}"


def _quote_txt(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote_txt(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return re.sub(r'\\(["\\])', r"\1", value[1:-1])
    return value


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")


def _user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k != "Name" and not k.startswith("cloudtmpl:")}


def reserved_tag(key: str) -> str | None:
    """Why ``key`` may not be a user's tag on AWS (None: it may)."""
    if key == "Name" or key.startswith(("cloudtmpl:", "aws:")):
        return "is reserved (Name, cloudtmpl:* and aws:* tags are managed by cloudtmpl and AWS)"
    return None


def _metadata(properties: Mapping[str, Any]) -> dict[str, str]:
    return kit.metadata(properties, reserved_tag)


def _health(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    if not isinstance(value, Mapping) or not value.get("target"):
        raise CloudError("health_check needs a target, e.g. {target: 'HTTP:80/'}",
                         permanent=True)
    unknown = sorted(set(value) - set(_HEALTH_KEYS))
    if unknown:
        raise CloudError(f"health_check: unknown keys {', '.join(unknown)} (it takes "
                         f"{', '.join(_HEALTH_KEYS)})", permanent=True)
    out: dict[str, Any] = {"target": str(value["target"])}
    for key, default in _HEALTH_DEFAULTS.items():
        out[key] = int(value.get(key, default))
    return out


def _listeners(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise CloudError("listeners must be a non-empty list of {protocol, port, "
                         "instance_port}", permanent=True)
    out = []
    for raw in value:
        if not isinstance(raw, Mapping) or raw.get("port") is None:
            raise CloudError(f"listener {raw!r}: needs at least a port", permanent=True)
        proto = str(raw.get("protocol") or "HTTP").upper()
        out.append({"protocol": proto, "port": int(raw["port"]),
                    "instance_port": int(raw.get("instance_port") or raw["port"]),
                    "instance_protocol": str(raw.get("instance_protocol") or proto).upper()})
    return sorted(out, key=lambda x: (x["port"], x["protocol"]))


# ---------------------------------------------------------------------- the services


class _Raw:
    """Mixed into a connection's response class: every answer is returned, never raised."""

    def success(self) -> bool:
        return True


class AwsServices:
    """Route53, S3 and ELB for one :class:`AwsAdapter` (see the module docstring)."""

    def __init__(self, adapter: AwsAdapter) -> None:
        self.a = adapter
        self._local = threading.local()

    # ---- plumbing

    def _conn(self, service: str, region: str) -> Any:
        conns: dict[tuple[str, str], tuple[Any, Any]] | None = getattr(self._local, "conns",
                                                                         None)
        if conns is None:
            conns = self._local.conns = {}
        creds = self.a._credentials()
        cached = conns.get((service, region))
        if cached is None or cached[0] != creds:  # new, or temporary credentials refreshed
            cached = conns[(service, region)] = (creds, self._new_conn(service, region, creds))
        return cached[1]

    def _new_conn(self, service: str, region: str, creds: Credentials) -> Any:
        a = self.a
        endpoint = a._endpoint_for(service)
        where: dict[str, Any] = {}
        driver: Any
        if endpoint is not None:
            where = {"host": endpoint[0], "port": endpoint[1], "secure": endpoint[2]}
        if service == "route53":
            driver = get_dns_driver(DnsProvider.ROUTE53)(creds.key, creds.secret,
                                                         token=creds.token, **where)
        elif service == "s3":
            driver = get_storage_driver(StorageProvider.S3)(creds.key, creds.secret,
                                                            token=creds.token, region=region,
                                                            **where)
            if region != "us-east-1":
                driver.ex_location_name = region
        else:
            # the ELB driver takes no host/port: point its connection at the endpoint
            driver = get_lb_driver(LbProvider.ELB)(creds.key, creds.secret, region,
                                                   token=creds.token)
            if endpoint is not None:
                driver.connection.host, driver.connection.port = endpoint[0], endpoint[1]
                driver.connection.secure = endpoint[2]
        conn = driver.connection
        if a.target.sandbox:
            self._check_loopback(str(conn.host), service)
        raw_cls: Any = type(f"Raw{conn.responseCls.__name__}", (_Raw, conn.responseCls), {})
        conn.responseCls = raw_cls
        if service == "elb" and endpoint is not None:
            conn.connect()  # (re)connect to the endpoint, not the AWS host
        original = conn.request

        def counted(*args: Any, **kw: Any) -> Any:
            kw["retry_failed"] = False  # retries are ours, and counted
            a._limiter.acquire()
            a._counted()
            return original(*args, **kw)

        setattr(conn, "request", counted)  # noqa: B010 - instance-level wrap
        return conn

    def _check_loopback(self, host: str, service: str) -> None:
        try:
            ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = False
        if not ok:
            raise CloudError(f"sandbox target {self.a.target.name!r}: the {service} "
                             f"connection points at {host!r}, not at the local sandbox",
                             permanent=True)

    def _request(self, service: str, region: str, path: str, *, method: str = "GET",
                 params: Mapping[str, str] | None = None, data: str | None = None,
                 headers: Mapping[str, str] | None = None,
                 ok: Iterable[str] = ()) -> tuple[int, ET.Element | None, str]:
        """One request; (status, parsed XML, error code).  An error answer whose code
        is in ``ok`` is returned, any other raises a CloudError (retried if transient)."""
        accepted = set(ok)

        def go() -> tuple[int, ET.Element | None, str]:
            conn = self._conn(service, region)
            kw: dict[str, Any] = {"params": dict(params or {}), "method": method,
                                  "headers": dict(headers or {})}
            if data is not None:
                kw["data"] = data
            resp = conn.request(path, **kw)
            status = int(resp.status)
            body = resp.object if isinstance(resp.object, ET.Element) else None
            if body is None and isinstance(resp.body, (str, bytes)) and resp.body.strip():
                try:
                    body = ET.fromstring(resp.body)
                except ET.ParseError:
                    body = None
            if status < 400:
                return status, body, ""
            code = _txt(body, "Error/Code") or _txt(body, "Code") or ""
            if body is not None and body.tag.endswith("Error") and not code:
                code = _txt(body, "Code") or ""
            if code in accepted or str(status) in accepted:
                return status, body, code
            message = (_txt(body, "Error/Message") or _txt(body, "Message")
                       or (resp.body[:300] if isinstance(resp.body, str) else ""))
            retryable = code in RETRYABLE_AWS_CODES or status in RETRYABLE_HTTP_STATUS
            raise CloudError(f"{code or 'HTTP ' + str(status)}: {message}",
                             permanent=not retryable, status=str(status))

        return self.a._call(go)

    def _elb(self, region: str, action: str, params: Mapping[str, str] | None = None,
             ok: Iterable[str] = ()) -> tuple[ET.Element | None, str]:
        full = {"Action": action, "Version": ELB_VERSION, **(params or {})}
        _, body, code = self._request("elb", region, "/", params=full, ok=ok)
        return body, code

    def _live(self, region: str, kind: str, address: str, pid: str, name: str,
              properties: dict[str, Any], attributes: dict[str, Any], spec: str | None,
              status: str = "available") -> LiveResource:
        return LiveResource(address=address, kind=kind, physical_id=pid,
                            placement=self.a._placement(region), name=name,
                            properties=properties, attributes=attributes,
                            spec_hash=spec or None, status=status)

    # ---- the adapter verbs

    def discover_jobs(self, region: str, kinds: frozenset[str],
                      stack: str) -> list[Callable[[], list[LiveResource]]]:
        jobs: list[Callable[[], list[LiveResource]]] = []
        if ZONE in kinds or RECORD in kinds:
            jobs.append(lambda: self._discover_dns(region, stack, kinds))
        if BUCKET in kinds:
            jobs.append(lambda: self._discover_buckets(region, stack))
        if LOAD_BALANCER in kinds:
            jobs.append(lambda: self._discover_lbs(region, stack))
        return jobs

    def create(self, region: str, kind: str, stack: str, address: str,
               properties: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        if kind == ZONE:
            return self._create_zone(region, stack, address, properties, spec_hash)
        if kind == RECORD:
            return self._put_record(region, stack, address, properties, spec_hash, create=True)
        if kind == BUCKET:
            return self._create_bucket(region, stack, address, properties, spec_hash)
        return self._create_lb(region, stack, address, properties, spec_hash)

    def update(self, live: LiveResource, properties: Mapping[str, Any], changed: frozenset[str],
               stack: str, spec_hash: str) -> LiveResource:
        allowed = {ZONE: {"ttl", "comment", "metadata"}, RECORD: {"ttl", "records"},
                   BUCKET: {"versioning", "metadata", "force"},
                   LOAD_BALANCER: {"listeners", "members", "health_check", "metadata"}}
        refused = sorted(set(changed) - allowed[live.kind])
        if refused:
            raise CloudError(f"{live.kind} {live.address}: {', '.join(refused)} cannot change "
                             "in place; the resource must be replaced", permanent=True)
        region = live.placement.region
        if live.kind == ZONE:
            return self._update_zone(region, stack, live, properties, spec_hash)
        if live.kind == RECORD:
            return self._put_record(region, stack, live.address, properties, spec_hash,
                                    create=False)
        if live.kind == BUCKET:
            return self._update_bucket(region, stack, live, properties, changed, spec_hash)
        return self._update_lb(region, stack, live, properties, changed, spec_hash)

    def delete(self, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        if live.kind == ZONE:
            self._request("route53", region, f"{R53}/hostedzone/{live.physical_id}",
                          method="DELETE", ok=("NoSuchHostedZone", "404"))
        elif live.kind == RECORD:
            self._delete_record(region, live)
        elif live.kind == BUCKET:
            self._delete_bucket(region, live)
        else:
            self._elb(region, "DeleteLoadBalancer", {"LoadBalancerName": live.physical_id},
                      ok=("LoadBalancerNotFound",))

    # ------------------------------------------------------------------ DNS

    def _zones(self, region: str) -> list[ET.Element]:
        out: list[ET.Element] = []
        params = {"maxitems": "100"}
        seen: set[str] = set()
        while True:
            _, body, _ = self._request("route53", region, f"{R53}/hostedzone", params=params)
            out.extend(_all(body, "HostedZones/HostedZone"))
            marker = _txt(body, "NextMarker")
            if _txt(body, "IsTruncated") != "true" or not marker or marker in seen:
                return out
            seen.add(marker)
            params = {"maxitems": "100", "marker": marker}

    @staticmethod
    def _zone_marker(el: ET.Element | None) -> tuple[str, str, str, int, str, str] | None:
        found = _ZONE_MARKER.match(_txt(el, "Config/Comment") or "")
        if found is None:
            return None
        stack, address, region, ttl, spec, comment = found.groups()
        return stack, address, region, int(ttl), spec, comment or ""

    def _record_sets(self, region: str, zone_id: str, start: tuple[str, str] | None = None,
                     limit: int | None = None) -> list[ET.Element]:
        out: list[ET.Element] = []
        params: dict[str, str] = {"maxitems": str(limit or 300)}
        if start:
            params.update(name=start[0], type=start[1])
        while True:
            _, body, _ = self._request("route53", region, f"{R53}/hostedzone/{zone_id}/rrset",
                                       params=params)
            out.extend(_all(body, "ResourceRecordSets/ResourceRecordSet"))
            nxt = _txt(body, "NextRecordName")
            if limit or _txt(body, "IsTruncated") != "true" or not nxt:
                return out
            params = {"maxitems": "300", "name": nxt}
            if _txt(body, "NextRecordType"):
                params["type"] = _txt(body, "NextRecordType") or ""

    def _discover_dns(self, region: str, stack: str,
                      kinds: frozenset[str]) -> list[LiveResource]:
        out = []
        for el in self._zones(region):
            marker = self._zone_marker(el)
            if marker is None or marker[0] != stack or marker[2] != region:
                continue
            zone_id = (_txt(el, "Id") or "").rsplit("/", 1)[-1]
            domain = (_txt(el, "Name") or "").lower()
            sets = self._record_sets(region, zone_id)
            if ZONE in kinds:
                out.append(self._zone_live(region, zone_id, domain, marker, sets))
            if RECORD in kinds:
                out.extend(self._records_live(region, stack, zone_id, domain, sets))
        return out

    def _zone_live(self, region: str, zone_id: str, domain: str,
                   marker: tuple[str, str, str, int, str, str],
                   sets: list[ET.Element]) -> LiveResource:
        _, address, _, ttl, spec, comment = marker
        ns = [v for s in sets if _txt(s, "Type") == "NS" and _unescape_name(
            _txt(s, "Name") or "").lower() == domain for v in self._values(s)]
        return self._live(region, ZONE, address, zone_id, domain,
                          {"domain": domain, "ttl": ttl, "comment": comment},
                          {"domain": domain, "name_servers": ns, "id": zone_id}, spec)

    @staticmethod
    def _values(rrset: ET.Element) -> list[str]:
        return [_txt(r, "Value") or "" for r in _all(rrset, "ResourceRecords/ResourceRecord")]

    def _records_live(self, region: str, stack: str, zone_id: str, domain: str,
                      sets: list[ET.Element]) -> list[LiveResource]:
        by_key = {(_unescape_name(_txt(s, "Name") or "").lower(), _txt(s, "Type") or ""): s
                  for s in sets}
        out = []
        for (fqdn, rtype), rrset in by_key.items():
            if rtype != "TXT" or not fqdn.startswith(_MARKER_PREFIX):
                continue
            values = [_unquote_txt(v) for v in self._values(rrset)]
            found = _RECORD_MARKER.match(values[0]) if values else None
            if found is None or found.group(1) != stack:
                continue
            label, _, rest = fqdn.partition(".")
            target_type = label[len(_MARKER_PREFIX):].upper()
            target = by_key.get((rest, target_type))
            if target is None:
                continue  # a marker whose record is gone: nothing to report
            out.append(self._record_live(region, zone_id, domain, found.group(2),
                                         found.group(3), target))
        return out

    def _record_live(self, region: str, zone_id: str, domain: str, address: str,
                     spec: str | None, rrset: ET.Element) -> LiveResource:
        fqdn = _unescape_name(_txt(rrset, "Name") or "").lower()
        rtype = _txt(rrset, "Type") or ""
        values = self._values(rrset)
        if rtype in ("TXT", "SPF"):
            values = [_unquote_txt(v) for v in values]
        values = sorted(values)
        ttl = int(_txt(rrset, "TTL") or 0)
        return self._live(region, RECORD, address, f"{zone_id}:{rtype}:{fqdn}", fqdn,
                          {"zone": zone_id, "name": _relative(fqdn, domain), "type": rtype,
                           "ttl": ttl, "records": values},
                          {"fqdn": fqdn, "records": values}, spec)

    def _get_zone(self, region: str, zone_id: str) -> ET.Element | None:
        status, body, _ = self._request("route53", region, f"{R53}/hostedzone/{zone_id}",
                                        ok=("NoSuchHostedZone", "404"))
        return None if status >= 400 else _find(body, "HostedZone")

    def _zone_comment(self, stack: str, address: str, region: str,
                      properties: Mapping[str, Any], spec: str) -> str:
        head = (f"{TAG_STACK}={stack};{TAG_RESOURCE}={address};{TAG_REGION}={region};"
                f"ttl={int(properties.get('ttl') or 3600)};{TAG_SPEC}={spec}")
        comment = str(properties.get("comment") or "")
        if comment:
            head += " -- " + comment
        if len(head) > 256:
            raise CloudError(f"zone {address}: the comment is too long (Route53 keeps 256 "
                             f"characters, {len(head) - len(comment)} of them cloudtmpl's "
                             "marker)", permanent=True)
        return head

    def _create_zone(self, region: str, stack: str, address: str,
                     properties: Mapping[str, Any], spec_hash: str) -> LiveResource:
        domain = str(properties.get("domain") or "").lower().rstrip(".") + "."
        if domain == ".":
            raise CloudError(f"zone {address}: domain is empty", permanent=True)
        tags = _metadata(properties)
        first_spec = "" if tags else spec_hash
        attempts = 0

        def find() -> str | None:
            for el in self._zones(region):
                m = self._zone_marker(el)
                if m and m[0] == stack and m[1] == address and m[2] == region:
                    return (_txt(el, "Id") or "").rsplit("/", 1)[-1]
            return None

        def post() -> str:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # an ambiguous failure may have created it: look first
                found = find()
                if found:
                    return found
            comment = self._zone_comment(stack, address, region, properties, first_spec)
            body = (f'<?xml version="1.0" encoding="UTF-8"?><CreateHostedZoneRequest '
                    f'xmlns="{R53_NS}"><Name>{_x(domain)}</Name><CallerReference>'
                    f'{_x(address[:40])}-{uuid.uuid4().hex}</CallerReference>'
                    f'<HostedZoneConfig><Comment>{_x(comment)}</Comment></HostedZoneConfig>'
                    "</CreateHostedZoneRequest>")
            conn_call = self._request("route53", region, f"{R53}/hostedzone", method="POST",
                                      data=body)
            return (_txt(conn_call[1], "HostedZone/Id") or "").rsplit("/", 1)[-1]

        zone_id = self.a._call(post)
        if tags:
            self._zone_tags(region, zone_id, tags, remove=())
            self._set_zone_comment(region, zone_id,
                                   self._zone_comment(stack, address, region, properties,
                                                      spec_hash))
        return self._zone_now(region, zone_id, address)

    def _zone_now(self, region: str, zone_id: str, address: str) -> LiveResource:
        el = self._get_zone(region, zone_id)
        marker = self._zone_marker(el)
        if el is None or marker is None:
            raise CloudError(f"zone {address} ({zone_id}) is gone", permanent=True)
        domain = (_txt(el, "Name") or "").lower()
        return self._zone_live(region, zone_id, domain, marker,
                               self._record_sets(region, zone_id))

    def _set_zone_comment(self, region: str, zone_id: str, comment: str) -> None:
        body = (f'<?xml version="1.0" encoding="UTF-8"?><UpdateHostedZoneCommentRequest '
                f'xmlns="{R53_NS}"><Comment>{_x(comment)}</Comment>'
                "</UpdateHostedZoneCommentRequest>")
        self._request("route53", region, f"{R53}/hostedzone/{zone_id}", method="POST",
                      data=body)

    def _zone_tags(self, region: str, zone_id: str, add: Mapping[str, str],
                   remove: Iterable[str]) -> None:
        adds = "".join(f"<Tag><Key>{_x(k)}</Key><Value>{_x(v)}</Value></Tag>"
                       for k, v in add.items())
        removes = "".join(f"<Key>{_x(k)}</Key>" for k in remove)
        body = (f'<?xml version="1.0" encoding="UTF-8"?><ChangeTagsForResourceRequest '
                f'xmlns="{R53_NS}">' + (f"<AddTags>{adds}</AddTags>" if adds else "")
                + (f"<RemoveTagKeys>{removes}</RemoveTagKeys>" if removes else "")
                + "</ChangeTagsForResourceRequest>")
        if adds or removes:
            self._request("route53", region, f"{R53}/tags/hostedzone/{zone_id}",
                          method="POST", data=body)

    def _update_zone(self, region: str, stack: str, live: LiveResource,
                     properties: Mapping[str, Any], spec_hash: str) -> LiveResource:
        zone_id = live.physical_id
        tags = _metadata(properties)
        _, body, _ = self._request("route53", region, f"{R53}/tags/hostedzone/{zone_id}")
        have = {(_txt(t, "Key") or ""): (_txt(t, "Value") or "")
                for t in _all(body, "ResourceTagSet/Tags/Tag")}
        self._zone_tags(region, zone_id, {k: v for k, v in tags.items() if have.get(k) != v},
                        sorted(set(_user_tags(have)) - set(tags)))
        self._set_zone_comment(region, zone_id, self._zone_comment(
            stack, live.address, region, properties, spec_hash))
        return self._zone_now(region, zone_id, live.address)

    def _owned_zone(self, region: str, stack: str, zone_id: str, address: str) -> str:
        el = self._get_zone(region, zone_id)
        if el is None:
            raise CloudError(f"record {address}: zone {zone_id!r} does not exist",
                             permanent=True)
        marker = self._zone_marker(el)
        if marker is None or marker[0] != stack:
            raise CloudError(f"record {address}: zone {zone_id} ({_txt(el, 'Name')}) is not a "
                             f"zone of stack {stack!r}; cloudtmpl manages records only in "
                             "its own zones (give the zone as {get_resource: ZONE})",
                             permanent=True)
        return (_txt(el, "Name") or "").lower()

    def _rrset_xml(self, action: str, fqdn: str, rtype: str, ttl: int,
                   values: list[str]) -> str:
        recs = "".join(f"<ResourceRecord><Value>{_x(v)}</Value></ResourceRecord>"
                       for v in values)
        return (f"<Change><Action>{action}</Action><ResourceRecordSet><Name>{_x(fqdn)}</Name>"
                f"<Type>{rtype}</Type><TTL>{ttl}</TTL><ResourceRecords>{recs}"
                "</ResourceRecords></ResourceRecordSet></Change>")

    def _change(self, region: str, zone_id: str, changes: list[str],
                ok: Iterable[str] = ()) -> tuple[str, str]:
        """One atomic change batch; (error code, message) of an accepted error."""
        body = (f'<?xml version="1.0" encoding="UTF-8"?><ChangeResourceRecordSetsRequest '
                f'xmlns="{R53_NS}"><ChangeBatch><Changes>{"".join(changes)}</Changes>'
                "</ChangeBatch></ChangeResourceRecordSetsRequest>")
        _, answer, code = self._request("route53", region,
                                        f"{R53}/hostedzone/{zone_id}/rrset",
                                        method="POST", data=body, ok=ok)
        return code, (_txt(answer, "Error/Message") or "") if code else ""

    def _record_values(self, address: str, rtype: str, values: Any) -> list[str]:
        if not isinstance(values, list) or not values:
            raise CloudError(f"record {address}: records must be a non-empty list of values",
                             permanent=True)
        out = [str(v) for v in values if v is not None and str(v) != ""]
        if len(out) != len(values):
            raise CloudError(f"record {address}: a value is empty (a server without an "
                             "address yet?)", permanent=True)
        if rtype in ("TXT", "SPF"):
            out = [_quote_txt(v) for v in out]
        if rtype == "CNAME" and len(out) != 1:
            raise CloudError(f"record {address}: a CNAME has exactly one value",
                             permanent=True)
        return sorted(out)

    def _find_rrset(self, region: str, zone_id: str, fqdn: str,
                    rtype: str) -> ET.Element | None:
        for rrset in self._record_sets(region, zone_id, (fqdn, rtype), limit=1):
            if _unescape_name(_txt(rrset, "Name") or "").lower() == fqdn and \
                    _txt(rrset, "Type") == rtype:
                return rrset
        return None

    def _put_record(self, region: str, stack: str, address: str,
                    properties: Mapping[str, Any], spec_hash: str,
                    create: bool) -> LiveResource:
        rtype = str(properties.get("type") or "").upper()
        if rtype not in RECORD_TYPES:
            raise CloudError(f"record {address}: type {rtype!r} is not one of "
                             f"{', '.join(sorted(RECORD_TYPES))}", permanent=True)
        zone_id = str(properties.get("zone") or "").rsplit("/", 1)[-1]
        domain = self._owned_zone(region, stack, zone_id, address)
        fqdn = _fqdn(str(properties.get("name") or ""), domain)
        if fqdn != domain and not fqdn.endswith("." + domain):
            raise CloudError(f"record {address}: {fqdn} is not inside zone {domain}",
                             permanent=True)
        ttl = int(properties.get("ttl") or 300)
        values = self._record_values(address, rtype, properties.get("records"))
        marker_fqdn = _marker_name(rtype, _relative(fqdn, domain), domain)
        mark = _quote_txt(f"{TAG_STACK}={stack};{TAG_RESOURCE}={address};{TAG_SPEC}={spec_hash}")
        marker = self._rrset_xml("UPSERT", marker_fqdn, "TXT", ttl, [mark])
        if create:
            code, message = self._change(
                region, zone_id, [self._rrset_xml("CREATE", fqdn, rtype, ttl, values), marker],
                ok=("InvalidChangeBatch",))
            if code and self._find_rrset(region, zone_id, fqdn, rtype) is None:
                raise CloudError(f"record {address}: {code}: {message}", permanent=True)
            if code:  # it exists already: adopt it only if its marker is ours
                have = self._find_rrset(region, zone_id, marker_fqdn, "TXT")
                vals = [_unquote_txt(v) for v in self._values(have)] if have is not None else []
                found = _RECORD_MARKER.match(vals[0]) if vals else None
                if found is None or found.group(1) != stack or found.group(2) != address:
                    raise CloudError(f"record {address}: {fqdn} {rtype} already exists in zone "
                                     f"{domain} and is not this stack's", permanent=True)
                create = False
        if not create:
            self._change(region, zone_id,
                         [self._rrset_xml("UPSERT", fqdn, rtype, ttl, values), marker])
        rrset = self._find_rrset(region, zone_id, fqdn, rtype)
        if rrset is None:
            raise CloudError(f"record {address}: {fqdn} {rtype} vanished after the change",
                             permanent=False)
        return self._record_live(region, zone_id, domain, address, spec_hash, rrset)

    def _delete_record(self, region: str, live: LiveResource) -> None:
        zone_id, rtype, fqdn = live.physical_id.split(":", 2)
        el = self._get_zone(region, zone_id)
        if el is None:
            return
        domain = (_txt(el, "Name") or "").lower()
        changes = []
        for name, kind in ((fqdn, rtype),
                           (_marker_name(rtype, _relative(fqdn, domain), domain), "TXT")):
            rrset = self._find_rrset(region, zone_id, name, kind)
            if rrset is not None:
                changes.append(self._rrset_xml("DELETE", name, kind,
                                                int(_txt(rrset, "TTL") or 0),
                                                self._values(rrset)))
        if changes:
            self._change(region, zone_id, changes)

    # ------------------------------------------------------------------ S3

    def _bucket_tags(self, region: str, name: str) -> dict[str, str] | None:
        status, body, _ = self._request("s3", region, f"/{name}", params={"tagging": ""},
                                        ok=("NoSuchTagSet", "NoSuchBucket"))
        if status >= 400:
            return None
        return {(_txt(t, "Key") or ""): (_txt(t, "Value") or "")
                for t in _all(body, "TagSet/Tag")}

    def _bucket_region(self, region: str, name: str) -> str:
        _, body, _ = self._request("s3", region, f"/{name}", params={"location": ""})
        text = (body.text or "").strip() if body is not None else ""
        return text or "us-east-1"

    def _versioning(self, region: str, name: str) -> bool:
        _, body, _ = self._request("s3", region, f"/{name}", params={"versioning": ""})
        return _txt(body, "Status") == "Enabled" or (
            body is not None and body.tag.endswith("Status") and body.text == "Enabled")

    def _discover_buckets(self, region: str, stack: str) -> list[LiveResource]:
        _, body, _ = self._request("s3", region, "/")
        prefix = bucket_prefix(stack)
        out = []
        for el in _all(body, "Buckets/Bucket"):
            name = _txt(el, "Name") or ""
            if not name.startswith(prefix):
                continue
            tags = self._bucket_tags(region, name)
            if not tags or tags.get(TAG_STACK) != stack or not tags.get(TAG_RESOURCE):
                continue  # not ours, or created but not yet tagged (create adopts it)
            where = tags.get(TAG_REGION) or self._bucket_region(region, name)
            if where != region:
                continue
            out.append(self._bucket_live(region, name, tags, self._versioning(region, name)))
        return out

    def _bucket_url(self, region: str, name: str) -> tuple[str, str]:
        endpoint = self.a._endpoint_for("s3")
        if endpoint is not None:
            host, port, secure = endpoint
            scheme = "https" if secure else "http"
            return f"{scheme}://{host}:{port}/{name}", host
        host = f"s3.{region}.amazonaws.com"
        return f"https://{name}.{host}", f"{name}.{host}"

    def _bucket_live(self, region: str, name: str, tags: Mapping[str, str],
                     versioning: bool) -> LiveResource:
        url, host = self._bucket_url(region, name)
        return self._live(region, BUCKET, tags.get(TAG_RESOURCE) or name, name, name,
                          {"versioning": versioning, "metadata": _user_tags(tags),
                           "force": _bool(tags.get(TAG_FORCE))},
                          {"name": name, "url": url, "domain_name": host, "region": region},
                          tags.get(TAG_SPEC))

    def _put_bucket_tags(self, region: str, name: str, tags: Mapping[str, str]) -> None:
        body = ('<Tagging xmlns="' + S3_NS + '"><TagSet>'
                + "".join(f"<Tag><Key>{_x(k)}</Key><Value>{_x(v)}</Value></Tag>"
                          for k, v in tags.items()) + "</TagSet></Tagging>")
        self._request("s3", region, f"/{name}", method="PUT", params={"tagging": ""},
                      data=body)

    def _put_versioning(self, region: str, name: str, enabled: bool) -> None:
        body = (f'<VersioningConfiguration xmlns="{S3_NS}"><Status>'
                f'{"Enabled" if enabled else "Suspended"}</Status></VersioningConfiguration>')
        self._request("s3", region, f"/{name}", method="PUT", params={"versioning": ""},
                      data=body)

    def _all_bucket_tags(self, stack: str, address: str, region: str,
                         properties: Mapping[str, Any], spec: str) -> dict[str, str]:
        tags = {TAG_STACK: stack, TAG_RESOURCE: address, TAG_REGION: region,
                **_metadata(properties)}
        if _bool(properties.get("force")):
            tags[TAG_FORCE] = "true"
        tags[TAG_SPEC] = spec
        if len(tags) > 50:
            raise CloudError(f"bucket {address}: S3 keeps 50 tags; metadata has too many",
                             permanent=True)
        return tags

    def _create_bucket(self, region: str, stack: str, address: str,
                       properties: Mapping[str, Any], spec_hash: str) -> LiveResource:
        name = bucket_name(stack, address, properties.get("name_suffix"))
        body = None
        if region != "us-east-1":
            body = (f'<CreateBucketConfiguration xmlns="{S3_NS}"><LocationConstraint>'
                    f"{_x(region)}</LocationConstraint></CreateBucketConfiguration>")
        _, _, code = self._request("s3", region, f"/{name}", method="PUT", data=body,
                                   ok=("BucketAlreadyOwnedByYou", "BucketAlreadyExists"))
        if code == "BucketAlreadyExists":
            raise CloudError(f"bucket name {name!r} is taken (S3 bucket names are global): "
                             "set name_suffix on the bucket to make it unique",
                             permanent=True)
        if code:  # ours from an earlier, interrupted create: adopt it if nobody else has
            tags = self._bucket_tags(region, name) or {}
            if tags.get(TAG_STACK, stack) != stack or tags.get(TAG_RESOURCE, address) != address:
                raise CloudError(f"bucket {name!r} exists and belongs to "
                                 f"{tags.get(TAG_STACK)}/{tags.get(TAG_RESOURCE)}",
                                 permanent=True)
        versioning = _bool(properties.get("versioning"))
        if versioning:
            self._put_versioning(region, name, True)
        tags = self._all_bucket_tags(stack, address, region, properties, spec_hash)
        self._put_bucket_tags(region, name, tags)
        return self._bucket_live(region, name, tags, versioning)

    def _update_bucket(self, region: str, stack: str, live: LiveResource,
                       properties: Mapping[str, Any], changed: frozenset[str],
                       spec_hash: str) -> LiveResource:
        name = live.physical_id
        versioning = _bool(properties.get("versioning"))
        if "versioning" in changed:
            self._put_versioning(region, name, versioning)
        tags = self._all_bucket_tags(stack, live.address, region, properties, spec_hash)
        self._put_bucket_tags(region, name, tags)
        return self._bucket_live(region, name, tags, self._versioning(region, name))

    def _object_versions(self, region: str, name: str,
                         limit: int | None = None) -> list[tuple[str, str | None]]:
        """(key, version id) of every object version and delete marker."""
        out: list[tuple[str, str | None]] = []
        params = {"versions": "", "max-keys": str(limit or 1000)}
        while True:
            status, body, _ = self._request("s3", region, f"/{name}", params=params,
                                            ok=("NoSuchBucket",))
            if status >= 400:
                return out
            for el in _all(body, "Version") + _all(body, "DeleteMarker"):
                vid = _txt(el, "VersionId")
                # "null" is the version of objects written while versioning was off:
                # deleting it needs versionId=null, else S3 only adds a delete marker
                out.append((_txt(el, "Key") or "", vid))
            if limit or _txt(body, "IsTruncated") != "true":
                return out
            params = {"versions": "", "max-keys": "1000",
                      "key-marker": _txt(body, "NextKeyMarker") or "",
                      "version-id-marker": _txt(body, "NextVersionIdMarker") or ""}

    def _delete_bucket(self, region: str, live: LiveResource) -> None:
        name = live.physical_id
        if self._object_versions(region, name, limit=1):
            if not _bool(live.properties.get("force")):
                raise CloudError(
                    f"bucket {name} ({live.address}) is not empty: refusing to delete it and "
                    "its objects. Empty it, or set force: true on it (with deletion_policy "
                    "Delete) and apply before deleting it", permanent=True)
            for key, version in self._object_versions(region, name):
                params = {"versionId": version} if version else {}
                self._request("s3", region, f"/{name}/{_quote_key(key)}", method="DELETE",
                              params=params, ok=("NoSuchKey", "NoSuchVersion"))
        self._request("s3", region, f"/{name}", method="DELETE", ok=("NoSuchBucket",))

    # ------------------------------------------------------------------ ELB

    def _discover_lbs(self, region: str, stack: str) -> list[LiveResource]:
        prefix = lb_prefix(stack)
        found: dict[str, ET.Element] = {}
        params = {"PageSize": "400"}
        seen: set[str] = set()
        while True:
            body, _ = self._elb(region, "DescribeLoadBalancers", params)
            for el in _all(body, "DescribeLoadBalancersResult/LoadBalancerDescriptions/member"):
                name = _txt(el, "LoadBalancerName") or ""
                if name.startswith(prefix):
                    found[name] = el
            marker = _txt(body, "DescribeLoadBalancersResult/NextMarker")
            if not marker or marker in seen:
                break
            seen.add(marker)
            params = {"PageSize": "400", "Marker": marker}
        tags = self._lb_tags(region, sorted(found))
        out = []
        for name, el in sorted(found.items()):
            t = tags.get(name, {})
            if t.get(TAG_STACK) == stack and t.get(TAG_RESOURCE):
                out.append(self._lb_live(region, el, t))
        return out

    def _lb_tags(self, region: str, names: list[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for i in range(0, len(names), 20):
            params = {f"LoadBalancerNames.member.{j}": n
                      for j, n in enumerate(names[i:i + 20], 1)}
            body, _ = self._elb(region, "DescribeTags", params)
            for desc in _all(body, "DescribeTagsResult/TagDescriptions/member"):
                out[_txt(desc, "LoadBalancerName") or ""] = {
                    (_txt(t, "Key") or ""): (_txt(t, "Value") or "")
                    for t in _all(desc, "Tags/member")}
        return out

    def _lb_live(self, region: str, el: ET.Element, tags: Mapping[str, str]) -> LiveResource:
        name = _txt(el, "LoadBalancerName") or ""
        listeners = sorted(({"protocol": (_txt(m, "Listener/Protocol") or "").upper(),
                             "port": int(_txt(m, "Listener/LoadBalancerPort") or 0),
                             "instance_port": int(_txt(m, "Listener/InstancePort") or 0),
                             "instance_protocol": (_txt(m, "Listener/InstanceProtocol")
                                                   or _txt(m, "Listener/Protocol")
                                                   or "").upper()}
                            for m in _all(el, "ListenerDescriptions/member")),
                           key=lambda x: (x["port"], x["protocol"]))
        members = sorted(_txt(m, "InstanceId") or "" for m in _all(el, "Instances/member"))
        hc = _find(el, "HealthCheck")
        health = None
        if hc is not None and _txt(hc, "Target"):
            health = {"target": _txt(hc, "Target"),
                      **{k: int(_txt(hc, v) or 0) for k, v in _HEALTH_KEYS.items()
                         if k != "target"}}
        zones = sorted((z.text or "").strip() for z in _all(el, "AvailabilityZones/member"))
        dns = _txt(el, "DNSName") or ""
        return self._live(region, LOAD_BALANCER, tags.get(TAG_RESOURCE) or name, name, name,
                          {"listeners": listeners, "members": members, "health_check": health,
                           "availability_zones": zones, "metadata": _user_tags(tags)},
                          {"dns_name": dns, "name": name, "members": members},
                          tags.get(TAG_SPEC), status="active")

    def _get_lb(self, region: str, name: str) -> tuple[ET.Element, dict[str, str]] | None:
        body, code = self._elb(region, "DescribeLoadBalancers",
                               {"LoadBalancerNames.member.1": name},
                               ok=("LoadBalancerNotFound",))
        els = _all(body, "DescribeLoadBalancersResult/LoadBalancerDescriptions/member")
        if code or not els:
            return None
        return els[0], self._lb_tags(region, [name]).get(name, {})

    @staticmethod
    def _listener_params(listeners: list[dict[str, Any]]) -> dict[str, str]:
        params = {}
        for i, lst in enumerate(listeners, 1):
            params[f"Listeners.member.{i}.Protocol"] = lst["protocol"]
            params[f"Listeners.member.{i}.LoadBalancerPort"] = str(lst["port"])
            params[f"Listeners.member.{i}.InstancePort"] = str(lst["instance_port"])
            params[f"Listeners.member.{i}.InstanceProtocol"] = lst["instance_protocol"]
        return params

    def _add_lb_tags(self, region: str, name: str, tags: Mapping[str, str]) -> None:
        params = {"LoadBalancerNames.member.1": name}
        for i, (k, v) in enumerate(tags.items(), 1):
            params[f"Tags.member.{i}.Key"] = k
            params[f"Tags.member.{i}.Value"] = v
        if tags:
            self._elb(region, "AddTags", params)

    def _members(self, region: str, name: str, action: str, ids: Iterable[str]) -> None:
        params = {"LoadBalancerName": name}
        for i, iid in enumerate(sorted(ids), 1):
            params[f"Instances.member.{i}.InstanceId"] = iid
        if len(params) > 1:
            self._elb(region, action, params)

    def _configure_health(self, region: str, name: str, health: Mapping[str, Any]) -> None:
        params = {"LoadBalancerName": name}
        params.update({f"HealthCheck.{v}": str(health[k]) for k, v in _HEALTH_KEYS.items()})
        self._elb(region, "ConfigureHealthCheck", params)

    def _create_lb(self, region: str, stack: str, address: str,
                   properties: Mapping[str, Any], spec_hash: str) -> LiveResource:
        name = lb_name(stack, address)
        listeners = _listeners(properties.get("listeners"))
        health = _health(properties.get("health_check"))
        members = [str(m) for m in properties.get("members") or []]
        zones = [str(z) for z in properties.get("availability_zones") or [f"{region}a"]]
        tags = {"Name": name, TAG_STACK: stack, TAG_RESOURCE: address, **_metadata(properties)}
        params = {"LoadBalancerName": name, **self._listener_params(listeners)}
        for i, zone in enumerate(zones, 1):
            params[f"AvailabilityZones.member.{i}"] = zone
        for i, (k, v) in enumerate(tags.items(), 1):
            params[f"Tags.member.{i}.Key"] = k
            params[f"Tags.member.{i}.Value"] = v
        # CreateLoadBalancer is idempotent for the same name and listeners: safe to retry
        self._elb(region, "CreateLoadBalancer", params)
        if health:
            self._configure_health(region, name, health)
        self._members(region, name, "RegisterInstancesWithLoadBalancer", members)
        self._add_lb_tags(region, name, {TAG_SPEC: spec_hash})
        return self._lb_now(region, name, address)

    def _lb_now(self, region: str, name: str, address: str) -> LiveResource:
        got = self._get_lb(region, name)
        if got is None:
            raise CloudError(f"load balancer {address} ({name}) is gone", permanent=True)
        return self._lb_live(region, *got)

    def _update_lb(self, region: str, stack: str, live: LiveResource,
                   properties: Mapping[str, Any], changed: frozenset[str],
                   spec_hash: str) -> LiveResource:
        name = live.physical_id
        got = self._get_lb(region, name)
        if got is None:
            raise CloudError(f"load balancer {live.address} ({name}) no longer exists in "
                             f"{region}", permanent=True)
        current = self._lb_live(region, *got)
        if "listeners" in changed:
            want = _listeners(properties.get("listeners"))
            have = list(current.properties.get("listeners") or [])
            gone = [h for h in have if h not in want]
            new = [w for w in want if w not in have]
            if gone:
                params = {"LoadBalancerName": name}
                for i, lst in enumerate(gone, 1):
                    params[f"LoadBalancerPorts.member.{i}"] = str(lst["port"])
                self._elb(region, "DeleteLoadBalancerListeners", params)
            if new:
                self._elb(region, "CreateLoadBalancerListeners",
                          {"LoadBalancerName": name, **self._listener_params(new)})
        if "members" in changed:
            want_m = {str(m) for m in properties.get("members") or []}
            have_m = set(current.properties.get("members") or [])
            self._members(region, name, "DeregisterInstancesFromLoadBalancer", have_m - want_m)
            self._members(region, name, "RegisterInstancesWithLoadBalancer", want_m - have_m)
        if "health_check" in changed:
            health = _health(properties.get("health_check"))
            if health:
                self._configure_health(region, name, health)
        tags = _metadata(properties)
        if "metadata" in changed:
            stale = sorted(set(_user_tags(got[1])) - set(tags))
            if stale:
                params = {"LoadBalancerNames.member.1": name}
                params.update({f"Tags.member.{i}.Key": k for i, k in enumerate(stale, 1)})
                self._elb(region, "RemoveTags", params)
        self._add_lb_tags(region, name, {**tags, TAG_SPEC: spec_hash})
        return self._lb_now(region, name, live.address)


def _quote_key(key: str) -> str:
    return quote(key, safe="/~")
