"""Octavia v2 on the wire: ``/v2/lbaas/{loadbalancers,listeners,pools,healthmonitors}``,
``/v2/lbaas/pools/{id}/members``, a load balancer's ``/status`` tree and ``DELETE
…?cascade=true``.

Lists take ``limit``/``marker`` (the ``<collection>_links`` next link when more items
remain), attribute filters (``name``, ``protocol_port``, ``provisioning_status``, …;
``loadbalancer_id`` and ``pool_id`` for the children), ``tags``/``tags-any``/
``not-tags``/``not-tags-any`` and ``fields``.  Errors are ``{"faultcode",
"faultstring", "debuginfo"}``.  The state changes and refusals are the models'
(:mod:`.lb_models`, operating status :mod:`.lb_status`); every request first
finishes the changes whose time has come.
"""

from __future__ import annotations

from urllib.parse import urlencode

from . import lb_models as models
from . import lb_status
from .core import JSON, Call, Reply, Router, dispatch, matches
from .state import Region

router = Router()

_LIST_ARGS = {"limit", "marker", "fields", "sort", "sort_key", "sort_dir", "page_reverse",
              "tags", "tags-any", "not-tags", "not-tags-any", "project_id"}
_TOP = ("loadbalancers", "listeners", "pools", "healthmonitors")
_KEY = {"loadbalancers": "loadbalancer", "listeners": "listener", "pools": "pool",
        "members": "member", "healthmonitors": "healthmonitor"}


def handle(call: Call) -> Reply:
    return dispatch(router, call, models.error(404, "The resource could not be found."),
                    lambda message: models.error(400, message))


def _region(call: Call) -> Region:
    region: Region = call.store.regions[call.region]
    models.settle(region)
    return region


def _view(region: Region, obj: JSON, call: Call | None = None,
          servers: set[str] | None = None) -> JSON:
    out = {k: v for k, v in obj.items() if not k.startswith("_")}
    out["operating_status"] = lb_status.operating(region, obj, servers)
    if obj["_kind"] == "listeners":
        out["loadbalancers"] = [{"id": obj["_lb"]}]
    fields = call.args.get("fields") if call is not None else None
    return {k: v for k, v in out.items() if k in fields} if fields else out


def _filtered(view: JSON, obj: JSON, call: Call) -> bool:
    probe = {**view, "loadbalancer_id": obj["_lb"], "load_balancer_id": obj["_lb"]}
    if obj["_kind"] == "healthmonitors":
        probe["pool_id"] = obj["pools"][0]["id"]
    if not matches(probe, call.args, _LIST_ARGS):
        return False
    tags = set(obj.get("tags", []))
    checks = (("tags", lambda w: w <= tags), ("tags-any", lambda w: bool(w & tags)),
              ("not-tags", lambda w: not w <= tags), ("not-tags-any", lambda w: not w & tags))
    for arg, test in checks:
        raw = call.arg(arg)
        if raw and not test(set(raw.split(","))):
            return False
    return True


def _page(call: Call, region: Region, key: str, objs: list[JSON], path: str) -> Reply:
    servers = lb_status.server_addresses(region)
    chosen = [(o, _view(region, o, None, servers)) for o in objs]
    chosen = [(o, v) for o, v in chosen if _filtered(v, o, call)]
    marker = call.arg("marker")
    if marker is not None:
        ids = [o["id"] for o, _ in chosen]
        if marker not in ids:
            raise models.error(400, f"Supplied pagination marker '{marker}' is not valid.")
        chosen = chosen[ids.index(marker) + 1:]
    raw = call.arg("limit")
    limit = len(chosen)
    if raw is not None:
        if not raw.lstrip("-").isdigit() or int(raw) < 0:
            raise models.error(400, f"Supplied pagination limit '{raw}' is not valid.")
        limit = int(raw) or len(chosen)
    page = chosen[:limit]
    links = []
    if len(chosen) > limit and page:
        pairs = [(k, v) for k, vs in call.args.items() if k not in ("marker", "limit")
                 for v in vs]
        pairs += [("limit", str(limit)), ("marker", page[-1][0]["id"])]
        links.append({"rel": "next", "href": f"{call.root}/{path}?{urlencode(pairs)}"})
    fields = call.args.get("fields")
    views = [{k: x for k, x in v.items() if k in fields} if fields else v for _, v in page]
    return Reply(200, {key: views, f"{key}_links": links})


def _collection(call: Call) -> str:
    collection = call.params["collection"]
    if collection not in _TOP:
        raise models.error(404, "The resource could not be found.")
    return collection


# ------------------------------------------------------------------------------ versions


@router.route("GET", "/")
def _versions(call: Call) -> Reply:
    return Reply(200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                     "updated": "2023-03-01T00:00:00Z",
                                     "links": [{"href": f"{call.root}/v2", "rel": "self"}]}]})


# -------------------------------------------------------------------------- load balancers


