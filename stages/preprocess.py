"""Stage `preprocess`: data/raw (+ data/new) -> data/preprocessed, each photo stored once, small.

Writes `manifest.csv` (path,breed,wnid,split,hash), `breeds.json` (the label order) and
`images/<hash[:2]>/<hash>.jpg` at shorter side `preprocess.shorter_side` (never upscaled; a
canonical JPEG that needs no resize is hard-linked, or copied, byte-for-byte). The split comes
from the content hash alone, so adding photos never moves one to another split. The output is
`persist: true`: photos already there are reused, so a re-run after adding 100 photos does ~100
photos of work.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import yaml
from tqdm import tqdm

from bot import breeds
from bot.imaging import BadImage, decode, resize_shorter
from stages.photos import (
    atomic_write,
    batched,
    bounded_map,
    encode_jpeg,
    file_id,
    is_canonical_jpeg,
    peek,
)

log = logging.getLogger(__name__)

COLUMNS = ("path", "breed", "wnid", "split", "hash")
STAMP = "preprocess.json"  # the settings the stored images were made with


@dataclass(frozen=True)
class Settings:
    """params.yaml `preprocess` plus `data.n_labels` / `data.n_samples`."""

    shorter_side: int = 256
    jpeg_quality: int = 90
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    n_labels: int = 0
    n_samples: int = 0
    workers: int = 2


@dataclass(frozen=True)
class Photo:
    """A photo of data/raw or data/new and its content hash."""

    source: Path
    breed: str
    hash: str


@dataclass
class Summary:
    """What one run did: `made` (copied + resized) is the work, `reused` what was skipped."""

    photos: int = 0
    breeds: int = 0
    copied: int = 0
    resized: int = 0
    reused: int = 0
    removed: int = 0
    bad: int = 0
    splits: dict[str, int] = field(default_factory=dict)


def split_of(content_hash: str, val_fraction: float, test_fraction: float) -> str:
    """train/val/test from the hash alone: stable whatever other photos come and go."""
    position = int(content_hash[:8], 16) / 0x1_0000_0000
    if position < test_fraction:
        return "test"
    return "val" if position < test_fraction + val_fraction else "train"


def collect(inputs: list[Path]) -> tuple[list[Photo], dict[str, breeds.Breed]]:
    """Every photo of the ingest folders (hashed on threads: hashlib releases the GIL)."""
    known: dict[str, breeds.Breed] = {}
    paths: list[tuple[Path, str]] = []
    for root in inputs:
        if not root.is_dir():
            continue
        listing = root / "breeds.json"
        listed = json.loads(listing.read_text()) if listing.exists() else {}
        for name, info in listed.items():
            known.setdefault(name, breeds.Breed(name, info["display"], info.get("wnid")))
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            known.setdefault(folder.name, breeds.parse(folder.name))
            paths += [(p, folder.name) for p in sorted(folder.glob("[!.]*.jpg"))]
    with ThreadPoolExecutor(4) as pool:
        hashes = list(pool.map(file_id, [p for p, _ in paths], chunksize=64))
    return [Photo(p, b, h) for (p, b), h in zip(paths, hashes, strict=True)], known


def select(photos: list[Photo], n_labels: int, n_samples: int) -> list[Photo]:
    """One photo per hash (first wins); the first `n_labels` breeds; `n_samples` by hash order."""
    unique: dict[str, Photo] = {}
    for photo in photos:
        first = unique.setdefault(photo.hash, photo)
        if first is not photo and first.breed != photo.breed:
            log.warning("%s is the same photo as %s; kept the first", photo.source, first.source)
    by_breed: dict[str, list[Photo]] = {}
    for photo in sorted(unique.values(), key=lambda p: (p.breed, p.hash)):
        by_breed.setdefault(photo.breed, []).append(photo)
    names = sorted(by_breed)[: n_labels or None]
    return [p for name in names for p in by_breed[name][: n_samples or None]]


def make_image(source: Path, dest: Path, shorter_side: int, quality: int) -> str:
    """Store one photo at `dest`; returns `copied`, `resized` or the reason it is bad."""
    header = peek(source)
    small = header is not None and min(header.size) <= shorter_side
    canonical = header is not None and is_canonical_jpeg(header)
    if header is not None:
        header.close()
    if small and canonical:
        _link_or_copy(source, dest)
        return "copied"
    try:
        img = resize_shorter(decode(source, min_side=shorter_side), shorter_side, upscale=False)
    except BadImage as exc:
        return exc.reason
    atomic_write(dest, encode_jpeg(img, quality))
    return "resized"


def _link_or_copy(source: Path, dest: Path) -> None:
    """A hard link: atomic, and no second copy of the bytes. Both sides are only ever replaced,
    never written in place (ingest, preprocess and DVC all write a new file), so sharing is safe."""
    try:
        os.link(source, dest)
    except FileExistsError:
        pass
    except OSError:  # another file system, or links not supported
        atomic_write(dest, source.read_bytes())


def _make_batch(batch: list[tuple[Path, Path]], side: int, quality: int) -> list[tuple[Path, str]]:
    return [(dest, make_image(source, dest, side, quality)) for source, dest in batch]


def _prune(images: Path, keep: set[Path]) -> int:
    """Remove files no longer in the manifest (and temp files of a killed run)."""
    removed = 0
    for folder, _, files in os.walk(images, topdown=False):
        for name in files:
            path = Path(folder, name)
            if path not in keep:
                path.unlink()
                removed += 1
        if folder != str(images) and not os.listdir(folder):
            os.rmdir(folder)
    return removed


def preprocess(inputs: list[Path], out: Path, settings: Settings) -> Summary:
    """Bring `out` in line with `inputs` and the settings, doing only the missing work."""
    images = out / "images"
    stamp = {"shorter_side": settings.shorter_side, "jpeg_quality": settings.jpeg_quality}
    stamp_file = out / STAMP
    if images.exists() and (not stamp_file.exists() or json.loads(stamp_file.read_text()) != stamp):
        log.info("preprocess settings changed: every image is made again")
        _prune(images, keep=set())
    photos, known = collect(inputs)
    chosen = select(photos, settings.n_labels, settings.n_samples)
    dest = {p.hash: images / p.hash[:2] / f"{p.hash}.jpg" for p in chosen}
    summary = Summary(reused=sum(path.exists() for path in dest.values()))
    summary.removed = _prune(images, keep=set(dest.values())) if images.exists() else 0
    todo = [(p.source, dest[p.hash]) for p in chosen if not dest[p.hash].exists()]
    for path in {d.parent for _, d in todo}:
        path.mkdir(parents=True, exist_ok=True)
    bad: set[Path] = set()
    if todo:
        work = partial(_make_batch, side=settings.shorter_side, quality=settings.jpeg_quality)
        context = get_context("fork")
        with (
            ProcessPoolExecutor(settings.workers, mp_context=context) as pool,
            tqdm(total=len(todo), unit=" photos", desc="preprocess", disable=None) as bar,
        ):
            for path, outcome in bounded_map(pool, work, batched(todo, 16), 4 * settings.workers):
                bar.update()
                if outcome in ("copied", "resized"):
                    setattr(summary, outcome, getattr(summary, outcome) + 1)
                else:
                    log.warning("%s is not a usable photo (%s); left out", path, outcome)
                    bad.add(path)
    chosen = [p for p in chosen if dest[p.hash] not in bad]
    summary.bad = len(bad)
    _write_outputs(out, chosen, known, settings)
    atomic_write(stamp_file, (json.dumps(stamp) + "\n").encode())
    summary.photos = len(chosen)
    summary.breeds = len({p.breed for p in chosen})
    fractions = (settings.val_fraction, settings.test_fraction)
    summary.splits = dict(Counter(split_of(p.hash, *fractions) for p in chosen))
    log.info("preprocess: %s", json.dumps(asdict(summary)))
    return summary


def _write_outputs(out: Path, chosen: list[Photo], known: dict, settings: Settings) -> None:
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(COLUMNS)
    for p in chosen:
        split = split_of(p.hash, settings.val_fraction, settings.test_fraction)
        path = f"images/{p.hash[:2]}/{p.hash}.jpg"
        writer.writerow((path, p.breed, known[p.breed].wnid or "", split, p.hash))
    atomic_write(out / "manifest.csv", rows.getvalue().encode())
    labels = [asdict(known[name]) for name in sorted({p.breed for p in chosen})]
    atomic_write(out / "breeds.json", (json.dumps(labels, indent=2) + "\n").encode())


def load_settings(params_path: Path = Path("params.yaml")) -> Settings:
    """Settings from params.yaml (`preprocess`, `data.n_labels`, `data.n_samples`)."""
    params = yaml.safe_load(params_path.read_text()) or {}
    section, data = params.get("preprocess") or {}, params.get("data") or {}
    return Settings(
        shorter_side=int(section.get("shorter_side", 256)),
        jpeg_quality=int(section.get("jpeg_quality", 90)),
        val_fraction=float(section.get("val_fraction", 0.1)),
        test_fraction=float(section.get("test_fraction", 0.1)),
        n_labels=int(data.get("n_labels") or 0),
        n_samples=int(data.get("n_samples") or 0),
    )


def main() -> None:
    """`python -m stages.preprocess`: params.yaml + data/raw + data/new -> data/preprocessed."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    preprocess([Path("data/raw"), Path("data/new")], Path("data/preprocessed"), load_settings())


if __name__ == "__main__":
    main()
