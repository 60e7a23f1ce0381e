"""The CDK app, synthesized once per session into a temp folder, as `cdk deploy` would synthesize it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

# After the variable above: importing jsii prints a banner on Node 20 otherwise.
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from infra.deployment import build_cdk_app
from infra.stacks.processing import ImageProcessingStack
from infra.stacks.upload_api import UploadApiStack
from infra.stacks.upload_site import UploadSiteStack

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
    #: cfn-lint over every template, started right after the synth: its ~10 s (mostly importing its
    #: schemas) overlap the other tests instead of adding to them.
    cfn_lint: subprocess.Popen[str]

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
    def cfn_lint_findings(self) -> list[dict[str, Any]]:
        """cfn-lint's findings (its JSON format) over the three templates."""
        stdout, stderr = self.cfn_lint.communicate(timeout=300)
        # Exit status 1 is cfn-lint failing to run; 2, 4 and 8 flag errors, warnings, informational.
        assert self.cfn_lint.returncode != 1 and stdout.lstrip().startswith("["), stderr
        return json.loads(stdout)

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
        # cdk-nag runs per stack in test_nag, so a finding fails one test, not the session.
        app = build_cdk_app(outdir=outdir, checks=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    app.synth()
    stacks = {type(child): child for child in app.node.children if isinstance(child, Stack)}
    templates = [str(outdir / stack.template_file) for stack in stacks.values()]
    lint = "import sys; from cfnlint.runner import main; sys.exit(main())"
    cfn_lint = subprocess.Popen(
        [
            sys.executable,
            "-c",
            lint,
            "--format",
            "json",
            "--regions",
            DEPLOY_ENV["CDK_DEFAULT_REGION"],
            "--",
            *templates,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield Cloud(
        app=app,
        outdir=outdir,
        site=stacks[UploadSiteStack],
        processing=stacks[ImageProcessingStack],
        upload_api=stacks[UploadApiStack],
        cfn_lint=cfn_lint,
    )
    if cfn_lint.poll() is None:
        cfn_lint.kill()
        cfn_lint.wait()
