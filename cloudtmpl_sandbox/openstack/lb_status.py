"""Octavia's operating status, computed when asked (:mod:`.lb_models` holds the objects).

A member is ``OFFLINE`` when administratively down, ``NO_MONITOR`` when its pool has
no health monitor, ``ONLINE`` when its address is one of an ``ACTIVE`` server of the
region, and ``ERROR`` otherwise; a pool is ``ERROR`` when all its members are,
``DEGRADED`` when some are; a listener follows its default pool and a load balancer
is ``DEGRADED`` when a listener is not ``ONLINE`` (``OFFLINE`` while it is created).
"""

from __future__ import annotations

from . import compute_models
from .core import JSON
from .lb_models import items
from .state import Region


def server_addresses(region: Region) -> set[str]:
    """The fixed IPs of the region's ACTIVE servers."""
    out: set[str] = set()
    for server in region.servers.values():
        if compute_models.settle(server)["status"] != "ACTIVE":
            continue
        for port_id in server.get("port_ids", []):
            port = region.ports.get(port_id)
            out.update(ip["ip_address"] for ip in (port or {}).get("fixed_ips", []))
    return out


def _worst(states: list[str]) -> str:
    if states and all(s == "ERROR" for s in states):
        return "ERROR"
    return "DEGRADED" if any(s in ("ERROR", "DEGRADED") for s in states) else "ONLINE"


def operating(region: Region, obj: JSON, servers: set[str] | None = None) -> str:
    """``obj``'s operating status now (see the module docstring)."""
    kind = obj["_kind"]
    if obj["provisioning_status"] == "PENDING_CREATE" and kind == "loadbalancers":
        return "OFFLINE"
    if not obj["admin_state_up"]:
        return "OFFLINE"
    servers = server_addresses(region) if servers is None else servers
    if kind == "members":
        pool = items(region, "pools").get(obj["_pool"])
        if pool is None or not pool["healthmonitor_id"]:
            return "NO_MONITOR"
        return "ONLINE" if obj["address"] in servers else "ERROR"
    if kind == "healthmonitors":
        return "ONLINE"
    if kind == "pools":
        found = [operating(region, items(region, "members")[m["id"]], servers)
                 for m in obj["members"] if m["id"] in items(region, "members")]
        return _worst([s for s in found if s in ("ONLINE", "ERROR")])
    if kind == "listeners":
        pool = items(region, "pools").get(obj["default_pool_id"] or "")
        return operating(region, pool, servers) if pool else "ONLINE"
    found = [operating(region, items(region, "listeners")[x["id"]], servers)
             for x in obj["listeners"] if x["id"] in items(region, "listeners")]
    return "DEGRADED" if _worst(found) != "ONLINE" else "ONLINE"
