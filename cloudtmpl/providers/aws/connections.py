"""libcloud's AWS connections, made the way cloudtmpl needs them.

* EC2: libcloud's EC2 driver (signature v4, the session token, the endpoint);
* Secrets Manager (JSON 1.1): a SigV4-signed connection of libcloud's
  (:class:`SecretsManagerConnection`) with the region it signs for;
* Route53, S3, ELB: the drivers' own connections (signing, endpoints) whose answers
  are all returned, never raised (:class:`_Raw`): every answer is read by cloudtmpl, so
  a libcloud error parser never runs (Route53's crashes without a zone context).

Each connection's ``request`` is wrapped by ``count`` (the client's rate limiter and
request counter: one call there is exactly one HTTP request, libcloud's own retry
loop is off).  For a sandbox target every service connection's host is checked to
be loopback before its first request (the ELB driver's constructor points at the
real AWS host).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

# Imported here, not inside functions: importing in worker threads can deadlock
# on Python's module locks while other threads import the same modules.
from libcloud.common.aws import AWSJsonResponse, SignedAWSConnection
from libcloud.compute.providers import get_driver
from libcloud.compute.types import Provider
from libcloud.dns.providers import get_driver as get_dns_driver
from libcloud.dns.types import Provider as DnsProvider
from libcloud.loadbalancer.providers import get_driver as get_lb_driver
from libcloud.loadbalancer.types import Provider as LbProvider
from libcloud.storage.providers import get_driver as get_storage_driver
from libcloud.storage.types import Provider as StorageProvider

from cloudtmpl.model import Target
from cloudtmpl.providers.aws.credentials import Credentials
from cloudtmpl.providers.base import CloudError

Endpoint = tuple[str, int, bool]  # host, port, https


def _counted(conn: Any, count: Callable[[], None]) -> None:
    original = conn.request

    def counted_request(*args: Any, **kw: Any) -> Any:
        kw["retry_failed"] = False  # retries are ours, and counted
        count()  # before every HTTP request, retries included
        return original(*args, **kw)

    setattr(conn, "request", counted_request)  # noqa: B010 - instance-level wrap


def ec2_driver(target: Target, region: str, creds: Credentials, endpoint: Endpoint | None,
               count: Callable[[], None]) -> Any:
    kwargs: dict[str, Any] = {
        "region": region,
        "signature_version": "4",
        "token": creds.token,
        "timeout": float(target.options.get("request_timeout", 60)),
    }
    if endpoint is not None:
        host, port, secure = endpoint
        kwargs.update(host=host, port=port, secure=secure)
    try:
        driver = get_driver(Provider.EC2)(creds.key, creds.secret, **kwargs)
    except ValueError as exc:  # libcloud: "Invalid region: …"
        raise CloudError(f"target {target.name!r}: {exc}", permanent=True) from None
    _counted(driver.connection, count)
    return driver


class SecretsManagerConnection(SignedAWSConnection):
    """AWS Secrets Manager: JSON 1.1 (``X-Amz-Target: secretsmanager.<Action>``)."""

    version = "2017-10-17"
    service_name = "secretsmanager"
    responseCls = AWSJsonResponse


class _Signs:
    """What a SigV4 signer (and libcloud's user agent) reads of a connection's driver."""

    name = "AWS Secrets Manager"

    def __init__(self, region: str) -> None:
        self.region_name = region


class _Raw:
    """Mixed into a connection's response class: every answer is returned, never raised."""

    def success(self) -> bool:
        return True


def service_connection(target: Target, service: str, region: str, creds: Credentials,
                       endpoint: Endpoint | None, count: Callable[[], None]) -> Any:
    """The connection of ``service`` (route53, s3, elb, secretsmanager) in ``region``."""
    where: dict[str, Any] = {}
    driver: Any
    if endpoint is not None:
        where = {"host": endpoint[0], "port": endpoint[1], "secure": endpoint[2]}
    if service == "secretsmanager":
        conn: Any = SecretsManagerConnection(
            creds.key, creds.secret, token=creds.token, signature_version="4",
            **(where or {"host": f"secretsmanager.{region}.amazonaws.com"}))
        conn.driver = _Signs(region)
        driver = None
    elif service == "route53":
        driver = get_dns_driver(DnsProvider.ROUTE53)(creds.key, creds.secret,
                                                     token=creds.token, **where)
    elif service == "s3":
        driver = get_storage_driver(StorageProvider.S3)(creds.key, creds.secret,
                                                        token=creds.token, region=region,
                                                        **where)
        if region != "us-east-1":
            driver.ex_location_name = region
    else:
        # the ELB driver takes no host/port: point its connection at the endpoint
        driver = get_lb_driver(LbProvider.ELB)(creds.key, creds.secret, region,
                                               token=creds.token)
        if endpoint is not None:
            driver.connection.host, driver.connection.port = endpoint[0], endpoint[1]
            driver.connection.secure = endpoint[2]
    if driver is not None:
        conn = driver.connection
    if target.sandbox:
        _check_loopback(target, str(conn.host), service)
    raw_cls: Any = type(f"Raw{conn.responseCls.__name__}", (_Raw, conn.responseCls), {})
    conn.responseCls = raw_cls
    if service == "elb" and endpoint is not None:
        conn.connect()  # (re)connect to the endpoint, not the AWS host
    _counted(conn, count)
    return conn


def _check_loopback(target: Target, host: str, service: str) -> None:
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise CloudError(f"sandbox target {target.name!r}: the {service} "
                         f"connection points at {host!r}, not at the local sandbox",
                         permanent=True)
