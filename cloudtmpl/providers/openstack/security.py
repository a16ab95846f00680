"""``Cloud::Network::SecurityGroup``: a Neutron security group and its rules.

Known by name (:mod:`.neutron`); the spec marker follows the template's own
description.  A group is created without the marker, gets its rules, and the
marker last: a crash in between leaves a group whose rules are observable (the
next plan converges them).  A group without rules is one atomic ``POST``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import SECURITY_GROUP, CloudError
from cloudtmpl.providers.openstack import neutron
from cloudtmpl.providers.openstack.client import OpenStackClient, status_of
from cloudtmpl.security_rules import DEFAULT_EGRESS_RULES, canonical_rule, canonical_rules

_PATH, _KEY = "/v2.0/security-groups", "security_group"
_PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp"}


def _rule_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    proto = raw.get("protocol")
    if proto is not None:
        proto = _PROTOCOL_NUMBERS.get(str(proto), str(proto).lower())
    return canonical_rule({
        "direction": raw.get("direction") or "ingress",
        "ethertype": raw.get("ethertype") or "IPv4",
        "protocol": proto,
        "port_range_min": raw.get("port_range_min"),
        "port_range_max": raw.get("port_range_max"),
        "remote_ip_prefix": raw.get("remote_ip_prefix"),
        "remote_group_id": raw.get("remote_group_id"),
    })


def _rule_key(rule: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, str(v)) for k, v in rule.items()))


def _rule_body(group_id: str, rule: Mapping[str, Any]) -> dict[str, Any]:
    proto = rule["protocol"]
    body: dict[str, Any] = {"security_group_id": group_id, "direction": rule["direction"],
                            "ethertype": rule["ethertype"],
                            "protocol": None if proto == "-1" else proto}
    lo, hi = rule["port_range_min"], rule["port_range_max"]
    if proto != "-1" and lo is not None and lo != -1:
        body["port_range_min"] = lo
        if hi is not None and hi != -1:
            body["port_range_max"] = hi
    if rule.get("remote_group_id"):
        body["remote_group_id"] = rule["remote_group_id"]
    elif rule.get("remote_ip_prefix"):
        body["remote_ip_prefix"] = rule["remote_ip_prefix"]
    return body


def _desired(props: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r for r in canonical_rules(props.get("rules") or []) if r not in DEFAULT_EGRESS_RULES]


def group_live(client: OpenStackClient, region: str, address: str,
               sg: Mapping[str, Any]) -> LiveResource:
    text, spec = neutron.split_spec(sg.get("description"))
    rules = [_rule_of(r) for r in sg.get("security_group_rules") or []]
    rules = [r for r in rules if r not in DEFAULT_EGRESS_RULES]
    gid = str(sg["id"])
    name = str(sg.get("name"))
    return LiveResource(
        address=address, kind=SECURITY_GROUP, physical_id=gid,
        placement=client.placement(region), name=name,
        properties={"description": text, "rules": canonical_rules(rules)},
        attributes={"name": name, "id": gid},
        spec_hash=spec, status="active")


def apply_rules(client: OpenStackClient, region: str, group_id: str,
                current_raw: list[dict[str, Any]], desired: list[dict[str, Any]]) -> None:
    """Add the missing rules, delete the extra ones (by rule id).

    As Heat does: declaring any egress rule removes Neutron's default egress
    rules; declaring none keeps (or restores) them.
    """
    wants_egress = any(r["direction"] == "egress" for r in desired)
    want = {_rule_key(r): r for r in desired}
    if not wants_egress:
        for r in DEFAULT_EGRESS_RULES:
            want[_rule_key(r)] = r
    have: dict[tuple[Any, ...], list[str]] = {}
    for raw in current_raw:
        have.setdefault(_rule_key(_rule_of(raw)), []).append(str(raw.get("id")))
    for key, ids in have.items():
        extra = ids if key not in want else ids[1:]  # duplicates go too
        for rule_id in extra:
            client.delete_call(region, "network", f"/v2.0/security-group-rules/{rule_id}")
    for key, rule in want.items():
        if key in have:
            continue
        try:
            client.api(region, "network", "/v2.0/security-group-rules", method="POST",
                       body={"security_group_rule": _rule_body(group_id, rule)})
        except CloudError as err:
            if status_of(err) != 409:  # already there (a retried create): fine
                raise


class SecurityGroupHandler:
    kind = SECURITY_GROUP
    listings: tuple[str, ...] = ("security_groups",)

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return neutron.named_live(client, region, stack, listings.get("security_groups"),
                                  group_live)

    def _refresh(self, client: OpenStackClient, region: str, address: str,
                 gid: str) -> LiveResource:
        return neutron.refresh(client, region, SECURITY_GROUP, address, gid, _PATH, _KEY,
                               group_live)

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        text = str(want.properties.get("description") or "")
        desired = _desired(want.properties)
        wants_egress = any(r["direction"] == "egress" for r in desired)
        atomic = not desired and not wants_egress
        body = {"name": want.name,
                "description": neutron.with_spec(text, want.spec_hash if atomic else None)}

        def post() -> dict[str, Any]:
            obj = client.api(region, "network", _PATH, method="POST",
                             body={_KEY: body}, retry=False) or {}
            return dict(obj[_KEY])

        def lookup() -> dict[str, Any] | None:
            obj = client.api(region, "network", _PATH, params={"name": want.name},
                             retry=False) or {}
            found = [g for g in obj.get("security_groups") or [] if g.get("name") == want.name]
            return found[0] if found else None

        group = client.create_or_adopt(post, lookup)
        gid = str(group["id"])
        if not atomic:
            apply_rules(client, region, gid, group.get("security_group_rules") or [], desired)
            neutron.set_description(client, region, _PATH, _KEY, gid,
                                    neutron.with_spec(text, want.spec_hash))
        return self._refresh(client, region, want.address, gid)

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        region = live.placement.region
        gid = live.physical_id
        sg = neutron.current(client, live, _PATH, _KEY)
        if "rules" in change.changed:
            apply_rules(client, region, gid, sg.get("security_group_rules") or [],
                        _desired(change.properties))
        text, _ = neutron.split_spec(sg.get("description"))
        neutron.set_description(client, region, _PATH, _KEY, gid,
                                neutron.with_spec(text, change.spec_hash))
        return self._refresh(client, region, live.address, gid)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        neutron.delete_until_gone(client, live, _PATH, timeout)
