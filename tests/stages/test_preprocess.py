"""Preprocess on tiny made-up photos: sizes, manifest, stable split, subsets, incremental work."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from stages import ingest, preprocess
from stages.preprocess import Settings, split_of

FAST = Settings(workers=2)


def photo(seed: int, size: tuple[int, int] = (96, 64)) -> bytes:
    """A distinct noisy JPEG (noise keeps every seed's bytes different)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def add_photos(source: Path, breed: str, seeds: range, size=(96, 64)) -> None:
    (source / breed).mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (source / breed / f"{seed}.jpg").write_bytes(photo(seed, size))


def raw_from(source: Path, into: Path) -> Path:
    ingest.ingest(str(source), into, ingest.Settings())
    return into


def manifest(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_manifest_images_and_labels(tmp_path: Path) -> None:
    source = tmp_path / "src"
    add_photos(source, "n02085620-Chihuahua", range(0, 4))  # small: copied as they are
    add_photos(source, "Mutt", range(10, 13), size=(600, 400))  # large: resized to 384x256
    raw = raw_from(source, tmp_path / "raw")
    out = tmp_path / "pre"
    summary = preprocess.preprocess([raw, tmp_path / "missing-new"], out, FAST)
    assert (summary.photos, summary.copied, summary.resized, summary.reused) == (7, 4, 3, 0)
    rows = manifest(out)
    assert list(rows[0]) == ["path", "breed", "wnid", "split", "hash"]
    assert [r["breed"] for r in rows] == ["chihuahua"] * 4 + ["mutt"] * 3
    assert {r["wnid"] for r in rows} == {"n02085620", ""}
    for row in rows:
        stored = out / row["path"]
        assert row["path"] == f"images/{row['hash'][:2]}/{row['hash']}.jpg"
        assert row["split"] == split_of(row["hash"], 0.1, 0.1)
        source_file = next(raw.glob(f"*/*_{row['hash']}.jpg"), None)  # copied bytes keep the uid
        img = Image.open(stored)
        if row["breed"] == "chihuahua":
            assert stored.read_bytes() == source_file.read_bytes()
        else:
            assert img.size == (384, 256) and img.format == "JPEG"
    raw_hashes = {hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in raw.glob("*/*.jpg")}
    assert {r["hash"] for r in rows} == raw_hashes
    assert json.loads((out / "breeds.json").read_text()) == [
        {"name": "chihuahua", "display": "Chihuahua", "wnid": "n02085620"},
        {"name": "mutt", "display": "Mutt", "wnid": None},
    ]


def test_small_photos_are_never_upscaled(tmp_path: Path) -> None:
    source = tmp_path / "src"
    add_photos(source, "pug", range(3), size=(120, 90))
    (source / "pug" / "grey.png").write_bytes(_png_grey())
    raw = raw_from(source, tmp_path / "raw")
    out = tmp_path / "pre"
    preprocess.preprocess([raw], out, FAST)
    sizes = sorted(Image.open(out / r["path"]).size for r in manifest(out))
    assert sizes == [(50, 40)] + [(120, 90)] * 3


def _png_grey() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (50, 40), 99).save(buffer, "PNG")
    return buffer.getvalue()


def test_split_depends_on_the_hash_only() -> None:
    hashes = [hashlib.sha256(str(i).encode()).hexdigest()[:16] for i in range(4000)]
    splits = [split_of(h, 0.1, 0.2) for h in hashes]
    assert abs(splits.count("test") / 4000 - 0.2) < 0.03
    assert abs(splits.count("val") / 4000 - 0.1) < 0.03
    assert split_of("0000000000000000", 0.1, 0.1) == "test"
    assert split_of("ffffffffffffffff", 0.1, 0.1) == "train"


def test_adding_photos_does_only_their_work_and_moves_no_split(tmp_path: Path) -> None:
    source = tmp_path / "src"
    add_photos(source, "beagle", range(0, 30))
    add_photos(source, "samoyed", range(100, 130))
    raw = raw_from(source, tmp_path / "raw")
    out = tmp_path / "pre"
    first = preprocess.preprocess([raw], out, FAST)
    assert first.copied == 60
    before = {r["hash"]: r["split"] for r in manifest(out)}
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.jpg")}
    # New photos arrive through data/new.
    new_source = tmp_path / "more"
    add_photos(new_source, "beagle", range(200, 210))
    add_photos(new_source, "dingo", range(300, 305))
    new = raw_from(new_source, tmp_path / "new")
    second = preprocess.preprocess([raw, new], out, FAST)
    assert (second.copied + second.resized, second.reused, second.removed) == (15, 60, 0)
    after = {r["hash"]: r["split"] for r in manifest(out)}
    assert len(after) == 75 and {h: after[h] for h in before} == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    third = preprocess.preprocess([raw, new], out, FAST)
    assert (third.copied + third.resized, third.reused) == (0, 75)


def test_subsets_and_pruning(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for index, breed in enumerate(["whippet", "beagle", "samoyed"]):
        add_photos(source, breed, range(index * 10, index * 10 + 6))
    raw = raw_from(source, tmp_path / "raw")
    out = tmp_path / "pre"
    preprocess.preprocess([raw], out, FAST)
    subset = Settings(n_labels=2, n_samples=3)
    summary = preprocess.preprocess([raw], out, subset)
    rows = manifest(out)
    assert [r["breed"] for r in rows] == ["beagle"] * 3 + ["samoyed"] * 3
    for breed in ("beagle", "samoyed"):
        every = sorted(p.stem.split("_")[-1] for p in (raw / breed).glob("*.jpg"))
        assert [r["hash"] for r in rows if r["breed"] == breed] == every[:3]  # by hash order
    assert summary.removed == 12 and summary.reused == 6
    assert sorted(p.stem for p in (out / "images").rglob("*.jpg")) == sorted(
        r["hash"] for r in rows
    )
    assert [b["name"] for b in json.loads((out / "breeds.json").read_text())] == [
        "beagle",
        "samoyed",
    ]


def test_new_settings_remake_every_image(tmp_path: Path) -> None:
    source = tmp_path / "src"
    add_photos(source, "pug", range(4), size=(600, 400))
    raw = raw_from(source, tmp_path / "raw")
    out = tmp_path / "pre"
    preprocess.preprocess([raw], out, FAST)
    summary = preprocess.preprocess([raw], out, Settings(shorter_side=128))
    assert (summary.resized, summary.reused) == (4, 0)
    assert {Image.open(out / r["path"]).size for r in manifest(out)} == {(192, 128)}


def test_same_photo_in_raw_and_new_is_listed_once(tmp_path: Path) -> None:
    source = tmp_path / "src"
    add_photos(source, "pug", range(3))
    raw = raw_from(source, tmp_path / "raw")
    new = raw_from(source, tmp_path / "new")
    out = tmp_path / "pre"
    summary = preprocess.preprocess([raw, new], out, FAST)
    assert summary.photos == 3 and len(manifest(out)) == 3


def test_main_reads_params_and_the_data_folders(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "src"
    add_photos(source, "pug", range(5))
    add_photos(source, "beagle", range(10, 15))
    raw_from(source, tmp_path / "data" / "raw")
    ingest.init(tmp_path / "data" / "new")
    (tmp_path / "params.yaml").write_text(
        "data:\n  n_labels: 1\n  n_samples: 2\npreprocess:\n  shorter_side: 32\n"
        "  jpeg_quality: 70\n  val_fraction: 0.5\n  test_fraction: 0.5\n"
    )
    monkeypatch.chdir(tmp_path)
    preprocess.main()
    rows = manifest(tmp_path / "data" / "preprocessed")
    assert [r["breed"] for r in rows] == ["beagle", "beagle"]
    assert {r["split"] for r in rows} <= {"val", "test"}
    sizes = {Image.open(tmp_path / "data" / "preprocessed" / r["path"]).size for r in rows}
    assert sizes == {(48, 32)}
