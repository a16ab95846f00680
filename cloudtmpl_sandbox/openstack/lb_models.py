"""Octavia's load balancers, listeners, pools, members and health monitors (API v2).

Every change is asynchronous, as Octavia's: a new load balancer is
``PENDING_CREATE`` and a change to it or to any of its children puts it in
``PENDING_UPDATE`` (``PENDING_DELETE`` for its deletion) for ``lb_seconds``; the
child is ``PENDING_CREATE``/``PENDING_UPDATE``/``PENDING_DELETE`` meanwhile.  When
the time has come (:func:`settle`, on every Octavia request) everything pending turns
``ACTIVE`` and what was being deleted is gone.  While a load balancer is not
``ACTIVE`` it is immutable: a change to a child is a 409 ``Load Balancer <id> is
immutable and cannot be updated.``, a change to the load balancer itself a 409
``Invalid state <status> of loadbalancer resource <id>`` (Octavia's words for each).

What Octavia refuses is refused here with its status and its error body
``{"faultcode", "faultstring", "debuginfo"}``: a VIP subnet or network that does not
exist (400), a listener port the load balancer already uses (409), deleting a load
balancer with children without ``cascade=true`` (400), a pool protocol its listener's
protocol cannot carry (400), a second default pool of a listener (409), a member with
an address and port already in its pool (409), a member subnet that does not exist
(400), a second health monitor of a pool (409), retries outside 1-10, HTTP options
on a TCP monitor or ones that are no HTTP method or status code list, a UDP-CONNECT
monitor more often than every 3 s (Octavia's default minimum), more load balancers
than the ``load_balancers`` quota (403), and unknown or read-only attributes in a body
(400).  A monitor's timeout longer than its delay is taken, as Octavia takes it (its
API reference asks for less, its API does not check).

The VIP is a real Neutron port on the VIP subnet (``device_owner: Octavia``, made and
deleted through :mod:`.network_models`), so its address is allocated from the subnet
and the subnet cannot be deleted while the load balancer holds it.

Operating status is computed when asked (:mod:`.lb_status`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any

from . import network_models
from .core import JSON, ApiError, iso, new_id, now
from .identity import PROJECT_ID
from .state import Region, Store

COLLECTIONS = ("loadbalancers", "listeners", "pools", "members", "healthmonitors")
RESOURCE = {"loadbalancers": "Load Balancer", "listeners": "Listener", "pools": "Pool",
            "members": "Member", "healthmonitors": "Health Monitor"}

LISTENER_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "UDP", "TERMINATED_HTTPS", "SCTP",
                      "PROMETHEUS")
POOL_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "UDP", "PROXY", "PROXYV2", "SCTP")
# the pool protocols a listener protocol carries (Octavia's table)
POOLS_FOR = {
    "HTTP": ("HTTP", "PROXY", "PROXYV2"),
    "HTTPS": ("HTTPS", "PROXY", "PROXYV2", "TCP"),
    "TCP": ("HTTP", "HTTPS", "PROXY", "PROXYV2", "TCP"),
    "TERMINATED_HTTPS": ("HTTP", "PROXY", "PROXYV2"),
    "UDP": ("UDP",),
    "SCTP": ("SCTP",),
    "PROMETHEUS": (),
}
ALGORITHMS = ("ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP", "SOURCE_IP_PORT")
MONITOR_TYPES = ("HTTP", "HTTPS", "PING", "TCP", "TLS-HELLO", "UDP-CONNECT", "SCTP")
HTTP_MONITORS = ("HTTP", "HTTPS")

# what a PUT may change, per collection (anything else in the body is refused)
UPDATABLE = {
    "loadbalancers": ("name", "description", "admin_state_up", "tags", "vip_qos_policy_id"),
    "listeners": ("name", "description", "admin_state_up", "connection_limit",
                  "default_pool_id", "tags"),
    "pools": ("name", "description", "admin_state_up", "lb_algorithm", "tags",
              "session_persistence"),
    "members": ("name", "weight", "admin_state_up", "monitor_address", "monitor_port",
                "backup", "tags"),
    "healthmonitors": ("name", "delay", "timeout", "max_retries", "max_retries_down",
                       "http_method", "url_path", "expected_codes", "admin_state_up",
                       "tags"),
}
_CREATE = {
    "loadbalancers": ("name", "description", "admin_state_up", "tags", "vip_subnet_id",
                      "vip_network_id", "vip_port_id", "vip_address", "project_id",
                      "provider", "flavor_id", "availability_zone", "vip_qos_policy_id"),
    "listeners": ("name", "description", "admin_state_up", "connection_limit",
                  "default_pool_id", "tags", "loadbalancer_id", "protocol",
                  "protocol_port", "project_id"),
    "pools": ("name", "description", "admin_state_up", "lb_algorithm", "tags",
              "session_persistence", "listener_id", "loadbalancer_id", "protocol",
              "project_id"),
    "members": ("name", "weight", "admin_state_up", "monitor_address", "monitor_port",
                "backup", "tags", "address", "protocol_port", "subnet_id", "project_id"),
    "healthmonitors": ("name", "delay", "timeout", "max_retries", "max_retries_down",
                       "http_method", "url_path", "expected_codes", "admin_state_up",
                       "tags", "pool_id", "type", "project_id"),
}
_BODY_KEY = {"loadbalancers": "loadbalancer", "listeners": "listener", "pools": "pool",
             "members": "member", "healthmonitors": "healthmonitor"}


# ----------------------------------------------------------------------------- errors


def error(status: int, message: str) -> ApiError:
    """Octavia's (WSME's) error body."""
    code = "Client" if status < 500 else "Server"
    return ApiError(status, {"faultcode": code, "faultstring": message, "debuginfo": None})


def not_found(collection: str, oid: str) -> ApiError:
    return error(404, f"{RESOURCE[collection]} {oid} not found.")


def validation(detail: str) -> ApiError:
    return error(400, f"Validation failure: {detail}")


def bad_input(field: str, value: Any, reason: str) -> ApiError:
    return error(400, f"Invalid input for field/attribute {field}. Value: '{value}'. {reason}")


def immutable(lb_id: str) -> ApiError:
    return error(409, f"Load Balancer {lb_id} is immutable and cannot be updated.")


# ----------------------------------------------------------------------------- state


def items(region: Region, collection: str) -> dict[str, JSON]:
    found: dict[str, JSON] = region.lbaas.setdefault(collection, {})
    return found


def get(region: Region, collection: str, oid: str) -> JSON:
    obj = items(region, collection).get(oid)
    if obj is None:
        raise not_found(collection, oid)
    return obj


def _new(collection: str, spec: JSON, lb_id: str) -> JSON:
    ts = iso(now())
    return {"id": new_id(), "name": str(spec.get("name") or ""),
            "project_id": PROJECT_ID, "tenant_id": PROJECT_ID,
            "provisioning_status": "PENDING_CREATE", "operating_status": "OFFLINE",
            "admin_state_up": _bool(spec, "admin_state_up", True),
            "tags": _tags(spec.get("tags", [])), "created_at": ts, "updated_at": None,
            "_lb": lb_id, "_kind": collection}


def _bool(spec: JSON, key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise bad_input(key, value, "Wrong type. Expected '<class 'bool'>'")
    return value


def _int(spec: JSON, key: str, low: int, high: int, default: int | None = None) -> int:
    value = spec.get(key, default)
    if value is None:
        raise bad_input(key, None, "Mandatory field missing.")
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_input(key, value, "Wrong type. Expected '<class 'int'>'")
    if value < low:
        raise bad_input(key, value, f"Value should be greater or equal to {low}")
    if value > high:
        raise bad_input(key, value, f"Value should be lower or equal to {high}")
    return value


def _choice(spec: JSON, key: str, allowed: tuple[str, ...]) -> str:
    value = spec.get(key)
    if value is None:
        raise bad_input(key, None, "Mandatory field missing.")
    if value not in allowed:
        raise bad_input(key, value, f"Value should be one of: {', '.join(allowed)}")
    return str(value)


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise bad_input("tags", value, "Wrong type. Expected '[<class 'str'>]'")
    return sorted(set(value))


def check_fields(collection: str, spec: JSON, creating: bool) -> None:
    allowed = _CREATE[collection] if creating else UPDATABLE[collection]
    for key in spec:
        if key not in allowed:
            raise error(400, f"Unknown attribute for argument {_BODY_KEY[collection]}: {key}")


def _touch(obj: JSON) -> None:
    obj["updated_at"] = iso(now())


def children(region: Region, lb_id: str) -> Iterator[JSON]:
    for collection in COLLECTIONS[1:]:
        for obj in list(items(region, collection).values()):
            if obj["_lb"] == lb_id:
                yield obj


def _begin(store: Store, region: Region, lb_id: str, status: str = "PENDING_UPDATE") -> JSON:
    """A change to load balancer ``lb_id``'s children: it must be ACTIVE, and is then
    ``status`` until the change is done."""
    lb = get(region, "loadbalancers", lb_id)
    if lb["provisioning_status"] != "ACTIVE":
        raise immutable(lb_id)
    lb["provisioning_status"] = status
    lb["_until"] = now() + store.knobs.lb_seconds
    return lb


def settle(region: Region) -> None:
    """Finish every change whose time has come (see the module docstring)."""
    for lb in list(items(region, "loadbalancers").values()):
        until = lb.get("_until")
        if until is None or now() < until:
            continue
        lb["_until"] = None
        if lb["provisioning_status"] == "PENDING_DELETE":
            _remove_lb(region, lb)
            continue
        for obj in list(children(region, lb["id"])):
            if obj["provisioning_status"] == "PENDING_DELETE":
                _remove(region, obj)
            elif obj["provisioning_status"].startswith("PENDING_"):
                obj["provisioning_status"] = "ACTIVE"
        lb["provisioning_status"] = "ACTIVE"


def _remove_lb(region: Region, lb: JSON) -> None:
    for obj in list(children(region, lb["id"])):
        items(region, obj["_kind"]).pop(obj["id"], None)
    port = region.ports.get(lb["vip_port_id"])
    if port is not None:
        network_models.delete_port(region, port)
    del items(region, "loadbalancers")[lb["id"]]


def _remove(region: Region, obj: JSON) -> None:
    kind = obj["_kind"]
    items(region, kind).pop(obj["id"], None)
    if kind == "listeners":
        for pool in items(region, "pools").values():
            pool["listeners"] = [x for x in pool["listeners"] if x["id"] != obj["id"]]
    elif kind == "pools":  # a pool takes its members and monitor with it
        for other in list(items(region, "members").values()):
            if other["_pool"] == obj["id"]:
                del items(region, "members")[other["id"]]
        items(region, "healthmonitors").pop(obj["healthmonitor_id"] or "", None)
        for lst in items(region, "listeners").values():
            if lst["default_pool_id"] == obj["id"]:
                lst["default_pool_id"] = None
    elif kind == "members":
        owner = items(region, "pools").get(obj["_pool"])
        if owner is not None:
            owner["members"] = [m for m in owner["members"] if m["id"] != obj["id"]]
    elif kind == "healthmonitors":
        for pool in items(region, "pools").values():
            if pool["healthmonitor_id"] == obj["id"]:
                pool["healthmonitor_id"] = None


# ----------------------------------------------------------------------- load balancers


def _vip_subnet(region: Region, spec: JSON) -> JSON:
    if spec.get("vip_port_id"):
        raise validation("use of vip_port_id is disallowed by this deployment's "
                         "configuration.")
    subnet_id, network_id = spec.get("vip_subnet_id"), spec.get("vip_network_id")
    if not subnet_id and not network_id:
        raise error(400, "Validation failure: VIP must contain one of: vip_port_id, "
                         "vip_network_id, vip_subnet_id.")
    if network_id and network_id not in region.networks:
        raise error(400, f"Network {network_id} not found.")
    if subnet_id:
        subnet = region.subnets.get(str(subnet_id))
        if subnet is None:
            raise error(400, f"Subnet {subnet_id} not found.")
        if network_id and subnet["network_id"] != network_id:
            raise validation(f"Subnet {subnet_id} is not on network {network_id}.")
        return subnet
    subnets = [region.subnets[s] for s in region.networks[str(network_id)]["subnets"]]
    if not subnets:
        raise validation("Supplied network does not contain a subnet.")
    return next((s for s in subnets if s["ip_version"] == 4), subnets[0])


def create_lb(store: Store, region: Region, spec: JSON) -> JSON:
    check_fields("loadbalancers", spec, creating=True)
    subnet = _vip_subnet(region, spec)
    quota = store.knobs.quota.get("load_balancers", -1)
    if 0 <= quota <= len(items(region, "loadbalancers")):
        raise error(403, "Quota has been met for resources: Load Balancer")
    lb = _new("loadbalancers", spec, "")
    lb["_lb"] = lb["id"]
    fixed: JSON = {"subnet_id": subnet["id"]}
    if spec.get("vip_address"):
        fixed["ip_address"] = str(spec["vip_address"])
    try:
        port = network_models.create_port(region, {
            "network_id": subnet["network_id"], "fixed_ips": [fixed],
            "name": f"octavia-lb-{lb['id']}", "device_owner": "Octavia",
            "device_id": f"lb-{lb['id']}", "security_groups": []})
    except ApiError as exc:  # Neutron's refusal, told in Octavia's words
        detail = exc.body.get("NeutronError", {}).get("message", "") \
            if isinstance(exc.body, dict) else str(exc.body)
        raise error(exc.status, detail or "VIP port could not be allocated.") from None
    lb.update({
        "description": str(spec.get("description") or ""),
        "vip_address": port["fixed_ips"][0]["ip_address"], "vip_port_id": port["id"],
        "vip_subnet_id": subnet["id"], "vip_network_id": subnet["network_id"],
        "vip_qos_policy_id": None, "provider": "amphora", "flavor_id": None,
        "availability_zone": None, "listeners": [], "pools": [],
        "_until": now() + store.knobs.lb_seconds})
    items(region, "loadbalancers")[lb["id"]] = lb
    return lb


def update_lb(store: Store, region: Region, lb: JSON, spec: JSON) -> None:
    check_fields("loadbalancers", spec, creating=False)
    _lb_mutable(lb)
    _apply(lb, spec)
    lb["provisioning_status"] = "PENDING_UPDATE"
    lb["_until"] = now() + store.knobs.lb_seconds


def _lb_mutable(lb: JSON) -> None:
    if lb["provisioning_status"] != "ACTIVE":
        raise error(409, f"Invalid state {lb['provisioning_status']} of loadbalancer "
                         f"resource {lb['id']}")


def delete_lb(store: Store, region: Region, lb: JSON, cascade: bool) -> None:
    if (lb["listeners"] or lb["pools"]) and not cascade:
        raise validation(f"Cannot delete Load Balancer {lb['id']} - it has children")
    _lb_mutable(lb)
    for obj in children(region, lb["id"]):
        obj["provisioning_status"] = "PENDING_DELETE"
    lb["provisioning_status"] = "PENDING_DELETE"
    lb["_until"] = now() + store.knobs.lb_seconds


def _apply(obj: JSON, spec: JSON) -> None:
    for key, value in spec.items():
        if key == "tags":
            obj["tags"] = _tags(value)
        elif key == "admin_state_up":
            obj[key] = _bool(spec, key, True)
        else:
            obj[key] = value
    _touch(obj)


# ---------------------------------------------------------------------------- listeners


def _check_protocols(listener: JSON, pool: JSON) -> None:
    if pool["protocol"] not in POOLS_FOR.get(listener["protocol"], ()):
        raise validation(f"The pool protocol '{pool['protocol']}' is invalid while the "
                         f"listener protocol is '{listener['protocol']}'.")


def _default_pool(region: Region, listener: JSON, pool_id: Any) -> JSON | None:
    """The pool ``pool_id`` as ``listener``'s default pool (checked, not yet joined)."""
    if pool_id is None:
        return None
    pool = items(region, "pools").get(str(pool_id))
    if pool is None or pool["_lb"] != listener["_lb"]:
        raise error(400, f"Pool {pool_id} not found.")
    _check_protocols(listener, pool)
    return pool


