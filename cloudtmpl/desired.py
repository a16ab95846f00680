"""The desired-spec pipeline, one for plan and apply: a resource's properties evaluated
(``get_resource``/``get_attr`` answered from live resources), translated (abstract sizes
and images to the cloud's own), canonical, and sealed for what is recorded.

Also the secrets the pipeline seals: the hidden parameters' values and the sensitive
leaves of the parameters, and the values of random strings.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from cloudtmpl import attr_paths, functions, network_kinds, orchestration_kinds, resources
from cloudtmpl.catalog import Catalog, ImageFilter
from cloudtmpl.diagnostics import Diagnostic, Loc
from cloudtmpl.model import UNKNOWN, DesiredResource, LiveResource, Placement, seal
from cloudtmpl.resolve import ResolvedStack
from cloudtmpl.sensitive import carry, has_marks, mark, texts


def secrets_of(stack: ResolvedStack) -> tuple[str, ...]:
    """The values of hidden parameters, as text, to seal wherever they appear (the text
    net under the marks of :mod:`cloudtmpl.sensitive`)."""
    out = []
    for name in sorted(stack.hidden):
        value = stack.parameters.get(name)
        if value is None or value == "":
            continue
        out.append(value if isinstance(value, str) else json.dumps(value))
    return tuple(out)


def free_texts(stack: ResolvedStack) -> tuple[str, ...]:
    """What free text (a cloud's error message, a script's output, what a cloud reports)
    is searched for: the hidden values whole, and every sensitive leaf of the
    parameters (a hidden map's password, a list's token) of 4 characters or more."""
    return tuple(dict.fromkeys((*secrets_of(stack), *sorted(texts(stack.parameters)))))


# Properties whose value names something the cloud offers: (kind, property) -> what.
CHOICES: dict[tuple[str, str], str] = {
    (resources.SERVER.kind, "flavor"): "flavor",
    (resources.SERVER.kind, "image"): "image",
    (resources.FLOATING_IP.kind, "floating_network"): "network",
    (network_kinds.ROUTER_GATEWAY.kind, "network"): "network",
}

# (target, region, what, value as written after the catalog) -> the cloud's own form;
# an image the catalog finds by a filter is keyed by its abstract name
Natives = Mapping[tuple[str, str, str, str], str]


def catalog_choice(what: str, value: str, catalog: Catalog, region: str
                   ) -> tuple[str, str | ImageFilter]:
    """(``value``'s key in :data:`Natives`, what to ask the cloud for): a flavor or
    image through the catalog; a catalog filter is asked for, keyed by ``value``."""
    if what == "flavor":
        return catalog.size(value), catalog.size(value)
    if what == "image":
        native = catalog.image(value, region)
        return (native if isinstance(native, str) else value), native
    return value, value


def translate(
    kind: str,
    properties: Mapping[str, Any],
    catalog: Catalog,
    placement: Placement,
    natives: Natives | None = None,
) -> dict[str, Any]:
    """Abstract sizes and images (``flavor: small``) to the provider's native values,
    in the form the cloud reports them (``natives``: an image name or a catalog filter
    becomes the image id the plan's lookup found)."""
    out = dict(properties)
    for (k, prop), what in CHOICES.items():
        value = out.get(prop)
        if k != kind or not isinstance(value, str):
            continue
        key, _ = catalog_choice(what, value, catalog, placement.region)
        out[prop] = (natives or {}).get((placement.target, placement.region, what, key), key)
    return out


class RefContext:
    """Answers ``get_resource``/``get_attr`` from live resources (or UNKNOWN).

    A sensitive attribute is answered marked (:mod:`cloudtmpl.sensitive`): a random
    string's value, and any attribute whose text holds one of ``secrets()`` (a
    script's output that echoes a password).
    """

    def __init__(self, stack: ResolvedStack, known: Callable[[str], LiveResource | None],
                 secrets: Callable[[], tuple[str, ...]] | None = None) -> None:
        self._stack = stack
        self._known = known
        self._secrets = secrets or (lambda: ())
        self._lock = threading.Lock()  # apply evaluates in parallel
        self._warnings: dict[tuple[Loc, str], Diagnostic] = {}
        # False: an attribute the cloud is asked for only when read (``asks_the_cloud``,
        # a server's console_urls) is unknown rather than fetched
        self.fetching = True

    @contextlib.contextmanager
    def known_only(self) -> Iterator[None]:
        """Evaluate with what discovery read, asking the cloud for nothing more (the
        plan's look at its outputs, for their warnings only)."""
        self.fetching = False
        try:
            yield
        finally:
            self.fetching = True

    def param(self, name: str) -> Any:
        return self._stack.parameters.get(name)

    def condition(self, name: str) -> bool:
        raise KeyError(name)  # conditions are evaluated before planning

    def resource_ref(self, name: str) -> Any:
        """``get_resource``: the physical id; a random string's value (as Heat's
        RandomString references it), marked."""
        live = self._known(name)
        if live is None:
            return UNKNOWN
        ref = orchestration_kinds.REF_ATTRIBUTE.get(live.kind)
        if ref is not None:  # a wait condition handle's: its signal URL, a credential
            return mark(live.attributes[ref]) if live.attributes.get(ref) else UNKNOWN
        if live.kind == resources.RANDOM_STRING.kind and "value" in live.attributes:
            return mark(live.attributes["value"])
        return live.physical_id

    def resource_attrs(self, name: str) -> Any:
        """``{get_attr: [name]}`` (HOT 2015-10-15): the kind's attributes as a map, without
        ``show``, as Heat's all-attributes form leaves it out."""
        live = self._known(name)
        if live is None:
            return UNKNOWN
        rtype = resources.TYPES[live.kind]
        return {a: self.resource_attr(name, a, ()) for a in live.attributes
                if a != "show" and (rtype.open_attributes or a in rtype.attributes)}

    def resource_attr(self, name: str, attr: str, path: tuple[Any, ...]) -> Any:
        return self.resource_attr_at(name, attr, path, None)

    def resource_attr_at(self, name: str, attr: str, path: tuple[Any, ...],
                         loc: Loc | None) -> Any:
        """The attribute's value at ``path``; null where Heat answers null (a key or
        index the value does not have), with a warning at ``loc`` (:attr:`warnings`)."""
        live = self._known(name)
        if live is None or attr not in live.attributes:
            return UNKNOWN
        value: Any = live.attributes[attr]
        if not self.fetching and getattr(value, "asks_the_cloud", False):
            return UNKNOWN
        if sensitive_attribute(live.kind, attr) or _holds(value, self._secrets()):
            value = mark(value)
        value, missing = attr_paths.select(value, path)
        if missing is not None and loc is not None:
            found = attr_paths.missing_warning(name, attr, path, missing, loc)
            with self._lock:
                self._warnings.setdefault((found.loc, found.message), found)
        return value

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        """What evaluation warned about so far, each once, in the order first seen."""
        with self._lock:
            return tuple(self._warnings.values())


def sensitive_attribute(kind: str, attr: str) -> bool:
    """An attribute that is a secret whatever it was made from: a random string's value,
    a wait condition handle's signal URL (and what holds it), a stored secret's value
    (a kind's ``sensitive_attributes``)."""
    rtype = resources.TYPES.get(kind)
    return (kind == resources.RANDOM_STRING.kind and attr == "value") \
        or attr in orchestration_kinds.SECRET_ATTRIBUTES.get(kind, ()) \
        or (rtype is not None and attr in rtype.sensitive_attributes)


def _holds(value: Any, secrets: tuple[str, ...]) -> bool:
    if isinstance(value, str):
        return any(s and s in value for s in secrets)
    if isinstance(value, Mapping):
        return any(_holds(v, secrets) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds(v, secrets) for v in value)
    return False


def derived(live: LiveResource, real: Mapping[str, Any]) -> LiveResource:
    """``live``, a local resource computed from ``real`` properties, with its attributes
    marked sensitive when any of those properties is (a value or a cloud-config
    rendered with a password: derived from a secret).  A deployment's attributes are
    what its script reported (free text: searched for the secrets' text instead)."""
    if not resources.TYPES[live.kind].local or live.kind in resources.DEPLOY_KINDS \
            or not has_marks(real):
        return live
    return replace(live, attributes=mark(dict(live.attributes)))


def real_properties(
    res: DesiredResource, ctx: RefContext, catalog: Catalog, natives: Natives | None = None
) -> dict[str, Any]:
    """The resource's properties, evaluated, translated and canonical (secrets in clear:
    for the cloud only)."""
    props = functions.evaluate(dict(res.properties), ctx)
    props = carry(props, translate(res.kind, props, catalog, res.placement, natives))
    props = carry(props, resources.canonical(res.kind, props))
    rtype = resources.TYPES.get(res.kind)
    secret = {n for n, spec in rtype.properties.items() if spec.sensitive} if rtype else set()
    return carry(props, {k: mark(v) if k in secret else v for k, v in props.items()})


POLICY = "deletion_policy"  # kept in the spec (not sent to the cloud) when not Delete
LIFECYCLE = "lifecycle"  # hooks, kept in the spec so a removed server still runs its own


def spec_of(res: DesiredResource, real: Mapping[str, Any], secrets: tuple[str, ...],
            key: bytes = b"") -> dict[str, Any]:
    """What is recorded (state, spec tag) for ``real`` properties: sealed (every
    sensitive value, and any string holding one of ``secrets``: the hidden values
    whole), with the resource's deletion policy when it is not the default, so a
    resource removed from the template is still known to be kept."""
    spec = seal(dict(real), secrets, key)
    if res.deletion_policy != "Delete":
        spec[POLICY] = res.deletion_policy
    if res.lifecycle:
        spec[LIFECYCLE] = seal(dict(res.lifecycle), secrets, key)
    return spec


def desired_spec(
    res: DesiredResource,
    ctx: RefContext,
    catalog: Catalog,
    secrets: tuple[str, ...],
    natives: Natives | None = None,
    key: bytes = b"",
) -> dict[str, Any]:
    """The resource's properties, evaluated, translated, canonical and sealed."""
    return spec_of(res, real_properties(res, ctx, catalog, natives), secrets, key)


def local_secrets(lives: Iterable[LiveResource]) -> tuple[str, ...]:
    """The values of random strings and the signal URLs of wait condition handles
    among ``lives`` (sealed wherever they are written)."""
    out = []
    for r in lives:
        if r.kind == resources.RANDOM_STRING.kind and r.attributes.get("value"):
            out.append(str(r.attributes["value"]))
        ref = orchestration_kinds.REF_ATTRIBUTE.get(r.kind)
        if ref is not None and r.attributes.get(ref):
            out.append(str(r.attributes[ref]))
    return tuple(out)
