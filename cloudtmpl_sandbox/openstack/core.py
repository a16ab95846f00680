"""Shared plumbing: the HTTP error type, JSON answers, pagination, ids and clocks.

Each service module raises :class:`ApiError` with a ready-made body in its own
cloud's error format; :mod:`.app` turns it into a response.  Everything a handler
needs about the request (region, query, body, base URL) is in :class:`Call`.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

JSON = dict[str, Any]
Handler = Callable[["Call"], "Reply"]


class ApiError(Exception):
    """An HTTP error answer: status, JSON (or text) body, extra headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict → JSON, str → text/plain, bytes → as they are, None → empty
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One API request as the service handlers see it."""

    method: str
    path: str  # below the service's versioned root, e.g. "/servers/detail"
    args: dict[str, list[str]]  # query string, every value a list
    body: Any
    region: str
    root: str  # absolute URL of the service's versioned root (for links)
    project_id: str
    user_id: str
    store: Any = None  # the state.Store
    params: dict[str, str] = field(default_factory=dict)  # path parameters
    headers: dict[str, str] = field(default_factory=dict)  # request headers, names lowercase

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.args.get(name)
        return values[-1] if values else default

    def json(self, key: str) -> JSON:
        """``body[key]`` as a dict, or a 400 (service-specific, see ``bad``)."""
        obj = self.body.get(key) if isinstance(self.body, dict) else None
        if not isinstance(obj, dict):
            raise BadBody(f"Missing or invalid '{key}' in request body.")
        return obj


class BadBody(Exception):
    """A malformed request body; each service maps it to its own 400."""


class Router:
    """Tiny path router: ``@router.route("GET", "/servers/{id}")``."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$")

        def deco(fn: Handler) -> Handler:
            self._routes.append((method, regex, fn))
            return fn

        return deco

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """(handler, path params, path-exists-for-another-method)."""
        seen = False
        for m, regex, fn in self._routes:
            found = regex.match(path)
            if found:
                if m == method:
                    return fn, found.groupdict(), True
                seen = True
        return None, {}, seen


_FAULT_KEYS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    429: "overLimit",
    500: "computeFault",
    501: "notImplemented",
    503: "serviceUnavailable",
}


def fault(status: int, message: str, **extra: Any) -> ApiError:
    """Nova/Cinder error body: ``{"itemNotFound": {"code": 404, "message": ...}}``."""
    key = _FAULT_KEYS.get(status, "computeFault")
    return ApiError(status, {key: {"code": status, "message": message, **extra}})


def dispatch(
    router: Router, call: Call, not_found: ApiError, bad: Callable[[str], ApiError]
) -> Reply:
    """Route ``call`` and run its handler under the store lock."""
    handler, params, exists = router.match(call.method, call.path)
    if handler is None:
        if exists:
            raise fault(405, "The method is not allowed for this resource.")
        raise not_found
    call.params = params
    try:
        with call.store.lock:
            return handler(call)
    except BadBody as exc:
        raise bad(str(exc)) from None


# ------------------------------------------------------------------------- helpers


def new_id() -> str:
    return str(uuid.uuid4())


def stable_id(*parts: str) -> str:
    """A UUID that is the same in every run (seeded images, networks, ...)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "cloudtmpl-sandbox/" + "/".join(parts)))


def hex_id(*parts: str) -> str:
    """Keystone-style 32-hex id, stable per name."""
    return stable_id(*parts).replace("-", "")


def now() -> float:
    return time.time()


def iso(ts: float, micro: bool = False) -> str:
    when = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    if micro:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def int_arg(call: Call, name: str, error: Callable[[str], ApiError]) -> int | None:
    raw = call.arg(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise error(f"{name} param must be an integer") from None
    if value < 0:
        raise error(f"{name} param must be positive")
    return value


def paginate(
    call: Call,
    items: list[JSON],
    error: Callable[[str], ApiError],
    max_limit: int = 1000,
    full_page_links: bool = True,
) -> tuple[list[JSON], str | None]:
    """Apply ``limit``/``marker`` (marker = id of the last item seen).

    Returns the page and the query string of the next page, or None.  Nova,
    Cinder and Glance link a next page whenever a page is full
    (``full_page_links``); Neutron only when more items remain.
    """
    marker = call.arg("marker")
    if marker is not None:
        ids = [i["id"] for i in items]
        if marker not in ids:
            raise error(f"marker [{marker}] not found")
        items = items[ids.index(marker) + 1 :]
    requested = int_arg(call, "limit", error)
    limit = min(requested, max_limit) if requested is not None else max_limit
    page = items[:limit]
    more = len(items) > limit
    if page and (more or (full_page_links and len(page) == limit)):
        pairs = [(k, v) for k, vs in call.args.items() if k not in ("marker", "limit") for v in vs]
        pairs += [("limit", str(limit)), ("marker", page[-1]["id"])]
        return page, urlencode(pairs)
    return page, None


def page_reply(call: Call, key: str, views: list[JSON], path: str,
               next_qs: str | None) -> Reply:
    """``{key: views}``, with ``<key>_links`` to the next page at ``path`` (under the
    service root) when there is one: how Nova, Cinder and Neutron answer a list."""
    body: JSON = {key: views}
    if next_qs:
        body[f"{key}_links"] = [{"rel": "next", "href": f"{call.root}/{path}?{next_qs}"}]
    return Reply(200, body)


def matches(item: JSON, args: dict[str, list[str]], skip: Iterable[str]) -> bool:
    """Neutron-style attribute filters: every given key must match one value."""
    for key, wanted in args.items():
        if key in skip or key not in item:
            continue
        value = item[key]
        have = str(value).lower() if isinstance(value, bool) else str(value)
        if isinstance(value, list):
            if not set(wanted) & {str(v) for v in value}:
                return False
        elif have not in [w.lower() if isinstance(value, bool) else w for w in wanted]:
            return False
    return True
