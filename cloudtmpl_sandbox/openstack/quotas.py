"""Quotas, limits and availability zones of Nova and Cinder, on the wire.

Nova (below ``/v2.1``): ``GET /os-quota-sets/{project}`` (``/detail``: each value as
``{"limit", "in_use", "reserved"}``), ``GET /limits``, ``GET /os-availability-zone``
(``/detail`` is admin-only by Nova's default policy: 403 for the sandbox's member).
The network-proxy entries (``floating_ips``, ``security_groups``, ...) are gone from
2.36 on, ``maxImageMeta`` from 2.39, as in Nova.

Cinder (below ``/v3/{project}``): ``GET /os-quota-sets/{project}`` (``?usage=True``:
the detailed form), ``GET /limits``, ``GET /os-availability-zone``.

Another project's quotas are refused (403) as the default policies refuse a member.
The limits are the knobs' ``quota``; the use is counted from the region's resources.
"""

from __future__ import annotations

from . import compute_models, versions
from .core import JSON, Call, Reply, Router, fault
from .identity import PROJECT_ID
from .state import Region

compute_router = Router()
volume_router = Router()

# Nova's fixed defaults for what the sandbox does not count
_NOVA_FIXED = {"key_pairs": 100, "metadata_items": 128, "injected_files": 5,
               "injected_file_content_bytes": 10240, "injected_file_path_bytes": 255,
               "server_groups": 10, "server_group_members": 10}
_NOVA_PROXY = {"fixed_ips": -1, "floating_ips": 10, "security_group_rules": 20,
               "security_groups": 10}


def _region(call: Call) -> Region:
    region: Region = call.store.regions[call.region]
    return region


def _own(call: Call, policy: str) -> None:
    if call.params["project_id"] != PROJECT_ID:
        raise fault(403, f"Policy doesn't allow {policy} to be performed.")


def _nova_quota(call: Call) -> tuple[dict[str, int], dict[str, int]]:
    """(limits, use) of the Nova quota set at the request's microversion."""
    quota = call.store.knobs.quota
    region = _region(call)
    used = compute_models.usage(region)
    limits = {"instances": quota["instances"], "cores": quota["cores"], "ram": quota["ram"],
              **_NOVA_FIXED}
    use = {**dict.fromkeys(limits, 0), **used, "key_pairs": len(region.keypairs),
           "server_groups": len(region.server_groups)}
    if versions.compute(call.headers) < (2, 36):
        limits.update(_NOVA_PROXY)
        use.update(dict.fromkeys(_NOVA_PROXY, 0))
    return limits, use


@compute_router.route("GET", "/os-quota-sets/{project_id}")
def _nova_quota_show(call: Call) -> Reply:
    _own(call, "os_compute_api:os-quota-sets:show")
    limits, _ = _nova_quota(call)
    return Reply(200, {"quota_set": {"id": PROJECT_ID, **limits}})


@compute_router.route("GET", "/os-quota-sets/{project_id}/detail")
def _nova_quota_detail(call: Call) -> Reply:
    _own(call, "os_compute_api:os-quota-sets:detail")
    limits, use = _nova_quota(call)
    detail: JSON = {k: {"limit": v, "in_use": use[k], "reserved": 0} for k, v in limits.items()}
    return Reply(200, {"quota_set": {"id": PROJECT_ID, **detail}})


@compute_router.route("GET", "/os-quota-sets/{project_id}/defaults")
def _nova_quota_defaults(call: Call) -> Reply:
    limits, _ = _nova_quota(call)
    return Reply(200, {"quota_set": {"id": call.params["project_id"], **limits}})


