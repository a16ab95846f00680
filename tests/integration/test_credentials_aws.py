"""AWS settings where the AWS CLI keeps them, through the CLI against the AWS sandbox.

Every target here is a plain ``type: aws`` target (not ``sandbox-aws``): it reaches
the sandbox only through ``AWS_ENDPOINT_URL*`` or the profile, and gets its region
and credentials from ``AWS_REGION``/``~/.aws/config``/``~/.aws/credentials``, an
assume-role profile (the sandbox's STS) or ``credential_process``.  Each test has
its own HOME, AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE.  The sandbox accepts
only keys of its account, so each test makes its own with IAM ``CreateAccessKey``
and tells them apart by the access key ids the sandbox saw.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloudtmpl_sandbox import control
from tests.integration.clitools import run, write

DEAD = "http://127.0.0.1:9"  # nothing listens: a request sent here fails

SG_TEMPLATE = """\
heat_template_version: 2021-04-16
resources:
  sg:
    type: Cloud::Network::SecurityGroup
    properties:
      description: ssh
      rules: [{protocol: tcp, port_range_min: 22, port_range_max: 22}]
"""

SERVICES_TEMPLATE = """\
heat_template_version: 2021-04-16
resources:
  web_sg:
    type: Cloud::Network::SecurityGroup
    properties:
      rules: [{protocol: tcp, port_range_min: 80, port_range_max: 80}]
  web:
    type: Cloud::Compute::Server
    properties:
      image: ubuntu-22.04
      flavor: tiny
      security_groups: [{get_resource: web_sg}]
  lb:
    type: Cloud::LB::LoadBalancer
    properties:
      listeners: [{protocol: HTTP, port: 80, instance_port: 80}]
      members: [{get_resource: web}]
  zone:
    type: Cloud::DNS::Zone
    properties: {domain: creds.example.test}
  www:
    type: Cloud::DNS::Record
    properties:
      zone: {get_resource: zone}
      name: www
      type: A
      records: [{get_attr: [web, first_address]}]
  assets:
    type: Cloud::Storage::Bucket
"""


def _keys_used(sandbox: dict[str, Any]) -> dict[str, int]:
    """Requests per access key id the sandbox saw since the last reset."""
    status, used = control.call(sandbox["endpoint"], sandbox["token"], "GET",
                                "/_sandbox/access-keys")
    assert status == 200, used
    return dict(used)


def _iam_key(sandbox: dict[str, Any], user: str) -> tuple[str, str]:
    """(key id, secret) of a new IAM user's access key; the request counters (and
    with them the keys seen) start again from zero after it."""
    iam = _client(sandbox, "iam", "us-east-1")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    status, _ = control.call(sandbox["endpoint"], sandbox["token"], "POST",
                             "/_sandbox/requests/reset")
    assert status == 200
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


def _client(sandbox: dict[str, Any], service: str, region: str) -> Any:
    return boto3.client(service, endpoint_url=sandbox["endpoint"], region_name=region,
                        aws_access_key_id=sandbox["access_key"],
                        aws_secret_access_key=sandbox["secret_key"])


def _groups(sandbox: dict[str, Any], region: str, stack: str) -> list[str]:
    groups = _client(sandbox, "ec2", region).describe_security_groups(
        Filters=[{"Name": "tag:cloudtmpl:stack", "Values": [stack]}])["SecurityGroups"]
    return sorted(g["GroupName"] for g in groups)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with one non-sandbox AWS target without region (sandbox catalog)."""
    root = tmp_path / "project"
    (tmp_path / "home" / ".aws").mkdir(parents=True)
    root.mkdir()
    write(root / "cloudtmpl.yaml", "providers:\n"
          "  aws-x: {type: aws, catalog: sandbox-aws}\n"
          "  aws-p: {type: aws, catalog: sandbox-aws, profile: pinned}\n"
          "default_target: aws-x\n")
    write(root / "sg.yaml", SG_TEMPLATE)
    return root


def _env(project: Path, **extra: str) -> dict[str, str]:
    home = project.parent / "home"
    return {"HOME": str(home), "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"), **extra}


def _aws_file(project: Path, name: str, text: str) -> None:
    write(project.parent / "home" / ".aws" / name, text)


def _default_regions(project: Path, env: dict[str, str]) -> dict[str, Any]:
    r = run(project, "providers", "--format", "json", env=env)
    assert r.code == 0, r.err
    listing = r.json()
    return {name: listing[name]["default_region"] for name in ("aws-x", "aws-p")}