@router.route("GET", "/v2/lbaas/loadbalancers/{item_id}/status")
def _status(call: Call) -> Reply:
    region = _region(call)
    lb = models.get(region, "loadbalancers", call.params["item_id"])
    servers = lb_status.server_addresses(region)

    def brief(obj: JSON, *keys: str) -> JSON:
        view = _view(region, obj, None, servers)
        return {k: view[k] for k in ("id", "name", "provisioning_status",
                                     "operating_status", *keys) if k in view}

    listeners = []
    for ref in lb["listeners"]:
        lst = models.items(region, "listeners").get(ref["id"])
        if lst is None:
            continue
        pools = []
        for pool in models.items(region, "pools").values():
            if pool["id"] != lst["default_pool_id"]:
                continue
            entry = brief(pool)
            entry["members"] = [brief(models.items(region, "members")[m["id"]],
                                      "address", "protocol_port")
                                for m in pool["members"]
                                if m["id"] in models.items(region, "members")]
            hm = models.items(region, "healthmonitors").get(pool["healthmonitor_id"] or "")
            if hm is not None:
                entry["health_monitor"] = brief(hm, "type")
            pools.append(entry)
        listeners.append({**brief(lst), "pools": pools})
    return Reply(200, {"statuses": {"loadbalancer": {**brief(lb), "listeners": listeners}}})


@router.route("GET", "/v2/lbaas/pools/{pool_id}/members")
def _members(call: Call) -> Reply:
    region = _region(call)
    pool = models.get(region, "pools", call.params["pool_id"])
    objs = [o for o in models.items(region, "members").values() if o["_pool"] == pool["id"]]
    return _page(call, region, "members", objs, f"v2/lbaas/pools/{pool['id']}/members")


@router.route("POST", "/v2/lbaas/pools/{pool_id}/members")
def _post_member(call: Call) -> Reply:
    region = _region(call)
    pool = models.get(region, "pools", call.params["pool_id"])
    member = models.create_member(call.store, region, pool, call.json("member"))
    return Reply(201, {"member": _view(region, member)})


def _member(call: Call, region: Region) -> JSON:
    pool = models.get(region, "pools", call.params["pool_id"])
    member = models.get(region, "members", call.params["member_id"])
    if member["_pool"] != pool["id"]:
        raise models.not_found("members", call.params["member_id"])
    return member


@router.route("GET", "/v2/lbaas/pools/{pool_id}/members/{member_id}")
def _show_member(call: Call) -> Reply:
    region = _region(call)
    return Reply(200, {"member": _view(region, _member(call, region), call)})


@router.route("PUT", "/v2/lbaas/pools/{pool_id}/members/{member_id}")
def _put_member(call: Call) -> Reply:
    region = _region(call)
    member = _member(call, region)
    models.update_child(call.store, region, member, call.json("member"))
    return Reply(200, {"member": _view(region, member)})


@router.route("DELETE", "/v2/lbaas/pools/{pool_id}/members/{member_id}")
def _delete_member(call: Call) -> Reply:
    region = _region(call)
    models.delete_child(call.store, region, _member(call, region))
    return Reply(204)


# ------------------------------------------------------------------- the four collections


@router.route("GET", "/v2/lbaas/{collection}")
def _list(call: Call) -> Reply:
    collection = _collection(call)
    region = _region(call)
    objs = list(models.items(region, collection).values())
    return _page(call, region, collection, objs, f"v2/lbaas/{collection}")


@router.route("POST", "/v2/lbaas/{collection}")
def _post(call: Call) -> Reply:
    collection = _collection(call)
    region = _region(call)
    spec = call.json(_KEY[collection])
    make = {"loadbalancers": models.create_lb, "listeners": models.create_listener,
            "pools": models.create_pool, "healthmonitors": models.create_monitor}
    obj = make[collection](call.store, region, spec)
    return Reply(201, {_KEY[collection]: _view(region, obj)})


@router.route("GET", "/v2/lbaas/{collection}/{item_id}")
def _show(call: Call) -> Reply:
    collection = _collection(call)
    region = _region(call)
    obj = models.get(region, collection, call.params["item_id"])
    return Reply(200, {_KEY[collection]: _view(region, obj, call)})


@router.route("PUT", "/v2/lbaas/{collection}/{item_id}")
def _put(call: Call) -> Reply:
    collection = _collection(call)
    region = _region(call)
    obj = models.get(region, collection, call.params["item_id"])
    spec = call.json(_KEY[collection])
    if collection == "loadbalancers":
        models.update_lb(call.store, region, obj, spec)
    else:
        models.update_child(call.store, region, obj, spec)
    return Reply(200, {_KEY[collection]: _view(region, obj)})


@router.route("DELETE", "/v2/lbaas/{collection}/{item_id}")
def _delete(call: Call) -> Reply:
    collection = _collection(call)
    region = _region(call)
    obj = models.get(region, collection, call.params["item_id"])
    if collection == "loadbalancers":
        cascade = (call.arg("cascade") or "false").lower() in ("true", "1", "yes", "on")
        models.delete_lb(call.store, region, obj, cascade)
    else:
        models.delete_child(call.store, region, obj)
    return Reply(204)
