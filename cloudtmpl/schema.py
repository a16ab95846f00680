"""The shape of HOT templates and environment files, as JSON Schema (Draft 2020-12).

:func:`validate_template` and :func:`validate_environment` translate *every*
jsonschema error into a :class:`~cloudtmpl.diagnostics.Diagnostic` with a stable
code, the location of the offending key or value and a hint.  Only shape is
checked here; meaning (types known, parameters declared, references valid) is
checked by :mod:`cloudtmpl.resolve`.

Subschemas may carry two non-standard annotations that jsonschema ignores:
``x-code`` (the diagnostic code to use for errors of that subschema) and
``x-expect`` (a human description of what is expected, used in messages).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from cloudtmpl.diagnostics import Diagnostic
from cloudtmpl.loader import Document, Path
from cloudtmpl.software_kinds import SSH_SETTINGS

#: Every published HOT version date, oldest first (Heat's template classes).
HOT_DATES: tuple[str, ...] = (
    "2013-05-23",
    "2014-10-16",
    "2015-04-30",
    "2015-10-15",
    "2016-04-08",
    "2016-10-14",
    "2017-02-24",
    "2017-09-01",
    "2018-03-02",
    "2018-08-31",
    "2021-04-16",
)
#: Release names Heat accepts for a version (from Newton on).
HOT_RELEASES: dict[str, str] = {
    "newton": "2016-10-14",
    "ocata": "2017-02-24",
    "pike": "2017-09-01",
    "queens": "2018-03-02",
    "rocky": "2018-08-31",
    "wallaby": "2021-04-16",
}
LATEST_HOT_VERSION = HOT_DATES[-1]

#: Every published HOT version: dates and the release names Heat accepts for them.
HOT_VERSIONS: tuple[str, ...] = tuple(sorted((*HOT_DATES, *HOT_RELEASES),
                                             key=lambda v: (HOT_RELEASES.get(v, v), v)))


def canonical_version(version: object) -> str | None:
    """The date of a HOT version given as a date or release name; None if unknown."""
    if not isinstance(version, str):
        return None
    if version in HOT_DATES:
        return version
    return HOT_RELEASES.get(version)


def version_label(date: str) -> str:
    """``2016-10-14 (newton)`` or just the date for versions without a release name."""
    names = [n for n, d in HOT_RELEASES.items() if d == date]
    return f"{date} ({names[0]})" if names else date


PARAMETER_TYPES = ("string", "number", "boolean", "json", "comma_delimited_list")
MERGE_STRATEGIES = ("overwrite", "merge", "deep_merge")
DELETION_POLICIES = ("Delete", "Retain", "Snapshot", "delete", "retain", "snapshot")

_STR: dict[str, Any] = {"type": "string"}
_STR_LIST: dict[str, Any] = {"type": "array", "items": _STR, "x-expect": "a list of strings"}
_NUMBER: dict[str, Any] = {"type": "number"}
_ANY: dict[str, Any] = {}
# A condition: a condition name, a boolean, or a condition function call.
_CONDITION: dict[str, Any] = {
    "type": ["string", "boolean", "object"],
    "x-expect": "a condition name, true/false or a condition function",
}


def _obj(properties: Mapping[str, Any], required: Sequence[str] = (),
         expect: str = "", **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": dict(properties),
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    if expect:
        schema["x-expect"] = expect
    schema.update(extra)
    return schema


def _map_of(value_schema: Mapping[str, Any], expect: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": dict(value_schema), "x-expect": expect}


_CONSTRAINT = _obj(
    {
        "allowed_values": {"type": "array", "x-expect": "a list of values"},
        "range": _obj({"min": _NUMBER, "max": _NUMBER}, minProperties=1,
                      expect="a mapping with 'min' and/or 'max'"),
        "length": _obj({"min": {"type": "integer", "minimum": 0},
                        "max": {"type": "integer", "minimum": 0}}, minProperties=1,
                       expect="a mapping with 'min' and/or 'max'"),
        "allowed_pattern": _STR,
        "modulo": _obj({"step": _NUMBER, "offset": _NUMBER}, required=("step", "offset"),
                       expect="a mapping with 'step' and 'offset'"),
        "custom_constraint": _STR,
        "description": _STR,
    },
    minProperties=1,
    expect="a constraint mapping (allowed_values, range, length, allowed_pattern, "
    "modulo or custom_constraint)",
)

_PARAMETER = _obj(
    {
        "type": {"enum": list(PARAMETER_TYPES), "x-code": "unknown-parameter-type"},
        "default": _ANY,
        "hidden": {"type": "boolean"},
        "label": _STR,
        "description": _STR,
        "constraints": {"type": "array", "items": _CONSTRAINT, "x-expect": "a list of constraints"},
        "immutable": {"type": "boolean"},
        "tags": _STR_LIST,
    },
    required=("type",),
    expect="a parameter definition mapping",
)

_PARAMETER_GROUP = _obj(
    {"label": _STR, "description": _STR, "parameters": _STR_LIST},
    expect="a parameter group mapping",
)

_STACK_PLACEMENT = _obj(
    {
        "provider": _STR,
        "region": _STR,
        "residency": _obj({"countries": _STR_LIST, "jurisdictions": _STR_LIST,
                           "regions": _STR_LIST},
                          expect="a mapping with 'countries' or 'jurisdictions'"),
    },
    expect="a placement mapping (provider, region, residency)",
)

_RESOURCE_PLACEMENT = _obj(
    {
        "provider": _STR,
        "region": _STR,
        "country": _STR,
        "jurisdiction": _STR,
        "pinned": {"type": "boolean"},
        "spread": {"type": "array", "items": _STR},
    },
    expect="a placement mapping (provider, region, country, jurisdiction, pinned, spread)",
)

_HOOK = _obj(
    # values may be functions (get_param): checked once evaluated, in resolve
    {"script": {}, "timeout": {}, "on_failure": {}, "address": {}, "ssh": {}},
    required=("script",),
    expect="a hook {script, timeout, on_failure: abort|continue, address, ssh}",
)

# cloudtmpl extension: the stack's default SSH connection settings.  Values may be
# functions (get_param): checked once evaluated, in resolve.
_STACK_SSH = _obj(
    {key: {} for key in SSH_SETTINGS},
    expect="a mapping of SSH settings (" + ", ".join(SSH_SETTINGS) + ")",
)

_RESOURCE = _obj(
    {
        "type": _STR,
        "properties": {"type": "object", "x-expect": "a mapping of property values"},
        "depends_on": {"anyOf": [_STR, _STR_LIST],
                       "x-expect": "a resource name or a list of resource names"},
        "condition": _CONDITION,
        "metadata": {"type": "object", "x-expect": "a mapping"},
        "deletion_policy": {"enum": list(DELETION_POLICIES)},
        "update_policy": {"type": "object", "x-expect": "a mapping"},
        # cloudtmpl extension: hooks run over SSH on a server before it goes away
        "lifecycle": {"type": "object", "additionalProperties": False,
                      "properties": {
                          "pre_delete": _HOOK,
                          "pre_replace": _HOOK,
                          "create_before_destroy": {"type": "boolean"}},
                      "x-expect": "a mapping {pre_delete: HOOK, pre_replace: HOOK, "
                                  "create_before_destroy: true|false}"},
        # cloudtmpl extension: per-resource timeouts in seconds (create covers update)
        "timeouts": {"type": "object", "additionalProperties": False,
                     "properties": {"create": {"type": "number", "exclusiveMinimum": 0},
                                    "delete": {"type": "number", "exclusiveMinimum": 0}},
                     "x-expect": "a mapping {create: SECONDS, delete: SECONDS}"},
        "placement": _RESOURCE_PLACEMENT,
    },
    required=("type",),
    expect="a resource definition mapping",
)

_OUTPUT = _obj(
    {"value": _ANY, "description": _STR, "condition": _CONDITION},
    expect="an output definition mapping",
)

TEMPLATE_SCHEMA: dict[str, Any] = _obj(
    {
        "heat_template_version": {"enum": list(HOT_VERSIONS),
                                  "x-code": "unknown-template-version"},
        "description": _STR,
        "parameter_groups": {"type": "array", "items": _PARAMETER_GROUP,
                             "x-expect": "a list of parameter groups"},
        "parameters": _map_of(_PARAMETER, "a mapping of parameter name to definition"),
        "conditions": _map_of(_CONDITION, "a mapping of condition name to definition"),
        "resources": _map_of(_RESOURCE, "a mapping of resource name to definition"),
        "outputs": _map_of(_OUTPUT, "a mapping of output name to definition"),
        "placement": _STACK_PLACEMENT,
        "ssh": _STACK_SSH,
    },
    required=("heat_template_version",),
    expect="a template mapping",
)
TEMPLATE_SCHEMA["$schema"] = "https://json-schema.org/draft/2020-12/schema"

ENVIRONMENT_SCHEMA: dict[str, Any] = _obj(
    {
        "parameters": {"type": "object", "x-expect": "a mapping of parameter values"},
        "parameter_defaults": {"type": "object", "x-expect": "a mapping of parameter defaults"},
        "resource_registry": {
            "type": "object",
            "properties": {"resources": _map_of(
                {"type": "object", "x-expect": "a mapping of type name to type or "
                 "template file (and hooks/restricted_actions)"},
                "a mapping of resource name to registry entries")},
            "additionalProperties": {"type": "string",
                                     "x-expect": "a resource type or a template file"},
            "x-expect": "a mapping of type name to type or template file"},
        "parameter_merge_strategies": _map_of(
            {"enum": list(MERGE_STRATEGIES)},
            "a mapping of parameter name (or 'default') to merge strategy"),
        "event_sinks": {"type": "array", "x-expect": "a list of event sinks"},
        "encrypted_param_names": _STR_LIST,
    },
    expect="an environment mapping",
)
ENVIRONMENT_SCHEMA["$schema"] = "https://json-schema.org/draft/2020-12/schema"

_TEMPLATE_VALIDATOR = Draft202012Validator(TEMPLATE_SCHEMA)
_ENVIRONMENT_VALIDATOR = Draft202012Validator(ENVIRONMENT_SCHEMA)

_JSON_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "null",
}


def closest(name: object, candidates: Iterable[str]) -> str | None:
    """The candidate most similar to ``name`` (difflib), if any is close enough."""
    found = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(name: object, candidates: Iterable[str], noun: str = "") -> str:
    """A hint: 'did you mean X?' plus the allowed names."""
    names = sorted(candidates)
    best = closest(name, names)
    listed = ", ".join(names) if len(names) <= 20 else ", ".join(names[:20]) + ", ..."
    allowed = f"allowed{' ' + noun if noun else ''}: {listed}" if names else ""
    if best is not None:
        return f"did you mean '{best}'? ({allowed})" if allowed else f"did you mean '{best}'?"
    return allowed


def describe(value: Any) -> str:
    """A short type description of a YAML value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _where(path: Path) -> str:
    return ".".join(str(p) for p in path) if path else "the top level"


