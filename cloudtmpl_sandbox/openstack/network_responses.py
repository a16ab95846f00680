"""Neutron v2.0 on the wire: routes, lists, filters and ``fields``.

Lists take ``limit``/``marker`` (``<collection>_links`` next link, only when more
items remain, as Neutron does), attribute filters (``name``, ``network_id``,
``device_id``, ...), ``tags``/``tags-any`` and ``fields``.  Errors are
``{"NeutronError": {"type", "message", "detail"}}``.  The state changes and
refusals are the models' (:mod:`.network_models`, :mod:`.network_security`,
:mod:`.network_floating`, :mod:`.network_routers`; errors and tags
:mod:`.network_base`).  ``GET /v2.0/extensions`` lists the API extensions served
here (:data:`EXTENSIONS`), as clients such as python-openstackclient ask first.
"""

from __future__ import annotations

from . import network_base as base
from . import network_floating as floating
from . import network_models as models
from . import network_routers as routers
from . import network_security as security
from .core import JSON, Call, Reply, Router, dispatch, matches, page_reply, paginate
from .network_base import COLLECTIONS, bad, error
from .state import Region

router = Router()

_LIST_ARGS = {"limit", "marker", "fields", "sort_key", "sort_dir", "page_reverse"}
_LIST_ARGS |= {"tags", "tags-any", "not-tags", "not-tags-any"}


def _view(item: JSON, call: Call) -> JSON:
    fields = call.args.get("fields")
    return {k: v for k, v in item.items() if k in fields} if fields else dict(item)


def _tagged(item: JSON, call: Call) -> bool:
    tags = set(item.get("tags", []))
    checks = (
        ("tags", lambda w: w <= tags),
        ("tags-any", lambda w: bool(w & tags)),
        ("not-tags", lambda w: not w <= tags),
        ("not-tags-any", lambda w: not w & tags),
    )
    for arg, test in checks:
        raw = call.arg(arg)
        if raw and not test(set(raw.split(","))):
            return False
    return True


def list_items(call: Call, collection: str, items: list[JSON]) -> Reply:
    chosen = [i for i in items if matches(i, call.args, _LIST_ARGS) and _tagged(i, call)]
    page, next_qs = paginate(call, chosen, bad, full_page_links=False)
    return page_reply(call, collection.replace("-", "_"), [_view(i, call) for i in page],
                      f"v2.0/{collection}", next_qs)


def handle(call: Call) -> Reply:
    return dispatch(
        router, call, error(404, "HTTPNotFound", "The resource could not be found."), bad
    )


def _region(call: Call) -> Region:
    region: Region = call.store.regions[call.region]
    return region


def _hidden(item: JSON) -> bool:
    """A router's gateway port belongs to no project (Neutron hides it from the
    project's listings; this emulator's user is no admin)."""
    return item.get("project_id") == ""


def _item(call: Call, collection: str) -> JSON:
    item = base.get(_region(call), collection, call.params["item_id"])
    if _hidden(item):  # as if it did not exist
        raise base.not_found(collection, call.params["item_id"])
    return item


# ----------------------------------------------------------------------- extensions

_UPDATED = "2012-10-05T10:00:00-00:00"
EXTENSIONS = {  # alias -> (name, description): what this emulator serves
    "router": ("Neutron L3 Router", "Router abstraction for basic L3 forwarding between "
               "L2 Neutron networks and access to external networks via a NAT gateway."),
    "ext-gw-mode": ("Neutron L3 Configurable external gateway mode",
                    "Extension of the router abstraction for specifying whether SNAT "
                    "should occur on the external gateway"),
    "extraroute": ("Neutron Extra Route", "Extra routes configuration for L3 router"),
    "extraroute-atomic": ("Atomically add/remove extra routes",
                          "Edit extra routes of a router on server side by atomically "
                          "adding/removing extra routes"),
    "external-net": ("Neutron external network", "Adds external network attribute to "
                     "network resource."),
    "security-group": ("security-group", "The security groups extension."),
    "port-security": ("Port Security", "Provides port security"),
    "allowed-address-pairs": ("Allowed Address Pairs", "Provides allowed address pairs"),
    "standard-attr-tag": ("Tag support for resources with standard attribute: subnet, "
                          "trunk, network_segment_range, router, network, policy, "
                          "subnetpool, port, security_group, floatingip",
                          "Enables to set tag on resources with standard attribute."),
    "standard-attr-description": ("standard-attr-description",
                                  "Extension to add descriptions to standard attributes"),
    "standard-attr-timestamp": ("Resource timestamps", "Adds created_at and updated_at "
                                "fields to all Neutron resources that have Neutron "
                                "standard attributes."),
    "standard-attr-revisions": ("Resource revision numbers", "This extension will display "
                                "the revision number of neutron resources."),
    "fip-port-details": ("Floating IP Port Details Extension",
                         "Add port_details attribute to Floating IP resource"),
    "net-mtu": ("Network MTU", "Provides MTU attribute for a network resource."),
    "pagination": ("Pagination support", "Extension that indicates that pagination is "
                   "enabled."),
    "project-id": ("project_id field enabled", "Extension that indicates that project_id "
                   "field is enabled."),
}


