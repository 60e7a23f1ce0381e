"""The upload page in headless Chromium against the real local stack (`image-etl up`)."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from playwright.sync_api import ConsoleMessage, FileChooser, Page, Request, expect

from image_etl.dataset.annotations import write_annotations
from image_etl.users import DEMO_PASSWORD_FILE, add_user
from tests.identity import STRANGER_KEY, forged
from tests.imaging import encode, photo_like
from tests.stack_process import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PROCESSING_S = 60
# Chromium logs every refused request as a console error; where a refusal is the point, it is expected.
REFUSED = "Failed to load resource: the server responded with a status of"


class Watched:
    """The page's console errors and uncaught exceptions, and the API requests it made."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        self.api_requests: list[str] = []
        self.expected_refusals = False
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not (self.expected_refusals and message.text.startswith(REFUSED)):
            self.problems.append(f"console: {message.text}")

    def _request(self, request: Request) -> None:
        if "/api/" in request.url:
            self.api_requests.append(request.url)


def sign_in(page: Page, username: str, password: str) -> None:
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#sign-in-submit")


def demo_password(stack: RunningStack) -> str:
    return (stack.data_dir / DEMO_PASSWORD_FILE).read_text().strip()


@pytest.fixture
def watched(page: Page) -> Iterator[Watched]:
    """Fail the test on any unexpected console error or uncaught exception of the page."""
    watch = Watched(page)
    yield watch
    assert watch.problems == []


@pytest.fixture
def signed_out(shared_stack: RunningStack, page: Page, watched: Watched) -> Page:
    """The page, loaded and ready, nobody signed in."""
    page.goto(shared_stack.settings.site_url or "")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


@pytest.fixture
def site(shared_stack: RunningStack, signed_out: Page) -> Page:
    """The page, signed in as the local stack's demo user (in both groups)."""
    sign_in(signed_out, "demo", demo_password(shared_stack))
    expect(signed_out.locator("#account-name")).to_have_text("demo")
    return signed_out


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


def test_nothing_of_the_dataset_is_fetched_before_sign_in(
    shared_stack: RunningStack, signed_out: Page, watched: Watched
) -> None:
    page = signed_out
    expect(page.locator("#sign-in")).to_be_visible()
    for hidden in ("#upload-section", "#gallery-section", "#account"):
        expect(page.locator(hidden)).to_be_hidden()
    page.wait_for_load_state("networkidle")
    assert watched.api_requests == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sign-in.png"), full_page=True)

    watched.expected_refusals = True
    sign_in(page, "demo", "Not-The-Password-1")
    expect(page.locator("#sign-in-error")).to_contain_text("Incorrect username or password")
    assert watched.api_requests == []
    sign_in(page, "DEMO", demo_password(shared_stack))  # names are case-insensitive
    expect(page.locator("#gallery-section")).to_be_visible()
    expect(page.locator("#account-name")).to_have_text("demo")


def test_sign_in_upload_see_thumbnails_sign_out_and_see_nothing(
    shared_stack: RunningStack, site: Page, watched: Watched, tmp_path: Path
) -> None:
    site.fill("#label", "session")
    site.set_input_files("#file-input", [str(p) for p in images(tmp_path, 2, seed=60)])
    expect(site.locator("#uploads .upload[data-state=done]")).to_have_count(2, timeout=PROCESSING_S * 1000)
    expect(site.locator("#gallery .card[data-label=session] img").first).to_be_visible()

    site.click("#sign-out")
    expect(site.locator("#sign-in")).to_be_visible()
    assert site.locator("#gallery .card").count() == 0 and site.locator("#uploads .upload").count() == 0
    for hidden in ("#upload-section", "#gallery-section"):
        expect(site.locator(hidden)).to_be_hidden()
    site.reload()  # and stays signed out: the session is gone from the browser, not just hidden
    expect(site.locator("body")).to_have_attribute("data-ready", "true")
    before = len(watched.api_requests)
    site.wait_for_load_state("networkidle")
    expect(site.locator("#sign-in")).to_be_visible()
    assert len(watched.api_requests) == before


def test_a_reload_keeps_the_session(site: Page) -> None:
    site.reload()
    expect(site.locator("#account-name")).to_have_text("demo")
    expect(site.locator("#gallery-section")).to_be_visible()


def test_first_sign_in_sets_a_new_password(shared_stack: RunningStack, signed_out: Page) -> None:
    temporary = add_user(shared_stack.settings, "first-timer", groups=["viewers"])
    sign_in(signed_out, "first-timer", temporary)
    expect(signed_out.locator("#new-password")).to_be_visible()
    signed_out.fill("#new-password", "My-Own-Password-2026")
    signed_out.fill("#new-password-again", "My-Own-Password-2026")
    signed_out.click("#sign-in-submit")
    expect(signed_out.locator("#account-name")).to_have_text("first-timer")
    # A viewer browses but cannot upload.
    expect(signed_out.locator("#upload-denied")).to_be_visible()
    expect(signed_out.locator("#upload-form")).to_be_hidden()
    expect(signed_out.locator("#gallery-section")).to_be_visible()


