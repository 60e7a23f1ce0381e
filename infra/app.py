"""CDK entry point: `make synth` and the CDK CLI (`infra/cdk.json`) run this module."""

from __future__ import annotations

from infra.deployment import build_cdk_app

build_cdk_app().synth()
