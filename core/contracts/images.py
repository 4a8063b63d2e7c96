"""Image inputs: the forms an item may take (a data URL, bare base64, or {"image": ...}),
their pixel counts for bucketing (header only), and decoding to RGB or grayscale pixels
under byte and pixel limits. Torch-free (Pillow): the API sorts by pixel counts, the worker
decodes.

A corrupt, truncated or oversized image is an item's error (`invalid_image`,
`image_too_large`), raised here as ImageRejected and recorded by the runner: the job goes on.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP", "GIF"})
_DATA_URL = re.compile(r"data:image/[a-zA-Z0-9.+-]+(?:;[a-zA-Z0-9=.+-]+)*;base64,")
# One limit governs: ImageLimits.max_pixels, checked from the header before any pixel is
# decoded. Pillow's own process-wide check (a warning past 89 megapixels, an error past
# twice that) is turned off, so it neither warns in logs nor overrides the setting.
Image.MAX_IMAGE_PIXELS = None
# Modes Pillow decodes 16 bits per sample into; their values are scaled to 8 bits.
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")


class ImageRejected(ValueError):
    """An image that cannot run: `invalid_image` or `image_too_large`, and why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class ImageLimits:
    """The most an image may take: encoded bytes, and decoded pixels (width x height,
    the guard against decompression bombs)."""

    max_bytes: int
    max_pixels: int


def check_image_input(value: Any) -> str:
    """The image's text (a data URL or base64) from an item's input, or raise TypeError
    naming the forms it may take. Its content is checked when it is decoded."""
    if isinstance(value, dict) and set(value) == {"image"}:
        value = value["image"]
    if not isinstance(value, str) or not value:
        raise TypeError('must be an image: a data URL, base64, or {"image": <either>}')
    return value


def image_bytes(text: str, limits: ImageLimits) -> bytes:
    """The encoded image (PNG, JPEG, ...) inside a data URL or bare base64 text."""
    head = _DATA_URL.match(text)
    payload = text[head.end() :] if head else text
    if not head and text.startswith("data:"):
        raise ImageRejected("invalid_image", "a data URL must be data:image/<type>;base64,...")
    # base64 takes 4 characters for 3 bytes: a longer text is over the limit already.
    if len(payload) > (limits.max_bytes + 2) // 3 * 4 + 4:
        raise ImageRejected(
            "image_too_large", f"image is over {limits.max_bytes:,} bytes (SLUICE_MAX_IMAGE_BYTES)"
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("invalid_image", "image is not valid base64") from None
    if len(data) > limits.max_bytes:
        raise ImageRejected(
            "image_too_large",
            f"image has {len(data):,} bytes; at most {limits.max_bytes:,} (SLUICE_MAX_IMAGE_BYTES)",
        )
    return data


def _open(data: bytes) -> Image.Image:
    """The image's header, read without decoding its pixels."""
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageRejected(
            "invalid_image", "image cannot be read: not a PNG, JPEG, WebP, BMP or GIF"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected("invalid_image", f"image cannot be read: {exc}") from None
    if image.format not in FORMATS:
        raise ImageRejected(
            "invalid_image",
            f"image format {image.format} is not one of {', '.join(sorted(FORMATS))}",
        )
    return image


def image_pixels(values: Sequence[Any], limits: ImageLimits) -> list[int]:
    """Each image's width x height from its header (the sort key of bucketing); 0 for
    one that cannot be read (it fails alone when it runs)."""
    out: list[int] = []
    for value in values:
        try:
            width, height = _open(image_bytes(check_image_input(value), limits)).size
        except (ImageRejected, TypeError):
            out.append(0)
        else:
            out.append(width * height)
    return out


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit samples scaled to 8 (Pillow's own conversion would clip them at 255)."""
    wide = np.asarray(image, dtype=np.uint32)
    return Image.fromarray((np.minimum(wide, 65535) * 255 // 65535).astype(np.uint8), mode="L")


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """The image in RGB or L: 16-bit scaled to 8, CMYK and YCbCr converted, palettes
    expanded, and transparency composited on white (as transformers' image processors
    convert to RGB)."""
    if image.mode in _SIXTEEN_BIT:
        image = _eight_bit(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image if image.mode == mode else image.convert(mode)


def decode_image(text: str, limits: ImageLimits, mode: str = "RGB") -> Image.Image:
    """The image's pixels in `mode` (RGB or L), upright by its EXIF orientation, first
    frame of an animation; ImageRejected for anything corrupt, truncated or too large."""
    image = _open(image_bytes(text, limits))
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageRejected(
            "image_too_large",
            f"image is {width}x{height} pixels; at most {limits.max_pixels:,} "
            "(SLUICE_MAX_IMAGE_PIXELS)",
        )
    try:
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return to_mode(image, mode)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageRejected("invalid_image", f"image cannot be decoded: {exc}") from None


def data_url(data: bytes, subtype: str = "png") -> str:
    """An encoded image as a data URL (what clients send)."""
    return f"data:image/{subtype};base64," + base64.b64encode(data).decode("ascii")
