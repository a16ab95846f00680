"""Scaling groups (``OS::Heat::AutoScalingGroup``) and ``cloudtmpl signal`` through
the real CLI against the sandbox clouds: the size kept in state across applies,
Heat's adjustment arithmetic with its clamping said, cooldowns, a SIGKILL in the
middle of a scale-out, and the group's attributes as outputs."""

from __future__ import annotations

import collections
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clitools import (
    REPO,
    cli_args,
    cli_env,
    invoke,
    run,
    stack_instances,
    tags,
    write,
)
from tests.integration.sandbox_admin import configure, servers

pytestmark = pytest.mark.integration

GROUP = """\
heat_template_version: 2016-10-14
placement: {{provider: {provider}, region: {region}}}
parameters:
  desired: {{type: number, default: 2}}
resources:
  asg:
    type: OS::Heat::AutoScalingGroup
    properties:
      min_size: 2
      max_size: 5
      desired_capacity: {{get_param: desired}}
      resource:
        type: OS::Nova::Server
        properties: {{image: {image}, flavor: {flavor}}}
  up:
    type: OS::Heat::ScalingPolicy
    properties:
      auto_scaling_group_id: {{get_resource: asg}}
      adjustment_type: change_in_capacity
      scaling_adjustment: 2
  down:
    type: OS::Heat::ScalingPolicy
    properties:
      auto_scaling_group_id: {{get_resource: asg}}
      adjustment_type: change_in_capacity
      scaling_adjustment: -3
  to_nine:
    type: OS::Heat::ScalingPolicy
    properties:
      auto_scaling_group_id: {{get_resource: asg}}
      adjustment_type: exact_capacity
      scaling_adjustment: 9
  shrink:
    type: OS::Heat::ScalingPolicy
    properties:
      auto_scaling_group_id: {{get_resource: asg}}
      adjustment_type: percent_change_in_capacity
      scaling_adjustment: -10
      min_adjustment_step: 2
  slow_up:
    type: OS::Heat::ScalingPolicy
    properties:
      auto_scaling_group_id: {{get_resource: asg}}
      adjustment_type: change_in_capacity
      scaling_adjustment: 1
      cooldown: 600
  key:
    type: OS::Heat::Value
    properties: {{value: not a policy}}
outputs:
  size: {{value: {{get_attr: [asg, current_size]}}}}
  refs: {{value: {{get_attr: [asg, refs]}}}}
  addresses: {{value: {{get_attr: [asg, outputs_list, first_address]}}}}
  by_member: {{value: {{get_attr: [asg, outputs, first_address]}}}}
"""

OPENSTACK = {"provider": "sandbox-openstack", "region": "de-fra-1", "image": "cirros-0.6",
             "flavor": "m1.tiny"}
AWS = {"provider": "sandbox-aws", "region": "us-east-1", "image": "ubuntu-22.04",
       "flavor": "tiny"}


def members(sandbox: dict[str, Any], stack: str) -> list[str]:
    """The OpenStack group members live, by the address each is tagged with (sorted:
    a duplicate shows as a repeated name)."""
    return sorted(n.extra["metadata"]["cloudtmpl:resource"] for n in servers(sandbox, stack))


def outputs(project: Path, stack: str) -> dict[str, Any]:
    r = invoke(project, "outputs", "-s", stack, "--format", "json")
    assert r.code == 0, r.err
    return dict(r.json())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "scaled.yaml", GROUP.format(**OPENSTACK))
    return tmp_path


