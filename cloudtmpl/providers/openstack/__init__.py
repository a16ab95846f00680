"""OpenStack (and the OpenStack sandbox) through libcloud's OpenStack driver (API 2.2).

The adapter is a :class:`cloudtmpl.providers.kit.Dispatcher` over the client
(:mod:`.client`: connections, Keystone credentials from :mod:`.auth`, counting,
retries, the raw listings) and one handler per kind, in one module per family:

* :mod:`.compute` - servers (and the ports made for their ``{subnet}`` NICs; the
  Glance image of deletion_policy Snapshot);
* :mod:`.block` - volumes, attachments, the Cinder backup of deletion_policy Snapshot;
* :mod:`.keys` - key pairs; :mod:`.server_groups` - server groups;
* :mod:`.identity` - Keystone's domains, projects, roles, groups, users, regions,
  services and endpoints (an admin's credentials);
* :mod:`.network` - networks, subnets, ports; :mod:`.security` - security groups;
* :mod:`.floating` - floating IPs and their associations;
* :mod:`.routers` - routers, their interfaces, gateways and extra routes (NAT gateways
  are not offered: SNAT on the router, ``enable_snat``, is OpenStack's equivalent);
* :mod:`.secrets` - secrets (Barbican);
* :mod:`.storage` - buckets (Swift containers, over :mod:`.swift`);
* :mod:`.lb` - load balancers (an Octavia load balancer with a listener, pool, members
  and health monitor per listener entry); :mod:`.octavia` - Octavia's own listeners,
  pools, members and health monitors, and the plumbing they share with :mod:`.lb`
  (every change waits for the load balancer to be ``ACTIVE``).

Each module's docstring says how a resource of its kinds is known as the stack's
(the markers it carries, or its deterministic name) and what a crash can leave
behind.  Flavor, image, network and group lookups are :mod:`.catalog`.

Discovery sends one listing per underlying API and region (servers, flavors,
ports, security groups, volumes, key pairs, networks, subnets, floating IPs, routers,
Swift's containers, Octavia's load balancers, listeners, pools and health monitors, and
the members of the stack's pools - only those the kinds need, each at most once, the
services in parallel), follows every ``next`` link and filters by metadata, name
prefix or description marker; Swift's containers are searched by the stack's name
prefix.  Reported properties
follow :mod:`cloudtmpl.resources`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import LiveResource, Target
from cloudtmpl.providers import base, kit
from cloudtmpl.providers.base import Choice, CloudError
from cloudtmpl.providers.openstack import (
    block,
    catalog,
    compute,
    floating,
    identity,
    keys,
    lb,
    network,
    octavia,
    routers,
    secrets,
    security,
    server_groups,
    signals,
    storage,
)
from cloudtmpl.providers.openstack.auth import OpenStackAuth
from cloudtmpl.providers.openstack.client import OpenStackClient

__all__ = ["HANDLERS", "LB_KINDS", "OpenStackAdapter", "kit"]

HANDLERS: Mapping[str, kit.Handler[OpenStackClient]] = {
    base.SERVER: compute.ServerHandler(),
    base.VOLUME: block.VolumeHandler(),
    base.ATTACHMENT: block.AttachmentHandler(),
    base.KEYPAIR: keys.KeyPairHandler(),
    base.SERVER_GROUP: server_groups.ServerGroupHandler(),
    base.SECURITY_GROUP: security.SecurityGroupHandler(),
    base.FLOATING_IP: floating.FloatingIpHandler(),
    base.FLOATING_IP_ASSOCIATION: floating.FloatingIpAssociationHandler(),
    base.NETWORK: network.NETWORKS,
    base.SUBNET: network.SUBNETS,
    base.PORT: network.PORTS,
    base.ROUTER: routers.RouterHandler(),
    base.ROUTER_INTERFACE: routers.RouterInterfaceHandler(),
    base.ROUTER_GATEWAY: routers.RouterGatewayHandler(),
    base.ROUTE: routers.RouteHandler(),
    storage.BUCKET: storage.BucketHandler(),
    signals.HANDLE.kind: signals.HandleHandler(),
    signals.CONDITION.kind: signals.ConditionHandler(),
    base.LOAD_BALANCER: lb.LOAD_BALANCERS,
    base.LISTENER: octavia.LISTENERS,
    base.POOL: octavia.POOLS,
    base.POOL_MEMBER: octavia.POOL_MEMBERS,
    base.HEALTH_MONITOR: octavia.HEALTH_MONITORS,
    **identity.HANDLERS,
    base.SECRET: secrets.SecretHandler(),
}
WAIT_KINDS = frozenset({signals.HANDLE.kind, signals.CONDITION.kind})
# Octavia's kinds: another service, which most stacks do not use
LB_KINDS = frozenset({base.LOAD_BALANCER, base.LISTENER, base.POOL, base.POOL_MEMBER,
                      base.HEALTH_MONITOR})


class OpenStackAdapter(kit.Dispatcher[OpenStackClient]):
    """The OpenStack adapter.  See the package docstring for identity and discovery."""

    # listed on demand: rarely used, or (routers and what hangs off them) a listing of
    # their own that only network stacks need
    on_demand = storage.STORAGE_KINDS | LB_KINDS | {base.SERVER_GROUP, base.SECRET} \
        | routers.ROUTER_KINDS | WAIT_KINDS | identity.IDENTITY_KINDS
    snapshot_kind = "Cinder backup"
    snapshot_kinds = {base.SERVER: "Glance image"}  # what else a kind's copy is called

    def __init__(self, target: Target, **options: Any) -> None:
        """``options``: those of :class:`.client.OpenStackClient` (environ, cwd, home,
        sleep, clock, retry_policy, page_size, poll_max_interval)."""
        super().__init__(OpenStackClient(target, **options), HANDLERS)

    def credentials(self) -> OpenStackAuth:
        return self.client.credentials()

    def lookup_choice(self, region: str, what: str, value: str) -> Choice:
        return catalog.lookup_choice(self.client, region, what, value)

    def snapshot_volume(self, live: LiveResource, *, stack: str, timeout: float) -> str | None:
        """deletion_policy Snapshot: a Cinder backup of a volume (:func:`.block.snapshot`),
        a Glance image of a server (:func:`.compute.snapshot_image`)."""
        if live.kind == base.SERVER:
            return compute.snapshot_image(self.client, live, stack=stack, timeout=timeout)
        if live.kind != base.VOLUME:
            raise CloudError(f"the openstack provider cannot snapshot {live.kind}",
                             permanent=True)
        return block.snapshot(self.client, live, stack=stack, timeout=timeout)
