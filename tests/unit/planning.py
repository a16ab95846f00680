"""A small stack, its catalog and the live state a previous apply left: the planner's fixtures.

Pure values (no cloud): the unit tests of the planner, the executor's walk, the
step builder and the catalog's image lookups build their plans from these.
"""

from __future__ import annotations

from typing import Any

from cloudtmpl.catalog import Catalog
from cloudtmpl.desired import RefContext, desired_spec
from cloudtmpl.discover import Discovery
from cloudtmpl.loader import load_text
from cloudtmpl.model import LiveResource, Placement, Target, spec_hash
from cloudtmpl.plan import Plan, make_plan
from cloudtmpl.resolve import ResolvedStack, ResolveOptions, resolve

TEMPLATE = """\
heat_template_version: 2021-04-16
parameters:
  flavor: {type: string, default: small}
  image: {type: string, default: ubuntu}
  port: {type: number, default: 80}
  secret: {type: string, default: s3cr3t-value, hidden: true}
placement: {provider: t, region: r1}
resources:
  sg:
    type: Cloud::Network::SecurityGroup
    properties:
      rules: [{protocol: tcp, port_range_min: {get_param: port}, port_range_max: {get_param: port}}]
  web:
    type: Cloud::Compute::Server
    properties:
      image: {get_param: image}
      flavor: {get_param: flavor}
      security_groups: [{get_resource: sg}]
      user_data: {str_replace: {template: "pw=$P", params: {$P: {get_param: secret}}}}
  vol:
    type: Cloud::Block::Volume
    properties: {size: 10}
  att:
    type: Cloud::Block::VolumeAttachment
    properties: {instance_uuid: {get_resource: web}, volume_id: {get_resource: vol}}
"""

CATALOG = Catalog(
    name="t",
    type="aws",
    sizes={"small": "t3.small", "medium": "t3.medium"},
    images={"ubuntu": {"r1": "ami-1"}, "debian": "ami-2"},
)
TARGETS = {"t": Target(name="t", type="aws", region="r1")}
IDS = {"sg": "sg-1", "web": "i-1", "vol": "vol-1", "att": "vol-1:i-1"}


def stack(text: str = TEMPLATE, **params: str) -> ResolvedStack:
    return resolve(
        load_text(text, "t.yaml"),
        ResolveOptions(
            stack="s",
            params=params,
            environments=(),
            mode="plan",
            target=None,
            default_target=None,
            targets=TARGETS,
        ),
    )


def live_for(st: ResolvedStack, *, region: str = "r1", **overrides: Any) -> dict[str, LiveResource]:
    """Live resources exactly as a previous apply of ``st`` left them."""
    out: dict[str, LiveResource] = {}

    def known(name: str) -> LiveResource | None:
        return out.get(name)

    ctx = RefContext(st, known)
    for address, res in st.resources.items():
        spec = desired_spec(res, ctx, CATALOG, ("s3cr3t-value",))
        observed = {k: v for k, v in spec.items() if k != "user_data"}
        observed.update(overrides.get(address, {}))
        out[address] = LiveResource(
            address,
            res.kind,
            IDS[address],
            Placement("t", region),
            properties=observed,
            attributes={"first_address": "10.0.0.5"},
            spec_hash=spec_hash(spec),
        )
    return out


def discovery(live: dict[str, LiveResource], *extra: LiveResource) -> Discovery:
    found: dict[str, tuple[LiveResource, ...]] = {a: (r,) for a, r in live.items()}
    for r in extra:
        found[r.address] = (*found.get(r.address, ()), r)
    return Discovery(live=found, api_requests=5, seconds=0.1)


def plan_of(
    st: ResolvedStack,
    live: dict[str, LiveResource],
    *extra: LiveResource,
    last: dict[str, Any] | None = None,
) -> Plan:
    return make_plan(st, discovery(live, *extra), last or {}, {"t": CATALOG}, state_serial=3)



# -- deletion_policy Snapshot --------------------------------------------------------------

SNAP = TEMPLATE.replace(
    "  vol:\n    type: Cloud::Block::Volume\n",
    "  vol:\n    type: Cloud::Block::Volume\n    deletion_policy: Snapshot\n").replace(
    "  web:\n    type: Cloud::Compute::Server\n",
    "  web:\n    type: Cloud::Compute::Server\n    deletion_policy: Snapshot\n")
EMPTY = "heat_template_version: 2021-04-16\nplacement: {provider: t, region: r1}\nresources: {}\n"


def last_specs(st: ResolvedStack) -> dict[str, Any]:
    """The specs a previous apply of ``st`` recorded (its deletion policies with them)."""
    live = live_for(st)
    ctx = RefContext(st, live.get)
    return {a: desired_spec(r, ctx, CATALOG, ("s3cr3t-value",))
            for a, r in st.resources.items()}
