"""A resource's ``lifecycle:``: create_before_destroy and the pre_delete/pre_replace
hooks a server runs over SSH, evaluated and checked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl.functions import Context, dependencies
from cloudtmpl.loader import Path
from cloudtmpl.model import is_unknown
from cloudtmpl.resolve.scope import Scope
from cloudtmpl.resolve.ssh import check_ssh
from cloudtmpl.schema import describe

# kinds whose identity is a tag (a second copy under the same name can exist a while)
CREATE_FIRST = frozenset({"Cloud::Compute::Server", "Cloud::Block::Volume"})


def lifecycle(scope: Scope, name: str, rdef: Mapping[str, Any], kind: str, ctx: Context
              ) -> dict[str, Any]:
    """The resource's lifecycle hooks, evaluated (they may use parameters, not other
    resources: the server's own address and key are found when the hook runs).
    ``kind`` is the resource's native kind ("" when its type is unknown)."""
    raw = rdef.get("lifecycle")
    if not isinstance(raw, Mapping):
        return {}
    doc = scope.doc
    path: Path = ("resources", name, "lifecycle")
    value = scope.evaluate(scope.parse(dict(raw), path), ctx)
    if dependencies(value) or is_unknown(value):
        scope.add("lifecycle-reference", f"resource '{name}': lifecycle hooks cannot refer "
                  "to other resources", doc.key_loc(path),
                  "the hook runs on this server, whose address and key are known; use "
                  "parameters or literal values")
        return {}
    if value.get("create_before_destroy") and kind not in CREATE_FIRST:
        scope.add("lifecycle-create-first", f"resource '{name}': create_before_destroy "
                  f"needs a resource the cloud tells apart by tags, not by name ({kind})",
                  doc.loc((*path, "create_before_destroy")),
                  "it works for " + ", ".join(sorted(CREATE_FIRST)))
    for which in ("pre_delete", "pre_replace"):
        hook = value.get(which)
        if isinstance(hook, Mapping) and hook.get("on_failure", "abort") not in (
                "abort", "continue"):
            scope.add("invalid-value", f"resource '{name}': {which}.on_failure must be "
                      f"abort or continue, not {describe(hook.get('on_failure'))}",
                      doc.loc((*path, which, "on_failure")),
                      "abort keeps the server when the hook fails; continue removes it anyway")
        if isinstance(hook, Mapping) and not isinstance(hook.get("script"), str):
            scope.add("invalid-type", f"resource '{name}': {which}.script must be a string",
                      doc.loc((*path, which, "script")), "a shell script run on the server")
        if isinstance(hook, Mapping) and isinstance(hook.get("ssh"), Mapping):
            check_ssh(scope, hook["ssh"], (*path, which, "ssh"),
                      f"resource '{name}': {which}.ssh")
        elif isinstance(hook, Mapping) and hook.get("ssh") is not None:
            scope.add("invalid-type", f"resource '{name}': {which}.ssh must be a mapping of "
                      f"SSH settings, not {describe(hook['ssh'])}",
                      doc.loc((*path, which, "ssh")),
                      "e.g. ssh: {user: ubuntu, key_pair: mystack.key, via: private}")
    if (value.get("pre_delete") or value.get("pre_replace")) and \
            kind != "Cloud::Compute::Server":
        scope.add("lifecycle-hook-kind", f"resource '{name}': pre_delete/pre_replace hooks "
                  "run on a server over SSH", doc.key_loc(path),
                  "put the hook on the server resource")
    return dict(value)