@compute_router.route("GET", "/limits")
def _nova_limits(call: Call) -> Reply:
    limits, use = _nova_quota(call)
    absolute = {
        "maxTotalInstances": limits["instances"], "maxTotalCores": limits["cores"],
        "maxTotalRAMSize": limits["ram"], "maxTotalKeypairs": limits["key_pairs"],
        "maxServerMeta": limits["metadata_items"], "maxPersonality": limits["injected_files"],
        "maxPersonalitySize": limits["injected_file_content_bytes"],
        "maxServerGroups": limits["server_groups"],
        "maxServerGroupMembers": limits["server_group_members"],
        "totalInstancesUsed": use["instances"], "totalCoresUsed": use["cores"],
        "totalRAMUsed": use["ram"], "totalServerGroupsUsed": use["server_groups"],
    }
    version = versions.compute(call.headers)
    if version < (2, 36):
        absolute.update({
            "maxSecurityGroups": limits["security_groups"],
            "maxSecurityGroupRules": limits["security_group_rules"],
            "maxTotalFloatingIps": limits["floating_ips"],
            "totalSecurityGroupsUsed": 0, "totalFloatingIpsUsed": 0})
    if version < (2, 39):
        absolute["maxImageMeta"] = 128
    return Reply(200, {"limits": {"absolute": absolute, "rate": []}})


def _zones() -> JSON:
    zone = {"zoneName": compute_models.ZONE, "zoneState": {"available": True},
            "hosts": None}
    return {"availabilityZoneInfo": [zone]}


@compute_router.route("GET", "/os-availability-zone")
def _nova_zones(call: Call) -> Reply:
    return Reply(200, _zones())


@compute_router.route("GET", "/os-availability-zone/detail")
def _nova_zones_detail(call: Call) -> Reply:
    raise fault(403, "Policy doesn't allow os_compute_api:os-availability-zone:detail to be "
                "performed.")


# --------------------------------------------------------------------------- Cinder


def _cinder_quota(call: Call) -> tuple[dict[str, int], dict[str, int]]:
    quota = call.store.knobs.quota
    region = _region(call)
    limits = {"volumes": quota["volumes"], "gigabytes": quota["gigabytes"],
              "snapshots": quota["snapshots"], "backups": quota["backups"],
              "backup_gigabytes": 1000, "per_volume_gigabytes": -1, "groups": 10}
    use = {
        **dict.fromkeys(limits, 0),
        "volumes": len(region.volumes), "snapshots": len(region.snapshots),
        "backups": len(region.backups),
        "gigabytes": sum(v["size"] for v in region.volumes.values())
        + sum(s["size"] for s in region.snapshots.values()),
        "backup_gigabytes": sum(b["size"] for b in region.backups.values()),
    }
    return limits, use


@volume_router.route("GET", "/os-quota-sets/{project_id}")
def _cinder_quota_show(call: Call) -> Reply:
    _own(call, "volume_extension:quotas:show")
    limits, use = _cinder_quota(call)
    if str(call.arg("usage", "false")).lower() in ("true", "1", "yes"):
        detail: JSON = {k: {"limit": v, "in_use": use[k], "reserved": 0, "allocated": 0}
                        for k, v in limits.items()}
        return Reply(200, {"quota_set": {"id": PROJECT_ID, **detail}})
    return Reply(200, {"quota_set": {"id": PROJECT_ID, **limits}})


@volume_router.route("GET", "/os-quota-sets/{project_id}/defaults")
def _cinder_quota_defaults(call: Call) -> Reply:
    limits, _ = _cinder_quota(call)
    return Reply(200, {"quota_set": {"id": call.params["project_id"], **limits}})


@volume_router.route("GET", "/limits")
def _cinder_limits(call: Call) -> Reply:
    limits, use = _cinder_quota(call)
    absolute = {
        "maxTotalVolumes": limits["volumes"], "maxTotalSnapshots": limits["snapshots"],
        "maxTotalVolumeGigabytes": limits["gigabytes"], "maxTotalBackups": limits["backups"],
        "maxTotalBackupGigabytes": limits["backup_gigabytes"],
        "totalVolumesUsed": use["volumes"], "totalGigabytesUsed": use["gigabytes"],
        "totalSnapshotsUsed": use["snapshots"], "totalBackupsUsed": use["backups"],
        "totalBackupGigabytesUsed": use["backup_gigabytes"],
    }
    return Reply(200, {"limits": {"absolute": absolute, "rate": []}})


@volume_router.route("GET", "/os-availability-zone")
def _cinder_zones(call: Call) -> Reply:
    zone = {"zoneName": compute_models.ZONE, "zoneState": {"available": True}}
    return Reply(200, {"availabilityZoneInfo": [zone]})
