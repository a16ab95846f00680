"""Software configs as values: what a config, a cloud-config or a multipart MIME
document is, computed from its properties alone, and the pieces of a deployment's
properties (its inputs, outputs and actions) that do not depend on where it runs.

Pure: no SSH, no state.  :class:`cloudtmpl.providers.deploy.DeployAdapter` runs the
deployments; :mod:`cloudtmpl.providers.local` answers what get_attr reads.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

import yaml

from cloudtmpl.resources import DEPLOY_KINDS
from cloudtmpl.software_kinds import (
    CLOUD_CONFIG,
    MULTIPART_MIME,
    SOFTWARE_COMPONENT,
    SOFTWARE_CONFIG,
    STRUCTURED_CONFIG,
)

CONFIG_KINDS = frozenset({SOFTWARE_CONFIG.kind, STRUCTURED_CONFIG.kind,
                          SOFTWARE_COMPONENT.kind})
USER_DATA_KINDS = frozenset({CLOUD_CONFIG.kind, MULTIPART_MIME.kind})
SOFTWARE_KINDS = CONFIG_KINDS | USER_DATA_KINDS | DEPLOY_KINDS
CONFIG_ID = re.compile(r"^[a-z0-9_-]+\.\S+@[0-9a-f]{16}$")


def config_id(key: bytes, stack: str, address: str, kind: str, props: Mapping[str, Any]) -> str:
    """A config's id: its name plus a keyed digest of its content (no secret leaks)."""
    body = json.dumps([kind, props], sort_keys=True, default=str).encode()
    return f"{stack}.{address}@" + hmac.new(key, body, hashlib.sha256).hexdigest()[:16]


def cloud_config_text(props: Mapping[str, Any]) -> str:
    body = yaml.safe_dump(dict(props.get("cloud_config") or {}), sort_keys=False,
                          default_flow_style=False)
    return "#cloud-config\n" + body


def multipart_text(parts: Sequence[Any], resolve: Callable[[str], str | None]) -> str:
    """Heat's MultipartMime: each part's ``config`` is text or a config id (resolved)."""
    rendered: list[tuple[str, str, str]] = []
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        text = str(part.get("config") or "")
        text = resolve(text) or text
        subtype = str(part.get("subtype") or _guess_subtype(text))
        rendered.append((text, subtype, str(part.get("filename") or "")))
    digest = hashlib.sha256(json.dumps(rendered).encode()).hexdigest()[:24]
    msg = MIMEMultipart(boundary=f"===============cloudtmpl{digest}==")
    for text, subtype, filename in rendered:
        sub = MIMEText(text, subtype, "utf-8")
        if filename:
            sub.add_header("Content-Disposition", "attachment", filename=filename)
        msg.attach(sub)
    return msg.as_string()


def _guess_subtype(text: str) -> str:
    if text.startswith("#cloud-config"):
        return "cloud-config"
    if text.startswith("#!"):
        return "x-shellscript"
    return "plain"


def attributes(kind: str, props: Mapping[str, Any]) -> dict[str, Any]:
    """What get_attr reads from a software resource knowable from its properties alone
    (a deployment's results are known only after it ran)."""
    if kind == SOFTWARE_COMPONENT.kind:
        return {"config": {"configs": props.get("configs") or []}}
    if kind in CONFIG_KINDS:
        return {"config": props.get("config")}
    if kind == CLOUD_CONFIG.kind:
        return {"config": cloud_config_text(props)}
    if kind == MULTIPART_MIME.kind:
        return {"config": multipart_text(props.get("parts") or [], lambda ref: None)}
    return {}


def substitute_inputs(value: Any, inputs: Mapping[str, Any]) -> Any:
    """A structured config with ``{get_input: NAME}`` replaced by the input's value."""
    if isinstance(value, Mapping):
        if set(value) == {"get_input"}:
            return inputs.get(str(value["get_input"]))
        return {k: substitute_inputs(v, inputs) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_inputs(v, inputs) for v in value]
    return value


def component_config(configs: Any, action: str) -> Mapping[str, Any] | None:
    """The config of a SoftwareComponent's ``configs`` for ``action`` (each item's
    ``actions`` default to CREATE and UPDATE, as Heat's); None: it has none."""
    for item in configs or []:
        if isinstance(item, Mapping) and action in (item.get("actions") or
                                                    ["CREATE", "UPDATE"]):
            return item
    return None


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True)


def names_of(items: Any) -> list[str]:
    """Output/input names from ``[name, ...]`` or Heat's ``[{name: ...}, ...]``."""
    out = []
    for item in items or []:
        name = item.get("name") if isinstance(item, Mapping) else item
        if name and str(name) not in out:
            out.append(str(name))
    return out


def actions_of(props: Mapping[str, Any]) -> set[str]:
    return {str(a).upper() for a in props.get("actions") or ()}

