"""Swift's tempurl middleware, as strict as Swift's: a request that carries
``temp_url_sig`` or ``temp_url_expires`` needs no token, and is refused with 401
unless its signature holds.

* The signature is ``HMAC(key, "<METHOD>\\n<expires>\\n<path>")`` with SHA-1, SHA-256
  or SHA-512, written in hex (its length names the digest) or as
  ``<digest>:<base64>``; ``path`` is the object's path from ``/v1/`` (with
  ``temp_url_prefix``: ``prefix:/v1/AUTH_<p>/<container>/<prefix>``, and the object's
  name must start with the prefix).
* ``temp_url_expires`` is a Unix time or ISO 8601 (``2026-12-04T22:00:00Z``); one in
  the past, or not a time, is refused.
* The keys are the account's ``X-Account-Meta-Temp-URL-Key`` and ``-Key-2`` and the
  container's ``X-Container-Meta-Temp-URL-Key`` and ``-Key-2``: a signature made with
  any of them holds.
* Only an object's path: an account or container is never reached by a temp URL.
* A signature is for one method: a ``HEAD`` is let through by a signature for
  ``HEAD``, ``GET`` or ``PUT``; any other method needs its own.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from werkzeug.wrappers import Request

from .core import ApiError

DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
_HEX = {40: "sha1", 64: "sha256", 128: "sha512"}
METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
_KEYS = ("temp-url-key", "temp-url-key-2")


def carries(request: Request) -> bool:
    """Whether the request is a temp URL's (then it needs no token)."""
    return "temp_url_sig" in request.args or "temp_url_expires" in request.args


def _invalid() -> ApiError:
    return ApiError(401, "401 Unauthorized: Temp URL invalid\n",
                    {"Www-Authenticate": 'Swift realm="unknown"'})


def _expires(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None


def _signature(text: str) -> tuple[str, bytes] | None:
    """(digest, raw signature) of ``temp_url_sig`` (None: not one Swift reads)."""
    if ":" in text:
        name, _, encoded = text.partition(":")
        if name not in DIGESTS:
            return None
        try:
            return name, base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            return None
    hex_name = _HEX.get(len(text))
    if hex_name is None:
        return None
    try:
        return hex_name, bytes.fromhex(text)
    except ValueError:
        return None


def sign(key: str, method: str, expires: int, path: str, digest: str = "sha256") -> str:
    """The hex signature of a temp URL (what a client computes)."""
    body = f"{method}\n{expires}\n{path}".encode()
    return hmac.new(key.encode(), body, DIGESTS[digest]).hexdigest()


def check(request: Request, path: str, account_meta: Mapping[str, str],
          container_meta: Mapping[str, str] | None) -> None:
    """Refuse (401) a temp URL request for ``path`` (``/AUTH_<p>/<c>/<o>``, below
    ``/v1``) whose signature does not hold; return when it does."""
    parts = path.lstrip("/").split("/", 2)
    if len(parts) < 3 or not parts[2] or request.method not in METHODS:
        raise _invalid()
    sig_text = request.args.get("temp_url_sig") or ""
    expires = _expires(request.args.get("temp_url_expires") or "")
    found = _signature(sig_text)
    if not sig_text or expires is None or found is None or expires < time.time():
        raise _invalid()
    digest, sig = found
    prefix = request.args.get("temp_url_prefix")
    if prefix is not None:
        if not parts[2].startswith(prefix):
            raise _invalid()
        signed_path = f"prefix:/v1/{parts[0]}/{parts[1]}/{prefix}"
    else:
        signed_path = "/v1/" + "/".join(parts)
    methods = ("HEAD", "GET", "PUT") if request.method == "HEAD" else (request.method,)
    keys = _keys(account_meta, container_meta or {})
    for key in keys:
        for method in methods:
            body = f"{method}\n{expires}\n{signed_path}".encode()
            if hmac.compare_digest(hmac.new(key.encode(), body, DIGESTS[digest]).digest(), sig):
                return
    raise _invalid()


def _keys(*metas: Mapping[str, str]) -> Iterable[str]:
    return [m[k] for m in metas for k in _KEYS if m.get(k)]
