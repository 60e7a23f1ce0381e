"""Local bundling: no Docker, no network once the wheelhouse is filled, new code means a new asset."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from infra.bundling import (
    ARM64_PY312,
    CACHE,
    REPO,
    UPLOAD_API_REQUIREMENTS,
    X86_64_PY312,
    BundlingError,
    PackageBundling,
    PipLayerBundling,
    package_code,
)
from tests.infra.conftest import Cloud

#: Nothing listens here: pip fails at once, as with no network.
UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pip with an unreachable index and none of this machine's extra wheel sources (config, env)."""
    monkeypatch.setenv("PIP_INDEX_URL", UNREACHABLE_INDEX)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT"):
        monkeypatch.delenv(name, raising=False)


def _code_key(package: Path, outdir: Path) -> str:
    app = App(outdir=str(outdir), builtin_cloud_formation_validation=False)
    stack = Stack(app, "Code")
    lambda_.Function(
        stack,
        "Function",
        runtime=ARM64_PY312.runtime,
        architecture=ARM64_PY312.architecture,
        handler=f"{package.name}.handler.lambda_handler",
        code=package_code(package),
    )
    app.synth()
    template = json.loads((outdir / "Code.template.json").read_text())
    (function,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    return function["Properties"]["Code"]["S3Key"]


def test_a_code_change_deploys_a_new_asset_and_bytecode_does_not(tmp_path: Path) -> None:
    package = tmp_path / "lambda_resizer"
    shutil.copytree(REPO / "lambda_resizer", package, ignore=shutil.ignore_patterns("__pycache__"))
    first = _code_key(package, tmp_path / "out1")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"stale")
    assert _code_key(package, tmp_path / "out2") == first
    handler = package / "handler.py"
    handler.write_text(handler.read_text() + "\n# changed\n")
    assert _code_key(package, tmp_path / "out3") != first


def _small_layer(tmp_path: Path) -> Path:
    """A layer of one small pure-Python wheel that every deployment's wheelhouse holds."""
    (pin,) = [
        line for line in UPLOAD_API_REQUIREMENTS.read_text().splitlines() if line.startswith("jmespath==")
    ]
    requirements = tmp_path / "layer" / "requirements.txt"
    requirements.parent.mkdir()
    requirements.write_text(pin + "\n")
    return requirements


@pytest.mark.slow
@pytest.mark.usefixtures("no_network")
def test_layer_builds_offline_from_the_wheelhouse(cloud: Cloud, tmp_path: Path) -> None:
    # The session's synth filled the wheelhouse; with the package index unreachable, this is a
    # machine with no network after `make wheels`.
    (tmp_path / "wheelhouse").symlink_to(CACHE / "wheelhouse")
    bundling = PipLayerBundling(requirements=_small_layer(tmp_path), platform=ARM64_PY312, cache=tmp_path)
    out = tmp_path / "asset"
    assert bundling.try_bundle(str(out), None)  # type: ignore[arg-type]  (jsii passes BundlingOptions)
    assert (out / "python" / "jmespath" / "__init__.py").is_file()
    assert sorted(path.name for path in out.iterdir()) == ["python"]


@pytest.mark.slow
@pytest.mark.usefixtures("no_network")
def test_missing_wheels_with_no_network_say_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # and no Docker to fall back to
    bundling = PipLayerBundling(requirements=_small_layer(tmp_path), platform=ARM64_PY312, cache=tmp_path)
    with pytest.raises(BundlingError, match="make wheels"):
        bundling.try_bundle(str(tmp_path / "asset"), None)  # type: ignore[arg-type]


def test_without_a_working_compiler_the_code_is_bundled_without_its_c_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The function falls back to libjpeg and libwebp without them (as on another CPU): a synth
    # on a machine with no compiler must still produce the asset, and say what it left out.
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    package = REPO / "lambda_resizer"
    bundling = PackageBundling(package=package, platform=X86_64_PY312)
    out = tmp_path / "asset"
    assert bundling.try_bundle(str(out), None)  # type: ignore[arg-type]  (jsii passes BundlingOptions)
    assert (out / "lambda_resizer" / "handler.py").is_file()
    assert not list(out.rglob("*.so"))
    if os.uname().machine == "x86_64":
        assert "no-such-cc cannot be run" in capsys.readouterr().err