def _join(listener: JSON, pool: JSON | None) -> None:
    if pool is not None:
        pool["listeners"] = [*pool["listeners"], {"id": listener["id"]}]
        listener["default_pool_id"] = pool["id"]


def create_listener(store: Store, region: Region, spec: JSON) -> JSON:
    check_fields("listeners", spec, creating=True)
    lb_id = str(spec.get("loadbalancer_id") or "")
    if not lb_id:
        raise bad_input("loadbalancer_id", None, "Mandatory field missing.")
    get(region, "loadbalancers", lb_id)
    protocol = _choice(spec, "protocol", LISTENER_PROTOCOLS)
    port = _int(spec, "protocol_port", 1, 65535)
    limit = _int(spec, "connection_limit", -1, 2**31 - 1, -1)
    for other in items(region, "listeners").values():
        same_family = (other["protocol"] == "UDP") == (protocol == "UDP")
        if other["_lb"] == lb_id and other["protocol_port"] == port and same_family \
                and other["provisioning_status"] != "PENDING_DELETE":
            raise error(409, "Another Listener on this Load Balancer is already using "
                             f"protocol_port {port}")
    lst = _new("listeners", spec, lb_id)
    lst.update({"description": str(spec.get("description") or ""), "protocol": protocol,
                "protocol_port": port, "connection_limit": limit, "default_pool_id": None,
                "loadbalancers": [{"id": lb_id}], "l7policies": [], "insert_headers": {},
                "default_tls_container_ref": None, "sni_container_refs": []})
    pool = _default_pool(region, lst, spec.get("default_pool_id"))
    lb = _begin(store, region, lb_id)
    _join(lst, pool)
    lb["listeners"].append({"id": lst["id"]})
    items(region, "listeners")[lst["id"]] = lst
    return lst


