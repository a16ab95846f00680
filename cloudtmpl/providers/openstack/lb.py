"""``Cloud::LB::LoadBalancer`` on OpenStack: an Octavia load balancer and, per
``listeners`` entry, a listener, its default pool (``ROUND_ROBIN``) with the members
and, with a ``health_check``, a health monitor on the pool.

Identity as Octavia's other objects (:mod:`.octavia`): the load balancer is named
``<stack>.<address>``, a tag carries the spec hash (written last, once everything
under it is in place) and ``metadata`` is its other tags (``key=value``).  What it
makes is named after it, so a retry after a crash finds each part again instead of
making a second one:

* the listener of an entry ``<name>:<PROTOCOL>:<port>``; its pool
  ``<name>:<PROTOCOL>:<port>:<INSTANCE_PROTOCOL>:<instance_port>`` (so the pool name
  records the instance side of the entry, which a listener does not hold);
* a member ``<name>:member:<server id>``: the server's fixed IP on the VIP subnet's
  network, port ``instance_port`` (and ``monitor_port`` the check's port where that
  differs);
* a health monitor ``<name>:check:<target>``: ``interval`` → ``delay``, ``timeout``,
  ``healthy_threshold`` → ``max_retries``, ``unhealthy_threshold`` →
  ``max_retries_down`` (Octavia takes 1-10 of each: more is refused, not cut);
  ``HTTP:80/path`` an HTTP monitor of that path, ``HTTPS:…`` an HTTPS one, ``TCP:22``
  a TCP one, ``SSL:443`` a ``TLS-HELLO`` one.

The VIP subnet is ``subnet`` (an id or a name; not reported, so compared with the
last-applied spec), else the subnet of the first member's fixed IP.  Listener
protocols: HTTP, HTTPS (passed through), TCP and UDP, each with the instance
protocols Octavia lets its pools have.  Listeners and pools that are not
named after the load balancer (``OS::Octavia::Listener``/``Pool`` resources on it) are
left alone.  Every change waits for the load balancer to be ``ACTIVE``
(:func:`.octavia.change`); an update converges what is there to what is wanted (the
same walk as a create's), and a delete is Octavia's cascade delete, waited out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudtmpl import service_kinds
from cloudtmpl.model import LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import LOAD_BALANCER, CloudError
from cloudtmpl.providers.openstack import octavia
from cloudtmpl.providers.openstack.client import OpenStackClient
from cloudtmpl.providers.openstack.octavia import SERVICE, members_path, path

# the instance (pool) protocols each listener protocol takes (a subset of Octavia's)
_POOLS_FOR = {"HTTP": ("HTTP",), "HTTPS": ("HTTPS", "TCP"), "TCP": ("HTTP", "HTTPS", "TCP"),
              "UDP": ("UDP",)}
_MONITOR_TYPES = {"HTTP": "HTTP", "HTTPS": "HTTPS", "TCP": "TCP", "SSL": "TLS-HELLO"}
_TARGET_RE = re.compile(r"^(HTTP|HTTPS|TCP|SSL):(\d{1,5})$")


@dataclass(frozen=True)
class Entry:
    """One ``listeners`` entry."""

    protocol: str
    port: int
    instance_protocol: str
    instance_port: int

    def listener(self, lb: str) -> str:
        return f"{lb}:{self.protocol}:{self.port}"

    def pool(self, lb: str) -> str:
        return f"{self.listener(lb)}:{self.instance_protocol}:{self.instance_port}"

    def value(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "port": self.port,
                "instance_protocol": self.instance_protocol,
                "instance_port": self.instance_port}


@dataclass(frozen=True)
class Check:
    """The ``health_check``, as Octavia's health monitor takes it."""

    target: str
    kind: str  # the monitor's type
    port: int
    url_path: str | None
    delay: int
    timeout: int
    max_retries: int
    max_retries_down: int

    def name(self, lb: str) -> str:
        return f"{lb}:check:{self.target}"

    def value(self) -> dict[str, Any]:
        return {"target": self.target, "interval": self.delay, "timeout": self.timeout,
                "healthy_threshold": self.max_retries,
                "unhealthy_threshold": self.max_retries_down}

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"delay": self.delay, "timeout": self.timeout,
                               "max_retries": self.max_retries,
                               "max_retries_down": self.max_retries_down}
        if self.url_path is not None:
            out["url_path"] = self.url_path
        return out