def test_region_from_env_then_profile(project: Path) -> None:
    _aws_file(project, "config", "[default]\nregion = eu-central-1\n"
              "[profile pinned]\nregion = us-east-1\n[profile other]\nregion = us-west-2\n")
    env = _env(project)
    # the profile's region: [default] for aws-x, [profile pinned] for aws-p
    assert _default_regions(project, env) == {"aws-x": "eu-central-1", "aws-p": "us-east-1"}
    # AWS_PROFILE selects another profile for targets without profile:
    assert _default_regions(project, {**env, "AWS_PROFILE": "other"}) == {
        "aws-x": "us-west-2", "aws-p": "us-east-1"}
    # AWS_DEFAULT_REGION beats every profile, AWS_REGION beats AWS_DEFAULT_REGION
    assert _default_regions(project, {**env, "AWS_DEFAULT_REGION": "eu-west-1"}) == {
        "aws-x": "eu-west-1", "aws-p": "eu-west-1"}
    assert _default_regions(project, {**env, "AWS_DEFAULT_REGION": "eu-west-1",
                                      "AWS_REGION": "eu-north-1"}) == {
        "aws-x": "eu-north-1", "aws-p": "eu-north-1"}
    # an explicit region: in cloudtmpl.yaml beats them all
    text = (project / "cloudtmpl.yaml").read_text()
    write(project / "cloudtmpl.yaml",
          text.replace("catalog: sandbox-aws}", "catalog: sandbox-aws, region: eu-central-1}", 1))
    assert _default_regions(project, {**env, "AWS_REGION": "eu-north-1"})["aws-x"] == (
        "eu-central-1")


def test_plan_places_resources_in_the_profile_region(project: Path,
                                                     aws_reset: dict[str, Any]) -> None:
    _aws_file(project, "config", f"[default]\nregion = eu-central-1\n"
              f"endpoint_url = {aws_reset['endpoint']}\n")
    key, secret = _iam_key(aws_reset, "profile")
    _aws_file(project, "credentials", f"[default]\naws_access_key_id = {key}\n"
              f"aws_secret_access_key = {secret}\n")
    r = run(project, "plan", "sg.yaml", "--format", "json", env=_env(project))
    assert r.code == 0, r.err
    (change,) = r.json()["changes"]
    where = change["placement"]
    assert (where["target"], where["region"], where["country"]) == (
        "aws-x", "eu-central-1", "DE")
    assert set(_keys_used(aws_reset)) == {key}  # the profile's endpoint and keys
    assert secret not in r.out + r.err


def test_keys_of_another_account_are_refused_as_aws_refuses_them(
        project: Path, aws_reset: dict[str, Any]) -> None:
    env = _env(project, AWS_ENDPOINT_URL=aws_reset["endpoint"], AWS_REGION="eu-central-1",
               AWS_ACCESS_KEY_ID="AKIAFOREIGNKEY000000", AWS_SECRET_ACCESS_KEY="not-ours")
    r = run(project, "plan", "sg.yaml", env=env)
    assert r.code == 1 and "Traceback" not in r.err, r.err
    assert "AuthFailure" in r.err and "aws-x" in r.err, r.err
    assert "not-ours" not in r.out + r.err
    assert set(_keys_used(aws_reset)) == {"AKIAFOREIGNKEY000000"}


def test_a_broken_config_file_is_a_diagnostic(project: Path) -> None:
    _aws_file(project, "config", "[profile broken\nregion = eu-central-1\n")
    r = run(project, "providers", env=_env(project))
    assert r.code == 1 and "Traceback" not in r.err
    assert "config-aws-settings" in r.err and "aws-x" in r.err
    assert str(project.parent / "home" / ".aws" / "config") in r.err


