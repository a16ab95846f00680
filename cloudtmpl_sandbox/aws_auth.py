"""Who may call the AWS sandbox, and whether they really signed the request.

moto accepts any access key with any signature.  The AWS sandbox accepts, as AWS
does, only credentials of its account:

* its fixed key (``sandbox``/``sandbox``, the one ``cloudtmpl sandbox status`` prints);
* a temporary key its STS issued (``ASIA…``), with its session token, until it
  expires (:class:`cloudtmpl_sandbox.aws_sts.Sts` - the one check of temporary keys);
* an access key of an IAM user, created with IAM ``CreateAccessKey`` (moto's IAM, in
  this process) and ``Active``.

Every other key gets the service's own refusal: EC2 401 ``AuthFailure``, S3 403
``InvalidAccessKeyId``, the others (Route 53, ELB, STS, IAM) 403
``InvalidClientTokenId``.  An unsigned request gets 403 ``AccessDenied`` (S3) or
``MissingAuthenticationToken``.

The signature is then verified with the key's secret, the way the client computed
it: Signature V4 in the ``Authorization`` header (botocore's own canonical request:
:class:`botocore.auth.SigV4Auth`, ``S3SigV4Auth`` for S3) or in the query
(pre-signed URLs), Signature V2 in the query or form (``SignatureVersion=2``), S3's
``AWS key:signature`` header and ``Signature``/``Expires`` query, and Route 53's
``AWS3-HTTPS`` header.  A wrong one gets EC2 401 ``AuthFailure``, else 403
``SignatureDoesNotMatch``.  Not checked: the request's age (AWS refuses requests
more than 15 minutes off, and pre-signed URLs past their expiry) and that the body
matches ``X-Amz-Content-SHA256``.  A pre-signed URL is refused past its expiry
(403 ``AccessDenied``, "Request has expired": V4's ``X-Amz-Date`` + ``X-Amz-Expires``,
S3 V2's ``Expires``), and a V4 one whose ``X-Amz-Expires`` is more than a week (400
``AuthorizationQueryParametersError``), as S3 refuses them.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

from cloudtmpl_sandbox.aws_sts import (
    Answer,
    Pairs,
    Sts,
    access_key_of,
    error_answer,
    session_token_of,
)

# S3's sub-resources: part of the resource Signature V2 signs
_S3_SUBRESOURCES = frozenset({
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification",
    "partNumber", "policy", "requestPayment", "response-cache-control",
    "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires", "restore",
    "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning", "versions",
    "website"})
_V2_DIGESTS = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}
_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Signed:
    """The parts of an HTTP request that AWS signatures cover."""

    method: str
    host: str
    path: str  # as sent: percent-encoded, without the query
    query: Pairs  # decoded, in order
    form: Pairs  # decoded form body parameters (empty if none)
    headers: dict[str, str]  # lower-case name -> value
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str, pairs: Pairs | None = None) -> str | None:
        for key, value in self.query if pairs is None else pairs:
            if key == name:
                return value
        return None


def _split_query(raw: str) -> Pairs:
    """Decode a query string as AWS does (``+`` is a space, as libcloud sends it)."""
    pairs = []
    for part in raw.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def signed_of(environ: dict[str, Any]) -> Signed:
    """The request in ``environ`` (its body is read and put back)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    headers = {key[5:].lower().replace("_", "-"): str(value) for key, value in environ.items()
               if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.lower().replace("_", "-")] = str(environ[key])
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
    path = raw.split("?", 1)[0] if raw else quote(str(environ.get("PATH_INFO") or "/"))
    return Signed(
        method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
        host=headers.get("host", ""),
        path=path or "/",
        query=_split_query(str(environ.get("QUERY_STRING", ""))),
        form=_split_query(body.decode("utf-8", "replace"))
        if str(environ.get("CONTENT_TYPE", "")).startswith(_FORM) else [],
        headers=headers,
        body=body,
    )


# ------------------------------------------------------------------ the signatures


def _fields(text: str) -> dict[str, str]:
    """``A=1, B=2`` (or ``A=1,B=2``) -> {"A": "1", "B": "2"}."""
    out = {}
    for part in text.split(","):
        key, _, value = part.strip().partition("=")
        out[key] = value
    return out


