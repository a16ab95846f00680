"""STS in the AWS sandbox: AssumeRole as strict as AWS, and the temporary keys it issues.

moto answers ``AssumeRole`` for any role ARN, any ``DurationSeconds`` and any trust
policy, and afterwards accepts any access key with or without a session token.  The
wire-compatibility layer (:mod:`cloudtmpl_sandbox.aws`) asks :class:`Sts`:

* before moto sees an ``AssumeRole``: the role must exist in the sandbox's IAM
  (moto's own: create it with IAM ``CreateRole``), and its trust policy must allow
  ``sts:AssumeRole`` - an ``sts:ExternalId`` condition (``StringEquals``) met by the
  request's ``ExternalId``, no ``Deny`` for it.  Else 403 ``AccessDenied``.
  ``DurationSeconds`` must lie between 900 and the role's ``MaxSessionDuration``,
  ``RoleSessionName`` be 2 to 64 characters of ``[\\w+=,.@-]``; else 400
  ``ValidationError``.  The sandbox has one account, so the principal is not
  checked: every caller is of the role's account.
* after every successful STS answer: the temporary keys in it (``ASIA…``) are
  remembered with their secret, session token and expiry (:mod:`.aws_auth` checks
  the request's signature with that secret);
* before every request signed with a temporary key (``ASIA…``): the request must
  carry that key's session token (header ``X-Amz-Security-Token``, or the query or
  form parameter ``X-Amz-Security-Token``/``SecurityToken``) and come before the
  expiry.  Else AWS's answers: EC2 401 ``AuthFailure`` / 400 ``RequestExpired``, S3
  400 ``InvalidToken`` / ``ExpiredToken``, the other APIs 403
  ``InvalidClientTokenId`` / ``ExpiredToken``.  A temporary key the sandbox did not
  issue (or issued before a ``/moto-api/reset``) does not exist.

It also counts requests per access key id (``GET /_sandbox/access-keys``): which
credentials a client really signed with.  Key ids are not secrets.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

Answer = tuple[str, list[tuple[str, str]], bytes]
Pairs = list[tuple[str, str]]

_V4_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_V2_HEADER = re.compile(r"^AWS ([^:\s]+):")
_AWS3_HEADER = re.compile(r"AWSAccessKeyId=([^,\s]+)")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:[^/]+/)*([\w+=,.@-]{1,64})$")
_STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
# the namespace of each query API's <ErrorResponse>
_ERROR_NS = {
    "sts": _STS_NS,
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "route53": "https://route53.amazonaws.com/doc/2013-04-01/",
    "elasticloadbalancing": "http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/",
}
_IAM_VERSION = "2010-05-08"
_MIN_DURATION, _DEFAULT_DURATION = 900, 3600
_STATUS = {400: "400 Bad Request", 401: "401 Unauthorized", 403: "403 Forbidden"}


def _param(pairs: Pairs, *names: str) -> str | None:
    wanted = {n.lower() for n in names}
    for key, value in pairs:
        if key.lower() in wanted:
            return value
    return None


def access_key_of(environ: dict[str, Any], params: Pairs) -> str | None:
    """The access key id a request is signed with (SigV4/SigV2/AWS3, header or query)."""
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    match = _V4_CREDENTIAL.search(auth) or _V2_HEADER.match(auth)
    if match is None:
        match = _AWS3_HEADER.search(str(environ.get("HTTP_X_AMZN_AUTHORIZATION", "")))
    if match is not None:
        return match.group(1)
    credential = _param(params, "X-Amz-Credential")
    if credential:
        return credential.split("/", 1)[0]
    return _param(params, "AWSAccessKeyId")


def session_token_of(environ: dict[str, Any], params: Pairs) -> str | None:
    token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN")
    if token:
        return str(token)
    return _param(params, "X-Amz-Security-Token", "SecurityToken")


def error_answer(service: str, status: int, code: str, message: str) -> Answer:
    """An AWS error answer in the service's own shape."""
    request_id = str(uuid.uuid4())
    if service == "ec2":
        xml = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
               f"</Error></Errors><RequestID>{request_id}</RequestID></Response>")
    elif service == "s3":
        xml = (f"<Error><Code>{code}</Code><Message>{message}</Message>"
               f"<RequestId>{request_id}</RequestId></Error>")
    else:
        ns = f' xmlns="{_ERROR_NS[service]}"' if service in _ERROR_NS else ""
        xml = (f"<ErrorResponse{ns}><Error><Type>Sender</Type><Code>{code}</Code>"
               f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
               "</ErrorResponse>")
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + xml.encode("utf-8")
    headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    return _STATUS[status], headers, body


def _token_errors(service: str, expired: bool) -> Answer:
    if service == "ec2":
        return (error_answer(service, 400, "RequestExpired", "Request has expired.") if expired
                else error_answer(service, 401, "AuthFailure",
                                  "AWS was not able to validate the provided access "
                                  "credentials"))
    if service == "s3":
        return (error_answer(service, 400, "ExpiredToken", "The provided token has expired.")
                if expired else
                error_answer(service, 400, "InvalidToken",
                             "The provided token is malformed or otherwise invalid."))
    return (error_answer(service, 403, "ExpiredToken",
                         "The security token included in the request is expired") if expired
            else error_answer(service, 403, "InvalidClientTokenId",
                              "The security token included in the request is invalid."))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _action_matches(statement: dict[str, Any]) -> bool:
    actions = [str(a).lower() for a in _listed(statement.get("Action", []))]
    return any(a in ("sts:assumerole", "sts:*", "*") for a in actions)