def entries(value: Any) -> list[Entry]:
    """The ``listeners`` property, checked before anything is made."""
    if not isinstance(value, list):
        raise CloudError("listeners must be a list of {protocol, port, instance_port, "
                         "instance_protocol}", permanent=True)
    out: dict[tuple[str, int], Entry] = {}
    for raw in value:
        canon = service_kinds._canonical_listener(raw)
        if not isinstance(canon, Mapping) or canon.get("port") is None:
            raise CloudError(f"listener {raw!r}: needs at least a port", permanent=True)
        proto, inner = str(canon["protocol"]), str(canon["instance_protocol"])
        if proto not in _POOLS_FOR:
            raise CloudError(f"listener {raw!r}: protocol {proto} is not offered on "
                             f"OpenStack (Octavia: {', '.join(_POOLS_FOR)})", permanent=True)
        if inner not in _POOLS_FOR[proto]:
            raise CloudError(f"listener {raw!r}: a {proto} listener cannot send "
                             f"{inner} to its instances (it can send "
                             f"{', '.join(_POOLS_FOR[proto])})", permanent=True)
        try:
            entry = Entry(proto, int(canon["port"]), inner, int(canon["instance_port"]))
        except (TypeError, ValueError):
            raise CloudError(f"listener {raw!r}: ports must be integers",
                             permanent=True) from None
        if (proto == "UDP", entry.port) in {(e.protocol == "UDP", e.port)
                                             for e in out.values()}:
            raise CloudError(f"listeners: port {entry.port} is listed twice", permanent=True)
        out[(proto, entry.port)] = entry
    return sorted(out.values(), key=lambda e: (e.port, e.protocol))


def check(value: Any) -> Check | None:
    """The ``health_check`` property (with the defaults the schema's AWS gives)."""
    value = kit.health_check(value)
    if value is None:
        return None
    target = str(value["target"])
    head, slash, rest = target.strip().partition("/")
    found = _TARGET_RE.match(head.upper())
    if found is None or not 1 <= int(found.group(2)) <= 65535:
        raise CloudError(f"health_check target {target!r}: expected PROTOCOL:PORT[/path] "
                         "with HTTP, HTTPS, TCP or SSL", permanent=True)
    proto, port, url = found.group(1), int(found.group(2)), (slash + rest) or None
    if proto in ("TCP", "SSL") and url:
        raise CloudError(f"health_check target {target!r}: a {proto} check has no path",
                         permanent=True)
    merged = {**service_kinds._HEALTH_DEFAULTS, **value}
    numbers = {}
    for key in ("interval", "timeout", "healthy_threshold", "unhealthy_threshold"):
        try:
            numbers[key] = int(merged[key])
        except (TypeError, ValueError):
            raise CloudError(f"health_check {key} must be an integer", permanent=True) from None
    for key in ("healthy_threshold", "unhealthy_threshold"):
        if not 1 <= numbers[key] <= 10:
            raise CloudError(f"health_check {key} must be 1-10 on OpenStack (Octavia's "
                             f"max_retries{'_down' if key[0] == 'u' else ''}; got "
                             f"{numbers[key]})", permanent=True)
    if numbers["timeout"] > numbers["interval"]:
        raise CloudError("health_check timeout must not exceed its interval",
                         permanent=True)
    http = proto in ("HTTP", "HTTPS")
    return Check(target, _MONITOR_TYPES[proto],
                 port, (url or "/") if http else None, numbers["interval"],
                 numbers["timeout"], numbers["healthy_threshold"],
                 numbers["unhealthy_threshold"])


def tags_of(properties: Mapping[str, Any]) -> list[str]:
    return sorted(f"{k}={v}" for k, v in kit.metadata(properties).items())


def metadata_of(tags: Any) -> dict[str, str]:
    pairs = (str(t).partition("=") for t in tags or [])
    return kit.user_metadata({k: v for k, sep, v in pairs if sep})


# ------------------------------------------------------------------------ the network


def _subnet(client: OpenStackClient, region: str, value: str) -> dict[str, Any]:
    oid = octavia.subnet_ref(client, region, value)
    found = client.get(region, "network", f"/v2.0/subnets/{oid}", "subnet")
    if found is None:
        raise CloudError(f"subnet {value!r}: no such subnet", permanent=True)
    return dict(found)


