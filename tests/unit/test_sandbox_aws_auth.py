"""The AWS sandbox's credential check: which keys it accepts, and signature verification
against requests signed by botocore's own signers (pure: no moto, no server)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from botocore.auth import (
    HmacV1Auth,
    HmacV1QueryAuth,
    S3SigV4Auth,
    S3SigV4QueryAuth,
    SigV2Auth,
    SigV4Auth,
)
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cloudtmpl_sandbox.aws_auth import Accounts, signature_ok, signed_of
from cloudtmpl_sandbox.aws_sts import Sts

HOST = "127.0.0.1:4566"
KEY, SECRET = "sandbox", "sandbox"
ISSUED = b"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleResult><Credentials>
<AccessKeyId>ASIATEMPORARY</AccessKeyId><SecretAccessKey>temp-secret</SecretAccessKey>
<SessionToken>tok</SessionToken><Expiration>2030-01-01T00:15:00Z</Expiration>
</Credentials></AssumeRoleResult></AssumeRoleResponse>"""


def environ_of(req: AWSRequest) -> dict[str, Any]:
    """The WSGI environ a server sees for a botocore-prepared request."""
    prepared = req.prepare()
    parts = urlsplit(prepared.url)
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    env: dict[str, Any] = {
        "REQUEST_METHOD": prepared.method,
        "PATH_INFO": unquote(parts.path),
        "RAW_URI": parts.path + (f"?{parts.query}" if parts.query else ""),
        "QUERY_STRING": parts.query,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": HOST,
    }
    for name, value in prepared.headers.items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            env[key] = value
        else:
            env[f"HTTP_{key}"] = value
    return env


def request(method: str, path: str, data: Any = None,
            headers: dict[str, str] | None = None) -> AWSRequest:
    req = AWSRequest(method=method, url=f"http://{HOST}{path}", data=data,
                     headers=headers or {})
    return req


def signed(signer: Any, req: AWSRequest) -> dict[str, Any]:
    signer.add_auth(req)
    return environ_of(req)


def ok(env: dict[str, Any], secret: str = SECRET) -> bool:
    env["wsgi.input"].seek(0)
    return signature_ok(signed_of(env), secret)


CREDS = Credentials(KEY, SECRET)


def test_sigv4_header_signed_by_botocore_verifies_and_tampering_does_not() -> None:
    ec2 = request("GET", "/?Action=DescribeVpcs&Version=2016-11-15&Filter.1.Name=a%20b")
    env = signed(SigV4Auth(CREDS, "ec2", "eu-central-1"), ec2)
    assert ok(env)
    assert not ok(env, secret="wrong")
    assert not ok({**env, "QUERY_STRING": env["QUERY_STRING"].replace("a%20b", "a%20c")})
    assert not ok({**env, "HTTP_X_AMZ_DATE": "20300101T000000Z"})

    form = "Action=CreateSecurityGroup&GroupName=web&GroupDescription=a+b%2Bc"
    post = request("POST", "/", form, {"Content-Type": "application/x-www-form-urlencoded"})
    env = signed(SigV4Auth(CREDS, "ec2", "us-east-1"), post)
    assert ok(env)
    env["wsgi.input"] = io.BytesIO(form.replace("web", "db").encode())  # another body
    assert not ok(env)

    xml = b"<ChangeResourceRecordSetsRequest/>"
    route53 = request("POST", "/2013-04-01/hostedzone/Z1/rrset/", xml)
    assert ok(signed(SigV4Auth(CREDS, "route53", "us-east-1"), route53))


def test_s3_sigv4_with_an_odd_key_verifies() -> None:
    put = request("PUT", "/bucket-1/a%20b/c%2Bd~e.txt", b"hello",
                  {"X-Amz-Content-SHA256": hashlib.sha256(b"hello").hexdigest()})
    env = signed(S3SigV4Auth(CREDS, "s3", "eu-central-1"), put)
    assert ok(env) and not ok(env, secret="wrong")
    listing = request("GET", "/bucket-1?list-type=2&prefix=a%20b%2F")
    assert ok(signed(S3SigV4Auth(CREDS, "s3", "us-east-1"), listing))


def test_presigned_sigv4_url_verifies() -> None:
    get = request("GET", "/bucket-1/key.txt")
    env = signed(S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=300), get)
    assert "X-Amz-Signature=" in env["QUERY_STRING"]
    assert ok(env) and not ok(env, secret="wrong")


