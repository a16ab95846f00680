"""A plain evaluation context and a parser of one-value documents, for the function tests."""

from __future__ import annotations

from typing import Any

from cloudtmpl.diagnostics import Diagnostic
from cloudtmpl.functions import parse_tree
from cloudtmpl.loader import load_text
from cloudtmpl.model import UNKNOWN


class Ctx:
    def __init__(self, params: dict[str, Any] | None = None,
                 conditions: dict[str, Any] | None = None,
                 attrs: dict[tuple[str, str], Any] | None = None) -> None:
        self.params = params or {}
        self.conditions = conditions or {}
        self.attrs = attrs or {}
        self.attr_calls: list[tuple[str, str, tuple[Any, ...]]] = []

    def param(self, name: str) -> Any:
        return self.params.get(name, UNKNOWN)

    def condition(self, name: str) -> Any:
        return self.conditions.get(name, UNKNOWN)

    def resource_ref(self, name: str) -> Any:
        return self.attrs.get((name, "ref"), UNKNOWN)

    def resource_attr(self, name: str, attr: str, path: tuple[Any, ...]) -> Any:
        self.attr_calls.append((name, attr, path))
        return self.attrs.get((name, attr), UNKNOWN)


def parse(text: str, condition: bool = False) -> tuple[Any, list[Diagnostic]]:
    doc = load_text(text, "f.yaml")
    diags: list[Diagnostic] = []
    return parse_tree(doc.data["v"], ("v",), doc, diags, condition=condition), diags


def ok(text: str, condition: bool = False) -> Any:
    tree, diags = parse(text, condition)
    assert diags == []
    return tree
