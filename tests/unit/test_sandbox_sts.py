"""The AWS sandbox's record of the temporary keys its STS issued (pure, no moto)."""

from __future__ import annotations

from cloudtmpl_sandbox.aws_sts import Sts, access_key_of, session_token_of

ANSWER = b"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleResult><Credentials>
<AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>s</SecretAccessKey>
<SessionToken>tok</SessionToken><Expiration>2030-01-01T00:15:00Z</Expiration>
</Credentials></AssumeRoleResult></AssumeRoleResponse>"""
EXPIRY = 1893456900.0  # 2030-01-01T00:15:00Z


def test_issued_keys_need_their_token_until_they_expire() -> None:
    clock = [EXPIRY - 60]
    sts = Sts(clock=lambda: clock[0])
    assert sts.refuse("ec2", "ASIAEXAMPLE", "tok") is not None  # not issued yet
    sts.remember(ANSWER)
    assert sts.refuse("ec2", "ASIAEXAMPLE", "tok") is None
    assert sts.refuse("ec2", "AKIAPERMANENT", None) is None  # long-term keys: moto's rules
    status, _, body = sts.refuse("ec2", "ASIAEXAMPLE", None) or ("", [], b"")
    assert status.startswith("401") and b"AuthFailure" in body
    status, _, body = sts.refuse("s3", "ASIAEXAMPLE", "other") or ("", [], b"")
    assert status.startswith("400") and b"InvalidToken" in body
    clock[0] = EXPIRY
    status, _, body = sts.refuse("ec2", "ASIAEXAMPLE", "tok") or ("", [], b"")
    assert status.startswith("400") and b"RequestExpired" in body
    status, _, body = sts.refuse("elasticloadbalancing", "ASIAEXAMPLE", "tok") or ("", [], b"")
    assert status.startswith("403") and b"ExpiredToken" in body
    sts.reset()  # moto reset: the keys are gone
    clock[0] = EXPIRY - 60
    assert sts.refuse("ec2", "ASIAEXAMPLE", "tok") is not None


def test_access_key_and_token_of_a_request() -> None:
    v4 = {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKID1/20260101/eu-central-1/ec2/"
                                "aws4_request, SignedHeaders=host, Signature=x",
          "HTTP_X_AMZ_SECURITY_TOKEN": "t1"}
    assert (access_key_of(v4, []), session_token_of(v4, [])) == ("AKID1", "t1")
    route53 = {"HTTP_X_AMZN_AUTHORIZATION": "AWS3-HTTPS AWSAccessKeyId=AKID2,Algorithm=H"}
    assert access_key_of(route53, [("x-amz-security-token", "t2")]) == "AKID2"
    assert session_token_of(route53, [("x-amz-security-token", "t2")]) == "t2"
    assert access_key_of({"HTTP_AUTHORIZATION": "AWS AKID3:sig"}, []) == "AKID3"
    query = [("AWSAccessKeyId", "AKID4"), ("SecurityToken", "t4")]
    assert (access_key_of({}, query), session_token_of({}, query)) == ("AKID4", "t4")
    presigned = [("X-Amz-Credential", "AKID5/20260101/us-east-1/s3/aws4_request")]
    assert access_key_of({}, presigned) == "AKID5"
    assert access_key_of({}, []) is None