def update_child(store: Store, region: Region, obj: JSON, spec: JSON) -> None:
    """A PUT on a listener, pool, member or health monitor."""
    kind = obj["_kind"]
    check_fields(kind, spec, creating=False)
    pool = None
    if kind == "listeners":
        if "connection_limit" in spec:
            _int(spec, "connection_limit", -1, 2**31 - 1, -1)
        if spec.get("default_pool_id") not in (None, obj["default_pool_id"]):
            pool = _default_pool(region, obj, spec["default_pool_id"])
    elif kind == "pools" and "lb_algorithm" in spec:
        _choice(spec, "lb_algorithm", ALGORITHMS)
    elif kind == "members":
        if "weight" in spec:
            _int(spec, "weight", 0, 256)
        if spec.get("monitor_port") is not None:
            _int(spec, "monitor_port", 1, 65535)
    elif kind == "healthmonitors":
        _check_monitor(obj["type"], {**_monitor_numbers(obj), **spec}, spec)
    _begin(store, region, obj["_lb"])
    _apply(obj, {k: v for k, v in spec.items() if k != "default_pool_id"})
    if kind == "listeners" and "default_pool_id" in spec:
        _leave(region, obj)
        _join(obj, pool)
    obj["provisioning_status"] = "PENDING_UPDATE"


