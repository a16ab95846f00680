"""One ``type: libcloud`` target's transport: its driver, credentials, requests, listings.

Credentials come from the environment variables the target names (``key_env``,
``secret_env``; built-in defaults per driver, e.g. ``DIGITALOCEAN_ACCESS_TOKEN``) or
from a ``credentials_file`` (INI, section = target name or ``credentials_section``,
keys ``key``/``secret``) that must not be readable by group or others.  Errors name
the variable or file, never a value.

Regions.  On a driver with regions the region is a libcloud location id, sent as
``location`` to ``create_node``/``create_volume``; discovery lists once per kind and
keeps the objects whose location (``extra``) is the region (id or location name).
Key pairs are global on these clouds: they are listed in the target's default
``region`` only.  A driver without regions has one region (``global`` unless
``region:`` says otherwise).

Threads: each thread gets its own driver (``threading.local``); every HTTP request
goes through one counting wrapper and every cloud call through
:class:`cloudtmpl.providers.retry.Retrier`.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from cloudtmpl import capabilities
from cloudtmpl.libcloud_targets import libcloud_driver_class
from cloudtmpl.model import Placement, Target, address_from_name
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import CloudError, poll
from cloudtmpl.providers.libcloud import names
from cloudtmpl.providers.libcloud.records import AttachmentRecords, RecordStore
from cloudtmpl.providers.retry import DEFAULT_POLICY, Retrier, RetryPolicy, classify, limiter_for

T = TypeVar("T")

# Where drivers keep an object's location.
_REGION_KEYS = ("region_slug", "location", "region", "zone", "availability_zone",
                "datacenter")


def _value_of(raw: Any) -> str | None:
    if isinstance(raw, Mapping):
        raw = raw.get("slug") or raw.get("id") or raw.get("name")
    if raw is None or raw == "":
        return None
    return str(raw)


def _scrub(message: str, *secrets: str | None) -> str:
    for value in secrets:
        if value:
            message = message.replace(value, "***")
    return message


class LibcloudClient:
    """The transport of one libcloud target (see the module docstring)."""

    def __init__(
        self,
        target: Target,
        *,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry_policy: RetryPolicy | None = None,
        poll_max_interval: float = 3.0,
        store: RecordStore | None = None,
    ) -> None:
        self.target = target
        opts = target.options
        self.driver_id = str(opts.get("driver") or "")
        self.args = dict(opts.get("args") or {})
        self.kinds = capabilities.of(target).kinds
        self.tags = bool(opts.get("tags"))
        self.has_regions = bool(opts.get("has_regions"))
        self.escaped = self.driver_id in names.ESCAPED_NAMES
        self.environ = os.environ if environ is None else environ
        self.sleep = sleep
        self.clock = clock
        self.retrier = Retrier(retry_policy or DEFAULT_POLICY, sleep=sleep)
        self.limiter = limiter_for(opts, clock=clock, sleep=sleep)
        self.poll_max = poll_max_interval
        self._local = threading.local()
        self._lock = threading.Lock()
        self._count = 0
        self._cache: dict[tuple[str, str], Any] = {}
        self._cls: Any = None
        project = opts.get("project_dir")
        self.records = AttachmentRecords(
            store, target.name, self.what(),
            Path(str(project)) / ".cloudtmpl" / "libcloud" / f"{target.name}.json"
            if project else None)

    # ------------------------------------------------------------------ plumbing

    def request_count(self) -> int:
        with self._lock:
            return self._count

    def _counted(self) -> None:
        with self._lock:
            self._count += 1

    def what(self) -> str:
        return f"target {self.target.name!r} (libcloud driver {self.driver_id})"

    def _secret(self, option: str) -> str | None:
        var = self.target.options.get(option)
        if not var:
            return None
        value = self.environ.get(str(var))
        if not value:
            raise CloudError(
                f"{self.what()}: environment variable {var} is not set "
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
            raise CloudError(f"{self.what()}: cannot read credentials_file {path}: "
                             f"{exc.strerror}", permanent=True) from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CloudError(
                f"{self.what()}: credentials_file {path} is readable by others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run chmod 600 {path}", permanent=True)
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError) as exc:
            raise CloudError(f"{self.what()}: credentials_file {path} is not an INI file "
                             f"({type(exc).__name__})", permanent=True) from None
        section = str(self.target.options.get("credentials_section") or self.target.name)
        if not parser.has_section(section):
            raise CloudError(f"{self.what()}: credentials_file {path} has no section "
                             f"[{section}]", permanent=True)
        sec = parser[section]
        return (sec.get("key") or None), (sec.get("secret") or None)

    def driver_class(self) -> Any:
        with self._lock:
            if self._cls is None:
                try:
                    self._cls = libcloud_driver_class(self.driver_id, self.args)
                except Exception as exc:
                    raise CloudError(f"{self.what()}: the driver cannot be loaded: {exc}",
                                     permanent=True) from None
            return self._cls

    def driver(self, region: str = "") -> Any:
        """This thread's driver (one per region where the region is a constructor argument)."""
        drivers: dict[str, Any] | None = getattr(self._local, "drivers", None)
        if drivers is None:
            drivers = self._local.drivers = {}
        key = region if self._region_in_constructor() else ""
        driver = drivers.get(key)
        if driver is None:
            driver = drivers[key] = self._new_driver(key)
        return driver

    def _region_in_constructor(self) -> bool:
        cls = self.driver_class()
        return (self.has_regions and "location" not in names.params(cls.create_node)
                and "region" in names.params(cls.__init__))

    def _new_driver(self, region: str) -> Any:
        self.driver_class()  # loadable at all (a clear error otherwise)
        cls = libcloud_driver_class(self.driver_id, self.args, concrete=False)
        file_key, file_secret = self._file_credentials()
        key = self._secret("key_env") or file_key
        secret = self._secret("secret_env") or file_secret
        kwargs = dict(self.args)
        if region:
            kwargs["region"] = region
        positional: list[Any] = [key if key is not None else ""]
        if secret is not None:
            positional.append(secret)
        try:
            driver = cls(*positional, **kwargs)
        except Exception as exc:
            raise CloudError(f"{self.what()}: the driver refused its settings "
                             f"({type(exc).__name__}: {_scrub(str(exc), key, secret)})",
                             permanent=True) from None
        conn = getattr(driver, "connection", None)
        original = getattr(conn, "request", None)
        if conn is not None and callable(original):
            takes_retry = "retry_failed" in names.params(original)

            def counted_request(*args: Any, **kw: Any) -> Any:
                if takes_retry:  # one call is one HTTP request: retries are ours
                    kw["retry_failed"] = False
                self.limiter.acquire()
                self._counted()
                return original(*args, **kw)

            setattr(conn, "request", counted_request)  # noqa: B010 - instance-level wrap
        return driver

    def _translate(self, exc: BaseException) -> CloudError:
        name = type(exc).__name__
        if name == "InvalidCredsError":
            source = (self.target.options.get("key_env")
                      or self.target.options.get("credentials_file") or "the credentials")
            return CloudError(f"{self.what()} rejected the credentials (from {source})",
                              permanent=True)
        if isinstance(exc, NotImplementedError):
            return CloudError(f"{self.what()}: the driver does not implement this operation "
                              f"({exc or name}); declare capabilities in cloudtmpl.yaml",
                              permanent=True)
        message = getattr(exc, "value", None) or getattr(exc, "message", None) or str(exc)
        if not isinstance(message, str) or not message:
            message = name
        return CloudError(f"{self.target.name}: {message}", permanent=not classify(exc).retryable)

    def call(self, fn: Callable[[], T]) -> T:
        """``fn`` with retries; what still fails is a CloudError."""
        return kit.call(fn, self._translate, self.retrier)

    def poll(self, timeout: float, what: str, fetch: Callable[[], tuple[bool, str, T]]) -> T:
        return poll(timeout, what, fetch, clock=self.clock, sleep=self.sleep,
                    first=0.1, max_interval=self.poll_max)

    def placement(self, region: str) -> Placement:
        return Placement(self.target.name, region)

    # ------------------------------------------------------------------ names, regions

    def cloud_name(self, name: str) -> str:
        """The name an object gets on this cloud (``name`` is ``<stack>.<address>``)."""
        return names.escape_name(name) if self.escaped else name

    def address(self, stack: str, cloud_name: str | None) -> str | None:
        if not cloud_name:
            return None
        name = names.unescape_name(cloud_name) if self.escaped else cloud_name
        return address_from_name(stack, name) if name else None

    def owned(self, obj: Any, stack: str) -> str | None:
        """The address of a node or volume of ``stack`` (None: not ours)."""
        address = self.address(stack, getattr(obj, "name", None))
        if address is None:
            return None
        extra = getattr(obj, "extra", None) or {}
        for key in ("tags", "tag", "metadata", "ex_metadata"):
            owner = names.stack_of_tags(extra.get(key))
            if owner is not None and owner != stack:
                return None  # a same-named object of another owner: never ours
        return address

    def stack_items(self, items: Iterable[Any], stack: str,
                    region: str) -> Iterator[tuple[str, Any]]:
        """(address, object) for the nodes or volumes of ``stack`` in ``region``."""
        def address_of(obj: Any) -> str | None:
            address = self.owned(obj, stack)
            return address if address is not None and self.in_region(obj, region) else None

        return kit.stack_items(items, address_of)

    def tag_kwargs(self, fn: Any, tags: Mapping[str, str]) -> dict[str, Any]:
        """Ownership tags in the form ``fn`` accepts; {} on a target without tags."""
        return names.tag_kwargs(fn, tags) if self.tags else {}

    def _location_name(self, region: str) -> str | None:
        loc = self.location(region)
        return str(loc.name) if loc is not None and loc.name else None

    def in_region(self, obj: Any, region: str) -> bool:
        if not self.has_regions:
            return True
        extra = getattr(obj, "extra", None) or {}
        found = next((v for v in (_value_of(extra.get(k)) for k in _REGION_KEYS) if v), None)
        if found is None:
            return region == self.target.region  # the cloud does not say: the default region
        return found == region or found == self._location_name(region)

    def _cached(self, region: str, what: str, load: Callable[[], T]) -> T:
        key = (region if self.has_regions else "", what)
        with self._lock:
            if key in self._cache:
                cached: T = self._cache[key]
                return cached
        value = load()
        with self._lock:
            self._cache[key] = value
        return value

    def location(self, region: str) -> Any | None:
        if not self.has_regions:
            return None
        locations = self._cached("", "locations", lambda: self.call(
            lambda: list(self.driver(region).list_locations())))
        return next((loc for loc in locations if str(loc.id) == region), None)

    def require_location(self, region: str) -> Any:
        loc = self.location(region)
        if loc is None:
            known: list[Any] = self._cached("", "locations", list)
            offered = [str(x.id) for x in known]
            raise CloudError(f"{self.what()}: region {region!r} is not one of the driver's "
                             f"locations ({', '.join(offered[:30]) or 'none listed'})",
                             permanent=True)
        return loc

    def sizes(self, region: str) -> list[Any]:
        def load() -> list[Any]:
            driver = self.driver(region)
            if self.has_regions and "location" in names.params(driver.list_sizes):
                loc = self.location(region)
                return list(self.call(lambda: driver.list_sizes(location=loc)))
            return list(self.call(driver.list_sizes))
        return self._cached(region, "sizes", load)

    def images(self, region: str) -> list[Any]:
        return self._cached(region, "images",
                            lambda: list(self.call(self.driver(region).list_images)))

    # ------------------------------------------------------------------ finding one

    def find_node(self, region: str, node_id: str) -> Any | None:
        nodes = self.call(self.driver(region).list_nodes)
        return next((n for n in nodes if str(n.id) == node_id), None)

    def find_volume(self, region: str, volume_id: str) -> Any | None:
        vols = self.call(self.driver(region).list_volumes)
        return next((v for v in vols if str(v.id) == volume_id), None)

    def find_key_pair(self, region: str, name: str) -> Any | None:
        pairs = self.call(self.driver(region).list_key_pairs)
        return next((k for k in pairs if str(k.name) == name), None)

    # ------------------------------------------------------------------ kit.Client

    def session(self, region: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # drivers are per thread already

    def fetch(self, region: str, stack: str, wanted: frozenset[str]) -> kit.Listings:
        """The listings, one driver verb each, one after the other (libcloud lists
        everything: the stack's objects are picked out by name)."""
        listers: dict[str, Callable[[], list[Any]]] = {
            "nodes": lambda: list(self.call(self.driver(region).list_nodes)),
            "volumes": lambda: list(self.call(self.driver(region).list_volumes)),
            # key pairs are global: listed in the default region only
            "key_pairs": lambda: (list(self.call(self.driver(region).list_key_pairs))
                                  if not self.has_regions or region == self.target.region
                                  else []),
            "attachment_records": lambda: list(self.records.all().items()),
        }
        return kit.Listings({n: listers[n]() for n in _ORDER if n in wanted})


def match(items: Iterable[Any], value: str) -> Any | None:
    """The size or image ``value`` names: by id, name, or DigitalOcean's slug."""
    items = list(items)
    return (next((i for i in items if str(i.id) == value), None)
            or next((i for i in items if str(getattr(i, "name", "")) == value), None)
            or next((i for i in items  # DigitalOcean's image and size slugs
                     if str((getattr(i, "extra", None) or {}).get("slug")) == value), None))


# the listing order: nodes; the attachment records, then the volumes they name; key pairs
_ORDER = ("nodes", "attachment_records", "volumes", "key_pairs")
