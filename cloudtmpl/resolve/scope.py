"""One template being resolved: its document, options and HOT version, and the
diagnostics found so far.  Every step of the resolver reports through it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl.compose import Outer, Select, rewrite
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc
from cloudtmpl.functions import Context, Function, GetParam, parse_tree, partial_evaluate
from cloudtmpl.loader import Document, Path
from cloudtmpl.model import UNKNOWN
from cloudtmpl.resolve.values import ResolveOptions
from cloudtmpl.schema import LATEST_HOT_VERSION, canonical_version, version_label

_TEMPLATE_SUFFIXES = (".yaml", ".template")


def section(data: Mapping[str, Any], key: str) -> Mapping[Any, Any]:
    """A top-level section of a template or environment ({} when absent or malformed)."""
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def is_template_file(name: str) -> bool:
    """Heat treats a registry target or type ending in .yaml/.template (or a URL) as a
    template resource (a nested stack)."""
    return name.endswith(_TEMPLATE_SUFFIXES) or "://" in name


class Scope:
    """The template, how it is resolved, and where its problems are collected."""

    def __init__(self, doc: Document, options: ResolveOptions) -> None:
        self.doc = doc
        self.options = options
        self.data: Mapping[str, Any] = doc.data if isinstance(doc.data, Mapping) else {}
        self.version = canonical_version(self.data.get("heat_template_version")) \
            or LATEST_HOT_VERSION
        self.diags: list[Diagnostic] = []

    def add(self, code: str, message: str, loc: Loc, hint: str = "") -> None:
        self.diags.append(Diagnostic(code, message, loc, hint))

    def feature(self, what: str, since: str, loc: Loc) -> None:
        """Report a template feature the declared heat_template_version does not have."""
        if self.version < since:
            self.add("feature-not-available",
                     f"{what} needs heat_template_version {version_label(since)} or later "
                     f"(this template declares {version_label(self.version)})", loc,
                     f"declare heat_template_version: {since} (or later, e.g. "
                     f"{LATEST_HOT_VERSION})")

    def parse(self, value: Any, path: Path, condition: bool = False) -> Any:
        """A parsed tree for the template's HOT version (diagnostics collected)."""
        tree = parse_tree(value, path, self.doc, self.diags, version=self.version,
                          condition=condition)
        deferred = self.options.deferred
        if not deferred:
            return tree

        def defer(node: Function) -> Any:
            if isinstance(node, GetParam) and node.param_name in deferred:
                outer = Outer((), node.loc, tree=deferred[node.param_name])
                return Select((outer, *node.args[1:]), node.loc) if node.args[1:] else outer
            return node

        return rewrite(tree, defer)

    def evaluate(self, tree: Any, ctx: Context) -> Any:
        """``tree`` partially evaluated (UNKNOWN, with its diagnostics, if it fails)."""
        try:
            return partial_evaluate(tree, ctx)
        except DiagnosticError as exc:
            self.diags.extend(exc.diagnostics)
            return UNKNOWN