def test_signal_scales_keeps_the_size_and_says_when_clamped(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    r = invoke(project, "apply", "scaled.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert members(openstack_reset, "scaled") == ["asg.0", "asg.1"]

    r = invoke(project, "signal", "scaled", "up", "--yes")
    assert r.code == 0, r.err + r.out
    assert "up: group asg scaled from 2 to 4" in r.out
    assert members(openstack_reset, "scaled") == ["asg.0", "asg.1", "asg.2", "asg.3"]
    out = outputs(project, "scaled")
    live = {n.extra["metadata"]["cloudtmpl:resource"]: n for n in servers(openstack_reset,
                                                                         "scaled")}
    assert out["size"] == 4
    assert out["refs"] == [live[f"asg.{i}"].id for i in range(4)]
    assert len(out["addresses"]) == 4 and all(out["addresses"])
    assert out["by_member"] == dict(zip("0123", out["addresses"], strict=True))

    # the unchanged template keeps the size: nothing to change, and apply changes nothing
    r = invoke(project, "plan", "scaled.yaml", "--detailed-exitcode")
    assert r.code == 0, r.err + r.out
    assert "No changes" in r.out
    r = invoke(project, "apply", "scaled.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert len(members(openstack_reset, "scaled")) == 4

    # -3 from 4 asks 1: clamped to min_size, and said
    r = invoke(project, "signal", "scaled", "down", "--yes")
    assert r.code == 0, r.err + r.out
    assert "down: group asg scaled to 2 (min_size), asked 1" in r.out
    # the oldest go first, as in Heat
    assert members(openstack_reset, "scaled") == ["asg.2", "asg.3"]

    # exact_capacity beyond max_size: clamped to it
    r = invoke(project, "signal", "scaled", "to_nine", "--yes")
    assert r.code == 0, r.err + r.out
    assert "to_nine: group asg scaled to 5 (max_size), asked 9" in r.out
    # an index scaled in is never used again
    assert members(openstack_reset, "scaled") == [f"asg.{i}" for i in range(2, 7)]

    # -10% of 5 is -0.5: Heat rounds it to -1, min_adjustment_step makes it -2
    r = invoke(project, "signal", "scaled", "shrink", "--yes")
    assert r.code == 0, r.err + r.out
    assert "shrink: group asg scaled from 5 to 3" in r.out
    assert members(openstack_reset, "scaled") == ["asg.4", "asg.5", "asg.6"]
    out = outputs(project, "scaled")
    assert out["size"] == 3 and sorted(out["by_member"]) == ["4", "5", "6"]
    r = invoke(project, "plan", "scaled.yaml", "--detailed-exitcode")
    assert r.code == 0, r.err + r.out

    # a changed desired_capacity is a changed definition: Heat resizes to it
    r = invoke(project, "apply", "scaled.yaml", "-p", "desired=4", "--yes")
    assert r.code == 0, r.err + r.out
    assert members(openstack_reset, "scaled") == ["asg.4", "asg.5", "asg.6", "asg.7"]
    assert outputs(project, "scaled")["size"] == 4


def test_cooldown_refuses_a_second_signal(project: Path,
                                          openstack_reset: dict[str, Any]) -> None:
    assert invoke(project, "apply", "scaled.yaml", "--yes").code == 0
    r = invoke(project, "signal", "scaled", "slow_up", "--yes")
    assert r.code == 0, r.err + r.out
    assert len(members(openstack_reset, "scaled")) == 3
    r = invoke(project, "signal", "scaled", "slow_up", "--yes")
    assert r.code == 1, r.out
    assert "error[in-cooldown]: policy 'slow_up' is in cooldown until" in r.err
    assert "not scaled" in r.err and "Traceback" not in r.err
    assert len(members(openstack_reset, "scaled")) == 3
    # another policy has a cooldown of its own (none): it scales
    r = invoke(project, "signal", "scaled", "up", "--yes")
    assert r.code == 0, r.err + r.out
    assert len(members(openstack_reset, "scaled")) == 5


def test_signal_to_what_is_not_a_policy_names_it(project: Path,
                                                 openstack_reset: dict[str, Any]) -> None:
    assert invoke(project, "apply", "scaled.yaml", "--yes").code == 0
    r = invoke(project, "signal", "scaled", "key", "--yes")
    assert r.code == 1
    assert "error[not-a-scaling-policy]: resource 'key' of stack 'scaled' is a " \
        "OS::Heat::Value, not a scaling policy" in r.err
    r = invoke(project, "signal", "scaled", "asg.0", "--yes")
    assert r.code == 1 and "is a OS::Nova::Server, not a scaling policy" in r.err
    r = invoke(project, "signal", "scaled", "upp", "--yes")
    assert r.code == 1 and "error[unknown-resource]" in r.err and "up" in r.err
    r = invoke(project, "signal", "nostack", "up", "--yes")
    assert r.code == 1 and "error[unknown-stack]" in r.err
    # without --yes and without a terminal: refused before anything is recorded
    r = invoke(project, "signal", "scaled", "up")
    assert r.code == 1 and "confirmation-required" in r.err
    assert len(members(openstack_reset, "scaled")) == 2
    r = invoke(project, "plan", "scaled.yaml", "--detailed-exitcode")
    assert r.code == 0, r.out


@pytest.mark.parametrize("command", [
    ("signal", "scaled", "up"),                               # +2: to 4
    ("apply", "scaled.yaml", "-p", "desired=4"),              # a new desired_capacity
])
def test_sigkill_during_a_scale_out_converges_without_duplicates(
        project: Path, openstack_reset: dict[str, Any], command: tuple[str, ...]) -> None:
    assert invoke(project, "apply", "scaled.yaml", "--yes").code == 0
    configure(openstack_reset, build_seconds=3)
    proc = subprocess.Popen(cli_args(*command, "--yes", "--parallelism", "1"),
                            cwd=project, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(servers(openstack_reset, "scaled")) < 3:  # the first new member is made
        assert proc.poll() is None, f"{command[0]} ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    assert len(servers(openstack_reset, "scaled")) == 3  # killed half way
    configure(openstack_reset, build_seconds=0)

    # the size was recorded before the scale-out: the unchanged template finishes it
    again = ("-p", "desired=4") if command[0] == "apply" else ()
    r = run(project, "apply", "scaled.yaml", *again, "--yes")
    assert r.code == 0, r.err + r.out
    names = members(openstack_reset, "scaled")
    assert names == ["asg.0", "asg.1", "asg.2", "asg.3"], names
    assert not [n for n, c in collections.Counter(names).items() if c > 1]
    r = invoke(project, "plan", "scaled.yaml", *again, "--detailed-exitcode")
    assert r.code == 0, r.out


def test_aws_group_scales_out(tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    write(tmp_path / "scaled.yaml", GROUP.format(**AWS))
    r = invoke(tmp_path, "apply", "scaled.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    r = invoke(tmp_path, "signal", "scaled", "up", "--yes")
    assert r.code == 0, r.err + r.out
    live = sorted(tags(i)["cloudtmpl:resource"]
                  for i in stack_instances(aws_reset, "us-east-1", "scaled")
                  if i["State"]["Name"] != "terminated")
    assert live == ["asg.0", "asg.1", "asg.2", "asg.3"]
    assert outputs(tmp_path, "scaled")["size"] == 4
    r = invoke(tmp_path, "plan", "scaled.yaml", "--detailed-exitcode")
    assert r.code == 0, r.out
    r = invoke(tmp_path, "signal", "scaled", "down", "--yes")
    assert r.code == 0 and "scaled to 2 (min_size), asked 1" in r.out
    live = sorted(tags(i)["cloudtmpl:resource"]
                  for i in stack_instances(aws_reset, "us-east-1", "scaled")
                  if i["State"]["Name"] not in ("terminated", "shutting-down"))
    assert live == ["asg.2", "asg.3"]


HEAT_ALARMS = """
  cpu_alarm_high:
    type: OS::Aodh::GnocchiAggregationByResourcesAlarm
    properties:
      metric: cpu
      aggregation_method: rate:mean
      granularity: 300
      evaluation_periods: 1
      threshold: 800000000.0
      resource_type: instance
      comparison_operator: gt
      alarm_actions:
        - str_replace:
            template: trust+url
            params:
              url: {get_attr: [scale_up, signal_url]}
  cpu_alarm_low:
    type: OS::Ceilometer::Alarm
    properties:
      meter_name: cpu_util
      statistic: avg
      period: 600
      evaluation_periods: 1
      threshold: 15
      alarm_actions: [{get_attr: [scale_down, alarm_url]}]
      comparison_operator: lt
"""


def test_heat_autoscaling_example(tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    example = (REPO / "examples" / "heat" / "autoscaling.yaml").read_text()
    write(tmp_path / "autoscaling.yaml", example)
    r = invoke(tmp_path, "validate", "autoscaling.yaml")
    assert r.code == 0, r.err
    r = invoke(tmp_path, "plan", "autoscaling.yaml", "--target", "sandbox-openstack",
               "-p", "image=cirros-0.6", "-p", "flavor=m1.tiny", "--format", "json")
    assert r.code == 0, r.err
    plan = r.json()
    assert sorted(c["address"] for c in plan["changes"]) == ["group.0", "scale_down",
                                                             "scale_up"]
    # Heat's own example has alarms that signal the policies: refused by name, no crash
    with_alarms = example.replace("\noutputs:", HEAT_ALARMS + "\noutputs:")
    write(tmp_path / "alarms.yaml", with_alarms)
    r = invoke(tmp_path, "validate", "alarms.yaml")
    assert r.code == 1
    assert "error[unsupported-kind]: resource 'cpu_alarm_high': " \
        "OS::Aodh::GnocchiAggregationByResourcesAlarm" in r.err
    assert "error[unsupported-kind]: resource 'cpu_alarm_low': OS::Ceilometer::Alarm" in r.err
    assert "Traceback" not in r.err


AWS_STYLE = """\
heat_template_version: 2016-10-14
placement: {{provider: sandbox-aws, region: us-east-1}}
parameters:
  size: {{type: number, default: 2}}
resources:
  lc:
    type: AWS::AutoScaling::LaunchConfiguration
    properties: {{ImageId: ubuntu-22.04, InstanceType: tiny}}
  fixed:
    type: OS::Heat::InstanceGroup
    properties:
      AvailabilityZones: [us-east-1a]
      LaunchConfigurationName: {{get_resource: lc}}
      Size: {{get_param: size}}
      Tags: [{{Key: role, Value: web}}]
  asg:
    type: AWS::AutoScaling::AutoScalingGroup
    properties:
      AvailabilityZones: [us-east-1a]
      LaunchConfigurationName: {{get_resource: lc}}
      MinSize: 1
      MaxSize: 2
  up:
    type: AWS::AutoScaling::ScalingPolicy
    properties:
      AutoScalingGroupName: {{get_resource: asg}}
      AdjustmentType: {adjustment}
      ScalingAdjustment: 5
  grow_fixed:
    type: AWS::AutoScaling::ScalingPolicy
    properties:
      AutoScalingGroupName: {{get_resource: fixed}}
      AdjustmentType: ChangeInCapacity
      ScalingAdjustment: 1
"""


def test_aws_style_groups_from_a_launch_configuration(tmp_path: Path,
                                                      aws_reset: dict[str, Any]) -> None:
    write(tmp_path / "legacy.yaml", AWS_STYLE.format(adjustment="ChangeInCapacity"))

    def live() -> list[tuple[str, str]]:
        return sorted((tags(i)["cloudtmpl:resource"], i["InstanceType"])
                      for i in stack_instances(aws_reset, "us-east-1", "legacy")
                      if i["State"]["Name"] not in ("terminated", "shutting-down"))

    r = invoke(tmp_path, "apply", "legacy.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert live() == [("asg.0", "t3.micro"), ("fixed.0", "t3.micro"), ("fixed.1", "t3.micro")]
    fixed = [i for i in stack_instances(aws_reset, "us-east-1", "legacy")
             if tags(i)["cloudtmpl:resource"] == "fixed.0"]
    assert tags(fixed[0])["role"] == "web"  # the group's Tags on its members
    r = invoke(tmp_path, "signal", "legacy", "up", "--yes")
    assert r.code == 0, r.err + r.out
    assert "up: group asg scaled to 2 (max_size), asked 6" in r.out
    assert [a for a, _ in live()] == ["asg.0", "asg.1", "fixed.0", "fixed.1"]
    # an InstanceGroup is sized by its Size alone, as in Heat: no policy scales it
    r = invoke(tmp_path, "signal", "legacy", "grow_fixed", "--yes")
    assert r.code == 1 and "error[not-scalable]" in r.err and "'fixed'" in r.err
    r = invoke(tmp_path, "apply", "legacy.yaml", "-p", "size=3", "--yes")
    assert r.code == 0, r.err + r.out
    assert [a for a, _ in live()] == ["asg.0", "asg.1", "fixed.0", "fixed.1", "fixed.2"]


@pytest.mark.parametrize(("props", "expected"), [
    ("min_size: 3\n      max_size: 2", "error[invalid-value]: resource 'g': min_size (3) "
                                       "can not be greater than max_size (2)"),
    ("min_size: 1\n      max_size: 2\n      desired_capacity: 5",
     "error[invalid-value]: resource 'g': desired_capacity (5) must be between min_size (1) "
     "and max_size (2)"),
    ("max_size: 2", "error[missing-property]: resource 'g': property 'min_size' is required"),
    ("min_size: 1\n      max_size: 2\n      count: 3",
     "error[unknown-property]: resource 'g': unknown property 'count' for a scaling group"),
    ("min_size: -1\n      max_size: 2", "min_size must be a known whole number of 0 or more"),
])
def test_scaling_group_properties_are_checked_as_heat(tmp_path: Path, props: str,
                                                      expected: str) -> None:
    write(tmp_path / "bad.yaml", f"""\
heat_template_version: 2016-10-14
resources:
  g:
    type: OS::Heat::AutoScalingGroup
    properties:
      {props}
      resource: {{type: OS::Heat::Value, properties: {{value: 1}}}}
""")
    r = invoke(tmp_path, "validate", "bad.yaml")
    assert r.code == 1 and expected in r.err, r.err
    assert "Traceback" not in r.err


@pytest.mark.parametrize(("policy", "expected"), [
    ("adjustment_type: change_in_capacity\n      scaling_adjustment: 1\n"
     "      min_adjustment_step: 1",
     "min_adjustment_step is only for adjustment_type percent_change_in_capacity"),
    ("adjustment_type: ChangeInCapacity\n      scaling_adjustment: 1",
     "adjustment_type must be one of change_in_capacity, exact_capacity, "
     "percent_change_in_capacity, not 'ChangeInCapacity'"),
    ("adjustment_type: exact_capacity\n      scaling_adjustment: 1.5",
     "a exact_capacity adjustment is a whole number of members, not 1.5"),
])
def test_policy_properties_are_checked_as_heat(tmp_path: Path, policy: str,
                                               expected: str) -> None:
    write(tmp_path / "bad.yaml", f"""\
heat_template_version: 2016-10-14
resources:
  g:
    type: OS::Heat::AutoScalingGroup
    properties:
      min_size: 1
      max_size: 2
      resource: {{type: OS::Heat::Value, properties: {{value: 1}}}}
  p:
    type: OS::Heat::ScalingPolicy
    properties:
      auto_scaling_group_id: {{get_resource: g}}
      {policy}
""")
    r = invoke(tmp_path, "validate", "bad.yaml")
    assert r.code == 1 and expected in r.err, r.err


@pytest.mark.parametrize(("change", "expected"), [
    ("      InstanceId: i-123\n", "error[unsupported-property]: resource 'asg': InstanceId"),
    ("      VPCZoneIdentifier: [a, b]\n", "VPCZoneIdentifier must list exactly one subnet"),
])
def test_aws_groups_refuse_what_cloudtmpl_cannot_do(tmp_path: Path, change: str,
                                                    expected: str) -> None:
    text = AWS_STYLE.format(adjustment="ChangeInCapacity").replace(
        "      MinSize: 1\n", "      MinSize: 1\n" + change)
    write(tmp_path / "bad.yaml", text)
    r = invoke(tmp_path, "validate", "bad.yaml")
    assert r.code == 1 and expected in r.err, r.err


def test_aws_group_needs_a_launch_configuration(tmp_path: Path) -> None:
    text = AWS_STYLE.format(adjustment="ChangeInCapacity").replace(
        "      LaunchConfigurationName: {get_resource: lc}\n      MinSize",
        "      LaunchConfigurationName: {get_resource: fixed}\n      MinSize").replace(
        "      AvailabilityZones: [us-east-1a]\n      LaunchConfigurationName: "
        "{get_resource: lc}\n      Size", "      LaunchConfigurationName: "
        "{get_resource: lc}\n      Size")
    write(tmp_path / "bad.yaml", text)
    r = invoke(tmp_path, "validate", "bad.yaml")
    assert r.code == 1
    assert "resource 'asg': LaunchConfigurationName must name an " \
        "AWS::AutoScaling::LaunchConfiguration of this template, not 'fixed'" in r.err
    assert "resource 'fixed': property 'AvailabilityZones' is required" in r.err
