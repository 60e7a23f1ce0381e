"""The notebooks run top to bottom against a local stack seeded with the demo dataset (two manifest
versions, from the demo's two rounds), compare_versions also with a single version, and they are
committed without outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import nbformat
import pytest
from nbclient import NotebookClient

from image_etl.manifest import list_versions, read_manifest
from image_etl.settings import Settings
from pipelines.definitions import make_definitions
from pipelines.resources import build_resources
from tests.stack_process import RunningStack, free_port, image_etl_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
ARTIFACTS = REPO / "test-artifacts" / "notebooks"


def build_manifest_version(settings: Settings) -> None:
    """Refresh today's records and publish a manifest, as the sensor's run would."""
    defs = make_definitions(build_resources(settings))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("dataset_job").execute_in_process(
            partition_key=datetime.now(UTC).date().isoformat(), instance=instance
        )
    assert result.success


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack with the demo dataset uploaded in its default two rounds: two manifest versions."""
    stack = RunningStack(tmp_path_factory.mktemp("notebook-stack") / "data", free_port(), free_port())
    stack.start()
    demo = image_etl_cli("demo", "--per-class", "5", "--data-dir", str(stack.data_dir), timeout=400)
    assert demo.returncode == 0, demo.stderr
    # Without Dagster in the stack the demo built each round's version itself.
    assert len(list_versions(stack.settings)) == 2, demo.stderr
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def one_version(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """What a newcomer has after one upload and one build: a single manifest version."""
    stack = RunningStack(tmp_path_factory.mktemp("one-version-stack") / "data", free_port(), free_port())
    stack.start()
    demo = image_etl_cli(
        "demo", "--per-class", "3", "--rounds", "1", "--data-dir", str(stack.data_dir), timeout=300
    )
    assert demo.returncode == 0, demo.stderr
    build_manifest_version(stack.settings)
    assert len(list_versions(stack.settings)) == 1
    yield stack
    stack.stop()


def run_notebook(path: Path, stack: RunningStack, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Execute ``path`` against ``stack`` (a failing cell raises CellExecutionError) and keep a copy."""
    monkeypatch.setenv("IMAGE_ETL_DATA_DIR", str(stack.data_dir))
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, ARTIFACTS / path.name)  # the executed copy, to look at
    return notebook


def test_compare_versions_with_one_version_shows_it_against_an_empty_one_and_says_what_it_needs(
    one_version: RunningStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = run_notebook(REPO / "notebooks" / "compare_versions.ipynb", one_version, monkeypatch)
    shown = [
        "".join(output.get("data", {}).get("text/markdown", ""))
        + "".join(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]
    assert any("Only one version" in text and "image-etl demo" in text for text in shown)
    rows = len(read_manifest(list_versions(one_version.settings)[0], one_version.settings))
    assert any(f"'added': {rows}" in text and "'removed': 0" in text for text in shown)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_against_the_seeded_stack(
    path: Path, seeded: RunningStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = run_notebook(path, seeded, monkeypatch)
    images = sum(
        1
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    )
    assert images >= 2, "the notebook should show pictures (contact sheets, plots)"
    # A plotting call's return value printed as text (`<Axes: ...>`) is noise next to its picture.
    texts = [
        "".join(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" not in output.get("data", {})  # a figure's own text beside its picture is fine
    ]
    assert not [t for t in texts if t.startswith(("<Axes", "<Figure", "<matplotlib"))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)


def test_there_are_two_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == ["compare_versions.ipynb", "explore_dataset.ipynb"]