def _leave(region: Region, listener: JSON) -> None:
    old = items(region, "pools").get(listener["default_pool_id"] or "")
    if old is not None:
        old["listeners"] = [x for x in old["listeners"] if x["id"] != listener["id"]]
    listener["default_pool_id"] = None


def delete_child(store: Store, region: Region, obj: JSON) -> None:
    _begin(store, region, obj["_lb"])
    obj["provisioning_status"] = "PENDING_DELETE"
    if obj["_kind"] in ("listeners", "pools"):
        lb = get(region, "loadbalancers", obj["_lb"])
        lb[obj["_kind"]] = [x for x in lb[obj["_kind"]] if x["id"] != obj["id"]]


# -------------------------------------------------------------------------------- pools


def create_pool(store: Store, region: Region, spec: JSON) -> JSON:
    check_fields("pools", spec, creating=True)
    protocol = _choice(spec, "protocol", POOL_PROTOCOLS)
    algorithm = _choice(spec, "lb_algorithm", ALGORITHMS)
    listener = None
    if spec.get("listener_id"):
        listener = get(region, "listeners", str(spec["listener_id"]))
        lb_id = listener["_lb"]
        _check_protocols(listener, {"protocol": protocol})
        if listener["default_pool_id"]:
            raise error(409, "This listener already has a default pool")
    elif spec.get("loadbalancer_id"):
        lb_id = get(region, "loadbalancers", str(spec["loadbalancer_id"]))["id"]
    else:
        raise validation("Must provide at least one of: loadbalancer_id, listener_id")
    pool = _new("pools", spec, lb_id)
    pool.update({"description": str(spec.get("description") or ""), "protocol": protocol,
                 "lb_algorithm": algorithm,
                 "session_persistence": spec.get("session_persistence"),
                 "loadbalancers": [{"id": lb_id}],
                 "listeners": [{"id": listener["id"]}] if listener else [],
                 "members": [], "healthmonitor_id": None, "tls_enabled": False})
    lb = _begin(store, region, lb_id)
    if listener is not None:
        listener["default_pool_id"] = pool["id"]
    lb["pools"].append({"id": pool["id"]})
    items(region, "pools")[pool["id"]] = pool
    return pool