def _v4_timestamp(req: Signed, value: str | None) -> str | None:
    if value:
        return value
    date = req.header("date")
    if not date:
        return None
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    return when.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _v4_signature(req: Signed, secret: str, credential: str, signed_names: list[str],
                  timestamp: str, params: Pairs, presigned: bool) -> str | None:
    """The Signature V4 botocore computes for this request, or None if it cannot be
    computed (a signed header that is not there, a malformed credential)."""
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.compat import HTTPHeaders
    from botocore.credentials import Credentials

    try:
        key, _, region, service, _ = credential.split("/")
    except ValueError:
        return None
    signed = HTTPHeaders()
    for name in signed_names:
        value = req.header(name)
        if value is None:
            return None
        signed[name] = value
    base = S3SigV4Auth if service == "s3" else SigV4Auth
    body = req.body

    class Verifier(base):  # type: ignore[misc, valid-type]
        """botocore's signer over exactly the headers and body the client signed."""

        def headers_to_sign(self, request: Any) -> Any:
            return signed

        def payload(self, request: Any) -> str:
            if presigned and service == "s3":
                return "UNSIGNED-PAYLOAD"
            return hashlib.sha256(body).hexdigest()

    headers = dict(signed.items())
    content_sha = req.header("x-amz-content-sha256")
    if content_sha is not None and not presigned:
        headers["X-Amz-Content-SHA256"] = content_sha
    request = AWSRequest(method=req.method, url=f"http://{req.host}{req.path}",
                         headers=headers, params=params)
    request.context["timestamp"] = timestamp
    signer = Verifier(Credentials(key, secret), service, region)
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


def _sigv4_header(req: Signed, auth: str, secret: str) -> bool:
    parts = _fields(auth.split(" ", 1)[1])
    timestamp = _v4_timestamp(req, req.header("x-amz-date"))
    names = [n for n in parts.get("SignedHeaders", "").split(";") if n]
    if not timestamp or not names:
        return False
    expected = _v4_signature(req, secret, parts.get("Credential", ""), names, timestamp,
                             req.query, presigned=False)
    return expected is not None and hmac.compare_digest(expected, parts.get("Signature", ""))


def _sigv4_query(req: Signed, secret: str) -> bool:
    names = [n for n in (req.param("X-Amz-SignedHeaders") or "").split(";") if n]
    timestamp = req.param("X-Amz-Date")
    if not timestamp or not names:
        return False
    params = [(k, v) for k, v in req.query if k != "X-Amz-Signature"]
    expected = _v4_signature(req, secret, req.param("X-Amz-Credential") or "", names,
                             timestamp, params, presigned=True)
    return expected is not None and hmac.compare_digest(
        expected, req.param("X-Amz-Signature") or "")


def _hmac_b64(secret: str, text: str, digest: Callable[..., Any] = hashlib.sha256) -> str:
    mac = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), digest).digest()
    return base64.b64encode(mac).decode("ascii")


def _sigv2(req: Signed, params: Pairs, secret: str) -> bool:
    """Signature V2 of the query APIs (EC2, ELB, STS, IAM): query or form parameters."""
    digest = _V2_DIGESTS.get(req.param("SignatureMethod", params) or "")
    given = req.param("Signature", params)
    if digest is None or given is None:
        return False
    canonical = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted((k, v) for k, v in params if k != "Signature"))
    text = "\n".join((req.method, req.host.lower(), unquote(req.path) or "/", canonical))
    return hmac.compare_digest(_hmac_b64(secret, text, digest), given)


def _s3_strings_to_sign(req: Signed, date: str) -> list[str]:
    """S3's Signature V2 string to sign; for a request to a bucket alone, with the
    resource as ``/bucket/`` (botocore) and as ``/bucket`` (libcloud)."""
    amz = sorted((k, " ".join(v.split())) for k, v in req.headers.items()
                 if k.startswith("x-amz-"))
    subresources = sorted((k, v) for k, v in req.query if k in _S3_SUBRESOURCES)
    query = "?" + "&".join(f"{k}={v}" if v else k for k, v in subresources) \
        if subresources else ""
    head = "\n".join((req.method, req.header("content-md5") or "",
                      req.header("content-type") or "", date)) + "\n" + "".join(
        f"{k}:{v}\n" for k, v in amz)
    paths = [req.path]
    if req.path.count("/") == 1 and len(req.path) > 1:
        paths.append(req.path + "/")
    return [head + path + query for path in paths]


def _s3v2_matches(req: Signed, secret: str, date: str, given: str) -> bool:
    return any(hmac.compare_digest(_hmac_b64(secret, text, hashlib.sha1), given)
               for text in _s3_strings_to_sign(req, date))


def _s3v2_header(req: Signed, auth: str, secret: str) -> bool:
    given = auth.split(" ", 1)[1].rpartition(":")[2]
    date = "" if req.header("x-amz-date") else (req.header("date") or "")
    return _s3v2_matches(req, secret, date, given)


def _s3v2_query(req: Signed, secret: str) -> bool:
    given, expires = req.param("Signature"), req.param("Expires")
    if given is None or expires is None:
        return False
    return _s3v2_matches(req, secret, expires, given)


def _aws3_https(req: Signed, auth: str, secret: str) -> bool:
    parts = _fields(auth.split(" ", 1)[1])
    digest = _V2_DIGESTS.get(parts.get("Algorithm", ""))
    date = req.header("x-amz-date") or req.header("date")
    if digest is None or not date:
        return False
    return hmac.compare_digest(_hmac_b64(secret, date, digest), parts.get("Signature", ""))


