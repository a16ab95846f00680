"""Nova (compute v2.1, microversions 2.1 to 2.45: :mod:`.versions`) on the wire: routes
and views.

What changes with the microversion asked for: key pairs answer 201/204 from 2.2
(200/202 before) and are listed by ``limit``/``marker`` (their names) from 2.35;
server groups show ``project_id``/``user_id`` from 2.13; an unknown ``status`` filter
is a 400 from 2.38 (an empty list before); servers show ``locked`` from 2.9,
``description`` from 2.19 (and take it on create, update and rebuild) and ``tags``
from 2.26 (listed by ``tags``, ``tags-any``, ``not-tags``, ``not-tags-any``;
``/servers/{id}/tags[/{tag}]``, 404 before: :mod:`.server_tags`); a create needs
``networks`` from 2.37 (``auto``/``none`` allowed from then only); ``createImage``
answers ``{"image_id"}`` from 2.45, a ``Location`` header before.  ``POST /servers``
takes ``min_count``/``max_count`` and ``return_reservation_id``
(:func:`.compute_models.create_servers`) and the scheduler hints as
``os:scheduler_hints`` or ``OS-SCH-HNT:scheduler_hints``; ``rebuild`` and
``createImage`` are :mod:`.server_images`'s; the console log and the remote
consoles :mod:`.consoles`'s; quotas, limits and zones
:mod:`.quotas`'s.

``addresses`` are read from the server's ports and their floating IPs.  Lists are
newest first, ``limit``/``marker`` with a ``servers_links`` next link whenever a
page is full (as Nova does).  The state changes and refusals are
:mod:`.compute_models`'s.
"""

from __future__ import annotations

import ipaddress
import re

from . import compute_models as models
from . import (
    consoles,
    network_floating,
    quotas,
    server_groups,
    server_images,
    server_tags,
    versions,
)
from .compute_models import FLAVORS, VM_STATE
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
    page_reply,
    paginate,
)
from .identity import PROJECT_ID, USER_ID
from .state import Region

router = Router()
_TASK_STATE = {
    "BUILD": "spawning",
    "RESIZE": "resize_migrating",
    "REBOOT": "rebooting",
    "HARD_REBOOT": "rebooting_hard",
    "REBUILD": "rebuilding",
}


def bad(message: str) -> ApiError:
    return fault(400, message)


def handle(call: Call) -> Reply:
    version = versions.compute(call.headers)  # 400/406 before anything else, as Nova
    table = next((t for t in (quotas.compute_router, server_tags.router, consoles.router)
                  if t.match(call.method, call.path)[2]), router)
    reply = dispatch(table, call, fault(404, "The resource could not be found."), bad)
    return versions.stamp(version, reply)


def _region(call: Call) -> Region:
    region: Region = call.store.regions[call.region]
    return region


def _server(call: Call) -> JSON:
    return models.get_server(call.store, _region(call), call.params["server_id"])


def _links(call: Call, kind: str, item_id: str, self_link: bool = True) -> list[JSON]:
    bookmark = {"rel": "bookmark", "href": f"{call.root.rsplit('/v2.1', 1)[0]}/{kind}/{item_id}"}
    if not self_link:
        return [bookmark]
    return [{"rel": "self", "href": f"{call.root}/{kind}/{item_id}"}, bookmark]


# -------------------------------------------------------------------------- flavors


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


# -------------------------------------------------------------------------- servers


def _addresses(region: Region, server: JSON) -> JSON:
    out: dict[str, list[JSON]] = {}
    for port_id in server["port_ids"]:
        port = region.ports[port_id]
        label = region.networks[port["network_id"]]["name"]
        entries = out.setdefault(label, [])
        for fixed in port["fixed_ips"]:
            addr = fixed["ip_address"]
            entries.append(_address(addr, port["mac_address"], "fixed"))
        for addr in network_floating.public_ips_of_port(region, port_id):
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
        "OS-EXT-STS:task_state": _TASK_STATE.get(status) or server_images.task_state(
            region, server),
        "OS-EXT-STS:vm_state": "stopped" if status == "REBUILD" and server["_next"][0]
        == "SHUTOFF" else VM_STATE.get(status, "error"),
        "OS-SRV-USG:launched_at": iso(server["launched_at"], micro=True)
        if server["launched_at"]
        else None,
        "OS-SRV-USG:terminated_at": None,
        "os-extended-volumes:volumes_attached": [{"id": v} for v in server["volume_ids"]],
        "security_groups": [{"name": n} for n in _group_names(region, server)],
    }
    if server.get("fault"):
        body["fault"] = dict(server["fault"])
    version = versions.compute(call.headers)
    if version >= (2, 9):
        body["locked"] = False
    if version >= (2, 19):
        body["description"] = server["description"]
    if version >= (2, 26):
        body["tags"] = list(server["tags"])
    return body


