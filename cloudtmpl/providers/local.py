"""Local resources: computed by cloudtmpl itself, no cloud involved.

``Cloud::Random::String`` (``OS::Heat::RandomString``), ``Cloud::Local::Value``
(``OS::Heat::Value``), ``Cloud::Local::None`` and ``Cloud::Local::Test``.

A random string is generated once and kept without ever being stored: it is
derived (HMAC-SHA256) from the project's secret key, the stack, its address and
its properties, so the same inputs always give the same string and changing
``salt`` (or any property) gives a new one.  The state holds only the
properties; the value lives in memory and is sealed wherever it is written.
Its existence is the state record (there is no cloud to list).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import string
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from cloudtmpl.model import LiveResource, Placement, Target
from cloudtmpl.providers.base import Choice
from cloudtmpl.providers.software import SOFTWARE_KINDS
from cloudtmpl.providers.software import attributes as software_attributes
from cloudtmpl.resources import LOCAL_TARGET, RANDOM_STRING, TEST_RESOURCE, VALUE

SEQUENCES = {
    "lettersdigits": string.ascii_letters + string.digits,
    "letters": string.ascii_letters,
    "lowercase": string.ascii_lowercase,
    "uppercase": string.ascii_uppercase,
    "digits": string.digits,
    "hexdigits": string.digits + "abcdef",
    "octdigits": string.octdigits,
}


def _stream(key: bytes, message: bytes) -> Iterator[int]:
    """An endless deterministic byte stream (HMAC-SHA256 in counter mode)."""
    counter = 0
    while True:
        yield from hmac.new(key, message + counter.to_bytes(8, "big"), hashlib.sha256).digest()
        counter += 1


def _below(stream: Iterator[int], n: int) -> int:
    """A uniform integer in [0, n) (rejection sampling: no modulo bias)."""
    limit = 2**32 - 2**32 % n
    while True:
        value = int.from_bytes(bytes(next(stream) for _ in range(4)), "big")
        if value < limit:
            return value % n


def _pick(stream: Iterator[int], alphabet: str) -> str:
    return alphabet[_below(stream, len(alphabet))]


def random_string(key: bytes, stack: str, address: str, props: Mapping[str, Any]) -> str:
    """Heat's RandomString, derived: minimums per class/sequence first, then the rest."""
    message = json.dumps([stack, address, props], sort_keys=True, default=str).encode()
    stream = _stream(key, message)
    length = int(props.get("length") or 32)
    wanted: list[tuple[str, int]] = []
    for item in props.get("character_classes") or []:
        if isinstance(item, Mapping):
            wanted.append((SEQUENCES.get(str(item.get("class")), SEQUENCES["lettersdigits"]),
                           int(item.get("min", 1))))
    for item in props.get("character_sequences") or []:
        if isinstance(item, Mapping) and item.get("sequence"):
            wanted.append((str(item["sequence"]), int(item.get("min", 1))))
    pool = "".join(sorted({c for alphabet, _ in wanted for c in alphabet})) or SEQUENCES.get(
        str(props.get("sequence") or "lettersdigits"), SEQUENCES["lettersdigits"])
    chars = [_pick(stream, alphabet) for alphabet, n in wanted for _ in range(n)]
    chars += [_pick(stream, pool) for _ in range(max(0, length - len(chars)))]
    for i in range(len(chars) - 1, 0, -1):  # Fisher-Yates with the same stream
        j = _below(stream, i + 1)
        chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)


def attributes(kind: str, props: Mapping[str, Any], key: bytes, stack: str,
               address: str) -> dict[str, Any]:
    """What get_attr reads from a local resource with these (real) properties."""
    if kind == RANDOM_STRING.kind:
        return {"value": random_string(key, stack, address, props)}
    if kind == VALUE.kind:
        return {"value": props.get("value")}
    if kind == TEST_RESOURCE.kind:
        return {"output": props.get("value")}
    if kind in SOFTWARE_KINDS:  # configs and deployments: providers/software.py
        return software_attributes(kind, props)
    return {}


class LocalTarget(Protocol):
    """What apply asks of the built-in ``local`` target besides the adapter verbs: the
    value of an unchanged local resource, and the scripts it runs on servers over SSH
    (:class:`cloudtmpl.providers.deploy.DeployAdapter` is the one there is)."""

    def value(self, kind: str, *, stack: str, address: str, properties: Mapping[str, Any],
              spec_hash: str) -> LiveResource:
        """The live resource a local resource with these (real) properties is: what
        get_resource and get_attr read.  Computed, or as recorded; nothing runs."""

    def run_hook(self, server: LiveResource, hook: Mapping[str, Any], which: str,
                 timeout: float = ...) -> None:
        """Run ``hook`` (a drain hook, a health check script) on ``server`` over SSH;
        CloudError if it fails."""

    def watch_interrupts(self, stop: threading.Event) -> None:
        """After ``stop`` is set, a running script gets a grace, then is killed."""

    def abort_scripts(self) -> None:
        """Kill every running script now (a second interrupt)."""


class LocalAdapter:
    """The adapter for the built-in ``local`` target; ``known`` lists the state's records
    of local resources (as live resources: properties = the last-applied spec)."""

    def __init__(self, target: Target, key: bytes,
                 known: Callable[[], list[LiveResource]]) -> None:
        self.target = target
        self._key = key
        self._known = known

    def _live(self, kind: str, stack: str, address: str, props: Mapping[str, Any],
              spec_hash: str | None) -> LiveResource:
        return LiveResource(
            address=address, kind=kind, physical_id=f"{stack}.{address}",
            placement=Placement(LOCAL_TARGET, LOCAL_TARGET), name=f"{stack}.{address}",
            properties={}, attributes=attributes(kind, props, self._key, stack, address),
            spec_hash=spec_hash, status="ready")

    def discover(self, region: str, kinds: frozenset[str], stack: str) -> list[LiveResource]:
        return [self._live(r.kind, stack, r.address, r.properties, r.spec_hash)
                for r in self._known() if r.kind in kinds]

    def create(self, region: str, kind: str, *, stack: str, address: str, name: str,
               properties: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        return self._live(kind, stack, address, properties, spec_hash)

    def update(self, live: LiveResource, properties: Mapping[str, Any], changed: frozenset[str],
               *, stack: str, spec_hash: str, timeout: float) -> LiveResource:
        return self._live(live.kind, stack, live.address, properties, spec_hash)

    def delete(self, live: LiveResource, *, timeout: float) -> None:
        return None  # nothing outside cloudtmpl to remove

    def lookup_choice(self, region: str, what: str, value: str) -> Choice:
        return Choice(value)

    def request_count(self) -> int:
        return 0
