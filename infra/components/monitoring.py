"""Alarms that say something is wrong: a message gave up (DLQ) or a function raised."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

_PERIOD = Duration.minutes(5)


class Alarms(Construct):
    """One alarm per dead-letter queue (any visible message) and per function (any error).

    Both thresholds are "more than zero": each DLQ message is an upload that never got a record, and
    each function error is a batch that will be retried. Missing data means nothing happened.

    :param topic_arn: the SNS topic alarms notify (optional: without it they show in the CloudWatch
        console); looked up here, so every stack that has alarms imports it the same way.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        dead_letter_queues: Mapping[str, sqs.IQueue] | None = None,
        functions: Mapping[str, lambda_.IFunction] | None = None,
        topic_arn: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for name, queue in (dead_letter_queues or {}).items():
            self.alarms[f"{name}Messages"] = self._above_zero(
                f"{name}Messages",
                queue.metric_approximate_number_of_messages_visible(period=_PERIOD, statistic="Maximum"),
                f"{name} holds messages: uploads that got no record after every retry. Read one, fix "
                "the cause, then redrive them to the source queue.",
            )
        for name, function in (functions or {}).items():
            self.alarms[f"{name}Errors"] = self._above_zero(
                f"{name}Errors",
                function.metric_errors(period=_PERIOD, statistic="Sum"),
                f"{name} raised errors: see its log group.",
            )
        if topic_arn:
            topic = sns.Topic.from_topic_arn(self, "Topic", topic_arn)
            for alarm in self.alarms.values():
                alarm.add_alarm_action(actions.SnsAction(topic))

    def _above_zero(self, id: str, metric: cloudwatch.IMetric, description: str) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            self,
            id,
            metric=metric,
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