_STATUSES = {"ACTIVE", "BUILD", "DELETED", "ERROR", "HARD_REBOOT", "MIGRATING", "PASSWORD",
             "PAUSED", "REBOOT", "REBUILD", "RESCUE", "RESIZE", "REVERT_RESIZE", "SHELVED",
             "SHELVED_OFFLOADED", "SHUTOFF", "SOFT_DELETED", "SUSPENDED", "UNKNOWN",
             "VERIFY_RESIZE"}


def _tags_match(call: Call, have: set[str]) -> bool:
    """Nova's tag filters (2.26): ``tags`` all, ``tags-any`` one of, ``not-tags`` not
    all, ``not-tags-any`` none of the comma-separated tags."""
    def wanted(name: str) -> set[str] | None:
        raw = call.arg(name)
        return None if raw is None else {t for t in raw.split(",") if t}
    checks = ((wanted("tags"), lambda w: w <= have), (wanted("tags-any"), lambda w: w & have),
              (wanted("not-tags"), lambda w: not w <= have),
              (wanted("not-tags-any"), lambda w: not w & have))
    return all(test(w) for w, test in checks if w is not None)


def _servers(call: Call, detail: bool) -> Reply:
    region = _region(call)
    servers = [models.settle(s, call.store, region) for s in reversed(region.servers.values())]
    name = call.arg("name")
    if name is not None:
        try:
            pattern = re.compile(name)
        except re.error:
            raise fault(400, f"Invalid regular expression for name: {name}") from None
        servers = [s for s in servers if pattern.search(s["name"])]
    version = versions.compute(call.headers)
    status = call.arg("status")
    if status is not None and version >= (2, 38) and status.upper() not in _STATUSES:
        raise fault(400, "Invalid status value")
    for arg, key in (("status", "status"), ("flavor", "flavor_id"), ("image", "image_id"),
                     ("reservation_id", "reservation_id")):
        wanted = call.arg(arg)
        if wanted is not None:
            servers = [s for s in servers if s.get(key) == wanted]
    if version >= (2, 26):
        servers = [s for s in servers if _tags_match(call, set(s["tags"]))]
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
    return Reply(200, {"server": _view(call, _server(call))})


def _check_versioned(spec: JSON, version: tuple[int, int], what: str) -> None:
    """What the request's microversion allows in a server body (Nova's schemas)."""
    if "description" in spec and version < (2, 19):
        raise fault(400, f"Invalid input for field/attribute {what}. Additional properties "
                         "are not allowed ('description' was unexpected)")
    description = spec.get("description")
    if description is not None and (not isinstance(description, str) or len(description)
                                    > 255):
        raise fault(400, "Invalid input for field/attribute description.")
    if what != "server":
        return
    networks = spec.get("networks")
    if version >= (2, 37) and networks is None:
        raise fault(400, f"Invalid input for field/attribute server. Value: {spec!r}. "
                         "'networks' is a required property")
    if version < (2, 37) and isinstance(networks, str):
        raise fault(400, "Invalid input for field/attribute networks. Value: "
                         f"{networks}. {networks!r} is not of type 'array'")


@router.route("POST", "/servers")
def _create(call: Call) -> Reply:
    spec = call.json("server")
    _check_versioned(spec, versions.compute(call.headers), "server")
    # Nova takes the hints under either name (openstacksdk sends the second)
    body = call.body if isinstance(call.body, dict) else {}
    hints = body.get("os:scheduler_hints", body.get("OS-SCH-HNT:scheduler_hints"))
    made, groups, reservation = models.create_servers(call.store, _region(call), spec, hints)
    if spec.get("return_reservation_id") in (True, "True", "true"):
        return Reply(202, {"reservation_id": reservation})
    server = made[0]  # Nova answers with the first of several
    server_id = server["id"]
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
    server, spec = _server(call), call.json("server")
    _check_versioned(spec, versions.compute(call.headers), "server")
    models.rename_server(server, spec)
    if "description" in spec:
        server["description"] = spec["description"]
    return Reply(200, {"server": _view(call, server)})