# ------------------------------------------------------------------------------ members


def create_member(store: Store, region: Region, pool: JSON, spec: JSON) -> JSON:
    check_fields("members", spec, creating=True)
    raw = spec.get("address")
    if raw is None:
        raise bad_input("address", None, "Mandatory field missing.")
    try:
        address = str(ipaddress.ip_address(str(raw)))
    except ValueError:
        raise bad_input("address", raw, "Value should be IPv4 or IPv6 format") from None
    port = _int(spec, "protocol_port", 1, 65535)
    weight = _int(spec, "weight", 0, 256, 1)
    if spec.get("monitor_port") is not None:
        _int(spec, "monitor_port", 1, 65535)
    subnet_id = spec.get("subnet_id")
    if subnet_id is not None and subnet_id not in region.subnets:
        raise error(400, f"Subnet {subnet_id} not found.")
    for other in items(region, "members").values():
        if other["_pool"] == pool["id"] and (other["address"], other["protocol_port"]) \
                == (address, port) and other["provisioning_status"] != "PENDING_DELETE":
            raise error(409, f"Another member on this pool is already using ip {address} "
                             f"on protocol_port {port}")
    member = _new("members", spec, pool["_lb"])
    member.update({"address": address, "protocol_port": port, "weight": weight,
                   "subnet_id": subnet_id, "monitor_address": spec.get("monitor_address"),
                   "monitor_port": spec.get("monitor_port"),
                   "backup": bool(spec.get("backup", False)), "_pool": pool["id"]})
    _begin(store, region, pool["_lb"])
    pool["members"].append({"id": member["id"]})
    items(region, "members")[member["id"]] = member
    return member


