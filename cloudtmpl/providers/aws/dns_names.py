"""DNS names and TXT values as Route53 writes them; pure functions."""

from __future__ import annotations

import re

MARKER_PREFIX = "_cloudtmpl-"  # a record's ownership TXT: _cloudtmpl-{type}.{name}


def fqdn_of(name: str, domain: str) -> str:
    name = (name or "").strip()
    if name in ("", "@"):
        return domain
    if name.endswith("."):
        return name.lower()
    return f"{name}.{domain}".lower()


def relative(fqdn: str, domain: str) -> str:
    fqdn = unescape_name(fqdn).lower()
    if fqdn == domain:
        return ""
    return fqdn[: -len(domain) - 1] if fqdn.endswith("." + domain) else fqdn


def unescape_name(name: str) -> str:
    """Route53 returns ``*`` and other specials as ``\\052``."""
    return re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), name)


def marker_name(rtype: str, name: str, domain: str) -> str:
    rel = "" if name in ("", "@") else name.rstrip(".")
    if rel.endswith("." + domain.rstrip(".")):
        rel = rel[: -len(domain)]
    label = f"{MARKER_PREFIX}{rtype.lower()}"
    return f"{label}.{rel}.{domain}" if rel else f"{label}.{domain}"


def quote_txt(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote_txt(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return re.sub(r'\\(["\\])', r"\1", value[1:-1])
    return value
