"""Choosing a resource's provider target and region (DESIGN sections 3 and 7).

For now a simple, pure chooser; it will grow into the residency solver.

The target is, first match wins: the resource's ``placement.provider``, the
stack's ``placement.provider``, ``--target``, ``default_target``.  The region is
taken from the same levels, but a level's region only counts when that level
names no provider or names the chosen one (a ``--target os-fra/RegionOne``
region never applies to a resource pinned to ``aws-eu``); else the target's
default region.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from cloudtmpl.diagnostics import error
from cloudtmpl.model import Placement, Target


class PlacementOptions(Protocol):
    """The part of the resolve options placement needs."""

    @property
    def target(self) -> str | None: ...

    @property
    def default_target(self) -> str | None: ...

    @property
    def targets(self) -> Mapping[str, Target]: ...


def split_target(spec: str | None) -> tuple[str | None, str | None]:
    """``"T/REGION"`` -> ``("T", "REGION")``; ``"T"`` -> ``("T", None)``."""
    if not spec:
        return None, None
    name, _, region = spec.partition("/")
    return (name or None), (region or None)


def _str(ext: Mapping[str, Any] | None, key: str) -> str | None:
    if not isinstance(ext, Mapping):
        return None
    value = ext.get(key)
    return value if isinstance(value, str) and value else None


def choose(resource_ext: Mapping[str, Any] | None, stack_ext: Mapping[str, Any] | None,
           options: PlacementOptions) -> Placement:
    """The placement of one resource, or a DiagnosticError (no-target, unknown-target,
    no-region)."""
    cli_target, cli_region = split_target(options.target)
    levels: list[tuple[str | None, str | None]] = [
        (_str(resource_ext, "provider"), _str(resource_ext, "region")),
        (_str(stack_ext, "provider"), _str(stack_ext, "region")),
        (cli_target, cli_region),
        (options.default_target, None),
    ]
    target = next((p for p, _ in levels if p), None)
    if target is None:
        raise error(
            "no-target", "no provider target chosen for this resource",
            hint="pass --target sandbox-aws (or another target, optionally as TARGET/REGION), "
            "set default_target in cloudtmpl.yaml, or add a 'placement: {provider: ...}' "
            "section to the template")
    known = options.targets.get(target)
    if known is None:
        names = ", ".join(sorted(options.targets)) or "(none configured)"
        raise error("unknown-target", f"unknown provider target '{target}'",
                    hint=f"known targets: {names}; targets are defined under 'providers:' "
                    "in cloudtmpl.yaml")
    region = next((r for p, r in levels if r and (p is None or p == target)), None)
    region = region or known.region
    if not region:
        raise error("no-region", f"no region chosen for target '{target}'",
                    hint=f"pass --target {target}/REGION, set 'region:' for {target} in "
                    "cloudtmpl.yaml, or add 'placement: {region: ...}' to the template")
    return Placement(target=target, region=region,
                     country=_str(resource_ext, "country"),
                     jurisdiction=_str(resource_ext, "jurisdiction"))

