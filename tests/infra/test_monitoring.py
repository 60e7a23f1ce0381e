"""Alarms: each alarm notifies the deployment's SNS topic when one is given, and only then."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template

from infra.components.monitoring import Alarms

TOPIC = "arn:aws:sns:eu-west-1:111111111111:image-etl-alarms"


def alarm_actions(topic_arn: str | None) -> list[object]:
    stack = cdk.Stack(cdk.App(builtin_cloud_formation_validation=False), "Bare")
    Alarms(stack, "Alarms", dead_letter_queues={"Dead": sqs.Queue(stack, "Dlq")}, topic_arn=topic_arn)
    (alarm,) = Template.from_stack(stack).find_resources("AWS::CloudWatch::Alarm").values()
    return alarm["Properties"].get("AlarmActions", [])


def test_alarms_notify_the_topic_given_by_its_arn() -> None:
    assert alarm_actions(TOPIC) == [TOPIC]


def test_without_a_topic_alarms_only_show_in_the_console() -> None:
    assert alarm_actions(None) == []
