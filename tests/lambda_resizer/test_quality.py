"""Quality signals: brightness, and a blur score calibrated on real photos and synthetic blur."""

from __future__ import annotations

from functools import cache
from itertools import pairwise

import pytest
from PIL import Image, ImageFilter

from image_etl.dataset.rules import QualityThresholds
from lambda_resizer.core import SIGNAL_EDGE, process_image
from lambda_resizer.quality import blur_score
from tests.lambda_resizer.images import CORPUS, WHITE, encode, photo

BLURRY_BELOW = QualityThresholds().blurry_below
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"benchmark photos not found at {CORPUS}")


@cache
def corpus_photo(name: str) -> Image.Image:
    """Return a corpus photo at a longest side of 1024 px (the score is measured at 256 px anyway)."""
    with Image.open(CORPUS / name) as im:
        im.draft("RGB", (1024, 1024))
        image = im.convert("RGB")
    image.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
    return image


def corpus_names() -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir()) if CORPUS.is_dir() else []


def score_of(image: Image.Image) -> float:
    return process_image(encode(image, "JPEG", quality=95)).info.blur_score


def blurred(image: Image.Image, sigma: float) -> Image.Image:
    """Return ``image`` under a Gaussian blur of ``sigma`` pixels *of the 256 px signal image*."""
    return image.filter(ImageFilter.GaussianBlur(sigma * max(image.size) / SIGNAL_EDGE)) if sigma else image


def test_brightness_of_black_and_white():
    black = process_image(encode(Image.new("RGB", (300, 200), (0, 0, 0)), "PNG")).info
    white = process_image(encode(Image.new("RGB", (300, 200), WHITE), "PNG")).info
    assert black.brightness < 0.02 and white.brightness > 0.98


def test_blur_score_is_lower_for_a_blurred_image():
    sharp = photo(1024, 768, seed=4)
    blurred_photo = sharp.filter(ImageFilter.GaussianBlur(6))
    assert score_of(blurred_photo) < BLURRY_BELOW < score_of(sharp)


def test_a_flat_image_scores_zero():
    assert blur_score(Image.new("RGB", (256, 192), (90, 120, 200))) == 0.0


@needs_corpus
@pytest.mark.parametrize("name", corpus_names())
def test_a_growing_blur_lowers_the_score_step_by_step_and_crosses_the_threshold(name: str) -> None:
    # sigma in px of the 256 px image: 1 px there is 0.4% of the longest side (16 px of a 4000 px photo).
    sigmas = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
    scores = [score_of(blurred(corpus_photo(name), s)) for s in sigmas]
    assert all(a > b for a, b in pairwise(scores)), scores
    # Measured: sharp 2.21-3.29; every photo crosses the threshold between sigma 0.63 and 0.97 px.
    assert scores[sigmas.index(0.5)] > BLURRY_BELOW > scores[sigmas.index(1.0)], scores
    # Heavier blur sits on the noise floor (measured <= 0.51): it never climbs back to "sharp".
    heavy = [score_of(blurred(corpus_photo(name), s)) for s in (3.0, 6.0, 12.0)]
    assert max(heavy) < 0.6 * BLURRY_BELOW, heavy


@needs_corpus
def test_sharp_corpus_photos_are_not_flagged() -> None:
    # Measured: 0 of the 11 photos flagged; the least sharp scores 2.21, over twice the threshold.
    scores = {name: score_of(corpus_photo(name)) for name in corpus_names()}
    flagged = [name for name, score in scores.items() if score < BLURRY_BELOW]
    assert len(flagged) <= len(scores) // 10, scores
    assert min(scores.values()) > 2 * BLURRY_BELOW, scores


@needs_corpus
def test_the_score_does_not_depend_on_the_upload_size_or_the_contrast() -> None:
    image = corpus_photo("iphone_3264x2448.jpg")
    sharp = score_of(image)
    for edge in (768, 512, 320, 200):  # 200: below the 256 px working size, measured as it is
        smaller = image.copy()
        smaller.thumbnail((edge, edge), Image.Resampling.LANCZOS)
        assert score_of(smaller) == pytest.approx(sharp, rel=0.15), edge
    dim = Image.eval(image, lambda v: v // 4)  # a quarter of the contrast, and dark
    assert score_of(dim) == pytest.approx(sharp, rel=0.1)  # the variance of the Laplacian: / 16
    # The same blur, as a share of the picture, gives the same score at two upload sizes.
    half = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    assert score_of(blurred(half, 1.0)) == pytest.approx(score_of(blurred(image, 1.0)), rel=0.15)
