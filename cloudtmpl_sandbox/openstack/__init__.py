"""``sandbox-openstack``: a stateful Keystone v3 / Nova / Glance / Neutron / Cinder / Octavia
emulator.

Unpatched libcloud (``Provider.OPENSTACK``, ``api_version="2.2"``,
``ex_force_auth_version="3.x_password"``) talks to it over HTTP on 127.0.0.1.
Modules: :mod:`.app` (WSGI routing, knobs, admin endpoints), :mod:`.state`
(store, knobs), :mod:`.core` (errors, pagination), one module per small service
(:mod:`.identity`, :mod:`.image`, :mod:`.object`) and, moto-style, a models module
(state, transitions, refusals) and a responses module (routes, views) for each of
Nova, Neutron, Cinder and Octavia (:mod:`.compute_models` (+ :mod:`.server_boot`) /
:mod:`.compute_responses` (+ :mod:`.consoles`),
:mod:`.network_models` (+ :mod:`.network_base`, :mod:`.network_security`,
:mod:`.network_floating`) / :mod:`.network_responses`, :mod:`.volume_models` /
:mod:`.volume_responses`, :mod:`.lb_models` (+ :mod:`.lb_status`) /
:mod:`.lb_responses`).  Run:
``python -m cloudtmpl_sandbox.openstack --port 0``.
"""

from .identity import DOMAIN_NAME, PASSWORD, PROJECT_NAME, USERNAME
from .state import REGIONS

SERVICE_NAME = "cloudtmpl-sandbox-openstack"

__all__ = ["DOMAIN_NAME", "PASSWORD", "PROJECT_NAME", "REGIONS", "SERVICE_NAME", "USERNAME"]
