"""Swift (object-store v1), minimal: containers and objects of the one project.

``/object-store/{region}/v1/AUTH_{project}``:

* ``GET`` account: containers (``limit``, ``marker``, ``prefix``; as JSON - name, count,
  bytes - with ``format=json`` or ``Accept: application/json``, an empty list ``[]``;
  else the names one a line, 204 when there is none), ``HEAD`` account: counts;
* ``PUT`` container (201, or 202 if it exists; ``X-Container-Meta-*`` and
  ``X-Versions-Enabled`` headers are kept), ``POST`` container (204, metadata:
  set, ``X-Remove-Container-Meta-*`` removes), ``HEAD`` container (204 with
  ``X-Container-Object-Count``, ``X-Container-Bytes-Used``, metadata), ``GET``
  container (objects, in the same formats; as JSON: name, bytes, hash, content_type,
  last_modified),
  ``DELETE`` container (204; 409 while it holds objects; 404);
* ``PUT``/``GET``/``HEAD``/``DELETE`` object: the bytes are kept as sent and answered
  as they are, with ``Content-Length``, ``Etag`` (MD5), ``Content-Type`` (as sent, else
  guessed from the name, else ``application/octet-stream``), ``Last-Modified`` and the
  ``X-Object-Meta-*`` headers, on ``GET`` and ``HEAD`` alike; a ``PUT`` whose ``Etag``
  header is not the MD5 of its body is refused (422), as Swift refuses it.
* ``POST`` account: ``X-Account-Meta-*`` (``X-Remove-Account-Meta-*`` removes), answered
  by ``HEAD``/``GET`` account;
* object versioning (``X-Versions-Enabled: true`` on the container, Swift's
  ``object_versioning``): every ``PUT`` of an object keeps the one before as a version;
  ``GET container?versions`` lists every version (``version_id``, ``is_latest``; the
  newest of a name first), ``GET``/``HEAD``/``DELETE object?version-id=`` reach one; a
  ``DELETE`` without one writes a delete marker (the versions stay); a container that
  still holds versions is not deleted (409);
* temp URLs (:mod:`.tempurl`): a request with ``temp_url_sig``/``temp_url_expires``
  is let through without a token only when its signature holds (else 401).

Metadata names are case-insensitive in Swift (HTTP headers): they are kept and
returned lower-case.  State is per region and starts empty after ``/_sandbox/reset``.
"""

from __future__ import annotations

import email.utils
import hashlib
import mimetypes
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request

from . import tempurl
from .core import ApiError, Reply, iso

_META = "X-Container-Meta-"
_REMOVE = "X-Remove-Container-Meta-"
_OBJ_META = "X-Object-Meta-"


@dataclass
class _Object:
    data: bytes  # the bytes as uploaded: answered as they are, never re-encoded
    content_type: str
    modified: float
    etag: str  # MD5 of data, hex
    meta: dict[str, str] = field(default_factory=dict)  # X-Object-Meta-*, lower-case


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


_DELETED = "application/x-deleted;swift_versions_deleted=1"  # a delete marker's type


@dataclass
class _Container:
    meta: dict[str, str] = field(default_factory=dict)
    versions: bool = False
    objects: dict[str, _Object] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    # object name -> its versions, oldest first: (version id, the object; None: a
    # delete marker); kept while versioning is on
    history: dict[str, list[tuple[str, _Object | None]]] = field(default_factory=dict)


_LOCK = threading.Lock()
# id(region state object) -> (that object, containers, account metadata): a store
# reset makes new region objects, so Swift starts empty again without a hook in the store
_STATE: dict[int, tuple[Any, dict[str, _Container], dict[str, str]]] = {}
_SEQ = [0]  # makes version ids unique within one clock tick


def _account(store: Any, region: str) -> tuple[dict[str, _Container], dict[str, str]]:
    owner = store.regions[region]
    with _LOCK:
        found = _STATE.get(id(owner))
        if found is None or found[0] is not owner:
            found = _STATE[id(owner)] = (owner, {}, {})
        return found[1], found[2]


def _containers(store: Any, region: str) -> dict[str, _Container]:
    return _account(store, region)[0]


def _version_id() -> str:
    _SEQ[0] += 1
    return f"{time.time():.5f}{_SEQ[0] % 100000:05d}"


def _error(status: int, text: str) -> ApiError:
    return ApiError(status, f"<html><h1>{text}</h1></html>")


