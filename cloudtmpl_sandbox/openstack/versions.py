"""Version discovery and microversions, as each service answers them.

The clients (keystoneauth, openstacksdk, python-openstackclient) find a service's API
by fetching the catalog URL (or its unversioned root) without a token and reading the
version document there; a service that answers 401 or 404 "exists but does not have
any supported versions".  The answers need no token, as the real services', but for
the two versioned roots behind Keystone's middleware in theirs:

==============================  ==========================================================
Nova ``/compute/{r}/``          200 ``{"versions": [v2.0 SUPPORTED, v2.1 CURRENT]}``
Nova ``/compute/{r}/v2.1``      200 ``{"version": {"id": "v2.1", "min_version": "2.1",
                                "version": "2.45", ...}}``
Glance ``/image/{r}/``          300 ``{"versions": [v2.0 … v2.9]}`` (``/versions``: 200)
Neutron ``/network/{r}/``       200 ``{"versions": [{"id": "v2.0", "status": "CURRENT"}]}``
Neutron ``/network/{r}/v2.0``   200 ``{"resources": [...]}`` (with a token)
Cinder ``/volume/{r}/``         300 ``{"versions": [v3.0 CURRENT]}``
Cinder ``/volume/{r}/v3``       200 the same list (with a token)
==============================  ==========================================================

Microversions: Nova's range is :data:`COMPUTE` (2.1 to 2.45), Cinder's :data:`VOLUME`
(3.0 to 3.43, read by :mod:`.volume_responses`).  A request names one in
``OpenStack-API-Version: compute 2.x`` (or ``X-OpenStack-Nova-API-Version: 2.x``);
``latest`` is the maximum; a malformed one is a 400 and one outside the range a 406,
with Nova's messages.  The answers name the
version they were made for in the same headers.  What changes with the Nova
microversion is in :mod:`.compute_responses` and :mod:`.compute_models`: key pairs
201/204 (2.2), ``locked`` (2.9), ``description`` (2.19), tags (2.26), the
network-proxy quotas and limits dropped (2.36), ``networks`` required on create
(2.37), ``createImage`` answering ``image_id`` instead of ``Location`` (2.45).
"""

from __future__ import annotations

from typing import Any

from .core import JSON, ApiError, Reply, fault

Version = tuple[int, int]
COMPUTE: tuple[Version, Version] = ((2, 1), (2, 45))
VOLUME: tuple[Version, Version] = ((3, 0), (3, 43))
_GLANCE = ("2.9", "2.8", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0")
_NEUTRON_RESOURCES = ("subnet", "network", "port", "security-group", "security-group-rule",
                      "floatingip")


def _text(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


def _compute_version(root: str, current: bool = True) -> JSON:
    low, high = COMPUTE
    return {
        "id": "v2.1",
        "status": "CURRENT" if current else "SUPPORTED",
        "version": _text(high),
        "min_version": _text(low),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{root}/v2.1/"},
                  {"rel": "describedby", "type": "text/html",
                   "href": "http://docs.openstack.org/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.compute+json;version=2.1"}],
    }


def _volume_versions(root: str) -> JSON:
    low, high = VOLUME
    return {"versions": [{
        "id": "v3.0",
        "status": "CURRENT",
        "version": _text(high),
        "min_version": _text(low),
        "updated": "2016-02-08T12:20:21Z",
        "links": [{"rel": "describedby", "type": "text/html",
                   "href": "https://docs.openstack.org/"},
                  {"rel": "self", "href": f"{root}/v3/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.volume+json;version=3"}],
    }]}


def _glance_versions(root: str) -> JSON:
    return {"versions": [
        {"id": f"v{v}", "status": "CURRENT" if i == 0 else "SUPPORTED",
         "links": [{"rel": "self", "href": f"{root}/v2/"}]}
        for i, v in enumerate(_GLANCE)
    ]}


def document(service: str, root: str, rest: str, method: str,
             authenticated: bool = False) -> Reply | None:
    """The version answer for ``rest`` (the path below ``{service}/{region}``, with its
    leading slash) at ``root`` (the absolute URL of ``{service}/{region}``), or None
    when ``rest`` is not a version path of ``service``.  Neutron's ``/v2.0`` and
    Cinder's ``/v3`` sit behind Keystone's middleware (a token needed, as in their
    paste pipelines): only ``authenticated`` asks for them."""
    path = rest.rstrip("/")
    if method != "GET":
        return None
    if (service, path) in (("network", "/v2.0"), ("volume", "/v3")) and not authenticated:
        return None
    if service == "compute":
        if path == "":
            v20 = {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
                   "updated": "2011-01-21T11:33:21Z",
                   "links": [{"rel": "self", "href": f"{root}/v2/"}]}
            return Reply(200, {"versions": [v20, _compute_version(root)]})
        if path == "/v2.1":
            return Reply(200, {"version": _compute_version(root)})
    elif service == "image":
        if path == "":
            return Reply(300, _glance_versions(root))
        if path == "/versions":
            return Reply(200, _glance_versions(root))
    elif service == "network":
        if path == "":
            return Reply(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
                {"rel": "self", "href": f"{root}/v2.0/"}]}]})
        if path == "/v2.0":
            return Reply(200, {"resources": [
                {"name": name, "collection": name.replace("-", "_") + "s",
                 "links": [{"rel": "self", "href": f"{root}/v2.0/{name}s"}]}
                for name in _NEUTRON_RESOURCES]})
    elif service == "volume":
        if path == "":
            return Reply(300, _volume_versions(root))
        if path == "/v3":
            return Reply(200, _volume_versions(root))
    return None


def _parse(value: str, service: str, bounds: tuple[Version, Version]) -> Version:
    low, high = bounds
    value = value.strip()
    if value == "latest":
        return high
    major, _, minor = value.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise _bad_version(service, f"Invalid API version request string {value!r}: must be "
                           "of the form 'X.Y' or 'latest'.", 400)
    asked = (int(major), int(minor))
    if not low <= asked <= high:
        raise _bad_version(service, f"Version {value} is not supported by the API. Minimum "
                           f"is {_text(low)} and maximum is {_text(high)}.", 406)
    return asked


def _bad_version(service: str, message: str, status: int) -> ApiError:
    if status == 406:
        return ApiError(406, {"computeFault": {"code": 406, "message": message}})
    return fault(400, message)


def _named(headers: dict[str, Any], service: str) -> str | None:
    """The version ``OpenStack-API-Version`` names for ``service`` (a comma-separated
    list of ``service version`` pairs), or None."""
    raw = str(headers.get("openstack-api-version") or "")
    for part in raw.split(","):
        name, _, value = part.strip().partition(" ")
        if name.lower() == service and value.strip():
            return value
    return None


def compute(headers: dict[str, Any]) -> Version:
    """The Nova microversion a request asks for (2.1 when none); 400/406 as Nova."""
    value = _named(headers, "compute") or headers.get("x-openstack-nova-api-version")
    return COMPUTE[0] if not value else _parse(str(value), "compute", COMPUTE)


def stamp(version: Version, reply: Reply) -> Reply:
    """Name the Nova microversion an answer was made for, in the headers Nova sends."""
    text = _text(version)
    reply.headers.setdefault("OpenStack-API-Version", f"compute {text}")
    reply.headers.setdefault("X-OpenStack-Nova-API-Version", text)
    reply.headers.setdefault("Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version")
    return reply
