"""Any libcloud compute driver (``type: libcloud`` targets) through libcloud's standard verbs.

Kinds (each target provides the subset its capabilities declare, see
:func:`cloudtmpl.capabilities.of`):

* ``Cloud::Compute::Server`` - ``list_nodes``/``create_node``/``destroy_node``;
  physical id: the node id;
* ``Cloud::Compute::KeyPair`` - ``list_key_pairs``/``import_key_pair_from_string``
  (or ``create_key_pair(name, public_key=…)``)/``delete_key_pair``; physical id: the name;
* ``Cloud::Block::Volume`` - ``list_volumes``/``create_volume``/``destroy_volume``;
* ``Cloud::Block::VolumeAttachment`` - ``attach_volume``/``detach_volume``; physical id
  ``"{volume_id}:{node_id}"``.

Identity.  Every object is named deterministically ``<stack>.<address>``; drivers
whose names forbid dots or capitals (DigitalOcean, Linode) get the same name
escaped reversibly (``[a-z0-9]`` kept, any other character ``-xx`` in hex), so the
stack prefix stays unambiguous.  Where the target has ``tags`` the ownership tags
go into the create call itself, in the form the driver's ``create_node`` accepts:
``ex_metadata`` (a map), ``ex_tags`` / DigitalOcean's ``ex_create_attr.tags``
(strings ``cloudtmpl:stack:<stack>``, ...), ``ex_tag`` (one string: the stack).
libcloud has no common verb to rewrite tags, so the spec hash is not read back:
plans compare with the last-applied spec recorded in the state.

Attachments are no cloud object either: which attachment (address) joins a volume
and a node is recorded in ``.cloudtmpl/libcloud/<target>.json`` in the project,
written before ``attach_volume``.  A lost record only makes the next plan show the
attachment as a create, which apply then adopts (the volume is already attached).

Regions.  On a driver with regions the region is a libcloud location id, sent as
``location`` to ``create_node``/``create_volume``; discovery lists once per kind
and keeps the objects whose location (``extra``) is the region (id or location
name).  Key pairs are global on these clouds: they are reported in the target's
default ``region`` only.  A driver without regions has one region (``global``
unless ``region:`` says otherwise).

Credentials come from the environment variables the target names (``key_env``,
``secret_env``; built-in defaults per driver, e.g. ``DIGITALOCEAN_ACCESS_TOKEN``) or
from a ``credentials_file`` (INI, section = target name or ``credentials_section``,
keys ``key``/``secret``) that must not be readable by group or others.  Errors name
the variable or file, never a value.

Threads: each thread gets its own driver (``threading.local``); every HTTP request
goes through one counting wrapper and every cloud call through
:class:`cloudtmpl.providers.retry.Retrier`.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import inspect
import json
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

# Imported here, not inside functions: importing in worker threads can deadlock
# on Python's module locks while other threads import the same modules.
from libcloud.compute.base import NodeAuthSSHKey, NodeImage, NodeSize

from cloudtmpl import capabilities
from cloudtmpl.config import driver_implements, libcloud_driver_class
from cloudtmpl.model import (
    TAG_RESOURCE,
    TAG_SPEC,
    TAG_STACK,
    LiveResource,
    Placement,
    Target,
    address_from_name,
    snapshot_name,
)
from cloudtmpl.providers.base import (
    ATTACHMENT,
    KEYPAIR,
    SERVER,
    VOLUME,
    Choice,
    CloudError,
    poll,
)
from cloudtmpl.providers.retry import DEFAULT_POLICY, Retrier, RetryPolicy, classify, limiter_for

T = TypeVar("T")


# Drivers whose names allow only lowercase letters, digits and '-' for some kinds
# (DigitalOcean volumes, Linode labels without '--'): names are escaped for them.
ESCAPED_NAMES = frozenset({"digitalocean", "linode"})
# Where drivers keep an object's location, and the node(s) a volume is attached to.
_REGION_KEYS = ("region_slug", "location", "region", "zone", "availability_zone",
                "datacenter")
_ATTACHED_KEYS = ("droplet_ids", "linode_id", "attached_to_instance", "attached_to",
                  "instance_id", "node_id", "server_id")
_GONE_NODE_STATES = frozenset({"terminated"})
_READY_VOLUME_STATES = frozenset({"available", "inuse", "unknown", ""})  # "": not reported
_UNSUPPORTED_SERVER_PROPS = ("security_groups", "availability_zone", "networks")


def escape_name(text: str) -> str:
    """``[a-z0-9]`` as is, every other character ``-`` plus two hex digits (reversible)."""
    return "".join(c if ("a" <= c <= "z" or "0" <= c <= "9") else
                   "".join(f"-{b:02x}" for b in c.encode()) for c in text)


def unescape_name(text: str) -> str | None:
    """The inverse of :func:`escape_name` (None: not an escaped name)."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "-":
            pair = text[i + 1:i + 3]
            if len(pair) != 2 or not re.fullmatch(r"[0-9a-f]{2}", pair):
                return None
            out.append(int(pair, 16))
            i += 3
        elif "a" <= c <= "z" or "0" <= c <= "9":
            out.extend(c.encode())
            i += 1
        else:
            return None
    try:
        return out.decode()
    except UnicodeDecodeError:
        return None


