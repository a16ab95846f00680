"""One AWS target's transport: credentials, endpoints, connections, requests, listings.

Credentials: botocore's chain (:mod:`cloudtmpl.providers.aws.credentials`); a
thread's connection is rebuilt when refreshed temporary credentials replace the ones
it signs with.  Endpoints per service: the target's ``endpoint:``, else the
``AWS_ENDPOINT_URL*`` variables and the profile (:mod:`cloudtmpl.settings.aws`).

Threads: libcloud drivers and their connections are not thread-safe, so each thread
gets its own per service and region (``threading.local``).  Every HTTP request goes
through one counting wrapper (:meth:`AwsClient.request_count`) and the target's
rate limiter; every cloud call through :class:`cloudtmpl.providers.retry.Retrier`.

Listings: :meth:`AwsClient.fetch` runs the named listers (the package's
``LISTINGS`` table), each once and in parallel, for one stack: every listing is
filtered server side by the stack's tag or name prefix.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cloudtmpl.model import TAG_SPEC, LiveResource, Placement, Target
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import connections, ec2
from cloudtmpl.providers.aws.connections import Endpoint
from cloudtmpl.providers.aws.credentials import AwsCredentials, Credentials
from cloudtmpl.providers.aws.svcxml import txt
from cloudtmpl.providers.base import CloudError, poll
from cloudtmpl.providers.retry import (
    DEFAULT_POLICY,
    RETRYABLE_AWS_CODES,
    RETRYABLE_HTTP_STATUS,
    SANDBOX_POLICY,
    Retrier,
    RetryPolicy,
    classify,
    error_codes,
    http_status,
    limiter_for,
)
from cloudtmpl.settings import aws as aws_settings

T = TypeVar("T")
# a listing: (client, region, stack) -> the stack's raw objects in the region
Lister = Callable[["AwsClient", str, str], list[Any]]


class AwsClient:
    """The transport of one AWS target (see the module docstring)."""

    def __init__(
        self,
        target: Target,
        listers: Mapping[str, Lister],
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry_policy: RetryPolicy | None = None,
        page_size: int = 1000,
        poll_max_interval: float = 3.0,
    ) -> None:
        self.target = target
        self.listers = dict(listers)
        self.sleep = sleep
        self.clock = clock
        policy = retry_policy or (SANDBOX_POLICY if target.sandbox else DEFAULT_POLICY)
        self.retrier = Retrier(policy, sleep=sleep)
        # request_rate: one token bucket for all of this client's threads
        self.limiter = limiter_for(target.options, clock=clock, sleep=sleep)
        self.page_size = max(5, min(1000, int(page_size)))  # DescribeInstances: 5..1000
        self.poll_max = poll_max_interval
        self.lock = threading.Lock()  # also guards the handlers' small caches
        self._local = threading.local()
        self._count = 0
        self._creds = AwsCredentials(target, target.region)
        # the target's own endpoint: every service, before any AWS_ENDPOINT_URL*
        self._endpoint = self._parse_endpoint(target.options.get("endpoint"), "cloudtmpl.yaml")
        self._endpoints: dict[str, Endpoint | None] = {}
        self.default_subnets: dict[tuple[str, str], str] = {}  # (region, zone) -> subnet

    # ------------------------------------------------------------------ counting

    def request_count(self) -> int:
        with self.lock:
            return self._count

    def _counted(self) -> None:
        self.limiter.acquire()
        with self.lock:
            self._count += 1

    # ------------------------------------------------------------------ endpoints

    def _parse_endpoint(self, endpoint: Any, source: str) -> Endpoint | None:
        if not endpoint:
            return None
        parts = urlsplit(str(endpoint))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CloudError(
                f"target {self.target.name!r}: endpoint {endpoint!r} ({source}) is not an "
                "http(s) URL",
                permanent=True,
            )
        secure = parts.scheme == "https"
        return parts.hostname, parts.port or (443 if secure else 80), secure

    def endpoint_for(self, service: str) -> Endpoint | None:
        """(host, port, https) of ``service`` (ec2, s3, route53, elb); None: AWS's own.

        The target's ``endpoint:`` serves every service; a sandbox target has only
        that.  Otherwise the AWS_ENDPOINT_URL* variables and the profile's settings
        (:mod:`cloudtmpl.settings.aws`).
        """
        if self._endpoint is not None or self.target.sandbox:
            return self._endpoint
        with self.lock:
            if service not in self._endpoints:
                try:
                    found = aws_settings.load(os.environ,
                                              self.target.options.get("profile")).endpoint(service)
                except aws_settings.AwsSettingsError as err:
                    raise CloudError(f"target {self.target.name!r}: {err.message}",
                                     permanent=True) from None
                self._endpoints[service] = (self._parse_endpoint(found.url, found.source)
                                            if found else None)
            return self._endpoints[service]

    # ------------------------------------------------------------------ connections

    def credentials(self) -> Credentials:
        return self._creds.current()

    def _cached(self, key: tuple[str, str], make: Callable[[Credentials], Any]) -> Any:
        conns: dict[tuple[str, str], tuple[Credentials, Any]] | None = getattr(
            self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        creds = self.credentials()
        cached = conns.get(key)
        if cached is None or cached[0] != creds:  # new, or temporary credentials refreshed
            cached = conns[key] = (creds, make(creds))
        return cached[1]

    def driver(self, region: str) -> Any:
        """This thread's libcloud EC2 driver for ``region``."""
        return self._cached(("ec2", region), lambda creds: connections.ec2_driver(
            self.target, region, creds, self.endpoint_for("ec2"), self._counted))

    def connection(self, service: str, region: str) -> Any:
        """This thread's connection of ``service`` (route53, s3, elb) for ``region``."""
        return self._cached((service, region), lambda creds: connections.service_connection(
            self.target, service, region, creds, self.endpoint_for(service), self._counted))

    # ------------------------------------------------------------------ calls

    def _translate(self, exc: BaseException) -> CloudError:
        name = type(exc).__name__
        verdict = classify(exc)
        if name == "InvalidCredsError":
            return CloudError(f"AWS rejected the credentials of target {self.target.name!r}: "
                              f"{exc}", permanent=True)
        if name == "KeyPairDoesNotExistError":
            key = getattr(exc, "name", "?")
            return CloudError(f"InvalidKeyPair.NotFound: The key pair '{key}' does not exist",
                              permanent=True)
        message = getattr(exc, "message", None)
        if not isinstance(message, str) or not message:
            message = str(exc) or name
        if verdict.retryable and not error_codes(exc) and http_status(exc) is None:
            endpoint = self.endpoint_for("ec2")
            where = endpoint[0] if endpoint else "the EC2 endpoint"
            message = f"cannot reach {where} ({name}): {message}"
        return CloudError(message, permanent=not verdict.retryable)

    def call(self, fn: Callable[[], T]) -> T:
        """``fn`` with retries; what still fails is a CloudError."""
        return kit.call(fn, self._translate, self.retrier)

    def raw_ec2(self, region: str, params: Mapping[str, str]) -> ET.Element:
        """One EC2 query (``Action`` in ``params``), no retry, libcloud's errors as they are."""
        driver = self.driver(region)
        return driver.connection.request(driver.path, params=dict(params)).object

    def ec2(self, region: str, action: str, params: Mapping[str, str] | None = None,
            *, retry: bool = True) -> ET.Element:
        """One EC2 query action through the (thread's) driver connection."""
        full = {"Action": action, **(params or {})}

        return kit.call(lambda: self.raw_ec2(region, full), self._translate,
                        self.retrier if retry else None)

    def paged(self, region: str, action: str, params: Mapping[str, str],
              max_results: int | None) -> Iterable[ET.Element]:
        """Every page of a paginated Describe* action (follows every NextToken)."""
        page = dict(params)
        if max_results is not None:
            page["MaxResults"] = str(max_results)
        seen: set[str] = set()
        while True:
            obj = self.ec2(region, action, page)
            yield obj
            token = ec2.text(obj, "nextToken")
            if not token or token in seen:
                return
            seen.add(token)
            page["NextToken"] = token

    def request(self, service: str, region: str, path: str, *, method: str = "GET",
                params: Mapping[str, str] | None = None, data: str | None = None,
                headers: Mapping[str, str] | None = None,
                ok: Iterable[str] = (), retry: bool = True) -> tuple[int, ET.Element | None, str]:
        """One Route53/S3/ELB request; (status, parsed XML, error code).  An error answer
        whose code is in ``ok`` is returned, any other raises a CloudError (retried if
        transient, unless ``retry`` is false: a create that must look before it posts
        again leaves the retrying to :func:`~cloudtmpl.providers.kit.create_or_adopt`)."""
        accepted = set(ok)

        def go() -> tuple[int, ET.Element | None, str]:
            conn = self.connection(service, region)
            kw: dict[str, Any] = {"params": dict(params or {}), "method": method,
                                  "headers": dict(headers or {})}
            if data is not None:
                kw["data"] = data
            resp = conn.request(path, **kw)
            status = int(resp.status)
            body = resp.object if isinstance(resp.object, ET.Element) else None
            if body is None and isinstance(resp.body, (str, bytes)) and resp.body.strip():
                try:
                    body = ET.fromstring(resp.body)
                except ET.ParseError:
                    body = None
            if status < 400:
                return status, body, ""
            code = txt(body, "Error/Code") or txt(body, "Code") or ""
            if body is not None and body.tag.endswith("Error") and not code:
                code = txt(body, "Code") or ""
            if code in accepted or str(status) in accepted:
                return status, body, code
            message = (txt(body, "Error/Message") or txt(body, "Message")
                       or (resp.body[:300] if isinstance(resp.body, str) else ""))
            retryable = code in RETRYABLE_AWS_CODES or status in RETRYABLE_HTTP_STATUS
            raise CloudError(f"{code or 'HTTP ' + str(status)}: {message}",
                             permanent=not retryable, status=str(status))

        return kit.call(go, self._translate, self.retrier if retry else None)

    # ------------------------------------------------------------------ helpers

    def placement(self, region: str) -> Placement:
        return Placement(self.target.name, region)

    def poll(self, timeout: float, what: str, fetch: Callable[[], tuple[bool, str, T]]) -> T:
        return poll(timeout, what, fetch, clock=self.clock, sleep=self.sleep,
                    first=0.25, max_interval=self.poll_max)

    def create_tags(self, region: str, resource_id: str, tags: Mapping[str, str]) -> None:
        if not tags:
            return
        params = {"ResourceId.1": resource_id}
        for i, (key, value) in enumerate(tags.items(), 1):
            params[f"Tag.{i}.Key"] = key
            params[f"Tag.{i}.Value"] = value
        self.ec2(region, "CreateTags", params)

    def delete_tags(self, region: str, resource_id: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return
        params = {"ResourceId.1": resource_id}
        for i, key in enumerate(keys, 1):
            params[f"Tag.{i}.Key"] = key
        self.ec2(region, "DeleteTags", params)

    def retag(self, region: str, resource_id: str, current: Mapping[str, str],
              change: kit.Change) -> None:
        """After an in-place update (instances and volumes alike): the spec tag moves;
        with ``metadata`` changed, the user's tags (``current`` now) become the desired."""
        to_set = {TAG_SPEC: change.spec_hash}
        if "metadata" in change.changed:
            desired = ec2.metadata(change.properties)
            have = ec2.user_tags(current)
            self.delete_tags(region, resource_id, sorted(set(have) - set(desired)))
            to_set.update({k: v for k, v in desired.items() if have.get(k) != v})
        self.create_tags(region, resource_id, to_set)

    def delete_and_wait(self, region: str, action: str, params: Mapping[str, str],
                        missing: str, *, get: Callable[[], Any | None], state: str, gone: str,
                        timeout: float, what: str) -> None:
        """One delete ``action``, then wait until the object (``get()``, libcloud's, None
        once it is gone) has the ``extra[state]`` ``gone``; what is already missing (the
        error code ``missing``) is deleted."""
        try:
            self.ec2(region, action, params)
        except CloudError as err:
            if ec2.has_code(err, missing):
                return
            raise

        def fetch() -> tuple[bool, str, None]:
            obj = get()
            now = gone if obj is None else (obj.extra.get(state) or "")
            return now == gone, now, None

        self.poll(timeout, what, fetch)

    # ------------------------------------------------------------------ kit.Client

    def session(self, region: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # connections are per thread already

    def fetch(self, region: str, stack: str, names: frozenset[str]) -> kit.Listings:
        unknown = sorted(names - set(self.listers))
        if unknown:
            raise CloudError(f"the aws provider has no listing {', '.join(unknown)}")
        chosen = sorted(names)
        self.credentials()  # fail once, clearly, before fanning out
        if len(chosen) == 1:
            return kit.Listings({chosen[0]: self.listers[chosen[0]](self, region, stack)})
        # Each worker thread gets its own connections (threading.local): safe in parallel.
        with ThreadPoolExecutor(max_workers=len(chosen),
                                thread_name_prefix="cloudtmpl-aws-discover") as pool:
            futures = {n: pool.submit(self.listers[n], self, region, stack) for n in chosen}
            return kit.Listings({n: fut.result() for n, fut in futures.items()})


class Listed:
    """A handler whose kind is one listing of tagged objects: discovery keeps the
    stack's objects of ``listings[0]`` and describes each with :meth:`live`."""

    kind: str
    listings: tuple[str, ...]

    @staticmethod
    def tags(obj: Any) -> Mapping[str, str]:
        """The tags of one listed object (an XML element's ``tagSet``)."""
        return ec2.tags_of(obj)

    def live(self, client: AwsClient, region: str, address: str, item: Any) -> LiveResource:
        raise NotImplementedError

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [self.live(client, region, address, item) for address, item
                in ec2.stack_items(listings.get(self.listings[0]), stack, self.tags)]