@router.route("DELETE", "/servers/{server_id}")
def _delete(call: Call) -> Reply:
    models.delete_server(call.store, _region(call), _server(call))
    return Reply(204)


@router.route("POST", "/servers/{server_id}/action")
def _action(call: Call) -> Reply:
    server = _server(call)
    body = call.body if isinstance(call.body, dict) else {}
    if len(body) != 1:
        raise fault(400, "Malformed request body")
    [(action, args)] = body.items()
    version = versions.compute(call.headers)
    if action == "createImage":
        made = server_images.create_image(call.store, _region(call), server, args)
        location = f"{call.root.split('/compute/')[0]}/image/{call.region}/v2/images/" \
                   f"{made['id']}"
        if version >= (2, 45):  # the image id in the body, no Location header
            return Reply(202, {"image_id": made["id"]})
        return Reply(202, None, {"Location": location})
    if consoles.handles(action):  # the console log, the pre-2.6 remote consoles
        return consoles.action(call, server, action, args)
    if action == "rebuild":
        if isinstance(args, dict):
            _check_versioned(args, version, "rebuild")
        admin_pass = server_images.rebuild(call.store, _region(call), server, args,
                                           version >= (2, 19))
        view = _view(call, server)
        view["adminPass"] = admin_pass or new_id().replace("-", "")[:12]
        return Reply(202, {"server": view})
    models.act(call.store, _region(call), server, action, args)
    return Reply(204 if action == "confirmResize" else 202)


# ------------------------------------------------------------------------- metadata


@router.route("GET", "/servers/{server_id}/metadata")
def _metadata(call: Call) -> Reply:
    return Reply(200, {"metadata": _server(call)["metadata"]})


@router.route("PUT", "/servers/{server_id}/metadata")
def _replace_metadata(call: Call) -> Reply:
    server = _server(call)
    server["metadata"] = models.meta_values(call.json("metadata"))
    return Reply(200, {"metadata": server["metadata"]})


@router.route("POST", "/servers/{server_id}/metadata")
def _merge_metadata(call: Call) -> Reply:
    server = _server(call)
    server["metadata"].update(models.meta_values(call.json("metadata")))
    return Reply(200, {"metadata": server["metadata"]})


@router.route("GET", "/servers/{server_id}/metadata/{key}")
def _meta_item(call: Call) -> Reply:
    server = _server(call)
    if call.params["key"] not in server["metadata"]:
        raise fault(404, "Metadata item was not found")
    return Reply(200, {"meta": {call.params["key"]: server["metadata"][call.params["key"]]}})


@router.route("PUT", "/servers/{server_id}/metadata/{key}")
def _set_meta_item(call: Call) -> Reply:
    server = _server(call)
    meta = models.meta_values(call.json("meta"))
    if list(meta) != [call.params["key"]]:
        raise fault(400, "Request body and URI mismatch")
    server["metadata"].update(meta)
    return Reply(200, {"meta": meta})


@router.route("DELETE", "/servers/{server_id}/metadata/{key}")
def _delete_meta_item(call: Call) -> Reply:
    server = _server(call)
    if server["metadata"].pop(call.params["key"], None) is None:
        raise fault(404, "Metadata item was not found")
    return Reply(204)


@router.route("GET", "/servers/{server_id}/os-security-groups")
def _server_groups(call: Call) -> Reply:
    region, server = _region(call), _server(call)
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
    region, server = _region(call), _server(call)
    return Reply(200, {"interfaceAttachments": [_interface(region, p) for p in server["port_ids"]]})


@router.route("GET", "/servers/{server_id}/os-interface/{port_id}")
def _interface_show(call: Call) -> Reply:
    region, server = _region(call), _server(call)
    if call.params["port_id"] not in server["port_ids"]:
        raise fault(404, f"Network interface {call.params['port_id']} could not be found.")
    return Reply(200, {"interfaceAttachment": _interface(region, call.params["port_id"])})


@router.route("POST", "/servers/{server_id}/os-interface")
def _attach_interface(call: Call) -> Reply:
    region, server = _region(call), _server(call)
    spec = call.json("interfaceAttachment")
    port_id = models.attach_interface(region, server, spec)
    return Reply(200, {"interfaceAttachment": _interface(region, port_id)})


@router.route("DELETE", "/servers/{server_id}/os-interface/{port_id}")
def _detach_interface(call: Call) -> Reply:
    region, server = _region(call), _server(call)
    models.detach_interface(region, server, call.params["port_id"])
    return Reply(202)


