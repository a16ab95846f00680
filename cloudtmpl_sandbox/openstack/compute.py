"""Nova (compute v2.1, base microversion): flavors, servers, key pairs, attachments,
server groups (their model and the scheduling of their members: ``server_groups``).

Servers are ``BUILD`` for ``build_seconds`` then ``ACTIVE``; resize goes
``RESIZE`` → ``VERIFY_RESIZE`` → (``confirmResize``) ``ACTIVE``.  Networking is
Neutron's: booting creates a port per requested network (or on the only project
network), ``addresses`` are read from the server's ports and their floating IPs.
Quotas (instances, cores, ram) answer 403 ``forbidden``, wrong states 409
``conflictingRequest``.  Lists are newest first, ``limit``/``marker`` with a
``servers_links`` next link whenever a page is full (as Nova does).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from typing import Any

from . import network, server_groups, volume
from .core import (
    JSON,
    ApiError,
    Call,
    Reply,
    Router,
    dispatch,
    fault,
    iso,
    new_id,
    now,
    page_reply,
    paginate,
)
from .identity import PROJECT_ID, USER_ID
from .image import IMAGES
from .state import Region

router = Router()
ZONE = "nova"
# id → (name, vcpus, ram MB, disk GB): the classic m1 set.
_FLAVORS = {
    "1": ("m1.tiny", 1, 512, 1),
    "2": ("m1.small", 1, 2048, 20),
    "3": ("m1.medium", 2, 4096, 40),
    "4": ("m1.large", 4, 8192, 80),
    "5": ("m1.xlarge", 8, 16384, 160),
}
FLAVORS: dict[str, JSON] = {
    fid: {
        "id": fid,
        "name": name,
        "vcpus": vcpus,
        "ram": ram,
        "disk": disk,
        "swap": "",
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "OS-FLV-DISABLED:disabled": False,
        "os-flavor-access:is_public": True,
        "rxtx_factor": 1.0,
    }
    for fid, (name, vcpus, ram, disk) in _FLAVORS.items()
}
_VM_STATE = {
    "BUILD": "building",
    "ACTIVE": "active",
    "SHUTOFF": "stopped",
    "RESIZE": "active",
    "VERIFY_RESIZE": "resized",
    "REBOOT": "active",
    "HARD_REBOOT": "active",
}
_TASK_STATE = {
    "BUILD": "spawning",
    "RESIZE": "resize_migrating",
    "REBOOT": "rebooting",
    "HARD_REBOOT": "rebooting_hard",
}


def bad(message: str) -> ApiError:
    return fault(400, message)


def handle(call: Call) -> Reply:
    return dispatch(router, call, fault(404, "The resource could not be found."), bad)


def _region(call: Call) -> Region:
    region: Region = call.store.regions[call.region]
    return region


def _links(call: Call, kind: str, item_id: str, self_link: bool = True) -> list[JSON]:
    bookmark = {"rel": "bookmark", "href": f"{call.root.rsplit('/v2.1', 1)[0]}/{kind}/{item_id}"}
    if not self_link:
        return [bookmark]
    return [{"rel": "self", "href": f"{call.root}/{kind}/{item_id}"}, bookmark]


def _conflict(server: JSON, action: str) -> ApiError:
    state = _VM_STATE.get(server["status"], server["status"].lower())
    return fault(409, f"Cannot '{action}' instance {server['id']} while it is in vm_state {state}")


# -------------------------------------------------------------------------- flavors


def _flavor(call: Call, ref: Any) -> JSON:
    fid = str(ref).rstrip("/").rsplit("/", 1)[-1]
    if fid not in FLAVORS:
        raise fault(400, f"Flavor {ref} could not be found.")
    return FLAVORS[fid]


@router.route("GET", "/flavors")
def _flavors(call: Call) -> Reply:
    return _flavor_list(call, detail=False)


@router.route("GET", "/flavors/detail")
def _flavors_detail(call: Call) -> Reply:
    return _flavor_list(call, detail=True)


def _flavor_list(call: Call, detail: bool) -> Reply:
    page, next_qs = paginate(call, list(FLAVORS.values()), bad)
    views = [
        {
            **(f if detail else {"id": f["id"], "name": f["name"]}),
            "links": _links(call, "flavors", f["id"]),
        }
        for f in page
    ]
    return page_reply(call, "flavors", views, "flavors/detail" if detail else "flavors",
                      next_qs)


@router.route("GET", "/flavors/{flavor_id}")
def _flavor_show(call: Call) -> Reply:
    flavor = FLAVORS.get(call.params["flavor_id"])
    if flavor is None:
        raise fault(404, f"Flavor {call.params['flavor_id']} could not be found.")
    return Reply(200, {"flavor": {**flavor, "links": _links(call, "flavors", flavor["id"])}})


@router.route("GET", "/os-availability-zone")
def _zones(call: Call) -> Reply:
    zone = {"zoneName": ZONE, "zoneState": {"available": True}, "hosts": None}
    return Reply(200, {"availabilityZoneInfo": [zone]})


@router.route("GET", "/limits")
def _limits(call: Call) -> Reply:
    region = _region(call)
    quota = call.store.knobs.quota
    servers = list(region.servers.values())
    absolute = {
        "maxTotalInstances": quota["instances"],
        "maxTotalCores": quota["cores"],
        "maxTotalRAMSize": quota["ram"],
        "maxTotalKeypairs": 100,
        "maxServerMeta": 128,
        "totalInstancesUsed": len(servers),
        "totalCoresUsed": sum(FLAVORS[s["flavor_id"]]["vcpus"] for s in servers),
        "totalRAMUsed": sum(FLAVORS[s["flavor_id"]]["ram"] for s in servers),
    }
    return Reply(200, {"limits": {"absolute": absolute, "rate": []}})


# -------------------------------------------------------------------------- servers


def settle(server: JSON, call: Call | None = None) -> JSON:
    """Apply a pending transition whose time has come (BUILD → ACTIVE, ...).

    With ``call``, an sshd-backed server's sshds follow its status: listening while
    ACTIVE (started when it first turns ACTIVE), stopped while SHUTOFF.
    """
    pending = server.get("_next")
    if pending and now() >= pending[1]:
        server["status"] = pending[0]
        server["_next"] = None
        server["updated"] = pending[1]
        if server["launched_at"] is None:
            server["launched_at"] = pending[1]
    if call is not None:
        network.sync_ssh(call.store, _region(call), server)
    return server


def _later(call: Call, server: JSON, status: str, then: str) -> None:
    server["status"] = status
    server["_next"] = (then, now() + call.store.knobs.build_seconds)
    server["updated"] = now()


def _get_server(call: Call) -> JSON:
    server = _region(call).servers.get(call.params["server_id"])
    if server is None:
        raise fault(404, f"Instance {call.params['server_id']} could not be found.")
    return settle(server, call)


def _addresses(region: Region, server: JSON) -> JSON:
    out: dict[str, list[JSON]] = {}
    for port_id in server["port_ids"]:
        port = region.ports[port_id]
        label = region.networks[port["network_id"]]["name"]
        entries = out.setdefault(label, [])
        for fixed in port["fixed_ips"]:
            addr = fixed["ip_address"]
            entries.append(_address(addr, port["mac_address"], "fixed"))
        for addr in network.public_ips_of_port(region, port_id):
            entries.append(_address(addr, port["mac_address"], "floating"))
    return out


def _address(addr: str, mac: str, kind: str) -> JSON:
    version = ipaddress.ip_address(addr).version
    return {
        "addr": addr,
        "version": version,
        "OS-EXT-IPS:type": kind,
        "OS-EXT-IPS-MAC:mac_addr": mac,
    }


def _group_names(region: Region, server: JSON) -> list[str]:
    names: list[str] = []
    for port_id in server["port_ids"]:
        for group_id in region.ports[port_id]["security_groups"]:
            name = region.security_groups[group_id]["name"]
            if name not in names:
                names.append(name)
    return names or list(server["_groups"])


def _view(call: Call, server: JSON) -> JSON:
    region = _region(call)
    status = server["status"]
    body = {
        "id": server["id"],
        "name": server["name"],
        "status": status,
        "tenant_id": PROJECT_ID,
        "user_id": USER_ID,
        "metadata": dict(server["metadata"]),
        "hostId": server["host_id"],
        "image": {
            "id": server["image_id"],
            "links": _links(call, "images", server["image_id"], False),
        },
        "flavor": {
            "id": server["flavor_id"],
            "links": _links(call, "flavors", server["flavor_id"], False),
        },
        "created": iso(server["created"]),
        "updated": iso(server["updated"]),
        "addresses": _addresses(region, server),
        "accessIPv4": server.get("_ssh") or "",
        "accessIPv6": "",
        "links": _links(call, "servers", server["id"]),
        "key_name": server["key_name"],
        "progress": 0 if status == "BUILD" else 100,
        "config_drive": server["config_drive"],
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": server["availability_zone"],
        "OS-EXT-STS:power_state": {"BUILD": 0, "SHUTOFF": 4}.get(status, 1),
        "OS-EXT-STS:task_state": _TASK_STATE.get(status),
        "OS-EXT-STS:vm_state": _VM_STATE.get(status, "error"),
        "OS-SRV-USG:launched_at": iso(server["launched_at"], micro=True)
        if server["launched_at"]
        else None,
        "OS-SRV-USG:terminated_at": None,
        "os-extended-volumes:volumes_attached": [{"id": v} for v in server["volume_ids"]],
        "security_groups": [{"name": n} for n in _group_names(region, server)],
    }
    if server.get("fault"):
        body["fault"] = dict(server["fault"])
    return body


def _servers(call: Call, detail: bool) -> Reply:
    servers = [settle(s, call) for s in reversed(_region(call).servers.values())]
    name = call.arg("name")
    if name is not None:
        try:
            pattern = re.compile(name)
        except re.error:
            raise fault(400, f"Invalid regular expression for name: {name}") from None
        servers = [s for s in servers if pattern.search(s["name"])]
    for arg, key in (("status", "status"), ("flavor", "flavor_id"), ("image", "image_id")):
        wanted = call.arg(arg)
        if wanted is not None:
            servers = [s for s in servers if s[key] == wanted]
    page, next_qs = paginate(call, servers, bad)
    if detail:
        views = [_view(call, s) for s in page]
    else:
        views = [
            {"id": s["id"], "name": s["name"], "links": _links(call, "servers", s["id"])}
            for s in page
        ]
    return page_reply(call, "servers", views, "servers/detail" if detail else "servers",
                      next_qs)


@router.route("GET", "/servers")
def _list(call: Call) -> Reply:
    return _servers(call, detail=False)


@router.route("GET", "/servers/detail")
def _detail(call: Call) -> Reply:
    return _servers(call, detail=True)


@router.route("GET", "/servers/{server_id}")
def _show(call: Call) -> Reply:
    return Reply(200, {"server": _view(call, _get_server(call))})


def _check_quota(call: Call, instances: int, cores: int, ram: int) -> None:
    quota = call.store.knobs.quota
    servers = list(_region(call).servers.values())
    used = {
        "instances": len(servers),
        "cores": sum(FLAVORS[s["flavor_id"]]["vcpus"] for s in servers),
        "ram": sum(FLAVORS[s["flavor_id"]]["ram"] for s in servers),
    }
    for resource, requested in (("instances", instances), ("cores", cores), ("ram", ram)):
        if requested and used[resource] + requested > quota[resource]:
            raise fault(
                403,
                f"Quota exceeded for {resource}: Requested {requested}, but already used "
                f"{used[resource]} of {quota[resource]} {resource}",
            )


def _resolve_groups(region: Region, refs: list[Any]) -> list[JSON]:
    groups = []
    for ref in refs:
        name = ref.get("name") if isinstance(ref, dict) else None
        if not name:
            raise fault(400, "Invalid input for field/attribute security_groups.")
        if name in region.security_groups:
            groups.append(region.security_groups[name])
            continue
        found = [g for g in region.security_groups.values() if g["name"] == name]
        if not found:
            raise fault(400, f"Security group {name} not found for project {PROJECT_ID}.")
        if len(found) > 1:
            raise fault(
                409,
                f"Multiple security groups found matching '{name}'. Use an ID to be more specific.",
            )
        groups.append(found[0])
    return groups


def _requested_networks(region: Region, spec: Any) -> list[JSON]:
    """Turn ``networks`` into port specs: ``{"port": id}`` or ``{"network_id", "ip"}``."""
    if spec == "none":
        return []
    if spec is None or spec == "auto":
        usable = [
            n
            for n in region.networks.values()
            if not n["router:external"] and (n["shared"] or n["project_id"] == PROJECT_ID)
        ]
        if len(usable) > 1:
            raise fault(
                409, "Multiple possible networks found, use a Network ID to be more specific."
            )
        return [{"network_id": n["id"], "ip": None} for n in usable]
    if not isinstance(spec, list):
        raise fault(400, "Invalid input for field/attribute networks.")
    wanted = []
    for entry in spec:
        if not isinstance(entry, dict):
            raise fault(400, "Invalid input for field/attribute networks.")
        if entry.get("port"):
            port = region.ports.get(entry["port"])
            if port is None:
                raise fault(400, f"Port id {entry['port']} could not be found.")
            if port["device_id"]:
                raise fault(409, f"Port {port['id']} is still in use.")
            wanted.append({"port": port["id"]})
            continue
        net_id = entry.get("uuid")
        if not net_id or net_id not in region.networks:
            raise fault(400, f"Network {net_id} could not be found.")
        wanted.append({"network_id": net_id, "ip": entry.get("fixed_ip")})
    return wanted


def _bind(region: Region, port: JSON, server_id: str) -> None:
    port.update({"device_id": server_id, "device_owner": f"compute:{ZONE}", "status": "ACTIVE"})
    port["binding:host_id"] = "sandbox-compute"


def _unbind(region: Region, server: JSON, port_id: str) -> None:
    port = region.ports[port_id]
    if port_id in server["_own_ports"]:
        network.delete_port(region, port)
    else:
        port.update({"device_id": "", "device_owner": "", "status": "DOWN", "binding:host_id": ""})
    if port_id in server["port_ids"]:
        server["port_ids"].remove(port_id)


@router.route("POST", "/servers")
def _create(call: Call) -> Reply:
    region = _region(call)
    spec = call.json("server")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise fault(400, "Invalid input for field/attribute name.")
    flavor = _flavor(call, spec.get("flavorRef"))
    image_ref = str(spec.get("imageRef") or "").rstrip("/").rsplit("/", 1)[-1]
    if image_ref not in IMAGES:
        raise fault(
            400,
            f"Image {image_ref} could not be found."
            if image_ref
            else "Can not find requested image",
        )
    key_name = spec.get("key_name")
    if key_name is not None and key_name not in region.keypairs:
        raise fault(400, "Invalid key_name provided.")
    zone = spec.get("availability_zone") or ZONE
    if zone != ZONE:
        raise fault(400, "The requested availability zone is not available")
    user_data = spec.get("user_data")
    if user_data is not None:
        try:
            base64.b64decode(user_data, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise fault(
                400,
                "Invalid input for field/attribute user_data. User data needs to be valid base 64.",
            ) from None
    metadata = spec.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fault(400, "Invalid input for field/attribute metadata.")
    groups = _resolve_groups(region, spec.get("security_groups") or [{"name": "default"}])
    requested = _requested_networks(region, spec.get("networks"))
    hints = call.body.get("os:scheduler_hints") if isinstance(call.body, dict) else None
    server_group = server_groups.hinted_group(region, hints)
    _check_quota(call, 1, flavor["vcpus"], flavor["ram"])

    server_id = new_id()
    host = server_groups.place(region, server_group, server_id)
    if host is None:  # no valid host: the scheduler fails it before any port is made
        requested = []
    ports: list[str] = []
    own: list[str] = []
    try:
        for want in requested:
            if "port" in want:
                ports.append(want["port"])
                continue
            port_spec: JSON = {
                "network_id": want["network_id"],
                "security_groups": [g["id"] for g in groups],
            }
            if want["ip"]:
                port_spec["fixed_ips"] = [{"ip_address": want["ip"]}]
            port = network.create_port(region, port_spec)
            ports.append(port["id"])
            own.append(port["id"])
    except Exception:
        for port_id in own:
            network.delete_port(region, region.ports[port_id])
        raise
    for port_id in ports:
        _bind(region, region.ports[port_id], server_id)
    created = now()
    server = {
        "id": server_id,
        "name": name,
        "status": "BUILD",
        "_next": ("ACTIVE", created + call.store.knobs.build_seconds),
        "created": created,
        "updated": created,
        "launched_at": None,
        "flavor_id": flavor["id"],
        "_old_flavor": None,
        "image_id": image_ref,
        "key_name": key_name,
        "metadata": dict(metadata),
        "availability_zone": zone,
        "config_drive": "True" if spec.get("config_drive") in (True, "True", "true") else "",
        "user_data": user_data,
        "port_ids": ports,
        "_own_ports": set(own),
        "_groups": [g["name"] for g in groups],
        "volume_ids": [],
        "host_id": hashlib.sha224(f"{PROJECT_ID}{server_id}".encode()).hexdigest(),
        "_host": host,
    }
    if server_group is not None and host is not None:
        server["host_id"] = server_groups.host_id(host)
    if host is None:
        server.update(status="ERROR", _next=None, fault={
            "code": 500, "message": server_groups.NO_VALID_HOST, "created": iso(created)})
    region.servers[server_id] = server
    knobs = call.store.knobs
    if knobs.ssh and key_name is not None and host is not None:
        # the address its sshd will listen on; reported as accessIPv4, and taken by a
        # floating IP created for one of its ports (see network._post_fip)
        address = call.store.pools[region.name].allocate()
        call.store.ssh.add(server_id, region.name, knobs.ssh_port,
                           str(region.keypairs[key_name]["public_key"]), [address])
        server["_ssh"] = address
    admin_pass = spec.get("adminPass") or new_id().replace("-", "")[:12]
    body = {
        "id": server_id,
        "links": _links(call, "servers", server_id),
        "adminPass": admin_pass,
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": g["name"]} for g in groups],
    }
    return Reply(202, {"server": body}, {"Location": f"{call.root}/servers/{server_id}"})


@router.route("PUT", "/servers/{server_id}")
def _update(call: Call) -> Reply:
    server = _get_server(call)
    spec = call.json("server")
    if "name" in spec:
        if not isinstance(spec["name"], str) or not spec["name"].strip():
            raise fault(400, "Invalid input for field/attribute name.")
        server["name"] = spec["name"]
    server["updated"] = now()
    return Reply(200, {"server": _view(call, server)})


@router.route("DELETE", "/servers/{server_id}")
def _delete(call: Call) -> Reply:
    region = _region(call)
    server = _get_server(call)
    for port_id in list(server["port_ids"]):
        _unbind(region, server, port_id)
    for volume_id in server["volume_ids"]:
        if volume_id in region.volumes:
            volume.detach(region.volumes[volume_id])
    del region.servers[server["id"]]
    server_groups.leave(region, server["id"])
    call.store.ssh.remove(server["id"])
    if server.get("_ssh"):
        call.store.pools[region.name].release(server["_ssh"])
    return Reply(204)


# -------------------------------------------------------------------------- server groups


@router.route("GET", "/os-server-groups")
def _server_group_list(call: Call) -> Reply:
    groups = [server_groups.view(g) for g in _region(call).server_groups.values()]
    return Reply(200, {"server_groups": groups})


@router.route("POST", "/os-server-groups")
def _server_group_create(call: Call) -> Reply:
    group = server_groups.create(_region(call), call.json("server_group"),
                                 server_groups.microversion(call.headers))
    return Reply(200, {"server_group": server_groups.view(group)})


@router.route("GET", "/os-server-groups/{group_id}")
def _server_group_show(call: Call) -> Reply:
    group = server_groups.get(_region(call), call.params["group_id"])
    return Reply(200, {"server_group": server_groups.view(group)})


@router.route("DELETE", "/os-server-groups/{group_id}")
def _server_group_delete(call: Call) -> Reply:
    server_groups.delete(_region(call), call.params["group_id"])
    return Reply(204)


# -------------------------------------------------------------------------- actions


@router.route("POST", "/servers/{server_id}/action")
def _action(call: Call) -> Reply:
    server = _get_server(call)
    body = call.body if isinstance(call.body, dict) else {}
    if len(body) != 1:
        raise fault(400, "Malformed request body")
    [(action, args)] = body.items()
    status = server["status"]
    if action == "reboot":
        kind = (args or {}).get("type", "SOFT")
        if status not in ("ACTIVE", "SHUTOFF") or (status == "SHUTOFF" and kind == "SOFT"):
            raise _conflict(server, "reboot")
        _later(call, server, "HARD_REBOOT" if kind == "HARD" else "REBOOT", "ACTIVE")
        return Reply(202)
    if action in ("os-start", "os-stop"):
        if status != ("SHUTOFF" if action == "os-start" else "ACTIVE"):
            raise _conflict(server, "start" if action == "os-start" else "stop")
        server.update({"status": "ACTIVE" if action == "os-start" else "SHUTOFF", "updated": now()})
        return Reply(202)
    if action == "resize":
        if status not in ("ACTIVE", "SHUTOFF"):
            raise _conflict(server, "resize")
        flavor = _flavor(call, (args or {}).get("flavorRef"))
        old = FLAVORS[server["flavor_id"]]
        if flavor["id"] == old["id"]:
            raise fault(400, "When resizing, instances must change flavor!")
        _check_quota(
            call, 0, max(flavor["vcpus"] - old["vcpus"], 0), max(flavor["ram"] - old["ram"], 0)
        )
        server.update({"_old_flavor": old["id"], "flavor_id": flavor["id"]})
        _later(call, server, "RESIZE", "VERIFY_RESIZE")
        return Reply(202)
    if action in ("confirmResize", "revertResize"):
        if status != "VERIFY_RESIZE":
            raise _conflict(server, action)
        if action == "revertResize":
            server["flavor_id"] = server["_old_flavor"]
        server.update({"status": "ACTIVE", "_old_flavor": None, "updated": now()})
        return Reply(204 if action == "confirmResize" else 202)
    if action in ("addSecurityGroup", "removeSecurityGroup"):
        region = _region(call)
        [group] = _resolve_groups(region, [args or {}])
        for port_id in server["port_ids"]:
            port = region.ports[port_id]
            have = [g for g in port["security_groups"] if g != group["id"]]
            port["security_groups"] = [*have, group["id"]] if action == "addSecurityGroup" else have
        return Reply(202)
    raise fault(400, f"There is no such action: {action}")


# ------------------------------------------------------------------------- metadata


def _meta_values(data: Any) -> dict[str, str]:
    if not isinstance(data, dict) or not all(
        isinstance(v, str) and len(v) <= 255 for v in data.values()
    ):
        raise fault(400, "Invalid input for field/attribute metadata.")
    return {str(k): v for k, v in data.items()}


@router.route("GET", "/servers/{server_id}/metadata")
def _metadata(call: Call) -> Reply:
    return Reply(200, {"metadata": _get_server(call)["metadata"]})


@router.route("PUT", "/servers/{server_id}/metadata")
def _replace_metadata(call: Call) -> Reply:
    server = _get_server(call)
    server["metadata"] = _meta_values(call.json("metadata"))
    return Reply(200, {"metadata": server["metadata"]})


@router.route("POST", "/servers/{server_id}/metadata")
def _merge_metadata(call: Call) -> Reply:
    server = _get_server(call)
    server["metadata"].update(_meta_values(call.json("metadata")))
    return Reply(200, {"metadata": server["metadata"]})


@router.route("GET", "/servers/{server_id}/metadata/{key}")
def _meta_item(call: Call) -> Reply:
    server = _get_server(call)
    if call.params["key"] not in server["metadata"]:
        raise fault(404, "Metadata item was not found")
    return Reply(200, {"meta": {call.params["key"]: server["metadata"][call.params["key"]]}})


@router.route("PUT", "/servers/{server_id}/metadata/{key}")
def _set_meta_item(call: Call) -> Reply:
    server = _get_server(call)
    meta = _meta_values(call.json("meta"))
    if list(meta) != [call.params["key"]]:
        raise fault(400, "Request body and URI mismatch")
    server["metadata"].update(meta)
    return Reply(200, {"meta": meta})


@router.route("DELETE", "/servers/{server_id}/metadata/{key}")
def _delete_meta_item(call: Call) -> Reply:
    server = _get_server(call)
    if server["metadata"].pop(call.params["key"], None) is None:
        raise fault(404, "Metadata item was not found")
    return Reply(204)


@router.route("GET", "/servers/{server_id}/os-security-groups")
def _server_groups(call: Call) -> Reply:
    region, server = _region(call), _get_server(call)
    ids = {g for p in server["port_ids"] for g in region.ports[p]["security_groups"]}
    return Reply(200, {"security_groups": [region.security_groups[g] for g in sorted(ids)]})


# ------------------------------------------------------------------------ interfaces


def _interface(region: Region, port_id: str) -> JSON:
    port = region.ports[port_id]
    return {
        "fixed_ips": [dict(ip) for ip in port["fixed_ips"]],
        "mac_addr": port["mac_address"],
        "net_id": port["network_id"],
        "port_id": port["id"],
        "port_state": port["status"],
    }


@router.route("GET", "/servers/{server_id}/os-interface")
def _interfaces(call: Call) -> Reply:
    region, server = _region(call), _get_server(call)
    return Reply(200, {"interfaceAttachments": [_interface(region, p) for p in server["port_ids"]]})


@router.route("GET", "/servers/{server_id}/os-interface/{port_id}")
def _interface_show(call: Call) -> Reply:
    region, server = _region(call), _get_server(call)
    if call.params["port_id"] not in server["port_ids"]:
        raise fault(404, f"Network interface {call.params['port_id']} could not be found.")
    return Reply(200, {"interfaceAttachment": _interface(region, call.params["port_id"])})


@router.route("POST", "/servers/{server_id}/os-interface")
def _attach_interface(call: Call) -> Reply:
    region, server = _region(call), _get_server(call)
    if server["status"] not in ("ACTIVE", "SHUTOFF"):
        raise _conflict(server, "attach_interface")
    spec = call.json("interfaceAttachment")
    [want] = _requested_networks(
        region, [{"port": spec.get("port_id"), "uuid": spec.get("net_id")}]
    )
    if "port" in want:
        port_id = want["port"]
    else:
        port_id = network.create_port(region, {"network_id": want["network_id"]})["id"]
        server["_own_ports"].add(port_id)
    _bind(region, region.ports[port_id], server["id"])
    server["port_ids"].append(port_id)
    return Reply(200, {"interfaceAttachment": _interface(region, port_id)})


@router.route("DELETE", "/servers/{server_id}/os-interface/{port_id}")
def _detach_interface(call: Call) -> Reply:
    region, server = _region(call), _get_server(call)
    if call.params["port_id"] not in server["port_ids"]:
        raise fault(404, f"Port {call.params['port_id']} is not attached")
    _unbind(region, server, call.params["port_id"])
    return Reply(202)


# --------------------------------------------------------------------- volume attach


def _attachment(server_id: str, vol: JSON) -> JSON:
    device = vol["attachments"][0]["device"] if vol["attachments"] else None
    return {"id": vol["id"], "volumeId": vol["id"], "serverId": server_id, "device": device}


@router.route("GET", "/servers/{server_id}/os-volume_attachments")
def _attachments(call: Call) -> Reply:
    region, server = _region(call), _get_server(call)
    vols = [region.volumes[v] for v in server["volume_ids"]]
    return Reply(200, {"volumeAttachments": [_attachment(server["id"], v) for v in vols]})


@router.route("GET", "/servers/{server_id}/os-volume_attachments/{volume_id}")
def _attachment_show(call: Call) -> Reply:
    region, server = _region(call), _get_server(call)
    if call.params["volume_id"] not in server["volume_ids"]:
        raise fault(404, f"Volume {call.params['volume_id']} is not attached to {server['id']}")
    return Reply(
        200,
        {"volumeAttachment": _attachment(server["id"], region.volumes[call.params["volume_id"]])},
    )


@router.route("POST", "/servers/{server_id}/os-volume_attachments")
def _attach_volume(call: Call) -> Reply:
    region, server = _region(call), _get_server(call)
    spec = call.json("volumeAttachment")
    vol = volume.get(region, str(spec.get("volumeId")))
    if server["status"] not in ("ACTIVE", "SHUTOFF"):
        raise _conflict(server, "attach_volume")
    if vol["status"] != "available":
        raise fault(
            400,
            f"Invalid volume: Volume {vol['id']} status must be available or downloading to "
            f"reserve, but the current status is {vol['status']}.",
        )
    used = {region.volumes[v]["attachments"][0]["device"] for v in server["volume_ids"]}
    device = spec.get("device") or next(
        f"/dev/vd{c}" for c in "bcdefghijklmnopqrstuvwxyz" if f"/dev/vd{c}" not in used
    )
    volume.attach(vol, server["id"], device)
    server["volume_ids"].append(vol["id"])
    return Reply(200, {"volumeAttachment": _attachment(server["id"], vol)})


@router.route("DELETE", "/servers/{server_id}/os-volume_attachments/{volume_id}")
def _detach_volume(call: Call) -> Reply:
    region, server = _region(call), _get_server(call)
    volume_id = call.params["volume_id"]
    if volume_id not in server["volume_ids"]:
        raise fault(404, f"Volume {volume_id} is not attached to {server['id']}")
    server["volume_ids"].remove(volume_id)
    volume.detach(region.volumes[volume_id])
    return Reply(202)


# ------------------------------------------------------------------------- key pairs


def _fingerprint(public_key: str) -> str:
    from cryptography.hazmat.primitives import serialization

    parts = public_key.strip().split()
    try:
        serialization.load_ssh_public_key(" ".join(parts[:2]).encode())
        blob = base64.b64decode(parts[1])
    except (ValueError, IndexError, binascii.Error, TypeError):
        raise fault(400, "Keypair data is invalid: failed to generate fingerprint") from None
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _generate() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode() + " Generated-by-Nova"


def _keypair_view(pair: JSON, full: bool = False) -> JSON:
    view = {k: pair[k] for k in ("name", "public_key", "fingerprint", "type")}
    if full:
        view.update(
            {
                "user_id": USER_ID,
                "id": pair["id"],
                "created_at": iso(pair["created"], micro=True),
                "deleted": False,
                "deleted_at": None,
                "updated_at": None,
            }
        )
    return view


@router.route("GET", "/os-keypairs")
def _keypairs(call: Call) -> Reply:
    pairs = list(_region(call).keypairs.values())
    return Reply(200, {"keypairs": [{"keypair": _keypair_view(p)} for p in pairs]})


@router.route("POST", "/os-keypairs")
def _create_keypair(call: Call) -> Reply:
    region = _region(call)
    spec = call.json("keypair")
    name = spec.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[\w .@-]{1,255}", name):
        raise fault(400, "Keypair data is invalid: Keypair name contains unsafe characters")
    if name in region.keypairs:
        raise fault(409, f"Key pair '{name}' already exists.")
    private = None
    public = spec.get("public_key")
    if public is None:
        private, public = _generate()
    pair = {
        "name": name,
        "public_key": public,
        "fingerprint": _fingerprint(str(public)),
        "type": spec.get("type", "ssh"),
        "id": len(region.keypairs) + 1,
        "created": now(),
    }
    region.keypairs[name] = pair
    view = _keypair_view(pair)
    view["user_id"] = USER_ID
    if private is not None:
        view["private_key"] = private
    return Reply(200, {"keypair": view})


@router.route("GET", "/os-keypairs/{name}")
def _keypair(call: Call) -> Reply:
    pair = _region(call).keypairs.get(call.params["name"])
    if pair is None:
        raise fault(404, f"Keypair {call.params['name']} not found for user {USER_ID}")
    return Reply(200, {"keypair": _keypair_view(pair, full=True)})


@router.route("DELETE", "/os-keypairs/{name}")
def _delete_keypair(call: Call) -> Reply:
    if _region(call).keypairs.pop(call.params["name"], None) is None:
        raise fault(404, f"Keypair {call.params['name']} not found for user {USER_ID}")
    return Reply(202)
