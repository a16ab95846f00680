"""The AWS sandbox's placement groups (moto has none) answer boto3 as EC2 does."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from cloudtmpl_sandbox import control
from tests.integration.clitools import ec2

REGION = "eu-central-1"


def _code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def _ami(client: Any) -> str:
    images = client.describe_images(Owners=["amazon"])["Images"]
    return str(sorted(i["ImageId"] for i in images)[0])


def test_placement_group_lifecycle(aws_reset: dict[str, Any]) -> None:
    client = ec2(aws_reset, REGION)
    made = client.create_placement_group(
        GroupName="web.spread", Strategy="spread",
        TagSpecifications=[{"ResourceType": "placement-group",
                            "Tags": [{"Key": "cloudtmpl:stack", "Value": "web"}]}])
    assert made["PlacementGroup"]["GroupName"] == "web.spread"
    assert made["PlacementGroup"]["GroupId"].startswith("pg-")
    [found] = client.describe_placement_groups(
        Filters=[{"Name": "tag:cloudtmpl:stack", "Values": ["web"]}])["PlacementGroups"]
    assert (found["GroupName"], found["Strategy"], found["State"]) == (
        "web.spread", "spread", "available")
    assert found["Tags"] == [{"Key": "cloudtmpl:stack", "Value": "web"}]
    # regions are apart, and other stacks' filters find nothing
    assert ec2(aws_reset, "us-east-1").describe_placement_groups()["PlacementGroups"] == []
    assert client.describe_placement_groups(
        Filters=[{"Name": "tag:cloudtmpl:stack", "Values": ["other"]}])["PlacementGroups"] == []

    with pytest.raises(ClientError) as dup:
        client.create_placement_group(GroupName="web.spread", Strategy="cluster")
    assert _code(dup) == "InvalidPlacementGroup.Duplicate"
    with pytest.raises(ClientError) as bad:
        client.create_placement_group(GroupName="web.x", Strategy="together")
    assert _code(bad) == "InvalidParameterValue"
    with pytest.raises(ClientError) as combo:
        client.create_placement_group(GroupName="web.y", Strategy="cluster", PartitionCount=3)
    assert _code(combo) == "InvalidParameterCombination"

    client.create_tags(Resources=[found["GroupId"]], Tags=[{"Key": "cloudtmpl:spec",
                                                            "Value": "h2"}])
    [tagged] = client.describe_placement_groups(GroupNames=["web.spread"])["PlacementGroups"]
    assert {t["Key"]: t["Value"] for t in tagged["Tags"]} == {"cloudtmpl:stack": "web",
                                                              "cloudtmpl:spec": "h2"}
    with pytest.raises(ClientError) as no_id:
        client.create_tags(Resources=["pg-00000000000000000"], Tags=[{"Key": "k",
                                                                       "Value": "v"}])
    assert _code(no_id) == "InvalidPlacementGroupId.NotFound"

    client.delete_placement_group(GroupName="web.spread")
    with pytest.raises(ClientError) as gone:
        client.describe_placement_groups(GroupNames=["web.spread"])
    assert _code(gone) == "InvalidPlacementGroup.Unknown"
    with pytest.raises(ClientError) as again:
        client.delete_placement_group(GroupName="web.spread")
    assert _code(again) == "InvalidPlacementGroup.Unknown"


def test_instances_join_a_group_which_cannot_go_while_they_run(
        aws_reset: dict[str, Any]) -> None:
    client = ec2(aws_reset, REGION)
    image = _ami(client)
    with pytest.raises(ClientError) as unknown:
        client.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                             Placement={"GroupName": "nope"})
    assert _code(unknown) == "InvalidPlacementGroup.Unknown"
    assert client.describe_instances()["Reservations"] == []  # nothing was launched

    client.create_placement_group(GroupName="apart", Strategy="spread")
    run = client.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1,
                               MaxCount=1, Placement={"GroupName": "apart"})
    instance = run["Instances"][0]["InstanceId"]
    with pytest.raises(ClientError) as busy:
        client.delete_placement_group(GroupName="apart")
    assert _code(busy) == "InvalidPlacementGroup.InUse"

    # a spread group holds seven running instances per zone, as EC2's
    zone = run["Instances"][0]["Placement"]["AvailabilityZone"]
    client.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=6, MaxCount=6,
                         Placement={"GroupName": "apart", "AvailabilityZone": zone})
    with pytest.raises(ClientError) as full:
        client.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                             Placement={"GroupName": "apart", "AvailabilityZone": zone})
    assert _code(full) == "InsufficientInstanceCapacity"

    ids = [i["InstanceId"] for r in client.describe_instances()["Reservations"]
           for i in r["Instances"]]
    assert instance in ids and len(ids) == 7
    client.terminate_instances(InstanceIds=ids)
    client.delete_placement_group(GroupName="apart")  # terminated members hold nothing
    assert client.describe_placement_groups()["PlacementGroups"] == []


def test_a_reset_forgets_the_groups(aws_reset: dict[str, Any]) -> None:
    client = ec2(aws_reset, REGION)
    client.create_placement_group(GroupName="kept", Strategy="cluster")
    status, _ = control.call(aws_reset["endpoint"], aws_reset["token"], "POST",
                             "/moto-api/reset")
    assert status == 200
    assert client.describe_placement_groups()["PlacementGroups"] == []