def _extension(alias: str) -> JSON:
    name, description = EXTENSIONS[alias]
    return {"name": name, "alias": alias, "description": description, "updated": _UPDATED,
            "links": []}


@router.route("GET", "/v2.0/extensions")
def _extensions(call: Call) -> Reply:
    return Reply(200, {"extensions": [_view(_extension(a), call) for a in sorted(EXTENSIONS)]})


@router.route("GET", "/v2.0/extensions/{alias}")
def _show_extension(call: Call) -> Reply:
    alias = call.params["alias"]
    if alias not in EXTENSIONS:
        raise error(404, "HTTPNotFound", f"Extension with alias {alias} does not exist")
    return Reply(200, {"extension": _view(_extension(alias), call)})


# ------------------------------------------------------------------ any collection


@router.route("GET", "/v2.0/{collection}")
def _list(call: Call) -> Reply:
    collection = call.params["collection"]
    if collection not in COLLECTIONS:
        raise error(404, "HTTPNotFound", "The resource could not be found.")
    attr = COLLECTIONS[collection][0]
    items = [i for i in getattr(_region(call), attr).values() if not _hidden(i)]
    return list_items(call, collection, items)


@router.route("GET", "/v2.0/{collection}/{item_id}")
def _show(call: Call) -> Reply:
    collection = call.params["collection"]
    if collection not in COLLECTIONS:
        raise error(404, "HTTPNotFound", "The resource could not be found.")
    item = _item(call, collection)
    return Reply(200, {COLLECTIONS[collection][1]: _view(item, call)})


# ----------------------------------------------------------------------------- tags


@router.route("GET", "/v2.0/{collection}/{item_id}/tags")
def _tags(call: Call) -> Reply:
    return Reply(200, {"tags": _tag_target(call)["tags"]})


@router.route("PUT", "/v2.0/{collection}/{item_id}/tags")
def _replace_tags(call: Call) -> Reply:
    item = _tag_target(call)
    base.replace_tags(item, call.body.get("tags") if isinstance(call.body, dict) else None)
    return Reply(200, {"tags": item["tags"]})


@router.route("PUT", "/v2.0/{collection}/{item_id}/tags/{tag}")
def _add_tag(call: Call) -> Reply:
    base.add_tag(_tag_target(call), call.params["tag"])
    return Reply(201)


@router.route("DELETE", "/v2.0/{collection}/{item_id}/tags/{tag}")
def _remove_tag(call: Call) -> Reply:
    base.remove_tag(_tag_target(call), call.params["tag"])
    return Reply(204)


def _tag_target(call: Call) -> JSON:
    collection = call.params["collection"]
    if collection not in COLLECTIONS or collection == "security-group-rules":
        raise error(404, "HTTPNotFound", "The resource could not be found.")
    return _item(call, collection)


# ------------------------------------------------------------------------- networks


@router.route("POST", "/v2.0/networks")
def _post_network(call: Call) -> Reply:
    spec = call.json("network")
    return Reply(201, {"network": models.create_network(_region(call), spec)})


@router.route("PUT", "/v2.0/networks/{item_id}")
def _put_network(call: Call) -> Reply:
    net = _item(call, "networks")
    models.update_network(net, call.json("network"))
    return Reply(200, {"network": net})


@router.route("DELETE", "/v2.0/networks/{item_id}")
def _delete_network(call: Call) -> Reply:
    models.delete_network(_region(call), _item(call, "networks"))
    return Reply(204)


# -------------------------------------------------------------------------- subnets


@router.route("POST", "/v2.0/subnets")
def _post_subnet(call: Call) -> Reply:
    spec = call.json("subnet")
    if "cidr" not in spec or "network_id" not in spec:
        raise bad(
            "Failed to parse request. Required attribute 'cidr' and 'network_id' not specified"
        )
    return Reply(201, {"subnet": models.create_subnet(_region(call), spec)})


@router.route("PUT", "/v2.0/subnets/{item_id}")
def _put_subnet(call: Call) -> Reply:
    sub = _item(call, "subnets")
    models.update_subnet(sub, call.json("subnet"))
    return Reply(200, {"subnet": sub})


@router.route("DELETE", "/v2.0/subnets/{item_id}")
def _delete_subnet(call: Call) -> Reply:
    models.delete_subnet(_region(call), _item(call, "subnets"))
    return Reply(204)