def _trust_allows(policy: Any, external_id: str | None) -> bool:
    """Whether a trust policy lets the (one account's) caller assume the role."""
    statements = [s for s in _listed(policy.get("Statement", []) if isinstance(policy, dict)
                                     else []) if isinstance(s, dict) and _action_matches(s)]
    allowed = False
    for statement in statements:
        condition = statement.get("Condition") or {}
        wanted = (condition.get("StringEquals") or {}).get("sts:ExternalId")
        met = wanted is None or external_id in [str(w) for w in _listed(wanted)]
        if statement.get("Effect") == "Deny" and met:
            return False
        if statement.get("Effect") == "Allow" and met:
            allowed = True
    return allowed


def _validation(message: str) -> Answer:
    return error_answer("sts", 400, "ValidationError", message)


class Sts:
    """AssumeRole checks, the temporary keys issued, requests per access key id."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # key id -> (session token, expiry, secret)
        self._issued: dict[str, tuple[str, float, str]] = {}
        self._by_key: collections.Counter[str] = collections.Counter()

    # ---- bookkeeping

    def reset(self) -> None:
        """moto's state is gone: so are the keys its STS issued."""
        with self._lock:
            self._issued.clear()

    def count(self, access_key: str | None) -> None:
        if access_key:
            with self._lock:
                self._by_key[access_key] += 1

    def clear_counts(self) -> None:
        with self._lock:
            self._by_key.clear()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_key)

    def remember(self, body: bytes) -> None:
        """Note the temporary keys in a successful STS answer."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return
        for creds in root.iter():
            if not creds.tag.endswith("Credentials"):
                continue
            key = creds.findtext("{*}AccessKeyId") or creds.findtext("AccessKeyId") or ""
            token = creds.findtext("{*}SessionToken") or creds.findtext("SessionToken") or ""
            expiry = creds.findtext("{*}Expiration") or creds.findtext("Expiration") or ""
            secret = (creds.findtext("{*}SecretAccessKey") or creds.findtext("SecretAccessKey")
                      or "")
            if not key.startswith("ASIA") or not token:
                continue
            try:
                when = dt.datetime.fromisoformat(expiry.replace("Z", "+00:00"))
            except ValueError:
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            with self._lock:
                self._issued[key] = (token, when.timestamp(), secret)

    def secret_of(self, access_key: str) -> str | None:
        """The secret of a temporary key this STS issued."""
        with self._lock:
            found = self._issued.get(access_key)
        return found[2] if found is not None else None

    # ---- checks

    def refuse(self, service: str, access_key: str | None, token: str | None) -> Answer | None:
        """AWS's answer to a temporary key without its token, or expired; None: fine."""
        if not access_key or not access_key.startswith("ASIA"):
            return None
        with self._lock:
            found = self._issued.get(access_key)
        if found is None or token != found[0]:
            return _token_errors(service, expired=False)
        if self._clock() >= found[1]:
            return _token_errors(service, expired=True)
        return None

    def assume_role(self, params: Pairs, access_key: str | None,
                    get_role: Callable[[str], dict[str, Any] | None]) -> Answer | None:
        """AWS's refusal of an ``AssumeRole``, or None to let moto answer it."""
        arn = _param(params, "RoleArn") or ""
        session = _param(params, "RoleSessionName") or ""
        if not _SESSION_NAME.match(session):
            return _validation(f"1 validation error detected: Value '{session}' at "
                               "'roleSessionName' failed to satisfy constraint: Member must "
                               "satisfy regular expression pattern: [\\w+=,.@-]{2,64}")
        raw = _param(params, "DurationSeconds")
        try:
            duration = int(raw) if raw is not None else _DEFAULT_DURATION
        except ValueError:
            return _validation(f"Value '{raw}' at 'durationSeconds' is not an integer")
        if duration < _MIN_DURATION:
            return _validation(f"1 validation error detected: Value '{duration}' at "
                               "'durationSeconds' failed to satisfy constraint: Member must "
                               f"have value greater than or equal to {_MIN_DURATION}")
        denied = error_answer(
            "sts", 403, "AccessDenied",
            f"User with access key {access_key or '(none)'} is not authorized to perform: "
            f"sts:AssumeRole on resource: {arn}")
        match = _ROLE_ARN.match(arn)
        role = get_role(match.group(2)) if match else None
        if role is None or role.get("Arn") != arn:
            return denied
        try:
            policy = json.loads(unquote(str(role.get("AssumeRolePolicyDocument") or "{}")))
        except ValueError:
            policy = {}
        if not _trust_allows(policy, _param(params, "ExternalId")):
            return denied
        if duration > int(role.get("MaxSessionDuration") or _DEFAULT_DURATION):
            return _validation("The requested DurationSeconds exceeds the MaxSessionDuration "
                               "set for this role.")
        return None


def role_from_get_role(body: bytes) -> dict[str, Any] | None:
    """The ``Role`` of an IAM ``GetRole`` answer (Arn, AssumeRolePolicyDocument, ...)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    role = next((el for el in root.iter() if el.tag.endswith("Role")
                 and el.find("{*}Arn") is not None), None)
    if role is None:
        return None
    return {child.tag.split("}")[-1]: (child.text or "") for child in role}


def get_role_query(role_name: str) -> Iterable[tuple[str, str]]:
    return [("Action", "GetRole"), ("Version", _IAM_VERSION), ("RoleName", role_name)]
