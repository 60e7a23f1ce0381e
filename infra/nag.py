"""cdk-nag (AwsSolutions) in every synth: an unaccepted error fails `cdk synth`/`cdk deploy`.

cdk-nag 3 is a CDK policy-validation plugin. Two gaps are filled here: its report fails the synth
on any finding, warnings included, while we want zero unaccepted *errors* (warnings are printed);
and it acknowledges granular findings (IAM4/IAM5) by exact id only, ids that embed CDK-generated
export names for cross-stack references. :func:`acknowledge` accepts a rule, or a granular rule's
findings by regular expression, on a construct and everything under it, always with a reason, and
:class:`ErrorsFailSynth` drops the accepted findings from the report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import jsii
from aws_cdk import (
    Acknowledgment,
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolation,
    Validations,
)
from aws_cdk import aws_s3_deployment as s3deploy
from cdk_nag import AwsSolutionsChecks, NagPack
from constructs import IConstruct

_ACCEPTED = "image-etl:cdk-nag-accepted"


def acknowledge(scope: IConstruct, rule: str, reason: str, *, findings: Sequence[str] = ()) -> None:
    """Accept cdk-nag's ``rule`` on ``scope`` and everything under it, for ``reason``.

    :param findings: for a granular rule, the accepted findings as regular expressions matched
        against the whole finding (``Resource::.*/uploads/\\*``); other findings still fail.
    """
    if not findings:
        # Also cdk-nag's own acknowledgment, so it lands in the template's Metadata (audit trail).
        Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))
    scope.node.add_metadata(_ACCEPTED, {"rule": rule, "findings": list(findings), "reason": reason})


def unaccepted(violations: Iterable[PolicyViolation], root: IConstruct) -> list[PolicyViolation]:
    """Return ``violations`` without the findings accepted on their constructs or an ancestor.

    :param root: a construct holding every violating construct (the app, or the stack checked).
    """
    constructs = {construct.node.path: construct for construct in root.node.find_all()}
    kept = []
    for violation in violations:
        rule, _, finding = violation.rule_name.partition("[")
        resources = [
            resource
            for resource in violation.violating_resources
            if not _is_accepted(constructs.get(resource.construct_path or ""), rule, finding[:-1])
        ]
        if resources:
            kept.append(
                PolicyViolation(
                    description=violation.description,
                    rule_name=violation.rule_name,
                    severity=violation.severity,
                    violating_resources=resources,
                )
            )
    return kept


def _is_accepted(construct: IConstruct | None, rule: str, finding: str) -> bool:
    if construct is None:
        return False
    for scope in construct.node.scopes:
        for entry in scope.node.metadata:
            if entry.type != _ACCEPTED or entry.data["rule"] != rule:
                continue
            patterns = entry.data["findings"]
            if not finding and not patterns:
                return True
            if finding and any(re.fullmatch(pattern, finding) for pattern in patterns):
                return True
    return False


@jsii.implements(IPolicyValidationPlugin)
class ErrorsFailSynth:
    """A policy-validation plugin reporting what ``pack`` finds, less accepted findings; only errors fail."""

    def __init__(self, pack: NagPack, *, root: IConstruct) -> None:
        self._pack = pack
        self._root = root

    @property
    def name(self) -> str:
        return self._pack.name

    @property
    def version(self) -> str | None:
        return self._pack.version

    @property
    def rule_ids(self) -> list[str] | None:
        return self._pack.rule_ids

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        violations = unaccepted(self._pack.validate(context).violations, self._root)
        errors = [violation for violation in violations if violation.severity == "error"]
        return PolicyValidationPluginReport(success=not errors, violations=violations)


def aws_solutions_checks(root: IConstruct) -> ErrorsFailSynth:
    """Return the AwsSolutions pack for ``root``, writing acknowledgments into the templates' Metadata."""
    return ErrorsFailSynth(
        AwsSolutionsChecks(root, verbose=True, write_suppressions_to_cloud_formation=True), root=root
    )


def acknowledge_bucket_deployment_handler(deployment: s3deploy.BucketDeployment) -> None:
    """Accept the findings on the function CDK's BucketDeployment runs (one per stack, CDK-owned)."""
    handler = deployment.handler_role.node.scope  # the role sits inside the function it serves
    if handler is None:
        raise ValueError(f"{deployment.node.path}: its handler role has no enclosing function")
    acknowledge(
        handler, "AwsSolutions-L1", "CDK's BucketDeployment handler; CDK picks and updates its runtime."
    )
    acknowledge(
        handler,
        "AwsSolutions-IAM4",
        "AWSLambdaBasicExecutionRole only lets CDK's deployment handler write its own logs.",
        findings=[r"Policy::.*/AWSLambdaBasicExecutionRole"],
    )
    acknowledge(
        handler,
        "AwsSolutions-IAM5",
        "CDK's grants for copying the site's files: read the CDK asset bucket, write and prune the "
        "site bucket; CloudFront invalidations have no resource-level permissions.",
        findings=[
            r"Action::s3:(GetObject|GetBucket|List|DeleteObject|Abort)\*",
            r"Resource::arn:<AWS::Partition>:s3:::cdk-[a-z0-9]+-assets-[^/]+/\*",
            r"Resource::.*SiteBucket.*/\*",
            r"Resource::\*",
        ],
    )
