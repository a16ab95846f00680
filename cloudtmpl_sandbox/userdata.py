"""What a server's user data asks cloud-init to do, read as cloud-init reads it.

:func:`parse` turns the raw bytes (already base64-decoded) into a :class:`Plan`:

* gzip-compressed data is decompressed first (cloud-init's ``maybe_decompress``), and
  so is a gzip part of a multipart message;
* a MIME message (``Content-Type: multipart/mixed``, as Heat's ``OS::Heat::MultipartMime``
  renders it) is walked part by part; a part's type is its ``Content-Type``, or for
  ``text/plain`` and a message that is not MIME, guessed from how it starts, as
  cloud-init guesses it: ``#!`` a script, ``#cloud-config`` a cloud-config,
  ``#cloud-boothook`` a boot hook;
* ``text/x-shellscript`` parts (any interpreter: the ``#!`` line chooses) become the
  user scripts, named by their ``filename`` or ``part-NNN``, run once per instance in
  the order of their names (cloud-init's ``scripts-user``), with ``runcmd`` among them
  as the script named ``runcmd``;
* ``text/cloud-config`` parts are merged (a later part's top-level key replaces an
  earlier one's); of the modules, ``bootcmd`` (every boot), ``write_files`` and
  ``runcmd`` (once per instance) are run: a list item that is a string is a shell line,
  a list is one command, each word quoted (cloud-init's ``shellify``); every other
  module is ignored with a warning in the console log;
* ``write_files`` entries take ``path`` (required), ``content``, ``encoding``
  (``b64``/``base64``, ``gz``/``gzip``, ``gz+b64``/``gzip+base64``/..., else text),
  ``permissions`` (octal, default ``0644``), ``append`` and ``defer`` (written in the
  final stage, just before the scripts); ``owner`` is ignored: the sandbox's servers
  run as an unprivileged login user;
* anything else (``#include``, part handlers, Jinja templates, other types) is
  reported as cloud-init reports it (``Unhandled non-multipart ...``) and not run.

Pure values; :mod:`.boot` runs a plan.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.message
import gzip
import shlex
import zlib
from dataclasses import dataclass
from typing import Any

import yaml

RUN_MODULES = ("bootcmd", "write_files", "runcmd")
# keys of a cloud-config that are settings, not modules
_SETTINGS = frozenset({"merge_how", "merge_type", "_log"})
_STARTS = (
    ("#!", "text/x-shellscript"),
    ("#cloud-config-archive", "text/cloud-config-archive"),
    ("#cloud-config", "text/cloud-config"),
    ("#cloud-boothook", "text/cloud-boothook"),
    ("#include", "text/x-include-url"),
    ("#part-handler", "text/part-handler"),
    ("## template: jinja", "text/jinja2"),
)
_GZIP = b"\x1f\x8b"


@dataclass(frozen=True)
class WriteFile:
    path: str
    content: bytes
    permissions: int
    append: bool
    defer: bool


@dataclass(frozen=True)
class Plan:
    """What to run: scripts as (name, body); shell lines; files; console warnings."""

    scripts: tuple[tuple[str, bytes], ...] = ()  # per instance, sorted by name
    boothooks: tuple[bytes, ...] = ()  # every boot
    bootcmd: tuple[str, ...] = ()  # every boot
    write_files: tuple[WriteFile, ...] = ()  # per instance
    warnings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.scripts or self.boothooks or self.bootcmd or self.write_files)


def parse(raw: bytes | None) -> Plan:
    if not raw:
        return Plan()
    found = _Found()
    _part(found, _maybe_gunzip(raw), None, None)
    return found.plan()


class _Found:
    def __init__(self) -> None:
        self.scripts: dict[str, bytes] = {}
        self.boothooks: list[bytes] = []
        self.config: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.count = 0

    def name(self, filename: str | None) -> str:
        name = (filename or "").replace("/", "_").strip(". ")
        return name or f"part-{self.count:03d}"

    def plan(self) -> Plan:
        config, warnings = self.config, list(self.warnings)
        for key in config:
            if key not in RUN_MODULES and key not in _SETTINGS:
                warnings.append(f"cloud-config module '{key}' is not run in the sandbox: "
                                "ignored")
        scripts = dict(self.scripts)
        runcmd = _shellify(config.get("runcmd"), "runcmd", warnings)
        if runcmd:
            scripts["runcmd"] = ("#!/bin/sh\n" + "\n".join(runcmd) + "\n").encode()
        files = _write_files(config.get("write_files"), warnings)
        return Plan(
            scripts=tuple(sorted(scripts.items())),
            boothooks=tuple(self.boothooks),
            bootcmd=tuple(_shellify(config.get("bootcmd"), "bootcmd", warnings)),
            write_files=files,
            warnings=tuple(warnings),
        )


def _maybe_gunzip(data: bytes) -> bytes:
    if data.startswith(_GZIP):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return data
    return data


def _looks_mime(data: bytes) -> bool:
    head = data[:200].lower()
    return head.startswith((b"content-type:", b"mime-version:"))


def _part(found: _Found, data: bytes, ctype: str | None, filename: str | None) -> None:
    if ctype is None and _looks_mime(data):
        message = email.message_from_bytes(data)
        if message.is_multipart():
            for sub in message.walk():
                if sub.is_multipart():
                    continue
                payload = sub.get_payload(decode=True)
                body = payload if isinstance(payload, bytes) else b""
                _part(found, _maybe_gunzip(body), sub.get_content_type(),
                      sub.get_filename())
            return
        payload = message.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        ctype = message.get_content_type()
    found.count += 1  # parts are numbered in order, whatever their type
    if ctype in (None, "text/plain", "text/x-not-multipart"):
        text = data.lstrip()[:40].decode("utf-8", "replace").lower()
        ctype = next((t for start, t in _STARTS if text.startswith(start)), None)
        if ctype is None:
            preview = data[:60].decode("utf-8", "replace")
            found.warnings.append(f"Unhandled non-multipart (text/x-not-multipart) "
                                  f"userdata: {preview!r}...")
            return
    if ctype in ("application/x-gzip", "application/gzip"):
        found.count -= 1  # the part inside is the one counted
        _part(found, _maybe_gunzip(data), None, filename)
        return
    if ctype == "text/x-shellscript":
        found.scripts[found.name(filename)] = data
    elif ctype == "text/cloud-config":
        _merge_config(found, data)
    elif ctype == "text/cloud-boothook":
        body = data.split(b"\n", 1)[1] if data.startswith(b"#cloud-boothook") else data
        found.boothooks.append(body if body.startswith(b"#!") else b"#!/bin/sh\n" + body)
    else:
        found.warnings.append(f"Unhandled userdata part of type {ctype}: not run in the "
                              "sandbox")


def _merge_config(found: _Found, data: bytes) -> None:
    try:
        loaded = yaml.safe_load(data.decode("utf-8", "replace"))
    except yaml.YAMLError as exc:
        found.warnings.append(f"Failed loading yaml blob: {exc}".replace("\n", " "))
        return
    if loaded is None:
        return
    if not isinstance(loaded, dict):
        found.warnings.append("cloud-config is not a mapping: ignored")
        return
    found.config.update({str(k): v for k, v in loaded.items()})


def _shellify(items: Any, module: str, warnings: list[str]) -> list[str]:
    """cloud-init's shellify: a string is a line as it is, a list one quoted command."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list):
        warnings.append(f"{module}: expected a list, got {type(items).__name__}: ignored")
        return []
    lines = []
    for item in items:
        if isinstance(item, str):
            lines.append(item)
        elif isinstance(item, list):
            lines.append(" ".join(shlex.quote(str(word)) for word in item))
        else:
            warnings.append(f"{module}: unable to shellify type "
                            f"'{type(item).__name__}': ignored")
    return lines


