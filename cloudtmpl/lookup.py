"""The lookups before discovery: do the flavors, images, networks and key pairs a
stack names exist on their clouds, and in what form (an image by name or by a catalog
filter becomes its id)?

A phase of its own between resolve and discover: each distinct value is asked once
per (target, region); what is missing is a diagnostic with what the cloud offers
instead, before anything is planned.  :func:`check_choices` returns the cloud's own
form of each value, which the planner compares and the executor sends.
"""

from __future__ import annotations

from typing import Protocol

from cloudtmpl.catalog import Catalog
from cloudtmpl.desired import CHOICES, catalog_choice
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc, error
from cloudtmpl.model import Target
from cloudtmpl.providers.base import Adapter, Choice, CloudError, image_finder
from cloudtmpl.resolve import ResolvedStack
from cloudtmpl.sensitive import is_marked


class OpenClouds(Protocol):
    """The open targets of a session: what a lookup asks."""

    targets: dict[str, Target]
    adapters: dict[str, Adapter]
    catalogs: dict[str, Catalog]


CUSTOM_CONSTRAINTS = {"nova.flavor": "flavor", "glance.image": "image",
                      "neutron.network": "network", "nova.keypair": "keypair"}


_WHAT = {"flavor": "flavor", "image": "image", "network": "network",
         "keypair": "key pair"}


ChoiceKey = tuple[str, str, str, str]  # (target, region, what, value after the catalog)


class Lookups:
    """The clouds' answers on the flavors, images, networks and key pairs of one plan:
    each distinct value is asked once per (target, region), catalog filters included."""

    def __init__(self, session: OpenClouds) -> None:
        self.session = session
        self.answers: dict[ChoiceKey, Choice] = {}

    def ask(self, target: str, region: str, what: str, value: str) -> tuple[ChoiceKey, Choice]:
        """``value`` (abstract or native) as the cloud has it; raises CloudError."""
        key_value, query = catalog_choice(what, value, self.session.catalogs[target], region)
        key = (target, region, what, key_value)
        if key not in self.answers:
            adapter = self.session.adapters[target]
            if isinstance(query, str):
                self.answers[key] = adapter.lookup_choice(region, what, query)
            else:
                finder = image_finder(adapter)
                self.answers[key] = (finder.find_image(region, query) if finder is not None
                                     else Choice(None))
        return key, self.answers[key]

    def missing(self, target: str, region: str, what: str, value: str) -> str:
        """Why ``value`` was not found, naming the catalog's filter when it has one."""
        query = catalog_choice(what, value, self.session.catalogs[target], region)[1]
        if is_marked(value):
            return (f"{what} (a sensitive value) does not exist on target {target!r} "
                    f"in region {region}")
        if isinstance(query, str):
            return f"{what} {value!r} does not exist on target {target!r} in region {region}"
        if image_finder(self.session.adapters[target]) is None:
            return (f"image {value!r} is a catalog filter ({query.text()}), which target "
                    f"{target!r} ({self.session.targets[target].type}) cannot search")
        return (f"image {value!r} (the catalog's filter: {query.text()}) matches no image "
                f"on target {target!r} in region {region}")

    def offers(self, target: str, region: str, what: str, choice: Choice) -> list[str]:
        """What to suggest instead: the catalog's abstract names (images: only those
        that exist in ``region``, each looked up once), then what the cloud listed."""
        catalog = self.session.catalogs[target]
        if what == "image":
            abstract = [name for name in sorted(catalog.images)
                        if self.ask(target, region, what, name)[1].canonical is not None]
        else:
            abstract = sorted(catalog.sizes) if what == "flavor" else []
        return abstract + [o for o in choice.offered if o not in abstract]


def _shown(names: list[str]) -> str:
    return ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


def _cloud_error(target: str, region: str, err: CloudError, loc: Loc,
                 asked: object = None) -> DiagnosticError:
    """``err`` as a diagnostic; a sensitive value that was asked for is not repeated."""
    message = err.message
    if isinstance(asked, str) and asked and is_marked(asked):
        message = message.replace(str(asked), "(sensitive)")
    return error("cloud-error", f"{target}/{region}: {message}", loc,
                 "check the target's credentials, endpoint and region")


def check_custom_constraints(session: OpenClouds, stack: ResolvedStack,
                             lookups: Lookups | None = None) -> None:
    """Parameters with ``custom_constraint: nova.flavor`` (etc.) name something that exists
    in every cloud region the stack uses.  Other custom constraints are not checked."""
    lookups = lookups or Lookups(session)
    scopes = sorted({(r.placement.target, r.placement.region) for r in stack.resources.values()
                     if session.targets[r.placement.target].type != "local"})
    diags = []
    for c in stack.custom_constraints:
        what = CUSTOM_CONSTRAINTS.get(c.name)
        if what is None or not isinstance(c.value, str):
            continue
        for target, region in scopes:
            try:
                _, choice = lookups.ask(target, region, what, c.value)
                if choice.canonical is not None:
                    continue
                offers = lookups.offers(target, region, what, choice)
            except CloudError as err:
                raise _cloud_error(target, region, err, c.loc) from None
            shown = "the value" if c.hidden else repr(c.value)
            query = catalog_choice(what, c.value, session.catalogs[target], region)[1]
            problem = (lookups.missing(target, region, what, c.value)
                       if not c.hidden and not isinstance(query, str)  # a catalog filter
                       else f"{shown} is not a {_WHAT[what]} on {target}/{region}")
            diags.append(Diagnostic(
                "parameter-constraint",
                f"parameter '{c.parameter}': {problem} (custom_constraint {c.name})",
                c.loc,
                f"{target} offers: {_shown(offers)}" if offers
                else f"give a {what} that exists in {region}"))
    if diags:
        raise DiagnosticError(diags)


def check_choices(session: OpenClouds, stack: ResolvedStack,
                  lookups: Lookups | None = None) -> dict[ChoiceKey, str]:
    """Flavors, images and external networks exist on their targets, and in what form.

    One lookup per distinct value.  Abstract names were translated through the
    catalog first (a catalog filter is searched for in the cloud: the newest match);
    what is left must be something the cloud has, or the plan would fail half-way
    through apply.  Returns the cloud's own form of each value (an image named by
    name or by a catalog filter becomes its id) for the planner's comparison and the
    executor's requests.
    """
    lookups = lookups or Lookups(session)
    found: dict[ChoiceKey, Choice] = {}
    diags = []
    for res in stack.resources.values():
        target, region = res.placement.target, res.placement.region
        for (kind, prop), what in CHOICES.items():
            value = res.properties.get(prop)
            if kind != res.kind or not isinstance(value, str):
                continue  # another kind, not given, or unknown until apply
            try:
                key, choice = lookups.ask(target, region, what, value)
                found[key] = choice
                if choice.canonical is not None:
                    continue
                shown = _shown(lookups.offers(target, region, what, choice))
            except CloudError as err:
                raise _cloud_error(target, region, err, res.loc, value) from None
            diags.append(
                Diagnostic(
                    f"unknown-{what}",
                    f"resource {res.address!r}: {lookups.missing(target, region, what, value)}",
                    res.loc,
                    f"{target} offers: {shown}" if shown
                    else f"give a {what} id that exists in {region}",
                )
            )
    if diags:
        raise DiagnosticError(diags)
    return {key: str(choice.canonical) for key, choice in found.items()}