def signature_ok(req: Signed, secret: str) -> bool:
    """Whether the request is signed with ``secret`` (see the module docstring)."""
    auth = req.header("authorization") or ""
    if auth.startswith("AWS4-HMAC-SHA256 "):
        return _sigv4_header(req, auth, secret)
    if auth.startswith("AWS "):
        return _s3v2_header(req, auth, secret)
    amzn = req.header("x-amzn-authorization") or ""
    if amzn.startswith("AWS3-HTTPS "):
        return _aws3_https(req, amzn, secret)
    if req.param("X-Amz-Signature") is not None:
        return _sigv4_query(req, secret)
    params = req.query + req.form
    if req.param("SignatureVersion", params) == "2":
        return _sigv2(req, params, secret)
    if req.param("Signature") is not None:
        return _s3v2_query(req, secret)
    return False


# --------------------------------------------------------------------- the refusals


def _unknown_key(service: str) -> Answer:
    if service == "ec2":
        return error_answer(service, 401, "AuthFailure",
                            "AWS was not able to validate the provided access credentials")
    if service == "s3":
        return error_answer(service, 403, "InvalidAccessKeyId",
                            "The AWS Access Key Id you provided does not exist in our records.")
    return error_answer(service, 403, "InvalidClientTokenId",
                        "The security token included in the request is invalid.")


def _bad_signature(service: str) -> Answer:
    if service == "ec2":
        return error_answer(service, 401, "AuthFailure",
                            "AWS was not able to validate the provided access credentials")
    return error_answer(service, 403, "SignatureDoesNotMatch",
                        "The request signature we calculated does not match the signature "
                        "you provided. Check your AWS Secret Access Key and signing method.")


def _unsigned(service: str) -> Answer:
    if service == "s3":
        return error_answer(service, 403, "AccessDenied", "Access Denied")
    return error_answer(service, 403, "MissingAuthenticationToken",
                        "The request must contain either a valid (registered) AWS access key "
                        "ID or X.509 certificate.")


def iam_user_secret(access_key: str) -> str | None:
    """The secret of an active IAM user access key in moto's IAM (this process)."""
    from moto.iam.models import iam_backends

    for account in list(dict.values(iam_backends)):
        for backend in list(dict.values(account)):
            for user in list(backend.users.values()):
                for key in list(user.access_keys):
                    if key.access_key_id == access_key and key.status == "Active":
                        return str(key.secret_access_key)
    return None


class Accounts:
    """The credentials the AWS sandbox accepts (see the module docstring)."""

    def __init__(self, sts: Sts, access_key: str, secret_key: str,
                 iam_secret: Callable[[str], str | None] = iam_user_secret) -> None:
        self.sts = sts
        self._fixed = (access_key, secret_key)
        self._iam_secret = iam_secret

    def secret_of(self, service: str, access_key: str, token: str | None) -> str | Answer:
        """The secret that must have signed a request with ``access_key``, or AWS's
        refusal of the key."""
        if hmac.compare_digest(access_key.encode(), self._fixed[0].encode()):
            return self._fixed[1]
        if access_key.startswith("ASIA"):
            refused = self.sts.refuse(service, access_key, token)
            if refused is not None:
                return refused
            secret = self.sts.secret_of(access_key)
            return secret if secret is not None else _unknown_key(service)
        secret = self._iam_secret(access_key)
        return secret if secret is not None else _unknown_key(service)

    def refuse(self, service: str, environ: dict[str, Any]) -> Answer | None:
        """AWS's answer to a request not signed by an accepted key; None: let it in."""
        req = signed_of(environ)
        params = req.query + req.form
        access_key = access_key_of(environ, params)
        if not access_key:
            return _unsigned(service)
        secret = self.secret_of(service, access_key, session_token_of(environ, params))
        if not isinstance(secret, str):
            return secret
        expired = _expired(service, req)
        if expired is not None:
            return expired
        return None if signature_ok(req, secret) else _bad_signature(service)


#: The longest a V4 pre-signed URL may be valid (seconds): a week.
PRESIGN_MAX = 604800


def _expired(service: str, req: Signed, now: float | None = None) -> Answer | None:
    """The refusal of a pre-signed request past its expiry (None: not one, or valid)."""
    now = dt.datetime.now(dt.timezone.utc).timestamp() if now is None else now
    if req.param("X-Amz-Signature") is not None:
        try:
            start = dt.datetime.strptime(req.param("X-Amz-Date") or "", "%Y%m%dT%H%M%SZ")
            lasts = int(req.param("X-Amz-Expires") or "")
        except ValueError:
            return None  # no expiry to check: the signature check refuses it
        if lasts > PRESIGN_MAX or lasts < 0:
            return error_answer(service, 400, "AuthorizationQueryParametersError",
                                "X-Amz-Expires must be less than a week (in seconds) that "
                                "is; 604800")
        if start.replace(tzinfo=dt.timezone.utc).timestamp() + lasts < now:
            return error_answer(service, 403, "AccessDenied", "Request has expired")
        return None
    if req.param("Signature") is not None and req.param("Expires") is not None:
        try:
            until = int(req.param("Expires") or "")
        except ValueError:
            return None
        if until < now:
            return error_answer(service, 403, "AccessDenied", "Request has expired")
    return None
