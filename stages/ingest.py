"""Stage `ingest`: photos from any source into `<DIR>/<breed>/<breed>_<uid>.jpg` + `breeds.json`.

`python -m stages.ingest SOURCE --into data/raw` (the pipeline's first stage) or `--into data/new`
(photos users add). Bad photos are reported, never imported; a re-run adds nothing new; a killed
run re-run ends with every good photo exactly once (atomic writes, leftovers removed).

Same content under two breeds (a conflict): the first one wins - the copy already in `<DIR>`,
else the first in source order - and the other is listed under `conflicts` in the report.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from multiprocessing import get_context
from pathlib import Path, PurePosixPath

import yaml
from tqdm import tqdm

from bot import breeds
from bot.breeds import Breed
from bot.imaging import DEFAULT_MAX_PIXELS, BadImage, decode
from stages import sources
from stages.photos import (
    atomic_write,
    batched,
    bounded_map,
    content_id,
    encode_jpeg,
    is_canonical_jpeg,
    peek,
    remove_temp_files,
)
from stages.report import Report

log = logging.getLogger(__name__)

BREEDS_FILE = "breeds.json"
_BARE_WNID = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class Settings:
    """The knobs of one ingest run (params.yaml `ingest`, overridden on the command line)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    jpeg_quality: int = 95
    workers: int = 2


@dataclass(frozen=True)
class Job:
    """A photo to verify and store at `dest`."""

    name: str
    data: bytes
    dest: Path


def store_photo(job: Job, settings: Settings) -> tuple[str, str | None, str]:
    """Verify (and if needed re-encode) one photo; returns (name, bad reason or None, how)."""
    try:
        header = peek(job.data)
        if header is not None and is_canonical_jpeg(header):
            # Decoding at 1/8 scale still entropy-decodes every block, so truncation and
            # broken streams are caught exactly as by a full decode, several times faster.
            decode(job.data, settings.max_pixels, min_side=1)
            data, how = job.data, "copied"
        else:
            img = decode(job.data, settings.max_pixels)
            data, how = encode_jpeg(img, settings.jpeg_quality), "reencoded"
    except BadImage as exc:
        return job.name, exc.reason, exc.detail
    atomic_write(job.dest, data)
    return job.name, None, how


def _store_batch(batch: list[Job], settings: Settings) -> list[tuple[str, str | None, str]]:
    return [store_photo(job, settings) for job in batch]


def breed_of(entry: sources.Entry, dogs: dict[str, str], wnid_by_slug: dict[str, str]) -> Breed:
    """The breed of a source entry: its folder, or the label of a flat `label_uid` file name."""
    raw = entry.folder
    if raw is None:
        raw, _ = breeds.split_label_uid(PurePosixPath(entry.name).stem)
    if _BARE_WNID.match(raw) and raw in dogs:  # Stanford file names: n02085620_10074.jpg
        return replace(breeds.parse(dogs[raw]), wnid=raw)
    breed = breeds.parse(raw)
    return breed if breed.wnid else replace(breed, wnid=wnid_by_slug.get(breed.name))


def existing_photos(into: Path) -> dict[str, str]:
    """{uid: breed} of the photos already in `into`."""
    found: dict[str, str] = {}
    for path in into.glob("*/*.jpg"):
        try:
            found[breeds.split_label_uid(path.stem)[1]] = path.parent.name
        except ValueError:
            log.warning("%s is not named <breed>_<uid>.jpg; ignored", path)
    return found


def merge_breeds(path: Path, new: Iterable[Breed]) -> None:
    """Add breeds to `breeds.json` (sorted keys); a known wnid is never replaced by null."""
    current = json.loads(path.read_text()) if path.exists() else {}
    for breed in new:
        known = current.get(breed.name)
        if known is None or (known.get("wnid") is None and breed.wnid):
            current[breed.name] = {"display": breed.display, "wnid": breed.wnid}
    atomic_write(path, (json.dumps(current, indent=2, sort_keys=True) + "\n").encode())


