"""Where a deployment or hook connects: a server's addresses as the stack's state
records them, and the one to use (``ssh.via``: floating, public or private; without
it the floating IP, else the public IP, else the first address).  Pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cloudtmpl.model import LiveResource
from cloudtmpl.providers.base import CloudError
from cloudtmpl.resources import FLOATING_IP, SERVER
from cloudtmpl.software_kinds import SSH_VIA


@dataclass(frozen=True)
class ServerAddresses:
    """A server's addresses by kind, as the stack's state knows them (first = preferred)."""

    server: str
    floating: tuple[str, ...] = ()
    public: tuple[str, ...] = ()
    private: tuple[str, ...] = ()
    first: str | None = None  # the cloud's first address (private, else public)
    known: bool = True  # the state has a record of the server

    def by_kind(self, via: str) -> tuple[str, ...]:
        return {"floating": self.floating, "public": self.public,
                "private": self.private}.get(via, ())

    def describe(self) -> str:
        kinds = [f"{via} {', '.join(self.by_kind(via))}" for via in SSH_VIA
                 if self.by_kind(via)]
        if kinds:
            return "it has " + "; ".join(kinds)
        if not self.known:
            return "the stack's state has no record of it"
        return "no address of it is recorded"


def _dedup(items: Sequence[Any]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(i) for i in items if i))


def server_addresses(records: Sequence[LiveResource], server_id: str) -> ServerAddresses:
    """The server's floating IPs (floating IP records whose ``server`` is it, or whose
    fixed address is one of its addresses), its public IP and its private addresses
    (``private_ip`` and its networks' addresses that are not one of those), from the
    stack's state records."""
    server = next((r for r in records if r.kind == SERVER.kind and r.physical_id == server_id),
                  None)
    attrs = server.attributes if server is not None else {}
    networks = [a for addrs in (attrs.get("networks") or {}).values() for a in addrs or []]
    fixed = set(_dedup([*networks, attrs.get("private_ip"), attrs.get("first_address")]))
    floating = _dedup([
        r.attributes.get("floating_ip_address") or r.attributes.get("ip")
        for r in records if r.kind == FLOATING_IP.kind
        and (r.properties.get("server") == server_id
             or r.attributes.get("fixed_ip_address") in fixed)])
    # as the cloud reports it (on AWS an associated elastic IP is also the public IP)
    public = _dedup([attrs.get("public_ip")])
    private = tuple(a for a in _dedup([attrs.get("private_ip"), *networks,
                                       attrs.get("first_address")])
                    if a not in floating and a not in public)
    first = next((str(attrs[k]) for k in ("first_address", "private_ip") if attrs.get(k)),
                 None)
    return ServerAddresses(server_id, floating, public, private, first, server is not None)


def pick_address(found: ServerAddresses, via: Any = None) -> str:
    """The address to connect to: of kind ``via`` exactly when it is given, else the
    floating IP, else the public IP, else the first address.  CloudError if none."""
    if via is not None and via != "":
        if via not in SSH_VIA:
            raise CloudError(f"ssh.via must be floating, public or private, not {via!r}")
        hits = found.by_kind(str(via))
        if hits:
            return hits[0]
        others = [v for v in SSH_VIA if v != via and found.by_kind(v)]
        raise CloudError(
            f"ssh.via is {via}, but server {found.server} has no {via} address "
            f"({found.describe()}): "
            + (f"use ssh.via: {' or '.join(others)}, or " if others else "")
            + "give the deployment an 'address'"
            + (" (or make it depend on the server's floating IP, which puts that in the "
               "state first)" if via == "floating" else ""))
    for candidate in (*found.floating, *found.public, found.first, *found.private):
        if candidate:
            return candidate
    raise CloudError(
        f"no address known for server {found.server}: give the deployment an 'address' "
        "(get_attr of its floating IP), or make it depend on the server's floating IP")



def loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"

