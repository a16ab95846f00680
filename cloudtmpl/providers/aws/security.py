"""``Cloud::Network::SecurityGroup`` on AWS: a VPC security group; physical id: group id.

Rules: ``ethertype: IPv6`` → ``Ipv6Ranges`` (default ``::/0``); ``remote_group_id`` →
``UserIdGroupPairs``.  An EC2 group rule covers both address families, so ``IPv6``
together with ``remote_group_id`` is refused.  Declaring any egress rule replaces
EC2's default allow-all egress; declaring none restores it.  ``network`` is the VPC
the group is made in (``CreateSecurityGroup``'s ``VpcId``; none: the default VPC); it
is reported (the group's ``vpcId``) only for a group made with one
(``cloudtmpl:shape: network``), so a group made before the property existed is never
compared on it, and never replaced for it.  EC2 requires a group description:
when the template gives none the group's name is sent, and reported back as the
empty description.  With rules, the spec tag is written once they are in place.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.aws.raw import RawHandler, get_raw
from cloudtmpl.providers.base import SECURITY_GROUP, CloudError
from cloudtmpl.security_rules import (
    DEFAULT_EGRESS,
    DEFAULT_EGRESS_RULES,
    canonical_rule,
    canonical_rules,
)

_PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp", "1": "icmp"}


def _rule_from_permission(direction: str, perm: ET.Element) -> list[dict[str, Any]]:
    proto = (ec2.text(perm, "ipProtocol") or "-1").lower()
    proto = _PROTOCOL_NUMBERS.get(proto, proto)
    lo = ec2.text(perm, "fromPort")
    hi = ec2.text(perm, "toPort")
    remotes: list[dict[str, Any]] = [
        {"remote_ip_prefix": ec2.text(i, "cidrIp")} for i in ec2.items(perm, "ipRanges/item")]
    remotes += [{"ethertype": "IPv6", "remote_ip_prefix": ec2.text(i, "cidrIpv6")}
                for i in ec2.items(perm, "ipv6Ranges/item")]
    remotes += [{"remote_group_id": ec2.text(i, "groupId")}
                for i in ec2.items(perm, "groups/item")]
    return [canonical_rule({
        "direction": direction,
        "protocol": proto,
        "port_range_min": int(lo) if lo is not None else None,
        "port_range_max": int(hi) if hi is not None else None,
        **remote,
    }) for remote in remotes if any(remote.values())]


def has_default_egress(group: ET.Element) -> bool:
    return any(r == DEFAULT_EGRESS
               for perm in ec2.items(group, "ipPermissionsEgress/item")
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


def apply_rules(client: AwsClient, region: str, group_id: str, current: list[dict[str, Any]],
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
            _change_rules(client, region, group_id, f"RevokeSecurityGroup{action}", removed,
                          "InvalidPermission.NotFound")
        if added:
            _change_rules(client, region, group_id, f"AuthorizeSecurityGroup{action}", added,
                          "InvalidPermission.Duplicate")


def _change_rules(client: AwsClient, region: str, group_id: str, action: str,
                  rules: list[dict[str, Any]], benign: str) -> None:
    """One batched call; if EC2 refuses it because a rule is already (or no longer)
    there — a stale view or a retried call that had succeeded — go rule by rule."""
    try:
        client.ec2(region, action, {"GroupId": group_id, **_permission_params(rules)})
        return
    except CloudError as err:
        if not ec2.has_code(err, benign) or len(rules) == 1:
            if ec2.has_code(err, benign):
                return
            raise
    for rule in rules:
        try:
            client.ec2(region, action, {"GroupId": group_id, **_permission_params([rule])})
        except CloudError as err:
            if not ec2.has_code(err, benign):
                raise


class SecurityGroup(RawHandler):
    kind = SECURITY_GROUP
    listings = ("security_groups",)

    def live(self, client: AwsClient, region: str, address: str,
             el: ET.Element) -> LiveResource:
        tags = ec2.tags_of(el)
        gid = ec2.text(el, "groupId") or ""
        name = ec2.text(el, "groupName") or tags.get(ec2.TAG_NAME) or gid
        description = ec2.text(el, "groupDescription") or ""
        if description == name:  # we send the name when the template gave none
            description = ""
        rules = [r for perm in ec2.items(el, "ipPermissions/item")
                 for r in _rule_from_permission("ingress", perm)]
        rules += [r for perm in ec2.items(el, "ipPermissionsEgress/item")
                  for r in _rule_from_permission("egress", perm) if r not in DEFAULT_EGRESS_RULES]
        properties: dict[str, Any] = {"description": description,
                                      "rules": canonical_rules(rules)}
        if ["network"] in (ec2.unshape(tags) or []):  # made with a network: report it
            properties["network"] = ec2.text(el, "vpcId")
        return LiveResource(
            address=address,
            kind=SECURITY_GROUP,
            physical_id=gid,
            placement=client.placement(region),
            name=name,
            properties=properties,
            attributes={"name": name, "id": gid},
            spec_hash=tags.get(TAG_SPEC),
            status="active",
        )

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        props, address = want.properties, want.address
        rules = canonical_rules(props.get("rules") or [])
        _check_rules(rules)
        # Without follow-up calls the spec tag goes in atomically; with rules it is
        # written once the rules are in place (see the module docstring).
        tags = ec2.identity_tags(want.name, want.stack, address,
                                 None if rules else want.spec_hash)
        vpc = str(props.get("network") or "")
        if vpc:  # which keys the template used: network, reported back (module docstring)
            tags[ec2.TAG_SHAPE] = "network"
        params = {"GroupName": want.name,
                  "GroupDescription": str(props.get("description") or "") or want.name,
                  **ec2.tag_spec("security-group", tags)}
        if vpc:
            params["VpcId"] = vpc
        try:
            obj = client.ec2(region, "CreateSecurityGroup", params)
        except CloudError as err:
            if not ec2.has_code(err, "InvalidGroup.Duplicate"):
                raise
            # Ours from an earlier attempt (retried or crashed)?  Converge it.
            group_id = self._adopt(client, region, want, err)
            el = kit.require(get_raw(client, region, SECURITY_GROUP, group_id),
                             LiveResource(address, SECURITY_GROUP, group_id,
                                          client.placement(region)))
            current = self.live(client, region, address, el)
            apply_rules(client, region, group_id, current.properties["rules"], rules,
                        has_default_egress=has_default_egress(el))
            if current.spec_hash != want.spec_hash:
                client.create_tags(region, group_id, {TAG_SPEC: want.spec_hash})
            return self.refresh(client, region, address, group_id)
        group_id = ec2.text(obj, "groupId") or ""
        if rules:
            # A new VPC group has no ingress rules and EC2's default allow-all egress.
            apply_rules(client, region, group_id, [], rules, has_default_egress=True)
            client.create_tags(region, group_id, {TAG_SPEC: want.spec_hash})
        return self.refresh(client, region, address, group_id)

    @staticmethod
    def _adopt(client: AwsClient, region: str, want: kit.Desired, err: CloudError) -> str:
        """A group with our name exists: adopt it if it is ours (retried create)."""
        named = {"group-name": want.name}
        if want.properties.get("network"):
            named["vpc-id"] = str(want.properties["network"])
        obj = client.ec2(region, "DescribeSecurityGroups", ec2.filters(named))
        for el in ec2.items(obj, "securityGroupInfo/item"):
            tags = ec2.tags_of(el)
            if tags.get(TAG_STACK) == want.stack and tags.get(TAG_RESOURCE) == want.address:
                return ec2.text(el, "groupId") or ""
        raise err

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        region = live.placement.region
        if "rules" in change.changed:
            rules = canonical_rules(change.properties.get("rules") or [])
            _check_rules(rules)
            el = kit.require(get_raw(client, region, SECURITY_GROUP, live.physical_id), live)
            current = self.live(client, region, live.address, el)
            apply_rules(client, region, live.physical_id, current.properties["rules"], rules,
                        has_default_egress=has_default_egress(el))
        client.create_tags(region, live.physical_id, {TAG_SPEC: change.spec_hash})
        return self.refresh(client, region, live.address, live.physical_id)