def _decode(content: Any, encoding: str, warnings: list[str], path: str) -> bytes:
    raw = content if isinstance(content, bytes) else str(content).encode("utf-8")
    steps = {
        "b64": ["b64"], "base64": ["b64"],
        "gz": ["gz"], "gzip": ["gz"],
        "gz+b64": ["b64", "gz"], "gz+base64": ["b64", "gz"],
        "gzip+b64": ["b64", "gz"], "gzip+base64": ["b64", "gz"],
    }.get(encoding.lower())
    if steps is None:
        if encoding.lower() not in ("", "text/plain"):
            warnings.append(f"Unknown encoding type {encoding}, assuming text/plain")
        return raw
    try:
        for step in steps:
            raw = base64.b64decode(raw) if step == "b64" else gzip.decompress(raw)
    except (binascii.Error, ValueError, OSError, EOFError, zlib.error) as exc:
        warnings.append(f"write_files: cannot decode {path} as {encoding}: {exc}")
        return b""
    return raw


def _permissions(value: Any, warnings: list[str], path: str) -> int:
    if value is None:
        return 0o644
    try:
        mode = value if isinstance(value, int) else int(str(value), 8)
    except ValueError:
        warnings.append(f"write_files: undecodable permissions {value!r} for {path}, "
                        "assuming 0644")
        return 0o644
    return mode & 0o7777


def _write_files(entries: Any, warnings: list[str]) -> tuple[WriteFile, ...]:
    if entries is None:
        return ()
    if not isinstance(entries, list):
        warnings.append("write_files: expected a list: ignored")
        return ()
    out = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) \
                or not entry["path"].strip():
            warnings.append(f"No path provided to write for entry {entry!r}")
            continue
        path = entry["path"]
        out.append(WriteFile(
            path=path,
            content=_decode(entry.get("content", ""), str(entry.get("encoding") or ""),
                            warnings, path),
            permissions=_permissions(entry.get("permissions"), warnings, path),
            append=bool(entry.get("append", False)),
            defer=bool(entry.get("defer", False)),
        ))
    return tuple(out)
