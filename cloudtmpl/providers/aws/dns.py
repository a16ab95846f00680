"""DNS zones and records on AWS (Route53, raw requests on libcloud's connection).

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

Discovery: ``ListHostedZones`` (every page) + one ``ListResourceRecordSets`` per zone
of the stack in the region.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.aws.dns_names import (
    MARKER_PREFIX,
    fqdn_of,
    marker_name,
    quote_txt,
    relative,
    unescape_name,
    unquote_txt,
)
from cloudtmpl.providers.aws.svcxml import TAG_REGION, find, find_all, live, txt, x
from cloudtmpl.providers.base import CloudError

ZONE = "Cloud::DNS::Zone"
RECORD = "Cloud::DNS::Record"
R53 = "/2012-02-29"  # the Route53 API version libcloud's driver speaks
R53_NS = "https://route53.amazonaws.com/doc/2012-02-29/"
RECORD_TYPES = frozenset({"A", "AAAA", "CNAME", "TXT", "MX", "NS", "PTR", "SRV", "SPF", "CAA"})
_ZONE_MARKER = re.compile(
    r"^" + re.escape(TAG_STACK) + r"=([^;]*);" + re.escape(TAG_RESOURCE) + r"=([^;]*);"
    + re.escape(TAG_REGION) + r"=([^;]*);ttl=(\d+);" + re.escape(TAG_SPEC) + r"=([^; ]*)"
    r"(?: -- (.*))?$", re.S)
_RECORD_MARKER = re.compile(
    r"^" + re.escape(TAG_STACK) + r"=([^;]*);" + re.escape(TAG_RESOURCE) + r"=([^;]*);"
    + re.escape(TAG_SPEC) + r"=(.*)$")

Marker = tuple[str, str, str, int, str, str]  # stack, address, region, ttl, spec, comment


def _r53(client: AwsClient, region: str, path: str, **kw: Any) -> tuple[int, ET.Element | None,
                                                                         str]:
    return client.request("route53", region, f"{R53}{path}", **kw)


def _zones(client: AwsClient, region: str, *, retry: bool = True) -> list[ET.Element]:
    out: list[ET.Element] = []
    params = {"maxitems": "100"}
    seen: set[str] = set()
    while True:
        _, body, _ = _r53(client, region, "/hostedzone", params=params, retry=retry)
        out.extend(find_all(body, "HostedZones/HostedZone"))
        marker = txt(body, "NextMarker")
        if txt(body, "IsTruncated") != "true" or not marker or marker in seen:
            return out
        seen.add(marker)
        params = {"maxitems": "100", "marker": marker}


def _zone_marker(el: ET.Element | None) -> Marker | None:
    found = _ZONE_MARKER.match(txt(el, "Config/Comment") or "")
    if found is None:
        return None
    stack, address, region, ttl, spec, comment = found.groups()
    return stack, address, region, int(ttl), spec, comment or ""


def _zone_id(el: ET.Element | None) -> str:
    return (txt(el, "Id") or "").rsplit("/", 1)[-1]


def _record_sets(client: AwsClient, region: str, zone_id: str,
                 start: tuple[str, str] | None = None,
                 limit: int | None = None) -> list[ET.Element]:
    out: list[ET.Element] = []
    params: dict[str, str] = {"maxitems": str(limit or 300)}
    if start:
        params.update(name=start[0], type=start[1])
    while True:
        _, body, _ = _r53(client, region, f"/hostedzone/{zone_id}/rrset", params=params)
        out.extend(find_all(body, "ResourceRecordSets/ResourceRecordSet"))
        nxt = txt(body, "NextRecordName")
        if limit or txt(body, "IsTruncated") != "true" or not nxt:
            return out
        params = {"maxitems": "300", "name": nxt}
        if txt(body, "NextRecordType"):
            params["type"] = txt(body, "NextRecordType") or ""


def list_zones(client: AwsClient, region: str, stack: str) -> list[Any]:
    """The listing ``zones``: (zone id, domain, marker, record sets) of the stack's
    zones in ``region``."""
    out = []
    for el in _zones(client, region):
        marker = _zone_marker(el)
        if marker is None or marker[0] != stack or marker[2] != region:
            continue
        zone_id = _zone_id(el)
        out.append((zone_id, (txt(el, "Name") or "").lower(), marker,
                    _record_sets(client, region, zone_id)))
    return out


def _values(rrset: ET.Element | None) -> list[str]:
    return [txt(r, "Value") or "" for r in find_all(rrset, "ResourceRecords/ResourceRecord")]


def _get_zone(client: AwsClient, region: str, zone_id: str) -> ET.Element | None:
    status, body, _ = _r53(client, region, f"/hostedzone/{zone_id}",
                           ok=("NoSuchHostedZone", "404"))
    return None if status >= 400 else find(body, "HostedZone")


def _find_rrset(client: AwsClient, region: str, zone_id: str, fqdn: str,
                rtype: str) -> ET.Element | None:
    for rrset in _record_sets(client, region, zone_id, (fqdn, rtype), limit=1):
        if unescape_name(txt(rrset, "Name") or "").lower() == fqdn and \
                txt(rrset, "Type") == rtype:
            return rrset
    return None


def _post_xml(root: str, inner: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="{R53_NS}">{inner}'
            f"</{root}>")


class Zone:
    kind = ZONE
    listings = ("zones",)

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [self.live(client, region, zone_id, domain, marker, sets)
                for zone_id, domain, marker, sets in listings.get("zones")]

    @staticmethod
    def live(client: AwsClient, region: str, zone_id: str, domain: str, marker: Marker,
             sets: list[ET.Element]) -> LiveResource:
        _, address, _, ttl, spec, comment = marker
        ns = [v for s in sets if txt(s, "Type") == "NS" and unescape_name(
            txt(s, "Name") or "").lower() == domain for v in _values(s)]
        return live(client.placement(region), ZONE, address, zone_id, domain,
                    {"domain": domain, "ttl": ttl, "comment": comment},
                    {"domain": domain, "name_servers": ns, "id": zone_id}, spec)

    @staticmethod
    def _comment(stack: str, address: str, region: str, properties: Mapping[str, Any],
                 spec: str) -> str:
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

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        stack, address, properties = want.stack, want.address, want.properties
        domain = str(properties.get("domain") or "").lower().rstrip(".") + "."
        if domain == ".":
            raise CloudError(f"zone {address}: domain is empty", permanent=True)
        tags = ec2.metadata(properties)
        first_spec = "" if tags else want.spec_hash

        def lookup() -> str | None:  # no retry inside a retry: one look, then the outer loop
            for el in _zones(client, region, retry=False):
                m = _zone_marker(el)
                if m and m[0] == stack and m[1] == address and m[2] == region:
                    return _zone_id(el)
            return None

        def post() -> str:
            comment = self._comment(stack, address, region, properties, first_spec)
            body = _post_xml("CreateHostedZoneRequest",
                             f"<Name>{x(domain)}</Name><CallerReference>"
                             f"{x(address[:40])}-{uuid.uuid4().hex}</CallerReference>"
                             f"<HostedZoneConfig><Comment>{x(comment)}</Comment>"
                             "</HostedZoneConfig>")
            answer = _r53(client, region, "/hostedzone", method="POST", data=body, retry=False)
            return (txt(answer[1], "HostedZone/Id") or "").rsplit("/", 1)[-1]

        zone_id = kit.create_or_adopt(post, lookup, client.call)
        if tags:
            self._tags(client, region, zone_id, tags, remove=())
            self._set_comment(client, region, zone_id,
                              self._comment(stack, address, region, properties,
                                            want.spec_hash))
        return self._now(client, region, zone_id, address)

    def _now(self, client: AwsClient, region: str, zone_id: str, address: str) -> LiveResource:
        el = _get_zone(client, region, zone_id)
        marker = _zone_marker(el)
        if el is None or marker is None:
            raise CloudError(f"zone {address} ({zone_id}) is gone", permanent=True)
        domain = (txt(el, "Name") or "").lower()
        return self.live(client, region, zone_id, domain, marker,
                         _record_sets(client, region, zone_id))

    @staticmethod
    def _set_comment(client: AwsClient, region: str, zone_id: str, comment: str) -> None:
        body = _post_xml("UpdateHostedZoneCommentRequest", f"<Comment>{x(comment)}</Comment>")
        _r53(client, region, f"/hostedzone/{zone_id}", method="POST", data=body)

    @staticmethod
    def _tags(client: AwsClient, region: str, zone_id: str, add: Mapping[str, str],
              remove: Iterable[str]) -> None:
        adds = "".join(f"<Tag><Key>{x(k)}</Key><Value>{x(v)}</Value></Tag>"
                       for k, v in add.items())
        removes = "".join(f"<Key>{x(k)}</Key>" for k in remove)
        body = _post_xml("ChangeTagsForResourceRequest",
                         (f"<AddTags>{adds}</AddTags>" if adds else "")
                         + (f"<RemoveTagKeys>{removes}</RemoveTagKeys>" if removes else ""))
        if adds or removes:
            _r53(client, region, f"/tags/hostedzone/{zone_id}", method="POST", data=body)

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        region = live.placement.region
        zone_id = live.physical_id
        tags = ec2.metadata(change.properties)
        _, body, _ = _r53(client, region, f"/tags/hostedzone/{zone_id}")
        have = {(txt(t, "Key") or ""): (txt(t, "Value") or "")
                for t in find_all(body, "ResourceTagSet/Tags/Tag")}
        self._tags(client, region, zone_id, {k: v for k, v in tags.items() if have.get(k) != v},
                   sorted(set(ec2.user_tags(have)) - set(tags)))
        self._set_comment(client, region, zone_id, self._comment(
            change.stack, live.address, region, change.properties, change.spec_hash))
        return self._now(client, region, zone_id, live.address)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        _r53(client, live.placement.region, f"/hostedzone/{live.physical_id}",
             method="DELETE", ok=("NoSuchHostedZone", "404"))


def _rrset_xml(action: str, fqdn: str, rtype: str, ttl: int, values: list[str]) -> str:
    recs = "".join(f"<ResourceRecord><Value>{x(v)}</Value></ResourceRecord>" for v in values)
    return (f"<Change><Action>{action}</Action><ResourceRecordSet><Name>{x(fqdn)}</Name>"
            f"<Type>{rtype}</Type><TTL>{ttl}</TTL><ResourceRecords>{recs}"
            "</ResourceRecords></ResourceRecordSet></Change>")


def _change(client: AwsClient, region: str, zone_id: str, changes: list[str],
            ok: Iterable[str] = ()) -> tuple[str, str]:
    """One atomic change batch; (error code, message) of an accepted error."""
    body = _post_xml("ChangeResourceRecordSetsRequest",
                     f'<ChangeBatch><Changes>{"".join(changes)}</Changes></ChangeBatch>')
    _, answer, code = _r53(client, region, f"/hostedzone/{zone_id}/rrset", method="POST",
                           data=body, ok=ok)
    return code, (txt(answer, "Error/Message") or "") if code else ""


class Record:
    kind = RECORD
    listings = ("zones",)

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        out = []
        for zone_id, domain, _, sets in listings.get("zones"):
            by_key = {(unescape_name(txt(s, "Name") or "").lower(), txt(s, "Type") or ""): s
                      for s in sets}
            for (fqdn, rtype), rrset in by_key.items():
                if rtype != "TXT" or not fqdn.startswith(MARKER_PREFIX):
                    continue
                values = [unquote_txt(v) for v in _values(rrset)]
                found = _RECORD_MARKER.match(values[0]) if values else None
                if found is None or found.group(1) != stack:
                    continue
                label, _, rest = fqdn.partition(".")
                target = by_key.get((rest, label[len(MARKER_PREFIX):].upper()))
                if target is None:
                    continue  # a marker whose record is gone: nothing to report
                out.append(self.live(client, region, zone_id, domain, found.group(2),
                                     found.group(3), target))
        return out

    @staticmethod
    def live(client: AwsClient, region: str, zone_id: str, domain: str, address: str,
             spec: str | None, rrset: ET.Element) -> LiveResource:
        fqdn = unescape_name(txt(rrset, "Name") or "").lower()
        rtype = txt(rrset, "Type") or ""
        values = _values(rrset)
        if rtype in ("TXT", "SPF"):
            values = [unquote_txt(v) for v in values]
        values = sorted(values)
        ttl = int(txt(rrset, "TTL") or 0)
        return live(client.placement(region), RECORD, address, f"{zone_id}:{rtype}:{fqdn}",
                    fqdn, {"zone": zone_id, "name": relative(fqdn, domain), "type": rtype,
                           "ttl": ttl, "records": values},
                    {"fqdn": fqdn, "records": values}, spec)

    @staticmethod
    def _owned_zone(client: AwsClient, region: str, stack: str, zone_id: str,
                    address: str) -> str:
        el = _get_zone(client, region, zone_id)
        if el is None:
            raise CloudError(f"record {address}: zone {zone_id!r} does not exist",
                             permanent=True)
        marker = _zone_marker(el)
        if marker is None or marker[0] != stack:
            raise CloudError(f"record {address}: zone {zone_id} ({txt(el, 'Name')}) is not a "
                             f"zone of stack {stack!r}; cloudtmpl manages records only in "
                             "its own zones (give the zone as {get_resource: ZONE})",
                             permanent=True)
        return (txt(el, "Name") or "").lower()

    @staticmethod
    def _values_of(address: str, rtype: str, values: Any) -> list[str]:
        if not isinstance(values, list) or not values:
            raise CloudError(f"record {address}: records must be a non-empty list of values",
                             permanent=True)
        out = [str(v) for v in values if v is not None and str(v) != ""]
        if len(out) != len(values):
            raise CloudError(f"record {address}: a value is empty (a server without an "
                             "address yet?)", permanent=True)
        if rtype in ("TXT", "SPF"):
            out = [quote_txt(v) for v in out]
        if rtype == "CNAME" and len(out) != 1:
            raise CloudError(f"record {address}: a CNAME has exactly one value",
                             permanent=True)
        return sorted(out)

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        return self._put(client, region, want.stack, want.address, want.properties,
                         want.spec_hash, create=True)

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        return self._put(client, live.placement.region, change.stack, live.address,
                         change.properties, change.spec_hash, create=False)

    def _put(self, client: AwsClient, region: str, stack: str, address: str,
             properties: Mapping[str, Any], spec_hash: str, create: bool) -> LiveResource:
        rtype = str(properties.get("type") or "").upper()
        if rtype not in RECORD_TYPES:
            raise CloudError(f"record {address}: type {rtype!r} is not one of "
                             f"{', '.join(sorted(RECORD_TYPES))}", permanent=True)
        zone_id = str(properties.get("zone") or "").rsplit("/", 1)[-1]
        domain = self._owned_zone(client, region, stack, zone_id, address)
        fqdn = fqdn_of(str(properties.get("name") or ""), domain)
        if fqdn != domain and not fqdn.endswith("." + domain):
            raise CloudError(f"record {address}: {fqdn} is not inside zone {domain}",
                             permanent=True)
        ttl = int(properties.get("ttl") or 300)
        values = self._values_of(address, rtype, properties.get("records"))
        marker_fqdn = marker_name(rtype, relative(fqdn, domain), domain)
        mark = quote_txt(f"{TAG_STACK}={stack};{TAG_RESOURCE}={address};{TAG_SPEC}={spec_hash}")
        marker = _rrset_xml("UPSERT", marker_fqdn, "TXT", ttl, [mark])
        if create:
            code, message = _change(
                client, region, zone_id, [_rrset_xml("CREATE", fqdn, rtype, ttl, values), marker],
                ok=("InvalidChangeBatch",))
            if code and _find_rrset(client, region, zone_id, fqdn, rtype) is None:
                raise CloudError(f"record {address}: {code}: {message}", permanent=True)
            if code:  # it exists already: adopt it only if its marker is ours
                have = _find_rrset(client, region, zone_id, marker_fqdn, "TXT")
                vals = [unquote_txt(v) for v in _values(have)] if have is not None else []
                found = _RECORD_MARKER.match(vals[0]) if vals else None
                if found is None or found.group(1) != stack or found.group(2) != address:
                    raise CloudError(f"record {address}: {fqdn} {rtype} already exists in zone "
                                     f"{domain} and is not this stack's", permanent=True)
                create = False
        if not create:
            _change(client, region, zone_id,
                    [_rrset_xml("UPSERT", fqdn, rtype, ttl, values), marker])
        rrset = _find_rrset(client, region, zone_id, fqdn, rtype)
        if rrset is None:
            raise CloudError(f"record {address}: {fqdn} {rtype} vanished after the change",
                             permanent=False)
        return self.live(client, region, zone_id, domain, address, spec_hash, rrset)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        zone_id, rtype, fqdn = live.physical_id.split(":", 2)
        el = _get_zone(client, region, zone_id)
        if el is None:
            return
        domain = (txt(el, "Name") or "").lower()
        changes = []
        for name, kind in ((fqdn, rtype),
                           (marker_name(rtype, relative(fqdn, domain), domain), "TXT")):
            rrset = _find_rrset(client, region, zone_id, name, kind)
            if rrset is not None:
                changes.append(_rrset_xml("DELETE", name, kind, int(txt(rrset, "TTL") or 0),
                                          _values(rrset)))
        if changes:
            _change(client, region, zone_id, changes)
