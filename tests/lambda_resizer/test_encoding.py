"""Encoding: JPEG and WebP variants, no metadata in any of them."""

from __future__ import annotations

from PIL import Image, ImageCms

from lambda_resizer.core import (
    Recipe,
    process_image,
)
from tests.lambda_resizer.images import (
    ORIENTATION,
    check_variants,
    decode,
    encode,
    photo,
)


def test_metadata_is_stripped_from_every_variant():
    exif = Image.Exif()
    exif[ORIENTATION] = 1
    exif[0x010F] = "Camera Maker"
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 0.0), 3: "E", 4: (13.0, 24.0, 0.0)})  # GPS
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(photo(400, 300), "JPEG", exif=exif.tobytes(), xmp=xmp, icc_profile=srgb)
    source = decode(data)
    assert source.getexif().get_ifd(0x8825) and "xmp" in source.info and "icc_profile" in source.info

    result = process_image(data, Recipe(formats=("jpeg", "webp")))
    for variant in result.variants:
        for fmt, blob in variant.encoded.items():
            img = decode(blob)
            assert not img.getexif(), (variant.name, fmt)
            assert "icc_profile" not in img.info and "xmp" not in img.info and "exif" not in img.info
            for marker in (b"Exif\0", b"ns.adobe.com/xap", b"ICC_PROFILE", b"Camera Maker", b"ICCP", b"XMP "):
                assert marker not in blob, (variant.name, fmt, marker)


def test_webp_output_option():
    recipe = Recipe(formats=("jpeg", "webp"))
    result = process_image(encode(photo(1200, 900), "JPEG"), recipe)
    for img in check_variants(result, 1200, 900, recipe):
        assert img.format == "JPEG"
    for variant in result.variants:
        webp = decode(variant.encoded["webp"])
        assert webp.format == "WEBP" and webp.mode == "RGB" and webp.size == (variant.width, variant.height)
