"""Settings kept where each cloud's own tools keep them, read as those tools read them.

* :mod:`cloudtmpl.settings.aws` - the AWS CLI's and SDKs' profile, region and
  endpoint URLs (``AWS_*`` variables, ``~/.aws/config``);
* :mod:`cloudtmpl.settings.openstack` - openstacksdk's ``clouds.yaml`` and
  ``secure.yaml`` (search path, merge, an entry's region).

Pure functions of an environment mapping and the files it points at: no network,
no secrets kept.  :mod:`cloudtmpl.config` uses them to give a target without
``region:`` its default region before any cloud is asked (residency checks need
it); the provider adapters use them for endpoints and credentials.
"""

from __future__ import annotations


class SettingsError(ValueError):
    """A settings file that cannot be read, or that says what it cannot mean."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
