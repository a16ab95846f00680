"""EC2 instances you can SSH into: the AWS sandbox's sshd-backed servers.

moto runs in the sandbox's own process, so after every EC2 call that can change
an instance or an address, :meth:`Ec2Hosts.sync` walks moto's instances and makes
the sshd processes (:mod:`cloudtmpl_sandbox.sshd`) match them:

* an instance launched with a key pair listens, while ``running``, on each public
  address EC2 reports for it (the auto-assigned public IP of its interfaces, or
  the elastic IP associated with one, which replaces it as on AWS), authorising
  exactly that key pair's public key;
* stopping it stops its sshd, starting it starts it again (on a new auto-assigned
  public address, as EC2 gives a restarted instance one, or on its elastic IP,
  which EC2 keeps through a stop: moto does not, so ``sync`` puts it back);
  terminating it, or resetting the sandbox, stops it for good.

Every public address (auto-assigned or elastic) comes from one loopback /16 of
this process: moto's address generators are replaced by :class:`LoopbackPool`'s,
so the address the cloud reports is one you can connect to, and nothing outside
127.0.0.0/8 is ever handed out.  An instance without a public address (a subnet
without auto-assign and no elastic IP) has no sshd, as on AWS it has no route in.

Moving an elastic IP to another instance (``AssociateAddress`` with
``AllowReassociation=true``) is what EC2 does: the instance it leaves loses it and,
if it had an auto-assigned public IP, gets a new one (moto leaves the elastic IP on
both); without ``AllowReassociation`` an associated address is refused
(``Resource.AlreadyAssociated``), as moto does itself.
"""

from __future__ import annotations

import threading
from typing import Any

from cloudtmpl_sandbox.sshd import LoopbackPool, SshHosts, default_port, random_network, sshd_path

# EC2 actions after which instances or their addresses may differ
_READ_ONLY_PREFIXES = ("Describe", "Get", "List")


def changes_instances(action: str) -> bool:
    return bool(action) and not action.startswith(_READ_ONLY_PREFIXES)


def _moving(associate: Any) -> Any:
    """moto's ``associate_address`` as EC2 moves an elastic IP (module docstring)."""

    def associate_address(backend: Any, instance: Any = None, eni: Any = None,
                          address: str | None = None, allocation_id: str | None = None,
                          reassociate: Any = False) -> Any:
        [eip] = (backend.address_by_ip([address]) if address
                 else backend.address_by_allocation([allocation_id]))
        left = eip.eni
        moved = associate(backend, instance=instance, eni=eni, address=address,
                          allocation_id=allocation_id, reassociate=reassociate)
        if left is not None and left is not moved.eni:
            left.public_ip = None
            if left.instance is not None and left.instance._state.name == "running":
                left.check_auto_public_ip()
        return moved

    associate_address._moves = True  # type: ignore[attr-defined]
    return associate_address


class Ec2Hosts:
    """The AWS sandbox's sshd processes, following moto's instances."""

    def __init__(self, enabled: bool | None = None, port: int | None = None) -> None:
        self.enabled = sshd_path() is not None if enabled is None else enabled
        self.port = default_port() if port is None else port
        self.ssh = SshHosts()
        self.pool = LoopbackPool(random_network(16, (128, 254)), self.port)
        self._lock = threading.Lock()

    def install(self) -> None:
        """Make moto hand out public and elastic IPs from this process's pool."""
        from moto.ec2.models import elastic_ip_addresses, elastic_network_interfaces

        elastic_network_interfaces.random_public_ip = self.pool.allocate
        elastic_ip_addresses.random_ip = self.pool.allocate
        backend = elastic_ip_addresses.ElasticAddressBackend
        if not getattr(backend.associate_address, "_moves", False):
            backend.associate_address = _moving(  # type: ignore[method-assign]
                backend.associate_address)

    def sync(self) -> None:
        """sshd processes to match moto's instances (see the module docstring)."""
        if not self.enabled:
            return
        with self._lock:
            for _ in range(3):  # moto's dicts may change under us: look again
                try:
                    wanted = self._instances()
                    break
                except RuntimeError:
                    continue
            else:
                return
            for server_id in set(self.ssh.ids()) - set(wanted):
                self.ssh.remove(server_id)
            for server_id, (region, key, addresses, up) in wanted.items():
                if self.ssh.get(server_id) is None:
                    self.ssh.add(server_id, region, self.port, key)
                self.ssh.sync(server_id, addresses, up)

    def clear(self) -> None:
        with self._lock:
            self.ssh.clear()

    @staticmethod
    def _instances() -> dict[str, tuple[str, str, list[str], bool]]:
        """id -> (region, authorised public key, public addresses, running) of every
        live instance launched with a key pair that still exists."""
        from moto.ec2.models import ec2_backends

        out: dict[str, tuple[str, str, list[str], bool]] = {}
        for regions in list(dict.values(ec2_backends)):
            for region, backend in list(dict.items(regions)):
                for instance in backend.all_instances():
                    pair = backend.key_pairs.get(instance.key_name or "")
                    if pair is None or instance.state in ("shutting-down", "terminated"):
                        continue
                    raw: bytes | str = pair.material_public
                    key = raw.decode() if isinstance(raw, bytes) else str(raw)
                    elastic = {id(eip.eni): eip.public_ip for eip in backend.addresses
                               if eip.eni is not None}
                    addresses = []
                    for _, nic in sorted(instance.nics.items()):
                        if id(nic) in elastic and nic.public_ip != elastic[id(nic)]:
                            # moto gives a restarted instance a fresh public IP even
                            # with an elastic IP associated; EC2 keeps the elastic IP
                            nic.public_ip = elastic[id(nic)]
                        if nic.public_ip:
                            addresses.append(str(nic.public_ip))
                    out[instance.id] = (region, key, addresses, instance.state == "running")
        return out