def test_endpoint_urls_point_a_plain_aws_target_at_the_sandbox(
        project: Path, aws_reset: dict[str, Any]) -> None:
    """Service-specific AWS_ENDPOINT_URL_* beat AWS_ENDPOINT_URL; EC2, ELB, Route 53, S3."""
    write(project / "services.yaml", SERVICES_TEMPLATE)
    endpoint = aws_reset["endpoint"]
    key, secret = _iam_key(aws_reset, "endpoints")
    keys = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": "eu-central-1"}
    specific = _env(project, **keys, AWS_ENDPOINT_URL=DEAD, AWS_ENDPOINT_URL_EC2=endpoint,
                    AWS_ENDPOINT_URL_S3=endpoint, AWS_ENDPOINT_URL_ROUTE_53=endpoint,
                    AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING=endpoint)
    r = run(project, "plan", "services.yaml", "--format", "json", env=specific)
    assert r.code == 0, r.err
    assert {c["placement"]["region"] for c in r.json()["changes"]} == {"eu-central-1"}
    r = run(project, "apply", "services.yaml", "--yes", env=specific)
    assert r.code == 0, r.err + r.out
    assert secret not in r.out + r.err

    # the sandbox holds the stack, in the region AWS_REGION named
    assert _groups(aws_reset, "eu-central-1", "services") == ["services.web_sg"]
    reservations = _client(aws_reset, "ec2", "eu-central-1").describe_instances(
        Filters=[{"Name": "tag:cloudtmpl:stack", "Values": ["services"]},
                 {"Name": "instance-state-name", "Values": ["pending", "running"]}],
    )["Reservations"]
    assert sum(len(x["Instances"]) for x in reservations) == 1
    (lb,) = _client(aws_reset, "elb", "eu-central-1").describe_load_balancers()[
        "LoadBalancerDescriptions"]
    assert lb["LoadBalancerName"] == "services-lb" and len(lb["Instances"]) == 1
    zones = _client(aws_reset, "route53", "us-east-1").list_hosted_zones()["HostedZones"]
    assert [z["Name"] for z in zones] == ["creds.example.test."]
    buckets = _client(aws_reset, "s3", "eu-central-1").list_buckets()["Buckets"]
    assert [b["Name"] for b in buckets] == ["services-assets"]
    assert set(_keys_used(aws_reset)) == {key, aws_reset["access_key"]}

    # AWS_ENDPOINT_URL alone serves every service: nothing to change
    everything = _env(project, **keys, AWS_ENDPOINT_URL=endpoint)
    r = run(project, "plan", "services.yaml", "--detailed-exitcode", env=everything)
    assert r.code == 0, r.err + r.out
    # with the global one dead and only EC2's set, S3/Route 53/ELB cannot be reached
    r = run(project, "plan", "services.yaml", env=_env(project, **keys, AWS_ENDPOINT_URL=DEAD,
                                                       AWS_ENDPOINT_URL_EC2=endpoint))
    assert r.code == 1 and "Traceback" not in r.err and "127.0.0.1" in r.err
    r = run(project, "destroy", "services.yaml", "--yes", env=everything)
    assert r.code == 0, r.err + r.out
    assert _groups(aws_reset, "eu-central-1", "services") == []


def _trusting_role(sandbox: dict[str, Any], name: str, external_id: str) -> str:
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": external_id}}}]}
    role = _client(sandbox, "iam", "us-east-1").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    return str(role["Arn"])


def test_assume_role_profile_through_the_sandbox_sts(project: Path,
                                                     aws_reset: dict[str, Any]) -> None:
    base, secret = _iam_key(aws_reset, "base")
    arn = _trusting_role(aws_reset, "deployer", "ext-1234")
    _aws_file(project, "config", "[profile base]\nregion = eu-central-1\n"
              f"[profile pinned]\nrole_arn = {arn}\nsource_profile = base\n"
              "external_id = ext-1234\nrole_session_name = cloudtmpl-ci\n"
              "duration_seconds = 900\nregion = eu-central-1\n"
              f"[profile wrong-id]\nrole_arn = {arn}\nsource_profile = base\n"
              "external_id = not-it\nregion = eu-central-1\n"
              "[profile no-role]\nrole_arn = arn:aws:iam::123456789012:role/nobody\n"
              "source_profile = base\nregion = eu-central-1\n")
    _aws_file(project, "credentials", f"[base]\naws_access_key_id = {base}\n"
              f"aws_secret_access_key = {secret}\n")
    env = _env(project, AWS_ENDPOINT_URL=aws_reset["endpoint"])

    r = run(project, "apply", "sg.yaml", "--target", "aws-p", "--yes", env=env)  # [pinned]
    assert r.code == 0, r.err + r.out
    used = _keys_used(aws_reset)
    del used[aws_reset["access_key"]]  # this test's own boto3 calls (CreateRole)
    assert _groups(aws_reset, "eu-central-1", "sg") == ["sg.sg"]
    temporary = [k for k in used if k.startswith("ASIA")]
    # one AssumeRole signed with the source profile's key; EC2 signed with the role's
    # temporary key - which the sandbox accepts only with its session token
    assert used[base] == 1 and len(temporary) == 1, used
    assert set(used) == {base, *temporary}
    assert secret not in r.out + r.err

    # AWS refuses a wrong external id and a role that does not exist: so does the sandbox
    for profile, reason in (("wrong-id", "AccessDenied"), ("no-role", "AccessDenied")):
        r = run(project, "plan", "sg.yaml", "--target", "aws-x",
                env={**env, "AWS_PROFILE": profile})
        assert r.code == 1 and "Traceback" not in r.err
        assert reason in r.err and f"[{profile}]" in r.err and "aws-x" in r.err
        assert secret not in r.err

    # the temporary key without its session token is refused, as AWS refuses it
    sts = _client(aws_reset, "sts", "eu-central-1")
    creds = sts.assume_role(RoleArn=arn, RoleSessionName="probe",
                            ExternalId="ext-1234")["Credentials"]
    tokenless = boto3.client("ec2", endpoint_url=aws_reset["endpoint"],
                             region_name="eu-central-1",
                             aws_access_key_id=creds["AccessKeyId"],
                             aws_secret_access_key=creds["SecretAccessKey"])
    with pytest.raises(tokenless.exceptions.ClientError, match="AuthFailure"):
        tokenless.describe_security_groups()


