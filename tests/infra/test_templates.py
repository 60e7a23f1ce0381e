"""cfn-lint on every synthesized template: what CloudFormation would reject, found before a deploy.

In a module of its own that runs after most others: cfn-lint started with the session's synth and
has been linting in the background meanwhile.
"""

from __future__ import annotations

import pytest

from tests.infra.conftest import Cloud

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["site", "processing", "upload_api"])
def test_cfn_lint_finds_no_error(cloud: Cloud, name: str) -> None:
    template = str(cloud.outdir / getattr(cloud, name).template_file)
    errors = [
        f"{f['Rule']['Id']} {'/'.join(map(str, f['Location']['Path']))}: {f['Message']}"
        for f in cloud.cfn_lint_findings
        if f["Filename"] == template and f["Level"] == "Error"
    ]
    assert errors == []