def test_an_ended_session_asks_for_sign_in_and_keeps_the_queued_files(
    shared_stack: RunningStack, site: Page, watched: Watched, tmp_path: Path
) -> None:
    settings = shared_stack.settings
    key = f"image-etl.session.{settings.user_pool_client_id}"
    session = site.evaluate(f"JSON.parse(localStorage.getItem('{key}'))")
    # The session ends while the page is open: its refresh token is revoked and its access token expires.
    settings.client("cognito-idp").revoke_token(
        Token=session["refreshToken"], ClientId=settings.user_pool_client_id
    )
    expired = forged(settings, username="demo", exp=1_000_000_000, iat=999_996_400)
    site.evaluate(f"auth.store({{...auth.session, accessToken: '{expired}'}})")
    watched.expected_refusals = True

    site.fill("#label", "resumed")
    site.set_input_files("#file-input", [str(p) for p in images(tmp_path, 2, seed=70)])
    expect(site.locator("#sign-in")).to_be_visible()
    expect(site.locator("#sign-in-note")).to_contain_text("session has ended")
    sign_in(site, "demo", demo_password(shared_stack))
    expect(site.locator("#uploads .upload[data-state=done]")).to_have_count(2, timeout=PROCESSING_S * 1000)
    expect(site.locator("#gallery .card[data-label=resumed] img").first).to_be_visible()


def totp_code(secret: str) -> str:
    """Return the current 6-digit code of an authenticator app holding ``secret`` (RFC 6238)."""
    if 30 - time.time() % 30 < 3:
        time.sleep(3)  # not on the edge of a time step: the server takes the current step only
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    return TOTP(key, 6, SHA1(), 30, enforce_key_length=False).generate(time.time()).decode()


def test_two_factor_sign_in_can_be_turned_on_and_is_then_asked_for(
    shared_stack: RunningStack, signed_out: Page, watched: Watched
) -> None:
    page = signed_out
    add_user(
        shared_stack.settings, "careful", groups=["viewers"], password="Careful-User-2026", permanent=True
    )
    sign_in(page, "careful", "Careful-User-2026")
    expect(page.locator("#account-name")).to_have_text("careful")
    page.click("#mfa-setup")
    expect(page.locator("#mfa-secret")).to_have_text(re.compile(r"^[A-Za-z2-7]{8,}=*$"))
    secret = page.locator("#mfa-secret").inner_text()
    watched.expected_refusals = True
    page.fill("#mfa-setup-code", "000000" if totp_code(secret) != "000000" else "111111")
    page.click("#mfa-verify")
    expect(page.locator("#mfa-error")).to_contain_text("does not match")
    page.fill("#mfa-setup-code", totp_code(secret))
    page.click("#mfa-verify")
    expect(page.locator("#mfa-done")).to_be_visible()

    page.click("#sign-out")
    sign_in(page, "careful", "Careful-User-2026")
    expect(page.locator("#mfa-code")).to_be_visible()
    page.fill("#mfa-code", totp_code(secret))
    page.click("#sign-in-submit")
    expect(page.locator("#account-name")).to_have_text("careful")


def test_cards_show_the_file_name_and_open_a_detail_view(site: Page, tmp_path: Path) -> None:
    long_name = tmp_path / ("a-rather-long-holiday-photo-name-from-a-phone-" + "x" * 40 + ".jpg")
    long_name.write_bytes(encode(photo_like(80, (1600, 1000))))
    site.fill("#label", "details")
    site.set_input_files("#file-input", [str(long_name)])
    expect(site.locator("#uploads .upload[data-state=done]")).to_have_count(1, timeout=PROCESSING_S * 1000)
    expect(site.locator("#upload-summary")).to_have_text("1 done")

    card = site.locator("#gallery .card[data-label=details]").first
    name = card.locator(".filename")
    expect(name).to_have_text(long_name.name)
    assert name.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    assert name.evaluate(
        "e => e.scrollWidth > e.clientWidth"
    )  # clipped, with an ellipsis, title has it whole
    assert name.get_attribute("title") == long_name.name

    card.locator(".card-open").click()
    dialog = site.locator("#detail")
    expect(dialog).to_be_visible()
    expect(site.locator("#detail-title")).to_have_text(long_name.name)
    expect(site.locator("#detail-facts")).to_contain_text("processed")
    expect(site.locator("#detail-facts")).to_contain_text("1600×1000")
    image = site.locator("#detail-image")
    expect(image).to_be_visible()
    site.wait_for_function("() => document.getElementById('detail-image').complete")
    assert image.evaluate("img => img.naturalWidth") == 1024  # the large variant, not the thumbnail
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    site.screenshot(path=str(ARTIFACTS / "detail-view.png"))
    site.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    site.click("#clear-uploads")
    expect(site.locator("#uploads .upload")).to_have_count(0)
    expect(site.locator("#upload-summary-row")).to_be_hidden()


