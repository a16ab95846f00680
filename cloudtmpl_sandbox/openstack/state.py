"""The emulator's state: knobs, per-region resources, tokens, request counts.

One :class:`Store` per process, guarded by one lock that every API handler
holds while it runs (handlers are short; injected latency is slept outside it).
Regions share nothing: a server in ``de-fra-1`` is invisible in ``nl-ams-1``.
"""

from __future__ import annotations

import collections
import ipaddress
import random
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..boot import Boots
from ..sshd import LoopbackPool, SshHosts, default_port, random_network, sshd_path

JSON = dict[str, Any]

REGIONS = ("de-fra-1", "nl-ams-1")
DEFAULT_QUOTA = {
    "instances": 200,
    "cores": 800,
    "ram": 1_600_000,
    "volumes": 200,
    "gigabytes": 20_000,
    "snapshots": 200,
    "backups": 200,
    "floating_ips": 100,
    "load_balancers": 50,  # Octavia's (lb_models.py)
}


@dataclass
class Knobs:
    """Fault and speed knobs (``POST /_sandbox/config``)."""

    latency_ms: float = 0.0  # added to every API request
    failure_rate: float = 0.0  # share of API requests answered failure_status
    failure_status: int = 503
    throttle_rate: float = 0.0  # share of API requests answered 429 + Retry-After
    retry_after: int = 1
    drop_rate: float = 0.0  # share of API requests whose connection closes without a response
    drop_after: float = 0.0  # share of those drops made after the request took effect
    build_seconds: float = 0.05  # BUILD → ACTIVE, RESIZE → VERIFY_RESIZE
    volume_seconds: float = 0.02  # creating → available
    snapshot_seconds: float = 0.05  # a Cinder snapshot or backup: creating → available
    lb_seconds: float = 0.05  # an Octavia load balancer's PENDING_* → ACTIVE (lb_models.py)
    backup_fail_reason: str = ""  # set: new backups end in error with this fail_reason
    token_ttl: float = 3600.0  # seconds a Keystone token stays valid
    services: list[str] = field(default_factory=list)  # faults only here; [] = all
    quota: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_QUOTA))
    seed: int | None = None
    # Servers created with a key pair are backed by real sshds on 127.x.y.N (..sshd);
    # on by default when sshd is installed.
    ssh: bool = field(default_factory=lambda: sshd_path() is not None)
    ssh_port: int = field(default_factory=default_port)

    def update(self, data: JSON) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown knobs: {', '.join(sorted(unknown))}")
        for key, value in data.items():
            if key == "quota":
                if not isinstance(value, dict) or set(value) - set(DEFAULT_QUOTA):
                    raise ValueError(f"quota keys are {', '.join(DEFAULT_QUOTA)}")
                self.quota.update({k: int(v) for k, v in value.items()})
            elif key == "services":
                self.services = [str(s) for s in value]
            elif key == "seed":
                self.seed = None if value is None else int(value)
            elif key == "ssh":
                self.ssh = bool(value)
            elif key == "backup_fail_reason":
                self.backup_fail_reason = str(value or "")
            elif key in ("failure_status", "retry_after", "ssh_port"):
                setattr(self, key, int(value))
            else:
                setattr(self, key, float(value))

    def as_dict(self) -> JSON:
        return asdict(self)


@dataclass
class Region:
    """Everything one region's Nova/Neutron/Cinder/Glance hold (flavors and the public
    images are fixed)."""

    name: str
    servers: dict[str, JSON] = field(default_factory=dict)
    keypairs: dict[str, JSON] = field(default_factory=dict)
    server_groups: dict[str, JSON] = field(default_factory=dict)
    networks: dict[str, JSON] = field(default_factory=dict)
    subnets: dict[str, JSON] = field(default_factory=dict)
    ports: dict[str, JSON] = field(default_factory=dict)
    security_groups: dict[str, JSON] = field(default_factory=dict)
    security_group_rules: dict[str, JSON] = field(default_factory=dict)
    floatingips: dict[str, JSON] = field(default_factory=dict)
    routers: dict[str, JSON] = field(default_factory=dict)
    volumes: dict[str, JSON] = field(default_factory=dict)
    snapshots: dict[str, JSON] = field(default_factory=dict)  # Cinder snapshots
    backups: dict[str, JSON] = field(default_factory=dict)  # Cinder backups
    images: dict[str, JSON] = field(default_factory=dict)  # Glance: the project's snapshots
    allocated: dict[str, set[str]] = field(default_factory=dict)  # subnet id → IPs
    lbaas: dict[str, dict[str, JSON]] = field(default_factory=dict)  # Octavia (lb_models.py)
    barbican: dict[str, dict[str, JSON]] = field(default_factory=dict)  # secrets_models.py


class Store:
    """Process-wide state behind one lock."""

    def __init__(self, knobs: Knobs | None = None) -> None:
        self.lock = threading.RLock()
        self.initial_knobs = knobs.as_dict() if knobs else Knobs().as_dict()
        self.knobs = Knobs()
        self.knobs.update(self.initial_knobs)
        self.rng = random.Random(self.knobs.seed)
        self.tokens: dict[str, Any] = {}  # token → identity.Token (survive a reset)
        self.app_creds: dict[str, JSON] = {}  # Keystone application credentials by id
        self.keystone: Any = None  # Keystone's directory (identity_models.Directory)
        self.counts: collections.Counter[str] = collections.Counter()
        self.regions: dict[str, Region] = {}
        self.ssh = SshHosts()
        self.boots = Boots()  # console logs and user data runs (..boot)
        # this process's loopback addresses: per region i, servers' own addresses in
        # 127.S.2i.0/24 and the public (floating IP) network 127.S.2i+1.0/24
        self.loopback = random_network(16, (16, 128))
        self.pools: dict[str, LoopbackPool] = {}
        self.reset()

    def loopback_net(self, n: int) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.loopback[n * 256]}/24")

    def reset(self) -> None:
        """All resources back to the seeded start; knobs back to start-up values."""
        # seeds networks, subnets, default groups and the default router; the directory
        from . import identity, network_models, network_routers

        with self.lock:
            self.ssh.clear()
            self.boots.clear()
            self.knobs = Knobs()
            self.knobs.update(self.initial_knobs)
            self.rng = random.Random(self.knobs.seed)
            self.regions = {name: Region(name) for name in REGIONS}
            # identity: application credentials go, and so do the tokens made from them
            self.tokens = {t: v for t, v in self.tokens.items()
                           if getattr(v, "app_cred", None) is None}
            self.app_creds = {}
            self.keystone = identity.seed_directory()
            for index, region in enumerate(self.regions.values()):
                self.pools[region.name] = LoopbackPool(self.loopback_net(2 * index),
                                                       self.knobs.ssh_port)
                network_models.seed(region, index, str(self.loopback_net(2 * index + 1)))
                network_routers.seed(region)

    def configure(self, data: JSON) -> None:
        """Merge ``data`` into the knobs; all or nothing (ValueError names the problem)."""
        with self.lock:
            knobs = Knobs()
            knobs.update(self.knobs.as_dict())
            knobs.update(data)
            self.knobs = knobs
            if "seed" in data:
                self.rng = random.Random(self.knobs.seed)

    def count(self, service: str) -> None:
        with self.lock:
            self.counts[service] += 1

    def snapshot(self) -> JSON:
        with self.lock:
            return {"total": sum(self.counts.values()), "by_service": dict(self.counts)}
