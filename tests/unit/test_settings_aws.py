"""AWS settings as the AWS CLI reads them: profile, region, endpoint URLs (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudtmpl.model import Target
from cloudtmpl.providers.aws import AwsAdapter
from cloudtmpl.providers.base import CloudError
from cloudtmpl.settings.aws import AwsSettingsError, load, profile_name

CONFIG = """\
[default]
region = eu-central-1
endpoint_url = http://default.example
[profile ci]
region = us-west-2
services = local
[profile plain]
[profile quiet]
endpoint_url = http://quiet.example
ignore_configured_endpoint_urls = true
[profile broken]
services = nowhere
[services local]
ec2 =
  endpoint_url = http://ec2.local.example
route_53 =
  endpoint_url = http://dns.local.example
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text(CONFIG)
    return {"HOME": str(tmp_path)}


def test_profile_order() -> None:
    assert profile_name(None, {}) == "default"
    assert profile_name(None, {"AWS_PROFILE": "a"}) == "a"
    assert profile_name(None, {"AWS_PROFILE": "a", "AWS_DEFAULT_PROFILE": "b"}) == "b"  # botocore
    assert profile_name("t", {"AWS_PROFILE": "a"}) == "t"


def test_region_order(env: dict[str, str], tmp_path: Path) -> None:
    assert load(env).region == "eu-central-1"  # [default]
    settings = load(env, "ci")
    assert (settings.region, settings.region_source) == (
        "us-west-2", f"{tmp_path / '.aws' / 'config'} [profile ci]")
    assert load({**env, "AWS_PROFILE": "ci"}).region == "us-west-2"
    assert load(env, "plain").region is None
    assert load(env, "nobody").region is None and not load(env, "nobody").profile_found
    assert load({**env, "AWS_DEFAULT_REGION": "eu-west-1"}, "ci").region == "eu-west-1"
    both = {**env, "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-north-1"}
    assert (load(both, "ci").region, load(both, "ci").region_source) == (
        "eu-north-1", "AWS_REGION")
    # AWS_CONFIG_FILE points elsewhere ("~" is $HOME)
    (tmp_path / "other").write_text("[default]\nregion = ap-south-1\n")
    assert load({**env, "AWS_CONFIG_FILE": "~/other"}).region == "ap-south-1"
    assert load({**env, "AWS_CONFIG_FILE": str(tmp_path / "missing")}).region is None


def test_endpoint_order(env: dict[str, str]) -> None:
    def url(service: str, profile: str | None, **extra: str) -> str | None:
        found = load({**env, **extra}, profile).endpoint(service)
        return found.url if found else None

    # the profile's services section per service, else the profile's endpoint_url
    assert url("ec2", "ci") == "http://ec2.local.example"
    assert url("route53", "ci") == "http://dns.local.example"
    assert url("s3", "ci") is None
    assert url("s3", None) == "http://default.example"
    assert url("elb", "plain") is None
    # AWS_ENDPOINT_URL beats the file, AWS_ENDPOINT_URL_<SERVICE> beats AWS_ENDPOINT_URL
    assert url("ec2", "ci", AWS_ENDPOINT_URL="http://global") == "http://global"
    specific = {"AWS_ENDPOINT_URL": "http://global", "AWS_ENDPOINT_URL_EC2": "http://e",
                "AWS_ENDPOINT_URL_S3": "http://s", "AWS_ENDPOINT_URL_ROUTE_53": "http://r",
                "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING": "http://l",
                "AWS_ENDPOINT_URL_STS": "http://t"}
    got = {s: url(s, "ci", **specific) for s in ("ec2", "s3", "route53", "elb", "sts")}
    assert got == {"ec2": "http://e", "s3": "http://s", "route53": "http://r",
                   "elb": "http://l", "sts": "http://t"}
    assert load({**env, **specific}).endpoint("route53").source == "AWS_ENDPOINT_URL_ROUTE_53"
    # ignored: by the environment, or by the profile (the environment decides first)
    assert url("ec2", "ci", AWS_IGNORE_CONFIGURED_ENDPOINT_URLS="true", **specific) is None
    assert url("ec2", "quiet") is None
    assert url("ec2", "quiet", AWS_IGNORE_CONFIGURED_ENDPOINT_URLS="false") == (
        "http://quiet.example")
    # a services section that does not exist: an error when an endpoint is asked for
    broken = load(env, "broken")
    assert broken.region is None
    with pytest.raises(AwsSettingsError, match="nowhere"):
        broken.endpoint("ec2")


def test_an_unreadable_config_file_is_an_error(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / ".aws" / "config").write_text("[profile x\nregion = a\n")
    with pytest.raises(AwsSettingsError, match="cannot read the AWS config file"):
        load(env)


def test_the_adapters_endpoints(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example:8443")
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:4566")
    plain = AwsAdapter(Target("aws-x", "aws", "eu-central-1", {"profile": "ci"}))
    assert plain.client.endpoint_for("ec2") == ("127.0.0.1", 4566, False)
    assert plain.client.endpoint_for("s3") == ("s3.example", 8443, True)
    assert plain.client.endpoint_for("route53") == ("dns.local.example", 80, False)
    # the target's own endpoint: wins for every service
    own = AwsAdapter(Target("aws-y", "aws", "eu-central-1", {"endpoint": "http://own:1"}))
    assert {own.client.endpoint_for(s) for s in ("ec2", "s3", "route53", "elb")} == {
        ("own", 1, False)}
    # a sandbox target never looks at the environment
    sandbox = AwsAdapter(Target("sandbox-aws", "aws", "us-east-1", {}, sandbox=True))
    assert sandbox.client.endpoint_for("ec2") is None
    monkeypatch.setenv("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING", "ftp://nope")
    with pytest.raises(CloudError, match="AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING"):
        AwsAdapter(Target("aws-z", "aws", "eu-central-1", {})).client.endpoint_for("elb")