def test_a_filter_with_no_match_says_so(site: Page) -> None:
    site.fill("#filter", "no-such-label-anywhere")
    expect(site.locator("#gallery .card")).to_have_count(0)
    expect(site.locator("#gallery-empty")).to_have_text("No images labelled “no-such-label-anywhere”.")


def test_a_stale_access_token_is_renewed_from_the_refresh_token_without_asking_for_sign_in(
    shared_stack: RunningStack, site: Page, watched: Watched
) -> None:
    settings = shared_stack.settings
    key = f"image-etl.session.{settings.user_pool_client_id}"
    stale_tokens = {
        # expired by its own clock: the page refreshes before it calls the API
        "expired": forged(settings, username="demo", exp=1_000_000_000, iat=999_996_400),
        # unexpired but refused by the API (a key the pool does not have): refreshed after the 401
        "refused": forged(settings, key=STRANGER_KEY, username="demo"),
    }
    watched.expected_refusals = True
    for case, stale in stale_tokens.items():
        site.evaluate(f"auth.store({{...auth.session, accessToken: '{stale}'}})")
        before = len(watched.api_requests)
        site.reload()
        expect(site.locator("body")).to_have_attribute("data-ready", "true")
        expect(site.locator("#gallery-section")).to_be_visible()
        site.wait_for_load_state("networkidle")
        expect(site.locator("#sign-in")).to_be_hidden()
        expect(site.locator("#banner")).to_be_hidden()
        assert len(watched.api_requests) > before, case  # the gallery was fetched, and answered
        renewed = site.evaluate(f"JSON.parse(localStorage.getItem('{key}')).accessToken")
        assert renewed != stale and site.evaluate(f"ImageEtlAuth.claimsOf('{renewed}').username") == "demo", (
            case
        )


def test_the_upload_list_sums_up_its_rows_and_clears_the_finished_ones(site: Page, tmp_path: Path) -> None:
    [good] = images(tmp_path / "good", 1, seed=90)
    fake = tmp_path / "not-a-photo.jpg"
    fake.write_text("this is not a picture")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    site.set_input_files("#file-input", [str(good), str(fake), str(empty)])
    expect(site.locator("#uploads .upload[data-state=done]")).to_have_count(1, timeout=PROCESSING_S * 1000)
    expect(site.locator("#uploads .upload[data-state=failed]")).to_have_count(1, timeout=PROCESSING_S * 1000)
    expect(site.locator("#upload-summary")).to_have_text("1 done, 1 failed, 1 refused")
    site.click("#clear-uploads")
    expect(site.locator("#uploads .upload")).to_have_count(0)
    expect(site.locator("#upload-summary-row")).to_be_hidden()


def test_the_detail_view_shows_the_dataset_annotations_once_a_build_has_seen_the_image(
    shared_stack: RunningStack, site: Page, tmp_path: Path
) -> None:
    settings = shared_stack.settings
    site.fill("#label", "annotated")
    site.set_input_files("#file-input", [str(p) for p in images(tmp_path, 1, seed=95)])
    expect(site.locator("#uploads .upload[data-state=done]")).to_have_count(1, timeout=PROCESSING_S * 1000)
    card = site.locator("#gallery .card[data-label=annotated]").first
    image_id = card.get_attribute("data-image-id")
    assert image_id

    card.locator(".card-open").click()  # before any build: no flags, no group, no split
    facts = site.locator("#detail-facts")
    expect(facts).to_contain_text("processed")
    assert "quality flags" not in facts.inner_text() and "duplicate group" not in facts.inner_text()
    site.keyboard.press("Escape")

    # What the pipeline's record_annotations asset writes onto the record after a build.
    dynamodb = settings.client("dynamodb")
    item = dynamodb.get_item(TableName=settings.table_name, Key={"image_id": {"S": image_id}})["Item"]
    annotations = pd.DataFrame(
        [
            {
                "image_id": image_id,
                "processed_at": item["processed_at"]["S"],
                "split": "val",
                "dup_group": "g0123456789abcdef",
                "dup_group_size": 3,
                "quality_flags": ["blurry", "label_conflict"],
                "keep": True,
            }
        ]
    )
    assert write_annotations(dynamodb, settings.table_name, annotations).written == 1
    card.locator(".card-open").click()
    expect(facts).to_contain_text("blurry, label_conflict")
    expect(facts).to_contain_text("g0123456789abcdef (3 images)")
    expect(facts).to_contain_text("val")
