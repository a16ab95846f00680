"""The AWS credentials of a target, through botocore's own credential chain.

Why botocore: its chain is the reference implementation that the AWS CLI and the
SDKs follow - ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
the shared credentials and config files, assume-role profiles (``role_arn`` with
``source_profile`` or ``credential_source``, ``role_session_name``, ``external_id``,
``duration_seconds``; STS is asked), ``credential_process``, SSO, web identity and
the container/instance metadata services - and it refreshes temporary credentials
before they expire.  A second implementation here would drift from it.

* Sandbox targets: the ``access_key``/``secret_key`` of their options (the CLI fills
  them in from the running sandbox); nothing else is consulted.
* Other targets: a botocore session for the target's ``profile:`` - an explicit
  profile outranks the ``AWS_*`` key variables, as ``aws --profile`` does - else
  for the profile the environment names (``AWS_PROFILE``; keys in the environment
  then win, as in botocore).  The session's region is the target's default region
  (else botocore's, else ``us-east-1``), so STS is asked in it; STS's endpoint
  follows ``AWS_ENDPOINT_URL_STS``, ``AWS_ENDPOINT_URL`` and the profile like every
  botocore client.

:meth:`AwsCredentials.current` returns a frozen snapshot; botocore refreshes
temporary credentials behind it, so a connection made later gets fresh ones (the
adapter builds a new connection when the snapshot changes; botocore is asked again
at most once a minute).  Secrets never appear
in a message or a repr: errors name the target, the profile, the files and
botocore's error (botocore's messages carry no key material).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions
import botocore.session

from cloudtmpl.model import Target
from cloudtmpl.providers.base import CloudError
from cloudtmpl.settings import aws as aws_settings


@dataclass(frozen=True)
class Credentials:
    key: str
    secret: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = ""  # where they came from, for messages


class AwsCredentials:
    """One target's credentials: resolved on first use, refreshed by botocore."""

    # botocore refreshes temporary credentials that expire within 15 minutes on every
    # read: role sessions of 900 s (the minimum) would cost one STS call per read.
    # A snapshot is kept this long before botocore is asked again.
    RECHECK_SECONDS = 60.0

    def __init__(self, target: Target, region: str | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self.region = region
        self._clock = clock
        self._lock = threading.Lock()
        self._static: Credentials | None = None
        self._botocore: Any = None  # botocore Credentials (maybe refreshable)
        self._snapshot: tuple[float, Credentials] | None = None
        self._profile = ""

    def current(self) -> Credentials:
        """The credentials to sign the next connection with (CloudError if there are none)."""
        with self._lock:
            if self._static is None and self._botocore is None:
                self._resolve()
            if self._static is not None:
                return self._static
            now = self._clock()
            if self._snapshot is not None and now - self._snapshot[0] < self.RECHECK_SECONDS:
                return self._snapshot[1]
            try:  # under the lock: one refresh (one STS call) for all threads
                frozen = self._botocore.get_frozen_credentials()
            except (botocore.exceptions.BotoCoreError,
                    botocore.exceptions.ClientError) as exc:
                raise self._error(exc) from None
            creds = Credentials(frozen.access_key, frozen.secret_key, frozen.token or None,
                                self._source(getattr(self._botocore, "method", "")))
            self._snapshot = (now, creds)
            return creds

    def _resolve(self) -> None:
        opts = self.target.options
        if self.target.sandbox and opts.get("access_key") and opts.get("secret_key"):
            self._static = Credentials(str(opts["access_key"]), str(opts["secret_key"]), None,
                                       "target options (sandbox)")
            return
        explicit = opts.get("profile")
        self._profile = aws_settings.profile_name(explicit, os.environ)
        try:
            session = botocore.session.Session(profile=str(explicit) if explicit else None)
            # STS (assume-role) signs for a region: the target's default region, else
            # botocore's own, else us-east-1 (where AWS's global STS endpoint lives)
            region = self.region or session.get_config_variable("region") or "us-east-1"
            session.set_config_variable("region", region)
            found = session.get_credentials()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._error(exc) from None
        if found is None:
            raise self._none_found()
        self._botocore = found

    def _files(self) -> str:
        return (f"{aws_settings.credentials_file(os.environ)} or "
                f"{aws_settings.config_file(os.environ)}")

    def _source(self, method: str) -> str:
        p = self._profile
        return {
            "env": "the AWS_* environment variables",
            "shared-credentials-file": f"{aws_settings.credentials_file(os.environ)} [{p}]",
            "config-file": f"{aws_settings.config_file(os.environ)} (profile {p})",
            "assume-role": f"role_arn of profile {p} (assumed through STS)",
            "custom-process": f"credential_process of profile {p}",
        }.get(method, f"botocore's {method or 'credential'} provider (profile {p})")

    def _none_found(self) -> CloudError:
        hint = ""
        opts = self.target.options
        if opts.get("access_key") or opts.get("secret_key"):
            hint = (" (access_key/secret_key in cloudtmpl.yaml are honoured only for sandbox "
                    "targets: keep secrets out of checked-in files)")
        return CloudError(
            f"no AWS credentials for target {self.target.name!r}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), or "
            f"configure profile [{self._profile}] in {self._files()} (keys, role_arn with "
            f"source_profile, credential_process or sso_session){hint}",
            permanent=True,
        )

    def _error(self, exc: Exception) -> CloudError:
        name = self.target.name
        if isinstance(exc, botocore.exceptions.ProfileNotFound):
            message = (f"target {name!r}: AWS profile [{self._profile}] is in neither "
                       f"{self._files()}")
        elif isinstance(exc, botocore.exceptions.PartialCredentialsError):
            message = (f"target {name!r}: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be "
                       f"set together ({exc})")
        elif isinstance(exc, botocore.exceptions.ClientError):
            err = exc.response.get("Error", {})
            message = (f"target {name!r}: STS refused the role of profile [{self._profile}]: "
                       f"{err.get('Code', '?')}: {err.get('Message', '')}")
        else:
            message = (f"target {name!r}: cannot get the AWS credentials of profile "
                       f"[{self._profile}]: {exc}")
        # unreachable STS (after botocore's own retries): transient, our retrier tries again
        return CloudError(message,
                          permanent=not isinstance(exc, botocore.exceptions.HTTPClientError))
