"""EC2 instances boot as cloud-init would, and ``GetConsoleOutput`` shows it.

After every EC2 call that can change an instance (and after :meth:`Ec2Hosts.sync`,
so an instance with a key pair has its sshd root), :meth:`Ec2Boots.sync` walks
moto's instances: one that is ``running`` and was not boots (:mod:`.boot`: its
``UserData`` runs, once per instance what cloud-init runs once, as the login user in
its server root), one that stopped or is terminated is halted (its processes
killed), one that is gone is forgotten.  ``RebootInstances`` halts and boots the
instances again (moto's reboot changes nothing): per-boot parts only run again.

``GetConsoleOutput`` is moto's answer (its ``InvalidInstanceID.*`` errors included)
with ``output`` replaced by the instance's console log, base64 as EC2 sends it: the
last 64 KB, as EC2 keeps; no ``output`` at all while there is none.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from typing import Any

from .aws_hosts import Ec2Hosts
from .boot import Boots

DATASOURCE = "DataSourceEc2Local"
MAX_OUTPUT = 64 * 1024
_OUTPUT_RE = re.compile(rb"<output>[^<]*</output>|<output\s*/>")
_INSTANCE_ID = re.compile(r"^InstanceId(\.\d+)?$")


def _user_data(value: Any) -> bytes | None:
    """moto's stored ``UserData`` (base64, as sent) as bytes."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    encoded = value.as_bytes() if hasattr(value, "as_bytes") else value
    try:
        return base64.b64decode(encoded)
    except (binascii.Error, ValueError, TypeError):
        return None


class Ec2Boots:
    """The boots and console logs of the AWS sandbox's instances."""

    def __init__(self, hosts: Ec2Hosts) -> None:
        self.hosts = hosts
        self.boots = Boots()
        self._up: set[str] = set()
        self._lock = threading.Lock()

    def sync(self) -> None:
        with self._lock:
            instances = self._instances()
            if instances is None:
                return
            for server_id in [s for s in self._up if instances.get(s, ("",))[0] != "running"]:
                self._up.discard(server_id)
                state = instances.get(server_id, ("terminated",))[0]
                self.boots.halt(server_id, "terminated" if state in ("shutting-down",
                                                                     "terminated") else "stopped")
            for server_id in set(self.boots.info()) - set(instances):
                self.boots.forget(server_id)
            for server_id, (state, raw) in instances.items():
                if state == "running" and server_id not in self._up:
                    self._up.add(server_id)
                    self.boots.boot(server_id, self._root(server_id), raw, DATASOURCE)

    def after(self, action: str, pairs: list[tuple[str, str]], body: bytes) -> bytes:
        """What follows a successful EC2 call ``action``: its (new) answer."""
        if action == "RebootInstances":
            self.reboot(pairs)
        elif action == "GetConsoleOutput":
            return self.console_body(body, pairs)
        return body

    def reboot(self, pairs: list[tuple[str, str]]) -> None:
        """``RebootInstances`` went through: the instances named boot again."""
        ids = {v for k, v in pairs if _INSTANCE_ID.match(k)}
        with self._lock:
            instances = self._instances() or {}
            for server_id in ids & self._up:
                self.boots.halt(server_id, "rebooting")
                self.boots.boot(server_id, self._root(server_id), instances[server_id][1],
                                DATASOURCE)

    def console_body(self, body: bytes, pairs: list[tuple[str, str]]) -> bytes:
        """moto's ``GetConsoleOutput`` answer with the instance's own console log."""
        server_id = next((v for k, v in pairs if k == "InstanceId"), "")
        text = self.boots.console(server_id) or ""
        data = text.encode("utf-8")[-MAX_OUTPUT:]
        element = (b"<output>" + base64.b64encode(data) + b"</output>") if data else b""
        return _OUTPUT_RE.sub(lambda _: element, body, count=1)

    def clear(self) -> None:
        with self._lock:
            self._up.clear()
            self.boots.clear()

    def shut_down(self) -> None:
        """The sandbox exits: every boot process and every sshd stopped."""
        self.clear()
        self.hosts.clear()

    def _root(self, server_id: str) -> Any:
        host = self.hosts.ssh.get(server_id)
        return host.root if host is not None else self.boots.own_root(server_id)

    @staticmethod
    def _instances() -> dict[str, tuple[str, bytes | None]] | None:
        """id -> (state, user data) of every instance moto has (None: it changed under
        us three times)."""
        from moto.ec2.models import ec2_backends

        for _ in range(3):
            try:
                out = {}
                for regions in list(dict.values(ec2_backends)):
                    for backend in list(dict.values(regions)):
                        for instance in backend.all_instances():
                            out[instance.id] = (instance.state, _user_data(instance.user_data))
                return out
            except RuntimeError:
                continue
        return None
