"""The values of resolving: its options, what it returns, the resource registry,
and the parse cache one run shares with its nested resolves."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cloudtmpl import limits
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc
from cloudtmpl.loader import Document, load_text
from cloudtmpl.model import (
    DesiredResource,
    Output,
    Target,
)
from cloudtmpl.names import name_problems
from cloudtmpl.placement import Request, Residency
from cloudtmpl.scaling import Recorded, ScalingGroup
from cloudtmpl.schema import (
    LATEST_HOT_VERSION,
    validate_template,
)

Mode = Literal["validate", "plan"]

PSEUDO_PARAMETERS = ("OS::stack_name", "OS::stack_id", "OS::project_id")


@dataclass(frozen=True)
class ResolveOptions:
    stack: str
    params: Mapping[str, str] = field(default_factory=dict)  # -p KEY=VALUE (strings)
    environments: Sequence[Document] = ()  # -e files, merged in order
    mode: Mode = "plan"
    target: str | None = None  # --target T or T/REGION
    default_target: str | None = None  # from cloudtmpl.yaml
    targets: Mapping[str, Target] = field(default_factory=dict)
    # the reader of the files templates name (get_file, template resources): a key, a
    # path relative to the root template's directory -> the file's text (raises
    # OSError when it cannot; :mod:`cloudtmpl.sourcefiles`).  None: no file can be read.
    read_file: Callable[[str], str] | None = None
    # this template's directory as such a key ("" for the root template), and the root
    # template's directory as the user named it (None: this is the root template)
    file_base: str = ""
    file_root: str | None = None
    # A nested template (a template resource, a group member, OS::Heat::Stack):
    # parameter values from the parent's properties (value, where it was given),
    # those that refer to the parent's resources as trees, and the parent's registry.
    # Placement is solved once, for the flattened stack, by the outermost resolve.
    nested: bool = False
    parent_values: Mapping[str, tuple[Any, Loc]] = field(default_factory=dict)
    deferred: Mapping[str, Any] = field(default_factory=dict)
    registry: ResourceRegistry | None = None
    # The scaling groups as recorded (size, definition digest, indexes scaled in),
    # read from the state store when a template has a scaling group (None: no state)
    scaling_records: Callable[[], Mapping[str, Recorded]] | None = None


class ParseCache:
    """What one run computes once per distinct template text: the parsed document,
    its schema diagnostics, its node count.  Made by :func:`resolve` and handed to
    every nested resolve of that run (a group of 50 members parses its member
    template once); dropped with the run.  Documents are never modified."""

    def __init__(self) -> None:
        self._documents: dict[tuple[str, str], Document | DiagnosticError] = {}
        self._problems: dict[tuple[str, str], list[Diagnostic]] = {}
        self._nodes: dict[tuple[str, str], int] = {}

    def document(self, text: str, file: str) -> Document | DiagnosticError:
        """``text`` parsed as ``file``, or why it could not be."""
        key = (file, text)
        if key not in self._documents:
            try:
                self._documents[key] = load_text(text, file)
            except DiagnosticError as exc:
                self._documents[key] = exc
        return self._documents[key]

    def problems(self, doc: Document) -> list[Diagnostic]:
        """The template's schema and resource-name diagnostics."""
        key = (doc.file, doc.text)
        if key not in self._problems:
            self._problems[key] = [*validate_template(doc), *name_problems(doc)]
        return self._problems[key]

    def nodes(self, doc: Document) -> int:
        """The number of values in ``doc`` (counted against what the budget has left)."""
        key = (doc.file, doc.text)
        if key not in self._nodes:
            self._nodes[key] = limits.count_nodes(doc.data, limits.remaining_nodes())
        return self._nodes[key]


@dataclass(frozen=True)
class CustomConstraint:
    """A parameter's ``custom_constraint`` for the engine to check against the provider."""

    parameter: str
    name: str  # e.g. nova.flavor, glance.image, nova.keypair, neutron.network
    value: Any  # the typed parameter value
    loc: Loc  # where the value was given
    hidden: bool = False  # never show the value


@dataclass(frozen=True)
class RegistryEntry:
    """An environment ``resource_registry`` mapping: a type to a type or a template file."""

    name: str  # the type name mapped (may end in '*')
    target: str  # a resource type (alias) or a template file path
    loc: Loc
    is_template: bool = False

    def mapped(self, type_name: str) -> str:
        """The target for ``type_name`` (wildcards keep the matched suffix)."""
        if self.name.endswith("*") and self.target.endswith("*"):
            return self.target[:-1] + type_name[len(self.name) - 1:]
        return self.target


@dataclass(frozen=True)
class ResourceRegistry:
    """The merged ``resource_registry`` of the environments (later files win)."""

    types: Mapping[str, RegistryEntry] = field(default_factory=dict)
    # resource name (may contain '*') -> type name -> entry
    resources: Mapping[str, Mapping[str, RegistryEntry]] = field(default_factory=dict)

    def lookup(self, resource: str, type_name: str) -> RegistryEntry | None:
        """The entry mapping ``type_name`` for ``resource``: per-resource entries first,
        then exact type names, then the longest matching wildcard."""
        for pattern, entries in self.resources.items():
            if fnmatch.fnmatchcase(resource, pattern) and type_name in entries:
                return entries[type_name]
        if type_name in self.types:
            return self.types[type_name]
        matches = [e for n, e in self.types.items()
                   if n.endswith("*") and type_name.startswith(n[:-1])]
        return max(matches, key=lambda e: len(e.name)) if matches else None


@dataclass(frozen=True)
class ResolvedStack:
    name: str
    description: str
    resources: Mapping[str, DesiredResource]  # template order
    outputs: Mapping[str, Output]
    parameters: Mapping[str, Any]  # typed values (known ones)
    hidden: frozenset[str]
    template_hash: str
    params_hash: str
    residency: Residency | None = None  # the stack's residency rule, if it has one
    version: str = LATEST_HOT_VERSION  # heat_template_version, as a date
    files: Mapping[str, str] = field(default_factory=dict)  # every file get_file read
    custom_constraints: tuple[CustomConstraint, ...] = ()  # for the engine to check
    immutable: frozenset[str] = frozenset()  # parameters that must not change on update
    parameter_locs: Mapping[str, Loc] = field(default_factory=dict)  # name -> declaration
    registry: ResourceRegistry = field(default_factory=ResourceRegistry)
    # nested resolves only: what the outermost resolve needs to place the resources
    requests: Mapping[str, Request] = field(default_factory=dict)
    # the scaling groups (top level): their bounds and the size their members follow
    scaling: Mapping[str, ScalingGroup] = field(default_factory=dict)


def target_candidates(options: ResolveOptions) -> list[str]:
    """The targets a resource of the stack may go to, as far as the options tell:
    ``--target``, else the project's default, else every target of the project."""
    chosen = options.target or options.default_target
    if chosen:
        return [chosen.split("/", 1)[0]]
    return sorted(options.targets)
