"""Nova's consoles on the wire: the console log and the remote consoles.

``{"os-getConsoleOutput": {"length": N}}`` answers ``{"output": ...}``, the server's
console log (:mod:`...boot`: cloud-init's lines and everything its user data printed):
the last ``N`` lines, all of them for ``-1`` or ``null``; ``length`` is an integer or a
string of digits, at least -1 (400 otherwise, as Nova's schema); a server that was
never placed on a host (``ERROR`` from the scheduler) is a 409.

Remote consoles: ``POST /servers/{id}/remote-consoles`` from microversion 2.6
(``{"remote_console": {"protocol", "type"}}``; ``mks``/``webmks`` from 2.8) and,
before 2.6 only, the actions ``os-getVNCConsole`` (``novnc``, ``xvpvnc``),
``os-getSPICEConsole`` (``spice-html5``), ``os-getRDPConsole`` (``rdp-html5``) and
``os-getSerialConsole`` (``serial``).  Nova's validation: both fields required, each
one of its enum, nothing else (400); a type that is not the protocol's is Nova's
``Invalid console type`` (400); the emulator's compute is a libvirt one with VNC,
SPICE and the serial console enabled, so RDP and MKS are ``Unavailable console
type`` (400); a server that is not ``ACTIVE`` is a 409.  The URL is a fresh token on
the emulator's own host (it is not served: nothing draws a screen).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from . import compute_models as models
from . import versions
from .core import JSON, Call, Reply, Router, fault, new_id

router = Router()

# protocol -> its console types; the ones this compute serves
TYPES = {"vnc": ("novnc", "xvpvnc"), "spice": ("spice-html5",), "rdp": ("rdp-html5",),
         "serial": ("serial",), "mks": ("webmks",)}
ENABLED = ("vnc", "spice", "serial")
# the pre-2.6 actions: action -> protocol
ACTIONS = {"os-getVNCConsole": "vnc", "os-getSPICEConsole": "spice",
           "os-getRDPConsole": "rdp", "os-getSerialConsole": "serial"}
_PATHS = {"novnc": "vnc_lite.html?path=" + quote("?token=", safe=""),
          "xvpvnc": "console?token=", "spice-html5": "spice_auto.html?token=",
          "rdp-html5": "?token=", "serial": "?token=", "webmks": "?token="}


def handles(action: str) -> bool:
    return action == "os-getConsoleOutput" or action in ACTIONS


def action(call: Call, server: JSON, name: str, args: Any) -> Reply:
    """One of the console actions of ``POST /servers/{id}/action``."""
    if name == "os-getConsoleOutput":
        return Reply(200, {"output": console_output(call, server, args)})
    if versions.compute(call.headers) >= (2, 6):  # replaced by remote-consoles
        raise fault(404, "The resource could not be found.")
    protocol = ACTIONS[name]
    spec = _object(args, name)
    extra = set(spec) - {"type"}
    if extra:
        raise fault(400, f"Invalid input for field/attribute {name}. Additional properties "
                         f"are not allowed ({', '.join(sorted(map(repr, extra)))} was "
                         "unexpected)")
    kind = _enum(spec, "type", TYPES[protocol], name)
    return Reply(200, {"console": {"type": kind, "url": _url(call, server, protocol, kind)}})


@router.route("POST", "/servers/{server_id}/remote-consoles")
def _remote_console(call: Call) -> Reply:
    version = versions.compute(call.headers)
    if version < (2, 6):
        raise fault(404, "The resource could not be found.")
    body = call.body if isinstance(call.body, dict) else {}
    if set(body) != {"remote_console"}:
        raise fault(400, "Invalid input for field/attribute remote_console. "
                         "'remote_console' is a required property")
    spec = _object(body["remote_console"], "remote_console")
    extra = set(spec) - {"protocol", "type"}
    if extra:
        raise fault(400, "Invalid input for field/attribute remote_console. Additional "
                         f"properties are not allowed ({', '.join(sorted(map(repr, extra)))} "
                         "was unexpected)")
    protocols = [p for p in TYPES if p != "mks" or version >= (2, 8)]
    protocol = _enum(spec, "protocol", tuple(protocols), "remote_console")
    kind = _enum(spec, "type", tuple(t for p in protocols for t in TYPES[p]),
                 "remote_console")
    server = models.get_server(call.store, call.store.regions[call.region],
                               call.params["server_id"])  # after the body's schema, as Nova
    url = _url(call, server, protocol, kind)
    return Reply(200, {"remote_console": {"protocol": protocol, "type": kind, "url": url}})


def console_output(call: Call, server: JSON, args: Any) -> str:
    spec = _object(args, "os-getConsoleOutput")
    extra = set(spec) - {"length"}
    if extra:
        raise fault(400, "Invalid input for field/attribute os-getConsoleOutput. Additional "
                         f"properties are not allowed ({', '.join(sorted(map(repr, extra)))} "
                         "was unexpected)")
    length = _length(spec.get("length"))
    if server.get("_host") is None:
        raise fault(409, f"Instance {server['id']} is not ready")
    text = call.store.boots.console(server["id"]) or ""
    if length is None:
        return text
    if length == 0:
        return ""
    lines = text.split("\n")
    return "\n".join(lines[-length:])


def _length(value: Any) -> int | None:
    if value is None:
        return None
    bad = fault(400, f"Invalid input for field/attribute length. Value: {value}. "
                     f"{value!r} does not match '^-?[0-9]+$'")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise bad
    if isinstance(value, str):
        stripped = value[1:] if value.startswith("-") else value
        if not stripped.isdigit():
            raise bad
    number = int(value)
    if number < -1:
        raise fault(400, f"Invalid input for field/attribute length. Value: {value}. "
                         f"{number} is less than the minimum of -1")
    return None if number == -1 else number


def _object(value: Any, what: str) -> JSON:
    if not isinstance(value, dict):
        raise fault(400, f"Invalid input for field/attribute {what}. Value: {value!r}. "
                         f"{value!r} is not of type 'object'")
    return value


def _enum(spec: JSON, key: str, allowed: tuple[str, ...], what: str) -> str:
    if key not in spec:
        raise fault(400, f"Invalid input for field/attribute {what}. Value: {spec!r}. "
                         f"'{key}' is a required property")
    value = spec[key]
    if value not in allowed:
        raise fault(400, f"Invalid input for field/attribute {key}. Value: {value}. "
                         f"{value!r} is not one of {list(allowed)!r}")
    return str(value)


def _url(call: Call, server: JSON, protocol: str, kind: str) -> str:
    if kind not in TYPES[protocol]:
        raise fault(400, f"Invalid console type {kind}")
    if protocol not in ENABLED:
        raise fault(400, f"Unavailable console type {kind}.")
    if server["status"] != "ACTIVE":
        raise fault(409, f"Instance {server['id']} is not ready")
    host = call.root.split("://", 1)[-1].split("/", 1)[0]
    scheme = "ws" if kind == "serial" else "http"
    return f"{scheme}://{host}/console/{kind}/{_PATHS[kind]}{new_id()}"
