"""Security-group rules in one comparable shape (Heat's names), and the default egress
rules every cloud gives a new group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_RULE_DEFAULTS: dict[str, Any] = {
    "direction": "ingress",
    "ethertype": "IPv4",
    "protocol": "tcp",
    "port_range_min": None,
    "port_range_max": None,
    "remote_ip_prefix": None,
    "remote_group_id": None,
}


def canonical_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A security-group rule in one comparable shape (Heat's names).

    A rule names either a remote address range (``remote_ip_prefix``, default:
    everything of its ethertype) or a remote security group (``remote_group_id``).
    Heat's ``remote_mode`` is implied by which of the two is given.
    """
    out = {k: rule.get(k, v) for k, v in _RULE_DEFAULTS.items()}
    if out["remote_group_id"] is not None:
        out["remote_ip_prefix"] = None
    elif out["remote_ip_prefix"] is None:
        out["remote_ip_prefix"] = "::/0" if out["ethertype"] == "IPv6" else "0.0.0.0/0"
    proto = out["protocol"]
    out["protocol"] = "-1" if proto in (None, "any", "all", "-1", -1) else str(proto).lower()
    if out["protocol"] == "-1":
        out["port_range_min"] = out["port_range_max"] = None
    else:
        lo, hi = out["port_range_min"], out["port_range_max"]
        if lo is None and hi is None and out["protocol"] in ("tcp", "udp"):
            lo, hi = 1, 65535
        if lo is None and hi is None:
            lo = hi = -1  # icmp: all types
        lo = int(lo) if lo is not None else int(hi)
        hi = int(hi) if hi is not None else lo
        out["port_range_min"], out["port_range_max"] = lo, hi
    return out


# Clouds give every new security group these rules (EC2 the IPv4 one, Neutron
# both); adapters do not report them and desired rules drop them, so they never
# show up as a difference.
DEFAULT_EGRESS = canonical_rule({"direction": "egress", "protocol": "-1"})
DEFAULT_EGRESS_RULES = (
    DEFAULT_EGRESS,
    canonical_rule({"direction": "egress", "protocol": "-1", "ethertype": "IPv6"}),
)


def canonical_rules(rules: Any) -> list[dict[str, Any]]:
    if not isinstance(rules, list):
        return []
    return sorted((canonical_rule(r) for r in rules if isinstance(r, Mapping)),
                  key=lambda r: sorted((k, str(v)) for k, v in r.items()))
