"""Ingest + preprocess throughput and bytes on disk, side by side with the seed's way.

The seed decoded every full photo and `np.save`d the array, one photo after another. Ours is
`stages.ingest` (verify, store canonical JPEGs) then `stages.preprocess` (shorter side 256 JPEGs),
on 2 worker processes. Cases: (a) the ImageWoof photos (224 px), (b) some of them enlarged to
3000x2000 JPEGs as phones send them. Writes a markdown table to stdout and bench/out/ingest.md.

    python -m bench.ingest                # the full run: 12,454 photos + 500 large ones
    python -m bench.ingest --limit 500 --large 50   # a quick try
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from stages import ingest, preprocess

ROOT = Path(__file__).resolve().parents[1]
IMAGEWOOF = ROOT.parent / "shared" / "data" / "imagewoof"
LARGE_SIZE = (3000, 2000)


@dataclass
class Result:
    """One way on one case."""

    case: str
    way: str
    photos: int
    seconds: float
    cpu: float
    bytes: int
    detail: str = ""

    @property
    def rate(self) -> float:
        return self.photos / self.seconds


def cpu_seconds() -> float:
    """User + system time of this process and its finished children (the worker pools)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def photos_of(source: Path) -> list[Path]:
    """Every photo of a Stanford-layout folder, sorted."""
    return sorted(p for p in (source / "Images").rglob("*") if p.is_file())


def disk_bytes(root: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in root.rglob(pattern))


def seed_way(case: str, paths: list[Path], out: Path) -> Result:
    """The seed: decode the full photo, `np.save` the array, one photo at a time."""
    out.mkdir(parents=True)
    cpu, start = cpu_seconds(), time.perf_counter()
    for index, path in enumerate(paths):
        array = np.asarray(Image.open(path).convert("RGB"))
        np.save(out / f"{index}.npy", array)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    size = disk_bytes(out, "*")
    shutil.rmtree(out)
    return Result(case, "seed: full decode + np.save", len(paths), seconds, cpu, size)


def our_way(case: str, source: Path, work: Path) -> Result:
    """`stages.ingest` into work/raw, then `stages.preprocess` into work/preprocessed."""
    cpu, start = cpu_seconds(), time.perf_counter()
    report = ingest.ingest(str(source), work / "raw", ingest.Settings())
    ingested = time.perf_counter()
    summary = preprocess.preprocess([work / "raw"], work / "preprocessed", preprocess.Settings())
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    raw = disk_bytes(work / "raw", "*.jpg")
    detail = (
        f"ingest {ingested - start:.1f} s + preprocess {seconds - (ingested - start):.1f} s; "
        f"{report.counts['imported']} imported, {summary.photos} in the manifest; "
        f"data/raw {raw / 1e6:.0f} MB"
    )
    stored = disk_bytes(work / "preprocessed" / "images", "*.jpg")
    photos = len(photos_of(source))
    return Result(case, "ours: ingest + preprocess", photos, seconds, cpu, stored, detail)


def _enlarge(job: tuple[Path, Path]) -> None:
    source, dest = job
    Image.open(source).convert("RGB").resize(LARGE_SIZE, Image.Resampling.BICUBIC).save(
        dest, "JPEG", quality=90
    )


def make_large(paths: list[Path], dest: Path) -> Path:
    """The same photos enlarged to 3000x2000 JPEGs, in the Stanford layout."""
    jobs = []
    for path in paths:
        folder = dest / "Images" / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((path, folder / path.name))
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_enlarge, jobs, chunksize=8))
    return dest


def make_subset(paths: list[Path], dest: Path) -> Path:
    for path in paths:
        folder = dest / "Images" / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / path.name)
    return dest


def spread(paths: list[Path], n: int) -> list[Path]:
    """`n` photos taken round-robin over the breeds (all of them when n covers them)."""
    by_breed: dict[str, list[Path]] = {}
    for path in paths:
        by_breed.setdefault(path.parent.name, []).append(path)
    order = [
        p
        for rank in range(max(map(len, by_breed.values())))
        for ps in by_breed.values()
        if rank < len(ps)
        for p in [ps[rank]]
    ]
    return order[:n]


def run_case(case: str, source: Path, work: Path) -> list[Result]:
    paths = photos_of(source)
    for path in paths:  # warm the page cache so that both ways read from memory
        path.read_bytes()
    os.sync()  # and start each way with no other writes pending
    ours = our_way(case, source, work / "ours")
    os.sync()
    seed = seed_way(case, paths, work / "npy")
    return [seed, ours]


def table(results: list[Result], load: str) -> str:
    lines = [
        "| case | way | photos | seconds | photos/s | CPU ms/photo | bytes on disk | smaller "
        "| faster |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        seed = next(r for r in results if r.case == result.case)
        lines.append(
            f"| {result.case} | {result.way} | {result.photos} | {result.seconds:.1f} | "
            f"{result.rate:.0f} | {1000 * result.cpu / result.photos:.2f} | "
            f"{result.bytes / 1e6:.1f} MB | {seed.bytes / result.bytes:.1f}x | "
            f"{result.rate / seed.rate:.1f}x |"
        )
    notes = [f"- {r.case}: {r.detail}" for r in results if r.detail]
    notes.append("- CPU ms/photo: user+system time of all processes; it hardly moves with load")
    goals = "Goals: >= 10x smaller than the seed's .npy on both; (a) >= 1000 photos/s; (b) >= 3x."
    return "\n".join([*lines, "", *notes, f"- {load}", "", goals]) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run both cases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=IMAGEWOOF)
    parser.add_argument("--limit", type=int, default=0, help="photos for case (a); 0 = all")
    parser.add_argument("--large", type=int, default=500, help="photos for case (b)")
    parser.add_argument("--workdir", type=Path, help="scratch space (default: a temp dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    every = photos_of(args.source)
    load = f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        work = Path(scratch)
        source = args.source
        if args.limit:
            source = make_subset(spread(every, args.limit), work / "subset")
        results = run_case(f"(a) {len(photos_of(source))} ImageWoof", source, work / "a")
        large = make_large(spread(every, args.large), work / "large")
        results += run_case(f"(b) {args.large} at 3000x2000", large, work / "b")
    text = table(results, load)
    out = ROOT / "bench" / "out" / "ingest.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
