"""The pure rewrites of the AWS sandbox's routing layer (``cloudtmpl_sandbox.aws_routing``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cloudtmpl_sandbox import aws_routing

NAT_ANSWER = (
    '<DescribeNatGatewaysResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
    "<natGatewaySet>"
    "<item><natGatewayAddressSet><item><allocationId>eipalloc-1</allocationId></item>"
    "</natGatewayAddressSet><natGatewayId>nat-aa</natGatewayId><state>deleted</state>"
    "<tagSet><item><key>k</key><value>v</value></item></tagSet></item>"
    "<item><natGatewayAddressSet><item><allocationId>eipalloc-2</allocationId></item>"
    "</natGatewayAddressSet><natGatewayId>nat-bb</natGatewayId><state>available</state>"
    "</item></natGatewaySet></DescribeNatGatewaysResponse>")


def test_elb_dns_names_carry_the_region_asked() -> None:
    body = b"<DNSName>lb.us-east-1.elb.amazonaws.com</DNSName>"
    assert aws_routing.elb_dns("eu-central-1", body) == \
        b"<DNSName>lb.eu-central-1.elb.amazonaws.com</DNSName>"
    assert aws_routing.elb_dns("us-east-1", body) == body


def test_members_already_registered_are_not_sent_again() -> None:
    params = [("Action", "RegisterInstancesWithLoadBalancer"), ("LoadBalancerName", "lb"),
              ("Instances.member.1.InstanceId", "i-1"), ("Instances.member.2.InstanceId", "i-2")]
    assert aws_routing.without_members(params, {"i-1"}) == [
        ("Action", "RegisterInstancesWithLoadBalancer"), ("LoadBalancerName", "lb"),
        ("Instances.member.1.InstanceId", "i-2")]


def test_a_member_answer_lists_the_members() -> None:
    body = b"<R><Result><Instances/></Result></R>"
    out = aws_routing.members_answer(body, ["i-1", "i-2"])
    ids = [e.text for e in ET.fromstring(out).iter("InstanceId")]
    assert ids == ["i-1", "i-2"]
    assert aws_routing.members_answer(out, []).count(b"<Instances></Instances>") == 1


def test_a_failed_nat_gateway_is_shown_failed_with_its_reason() -> None:
    routing = aws_routing.Routing()
    routing._failed[("r1", "nat-aa")] = ("Gateway.NotAttached",
                                         "Network vpc-1 has no Internet gateway attached")
    root = ET.fromstring(routing._failed_view("r1", NAT_ANSWER.encode()))
    items = root.findall(".//{*}natGatewaySet/{*}item")
    states = {i.findtext("{*}natGatewayId"): (i.findtext("{*}state"),
                                              i.findtext("{*}failureCode"))
              for i in items}
    assert states == {"nat-aa": ("failed", "Gateway.NotAttached"),
                      "nat-bb": ("available", None)}
    # another region's failure is not this one's
    assert routing._failed_view("r2", NAT_ANSWER.encode()) == NAT_ANSWER.encode()


def test_a_new_nat_gateway_is_pending_the_first_time_it_is_described() -> None:
    routing = aws_routing.Routing()
    routing._fresh.add(("r1", "nat-bb"))
    first = ET.fromstring(routing._failed_view("r1", NAT_ANSWER.encode()))
    second = ET.fromstring(routing._failed_view("r1", NAT_ANSWER.encode()))
    state = ".//{*}natGatewaySet/{*}item[{*}natGatewayId='nat-bb']/{*}state"
    assert [first.findtext(state), second.findtext(state)] == ["pending", "available"]