def test_signature_v2_query_and_s3_hmac_v1_verify() -> None:
    v2 = request("POST", "/", {"Action": "DescribeLoadBalancers", "Version": "2012-06-01"},
                 {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV2Auth(CREDS).add_auth(v2)
    env = environ_of(v2)
    assert ok(env) and not ok(env, secret="wrong")

    for signer in (HmacV1Auth(CREDS), HmacV1QueryAuth(CREDS, expires=300)):
        get = request("GET", "/bucket-1/key.txt?tagging")
        env = signed(signer, get)
        assert ok(env), type(signer).__name__
        assert not ok(env, secret="wrong")


def test_route53_aws3_https_header_verifies() -> None:
    date = "Thu, 01 Jan 2026 00:00:00 GMT"
    signature = base64.b64encode(hmac.new(SECRET.encode(), date.encode(),
                                          hashlib.sha1).digest()).decode()
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/2012-02-29/hostedzone", "QUERY_STRING": "",
           "wsgi.input": io.BytesIO(b""), "HTTP_HOST": HOST, "HTTP_DATE": date,
           "HTTP_X_AMZN_AUTHORIZATION": f"AWS3-HTTPS AWSAccessKeyId={KEY},"
                                        f"Algorithm=HmacSHA1,Signature={signature}"}
    assert ok(env) and not ok(env, secret="wrong")
    assert not ok({**env, "HTTP_DATE": "Fri, 02 Jan 2026 00:00:00 GMT"})


def _code(answer: Any) -> tuple[int, str]:
    status, _, body = answer
    code = body.split(b"<Code>")[1].split(b"</Code>")[0].decode()
    return int(status.split()[0]), code


def test_only_the_accounts_keys_are_accepted() -> None:
    sts = Sts(clock=lambda: 1893456000.0)  # before the issued key's expiry
    accounts = Accounts(sts, KEY, SECRET, iam_secret={"AKIAUSER": "user-secret"}.get)
    assert accounts.secret_of("ec2", KEY, None) == SECRET
    assert accounts.secret_of("ec2", "AKIAUSER", None) == "user-secret"
    # a temporary key exists only once this STS issued it, and needs its session token
    assert _code(accounts.secret_of("ec2", "ASIATEMPORARY", "tok")) == (401, "AuthFailure")
    sts.remember(ISSUED)
    assert accounts.secret_of("s3", "ASIATEMPORARY", "tok") == "temp-secret"
    assert _code(accounts.secret_of("s3", "ASIATEMPORARY", None)) == (400, "InvalidToken")
    for service, refusal in (("ec2", (401, "AuthFailure")),
                             ("s3", (403, "InvalidAccessKeyId")),
                             ("route53", (403, "InvalidClientTokenId")),
                             ("elasticloadbalancing", (403, "InvalidClientTokenId")),
                             ("sts", (403, "InvalidClientTokenId"))):
        assert _code(accounts.secret_of(service, "AKIAFOREIGN", None)) == refusal, service


@pytest.mark.parametrize(("service", "refusal"), [
    ("ec2", (401, "AuthFailure")), ("s3", (403, "SignatureDoesNotMatch")),
    ("route53", (403, "SignatureDoesNotMatch")), ("sts", (403, "SignatureDoesNotMatch"))])
def test_refuse_a_wrong_secret_and_an_unsigned_request(service: str,
                                                       refusal: tuple[int, str]) -> None:
    accounts = Accounts(Sts(), KEY, SECRET, iam_secret=lambda key: None)
    path = "/bucket-1" if service == "s3" else "/?Action=GetCallerIdentity&Version=2011-06-15"
    auth = S3SigV4Auth if service == "s3" else SigV4Auth
    good = signed(auth(CREDS, service, "us-east-1"), request("GET", path))
    assert accounts.refuse(service, good) is None
    bad = signed(auth(Credentials(KEY, "wrong"), service, "us-east-1"), request("GET", path))
    assert _code(accounts.refuse(service, bad)) == refusal
    unsigned = environ_of(request("GET", path))
    expected = (403, "AccessDenied" if service == "s3" else "MissingAuthenticationToken")
    assert _code(accounts.refuse(service, unsigned)) == expected