def _server_ports(client: OpenStackClient, region: str, server: str) -> list[dict[str, Any]]:
    ports = client.list_all(region, "network", "/v2.0/ports", "ports", {"device_id": server})
    if not ports:
        raise CloudError(f"member {server}: no server with that id has a port in {region}",
                         permanent=True)
    return ports


def vip_subnet(client: OpenStackClient, region: str, props: Mapping[str, Any]) -> str:
    """The VIP subnet's id: ``subnet``, else the first member's first fixed IP's."""
    if props.get("subnet"):
        return str(_subnet(client, region, str(props["subnet"]))["id"])
    members = [str(m) for m in props.get("members") or []]
    if not members:
        raise CloudError("a load balancer on OpenStack needs a subnet (or members, whose "
                         "first one's subnet it takes)", permanent=True)
    for port in _server_ports(client, region, members[0]):
        for fixed in port.get("fixed_ips") or []:
            return str(fixed["subnet_id"])
    raise CloudError(f"member {members[0]} has no fixed IP", permanent=True)


def member_addresses(client: OpenStackClient, region: str, subnet_id: str,
                     servers: list[str]) -> dict[str, str]:
    """server id -> its fixed IP on the VIP subnet's network (that subnet's first)."""
    subnet = _subnet(client, region, subnet_id)
    out = {}
    for server in servers:
        ips = [(f["subnet_id"] != subnet_id, f["ip_address"])
               for p in _server_ports(client, region, server)
               if p.get("network_id") == subnet["network_id"]
               for f in p.get("fixed_ips") or []]
        if not ips:
            raise CloudError(f"member {server} has no address on the network of the VIP "
                             f"subnet {subnet_id}", permanent=True)
        out[server] = min(ips)[1]
    return out


# ------------------------------------------------------------------------ what is there


@dataclass(frozen=True)
class Parts:
    """A load balancer and what is under it, as Octavia lists them."""

    lb: Mapping[str, Any]
    listeners: list[dict[str, Any]]
    pools: list[dict[str, Any]]
    members: list[dict[str, Any]]  # each with its pool_id
    monitors: list[dict[str, Any]]


def parts(client: OpenStackClient, region: str, lb: Mapping[str, Any]) -> Parts:
    lb_id = str(lb["id"])

    def under(collection: str) -> list[dict[str, Any]]:  # the filter, and checked here
        found = client.list_all(region, SERVICE, path(collection), collection,
                                {"loadbalancer_id": lb_id})
        return [o for o in found if octavia.first_id(o.get("loadbalancers")) == lb_id]

    listeners, pools = under("listeners"), under("pools")
    members = [{**m, "pool_id": p["id"]} for p in pools
               for m in client.list_all(region, SERVICE, members_path(str(p["id"])),
                                        "members")]
    pool_ids = {str(p["id"]) for p in pools}
    monitors = [h for h in client.list_all(region, SERVICE, path("healthmonitors"),
                                           "healthmonitors", {"loadbalancer_id": lb_id})
                if octavia.first_id(h.get("pools")) in pool_ids]
    return Parts(lb, listeners, pools, members, monitors)


def _mine(lb_name: str, objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(o["name"]): o for o in objs if str(o.get("name") or "")
            .startswith(f"{lb_name}:")}


def live_of(client: OpenStackClient, region: str, address: str, got: Parts) -> LiveResource:
    lb = got.lb
    name = str(lb.get("name"))
    pools = _mine(name, got.pools)
    listeners = []
    for pool_name in pools:
        fields = pool_name[len(name) + 1:].split(":")
        if len(fields) == 4 and fields[1].isdigit() and fields[3].isdigit():
            listeners.append(Entry(fields[0], int(fields[1]), fields[2],
                                   int(fields[3])).value())
    prefix = f"{name}:member:"
    members = sorted({str(m["name"])[len(prefix):] for m in got.members
                      if str(m.get("name") or "").startswith(prefix)})
    health = None
    for hm in _mine(name, got.monitors).values():
        target = str(hm["name"]).split(":check:", 1)[-1]
        health = {"target": target, "interval": hm.get("delay"),
                  "timeout": hm.get("timeout"), "healthy_threshold": hm.get("max_retries"),
                  "unhealthy_threshold": hm.get("max_retries_down")}
        break
    spec = octavia.spec_of(lb)
    status = str(lb.get("provisioning_status") or "")
    vip = lb.get("vip_address")
    return LiveResource(
        address=address, kind=LOAD_BALANCER, physical_id=str(lb["id"]),
        placement=client.placement(region), name=name,
        # in the template's canonical order (service_kinds.canonical_service)
        properties={"listeners": sorted(listeners, key=service_kinds._json_key),
                    # subnet is not reported (a template may name it): the last-applied
                    # spec has it
                    "members": members, "health_check": health,
                    "metadata": metadata_of(lb.get("tags"))},
        attributes={"dns_name": vip, "vip_address": vip, "vip_port_id": lb.get("vip_port_id"),
                    "name": name, "members": members, "id": str(lb["id"])},
        spec_hash=spec, status=status.lower())


