"""Local sandbox clouds on 127.0.0.1 (``cloudtmpl sandbox start|stop|status``).

A package of its own beside ``cloudtmpl``, shipped in the same wheel: ``aws``
serves moto behind a small wire-compatibility layer so unpatched libcloud drivers
and the aws CLI work against it, ``openstack`` emulates Keystone, Nova, Neutron,
Cinder, Glance and Swift, ``sshd`` gives their servers real SSH, and ``boot`` runs
their user data at boot as cloud-init would (``userdata`` reads it).  The product
reaches them as it reaches a real cloud - over HTTP - and starts and stops them
through ``manager`` alone; they import nothing of the product (both are
import-linter contracts in ``pyproject.toml``).
"""