def _expect(schema: Mapping[str, Any]) -> str:
    if "x-expect" in schema:
        return str(schema["x-expect"])
    types = schema.get("type")
    if isinstance(types, str):
        return _JSON_NAMES.get(types, types)
    if isinstance(types, list):
        return " or ".join(_JSON_NAMES.get(str(t), str(t)) for t in types)
    return "a different value"


def _translate(err: ValidationError, doc: Document, kind: str) -> list[Diagnostic]:
    path: Path = tuple(err.absolute_path)
    schema = err.schema if isinstance(err.schema, Mapping) else {}
    code_override = schema.get("x-code")
    keyword = err.validator
    instance = err.instance

    if keyword == "additionalProperties" and isinstance(instance, Mapping):
        allowed = list(schema.get("properties", {}))
        out = []
        for key in instance:
            if key in allowed:
                continue
            top = not path
            code = "unknown-section" if top else "unknown-key"
            what = f"unknown {kind} section" if top else f"unknown key in {_where(path)}"
            out.append(Diagnostic(
                code, f"{what}: '{key}'", doc.key_loc((*path, key)),
                did_you_mean(key, allowed, "sections" if top else "keys")))
        return out

    if keyword == "required" and isinstance(instance, Mapping):
        missing = [k for k in err.validator_value if k not in instance]
        return [Diagnostic(
            "missing-key", f"{_where(path)} is missing the required key '{k}'",
            doc.key_loc(path) if path else doc.loc(path),
            f"add '{k}:'" + (" (e.g. 'heat_template_version: 2021-04-16')"
                             if k == "heat_template_version" else ""))
            for k in missing]

    if keyword == "enum":
        allowed_values = [str(v) for v in err.validator_value]
        code = str(code_override or "invalid-value")
        if code == "unknown-template-version":
            message = f"unknown heat_template_version '{instance}'"
            best = closest(instance, allowed_values)
            hint = (f"did you mean '{best}'? " if best else "") + (
                "use a published HOT version such as 2021-04-16 (wallaby); known: "
                + ", ".join(allowed_values))
        else:
            message = f"invalid value '{instance}' for {_where(path)}"
            hint = did_you_mean(instance, allowed_values, "values")
        return [Diagnostic(code, message, doc.loc(path), hint)]

    if keyword in ("type", "anyOf", "oneOf"):
        expect = _expect(schema)
        return [Diagnostic(
            str(code_override or "invalid-type"),
            f"{_where(path)} must be {expect}, not {describe(instance)}",
            doc.loc(path), f"write {expect} here")]

    if keyword == "minProperties":
        return [Diagnostic(
            "missing-key", f"{_where(path)} must not be empty", doc.loc(path),
            f"write {_expect(schema)}")]

    if keyword == "minimum":
        return [Diagnostic(
            "invalid-value", f"{_where(path)} must be at least {err.validator_value}",
            doc.loc(path), "use a non-negative number")]

    # Any other keyword: still a diagnostic, never a traceback.
    return [Diagnostic(str(code_override or "invalid-value"),
                       f"{_where(path)}: {err.message}", doc.loc(path), "")]


def _validate(validator: Draft202012Validator, doc: Document, kind: str) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    for err in validator.iter_errors(doc.data):
        diags.extend(_translate(err, doc, kind))
    unique = list(dict.fromkeys(diags))
    return sorted(unique, key=lambda d: (d.loc.line, d.loc.column, d.code))


def validate_template(doc: Document) -> list[Diagnostic]:
    """Every shape problem of a HOT template, sorted by position."""
    return _validate(_TEMPLATE_VALIDATOR, doc, "template")


def validate_environment(doc: Document) -> list[Diagnostic]:
    """Every shape problem of an environment file, sorted by position."""
    return _validate(_ENVIRONMENT_VALIDATOR, doc, "environment")