def _value_of(raw: Any) -> str | None:
    if isinstance(raw, Mapping):
        raw = raw.get("slug") or raw.get("id") or raw.get("name")
    if raw is None or raw == "":
        return None
    return str(raw)


def _params(fn: Any) -> Mapping[str, Any]:
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


def _tag_list(tags: Mapping[str, str]) -> list[str]:
    """Ownership tags as plain strings (``cloudtmpl:stack:web``): the characters most
    clouds allow in a tag (letters, digits, ``_``, ``-``, ``:``)."""
    return [f"{k}:{re.sub(r'[^A-Za-z0-9_:-]', '_', v)}" for k, v in tags.items()]


def _stack_of_tags(raw: Any) -> str | None:
    """The ``cloudtmpl:stack`` an object's tags name (None: none recorded)."""
    if isinstance(raw, Mapping):
        value = raw.get(TAG_STACK)
        return str(value) if value is not None else None
    if isinstance(raw, (list, tuple)):
        for tag in raw:
            if isinstance(tag, str) and tag.startswith(f"{TAG_STACK}:"):
                return tag[len(TAG_STACK) + 1:]
    if isinstance(raw, str) and raw.startswith(f"{TAG_STACK}:"):
        return raw[len(TAG_STACK) + 1:]
    return None


