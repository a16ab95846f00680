"""``Cloud::Compute::Server``: a Nova server.

Physical id: the server id.  Metadata ``cloudtmpl:stack``/``cloudtmpl:resource``/
``cloudtmpl:spec`` go into the ``POST /servers`` body itself: no server without its
marker ever exists.  NICs given as ``{subnet: id}`` need a port first (Nova takes
networks, ports and fixed IPs only): the handler creates ``<server name>:nic<i>``
(a name no template resource can have, so discovery never reports it) and deletes
it with the server.  Crash window: between that port's creation and ``POST
/servers`` the port exists alone; a retried create reuses it by name, a template
that dropped the server leaves it behind.

Not reported (compared with the last-applied spec instead): ``networks`` (the
template's shape cannot be rebuilt) and ``user_data``.

deletion_policy Snapshot (:func:`snapshot_image`): a Glance image of the server by
Nova's ``createImage``, waited on until active, before the server is deleted (Heat's
behaviour); the image outlives the stack and is never one of its resources.

``console_urls`` (Heat's attribute: console type -> URL) is asked of Nova only when
read (:class:`ConsoleUrls`, one ``remote-consoles`` request per type read), so
discovery asks nothing more; it is not kept in the state.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import re
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource, snapshot_name
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import SERVER, CloudError
from cloudtmpl.providers.openstack import catalog, neutron
from cloudtmpl.providers.openstack.client import OpenStackClient, status_of
from cloudtmpl.providers.openstack.neutron import NIC_SEPARATOR

GONE_STATES = frozenset({"DELETED", "SOFT_DELETED"})
# Heat's console types, each with its Nova remote-console protocol
CONSOLE_TYPES = {"novnc": "vnc", "xvpvnc": "vnc", "spice-html5": "spice",
                 "rdp-html5": "rdp", "serial": "serial", "webmks": "mks"}


class ConsoleUrls(Mapping[str, str]):
    """Heat's ``console_urls``: each type's URL asked of Nova (microversion 2.8's
    ``POST /servers/{id}/remote-consoles``) when read, once; a console Nova refuses
    reads as Heat's ``Cannot get console url: ...``."""

    asks_the_cloud = True  # a plan that only looks for warnings leaves it unknown

    def __init__(self, client: OpenStackClient, region: str, server_id: str) -> None:
        self._client, self._region, self._server_id = client, region, server_id
        self._got: dict[str, str] = {}

    def __getitem__(self, kind: str) -> str:
        if kind not in CONSOLE_TYPES:
            raise KeyError(kind)
        if kind not in self._got:
            body = {"remote_console": {"protocol": CONSOLE_TYPES[kind], "type": kind}}
            try:
                with self._client.session(self._region):  # read after the verb's lease
                    got = self._client.api(
                        self._region, "compute", f"/servers/{self._server_id}/remote-consoles",
                        method="POST", body=body,
                        headers={"OpenStack-API-Version": "compute 2.8"})
                self._got[kind] = str(((got or {}).get("remote_console") or {}).get("url"))
            except CloudError as exc:
                self._got[kind] = f"Cannot get console url: {exc}"
        return self._got[kind]

    def __iter__(self) -> Any:
        return iter(CONSOLE_TYPES)

    def __len__(self) -> int:
        return len(CONSOLE_TYPES)


class ServerAttributes(Mapping[str, Any]):
    """A server's attributes: the ones discovery read, and ``console_urls``, made only
    when read by name (not listed: a state record keeps what discovery read)."""

    def __init__(self, known: Mapping[str, Any], consoles: ConsoleUrls) -> None:
        self._known, self._consoles = dict(known), consoles

    def __getitem__(self, name: str) -> Any:
        return self._consoles if name == "console_urls" else self._known[name]

    def __contains__(self, name: object) -> bool:
        return name == "console_urls" or name in self._known

    def __iter__(self) -> Any:
        return iter(self._known)

    def __len__(self) -> int:
        return len(self._known)