# ---------------------------------------------------------------------- health monitors


def _monitor_numbers(hm: JSON) -> JSON:
    return {k: hm[k] for k in ("delay", "timeout", "max_retries", "max_retries_down")}


_HTTP_METHODS = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT",
                 "TRACE")
_CODES_RE = re.compile(r"^(\d{3}(\s*,\s*\d{3})*)$|^(\d{3}-\d{3})$")
UDP_MIN_DELAY = 3  # Octavia's udp_connect_min_interval_health_monitor default


def _check_monitor(kind: str, merged: JSON, given: JSON) -> None:
    delay = _int(merged, "delay", 0, 2**31 - 1)
    _int(merged, "timeout", 0, 2**31 - 1)
    _int(merged, "max_retries", 1, 10)
    _int(merged, "max_retries_down", 1, 10, 3)
    if kind == "UDP-CONNECT" and delay < UDP_MIN_DELAY:
        raise validation(f"The request delay value {delay} should be larger than "
                         f"{UDP_MIN_DELAY} for UDP-CONNECT health monitor type.")
    if kind not in HTTP_MONITORS:
        for key in ("http_method", "url_path", "expected_codes"):
            if given.get(key):
                raise error(400, f"{key} is not a valid option for health monitors of "
                                 f"type {kind}")
    if given.get("http_method") is not None:
        _choice(given, "http_method", _HTTP_METHODS)
    codes = given.get("expected_codes")
    if codes is not None and not _CODES_RE.match(str(codes)):
        raise bad_input("expected_codes", codes, "Value should match the pattern "
                        + _CODES_RE.pattern)
    path = given.get("url_path")
    if path is not None and not str(path).startswith("/"):
        raise bad_input("url_path", path, "Value must be a valid URL path")


def create_monitor(store: Store, region: Region, spec: JSON) -> JSON:
    check_fields("healthmonitors", spec, creating=True)
    if not spec.get("pool_id"):
        raise bad_input("pool_id", None, "Mandatory field missing.")
    pool = get(region, "pools", str(spec["pool_id"]))
    kind = _choice(spec, "type", MONITOR_TYPES)
    _check_monitor(kind, spec, spec)
    if kind == "UDP-CONNECT" and pool["protocol"] != "UDP":
        raise validation("The UDP-CONNECT type is only supported for pools of type UDP.")
    if pool["healthmonitor_id"]:
        raise error(409, "This pool already has a health monitor")
    hm = _new("healthmonitors", spec, pool["_lb"])
    http = kind in HTTP_MONITORS
    hm.update({"type": kind, "delay": spec["delay"], "timeout": spec["timeout"],
               "max_retries": spec["max_retries"],
               "max_retries_down": spec.get("max_retries_down", 3),
               "http_method": (spec.get("http_method") or "GET") if http else None,
               "url_path": (spec.get("url_path") or "/") if http else None,
               "expected_codes": (spec.get("expected_codes") or "200") if http else None,
               "pools": [{"id": pool["id"]}]})
    _begin(store, region, pool["_lb"])
    pool["healthmonitor_id"] = hm["id"]
    items(region, "healthmonitors")[hm["id"]] = hm
    return hm
