"""``Cloud::LB::LoadBalancer`` on AWS: a classic ELB (raw queries on libcloud's connection).

Physical id: the balancer name, ``<stack>-<address>`` in ELB's alphabet (32
characters at most, hashed when longer); tags in ``CreateLoadBalancer`` itself, the
spec tag after the health check and members are in place.  With ``subnet`` the
balancer is made in that subnet's VPC (members must be instances of that VPC);
without, in the region's zones (``availability_zones``).  Discovery:
``DescribeLoadBalancers`` (every page) + ``DescribeTags`` per 20 balancers with the
stack's name prefix.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.aws.svcxml import find, find_all, hashed, live, txt
from cloudtmpl.providers.base import CloudError

LOAD_BALANCER = "Cloud::LB::LoadBalancer"
ELB_VERSION = "2012-06-01"
_HEALTH_DEFAULTS = {"interval": 30, "timeout": 5, "healthy_threshold": 10,
                    "unhealthy_threshold": 2}
_HEALTH_KEYS = {"target": "Target", "interval": "Interval", "timeout": "Timeout",
                "healthy_threshold": "HealthyThreshold",
                "unhealthy_threshold": "UnhealthyThreshold"}
_DESCRIPTIONS = "DescribeLoadBalancersResult/LoadBalancerDescriptions/member"


def lb_name(stack: str, address: str) -> str:
    """``<stack>-<address>`` in ELB's alphabet (1-32 of ``A-Za-z0-9-``)."""
    text = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9-]+", "-", f"{stack}-{address}"))
    return hashed(text.strip("-"), 32)


def lb_prefix(stack: str) -> str:
    return lb_name(stack, "x")[:-1][:23]


def _health(raw: Any) -> dict[str, Any] | None:
    value = kit.health_check(raw)
    if value is None:
        return None
    out: dict[str, Any] = {"target": str(value["target"])}
    for key, default in _HEALTH_DEFAULTS.items():
        out[key] = int(value.get(key, default))
    return out


