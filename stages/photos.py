"""What ingest and preprocess share: content ids, atomic writes, canonical JPEGs, a bounded pool."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from pathlib import Path
from typing import TypeVar

from PIL import Image

from bot.imaging import content_id

TEMP_SUFFIX = ".tmp"
_ORIENTATION = 0x0112

T = TypeVar("T")
R = TypeVar("R")


def file_id(path: Path) -> str:
    """`content_id` of a file's bytes."""
    return content_id(Path(path).read_bytes())


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: readers never see half a file."""
    temp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def remove_temp_files(root: Path) -> int:
    """Delete what a killed run left behind (`.<name>.<pid>.tmp`); returns how many."""
    removed = 0
    if not root.is_dir():
        return 0
    for folder, _, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                Path(folder, name).unlink(missing_ok=True)
                removed += 1
    return removed


def is_canonical_jpeg(img: Image.Image) -> bool:
    """A baseline 8-bit RGB JPEG that needs no EXIF rotation can be stored byte-for-byte."""
    if img.format != "JPEG" or img.mode != "RGB" or img.info.get("progressive"):
        return False
    return img.getexif().get(_ORIENTATION, 1) == 1


def peek(source: bytes | Path) -> Image.Image | None:
    """The header of a photo (no pixels decoded), or None when PIL cannot even open it."""
    try:
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Exception:  # noqa: BLE001 - decode() gives the real reason later
        return None


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    """Baseline RGB JPEG bytes (no EXIF: the pixels are already upright)."""
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality, optimize=False, progressive=False)
    return buffer.getvalue()


def bounded_map(
    executor: Executor, fn: Callable[[list[T]], list[R]], batches: Iterable[list[T]], window: int
) -> Iterator[R]:
    """Run `fn` on each batch in `executor`, at most `window` batches in flight (bounded memory).

    Results come back in completion order, flattened.
    """
    pending: set[Future[list[R]]] = set()
    for batch in batches:
        pending.add(executor.submit(fn, batch))
        if len(pending) >= window:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield from future.result()
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            yield from future.result()


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of at most `size` items."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
