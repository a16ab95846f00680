"""Nova's state: flavors, servers and their status transitions, key pairs, attachments.

Servers are ``BUILD`` for ``build_seconds`` then ``ACTIVE``; resize goes
``RESIZE`` → ``VERIFY_RESIZE`` → (``confirmResize``) ``ACTIVE``.  Networking is
Neutron's: booting creates a port per requested network (or on the only project
network).  What Nova refuses is raised here as :class:`~.core.ApiError`: quotas
(instances, cores, ram) 403 ``forbidden``, wrong states 409 ``conflictingRequest``,
unknown items 404.  The wire (routes, views) is :mod:`.compute_responses`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from . import image as glance
from . import network_floating, server_boot, server_groups
from . import network_models as network
from . import volume_models as volume
from .core import JSON, ApiError, fault, iso, new_id, now
from .identity import PROJECT_ID, USER_ID
from .state import Region, Store

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
VM_STATE = {
    "BUILD": "building",
    "ACTIVE": "active",
    "SHUTOFF": "stopped",
    "RESIZE": "active",
    "VERIFY_RESIZE": "resized",
    "REBOOT": "active",
    "HARD_REBOOT": "active",
    "REBUILD": "active",  # (or stopped: Nova keeps a stopped server's vm_state)
}


def conflict(server: JSON, action: str) -> ApiError:
    state = VM_STATE.get(server["status"], server["status"].lower())
    return fault(409, f"Cannot '{action}' instance {server['id']} while it is in vm_state {state}")


# -------------------------------------------------------------------------- flavors


def flavor(ref: Any) -> JSON:
    fid = str(ref).rstrip("/").rsplit("/", 1)[-1]
    if fid not in FLAVORS:
        raise fault(400, f"Flavor {ref} could not be found.")
    return FLAVORS[fid]


def usage(region: Region) -> dict[str, int]:
    """What the region's servers use of the quota (instances, cores, ram)."""
    servers = list(region.servers.values())
    return {
        "instances": len(servers),
        "cores": sum(FLAVORS[s["flavor_id"]]["vcpus"] for s in servers),
        "ram": sum(FLAVORS[s["flavor_id"]]["ram"] for s in servers),
    }


def check_quota(store: Store, region: Region, instances: int, cores: int, ram: int) -> None:
    quota = store.knobs.quota
    used = usage(region)
    for resource, requested in (("instances", instances), ("cores", cores), ("ram", ram)):
        if requested and used[resource] + requested > quota[resource]:
            raise fault(
                403,
                f"Quota exceeded for {resource}: Requested {requested}, but already used "
                f"{used[resource]} of {quota[resource]} {resource}",
            )


# -------------------------------------------------------------------------- servers


def settle(server: JSON, store: Store | None = None, region: Region | None = None) -> JSON:
    """Apply a pending transition whose time has come (BUILD → ACTIVE, ...).

    With ``store`` and ``region``, an sshd-backed server's sshds follow its status:
    listening while ACTIVE (started when it first turns ACTIVE), stopped while SHUTOFF.
    """
    pending = server.get("_next")
    if pending and now() >= pending[1]:
        was, server["status"] = server["status"], pending[0]
        server_boot.mark(server, was)  # came up: its user data runs (server_boot)
        server["_next"] = None
        server["updated"] = pending[1]
        if server["launched_at"] is None:
            server["launched_at"] = pending[1]
    if store is not None and region is not None:
        network_floating.sync_ssh(store, region, server)
        server_boot.run(store, server)
    return server


def _later(store: Store, server: JSON, status: str, then: str) -> None:
    server["status"] = status
    server["_next"] = (then, now() + store.knobs.build_seconds)
    server["updated"] = now()


def get_server(store: Store, region: Region, server_id: str) -> JSON:
    server = region.servers.get(server_id)
    if server is None:
        raise fault(404, f"Instance {server_id} could not be found.")
    return settle(server, store, region)


def resolve_groups(region: Region, refs: list[Any]) -> list[JSON]:
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


def requested_networks(region: Region, spec: Any) -> list[JSON]:
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


def _checked_spec(region: Region, spec: JSON) -> tuple[str, JSON, str, Any, str, Any, JSON]:
    """What ``POST /servers`` asks for, checked: (name, flavor, image, key, zone,
    user_data, metadata)."""
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise fault(400, "Invalid input for field/attribute name.")
    chosen = flavor(spec.get("flavorRef"))
    image_ref = str(spec.get("imageRef") or "").rstrip("/").rsplit("/", 1)[-1]
    found = glance.find(region, image_ref)
    if found is None:
        raise fault(
            400,
            f"Image {image_ref} could not be found."
            if image_ref
            else "Can not find requested image",
        )
    if found["status"] != "active":
        raise fault(400, f"Image {image_ref} is not active.")
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
    return name, chosen, image_ref, key_name, zone, user_data, metadata


def _ports_for(region: Region, requested: list[JSON], groups: list[JSON]) -> tuple[list[str],
                                                                                    list[str]]:
    """The ports a new server gets: (all of them, the ones made for it)."""
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
    return ports, own