def test_credential_process_profile(project: Path, aws_reset: dict[str, Any]) -> None:
    key, secret = _iam_key(aws_reset, "process")
    helper = write(project.parent / "creds.py", (
        "import json\n"
        f"print(json.dumps({{'Version': 1, 'AccessKeyId': {key!r},\n"
        f"                  'SecretAccessKey': {secret!r}}}))\n"))
    _aws_file(project, "config", "[profile pinned]\nregion = eu-central-1\n"
              f"credential_process = {sys.executable} {helper}\n")
    env = _env(project, AWS_ENDPOINT_URL=aws_reset["endpoint"])
    r = run(project, "apply", "sg.yaml", "--target", "aws-p", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    assert _groups(aws_reset, "eu-central-1", "sg") == ["sg.sg"]
    assert set(_keys_used(aws_reset)) == {key, aws_reset["access_key"]}
    assert secret not in r.out + r.err

    # a failing credential_process is reported, not a traceback
    _aws_file(project, "config", "[profile pinned]\nregion = eu-central-1\n"
              f"credential_process = {sys.executable} -c 'raise SystemExit(3)'\n")
    r = run(project, "plan", "sg.yaml", "--target", "aws-p", env=env)
    assert r.code == 1 and "Traceback" not in r.err
    assert "aws-p" in r.err and "[pinned]" in r.err


def test_the_real_aws_catalog_resolves_images_by_filter(project: Path,
                                                       aws_reset: dict[str, Any]) -> None:
    """A target with the shipped real-AWS catalog, pointed at the sandbox: its
    amazon-linux-2023 filter finds Amazon's image there; its Ubuntu 22.04 filter
    (Canonical's jammy images, which the sandbox does not have) is a diagnostic
    naming the filter and the region, and the hint offers only names that resolve."""
    write(project / "cloudtmpl.yaml", "providers:\n  aws-real: {type: aws, catalog: aws}\n"
          "default_target: aws-real\n")
    template = ("heat_template_version: 2021-04-16\nparameters:\n  image: {type: string}\n"
                "resources:\n  web:\n    type: Cloud::Compute::Server\n"
                "    properties: {image: {get_param: image}, flavor: tiny}\n")
    write(project / "web.yaml", template)
    env = _env(project, AWS_REGION="eu-central-1", AWS_ENDPOINT_URL=aws_reset["endpoint"],
               AWS_ACCESS_KEY_ID=aws_reset["access_key"],
               AWS_SECRET_ACCESS_KEY=aws_reset["secret_key"])
    r = run(project, "plan", "web.yaml", "-p", "image=amazon-linux-2023", "--format", "json",
            env=env)
    assert r.code == 0, r.err
    (change,) = r.json()["changes"]
    ami = change["after"]["image"] if "after" in change else json.dumps(change)
    images = _client(aws_reset, "ec2", "eu-central-1").describe_images(
        Owners=["amazon"], Filters=[{"Name": "name",
                                     "Values": ["al2023-ami-2023.*-kernel-6.1-x86_64"]}])
    newest = max(images["Images"], key=lambda i: (i["CreationDate"], i["Name"], i["ImageId"]))
    assert newest["ImageId"] in json.dumps(change), (ami, change)
    r = run(project, "plan", "web.yaml", "-p", "image=ubuntu-22.04", env=env)
    assert r.code == 1 and "Traceback" not in r.err, r.err
    assert "unknown-image" in r.err, r.err
    assert "ubuntu-jammy-22.04-amd64-server-*" in r.err and "099720109477" in r.err, r.err
    assert "eu-central-1" in r.err, r.err
    offers = r.err.split("offers:", 1)[1]
    assert "amazon-linux-2023" in offers and "ubuntu-22.04" not in offers, r.err