def _meta_headers(c: _Container) -> dict[str, str]:
    out = {f"{_META}{k}": v for k, v in sorted(c.meta.items())}
    out["X-Container-Object-Count"] = str(len(c.objects))
    out["X-Container-Bytes-Used"] = str(sum(len(o.data) for o in c.objects.values()))
    out["X-Versions-Enabled"] = "True" if c.versions else "False"
    out["X-Timestamp"] = f"{c.created:.5f}"
    return out


def _apply_headers(c: _Container, request: Request) -> None:
    for name, value in request.headers.items():
        lower = name.lower()
        if lower.startswith(_META.lower()):
            key = lower[len(_META):]
            if value == "":
                c.meta.pop(key, None)
            else:
                c.meta[key] = value
        elif lower.startswith(_REMOVE.lower()):
            c.meta.pop(lower[len(_REMOVE):], None)
        elif lower == "x-versions-enabled":
            c.versions = value.strip().lower() in ("true", "1", "yes", "on")


def _page(names: list[str], request: Request) -> list[str]:
    prefix = request.args.get("prefix") or ""
    marker = request.args.get("marker") or ""
    try:
        limit = int(request.args.get("limit") or 10000)
    except ValueError:
        raise _error(412, "Precondition Failed: bad limit") from None
    out = [n for n in sorted(names) if n.startswith(prefix) and n > marker]
    return out[: max(0, min(limit, 10000))]


def _listing(request: Request, listing: list[dict[str, Any]], headers: dict[str, str]) -> Reply:
    """A listing as Swift answers it: JSON (``format=json`` or ``Accept:
    application/json``; an empty one is ``[]``, 200), else the names one a line (an
    empty one: 204)."""
    fmt = (request.args.get("format") or "").lower()
    if fmt == "json" or (not fmt and "application/json" in request.headers.get("Accept", "")):
        return Reply(200, listing, headers)
    if not listing:
        return Reply(204, None, headers)
    return Reply(200, "".join(f"{item['name']}\n" for item in listing), headers)


def handle(store: Any, request: Request, region: str, path: str) -> Reply:
    """``path``: below ``/v1``, i.e. ``/AUTH_{project}[/container[/object]]``."""
    parts = path.lstrip("/").split("/", 2)
    if not parts or not parts[0].startswith("AUTH_"):
        raise _error(404, "Not Found")
    containers, account_meta = _account(store, region)
    method = request.method
    if tempurl.carries(request):
        with _LOCK:
            c = containers.get(parts[1]) if len(parts) > 1 else None
            tempurl.check(request, path, dict(account_meta), dict(c.meta) if c else None)
    if len(parts) == 1 or parts[1] == "":
        with _LOCK:
            if method == "POST":
                for key, value in request.headers.items():
                    lower = key.lower()
                    if lower.startswith("x-account-meta-"):
                        if value:
                            account_meta[lower[len("x-account-meta-"):]] = value
                        else:
                            account_meta.pop(lower[len("x-account-meta-"):], None)
                    elif lower.startswith("x-remove-account-meta-"):
                        account_meta.pop(lower[len("x-remove-account-meta-"):], None)
                return Reply(204, None)
            names = _page(list(containers), request)
            listing = [{"name": n, "count": len(containers[n].objects),
                        "bytes": sum(len(o.data) for o in containers[n].objects.values()),
                        "last_modified": iso(containers[n].created)} for n in names]
            headers = {"X-Account-Container-Count": str(len(containers)),
                       **{f"X-Account-Meta-{k}": v for k, v in sorted(account_meta.items())}}
        if method == "HEAD":
            return Reply(204, None, headers)
        if method == "GET":
            return _listing(request, listing, headers)
        raise _error(405, "Method Not Allowed")
    name = parts[1]
    if len(name) > 256 or "/" in name:
        raise _error(400, "Bad Request: container name")
    if len(parts) == 2 or parts[2] == "":
        return _container(containers, name, request)
    return _object(containers, name, parts[2], request)