def _count(spec: JSON, key: str) -> int:
    raw = spec.get(key, 1)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise fault(400, f"Invalid input for field/attribute {key}. Value: {raw}.") from None
    if value < 1:
        raise fault(400, f"Invalid input for field/attribute {key}. Value: {raw}. "
                         f"{raw} is less than the minimum of 1")
    return value


def fitting(store: Store, region: Region, flavor_id: str, wanted: int) -> int:
    """How many servers of the flavor the quota leaves room for, at most ``wanted``."""
    quota, used, chosen = store.knobs.quota, usage(region), FLAVORS[flavor_id]
    room = [quota["instances"] - used["instances"]]
    room += [(quota[r] - used[r]) // chosen[k] for r, k in (("cores", "vcpus"), ("ram", "ram"))
             if chosen[k]]
    return max(0, min(wanted, *room))


def create_servers(store: Store, region: Region, spec: JSON,
                   hints: Any = None) -> tuple[list[JSON], list[JSON], str]:
    """``POST /servers`` with ``min_count``/``max_count``: as many as the quota leaves
    room for, up to ``max_count``; fewer than ``min_count``: Nova's 403.  With more than
    one, the names get Nova's ``-1``, ``-2``, ... suffixes.  (The servers, their security
    groups, the reservation id they share.)"""
    low, high = _count(spec, "min_count"), _count(spec, "max_count")
    if low > high:
        raise fault(400, "min_count must be <= max_count")
    nets = spec.get("networks")
    if high > 1 and isinstance(nets, list) and any(isinstance(n, dict) and n.get("port")
                                                   for n in nets):
        raise fault(400, "Unable to launch multiple instances with a single configured port "
                         "ID. Please launch your instance one by one with different ports.")
    chosen = flavor(spec.get("flavorRef"))
    count = fitting(store, region, chosen["id"], high)
    if count < low:
        check_quota(store, region, low, low * chosen["vcpus"], low * chosen["ram"])
    reservation = "r-" + new_id().replace("-", "")[:8]
    made: list[JSON] = []
    groups: list[JSON] = []
    try:
        for index in range(1, count + 1):
            named = dict(spec, name=f"{spec.get('name')}-{index}") if count > 1 else spec
            server, groups = create_server(store, region, named, hints)
            server.update(reservation_id=reservation, launch_index=index - 1)
            made.append(server)
    except Exception:
        for server in made:  # all or nothing, as one request
            delete_server(store, region, server)
        raise
    return made, groups, reservation