def _is_private(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_private
    except ValueError:
        return True


def _server_groups(srv: Mapping[str, Any], ports: list[dict[str, Any]],
                   groups: list[dict[str, Any]] | None) -> list[str]:
    """The security groups the server itself asked for, as ids.

    Groups on ports the template created (named ports passed as NICs) belong to
    those ports, and Nova's ``default`` group stands for "none given".
    """
    default_ids = {g.get("id") for g in groups or [] if g.get("name") == "default"}
    server_name = str(srv.get("name") or "")
    mine = [p for p in ports if p.get("device_id") == srv.get("id")]
    if mine:
        own = [p for p in mine if not p.get("name")
               or str(p.get("name")).startswith(server_name + NIC_SEPARATOR)]
        ids = {str(g) for p in own for g in p.get("security_groups") or []}
        return sorted(ids - {str(d) for d in default_ids})
    # No port data: map Nova's group names to ids where unambiguous.
    by_name: dict[str, list[str]] = {}
    for g in groups or []:
        by_name.setdefault(str(g.get("name")), []).append(str(g.get("id")))
    out: set[str] = set()
    for sg in srv.get("security_groups") or []:
        sg_name = str(sg.get("name"))
        if sg_name == "default":
            continue
        matches = by_name.get(sg_name, [])
        out.add(matches[0] if len(matches) == 1 else sg_name)
    return sorted(out)


def _networks(srv: Mapping[str, Any], ports: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Heat's ``networks`` attribute: each network's addresses keyed by its name (Nova's
    ``addresses`` labels: fixed and floating) and by its id (the server's ports' fixed
    addresses), so ``{get_attr: [server, networks, private, 0]}`` and the same by id
    both resolve."""
    networks: dict[str, list[str]] = {}
    for p in ports:
        if p.get("device_id") == srv.get("id"):
            networks.setdefault(str(p.get("network_id")), []).extend(
                str(f.get("ip_address")) for f in p.get("fixed_ips") or [])
    for label, addrs in (srv.get("addresses") or {}).items():
        if str(label) not in networks:  # a network named like another's id: the id wins
            networks[str(label)] = [str(a.get("addr")) for a in addrs or [] if a.get("addr")]
    return networks


def _addresses(srv: Mapping[str, Any], ports: list[dict[str, Any]]
               ) -> dict[str, list[dict[str, Any]]]:
    """Heat's ``addresses`` attribute: Nova's ``addresses`` ({network name: [{addr,
    version, OS-EXT-IPS:type, OS-EXT-IPS-MAC:mac_addr}]}) with each entry's ``port`` (the
    server's port of that MAC address, or null), and each network also under its id (the
    network of those ports), as Heat extends it: so ``{get_attr: [server, addresses,
    private, 0, addr]}`` and the same by network id both resolve."""
    by_mac = {str(p.get("mac_address")): p for p in ports if p.get("device_id") == srv.get("id")}
    out: dict[str, list[dict[str, Any]]] = {}
    ids: dict[str, str] = {}
    for label, addrs in (srv.get("addresses") or {}).items():
        entries = []
        for a in addrs or []:
            port = by_mac.get(str(a.get("OS-EXT-IPS-MAC:mac_addr")))
            entries.append({**a, "port": str(port["id"]) if port else None})
            if port and port.get("network_id"):
                ids[str(label)] = str(port["network_id"])
        out[str(label)] = entries
    for label, net_id in ids.items():
        out[net_id] = out[label]
    return out


def server_live(client: OpenStackClient, region: str, address: str, srv: Mapping[str, Any],
                ports: list[dict[str, Any]],
                groups: list[dict[str, Any]] | None) -> LiveResource:
    meta = srv.get("metadata") or {}
    image = srv.get("image")
    image_id = image.get("id") if isinstance(image, dict) else (image or None)
    flavor = srv.get("flavor") or {}
    fixed: list[str] = []
    floating: list[str] = []
    for addrs in (srv.get("addresses") or {}).values():
        for a in addrs or []:
            ip = a.get("addr")
            if not ip:
                continue
            (floating if a.get("OS-EXT-IPS:type") == "floating" else fixed).append(ip)
    fixed.sort(key=lambda ip: ":" in ip)  # IPv4 first, order otherwise kept
    # Nova's accessIPv4 is the address the operator says reaches the server
    public = srv.get("accessIPv4") or (floating[0] if floating else next(
        (ip for ip in fixed if not _is_private(ip)), None))
    networks = _networks(srv, ports)
    status = str(srv.get("status") or "")
    name = str(srv.get("name") or srv.get("id"))
    return LiveResource(
        address=address,
        kind=SERVER,
        physical_id=str(srv["id"]),
        placement=client.placement(region),
        name=name,
        properties={
            "image": image_id,
            "flavor": catalog.flavor_name(client, region, flavor),
            "key_name": srv.get("key_name") or None,
            "security_groups": _server_groups(srv, ports, groups),
            "availability_zone": srv.get("OS-EXT-AZ:availability_zone") or None,
            "metadata": kit.user_metadata(meta),
        },
        attributes=ServerAttributes({
            "first_address": fixed[0] if fixed else None,
            "private_ip": fixed[0] if fixed else None,
            "public_ip": public,
            "networks": networks,
            "addresses": _addresses(srv, ports),
            "accessIPv4": srv.get("accessIPv4") or "",
            "accessIPv6": srv.get("accessIPv6") or "",
            # the Nova server, as Heat's show (never a create answer's admin password)
            "show": {k: copy.deepcopy(v) for k, v in srv.items() if k != "adminPass"},
            "name": name,
            "status": status,
        }, ConsoleUrls(client, region, str(srv["id"]))),
        spec_hash=meta.get(TAG_SPEC),
        status=status,
    )


def stack_address(obj: Mapping[str, Any], stack: str, gone: frozenset[str]) -> str | None:
    """The address of a server or volume of ``stack`` by its metadata (None: not the
    stack's, or its status is one of ``gone``).  Servers and volumes alike."""
    if obj.get("status") in gone:
        return None
    return kit.tagged_address(obj.get("metadata") or {}, stack, obj.get("name", "")) or None


def find_marked(client: OpenStackClient, region: str, service: str, path: str, key: str,
                params: Mapping[str, Any], stack: str, address: str) -> str | None:
    """After an ambiguous create: the id of the object of the listing ``path`` (filtered
    by ``params``) whose metadata marks it as ``stack``'s ``address``.  Servers and
    volumes alike; no retry inside the create's retry."""
    obj = client.api(region, service, path, params=params, retry=False) or {}
    for item in obj.get(key) or []:
        m = item.get("metadata") or {}
        if m.get(TAG_STACK) == stack and m.get(TAG_RESOURCE) == address:
            return str(item["id"])
    return None


def _refresh(client: OpenStackClient, region: str, address: str, server_id: str,
             srv: dict[str, Any] | None = None) -> LiveResource:
    if srv is None:
        srv = client.get(region, "compute", f"/servers/{server_id}", "server")
    if srv is None:
        raise CloudError(f"server {address} ({server_id}) vanished", permanent=True)
    ports = client.list_all(region, "network", "/v2.0/ports", "ports", {"device_id": server_id})
    if ports:
        groups = catalog.default_groups(client, region)
    else:  # no port data: Nova's group names are mapped through the full list
        groups = client.list_all(region, "network", "/v2.0/security-groups", "security_groups")
    return server_live(client, region, address, srv, ports, groups)


def wait_server(client: OpenStackClient, region: str, server_id: str, want: str,
                timeout: float, what: str) -> dict[str, Any]:
    def fetch() -> tuple[bool, str, dict[str, Any]]:
        srv = client.get(region, "compute", f"/servers/{server_id}", "server")
        if srv is None:
            return False, "BUILD", {}
        status = str(srv.get("status") or "")
        if status == want:
            return True, status, srv
        if status == "ERROR":
            fault = srv.get("fault") or {}
            reason = fault.get("message") or "no fault message"
            raise CloudError(f"{what} went to ERROR: {reason}", permanent=True,
                             status="ERROR")
        return False, status, srv

    return client.poll(timeout, what, fetch)


def settled_server(client: OpenStackClient, region: str, server_id: str, timeout: float,
                   what: str) -> None:
    """Wait while the server is still building (Nova refuses attachments then)."""
    srv = client.get(region, "compute", f"/servers/{server_id}", "server")
    if srv is not None and srv.get("status") == "BUILD":
        wait_server(client, region, server_id, "ACTIVE", timeout, what)


def _wait_gone(client: OpenStackClient, region: str, server_id: str, timeout: float,
               what: str) -> None:
    def fetch() -> tuple[bool, str, None]:
        srv = client.get(region, "compute", f"/servers/{server_id}", "server")
        status = "DELETED" if srv is None else str(srv.get("status") or "")
        return status in GONE_STATES, status, None

    client.poll(timeout, what, fetch)


def _subnet_nic(client: OpenStackClient, region: str, port_name: str, subnet: str,
                fixed_ip: Any, groups: list[str]) -> str:
    def lookup() -> str | None:
        return neutron.find_named(client, region, "/v2.0/ports", "ports", port_name)

    existing = lookup()
    if existing:
        return existing
    sub = client.get(region, "network", f"/v2.0/subnets/{subnet}", "subnet")
    if sub is None:
        raise CloudError(f"Subnet {subnet} could not be found.", permanent=True,
                         status="404")
    ip: dict[str, Any] = {"subnet_id": subnet}
    if fixed_ip:
        ip["ip_address"] = str(fixed_ip)
    body: dict[str, Any] = {"name": port_name, "network_id": sub["network_id"],
                            "fixed_ips": [ip]}
    if groups:
        body["security_groups"] = [catalog.group_ref(client, region, g) for g in groups]
    return neutron.post(client, region, "/v2.0/ports", "port", body, lookup)


def _nics(client: OpenStackClient, region: str, name: str, networks: Any,
          groups: list[str]) -> list[dict[str, Any]]:
    if not isinstance(networks, list):
        raise CloudError("networks must be a list of {network|port|subnet[, fixed_ip]}",
                         permanent=True)
    nics: list[dict[str, Any]] = []
    for i, nic in enumerate(networks):
        if not isinstance(nic, Mapping):
            raise CloudError(f"networks[{i}] must be a map", permanent=True)
        port = nic.get("port")
        net = nic.get("network") or nic.get("uuid")
        subnet = nic.get("subnet")
        fixed_ip = nic.get("fixed_ip")
        if port:
            nics.append({"port": str(port)})
        elif subnet:
            nics.append({"port": _subnet_nic(client, region, f"{name}{NIC_SEPARATOR}{i}",
                                             str(subnet), fixed_ip, groups)})
        elif net:
            entry = {"uuid": catalog.network_ref(client, region, str(net))}
            if fixed_ip:
                entry["fixed_ip"] = str(fixed_ip)
            nics.append(entry)
        else:
            raise CloudError(f"networks[{i}] needs network, port or subnet", permanent=True)
    return nics


def set_metadata(client: OpenStackClient, region: str, service: str, path: str,
                 meta: Mapping[str, Any], change: kit.Change) -> None:
    """The spec marker moves; with ``metadata`` changed, all of it is replaced at once
    (the user's keys as desired, cloudtmpl's kept).  Servers and volumes alike."""
    if "metadata" in change.changed:
        full = {k: str(v) for k, v in meta.items() if str(k).startswith("cloudtmpl:")}
        full.update(kit.metadata(change.properties))
        full[TAG_SPEC] = change.spec_hash
        client.api(region, service, path, method="PUT", body={"metadata": full})
    else:
        client.api(region, service, path, method="POST",
                   body={"metadata": {TAG_SPEC: change.spec_hash}})


class ServerHandler:
    kind = SERVER
    listings: tuple[str, ...] = ("servers", "flavors", "ports", "security_groups")

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        ports, groups = listings.get("ports"), listings.get("security_groups")
        found = kit.stack_items(listings.get("servers"),
                                lambda srv: stack_address(srv, stack, GONE_STATES))
        return [server_live(client, region, address, srv, ports, groups)
                for address, srv in found]

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        props, name, stack, address = want.properties, want.name, want.stack, want.address
        image, flavor = str(props.get("image") or ""), str(props.get("flavor") or "")
        if not image or not flavor:
            raise CloudError("a server needs image and flavor", permanent=True)
        meta = {**kit.metadata(props), TAG_STACK: stack, TAG_RESOURCE: address,
                TAG_SPEC: want.spec_hash}
        groups = [str(g) for g in props.get("security_groups") or []]
        body: dict[str, Any] = {
            "name": name,
            "imageRef": catalog.image_ref(client, region, image),
            "flavorRef": catalog.flavor_ref(client, region, flavor),
            "metadata": meta,
        }
        if props.get("key_name"):
            body["key_name"] = str(props["key_name"])
        if props.get("user_data"):
            body["user_data"] = base64.b64encode(str(props["user_data"]).encode()).decode()
        if props.get("availability_zone"):
            body["availability_zone"] = str(props["availability_zone"])
        if groups:
            body["security_groups"] = [{"name": g} for g in groups]
        nics = _nics(client, region, name, props.get("networks") or [], groups)
        if nics:
            body["networks"] = nics

        request: dict[str, Any] = {"server": body}
        hints = props.get("scheduler_hints") or {}
        if not isinstance(hints, Mapping):
            raise CloudError("scheduler_hints must be a map", permanent=True)
        if hints:  # Nova's own place for them: beside the server, not in it
            request["os:scheduler_hints"] = dict(hints)

        def post() -> str:
            obj = client.api(region, "compute", "/servers", method="POST",
                             body=request, retry=False) or {}
            return str(obj["server"]["id"])

        server_id = client.create_or_adopt(post, lambda: find_marked(
            client, region, "compute", "/servers/detail", "servers",
            {"name": f"^{re.escape(name)}$"}, stack, address))
        srv = wait_server(client, region, server_id, "ACTIVE", want.timeout,
                          f"server {name} ({server_id})")
        return _refresh(client, region, address, server_id, srv)

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        region = live.placement.region
        sid = live.physical_id
        what = f"server {live.name or live.address} ({sid})"
        srv = kit.require(client.get(region, "compute", f"/servers/{sid}", "server"), live)
        deadline = client.clock() + change.timeout
        flavor = str(change.properties.get("flavor") or "")
        current = catalog.flavor_name(client, region, srv.get("flavor") or {})
        if "flavor" in change.changed and flavor and flavor not in (
                current, (srv.get("flavor") or {}).get("id")):
            action = f"/servers/{sid}/action"
            if srv.get("status") == "VERIFY_RESIZE":  # an earlier resize never confirmed
                client.api(region, "compute", action, method="POST",
                           body={"confirmResize": None})
                wait_server(client, region, sid, "ACTIVE", change.timeout, what)
            client.api(region, "compute", action, method="POST",
                       body={"resize": {"flavorRef": catalog.flavor_ref(client, region,
                                                                        flavor)}})
            wait_server(client, region, sid, "VERIFY_RESIZE",
                        max(1.0, deadline - client.clock()), what)
            client.api(region, "compute", action, method="POST",
                       body={"confirmResize": None})
            wait_server(client, region, sid, "ACTIVE", max(1.0, deadline - client.clock()),
                        what)
        set_metadata(client, region, "compute", f"/servers/{sid}/metadata",
                     srv.get("metadata") or {}, change)
        return _refresh(client, region, live.address, sid)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        sid = live.physical_id
        srv = client.get(region, "compute", f"/servers/{sid}", "server")
        if srv is None:
            return
        name = str(srv.get("name") or live.name)
        ports = client.list_all(region, "network", "/v2.0/ports", "ports", {"device_id": sid})
        nic_ports = [str(p["id"]) for p in ports
                     if str(p.get("name") or "").startswith(name + NIC_SEPARATOR)]
        if not client.delete_call(region, "compute", f"/servers/{sid}"):
            return
        _wait_gone(client, region, sid, timeout, f"server {name} ({sid})")
        for port_id in nic_ports:
            client.delete_call(region, "network", f"/v2.0/ports/{port_id}")


# ------------------------------------------------------- deletion_policy Snapshot

IMAGE_MICROVERSION = {"OpenStack-API-Version": "compute 2.45",
                      "X-OpenStack-Nova-API-Version": "2.45"}  # createImage: the id in the body
_LIVE_IMAGES = ("queued", "saving", "uploading", "importing", "active")


def snapshot_image(client: OpenStackClient, live: LiveResource, *, stack: str,
                   timeout: float) -> str | None:
    """deletion_policy Snapshot on a server: a Glance image of it, as Heat takes.

    Nova's ``createImage`` (microversion 2.45: the image id in the answer), named
    :func:`cloudtmpl.model.snapshot_name` after the server and propertied
    ``cloudtmpl:stack``/``resource``/``snapshot-of`` (the server id), so it is found
    again and never taken for a resource of the stack; waited on until ``active``
    (``killed``/``deleted``: the snapshot failed and the server is kept).  An image of
    this server by this name that is being made or is active (an ambiguous failure
    retried, a killed run) is reused.  Returns the image id, or None when the server
    is already gone."""
    region = live.placement.region
    sid = live.physical_id
    name = snapshot_name(stack, live.address, sid)
    what = f"image {name}"

    def find() -> str | None:
        for image in client.list_all(region, "image", "/v2/images", "images",
                                     {"name": name}):
            if image.get("name") == name and image.get("instance_uuid") == sid and \
                    image.get(TAG_STACK, stack) == stack and \
                    image.get("status") in _LIVE_IMAGES:
                return str(image["id"])
        return None

    def post() -> str:
        body = {"createImage": {"name": name, "metadata": kit.snapshot_marks(stack, live)}}
        obj = client.api(region, "compute", f"/servers/{sid}/action", method="POST",
                         retry=False, body=body, headers=IMAGE_MICROVERSION) or {}
        return str(obj["image_id"])

    with client.session(region):
        if client.get(region, "compute", f"/servers/{sid}", "server") is None:
            return None  # already gone: nothing to keep
        image_id = client.call(find) or client.create_or_adopt(post, find)

        def fetch() -> tuple[bool, str, None]:
            try:
                image = client.api(region, "image", f"/v2/images/{image_id}") or {}
            except CloudError as err:
                if status_of(err) != 404:
                    raise
                image = {"status": "deleted"}
            status = str(image.get("status") or "queued")
            if status in ("killed", "deleted"):
                with suppress(CloudError):
                    client.delete_call(region, "image", f"/v2/images/{image_id}")
                raise CloudError(f"{what} ({image_id}) of server {sid} failed: status "
                                 f"{status}", permanent=True, status=status)
            return status == "active", status, None

        client.poll(timeout, f"{what} ({image_id})", fetch)
    return image_id