def _container(containers: dict[str, _Container], name: str, request: Request) -> Reply:
    method = request.method
    with _LOCK:
        c = containers.get(name)
        if method == "PUT":
            status = 202 if c is not None else 201
            if c is None:
                c = containers[name] = _Container()
            _apply_headers(c, request)
            return Reply(status, None)
        if c is None:
            raise _error(404, "Not Found")
        if method == "POST":
            _apply_headers(c, request)
            return Reply(204, None)
        if method == "HEAD":
            return Reply(204, None, _meta_headers(c))
        if method == "GET" and "versions" in request.args:
            return _listing(request, _versions_listing(c, request), _meta_headers(c))
        if method == "GET":
            names = _page(list(c.objects), request)
            listing = [{"name": n, "bytes": len(c.objects[n].data),
                        "hash": c.objects[n].etag,
                        "content_type": c.objects[n].content_type,
                        "last_modified": iso(c.objects[n].modified)} for n in names]
            return _listing(request, listing, _meta_headers(c))
        if method == "DELETE":
            if c.objects or any(c.history.values()):
                raise _error(409, "Conflict: There was a conflict when trying to complete "
                             "your request.")
            del containers[name]
            return Reply(204, None)
    raise _error(405, "Method Not Allowed")


def _versions_listing(c: _Container, request: Request) -> list[dict[str, Any]]:
    """``GET container?versions``: every version of every name, the newest first."""
    out: list[dict[str, Any]] = []
    for name in _page(list(set(c.history) | set(c.objects)), request):
        kept = c.history.get(name) or []
        if not kept and name in c.objects:  # written while versioning was off
            kept = [("null", c.objects[name])]
        for i, (vid, obj) in reversed(list(enumerate(kept))):
            entry: dict[str, Any] = {"name": name, "version_id": vid,
                                     "is_latest": i == len(kept) - 1}
            if obj is None:
                entry.update(bytes=0, hash="", content_type=_DELETED, last_modified="")
            else:
                entry.update(bytes=len(obj.data), hash=obj.etag,
                             content_type=obj.content_type, last_modified=iso(obj.modified))
            out.append(entry)
    return out


def _version(c: _Container, oname: str, vid: str) -> _Object:
    for found, obj in c.history.get(oname) or []:
        if found == vid and obj is not None:
            return obj
    if vid == "null" and oname in c.objects and not c.history.get(oname):
        return c.objects[oname]
    raise _error(404, "Not Found")


def _drop_version(c: _Container, oname: str, vid: str) -> None:
    kept = c.history.get(oname) or []
    left = [(v, o) for v, o in kept if v != vid]
    if len(left) == len(kept):
        if vid == "null" and oname in c.objects and not kept:
            del c.objects[oname]
            return
        raise _error(404, "Not Found")
    c.history[oname] = left
    if not left:
        del c.history[oname]
    latest = left[-1][1] if left else None
    if latest is None:
        c.objects.pop(oname, None)
    else:
        c.objects[oname] = latest


def _object(containers: dict[str, _Container], cname: str, oname: str,
            request: Request) -> Reply:
    method = request.method
    vid = request.args.get("version-id")
    with _LOCK:
        c = containers.get(cname)
        if c is None:
            raise _error(404, "Not Found")
        if method == "PUT":
            data = request.get_data()
            etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
            wanted = (request.headers.get("Etag") or "").strip('"').lower()
            if wanted and wanted != etag:
                raise _error(422, "Unprocessable Entity")
            kind = request.headers.get("Content-Type") or \
                mimetypes.guess_type(oname)[0] or "application/octet-stream"
            meta = {k[len(_OBJ_META):].lower(): v for k, v in request.headers.items()
                    if k.lower().startswith(_OBJ_META.lower())}
            stored = c.objects[oname] = _Object(data, kind, time.time(), etag, meta)
            headers = {"Etag": etag, "Content-Length": "0",
                       "Last-Modified": _http_date(stored.modified)}
            if c.versions:
                new_id = _version_id()
                c.history.setdefault(oname, []).append((new_id, stored))
                headers["X-Object-Version-Id"] = new_id
            return Reply(201, None, headers)
        if vid is not None and method == "DELETE":
            _drop_version(c, oname, vid)
            return Reply(204, None)
        obj = _version(c, oname, vid) if vid is not None else c.objects.get(oname)
        if obj is None:
            raise _error(404, "Not Found")
        if method == "DELETE":
            del c.objects[oname]
            if c.versions:
                c.history.setdefault(oname, []).append((_version_id(), None))
            return Reply(204, None)
        if method in ("GET", "HEAD"):
            headers = {"Content-Length": str(len(obj.data)), "Content-Type": obj.content_type,
                       "Etag": obj.etag, "Last-Modified": _http_date(obj.modified),
                       "X-Timestamp": f"{obj.modified:.5f}", "Accept-Ranges": "bytes",
                       **{f"{_OBJ_META}{k.title()}": v for k, v in sorted(obj.meta.items())}}
            return Reply(200, None if method == "HEAD" else obj.data, headers)
    raise _error(405, "Method Not Allowed")
