"""Nova's server tags (microversion 2.26 on) on the wire: ``/servers/{id}/tags[/{tag}]``.

``GET``/``PUT`` (replace all)/``DELETE`` (all) the list, and ``GET`` (204 or 404)/``PUT``
(201 with ``Location``, 204 when already there)/``DELETE`` one tag.  At most 50 tags a
server, each 1 to 60 characters without ``/`` or ``,`` (400 otherwise, as Nova's
schema); before 2.26 every route is a 404.  The server's view shows ``tags`` from 2.26
(:mod:`.compute_responses`).
"""

from __future__ import annotations

from typing import Any

from . import compute_models as models
from . import versions
from .core import JSON, Call, Reply, Router, fault

router = Router()




def _tagged(call: Call) -> JSON:
    if versions.compute(call.headers) < (2, 26):
        raise fault(404, "The resource could not be found.")
    return models.get_server(call.store, call.store.regions[call.region], call.params["server_id"])


def _tag(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 60 or "/" in value \
            or "," in value:
        raise fault(400, f"Invalid input for field/attribute tags. Value: {value!r}.")
    return value


@router.route("GET", "/servers/{server_id}/tags")
def _tags(call: Call) -> Reply:
    return Reply(200, {"tags": list(_tagged(call)["tags"])})


@router.route("PUT", "/servers/{server_id}/tags")
def _replace_tags(call: Call) -> Reply:
    server = _tagged(call)
    tags = call.body.get("tags") if isinstance(call.body, dict) else None
    if not isinstance(tags, list):
        raise fault(400, "Invalid input for field/attribute tags.")
    wanted = list(dict.fromkeys(_tag(t) for t in tags))
    if len(wanted) > 50:
        raise fault(400, "The number of tags exceeded the per-server limit 50")
    server["tags"] = wanted
    return Reply(200, {"tags": list(wanted)})


@router.route("DELETE", "/servers/{server_id}/tags")
def _clear_tags(call: Call) -> Reply:
    _tagged(call)["tags"] = []
    return Reply(204)


@router.route("GET", "/servers/{server_id}/tags/{tag}")
def _has_tag(call: Call) -> Reply:
    if call.params["tag"] not in _tagged(call)["tags"]:
        raise fault(404, f"Tag '{call.params['tag']}' could not be found.")
    return Reply(204)


@router.route("PUT", "/servers/{server_id}/tags/{tag}")
def _add_tag(call: Call) -> Reply:
    server, tag = _tagged(call), _tag(call.params["tag"])
    if tag in server["tags"]:
        return Reply(204)
    if len(server["tags"]) >= 50:
        raise fault(400, "The number of tags exceeded the per-server limit 50")
    server["tags"].append(tag)
    return Reply(201, None, {"Location": f"{call.root}/servers/{server['id']}/tags/{tag}"})


@router.route("DELETE", "/servers/{server_id}/tags/{tag}")
def _remove_tag(call: Call) -> Reply:
    server = _tagged(call)
    if call.params["tag"] not in server["tags"]:
        raise fault(404, f"Tag '{call.params['tag']}' could not be found.")
    server["tags"].remove(call.params["tag"])
    return Reply(204)
