"""Discovery: read-only listing of a stack's live resources in every cloud it uses.

One adapter ``discover`` call per (provider target, region), all in parallel;
each adapter lists every resource kind once, following all pages,
so the number of API requests grows with regions x kinds, not with resources.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cloudtmpl.model import LiveResource
from cloudtmpl.providers.base import Adapter, CloudError


@dataclass(frozen=True)
class Discovery:
    """Live resources by address (a list: a crash can leave duplicates behind)."""

    live: Mapping[str, tuple[LiveResource, ...]]
    api_requests: int
    seconds: float


def discover(
    stack: str,
    wanted: Mapping[tuple[str, str], frozenset[str]],
    adapters: Mapping[str, Adapter],
    parallelism: int = 10,
) -> Discovery:
    """List ``stack``'s resources for every (target, region) -> kinds in ``wanted``.

    Raises CloudError if a listing fails: planning against a partial view of
    the cloud could propose duplicates, so there is no partial result.
    """
    started = time.monotonic()
    before = {name: a.request_count() for name, a in adapters.items()}
    jobs = sorted(wanted.items())

    def run(job: tuple[tuple[str, str], frozenset[str]]) -> list[LiveResource]:
        (target, region), kinds = job
        return adapters[target].discover(region, kinds, stack)

    found: dict[str, list[LiveResource]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(jobs) or 1))) as pool:
        for (scope, _), result in zip(jobs, pool.map(run, jobs), strict=True):
            for res in result:
                if res.placement.target != scope[0] or res.placement.region != scope[1]:
                    raise CloudError(f"adapter returned {res.address} from the wrong scope")
                found.setdefault(res.address, []).append(res)
    requests = sum(a.request_count() - before[name] for name, a in adapters.items())
    live = {
        addr: tuple(sorted(items, key=lambda r: r.physical_id)) for addr, items in found.items()
    }
    return Discovery(live=live, api_requests=requests, seconds=time.monotonic() - started)
