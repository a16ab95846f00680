"""The AWS sandbox's STS: AssumeRole refused as AWS refuses it; temporary keys need
their session token (boto3 against the running sandbox)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

# the sandbox's own checks, not botocore's: parameters are sent as they are
UNVALIDATED = botocore.config.Config(parameter_validation=False)


def _client(sandbox: dict[str, Any], service: str, **creds: str) -> Any:
    keys = creds or {"aws_access_key_id": sandbox["access_key"],
                     "aws_secret_access_key": sandbox["secret_key"]}
    return boto3.client(service, endpoint_url=sandbox["endpoint"], region_name="eu-central-1",
                        config=UNVALIDATED, **keys)


def _error(fn: Any) -> tuple[str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        fn()
    err = info.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def _role(sandbox: dict[str, Any], name: str, statement: dict[str, Any],
          max_session: int = 3600) -> str:
    doc = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "sts:AssumeRole", **statement}]}
    return str(_client(sandbox, "iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(doc),
        MaxSessionDuration=max_session)["Role"]["Arn"])


def test_assume_role_is_refused_as_aws_refuses_it(aws_reset: dict[str, Any]) -> None:
    sts = _client(aws_reset, "sts")
    nobody = "arn:aws:iam::123456789012:role/nobody"
    assert _error(lambda: sts.assume_role(RoleArn=nobody, RoleSessionName="s")) == (
        "ValidationError", 400)  # a session name of one character
    assert _error(lambda: sts.assume_role(RoleArn=nobody, RoleSessionName="s1")) == (
        "AccessDenied", 403)
    guarded = _role(aws_reset, "guarded",
                    {"Condition": {"StringEquals": {"sts:ExternalId": "id-1"}}},
                    max_session=7200)
    assert _error(lambda: sts.assume_role(RoleArn=guarded, RoleSessionName="s1")) == (
        "AccessDenied", 403)
    assert _error(lambda: sts.assume_role(RoleArn=guarded, RoleSessionName="s1",
                                          ExternalId="id-2")) == ("AccessDenied", 403)
    ok = sts.assume_role(RoleArn=guarded, RoleSessionName="s1", ExternalId="id-1",
                         DurationSeconds=7200)
    assert ok["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert _error(lambda: sts.assume_role(RoleArn=guarded, RoleSessionName="s1",
                                          ExternalId="id-1", DurationSeconds=7201)) == (
        "ValidationError", 400)
    assert _error(lambda: sts.assume_role(RoleArn=guarded, RoleSessionName="bad name",
                                          ExternalId="id-1")) == ("ValidationError", 400)
    open_role = _role(aws_reset, "open", {})
    assert _error(lambda: sts.assume_role(RoleArn=open_role, RoleSessionName="s1",
                                          DurationSeconds=899)) == ("ValidationError", 400)
    denied = _role(aws_reset, "denied", {"Effect": "Deny"})
    assert _error(lambda: sts.assume_role(RoleArn=denied, RoleSessionName="s1")) == (
        "AccessDenied", 403)


def test_temporary_keys_need_their_session_token(aws_reset: dict[str, Any]) -> None:
    arn = _role(aws_reset, "worker", {})
    creds = _client(aws_reset, "sts").assume_role(RoleArn=arn,
                                                  RoleSessionName="worker")["Credentials"]
    key = {"aws_access_key_id": creds["AccessKeyId"],
           "aws_secret_access_key": creds["SecretAccessKey"]}
    good = {**key, "aws_session_token": creds["SessionToken"]}
    wrong = {**key, "aws_session_token": creds["SessionToken"][:-4] + "AAAA"}
    assert _client(aws_reset, "ec2", **good).describe_security_groups()["SecurityGroups"]
    assert _client(aws_reset, "s3", **good).list_buckets()["Buckets"] == []
    assert _error(lambda: _client(aws_reset, "ec2", **key).describe_vpcs()) == (
        "AuthFailure", 401)
    assert _error(lambda: _client(aws_reset, "s3", **wrong).list_buckets()) == (
        "InvalidToken", 400)
    assert _error(lambda: _client(aws_reset, "elb", **wrong).describe_load_balancers()) == (
        "InvalidClientTokenId", 403)
    # a temporary key this sandbox never issued does not exist
    forged = {"aws_access_key_id": "ASIAFORGEDKEY0000000", "aws_secret_access_key": "x",
              "aws_session_token": "y"}
    assert _error(lambda: _client(aws_reset, "ec2", **forged).describe_vpcs()) == (
        "AuthFailure", 401)


CALLS = {
    "ec2": lambda c: c.describe_vpcs(),
    "s3": lambda c: c.list_buckets(),
    "route53": lambda c: c.list_hosted_zones(),
    "elb": lambda c: c.describe_load_balancers(),
    "sts": lambda c: c.get_caller_identity(),
}
FOREIGN = {"ec2": ("AuthFailure", 401), "s3": ("InvalidAccessKeyId", 403),
           "route53": ("InvalidClientTokenId", 403), "elb": ("InvalidClientTokenId", 403),
           "sts": ("InvalidClientTokenId", 403)}
WRONG_SECRET = {"ec2": ("AuthFailure", 401), "s3": ("SignatureDoesNotMatch", 403),
                "route53": ("SignatureDoesNotMatch", 403),
                "elb": ("SignatureDoesNotMatch", 403), "sts": ("SignatureDoesNotMatch", 403)}


@pytest.mark.parametrize("service", sorted(CALLS))
def test_only_the_sandboxs_own_credentials_are_accepted(aws_reset: dict[str, Any],
                                                        service: str) -> None:
    call = CALLS[service]
    call(_client(aws_reset, service))  # the sandbox's own key
    arn = _role(aws_reset, f"caller-{service}", {})
    creds = _client(aws_reset, "sts").assume_role(RoleArn=arn,
                                                  RoleSessionName="caller")["Credentials"]
    call(_client(aws_reset, service, aws_access_key_id=creds["AccessKeyId"],  # STS-issued
                 aws_secret_access_key=creds["SecretAccessKey"],
                 aws_session_token=creds["SessionToken"]))
    foreign = {"aws_access_key_id": "AKIAFOREIGNKEY000000", "aws_secret_access_key": "x"}
    assert _error(lambda: call(_client(aws_reset, service, **foreign))) == FOREIGN[service]
    # the right key with the wrong secret: the signature does not match
    wrong = {"aws_access_key_id": aws_reset["access_key"], "aws_secret_access_key": "wrong"}
    assert _error(lambda: call(_client(aws_reset, service, **wrong))) == WRONG_SECRET[service]
    wrong_temp = {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": "wrong",
                  "aws_session_token": creds["SessionToken"]}
    assert _error(lambda: call(_client(aws_reset, service, **wrong_temp))) == (
        WRONG_SECRET[service])


def test_iam_user_keys_are_the_accounts_own(aws_reset: dict[str, Any]) -> None:
    iam = _client(aws_reset, "iam")
    iam.create_user(UserName="deployer")
    key = iam.create_access_key(UserName="deployer")["AccessKey"]
    own = {"aws_access_key_id": key["AccessKeyId"],
           "aws_secret_access_key": key["SecretAccessKey"]}
    assert _client(aws_reset, "ec2", **own).describe_vpcs()["Vpcs"]
    iam.update_access_key(UserName="deployer", AccessKeyId=key["AccessKeyId"],
                          Status="Inactive")
    assert _error(lambda: _client(aws_reset, "ec2", **own).describe_vpcs()) == (
        "AuthFailure", 401)