def create_server(store: Store, region: Region, spec: JSON,
                  hints: Any = None) -> tuple[JSON, list[JSON]]:
    """Boot a server (``BUILD``; ``ERROR`` when its server group leaves it no valid host);
    (the server, its security groups)."""
    name, chosen, image_ref, key_name, zone, user_data, metadata = _checked_spec(region, spec)
    groups = resolve_groups(region, spec.get("security_groups") or [{"name": "default"}])
    requested = requested_networks(region, spec.get("networks"))
    server_group = server_groups.hinted_group(region, hints)
    check_quota(store, region, 1, chosen["vcpus"], chosen["ram"])

    server_id = new_id()
    host = server_groups.place(region, server_group, server_id)
    if host is None:  # no valid host: the scheduler fails it before any port is made
        requested = []
    ports, own = _ports_for(region, requested, groups)
    for port_id in ports:
        _bind(region, region.ports[port_id], server_id)
    created = now()
    server = {
        "id": server_id,
        "name": name,
        "status": "BUILD",
        "_next": ("ACTIVE", created + store.knobs.build_seconds),
        "created": created,
        "updated": created,
        "launched_at": None,
        "flavor_id": chosen["id"],
        "_old_flavor": None,
        "image_id": image_ref,
        "key_name": key_name,
        "metadata": dict(metadata),
        "description": spec.get("description"),
        "tags": [],
        "_snapshot": None,
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
    knobs = store.knobs
    if knobs.ssh and key_name is not None and host is not None:
        # the address its sshd will listen on; reported as accessIPv4, and taken by a
        # floating IP created for one of its ports (see network_floating.create_floatingip)
        address = store.pools[region.name].allocate()
        store.ssh.add(server_id, region.name, knobs.ssh_port,
                      str(region.keypairs[key_name]["public_key"]), [address])
        server["_ssh"] = address
    return server, groups


def rename_server(server: JSON, spec: JSON) -> None:
    if "name" in spec:
        if not isinstance(spec["name"], str) or not spec["name"].strip():
            raise fault(400, "Invalid input for field/attribute name.")
        server["name"] = spec["name"]
    server["updated"] = now()


def delete_server(store: Store, region: Region, server: JSON) -> None:
    for port_id in list(server["port_ids"]):
        _unbind(region, server, port_id)
    for volume_id in server["volume_ids"]:
        if volume_id in region.volumes:
            volume.detach(region.volumes[volume_id])
    del region.servers[server["id"]]
    server_groups.leave(region, server["id"])
    store.ssh.remove(server["id"])
    store.boots.forget(server["id"])
    if server.get("_ssh"):
        store.pools[region.name].release(server["_ssh"])


# -------------------------------------------------------------------------- actions


def act(store: Store, region: Region, server: JSON, action: str, args: Any) -> None:
    """Run one server action (``reboot``, ``os-stop``, ``resize``, ...)."""
    status = server["status"]
    if action == "reboot":
        kind = (args or {}).get("type", "SOFT")
        if status not in ("ACTIVE", "SHUTOFF") or (status == "SHUTOFF" and kind == "SOFT"):
            raise conflict(server, "reboot")
        _later(store, server, "HARD_REBOOT" if kind == "HARD" else "REBOOT", "ACTIVE")
        store.boots.halt(server["id"], "rebooting")
        return
    if action in ("os-start", "os-stop"):
        if status != ("SHUTOFF" if action == "os-start" else "ACTIVE"):
            raise conflict(server, "start" if action == "os-start" else "stop")
        server.update({"status": "ACTIVE" if action == "os-start" else "SHUTOFF", "updated": now()})
        if action == "os-stop":
            store.boots.halt(server["id"], "stopped")
        server_boot.mark(server, status)
        server_boot.run(store, server)
        return
    if action == "resize":
        if status not in ("ACTIVE", "SHUTOFF"):
            raise conflict(server, "resize")
        new = flavor((args or {}).get("flavorRef"))
        old = FLAVORS[server["flavor_id"]]
        if new["id"] == old["id"]:
            raise fault(400, "When resizing, instances must change flavor!")
        check_quota(
            store, region, 0, max(new["vcpus"] - old["vcpus"], 0),
            max(new["ram"] - old["ram"], 0)
        )
        server.update({"_old_flavor": old["id"], "flavor_id": new["id"]})
        _later(store, server, "RESIZE", "VERIFY_RESIZE")
        return
    if action in ("confirmResize", "revertResize"):
        if status != "VERIFY_RESIZE":
            raise conflict(server, action)
        if action == "revertResize":
            server["flavor_id"] = server["_old_flavor"]
        server.update({"status": "ACTIVE", "_old_flavor": None, "updated": now()})
        return
    if action in ("addSecurityGroup", "removeSecurityGroup"):
        [group] = resolve_groups(region, [args or {}])
        for port_id in server["port_ids"]:
            port = region.ports[port_id]
            have = [g for g in port["security_groups"] if g != group["id"]]
            port["security_groups"] = [*have, group["id"]] if action == "addSecurityGroup" else have
        return
    raise fault(400, f"There is no such action: {action}")


def meta_values(data: Any) -> dict[str, str]:
    if not isinstance(data, dict) or not all(
        isinstance(v, str) and len(v) <= 255 for v in data.values()
    ):
        raise fault(400, "Invalid input for field/attribute metadata.")
    return {str(k): v for k, v in data.items()}


# ----------------------------------------------------------------------- interfaces


def attach_interface(region: Region, server: JSON, spec: JSON) -> str:
    """Plug a port (given, or made on the given network) into ``server``; its id."""
    if server["status"] not in ("ACTIVE", "SHUTOFF"):
        raise conflict(server, "attach_interface")
    [want] = requested_networks(
        region, [{"port": spec.get("port_id"), "uuid": spec.get("net_id")}]
    )
    if "port" in want:
        port_id = str(want["port"])
    else:
        port_id = str(network.create_port(region, {"network_id": want["network_id"]})["id"])
        server["_own_ports"].add(port_id)
    _bind(region, region.ports[port_id], server["id"])
    server["port_ids"].append(port_id)
    return port_id


def detach_interface(region: Region, server: JSON, port_id: str) -> None:
    if port_id not in server["port_ids"]:
        raise fault(404, f"Port {port_id} is not attached")
    _unbind(region, server, port_id)


# -------------------------------------------------------------------- volume attach


def attached_volume(region: Region, server: JSON, volume_id: str) -> JSON:
    if volume_id not in server["volume_ids"]:
        raise fault(404, f"Volume {volume_id} is not attached to {server['id']}")
    return region.volumes[volume_id]


def attach_volume(region: Region, server: JSON, spec: JSON) -> JSON:
    vol = volume.get(region, str(spec.get("volumeId")))
    if server["status"] not in ("ACTIVE", "SHUTOFF"):
        raise conflict(server, "attach_volume")
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
    return vol


def detach_volume(region: Region, server: JSON, volume_id: str) -> None:
    attached_volume(region, server, volume_id)
    server["volume_ids"].remove(volume_id)
    volume.detach(region.volumes[volume_id])


# ------------------------------------------------------------------------ key pairs


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


def create_keypair(region: Region, spec: JSON) -> tuple[JSON, str | None]:
    """Import (or generate) a key pair: (the pair, the private key if generated)."""
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
    return pair, private


def get_keypair(region: Region, name: str) -> JSON:
    pair = region.keypairs.get(name)
    if pair is None:
        raise fault(404, f"Keypair {name} not found for user {USER_ID}")
    return pair


def delete_keypair(region: Region, name: str) -> None:
    if region.keypairs.pop(name, None) is None:
        raise fault(404, f"Keypair {name} not found for user {USER_ID}")