# ---------------------------------------------------------------------------- ports


@router.route("POST", "/v2.0/ports")
def _post_port(call: Call) -> Reply:
    spec = call.json("port")
    if "network_id" not in spec:
        raise bad("Failed to parse request. Required attribute 'network_id' not specified")
    return Reply(201, {"port": models.create_port(_region(call), spec)})


@router.route("PUT", "/v2.0/ports/{item_id}")
def _put_port(call: Call) -> Reply:
    port = _item(call, "ports")
    models.update_port(_region(call), port, call.json("port"))
    return Reply(200, {"port": port})


@router.route("DELETE", "/v2.0/ports/{item_id}")
def _delete_port(call: Call) -> Reply:
    port = _item(call, "ports")
    models.refuse_service_port(_region(call), port)
    models.delete_port(_region(call), port)
    return Reply(204)


# -------------------------------------------------------------------- security groups


@router.route("POST", "/v2.0/security-groups")
def _post_group(call: Call) -> Reply:
    group = security.create_security_group(_region(call), call.json("security_group"))
    return Reply(201, {"security_group": group})


@router.route("PUT", "/v2.0/security-groups/{item_id}")
def _put_group(call: Call) -> Reply:
    group = _item(call, "security-groups")
    security.update_group(group, call.json("security_group"))
    return Reply(200, {"security_group": group})


@router.route("DELETE", "/v2.0/security-groups/{item_id}")
def _delete_group(call: Call) -> Reply:
    security.delete_group(_region(call), _item(call, "security-groups"))
    return Reply(204)


@router.route("POST", "/v2.0/security-group-rules")
def _post_rule(call: Call) -> Reply:
    region = _region(call)
    spec = call.json("security_group_rule")
    group = base.get(region, "security-groups", str(spec.get("security_group_id", "")))
    return Reply(201, {"security_group_rule": security.add_rule(region, group, spec)})


@router.route("DELETE", "/v2.0/security-group-rules/{item_id}")
def _delete_rule(call: Call) -> Reply:
    security.delete_rule(_region(call), _item(call, "security-group-rules"))
    return Reply(204)


# ---------------------------------------------------------------------- floating IPs


@router.route("POST", "/v2.0/floatingips")
def _post_fip(call: Call) -> Reply:
    region = _region(call)
    fip = floating.create_floatingip(call.store, region, call.json("floatingip"))
    return Reply(201, {"floatingip": fip})


@router.route("PUT", "/v2.0/floatingips/{item_id}")
def _put_fip(call: Call) -> Reply:
    fip = _item(call, "floatingips")
    floating.update_floatingip(call.store, _region(call), fip, call.json("floatingip"))
    return Reply(200, {"floatingip": fip})


@router.route("DELETE", "/v2.0/floatingips/{item_id}")
def _delete_fip(call: Call) -> Reply:
    floating.delete_floatingip(call.store, _region(call), _item(call, "floatingips"))
    return Reply(204)


# --------------------------------------------------------------------------- routers


@router.route("POST", "/v2.0/routers")
def _post_router(call: Call) -> Reply:
    return Reply(201, {"router": routers.create_router(_region(call), call.json("router"))})


@router.route("PUT", "/v2.0/routers/{item_id}")
def _put_router(call: Call) -> Reply:
    found = _item(call, "routers")
    routers.update_router(_region(call), found, call.json("router"))
    return Reply(200, {"router": found})


@router.route("DELETE", "/v2.0/routers/{item_id}")
def _delete_router(call: Call) -> Reply:
    routers.delete_router(_region(call), _item(call, "routers"))
    return Reply(204)


@router.route("PUT", "/v2.0/routers/{item_id}/add_router_interface")
def _add_interface(call: Call) -> Reply:
    found = _item(call, "routers")
    return Reply(200, routers.add_interface(_region(call), found, call.body))


@router.route("PUT", "/v2.0/routers/{item_id}/remove_router_interface")
def _remove_interface(call: Call) -> Reply:
    found = _item(call, "routers")
    return Reply(200, routers.remove_interface(_region(call), found, call.body))


@router.route("PUT", "/v2.0/routers/{item_id}/add_extraroutes")
def _add_routes(call: Call) -> Reply:
    found = _item(call, "routers")
    routers.add_extraroutes(_region(call), found, call.json("router"))
    return Reply(200, {"router": found})


@router.route("PUT", "/v2.0/routers/{item_id}/remove_extraroutes")
def _remove_routes(call: Call) -> Reply:
    found = _item(call, "routers")
    routers.remove_extraroutes(_region(call), found, call.json("router"))
    return Reply(200, {"router": found})
