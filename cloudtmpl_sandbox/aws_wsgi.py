"""WSGI plumbing of the AWS sandbox: run an app to completion, answer, rewrite a request.

The compatibility layer (:mod:`cloudtmpl_sandbox.aws`) calls moto's app in-process
and rewrites what goes in and comes out; these are the pieces it does that with.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlencode

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def encode(pairs: list[tuple[str, str]]) -> str:
    return urlencode(pairs, quote_via=quote, safe="-_.~")


def param(pairs: list[tuple[str, str]], key: str) -> str | None:
    for k, v in pairs:
        if k == key:
            return v
    return None


def read_body(environ: Environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def dummy_sigv4(service: str, region: str, access_key: str) -> str:
    day = time.strftime("%Y%m%d", time.gmtime())
    return (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{day}/{region}/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )


def set_query(environ: Environ, qs: str) -> None:
    environ["QUERY_STRING"] = qs
    path = environ.get("PATH_INFO", "/")
    for key in ("RAW_URI", "REQUEST_URI"):
        if key in environ:
            environ[key] = path + ("?" + qs if qs else "")


def set_path(environ: Environ, path: str) -> None:
    environ["PATH_INFO"] = path
    qs = environ.get("QUERY_STRING", "")
    for key in ("RAW_URI", "REQUEST_URI"):
        if key in environ:
            environ[key] = path + ("?" + qs if qs else "")


def call_app(app: WSGIApp, environ: Environ) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run a WSGI app to completion and return (status, headers, body)."""
    captured: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = status
        captured["headers"] = headers
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return captured["status"], list(captured["headers"]), b"".join(chunks)


def respond(
    start_response: StartResponse, status: str, headers: list[tuple[str, str]], body: bytes
) -> list[bytes]:
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    headers.append(("Content-Length", str(len(body))))
    start_response(status, headers)
    return [body]


def json_reply(start_response: StartResponse, data: Any, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(data).encode("utf-8")
    return respond(start_response, status, [("Content-Type", "application/json")], body)