def _listeners(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise CloudError("a classic ELB needs listeners: a non-empty list of {protocol, "
                         "port, instance_port}", permanent=True)
    out = []
    for raw in value:
        if not isinstance(raw, Mapping) or raw.get("port") is None:
            raise CloudError(f"listener {raw!r}: needs at least a port", permanent=True)
        proto = str(raw.get("protocol") or "HTTP").upper()
        out.append({"protocol": proto, "port": int(raw["port"]),
                    "instance_port": int(raw.get("instance_port") or raw["port"]),
                    "instance_protocol": str(raw.get("instance_protocol") or proto).upper()})
    return sorted(out, key=lambda x: (x["port"], x["protocol"]))


def _elb(client: AwsClient, region: str, action: str, params: Mapping[str, str] | None = None,
         ok: Iterable[str] = (), retry: bool = True) -> tuple[ET.Element | None, str]:
    full = {"Action": action, "Version": ELB_VERSION, **(params or {})}
    _, body, code = client.request("elb", region, "/", params=full, ok=ok, retry=retry)
    return body, code


def _tags(client: AwsClient, region: str, names: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for i in range(0, len(names), 20):
        params = {f"LoadBalancerNames.member.{j}": n for j, n in enumerate(names[i:i + 20], 1)}
        body, _ = _elb(client, region, "DescribeTags", params)
        for desc in find_all(body, "DescribeTagsResult/TagDescriptions/member"):
            out[txt(desc, "LoadBalancerName") or ""] = {
                (txt(t, "Key") or ""): (txt(t, "Value") or "")
                for t in find_all(desc, "Tags/member")}
    return out


def list_balancers(client: AwsClient, region: str, stack: str) -> list[Any]:
    """The listing ``balancers``: (description, tags) of the stack's balancers."""
    prefix = lb_prefix(stack)
    found: dict[str, ET.Element] = {}
    params = {"PageSize": "400"}
    seen: set[str] = set()
    while True:
        body, _ = _elb(client, region, "DescribeLoadBalancers", params)
        for el in find_all(body, _DESCRIPTIONS):
            name = txt(el, "LoadBalancerName") or ""
            if name.startswith(prefix):
                found[name] = el
        marker = txt(body, "DescribeLoadBalancersResult/NextMarker")
        if not marker or marker in seen:
            break
        seen.add(marker)
        params = {"PageSize": "400", "Marker": marker}
    tags = _tags(client, region, sorted(found))
    out = []
    for name, el in sorted(found.items()):
        t = tags.get(name, {})
        if t.get(TAG_STACK) == stack and t.get(TAG_RESOURCE):
            out.append((el, t))
    return out


def _get(client: AwsClient, region: str, name: str,
         retry: bool = True) -> tuple[ET.Element, dict[str, str]] | None:
    body, code = _elb(client, region, "DescribeLoadBalancers",
                      {"LoadBalancerNames.member.1": name}, ok=("LoadBalancerNotFound",),
                      retry=retry)
    els = find_all(body, _DESCRIPTIONS)
    if code or not els:
        return None
    return els[0], _tags(client, region, [name]).get(name, {})


def _listener_params(listeners: list[dict[str, Any]]) -> dict[str, str]:
    params = {}
    for i, lst in enumerate(listeners, 1):
        params[f"Listeners.member.{i}.Protocol"] = lst["protocol"]
        params[f"Listeners.member.{i}.LoadBalancerPort"] = str(lst["port"])
        params[f"Listeners.member.{i}.InstancePort"] = str(lst["instance_port"])
        params[f"Listeners.member.{i}.InstanceProtocol"] = lst["instance_protocol"]
    return params


def _add_tags(client: AwsClient, region: str, name: str, tags: Mapping[str, str]) -> None:
    params = {"LoadBalancerNames.member.1": name}
    for i, (k, v) in enumerate(tags.items(), 1):
        params[f"Tags.member.{i}.Key"] = k
        params[f"Tags.member.{i}.Value"] = v
    if tags:
        _elb(client, region, "AddTags", params)


def _members(client: AwsClient, region: str, name: str, action: str, ids: Iterable[str]) -> None:
    params = {"LoadBalancerName": name}
    for i, iid in enumerate(sorted(ids), 1):
        params[f"Instances.member.{i}.InstanceId"] = iid
    if len(params) > 1:
        _elb(client, region, action, params)


def _configure_health(client: AwsClient, region: str, name: str,
                      health: Mapping[str, Any]) -> None:
    params = {"LoadBalancerName": name}
    params.update({f"HealthCheck.{v}": str(health[k]) for k, v in _HEALTH_KEYS.items()})
    _elb(client, region, "ConfigureHealthCheck", params)


class LoadBalancer:
    kind = LOAD_BALANCER
    listings = ("balancers",)

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [self.live(client, region, el, tags) for el, tags in listings.get("balancers")]

    @staticmethod
    def live(client: AwsClient, region: str, el: ET.Element,
             tags: Mapping[str, str]) -> LiveResource:
        name = txt(el, "LoadBalancerName") or ""
        listeners = sorted(({"protocol": (txt(m, "Listener/Protocol") or "").upper(),
                             "port": int(txt(m, "Listener/LoadBalancerPort") or 0),
                             "instance_port": int(txt(m, "Listener/InstancePort") or 0),
                             "instance_protocol": (txt(m, "Listener/InstanceProtocol")
                                                   or txt(m, "Listener/Protocol")
                                                   or "").upper()}
                            for m in find_all(el, "ListenerDescriptions/member")),
                           key=lambda x: (x["port"], x["protocol"]))
        members = sorted(txt(m, "InstanceId") or "" for m in find_all(el, "Instances/member"))
        hc = find(el, "HealthCheck")
        health = None
        if hc is not None and txt(hc, "Target"):
            health = {"target": txt(hc, "Target"),
                      **{k: int(txt(hc, v) or 0) for k, v in _HEALTH_KEYS.items()
                         if k != "target"}}
        zones = sorted((z.text or "").strip() for z in find_all(el, "AvailabilityZones/member"))
        subnets = sorted((s.text or "").strip() for s in find_all(el, "Subnets/member"))
        dns = txt(el, "DNSName") or ""
        return live(client.placement(region), LOAD_BALANCER, tags.get(TAG_RESOURCE) or name,
                    name, name,
                    {"listeners": listeners, "members": members, "health_check": health,
                     "availability_zones": zones, "metadata": ec2.user_tags(tags),
                     "subnet": subnets[0] if subnets else None},
                    {"dns_name": dns, "name": name, "members": members},
                    tags.get(TAG_SPEC), status="active")

    def _now(self, client: AwsClient, region: str, name: str, address: str) -> LiveResource:
        got = _get(client, region, name)
        if got is None:
            raise CloudError(f"load balancer {address} ({name}) is gone", permanent=True)
        return self.live(client, region, *got)

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        properties = want.properties
        name = lb_name(want.stack, want.address)
        listeners = _listeners(properties.get("listeners"))
        health = _health(properties.get("health_check"))
        members = [str(m) for m in properties.get("members") or []]
        zones = [str(z) for z in properties.get("availability_zones") or [f"{region}a"]]
        tags = {ec2.TAG_NAME: name, TAG_STACK: want.stack, TAG_RESOURCE: want.address,
                **ec2.metadata(properties)}
        params = {"LoadBalancerName": name, **_listener_params(listeners)}
        if properties.get("subnet"):  # in a VPC: its subnet (whose zone it serves)
            params["Subnets.member.1"] = str(properties["subnet"])
        else:
            for i, zone in enumerate(zones, 1):
                params[f"AvailabilityZones.member.{i}"] = zone
        for i, (k, v) in enumerate(tags.items(), 1):
            params[f"Tags.member.{i}.Key"] = k
            params[f"Tags.member.{i}.Value"] = v

        def post() -> str:
            _elb(client, region, "CreateLoadBalancer", params, retry=False)
            return name

        def lookup() -> str | None:  # the first attempt's balancer, if it made one
            got = _get(client, region, name, retry=False)
            mine = got is not None and got[1].get(TAG_STACK) == want.stack \
                and got[1].get(TAG_RESOURCE) == want.address
            return name if mine else None

        # Not retried blindly: a repeat after a lost answer is refused as a duplicate
        # name, so after an ambiguous failure look for the first attempt's balancer.
        kit.create_or_adopt(post, lookup, client.call)
        if health:
            _configure_health(client, region, name, health)
        _members(client, region, name, "RegisterInstancesWithLoadBalancer", members)
        _add_tags(client, region, name, {TAG_SPEC: want.spec_hash})
        return self._now(client, region, name, want.address)

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        region = live.placement.region
        properties, changed = change.properties, change.changed
        name = live.physical_id
        got = kit.require(_get(client, region, name), live)
        current = self.live(client, region, *got)
        if "listeners" in changed:
            want = _listeners(properties.get("listeners"))
            have = list(current.properties.get("listeners") or [])
            gone = [h for h in have if h not in want]
            new = [w for w in want if w not in have]
            if gone:
                params = {"LoadBalancerName": name}
                for i, lst in enumerate(gone, 1):
                    params[f"LoadBalancerPorts.member.{i}"] = str(lst["port"])
                _elb(client, region, "DeleteLoadBalancerListeners", params)
            if new:
                _elb(client, region, "CreateLoadBalancerListeners",
                     {"LoadBalancerName": name, **_listener_params(new)})
        if "members" in changed:
            want_m = {str(m) for m in properties.get("members") or []}
            have_m = set(current.properties.get("members") or [])
            _members(client, region, name, "DeregisterInstancesFromLoadBalancer", have_m - want_m)
            _members(client, region, name, "RegisterInstancesWithLoadBalancer", want_m - have_m)
        if "health_check" in changed:
            health = _health(properties.get("health_check"))
            if health:
                _configure_health(client, region, name, health)
        tags = ec2.metadata(properties)
        if "metadata" in changed:
            stale = sorted(set(ec2.user_tags(got[1])) - set(tags))
            if stale:
                params = {"LoadBalancerNames.member.1": name}
                params.update({f"Tags.member.{i}.Key": k for i, k in enumerate(stale, 1)})
                _elb(client, region, "RemoveTags", params)
        _add_tags(client, region, name, {**tags, TAG_SPEC: change.spec_hash})
        return self._now(client, region, name, live.address)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        _elb(client, live.placement.region, "DeleteLoadBalancer",
             {"LoadBalancerName": live.physical_id}, ok=("LoadBalancerNotFound",))
