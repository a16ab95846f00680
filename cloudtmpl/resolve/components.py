"""What Heat's ``OS::Heat::SoftwareComponent`` refuses at validate time, and what cloudtmpl
cannot run, as diagnostics: each ``configs`` item needs a ``config``; its ``actions`` are
among CREATE, DELETE, UPDATE, SUSPEND, RESUME; no action has two configs (Heat: "more
than one configuration for the same action"); its ``tool`` is one cloudtmpl runs (a
script over SSH).  A value known only later (a function) is not checked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl.loader import Path
from cloudtmpl.resolve.scope import Scope
from cloudtmpl.schema import did_you_mean
from cloudtmpl.software_kinds import COMPONENT_ACTIONS, COMPONENT_TOOLS

CODE = "invalid-component"


def check_component(scope: Scope, props: Mapping[str, Any], ppath: Path, name: str) -> None:
    doc = scope.doc
    configs = props.get("configs")
    if not isinstance(configs, list):
        return  # its type is checked with the property's
    seen: dict[str, int] = {}
    for i, item in enumerate(configs):
        ipath: Path = (*ppath, "configs", i)
        where = f"resource '{name}': configs[{i}]"
        if not isinstance(item, Mapping):
            scope.add(CODE, f"{where} must be a map", doc.loc(ipath),
                      "{actions: [CREATE, UPDATE], config: SCRIPT, tool: script}")
            continue
        if item.get("config") in (None, ""):
            scope.add(CODE, f"{where} needs a 'config'", doc.loc(ipath),
                      "give the script to run for its actions")
        tool = item.get("tool", "script")
        if isinstance(tool, str) and tool not in COMPONENT_TOOLS:
            scope.add(CODE, f"{where}: tool '{tool}' is not run here", doc.loc((*ipath, "tool")),
                      "cloudtmpl runs a component's config as a script over SSH: tool: script")
        actions = item.get("actions", ["CREATE", "UPDATE"])
        if not isinstance(actions, list):
            continue
        for action in actions:
            if not isinstance(action, str):
                continue
            if action not in COMPONENT_ACTIONS:
                scope.add(CODE, f"{where}: unknown action '{action}'",
                          doc.loc((*ipath, "actions")),
                          did_you_mean(action, COMPONENT_ACTIONS, "actions"))
            elif action in seen:
                scope.add(CODE, f"{where}: action {action} already has a config "
                          f"(configs[{seen[action]}])", doc.loc((*ipath, "actions")),
                          "one config per action: Heat refuses more than one")
            else:
                seen[action] = i