# ------------------------------------------------------------------------ the handler


class LoadBalancerHandler:
    kind = LOAD_BALANCER
    listings = ("lb_loadbalancers", "lb_listeners", "lb_pools", "lb_members",
                "lb_healthmonitors")

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        out = []
        for address, lb in kit.stack_items(listings.get("lb_loadbalancers"),
                                           lambda o: octavia.stack_address(stack, o)):
            lb_id = str(lb["id"])
            pools = [p for p in listings.get("lb_pools")
                     if octavia.first_id(p.get("loadbalancers")) == lb_id]
            pool_ids = {str(p["id"]) for p in pools}
            got = Parts(lb, [x for x in listings.get("lb_listeners")
                             if octavia.first_id(x.get("loadbalancers")) == lb_id], pools,
                        [m for m in listings.get("lb_members") if m.get("pool_id") in pool_ids],
                        [h for h in listings.get("lb_healthmonitors")
                         if octavia.first_id(h.get("pools")) in pool_ids])
            out.append(live_of(client, region, address, got))
        return out

    def _now(self, client: OpenStackClient, region: str, lb_id: str,
             address: str) -> LiveResource:
        lb = octavia.get(client, region, path("loadbalancers", lb_id), "loadbalancer")
        if lb is None:
            raise CloudError(f"load balancer {address} ({lb_id}) vanished", permanent=True)
        return live_of(client, region, address, parts(client, region, lb))

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        props = want.properties
        wanted, health = entries(props.get("listeners") or []), check(props.get("health_check"))
        subnet = vip_subnet(client, region, props)
        servers = [str(m) for m in props.get("members") or []]
        addresses = member_addresses(client, region, subnet, servers)
        body = {"name": want.name, "vip_subnet_id": subnet,
                "tags": tags_of(props)}  # the spec's tag once everything is in place
        where = path("loadbalancers")
        lb = octavia.post(client, region, where, "loadbalancer", body,
                          lambda: octavia.find(client, region, where, "loadbalancers",
                                               want.name))
        lb_id = str(lb["id"])
        octavia.wait_active(client, region, lb_id, want.timeout)
        self._converge(client, region, lb_id, want.name, wanted, addresses, health,
                       want.timeout)
        self._mark(client, region, lb_id, want.spec_hash, tags_of(props), want.timeout)
        return self._now(client, region, lb_id, want.address)

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        region, props = live.placement.region, change.properties
        wanted, health = entries(props.get("listeners") or []), check(props.get("health_check"))
        lb = kit.require(octavia.get(client, region, path("loadbalancers", live.physical_id),
                                     "loadbalancer"), live)
        servers = [str(m) for m in props.get("members") or []]
        addresses = member_addresses(client, region, str(lb["vip_subnet_id"]), servers)
        octavia.wait_active(client, region, live.physical_id, change.timeout)
        self._converge(client, region, live.physical_id, str(lb["name"]), wanted, addresses,
                       health, change.timeout)
        self._mark(client, region, live.physical_id, change.spec_hash, tags_of(props),
                   change.timeout)
        return self._now(client, region, live.physical_id, live.address)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        octavia.delete_until_gone(client, live.placement.region,
                                  path("loadbalancers", live.physical_id), "loadbalancer",
                                  lambda: live.physical_id, timeout, {"cascade": "true"})

    # --- the walk

    @staticmethod
    def _mark(client: OpenStackClient, region: str, lb_id: str, spec: str, tags: list[str],
              timeout: float) -> None:
        body = {"loadbalancer": {"tags": octavia.spec_tags(spec, tags)}}
        octavia.change(client, region, lambda: lb_id, timeout,
                       lambda: client.api(region, SERVICE, path("loadbalancers", lb_id),
                                          method="PUT", body=body, retry=False))

    def _converge(self, client: OpenStackClient, region: str, lb_id: str, name: str,
                  wanted: list[Entry], addresses: dict[str, str], health: Check | None,
                  timeout: float) -> None:
        lb = octavia.wait_active(client, region, lb_id, timeout)
        got = parts(client, region, lb)

        def write(method: str, where: str, key: str | None = None,
                  body: dict[str, Any] | None = None,
                  params: dict[str, str] | None = None) -> Any:
            return octavia.change(client, region, lambda: lb_id, timeout, lambda: client.api(
                region, SERVICE, where, method=method, params=params,
                body={key: body} if key else None, retry=False))

        def make(where: str, key: str, collection: str, body: dict[str, Any]) -> str:
            made: dict[str, Any] = {}

            def go() -> dict[str, Any]:
                made.update(octavia.post(client, region, where, key, body, lambda: octavia.find(
                    client, region, where, collection, body["name"])))
                return made

            octavia.change(client, region, lambda: lb_id, timeout, go)
            return str(made["id"])

        pools, listeners = _mine(name, got.pools), _mine(name, got.listeners)
        for pool_name, pool in pools.items():  # a pool takes its members and monitor along
            if pool_name not in {e.pool(name) for e in wanted}:
                write("DELETE", path("pools", str(pool["id"])))
        for lst_name, lst in listeners.items():
            if lst_name not in {e.listener(name) for e in wanted}:
                write("DELETE", path("listeners", str(lst["id"])))
        for entry in wanted:
            lst_id = str(listeners[entry.listener(name)]["id"]) \
                if entry.listener(name) in listeners else \
                make(path("listeners"), "listener", "listeners", {
                    "name": entry.listener(name), "loadbalancer_id": lb_id,
                    "protocol": entry.protocol, "protocol_port": entry.port})
            found = pools.get(entry.pool(name))
            pool_id = str(found["id"]) if found else make(path("pools"), "pool", "pools", {
                "name": entry.pool(name), "listener_id": lst_id,
                "protocol": entry.instance_protocol, "lb_algorithm": "ROUND_ROBIN"})
            self._members(write, make, name, pool_id, entry, addresses, health,
                          [m for m in got.members if m["pool_id"] == pool_id])
            self._monitor(write, make, name, pool_id, health,
                          [h for h in got.monitors
                           if octavia.first_id(h.get("pools")) == pool_id])

    @staticmethod
    def _members(write: Any, make: Any, name: str, pool_id: str, entry: Entry,
                 addresses: dict[str, str], health: Check | None,
                 have: list[dict[str, Any]]) -> None:
        prefix = f"{name}:member:"
        monitor = health.port if health and health.port != entry.instance_port else None
        mine = {str(m["name"])[len(prefix):]: m for m in have
                if str(m.get("name") or "").startswith(prefix)}
        for server, member in mine.items():
            if addresses.get(server) != member.get("address") \
                    or member.get("protocol_port") != entry.instance_port:
                write("DELETE", members_path(pool_id, str(member["id"])))
            elif member.get("monitor_port") != monitor:
                write("PUT", members_path(pool_id, str(member["id"])), "member",
                      {"monitor_port": monitor})
        for server, address in sorted(addresses.items()):
            old = mine.get(server)
            if old is not None and old.get("address") == address \
                    and old.get("protocol_port") == entry.instance_port:
                continue
            body: dict[str, Any] = {"name": f"{prefix}{server}", "address": address,
                                    "protocol_port": entry.instance_port}
            if monitor is not None:
                body["monitor_port"] = monitor
            make(members_path(pool_id), "member", "members", body)

    @staticmethod
    def _monitor(write: Any, make: Any, name: str, pool_id: str, health: Check | None,
                 have: list[dict[str, Any]]) -> None:
        current = next(iter(have), None)
        if current is not None and (health is None or current.get("type") != health.kind):
            write("DELETE", path("healthmonitors", str(current["id"])))  # type: fixed
            current = None
        if health is None:
            return
        if current is None:
            make(path("healthmonitors"), "healthmonitor", "healthmonitors", {
                "name": health.name(name), "pool_id": pool_id, "type": health.kind,
                **health.fields()})
            return
        wanted = {"name": health.name(name), **health.fields()}
        if any(current.get(k) != v for k, v in wanted.items()):
            write("PUT", path("healthmonitors", str(current["id"])), "healthmonitor", wanted)


LOAD_BALANCERS = LoadBalancerHandler()
