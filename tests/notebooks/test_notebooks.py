"""The notebooks run top to bottom against a local stack seeded with the demo dataset (two manifest
versions, from the demo's two rounds), compare_versions also with a single version, and they are
committed without outputs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import nbformat
import pytest
from nbclient import NotebookClient

from image_etl.dataset.checks import label_conflicts
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


@pytest.fixture(scope="module")
def executed(seeded: RunningStack) -> Callable[[Path], nbformat.NotebookNode]:
    """Run a notebook against the seeded stack once, for every test that reads its outputs."""
    done: dict[Path, nbformat.NotebookNode] = {}

    def run(path: Path) -> nbformat.NotebookNode:
        if path not in done:
            with pytest.MonkeyPatch.context() as monkeypatch:
                done[path] = run_notebook(path, seeded, monkeypatch)
        return done[path]

    return run


def cell_outputs(notebook: nbformat.NotebookNode, starts: str) -> list[dict[str, Any]]:
    """Return the outputs' data of the code cell that follows the markdown heading ``starts``."""
    cells = notebook.cells
    at = next(
        i for i, cell in enumerate(cells) if cell.cell_type == "markdown" and cell.source.startswith(starts)
    )
    return [output["data"] for output in cells[at + 1].get("outputs", []) if "data" in output]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_against_the_seeded_stack(
    path: Path, executed: Callable[[Path], nbformat.NotebookNode]
) -> None:
    notebook = executed(path)
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
    # A warning printed by a library (a missing extra, a deprecation) is noise a reader cannot act on.
    errors = [
        output.text
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type == "stream" and output.name == "stderr"
    ]
    assert not errors, errors


def test_explore_shows_each_label_conflict_as_pictures_and_loads_the_train_split(
    seeded: RunningStack, executed: Callable[[Path], nbformat.NotebookNode]
) -> None:
    notebook = executed(REPO / "notebooks" / "explore_dataset.ipynb")
    published = read_manifest(None, seeded.settings)
    expected = label_conflicts(published)
    assert len(expected) >= 1, "the demo set holds a label conflict (a circle filed under squares)"

    shown = cell_outputs(notebook, "## Label conflicts")
    markdown = ["".join(data.get("text/markdown", "")) for data in shown]
    assert f"{len(expected)} duplicate group" in markdown[0] and "label_conflict" in markdown[0]
    for _, group in expected.iterrows():  # a heading per group, its row of pictures right after it
        at = next(i for i, text in enumerate(markdown) if f"`{group['dup_group']}`" in text)
        assert " vs ".join(f"**{label}**" for label in group["labels"]) in markdown[at]
        assert "image/png" in shown[at + 1]

    loaded = cell_outputs(notebook, "## The train split")
    train = published[(published["status"] == "processed") & (published["split"] == "train")]
    assert f"{len(train)} training images" in "".join(loaded[0].get("text/markdown", ""))
    assert "image/png" in loaded[1]  # one decoded image
    features = "".join(loaded[2].get("text/plain", ""))
    assert "Image(" in features and "ClassLabel(names=" in features


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)


def test_the_readme_describes_every_notebook_and_only_those() -> None:
    described = set(re.findall(r"`notebooks/([\w-]+\.ipynb)`", (REPO / "README.md").read_text()))
    assert described == {p.name for p in NOTEBOOKS}
