"""Lambda code and layers built on this machine, with no Docker and (after the first run) no network.

CDK calls :meth:`PipLayerBundling.try_bundle` / :meth:`PackageBundling.try_bundle` first and only
falls back to its Docker image when they return False. Layers are pip-installed with the Linux
platform tags of the function's architecture and Python version from a local wheelhouse
(``infra/.cache/wheelhouse``) that is filled from PyPI the first time a wheel is missing, and each
built layer is kept under ``infra/.cache/layers/<key>`` so a later synth only copies it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

INFRA = Path(__file__).resolve().parent
REPO = INFRA.parent
#: Override with IMAGE_ETL_CDK_CACHE (CI caches, a shared disk).
CACHE = Path(os.environ.get("IMAGE_ETL_CDK_CACHE") or INFRA / ".cache")
#: Each function's layer: its pinned requirements (the folder is the layer's asset source).
RESIZER_REQUIREMENTS = INFRA / "layers" / "resizer" / "requirements.txt"
UPLOAD_API_REQUIREMENTS = INFRA / "layers" / "upload_api" / "requirements.txt"
# Bump when the layout of a built layer changes, so stale cached builds are not reused.
_LAYER_SCHEME = 1


@dataclass(frozen=True)
class LambdaPlatform:
    """What a function runs on, spelled for Lambda, pip and Docker."""

    architecture: lambda_.Architecture
    runtime: lambda_.Runtime
    #: The CPU as Python's wheel tags and extension modules name it (``aarch64``, ``x86_64``).
    machine: str

    @property
    def python_version(self) -> str:
        return self.runtime.name.removeprefix("python")

    @property
    def pip_platforms(self) -> tuple[str, ...]:
        # With manylinux2014 alone pip settles on older releases; current wheels are manylinux_2_28.
        return (f"manylinux2014_{self.machine}", f"manylinux_2_28_{self.machine}")

    @property
    def extension_suffix(self) -> str:
        """Return the tag of compiled modules built for this platform (``cpython-312-aarch64-linux-gnu``)."""
        return f"cpython-{self.python_version.replace('.', '')}-{self.machine}-linux-gnu"


#: Graviton: about 20% cheaper per GB-second than x86_64, and Pillow, pillow-heif and numpy all ship
#: aarch64 wheels for CPython 3.12 (see README, "Deploying to AWS").
ARM64_PY312 = LambdaPlatform(
    architecture=lambda_.Architecture.ARM_64, runtime=lambda_.Runtime.PYTHON_3_12, machine="aarch64"
)
X86_64_PY312 = LambdaPlatform(
    architecture=lambda_.Architecture.X86_64, runtime=lambda_.Runtime.PYTHON_3_12, machine="x86_64"
)
#: The resize functions run on x86_64: their SIMD resampler (cykooz-resizer, fast_image_resize)
#: ships Linux wheels for x86_64 only, and with it the core takes 0.79 of its time with Pillow's
#: resampler, about what x86_64's higher price per GB-second costs (README, bench/RESULTS.md).
#: The upload API has no such need.
RESIZER_PLATFORM = X86_64_PY312
UPLOAD_API_PLATFORM = ARM64_PY312


class BundlingError(RuntimeError):
    """Local bundling could not produce the asset."""


@jsii.implements(ILocalBundling)
class PipLayerBundling:
    """Pip-install a requirements file for ``platform`` into ``<asset>/python``, as Lambda layers expect."""

    def __init__(self, *, requirements: Path, platform: LambdaPlatform, cache: Path = CACHE) -> None:
        self.requirements = requirements
        self.platform = platform
        self.wheelhouse = cache / "wheelhouse"
        self.layers = cache / "layers"

    # jsii passes both arguments positionally: keep this exact signature.
    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        try:
            built = self.build()
        except BundlingError as error:
            if shutil.which("docker"):
                print(f"local layer bundling failed, trying Docker: {error}", file=sys.stderr)
                return False
            raise
        shutil.copytree(built / "python", Path(output_dir) / "python", dirs_exist_ok=True)
        return True

    def cache_key(self) -> str:
        """Return what identifies a built layer: the pins, the platform tags and the Python version."""
        spec = {
            "scheme": _LAYER_SCHEME,
            "requirements": self.requirements.read_text(),
            "platforms": self.platform.pip_platforms,
            "python": self.platform.python_version,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]

    def build(self) -> Path:
        """Return a folder holding the built layer (``python/...``), building it once per cache key.

        :raises BundlingError: when a wheel is neither in the wheelhouse nor downloadable.
        """
        target = self.layers / self.cache_key()
        if (target / ".complete").is_file():
            return target
        self.layers.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="building-", dir=self.layers))
        staging.chmod(0o755)  # mkdtemp's 0700 would make the cached layer unreadable to other users
        try:
            if self._pip_install(staging).returncode != 0:
                # Something is not in the wheelhouse yet: fetch it (the only step that needs PyPI).
                download = self._pip("download", "--dest", str(self.wheelhouse), "--retries", "0")
                if download.returncode != 0:
                    raise BundlingError(
                        f"wheels for {self.requirements} ({' '.join(self.platform.pip_platforms)}, "
                        f"Python {self.platform.python_version}) are not in {self.wheelhouse} and PyPI "
                        f"is unreachable; run `make wheels` once with network access.\n{download.stderr}"
                    )
                shutil.rmtree(staging / "python", ignore_errors=True)
                install = self._pip_install(staging)
                if install.returncode != 0:
                    raise BundlingError(f"pip install of {self.requirements} failed:\n{install.stderr}")
            # pip's console scripts point at this machine's interpreter and are useless in Lambda.
            shutil.rmtree(staging / "python" / "bin", ignore_errors=True)
            (staging / ".complete").touch()
            try:
                staging.rename(target)
            except OSError:
                if not (target / ".complete").is_file():  # not a concurrent build that won the race
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def fill_wheelhouse(self) -> None:
        """Download every wheel the layer needs, so later builds work offline."""
        result = self._pip("download", "--dest", str(self.wheelhouse))
        if result.returncode != 0:
            raise BundlingError(result.stderr)

    def _pip_install(self, staging: Path) -> subprocess.CompletedProcess[str]:
        # From the wheelhouse only: this step never needs the network.
        return self._pip(
            "install", "--no-index", "--find-links", str(self.wheelhouse), "--no-compile",
            "--target", str(staging / "python"),
        )  # fmt: skip

    def _pip(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        platform_args = [arg for tag in self.platform.pip_platforms for arg in ("--platform", tag)]
        return subprocess.run(
            [
                sys.executable, "-m", "pip", command, "--disable-pip-version-check", "--no-input",
                "--quiet", *platform_args, "--implementation", "cp",
                "--python-version", self.platform.python_version, "--only-binary=:all:",
                "--timeout", "20", *args, "-r", str(self.requirements),
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip


@jsii.implements(ILocalBundling)
class PackageBundling:
    """Copy one package folder to the root of the asset: the handler is ``<package>.handler``.

    A package's C objects (``NATIVE_BUILDS``) are compiled into the asset for the function's CPU,
    never copied from this machine's checkout: when this machine's CPU or system is not the
    function's, they are left out (the code falls back to what it does without them) and a
    warning says so.
    """

    def __init__(self, *, package: Path, platform: LambdaPlatform | None = None) -> None:
        self.package = package
        self.platform = platform

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        target = Path(output_dir) / self.package.name
        shutil.copytree(self.package, target, ignore=shutil.ignore_patterns(*_NOT_CODE), dirs_exist_ok=True)
        build = NATIVE_BUILDS.get(self.package.name)
        if build is not None and self.platform is not None:
            if sys.platform != "linux" or os.uname().machine != self.platform.machine:
                print(
                    f"WARNING: {self.package.name}'s C objects are not built for {self.platform.machine} "
                    f"on this {sys.platform} {os.uname().machine} machine; the function runs without them",
                    file=sys.stderr,
                )
            else:
                module, subfolder = build
                builder = importlib.import_module(module)
                try:
                    builder.build(target / subfolder)
                except RuntimeError as error:  # no compiler: the code falls back, as on another CPU
                    print(f"WARNING: {error}; the function runs without that C object", file=sys.stderr)
        return True


#: Package -> (the module whose ``build(folder)`` compiles its C objects, the folder in the package).
NATIVE_BUILDS = {"lambda_resizer": ("lambda_resizer.formats.native_build", "formats")}
#: Never code: bytecode, and compiled objects this checkout built for this machine.
_NOT_CODE = ("__pycache__", "*.pyc", ".pytest_cache", "*.so", "*.so.partial")


def layer_code(requirements: Path, *, platform: LambdaPlatform) -> lambda_.Code:
    """Return a layer's code: ``requirements`` installed for ``platform``, locally or else in Docker.

    The asset hash is the requirements folder's content plus the bundling settings, so a new pin or
    another platform makes a new layer version and nothing else does.
    """
    return lambda_.Code.from_asset(
        str(requirements.parent),
        asset_hash_type=AssetHashType.SOURCE,
        bundling=BundlingOptions(
            image=platform.runtime.bundling_image,
            platform=platform.architecture.docker_platform,
            command=[
                "bash", "-c",
                f"pip install --no-compile -r {requirements.name} -t /asset-output/python",
            ],
            # jsii passes the options struct positionally; its Protocol spells it out as keywords.
            local=PipLayerBundling(requirements=requirements, platform=platform),  # type: ignore[arg-type]
        ),
    )  # fmt: skip


def package_code(package: Path, *, platform: LambdaPlatform | None = None) -> lambda_.Code:
    """Return a function's code: the ``package`` folder alone at the asset root, C objects built for it.

    The asset hash follows the package's files, so any change to the handler's code deploys it.
    """
    name = package.name
    return lambda_.Code.from_asset(
        str(package),
        asset_hash_type=AssetHashType.SOURCE,
        exclude=list(_NOT_CODE),
        bundling=BundlingOptions(
            image=DockerImage.from_registry("public.ecr.aws/docker/library/busybox:stable"),
            command=[
                "sh",
                "-c",
                f"mkdir -p /asset-output/{name} && cp -R /asset-input/. /asset-output/{name}/",
            ],
            local=PackageBundling(package=package, platform=platform),  # type: ignore[arg-type]  # as above
        ),
    )


def main() -> None:
    """Fill the wheelhouse for every layer (`make wheels`), so later synths need no network."""
    layers = ((RESIZER_REQUIREMENTS, RESIZER_PLATFORM), (UPLOAD_API_REQUIREMENTS, UPLOAD_API_PLATFORM))
    for requirements, platform in layers:
        PipLayerBundling(requirements=requirements, platform=platform).fill_wheelhouse()
        print(f"wheels for {requirements.relative_to(REPO)} are in {CACHE / 'wheelhouse'}")


if __name__ == "__main__":
    main()
