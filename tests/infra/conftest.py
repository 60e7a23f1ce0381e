"""The CDK app, synthesized once per session into a temp folder, as `cdk deploy` would synthesize it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Stack  # noqa: E402  (after the variable that silences jsii's banner)
from aws_cdk.assertions import Template  # noqa: E402

from infra.deployment import build_app  # noqa: E402
from infra.stacks.processing import ImageProcessingStack  # noqa: E402
from infra.stacks.upload_api import UploadApiStack  # noqa: E402
from infra.stacks.upload_site import UploadSiteStack  # noqa: E402

#: What the CDK CLI sets from the deployer's credentials; the templates are then environment-specific.
DEPLOY_ENV = {"CDK_DEFAULT_ACCOUNT": "111111111111", "CDK_DEFAULT_REGION": "eu-west-1"}


@dataclass
class Cloud:
    """The synthesized app: its stacks, their templates and the cloud assembly folder."""

    app: App
    outdir: Path
    site: UploadSiteStack
    processing: ImageProcessingStack
    upload_api: UploadApiStack

    @property
    def stacks(self) -> tuple[Stack, Stack, Stack]:
        return (self.site, self.processing, self.upload_api)

    def template_json(self, stack: Stack) -> dict[str, Any]:
        return self._templates[stack.stack_name]

    def template(self, stack: Stack) -> Template:
        return Template.from_json(self.template_json(stack), skip_cyclical_dependencies_check=True)

    def resources(self, stack: Stack, type_: str) -> dict[str, dict[str, Any]]:
        """Return logical id -> resource of every resource of ``type_`` in ``stack``'s template."""
        return {
            logical_id: resource
            for logical_id, resource in self.template_json(stack)["Resources"].items()
            if resource["Type"] == type_
        }

    def logical_id(self, construct: Any) -> str:
        """Return the logical id of an L2 construct's CloudFormation resource."""
        cfn = getattr(construct.node, "default_child", None) or construct
        return Stack.of(construct).get_logical_id(cfn)

    def asset_dir(self, s3_key: str) -> Path:
        """Return the staged folder of the asset a template refers to by ``<hash>.zip``."""
        return self.outdir / f"asset.{s3_key.removesuffix('.zip')}"

    @cached_property
    def _templates(self) -> dict[str, dict[str, Any]]:
        return {
            stack.stack_name: json.loads((self.outdir / stack.template_file).read_text())
            for stack in self.stacks
        }


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    saved = {name: os.environ.get(name) for name in DEPLOY_ENV}
    os.environ.update(DEPLOY_ENV)
    try:
        # cdk-nag runs per stack in test_checks, so a finding fails one test, not the session.
        app = build_app(outdir=outdir, checks=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    app.synth()
    stacks = {type(child): child for child in app.node.children if isinstance(child, Stack)}
    yield Cloud(
        app=app,
        outdir=outdir,
        site=stacks[UploadSiteStack],
        processing=stacks[ImageProcessingStack],
        upload_api=stacks[UploadApiStack],
    )