def _plan(
    entries: Iterable[sources.Entry], into: Path, report: Report, used: dict[str, Breed]
) -> Iterator[Job]:
    """Decide per entry (refused, duplicate, conflict, already there, or a job); yield the jobs."""
    dogs = sources.imagenet_dogs()
    wnid_by_slug = {breeds.slug(name): wnid for wnid, name in dogs.items()}
    existing = existing_photos(into)
    seen: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if entry.refused:
            report.bad(entry.name, entry.refused, entry.detail)
            continue
        if not entry.data:
            report.bad(entry.name, "empty", "0 bytes")
            continue
        try:
            breed = breed_of(entry, dogs, wnid_by_slug)
        except ValueError as exc:
            report.bad(entry.name, "bad_name", str(exc))
            continue
        uid = content_id(entry.data)
        if uid in seen:
            first_breed, first_name = seen[uid]
            if first_breed == breed.name:
                report.duplicate(entry.name, first_name)
            else:
                report.conflict(entry.name, breed.name, first_name, first_breed)
            continue
        seen[uid] = (breed.name, entry.name)
        if uid in existing:
            if existing[uid] == breed.name:
                report.count("unchanged")
                used.setdefault(breed.name, breed)
            else:
                kept = f"{existing[uid]}/{existing[uid]}_{uid}.jpg (already in {into.name})"
                report.conflict(entry.name, breed.name, kept, existing[uid])
            continue
        dest = into / breed.name / f"{breed.name}_{uid}.jpg"
        if breed.name not in used:
            dest.parent.mkdir(parents=True, exist_ok=True)
            used[breed.name] = breed
        yield Job(entry.name, entry.data, dest)


def ingest(source: str, into: Path, settings: Settings) -> Report:
    """Import every good photo of `source` into `into`; the report lists everything else."""
    path = sources.resolve(source)
    report = Report(source=source, kind=sources.describe(path), into=str(into))
    into.mkdir(parents=True, exist_ok=True)
    if leftovers := remove_temp_files(into):
        log.info("removed %d temporary files left by an interrupted run", leftovers)
    used: dict[str, Breed] = {}
    entries = tqdm(sources.iter_source(path), unit=" files", desc="ingest", disable=None)
    jobs = _plan(entries, into, report, used)
    context = get_context("fork")
    with ProcessPoolExecutor(settings.workers, mp_context=context) as pool:
        work = partial(_store_batch, settings=settings)
        for name, reason, info in bounded_map(pool, work, batched(jobs, 16), 4 * settings.workers):
            if reason is None:
                report.count("imported")
                report.count(info)
            else:
                report.bad(name, reason, info)
    # Breeds whose every photo turned out bad stay out of breeds.json (and leave no folder).
    for folder in into.iterdir():
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    present = {p.parent.name for p in into.glob("*/*.jpg")}
    merge_breeds(into / BREEDS_FILE, (b for b in used.values() if b.name in present))
    return report


def init(into: Path) -> None:
    """The deterministic empty first version of a photo folder: just `breeds.json` = `{}`."""
    into.mkdir(parents=True, exist_ok=True)
    merge_breeds(into / BREEDS_FILE, [])


def _settings(args: argparse.Namespace) -> Settings:
    params_file = Path("params.yaml")
    params = yaml.safe_load(params_file.read_text()) if params_file.exists() else {}
    section = (params or {}).get("ingest") or {}
    return Settings(
        max_pixels=int(args.max_pixels or section.get("max_pixels", DEFAULT_MAX_PIXELS)),
        jpeg_quality=int(args.jpeg_quality or section.get("jpeg_quality", 95)),
        workers=args.workers,
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m stages.ingest [SOURCE] [--into DIR] [--report PATH]`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "source",
        nargs="?",
        default=sources.STANFORD_URL,
        help="a folder (Stanford layout, breed folders or flat label_uid.jpg), a tar, or a URL "
        "(default: the Stanford Dogs images.tar)",
    )
    parser.add_argument("--into", type=Path, default=Path("data/raw"), help="data/raw or data/new")
    parser.add_argument("--report", type=Path, help="default: reports/ingest-<DIR name>.json")
    parser.add_argument("--max-pixels", type=int, help="default: params.yaml ingest.max_pixels")
    parser.add_argument("--jpeg-quality", type=int, help="default: params.yaml ingest.jpeg_quality")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes")
    parser.add_argument("--init", type=Path, metavar="DIR", help="lay down an empty DIR")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.init:
        init(args.init)
        return 0
    report = ingest(args.source, args.into, _settings(args))
    report_path = args.report or Path("reports") / f"ingest-{args.into.resolve().name}.json"
    report.write(report_path)
    sys.stdout.write(f"{report.summary()}\n  report: {report_path}\n")
    if not report.counts.get("imported") and not report.counts.get("unchanged"):
        sys.stderr.write(f"no photos imported from {args.source}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