# --------------------------------------------------------------------- volume attach


def _attachment(server_id: str, vol: JSON) -> JSON:
    device = vol["attachments"][0]["device"] if vol["attachments"] else None
    return {"id": vol["id"], "volumeId": vol["id"], "serverId": server_id, "device": device}


@router.route("GET", "/servers/{server_id}/os-volume_attachments")
def _attachments(call: Call) -> Reply:
    region, server = _region(call), _server(call)
    vols = [region.volumes[v] for v in server["volume_ids"]]
    return Reply(200, {"volumeAttachments": [_attachment(server["id"], v) for v in vols]})


@router.route("GET", "/servers/{server_id}/os-volume_attachments/{volume_id}")
def _attachment_show(call: Call) -> Reply:
    region, server = _region(call), _server(call)
    vol = models.attached_volume(region, server, call.params["volume_id"])
    return Reply(200, {"volumeAttachment": _attachment(server["id"], vol)})


@router.route("POST", "/servers/{server_id}/os-volume_attachments")
def _attach_volume(call: Call) -> Reply:
    region, server = _region(call), _server(call)
    vol = models.attach_volume(region, server, call.json("volumeAttachment"))
    return Reply(200, {"volumeAttachment": _attachment(server["id"], vol)})


@router.route("DELETE", "/servers/{server_id}/os-volume_attachments/{volume_id}")
def _detach_volume(call: Call) -> Reply:
    region, server = _region(call), _server(call)
    models.detach_volume(region, server, call.params["volume_id"])
    return Reply(202)


# ------------------------------------------------------------------------- key pairs


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
    pairs = sorted(_region(call).keypairs.values(), key=lambda p: str(p["name"]))
    if versions.compute(call.headers) < (2, 35):  # limit/marker from 2.35 on
        return Reply(200, {"keypairs": [{"keypair": _keypair_view(p)} for p in pairs]})
    page, next_qs = paginate(call, [{**p, "id": p["name"]} for p in pairs], bad)
    body: JSON = {"keypairs": [{"keypair": _keypair_view(p)} for p in page]}
    if next_qs:
        body["keypairs_links"] = [{"rel": "next", "href": f"{call.root}/os-keypairs?{next_qs}"}]
    return Reply(200, body)


@router.route("POST", "/os-keypairs")
def _create_keypair(call: Call) -> Reply:
    pair, private = models.create_keypair(_region(call), call.json("keypair"))
    view = _keypair_view(pair)
    view["user_id"] = USER_ID
    if private is not None:
        view["private_key"] = private
    return Reply(201 if versions.compute(call.headers) >= (2, 2) else 200, {"keypair": view})


@router.route("GET", "/os-keypairs/{name}")
def _keypair(call: Call) -> Reply:
    pair = models.get_keypair(_region(call), call.params["name"])
    return Reply(200, {"keypair": _keypair_view(pair, full=True)})


@router.route("DELETE", "/os-keypairs/{name}")
def _delete_keypair(call: Call) -> Reply:
    models.delete_keypair(_region(call), call.params["name"])
    return Reply(204 if versions.compute(call.headers) >= (2, 2) else 202)


# -------------------------------------------------------------------------- server groups


def _group_view(call: Call, group: JSON) -> JSON:
    view = server_groups.view(group)
    if versions.compute(call.headers) < (2, 13):  # project_id and user_id from 2.13 on
        view.pop("project_id", None)
        view.pop("user_id", None)
    return view


@router.route("GET", "/os-server-groups")
def _server_group_list(call: Call) -> Reply:
    groups = [_group_view(call, g) for g in _region(call).server_groups.values()]
    return Reply(200, {"server_groups": groups})


@router.route("POST", "/os-server-groups")
def _server_group_create(call: Call) -> Reply:
    group = server_groups.create(_region(call), call.json("server_group"),
                                 server_groups.microversion(call.headers))
    return Reply(200, {"server_group": _group_view(call, group)})


@router.route("GET", "/os-server-groups/{group_id}")
def _server_group_show(call: Call) -> Reply:
    group = server_groups.get(_region(call), call.params["group_id"])
    return Reply(200, {"server_group": _group_view(call, group)})


@router.route("DELETE", "/os-server-groups/{group_id}")
def _server_group_delete(call: Call) -> Reply:
    server_groups.delete(_region(call), call.params["group_id"])
    return Reply(204)
