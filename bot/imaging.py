"""Safe photo decoding and the evaluation preprocessing, defined once for pipeline and bot.

Every photo that enters the system (ingest, evaluation, prediction, the bot) goes through
`decode`: the pixel count is checked from the header before any pixel is decoded, EXIF
orientation is applied, and every mode (RGBA, LA, P, CMYK, 16-bit, greyscale) ends up RGB.
`center_crop` is the one definition of what the network sees.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Bump when `decode` or `center_crop` change what the network sees: cached features key on it.
PREPROCESSING_VERSION = 2
DEFAULT_MAX_PIXELS = 60_000_000
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
# File names worth trying as photos (folders walked by predict, features, the bot's documents).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".mpo")
_WHITE = (255, 255, 255)


class BadImage(ValueError):
    """A photo that cannot be used; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


Source = bytes | str | Path | BinaryIO


def content_id(data: bytes) -> str:
    """A photo's identity: the first 16 hex of its sha256 (file uid, manifest hash, store uid)."""
    return hashlib.sha256(data).hexdigest()[:16]


def _open(source: Source) -> Image.Image:
    if isinstance(source, bytes):
        if not source:
            raise BadImage("empty", "0 bytes")
        source = io.BytesIO(source)
    elif isinstance(source, str | Path) and Path(source).stat().st_size == 0:
        raise BadImage("empty", "0 bytes")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below decides; PIL's bomb warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(source)
    except UnidentifiedImageError as exc:
        raise BadImage("not_an_image", "not a recognised image format") from exc
    except Image.DecompressionBombError as exc:
        raise BadImage("too_large", str(exc)) from exc
    except OSError as exc:
        raise BadImage("corrupt", str(exc)) from exc


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: keep the top 8 bits instead of clipping everything above 255.
        arr = np.asarray(img, dtype=np.uint32)
        scale = 257.0 if arr.max(initial=0) > 255 else 1.0
        img = Image.fromarray(np.clip(arr / scale, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def decode(
    source: Source,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = None,
) -> Image.Image:
    """Decode a photo to an upright RGB image, or raise `BadImage` with the reason.

    `min_side`: for JPEGs, decode at a reduced scale (PIL `draft`) as long as the shorter side
    stays at least this large: a 12-megapixel phone photo decodes several times faster.
    """
    img = _open(source)
    if img.format not in ALLOWED_FORMATS:
        raise BadImage("unsupported_format", f"{img.format} images are not supported")
    width, height = img.size
    if width <= 0 or height <= 0:
        raise BadImage("corrupt", f"bad size {width}x{height}")
    if width * height > max_pixels:
        raise BadImage("too_large", f"{width}x{height} pixels is over the limit of {max_pixels}")
    if min_side and img.format in ("JPEG", "MPO"):
        scale = min(width, height) / min_side
        if scale >= 2:
            img.draft("RGB", (int(width / scale) + 1, int(height / scale) + 1))
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
        return _to_rgb(img)
    except BadImage:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise BadImage(reason, str(exc)) from exc


def resize_shorter(img: Image.Image, shorter_side: int, upscale: bool = True) -> Image.Image:
    """Resize so that the shorter side is `shorter_side` (aspect ratio kept)."""
    width, height = img.size
    shorter = min(width, height)
    if shorter == shorter_side or (not upscale and shorter < shorter_side):
        return img
    scale = shorter_side / shorter
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)


def center_crop(img: Image.Image, resize: int, size: int) -> np.ndarray:
    """What the network sees: shorter side to `resize`, centre `size`x`size`, HWC uint8 RGB.

    Resamples only the crop's region of the source (PIL `box`): the same pixels as resizing
    the whole photo and then cropping (within 1 level), for about half the work.
    """
    width, height = img.size
    scale = resize / min(width, height)
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    left, top = (out_w - size) // 2, (out_h - size) // 2
    if scale == 1:
        crop = img.crop((left, top, left + size, top + size))
    else:
        sx, sy = width / out_w, height / out_h
        box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
        crop = img.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)
    return np.asarray(crop, dtype=np.uint8)


def load_for_model(
    source: Source, resize: int, size: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode + centre crop in one call: the evaluation and serving preprocessing."""
    return center_crop(decode(source, max_pixels=max_pixels, min_side=resize), resize, size)
