"""The upload page in headless Chromium against the real local stack (`image-etl up`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, FileChooser, Page, expect

from tests.imaging import encode, photo_like
from tests.stack_process import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PROCESSING_S = 60


@pytest.fixture
def site(shared_stack: RunningStack, page: Page) -> Iterator[Page]:
    """The page, loaded and ready, failing the test on any console error or uncaught exception."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.goto(shared_stack.settings.site_url or "")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    yield page
    assert problems == []


def images(folder: Path, count: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"photo_{seed}_{index}.jpg"
        path.write_bytes(encode(photo_like(seed + index, (900, 600))))
        paths.append(path)
    return paths


def test_three_uploads_show_progress_then_thumbnails(site: Page, tmp_path: Path) -> None:
    site.fill("#label", "cats")
    site.set_input_files("#file-input", [str(p) for p in images(tmp_path, 3, seed=10)])

    rows = site.locator("#uploads .upload")
    expect(rows).to_have_count(3)
    for index in range(3):
        row = rows.nth(index)
        expect(row).to_have_attribute("data-state", "done", timeout=PROCESSING_S * 1000)
        expect(row.locator(".status")).to_contain_text("900×600")
        expect(row.locator("progress")).to_have_attribute("value", "100")
        thumb = row.locator("img.thumb")
        expect(thumb).to_have_attribute(
            "alt", "thumbnail of " + row.locator(".name").inner_text().split(" ·")[0]
        )
        assert thumb.evaluate("img => img.complete && img.naturalWidth") == 128
    expect(site.locator("#gallery .card[data-label=cats] img").first).to_be_visible()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    site.screenshot(path=str(ARTIFACTS / "upload-page.png"), full_page=True)
    site.set_viewport_size({"width": 390, "height": 844})
    site.screenshot(path=str(ARTIFACTS / "upload-page-phone.png"), full_page=True)
    assert site.evaluate("document.documentElement.scrollWidth") <= 390  # nothing overflows a phone screen


def test_text_file_named_jpg_ends_failed_with_the_records_reason(site: Page, tmp_path: Path) -> None:
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is not a picture")
    site.set_input_files("#file-input", [str(fake)])
    row = site.locator("#uploads .upload").first
    expect(row).to_have_attribute("data-state", "failed", timeout=PROCESSING_S * 1000)
    expect(row.locator(".status")).to_contain_text("not an image")


def test_empty_and_unsupported_files_are_refused_before_sending(site: Page, tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    document = tmp_path / "notes.pdf"
    document.write_bytes(b"%PDF-1.4")
    site.set_input_files("#file-input", [str(empty), str(document)])
    statuses = site.locator("#uploads .upload .status")
    expect(statuses).to_have_count(2)
    expect(site.locator("#uploads .upload[data-state=refused]")).to_have_count(2)
    expect(statuses.nth(1)).to_contain_text("empty")
    expect(statuses.nth(0)).to_contain_text("not an accepted image type")


def test_label_filter_shows_only_that_label(site: Page, tmp_path: Path) -> None:
    for label, seed in (("dogs", 30), ("birds", 40)):
        site.fill("#label", label)
        site.set_input_files("#file-input", [str(p) for p in images(tmp_path / label, 2, seed=seed)])
    done = site.locator("#uploads .upload[data-state=done]")
    expect(done).to_have_count(4, timeout=PROCESSING_S * 1000)

    site.fill("#filter", "birds")
    cards = site.locator("#gallery .card")
    expect(cards).to_have_count(2)
    assert set(cards.evaluate_all("cards => cards.map(c => c.dataset.label)")) == {"birds"}
    site.fill("#filter", "")
    expect(site.locator("#gallery .card[data-label=dogs]")).to_have_count(2)


def test_keyboard_reaches_the_file_picker(site: Page) -> None:
    choosers: list[FileChooser] = []
    # Listening turns on Chromium's file-chooser interception, which takes a round trip: do it
    # before the key press, and let the gallery's images finish loading, so the press cannot win.
    site.on("filechooser", lambda chooser: choosers.append(chooser))
    site.wait_for_load_state("networkidle")
    site.focus("#label")
    site.keyboard.press("Tab")
    assert site.evaluate("document.activeElement.id") == "dropzone"
    with site.expect_file_chooser() as chooser:
        site.keyboard.press("Enter")
    assert chooser.value.is_multiple() and choosers


def test_invalid_label_is_explained_and_nothing_is_sent(site: Page, tmp_path: Path) -> None:
    site.fill("#label", "no spaces please")
    site.set_input_files("#file-input", [str(p) for p in images(tmp_path, 1, seed=50)])
    expect(site.locator("#banner")).to_contain_text("label")
    expect(site.locator("#uploads .upload")).to_have_count(0)
