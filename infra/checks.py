"""cdk-nag in the synth: an error fails `cdk synth`/`cdk deploy`, a warning is printed and passes.

cdk-nag 3 is a CDK policy-validation plugin whose report fails the synth on any finding, warnings
included. The issue asks for zero unsuppressed *errors*, so this wrapper keeps every finding in
the report but fails only on errors. Acknowledge a finding next to the resource it concerns with
:func:`acknowledge`, always with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import jsii
from aws_cdk import (
    Acknowledgment,
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    Validations,
)
from cdk_nag import AwsSolutionsChecks, NagPack
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Record that ``rule`` (``AwsSolutions-IAM5[Resource::...]`` for one finding) is accepted on ``scope``."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


@jsii.implements(IPolicyValidationPlugin)
class ErrorsFailSynth:
    """A policy-validation plugin that reports what ``pack`` finds and fails only on errors."""

    def __init__(self, pack: NagPack) -> None:
        self._pack = pack

    @property
    def name(self) -> str:
        return self._pack.name

    @property
    def version(self) -> str | None:
        return self._pack.version

    @property
    def rule_ids(self) -> Sequence[str] | None:
        return self._pack.rule_ids

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        report = self._pack.validate(context)
        errors = [v for v in report.violations if v.severity == "error"]
        return PolicyValidationPluginReport(success=not errors, violations=list(report.violations))


def aws_solutions_checks(scope: IConstruct) -> ErrorsFailSynth:
    """Return the AwsSolutions pack for ``scope``, writing acknowledgments into the templates' Metadata."""
    return ErrorsFailSynth(AwsSolutionsChecks(scope, verbose=True, write_suppressions_to_cloud_formation=True))
