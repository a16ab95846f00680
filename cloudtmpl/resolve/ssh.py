"""SSH settings of a stack and its servers: their checks, the stack's own ``ssh:``
evaluated, and the stack-wide defaults each server inherits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cloudtmpl.functions import (
    OMIT,
    Context,
    Function,
    dependencies,
)
from cloudtmpl.loader import Path
from cloudtmpl.model import (
    DesiredResource,
    is_unknown,
)
from cloudtmpl.resolve.parameters import num_from
from cloudtmpl.resolve.scope import Scope
from cloudtmpl.resources import DEPLOY_KINDS
from cloudtmpl.schema import (
    describe,
    did_you_mean,
)
from cloudtmpl.software_kinds import SSH_SETTINGS, SSH_VIA


def ssh_problems(settings: Mapping[str, Any], check_keys: bool = True
                 ) -> list[tuple[str, str, str, str]]:
    """``(key, code, message, hint)`` for each problem of an SSH settings map (a
    deployment's ``ssh``, a hook's ``ssh``, the stack's ``ssh:``).  Values that are
    function calls or unknown until apply are not checked (they are when they run)."""
    out: list[tuple[str, str, str, str]] = []
    for key, value in settings.items():
        if key not in SSH_SETTINGS:
            if check_keys:
                out.append((str(key), "unknown-key", f"unknown SSH setting '{key}'",
                            did_you_mean(key, SSH_SETTINGS, "settings")))
            continue
        if value is None or isinstance(value, Function) or is_unknown(value):
            continue
        if key == "via" and value not in SSH_VIA:
            shown = repr(value) if isinstance(value, str) else describe(value)
            out.append((key, "invalid-value", f"must be floating, public or private, not {shown}",
                        did_you_mean(value, SSH_VIA, "values") + "; it says which of the "
                        "server's addresses to connect to (leave it out for: floating, else "
                        "public, else private)"))
        elif key in ("user", "key_file", "key_pair") and not (isinstance(value, str) and value):
            out.append((key, "invalid-type", f"must be a non-empty string, not "
                        f"{describe(value)}", f"write the {key.replace('_', ' ')} as text"))
        elif key == "port" and _port(value) is None:
            out.append((key, "invalid-value", f"must be a port number from 1 to 65535, not "
                        f"{value!r}", "e.g. port: 22"))
        elif key == "timeout" and (isinstance(value, bool) or (num_from(value) or 0) <= 0):
            out.append((key, "invalid-value", f"must be a number of seconds above 0, not "
                        f"{value!r}", "how long to wait for SSH to come up, e.g. timeout: 300"))
        elif key == "bastion" and not (isinstance(value, str) and value) \
                and not isinstance(value, Mapping):
            out.append((key, "invalid-type", f"must be user@host:port or a mapping, not "
                        f"{describe(value)}", "bastion: ops@jump.example.com:22 or "
                        "{host, port, user, key_file}"))
    return out


def check_ssh(scope: Scope, settings: Mapping[str, Any], path: Path, owner: str,
              known_keys: bool = True) -> None:
    """Diagnostics for the literal values of an SSH settings map (values still
    unknown, or function calls, are checked when they run)."""
    for key, code, message, hint in ssh_problems(settings, check_keys=known_keys):
        where = scope.doc.key_loc((*path, key)) if code == "unknown-key" \
            else scope.doc.loc((*path, key))
        scope.add(code, f"{owner}.{key}: {message}" if code != "unknown-key"
                  else f"{owner}: {message}", where, hint)


def stack_ssh(scope: Scope, ctx: Context) -> dict[str, Any]:
    """The template's top-level ``ssh:`` (the stack's default SSH settings), evaluated:
    parameters are fine, other resources are not (the defaults reach lifecycle hooks,
    which run when those resources may be gone)."""
    raw = scope.data.get("ssh")
    if not isinstance(raw, Mapping):
        return {}  # not a mapping: reported by the schema
    path: Path = ("ssh",)
    value = scope.evaluate(scope.parse(dict(raw), path), ctx)
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        if dependencies(item):
            scope.add("ssh-reference", f"the stack's ssh.{key} refers to a resource, which "
                      "the stack's SSH defaults cannot (they reach lifecycle hooks too)",
                      scope.doc.loc((*path, key)),
                      "use a literal value or a parameter (a key pair cloudtmpl generated "
                      f"is named <stack>.<resource>, e.g. {scope.options.stack}.key); or set "
                      "it in the deployment's own ssh property")
        elif is_unknown(item):
            if scope.options.mode == "plan":
                scope.add("ssh-reference", f"the stack's ssh.{key} is not known before "
                          "apply", scope.doc.loc((*path, key)),
                          "use a literal value or a parameter")
        elif item is not None and item is not OMIT:
            out[str(key)] = item
    check_ssh(scope, out, path, "ssh", known_keys=False)
    return out


def _port(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    number = value if isinstance(value, int) else \
        int(value) if isinstance(value, str) and value.strip().isdigit() else None
    return number if number is not None and 0 < number < 65536 else None


def _ssh_under(defaults: Mapping[str, Any], own: Any) -> Any:
    """``own`` SSH settings with ``defaults`` filling the keys it does not set (a key
    set to null is not set, as in Heat).  A whole-map function call or unknown value is
    the resource's own choice: left as it is."""
    if own is None:
        return dict(defaults)
    if not isinstance(own, Mapping):
        return own
    return {**defaults, **{k: v for k, v in own.items() if v is not None}}


def with_ssh_defaults(resources: Mapping[str, DesiredResource],
                      defaults: Mapping[str, Any]) -> dict[str, DesiredResource]:
    """``resources`` with the stack's default SSH settings (its top-level ``ssh:``)
    merged under every deployment's and deployment group's ``ssh`` property and every
    ``pre_delete``/``pre_replace`` hook's and script health check's ``ssh``: the
    resource's own settings win key by key.  A hook's own ``timeout`` counts as its SSH
    timeout (it wins over the stack's ``timeout``); a health check has its own.
    Pure: the same input gives the same output."""
    if not defaults:
        return dict(resources)
    out: dict[str, DesiredResource] = {}
    for address, res in resources.items():
        if res.kind in DEPLOY_KINDS:
            res = replace(res, properties={
                **res.properties, "ssh": _ssh_under(defaults, res.properties.get("ssh"))})
        hooks = {which: hook for which, hook in res.lifecycle.items()
                 if which in ("pre_delete", "pre_replace") and isinstance(hook, Mapping)}
        if hooks:
            lifecycle = dict(res.lifecycle)
            for which, hook in hooks.items():
                base = {k: v for k, v in defaults.items()
                        if not (k == "timeout" and hook.get("timeout") is not None)}
                lifecycle[which] = {**hook, "ssh": _ssh_under(base, hook.get("ssh"))}
            res = replace(res, lifecycle=lifecycle)
        rolling = res.update_policy.get("rolling_update")
        check = rolling.get("health_check") if isinstance(rolling, Mapping) else None
        if isinstance(rolling, Mapping) and isinstance(check, Mapping) \
                and check.get("script"):
            # a script health check runs over SSH like a hook, with its own timeout
            base = {k: v for k, v in defaults.items() if k != "timeout"}
            res = replace(res, update_policy={**res.update_policy, "rolling_update": {
                **rolling, "health_check": {**check,
                                            "ssh": _ssh_under(base, check.get("ssh"))}}})
        out[address] = res
    return out