class GenericAdapter:
    """A ``type: libcloud`` target.  See the module docstring."""

    def __init__(
        self,
        target: Target,
        *,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry_policy: RetryPolicy | None = None,
        poll_max_interval: float = 3.0,
    ) -> None:
        self.target = target
        opts = target.options
        self.driver_id = str(opts.get("driver") or "")
        self._args = dict(opts.get("args") or {})
        self._kinds = capabilities.of(target).kinds
        self._tags = bool(opts.get("tags"))
        self._has_regions = bool(opts.get("has_regions"))
        self._escaped = self.driver_id in ESCAPED_NAMES
        self._environ = os.environ if environ is None else environ
        self._sleep = sleep
        self._clock = clock
        self._retrier = Retrier(retry_policy or DEFAULT_POLICY, sleep=sleep)
        self._limiter = limiter_for(opts, clock=clock, sleep=sleep)
        self._poll_max = poll_max_interval
        self._local = threading.local()
        self._lock = threading.Lock()
        self._count = 0
        self._cache: dict[tuple[str, str], Any] = {}
        self._cls: Any = None
        project = opts.get("project_dir")
        self._records = (Path(str(project)) / ".cloudtmpl" / "libcloud" / f"{target.name}.json"
                         if project else None)

    # ------------------------------------------------------------------ plumbing

    def request_count(self) -> int:
        with self._lock:
            return self._count

    def _counted(self) -> None:
        with self._lock:
            self._count += 1

    def _what(self) -> str:
        return f"target {self.target.name!r} (libcloud driver {self.driver_id})"

    def _secret(self, option: str) -> str | None:
        var = self.target.options.get(option)
        if not var:
            return None
        value = self._environ.get(str(var))
        if not value:
            raise CloudError(
                f"{self._what()}: environment variable {var} is not set "
                f"({option} in cloudtmpl.yaml names it; export it before running cloudtmpl)",
                permanent=True)
        return value

    def _file_credentials(self) -> tuple[str | None, str | None]:
        raw = self.target.options.get("credentials_file")
        if not raw:
            return None, None
        path = Path(str(raw)).expanduser()
        try:
            st = path.stat()
        except OSError as exc:
            raise CloudError(f"{self._what()}: cannot read credentials_file {path}: "
                             f"{exc.strerror}", permanent=True) from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CloudError(
                f"{self._what()}: credentials_file {path} is readable by others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run chmod 600 {path}", permanent=True)
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError) as exc:
            raise CloudError(f"{self._what()}: credentials_file {path} is not an INI file "
                             f"({type(exc).__name__})", permanent=True) from None
        section = str(self.target.options.get("credentials_section") or self.target.name)
        if not parser.has_section(section):
            raise CloudError(f"{self._what()}: credentials_file {path} has no section "
                             f"[{section}]", permanent=True)
        sec = parser[section]
        return (sec.get("key") or None), (sec.get("secret") or None)

    def _driver_class(self) -> Any:
        with self._lock:
            if self._cls is None:
                try:
                    self._cls = libcloud_driver_class(self.driver_id, self._args)
                except Exception as exc:
                    raise CloudError(f"{self._what()}: the driver cannot be loaded: {exc}",
                                     permanent=True) from None
            return self._cls

    def _driver(self, region: str = "") -> Any:
        drivers: dict[str, Any] | None = getattr(self._local, "drivers", None)
        if drivers is None:
            drivers = self._local.drivers = {}
        key = region if self._region_in_constructor() else ""
        driver = drivers.get(key)
        if driver is None:
            driver = drivers[key] = self._new_driver(key)
        return driver

    def _region_in_constructor(self) -> bool:
        cls = self._driver_class()
        return (self._has_regions and "location" not in _params(cls.create_node)
                and "region" in _params(cls.__init__))

    def _new_driver(self, region: str) -> Any:
        self._driver_class()  # loadable at all (a clear error otherwise)
        cls = libcloud_driver_class(self.driver_id, self._args, concrete=False)
        file_key, file_secret = self._file_credentials()
        key = self._secret("key_env") or file_key
        secret = self._secret("secret_env") or file_secret
        kwargs = dict(self._args)
        if region:
            kwargs["region"] = region
        positional: list[Any] = [key if key is not None else ""]
        if secret is not None:
            positional.append(secret)
        try:
            driver = cls(*positional, **kwargs)
        except Exception as exc:
            raise CloudError(f"{self._what()}: the driver refused its settings "
                             f"({type(exc).__name__}: {self._scrub(str(exc), key, secret)})",
                             permanent=True) from None
        conn = getattr(driver, "connection", None)
        original = getattr(conn, "request", None)
        if conn is not None and callable(original):
            takes_retry = "retry_failed" in _params(original)

            def counted_request(*args: Any, **kw: Any) -> Any:
                if takes_retry:  # one call is one HTTP request: retries are ours
                    kw["retry_failed"] = False
                self._limiter.acquire()
                self._counted()
                return original(*args, **kw)

            setattr(conn, "request", counted_request)  # noqa: B010 - instance-level wrap
        return driver

    @staticmethod
    def _scrub(message: str, *secrets: str | None) -> str:
        for value in secrets:
            if value:
                message = message.replace(value, "***")
        return message

    def _translate(self, exc: BaseException) -> CloudError:
        if isinstance(exc, CloudError):
            return exc
        name = type(exc).__name__
        if name == "InvalidCredsError":
            source = (self.target.options.get("key_env")
                      or self.target.options.get("credentials_file") or "the credentials")
            return CloudError(f"{self._what()} rejected the credentials (from {source})",
                              permanent=True)
        if isinstance(exc, NotImplementedError):
            return CloudError(f"{self._what()}: the driver does not implement this operation "
                              f"({exc or name}); declare capabilities in cloudtmpl.yaml",
                              permanent=True)
        message = getattr(exc, "value", None) or getattr(exc, "message", None) or str(exc)
        if not isinstance(message, str) or not message:
            message = name
        return CloudError(f"{self.target.name}: {message}", permanent=not classify(exc).retryable)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return self._retrier.call(fn)
        except CloudError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc

    def _poll(self, timeout: float, what: str,
              fetch: Callable[[], tuple[bool, str, T]]) -> T:
        return poll(timeout, what, fetch, clock=self._clock, sleep=self._sleep,
                    first=0.1, max_interval=self._poll_max)

    def _placement(self, region: str) -> Placement:
        return Placement(self.target.name, region)

    # ------------------------------------------------------------------ names, regions

    def cloud_name(self, name: str) -> str:
        """The name an object gets on this cloud (``name`` is ``<stack>.<address>``)."""
        return escape_name(name) if self._escaped else name

    def _address(self, stack: str, cloud_name: str | None) -> str | None:
        if not cloud_name:
            return None
        name = unescape_name(cloud_name) if self._escaped else cloud_name
        return address_from_name(stack, name) if name else None

    def _location_name(self, region: str) -> str | None:
        loc = self._location(region)
        return str(loc.name) if loc is not None and loc.name else None

    def _in_region(self, obj: Any, region: str) -> bool:
        if not self._has_regions:
            return True
        extra = getattr(obj, "extra", None) or {}
        found = next((v for v in (_value_of(extra.get(k)) for k in _REGION_KEYS) if v), None)
        if found is None:
            return region == self.target.region  # the cloud does not say: the default region
        return found == region or found == self._location_name(region)

    def _cached(self, region: str, what: str, load: Callable[[], T]) -> T:
        key = (region if self._has_regions else "", what)
        with self._lock:
            if key in self._cache:
                cached: T = self._cache[key]
                return cached
        value = load()
        with self._lock:
            self._cache[key] = value
        return value

    def _location(self, region: str) -> Any | None:
        if not self._has_regions:
            return None
        locations = self._cached("", "locations", lambda: self._call(
            lambda: list(self._driver(region).list_locations())))
        return next((loc for loc in locations if str(loc.id) == region), None)

    def _require_location(self, region: str) -> Any:
        loc = self._location(region)
        if loc is None:
            known: list[Any] = self._cached("", "locations", list)
            offered = [str(x.id) for x in known]
            raise CloudError(f"{self._what()}: region {region!r} is not one of the driver's "
                             f"locations ({', '.join(offered[:30]) or 'none listed'})",
                             permanent=True)
        return loc

    def _sizes(self, region: str) -> list[Any]:
        def load() -> list[Any]:
            driver = self._driver(region)
            if self._has_regions and "location" in _params(driver.list_sizes):
                loc = self._location(region)
                return list(self._call(lambda: driver.list_sizes(location=loc)))
            return list(self._call(driver.list_sizes))
        return self._cached(region, "sizes", load)

    def _images(self, region: str) -> list[Any]:
        return self._cached(region, "images",
                            lambda: list(self._call(self._driver(region).list_images)))

    @staticmethod
    def _match(items: Iterable[Any], value: str) -> Any | None:
        items = list(items)
        return (next((i for i in items if str(i.id) == value), None)
                or next((i for i in items if str(getattr(i, "name", "")) == value), None)
                or next((i for i in items  # DigitalOcean's image and size slugs
                         if str((getattr(i, "extra", None) or {}).get("slug")) == value), None))

    # ------------------------------------------------------------------ choices

    def lookup_choice(self, region: str, what: str, value: str) -> Choice:
        """A size or image of the driver (by id or name; reported as its id), or a key
        pair (by name) where the driver has key pairs."""
        if what == "flavor":
            sizes = self._sizes(region)
            found = self._match(sizes, value)
            return Choice(str(found.id) if found is not None else None,
                          tuple(sorted({str(s.id) for s in sizes})))
        if what == "image":
            images = self._images(region)
            found = self._match(images, value)
            offered = tuple(sorted({str(i.name or i.id) for i in images}))[:50]
            return Choice(str(found.id) if found is not None else None, offered)
        if what == "keypair" and KEYPAIR in self._kinds:
            names = sorted(str(kp.name) for kp in self._call(
                self._driver(region).list_key_pairs))
            return Choice(value) if value in names else Choice(None, tuple(names))
        return Choice(value)

    # ------------------------------------------------------------------ records

    @contextlib.contextmanager
    def _record_file(self) -> Any:
        """The attachment records, locked across processes; yields the mutable dict."""
        if self._records is None:
            raise CloudError(f"{self._what()}: volume attachments need a project directory "
                             "(a cloudtmpl.yaml) to record them in", permanent=True)
        self._records.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self._records.with_suffix(".lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                try:
                    data = json.loads(self._records.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    data = {}
                before = json.dumps(data, sort_keys=True)
                yield data
                if json.dumps(data, sort_keys=True) != before:
                    tmp = self._records.with_name(f".{self._records.name}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
                    os.replace(tmp, self._records)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _attachment_records(self) -> dict[str, Any]:
        if self._records is None or not self._records.exists():
            return {}
        with self._record_file() as data:
            return dict(data.get("attachments") or {})

    # ------------------------------------------------------------------ discovery

    def discover(self, region: str, kinds: frozenset[str], stack: str) -> list[LiveResource]:
        kinds = kinds & self._kinds
        out: list[LiveResource] = []
        if SERVER in kinds:
            for node in self._call(self._driver(region).list_nodes):
                address = self._owned(node, stack)
                if (address is not None and self._in_region(node, region)
                        and self._state(node) not in _GONE_NODE_STATES):
                    out.append(self._server_live(region, address, node))
        if VOLUME in kinds or ATTACHMENT in kinds:
            records = self._attachment_records() if ATTACHMENT in kinds else {}
            for vol in self._call(self._driver(region).list_volumes):
                address = self._owned(vol, stack)
                if address is None or not self._in_region(vol, region):
                    continue
                if VOLUME in kinds:
                    out.append(self._volume_live(region, address, vol))
                record = records.get(str(vol.id))
                if record and record.get("stack") == stack:
                    att = self._attachment_live(region, vol, record)
                    if att is not None:
                        out.append(att)
        if KEYPAIR in kinds and (not self._has_regions or region == self.target.region):
            for kp in self._call(self._driver(region).list_key_pairs):
                address = self._address(stack, kp.name)
                if address is not None:
                    out.append(self._key_pair_live(region, address, kp))
        return out

    def _owned(self, obj: Any, stack: str) -> str | None:
        address = self._address(stack, getattr(obj, "name", None))
        if address is None:
            return None
        extra = getattr(obj, "extra", None) or {}
        for key in ("tags", "tag", "metadata", "ex_metadata"):
            owner = _stack_of_tags(extra.get(key))
            if owner is not None and owner != stack:
                return None  # a same-named object of another owner: never ours
        return address

    @staticmethod
    def _state(obj: Any) -> str:
        state = getattr(obj, "state", None)
        return str(getattr(state, "value", state) or "").lower()

    # ------------------------------------------------------------------ snapshots

    def _server_live(self, region: str, address: str, node: Any) -> LiveResource:
        private_ip = node.private_ips[0] if node.private_ips else None
        public_ip = node.public_ips[0] if node.public_ips else None
        status = self._state(node)
        return LiveResource(
            address=address,
            kind=SERVER,
            physical_id=str(node.id),
            placement=self._placement(region),
            name=str(node.name),
            # what libcloud reports is not uniform across drivers: the plan compares
            # the properties with the last-applied spec
            properties={},
            attributes={"first_address": private_ip or public_ip, "private_ip": private_ip,
                        "public_ip": public_ip, "name": str(node.name), "status": status,
                        "networks": {}},
            status=status,
        )

    def _volume_live(self, region: str, address: str, vol: Any) -> LiveResource:
        status = self._state(vol)
        return LiveResource(
            address=address,
            kind=VOLUME,
            physical_id=str(vol.id),
            placement=self._placement(region),
            name=str(vol.name),
            properties={"size": int(vol.size)} if vol.size is not None else {},
            attributes={"size": int(vol.size) if vol.size is not None else None,
                        "status": status, "name": str(vol.name)},
            status=status,
        )

    @staticmethod
    def _attached_nodes(vol: Any) -> list[str] | None:
        """The node ids a volume is attached to (None: the driver does not say)."""
        extra = getattr(vol, "extra", None) or {}
        for key in _ATTACHED_KEYS:
            if key in extra:
                raw = extra[key]
                values = raw if isinstance(raw, (list, tuple)) else [raw]
                return [str(v) for v in values if v not in (None, "", 0)]
        return None

    def _attachment_live(self, region: str, vol: Any, record: Mapping[str, Any]
                         ) -> LiveResource | None:
        node_id = str(record.get("node") or "")
        attached = self._attached_nodes(vol)
        if attached is not None and node_id not in attached:
            return None
        address = str(record.get("address") or "")
        return LiveResource(
            address=address,
            kind=ATTACHMENT,
            physical_id=f"{vol.id}:{node_id}",
            placement=self._placement(region),
            name=address,
            properties={"instance_uuid": node_id, "volume_id": str(vol.id)},
            attributes={},
            spec_hash=record.get("spec"),
            status="attached",
        )

    def _key_pair_live(self, region: str, address: str, kp: Any) -> LiveResource:
        attributes: dict[str, Any] = {"name": kp.name, "fingerprint": kp.fingerprint}
        if kp.public_key:
            attributes["public_key"] = kp.public_key
        return LiveResource(address=address, kind=KEYPAIR, physical_id=str(kp.name),
                            placement=self._placement(region), name=str(kp.name),
                            properties={}, attributes=attributes, status="available")

    # ------------------------------------------------------------------ lookups

    def _find_node(self, region: str, node_id: str) -> Any | None:
        nodes = self._call(self._driver(region).list_nodes)
        return next((n for n in nodes if str(n.id) == node_id), None)

    def _find_volume(self, region: str, volume_id: str) -> Any | None:
        vols = self._call(self._driver(region).list_volumes)
        return next((v for v in vols if str(v.id) == volume_id), None)

    def _find_key_pair(self, region: str, name: str) -> Any | None:
        pairs = self._call(self._driver(region).list_key_pairs)
        return next((k for k in pairs if str(k.name) == name), None)

    def _ownership(self, stack: str, address: str, spec_hash: str,
                   metadata: Mapping[str, Any] | None = None) -> dict[str, str]:
        tags = {str(k): str(v) for k, v in (metadata or {}).items()}
        tags.update({TAG_STACK: stack, TAG_RESOURCE: address, TAG_SPEC: spec_hash})
        return tags

    def _tag_kwargs(self, fn: Any, tags: Mapping[str, str]) -> dict[str, Any]:
        """Ownership tags in the form ``fn`` (a create verb) accepts; {} without tags."""
        if not self._tags:
            return {}
        params = _params(fn)
        if "ex_metadata" in params:
            return {"ex_metadata": dict(tags)}
        if "ex_tags" in params:
            return {"ex_tags": _tag_list(tags)}
        if "tags" in params:
            return {"tags": _tag_list(tags)}
        if "ex_create_attr" in params:
            return {"ex_create_attr": {"tags": _tag_list(tags)}}
        if "ex_tag" in params:
            return {"ex_tag": _tag_list({TAG_STACK: tags[TAG_STACK]})[0]}
        return {}

    # ------------------------------------------------------------------ create

    def create(
        self,
        region: str,
        kind: str,
        *,
        stack: str,
        address: str,
        name: str,
        properties: Mapping[str, Any],
        spec_hash: str,
        timeout: float,
    ) -> LiveResource:
        if kind not in self._kinds:
            raise CloudError(f"{self._what()} cannot create {kind}", permanent=True)
        creator = {SERVER: self._create_server, KEYPAIR: self._create_key_pair,
                   VOLUME: self._create_volume, ATTACHMENT: self._create_attachment}[kind]
        return creator(region, stack, address, name, properties, spec_hash, timeout)

    def _create_server(self, region: str, stack: str, address: str, name: str,
                       props: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        for prop in _UNSUPPORTED_SERVER_PROPS:
            if props.get(prop):
                raise CloudError(f"server {address}: {prop} is not supported on {self._what()}",
                                 permanent=True)
        image, flavor = str(props.get("image") or ""), str(props.get("flavor") or "")
        if not image or not flavor:
            raise CloudError("a server needs image and flavor", permanent=True)
        driver = self._driver(region)
        params = _params(driver.create_node)
        cloud_name = self.cloud_name(name)
        size = self._match(self._sizes(region), flavor) or NodeSize(
            flavor, flavor, 0, 0, None, 0.0, driver)
        img = self._match(self._images(region), image) or NodeImage(image, image, driver)
        kwargs: dict[str, Any] = {"name": cloud_name, "size": size, "image": img}
        if self._has_regions and "location" in params:
            kwargs["location"] = self._require_location(region)
        metadata = props.get("metadata") or {}
        kwargs.update(self._tag_kwargs(driver.create_node,
                                       self._ownership(stack, address, spec_hash, metadata)))
        if metadata and not self._tags:
            raise CloudError(f"server {address}: metadata needs tags, which {self._what()} "
                             "does not have (capabilities.tags)", permanent=True)
        if props.get("user_data"):
            arg = next((p for p in ("ex_userdata", "ex_user_data") if p in params), None)
            if arg is None:
                raise CloudError(f"server {address}: {self._what()} cannot pass user_data",
                                 permanent=True)
            kwargs[arg] = str(props["user_data"])
        if props.get("key_name"):
            kwargs.update(self._key_kwargs(region, params, str(props["key_name"]), kwargs))
        if "root_pass" in params:  # Linode: required with an image; never kept (use SSH keys)
            kwargs["root_pass"] = secrets.token_urlsafe(32) + "aA1-"
        attempts = 0

        def run() -> Any:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # an ambiguous failure: did the first try create it?
                nodes = self._driver(region).list_nodes()
                found = next((n for n in nodes if n.name == cloud_name), None)
                if found is not None:
                    return found
            return self._driver(region).create_node(**kwargs)

        node = self._call(run)
        node = self._wait_node(region, str(node.id), timeout, f"server {cloud_name} ({node.id})")
        return self._server_live(region, address, node)

    def _key_kwargs(self, region: str, params: Mapping[str, Any], key_name: str,
                    kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """How this driver's ``create_node`` takes an SSH key, for the key pair ``key_name``."""
        kp = self._find_key_pair(region, key_name)
        if kp is None:
            raise CloudError(f"key pair {key_name!r} does not exist on {self._what()}",
                             permanent=True)
        if "ex_create_attr" in params:  # DigitalOcean: fingerprints
            attr = dict(kwargs.get("ex_create_attr") or {})
            attr["ssh_keys"] = [kp.fingerprint]
            return {"ex_create_attr": attr}
        if "ex_authorized_keys" in params:
            return {"ex_authorized_keys": [kp.public_key]}
        if "ex_ssh_key_ids" in params:
            return {"ex_ssh_key_ids": [str((kp.extra or {}).get("id") or kp.fingerprint)]}
        if "ex_keyname" in params:
            return {"ex_keyname": kp.name}
        if "auth" in params and kp.public_key:
            return {"auth": NodeAuthSSHKey(kp.public_key)}
        raise CloudError(f"{self._what()}: the driver cannot put a key pair on a server",
                         permanent=True)

    def _wait_node(self, region: str, node_id: str, timeout: float, what: str) -> Any:
        def fetch() -> tuple[bool, str, Any]:
            node = self._find_node(region, node_id)
            if node is None:
                return False, "pending", None
            state = self._state(node)
            if state in ("error", "terminated"):
                raise CloudError(f"{what} went to {state}", permanent=True, status=state)
            return state == "running", state, node

        return self._poll(timeout, what, fetch)

    def _create_key_pair(self, region: str, stack: str, address: str, name: str,
                         props: Mapping[str, Any], spec_hash: str,
                         timeout: float) -> LiveResource:
        public_key = str(props.get("public_key") or "").strip()
        if not public_key:
            raise CloudError(f"key pair {name}: public_key is required (cloudtmpl generates "
                             "one when the template gives none)", permanent=True)
        name = self.cloud_name(name)
        existing = self._find_key_pair(region, name)
        if existing is not None:  # ours from an earlier (retried or crashed) attempt?
            if (existing.public_key or "").split()[:2] != public_key.split()[:2]:
                raise CloudError(f"a different key pair named {name!r} exists on "
                                 f"{self._what()}", permanent=True)
            return self._key_pair_live(region, address, existing)
        driver = self._driver(region)
        cls = self._driver_class()
        if driver_implements(cls, "import_key_pair_from_string"):
            kp = self._call(lambda: driver.import_key_pair_from_string(name, public_key))
        else:
            kp = self._call(lambda: driver.create_key_pair(name, public_key=public_key))
        if kp is None or not getattr(kp, "name", None):
            kp = self._find_key_pair(region, name)
        if kp is None:
            raise CloudError(f"key pair {name} vanished after its creation", permanent=True)
        if not kp.public_key:
            kp.public_key = public_key
        return self._key_pair_live(region, address, kp)

    def _create_volume(self, region: str, stack: str, address: str, name: str,
                       props: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        if props.get("size") is None:
            raise CloudError("a volume needs size", permanent=True)
        for prop in ("volume_type", "availability_zone"):
            if props.get(prop):
                raise CloudError(f"volume {address}: {prop} is not supported on {self._what()}",
                                 permanent=True)
        metadata = props.get("metadata") or {}
        driver = self._driver(region)
        params = _params(driver.create_volume)
        cloud_name = self.cloud_name(name)
        kwargs: dict[str, Any] = {"size": int(props["size"]), "name": cloud_name}
        if self._has_regions and "location" in params:
            kwargs["location"] = self._require_location(region)
        tags = self._tag_kwargs(driver.create_volume,
                                self._ownership(stack, address, spec_hash, metadata))
        if metadata and not tags:
            raise CloudError(f"volume {address}: metadata needs volume tags, which "
                             f"{self._what()} does not have", permanent=True)
        kwargs.update(tags)
        attempts = 0

        def run() -> Any:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                found = next((v for v in self._driver(region).list_volumes()
                              if v.name == cloud_name), None)
                if found is not None:
                    return found
            return self._driver(region).create_volume(**kwargs)

        vol = self._call(run)
        what = f"volume {cloud_name} ({vol.id})"

        def fetch() -> tuple[bool, str, Any]:
            found = self._find_volume(region, str(vol.id))
            if found is None:
                return False, "creating", None
            state = self._state(found)
            if state == "error":
                raise CloudError(f"{what} is in state error", permanent=True, status=state)
            return state in _READY_VOLUME_STATES, state, found

        return self._volume_live(region, address, self._poll(timeout, what, fetch))

    def _create_attachment(self, region: str, stack: str, address: str, name: str,
                           props: Mapping[str, Any], spec_hash: str,
                           timeout: float) -> LiveResource:
        volume_id = str(props.get("volume_id") or "")
        node_id = str(props.get("instance_uuid") or "")
        if not volume_id or not node_id:
            raise CloudError("a volume attachment needs volume_id and instance_uuid",
                             permanent=True)
        vol = self._find_volume(region, volume_id)
        node = self._find_node(region, node_id)
        if vol is None or node is None:
            missing = f"volume {volume_id}" if vol is None else f"server {node_id}"
            raise CloudError(f"attachment {address}: {missing} does not exist", permanent=True)
        attached = self._attached_nodes(vol)
        if attached and node_id not in attached:
            raise CloudError(f"attachment {address}: volume {volume_id} is attached to "
                             f"{', '.join(attached)}", permanent=True)
        record = {"address": address, "stack": stack, "node": node_id, "spec": spec_hash}
        with self._record_file() as data:  # record first: no attachment without its record
            data.setdefault("attachments", {})[volume_id] = record
        if not attached:
            driver = self._driver(region)
            kwargs: dict[str, Any] = {}
            if props.get("mountpoint") and "device" in _params(driver.attach_volume):
                kwargs["device"] = str(props["mountpoint"])
            try:
                self._call(lambda: self._driver(region).attach_volume(node, vol, **kwargs))
            except CloudError:
                self._forget(volume_id)
                raise
        what = f"attachment {address} ({volume_id} → {node_id})"

        def fetch() -> tuple[bool, str, Any]:
            found = self._find_volume(region, volume_id)
            if found is None:
                raise CloudError(f"{what}: the volume vanished", permanent=True)
            nodes = self._attached_nodes(found)
            return nodes is None or node_id in nodes, self._state(found) or "attaching", found

        vol = self._poll(timeout, what, fetch)
        live = self._attachment_live(region, vol, record)
        assert live is not None
        return live

    def _forget(self, volume_id: str) -> None:
        with self._record_file() as data:
            (data.get("attachments") or {}).pop(volume_id, None)

    # ------------------------------------------------------------------ update

    def update(
        self,
        live: LiveResource,
        properties: Mapping[str, Any],
        changed: frozenset[str],
        *,
        stack: str,
        spec_hash: str,
        timeout: float,
    ) -> LiveResource:
        if changed:
            raise CloudError(
                f"{live.kind} {live.address}: {', '.join(sorted(changed))} cannot change in "
                f"place on {self._what()} (libcloud has no common verb for it); rename the "
                "resource in the template to replace it", permanent=True)
        if live.kind == ATTACHMENT:
            volume_id = live.physical_id.split(":", 1)[0]
            with self._record_file() as data:
                record = (data.get("attachments") or {}).get(volume_id)
                if record is not None:
                    record["spec"] = spec_hash
            return replace(live, spec_hash=spec_hash)
        return live

    # ------------------------------------------------------------------ delete

    def delete(self, live: LiveResource, *, timeout: float) -> None:
        region = live.placement.region
        what = f"{live.kind} {live.name or live.address} ({live.physical_id})"
        if live.kind == SERVER:
            node = self._find_node(region, live.physical_id)
            if node is None:
                return
            self._call(lambda: self._driver(region).destroy_node(node))

            def gone() -> tuple[bool, str, None]:
                found = self._find_node(region, live.physical_id)
                state = "terminated" if found is None else self._state(found)
                return state in _GONE_NODE_STATES, state, None

            self._poll(timeout, what, gone)
        elif live.kind == VOLUME:
            vol = self._find_volume(region, live.physical_id)
            if vol is None:
                return
            self._call(lambda: self._driver(region).destroy_volume(vol))
            self._poll(timeout, what, lambda: (
                self._find_volume(region, live.physical_id) is None, "deleting", None))
            with contextlib.suppress(CloudError):
                self._forget(live.physical_id)
        elif live.kind == KEYPAIR:
            kp = self._find_key_pair(region, live.physical_id)
            if kp is not None:
                self._call(lambda: self._driver(region).delete_key_pair(kp))
        elif live.kind == ATTACHMENT:
            self._delete_attachment(region, live, timeout, what)
        else:
            raise CloudError(f"{self._what()} cannot delete {live.kind}", permanent=True)

    # ------------------------------------------------------------------ volume snapshots

    snapshot_kind = "volume snapshot"

    def snapshot_volume(self, live: LiveResource, *, stack: str, timeout: float) -> str | None:
        """deletion_policy Snapshot through libcloud's ``create_volume_snapshot``, where the
        driver implements it (and ``list_volume_snapshots``, to find one again and wait):
        named ``<stack>.<address>@<volume id>`` (escaped like every name here); a
        snapshot of that name that is not in error is reused."""
        region = live.placement.region
        driver = self._driver(region)
        if live.kind != VOLUME or not driver_implements(
                type(driver), "create_volume_snapshot", "list_volume_snapshots"):
            raise CloudError(
                f"{self._what()} cannot snapshot a {live.kind} (its libcloud driver does not "
                "implement create_volume_snapshot and list_volume_snapshots); use "
                "deletion_policy Retain or Delete", permanent=True)
        vol = self._find_volume(region, live.physical_id)
        if vol is None:
            return None  # already gone: nothing to keep
        cloud_name = self.cloud_name(snapshot_name(stack, live.address, live.physical_id))

        def find() -> Any | None:
            return next((s for s in self._driver(region).list_volume_snapshots(vol)
                         if s.name == cloud_name and self._state(s) != "error"), None)

        attempts = 0

        def run() -> Any:
            nonlocal attempts
            attempts += 1
            found = find() if attempts > 1 else None
            return found if found is not None else \
                self._driver(region).create_volume_snapshot(vol, name=cloud_name)

        snap = self._call(find) or self._call(run)
        what = f"snapshot {cloud_name} ({snap.id})"

        def fetch() -> tuple[bool, str, None]:
            found = next((s for s in self._call(
                lambda: self._driver(region).list_volume_snapshots(vol)) if s.id == snap.id),
                None)
            state = "creating" if found is None else self._state(found)
            if state == "error":  # it holds nothing: deleted where the driver can
                if driver_implements(type(driver), "destroy_volume_snapshot"):
                    with contextlib.suppress(Exception):
                        self._driver(region).destroy_volume_snapshot(found)
                raise CloudError(f"{what} of volume {live.physical_id} failed (state error)",
                                 permanent=True, status=state)
            return state in _READY_VOLUME_STATES, state, None

        self._poll(timeout, what, fetch)
        return str(snap.id)

    def _delete_attachment(self, region: str, live: LiveResource, timeout: float,
                           what: str) -> None:
        volume_id, _, node_id = live.physical_id.partition(":")
        vol = self._find_volume(region, volume_id)
        if vol is not None:
            attached = self._attached_nodes(vol)
            if attached is None or node_id in attached:
                self._call(lambda: self._driver(region).detach_volume(vol))

                def detached() -> tuple[bool, str, None]:
                    found = self._find_volume(region, volume_id)
                    nodes = None if found is None else self._attached_nodes(found)
                    return found is None or not nodes or node_id not in nodes, "detaching", None

                self._poll(timeout, what, detached)
        self._forget(volume_id)
