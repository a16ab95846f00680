"""Environments merged in order, as Heat merges them: parameter values by each
file's ``parameter_merge_strategies``, the ``resource_registry``, later files
winning.  A registry entry's template file is relative to its environment file
(python-heatclient's rule), kept as a key of :mod:`cloudtmpl.resolve.files`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cloudtmpl.diagnostics import Loc
from cloudtmpl.loader import Document, Path
from cloudtmpl.resolve.files import file_key, file_path_problem
from cloudtmpl.resolve.parameters import merge_parameter
from cloudtmpl.resolve.scope import Scope, is_template_file, section
from cloudtmpl.resolve.values import RegistryEntry, ResourceRegistry
from cloudtmpl.schema import MERGE_STRATEGIES, did_you_mean, validate_environment

# a parameter's value and where it was given
Given = dict[str, tuple[Any, Loc]]


def merge_environments(scope: Scope, declared: Mapping[str, Mapping[str, Any]]
                       ) -> tuple[Given, Given, ResourceRegistry]:
    """(parameters, parameter_defaults, registry) of the run's environments."""
    given: Given = {}
    defaults: Given = {}
    strategies: dict[str, str] = {}
    types: dict[str, RegistryEntry] = {}
    per_resource: dict[str, dict[str, RegistryEntry]] = {}
    for env in scope.options.environments:
        scope.diags.extend(validate_environment(env))
        edata = env.data if isinstance(env.data, Mapping) else {}
        chosen = {k: v for k, v in section(edata, "parameter_merge_strategies").items()
                  if v in MERGE_STRATEGIES}
        for name_of, values in (("parameters", given), ("parameter_defaults", defaults)):
            merging = bool(values)  # as in Heat, the first values are never merged
            for name, value in section(edata, name_of).items():
                path: Path = (name_of, name)
                if name not in declared:
                    if name_of == "parameters":
                        scope.add("unknown-parameter",
                                  f"the environment sets parameter '{name}', which the "
                                  "template does not declare", env.key_loc(path),
                                  did_you_mean(name, declared, "parameters")
                                  or "use parameter_defaults for values shared by several "
                                  "templates")
                    continue
                if value is not None:
                    _merge_value(scope, declared, env, name, value, path, values,
                                 chosen.get(name, chosen.get("default", "overwrite")),
                                 strategies if merging else None)
        _read_registry(env, _env_base(scope.doc.file, env.file),
                       section(edata, "resource_registry"), types, per_resource)
    registry = scope.options.registry or ResourceRegistry(types, per_resource)
    return given, defaults, registry


def _merge_value(scope: Scope, declared: Mapping[str, Mapping[str, Any]], env: Document,
                 name: str, value: Any, path: Path, values: Given, strategy: str,
                 strategies: dict[str, str] | None) -> None:
    loc = env.loc(path)
    if strategies is not None:
        earlier = strategies.setdefault(name, strategy)
        if earlier != strategy:
            where = ("parameter_merge_strategies", name)
            scope.add("merge-strategy-conflict",
                      f"parameter '{name}': merge strategy '{strategy}' conflicts with "
                      f"'{earlier}' from an earlier environment",
                      env.key_loc(where) if env.get(where) else loc,
                      "give a parameter the same merge strategy in every environment")
            return
    if strategy == "overwrite" or name not in values:
        values[name] = (value, loc)
        return
    ptype = declared[name].get("type")
    merged, problem = merge_parameter(ptype, values[name][0], value,
                                      deep=strategy == "deep_merge")
    if problem is not None:
        scope.add("invalid-merge-strategy", f"parameter '{name}' ({ptype}): {problem}", loc,
                  f"use 'overwrite' for '{name}' in parameter_merge_strategies")
        return
    values[name] = (merged, loc)


def _env_base(template: str, env: str) -> str:
    """The environment file's directory as a key: relative to the template's directory."""
    rel = os.path.relpath(os.path.abspath(os.path.dirname(env) or "."),
                          os.path.abspath(os.path.dirname(template) or "."))
    return "" if rel == "." else rel.replace(os.sep, "/")


def _read_registry(env: Document, base: str, registry: Mapping[Any, Any],
                   types: dict[str, RegistryEntry],
                   per_resource: dict[str, dict[str, RegistryEntry]]) -> None:
    def entry(name: str, target: str, path: Path) -> RegistryEntry:
        is_template = is_template_file(target)
        if is_template and file_path_problem(target) is None:
            target = file_key(base, target)
        return RegistryEntry(name, target, env.loc(path), is_template)

    for name, target in registry.items():
        if name == "resources" and isinstance(target, Mapping):
            for rname, entries in target.items():
                for tname, value in (entries.items() if isinstance(entries, Mapping)
                                     else ()):
                    if tname not in ("hooks", "restricted_actions") and \
                            isinstance(value, str):
                        per_resource.setdefault(str(rname), {})[str(tname)] = entry(
                            str(tname), value,
                            ("resource_registry", "resources", rname, tname))
        elif isinstance(name, str) and isinstance(target, str):
            types[name] = entry(name, target, ("resource_registry", name))
