"""End to end on real photos: `dvc exp run -S data.source=... preprocess` in a fresh repo."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from tests.conftest import copy_imagewoof_subset, new_project, run_in

PER_BREED = 30


@pytest.mark.slow
def test_exp_run_ingests_and_preprocesses_then_nothing_changes(tmp_path: Path) -> None:
    source = copy_imagewoof_subset(tmp_path / "subset", PER_BREED)
    folders = sorted(p.name for p in (source / "Images").iterdir())
    photos = {hashlib.sha256(p.read_bytes()).digest() for p in source.rglob("*.JPEG")}
    repo = new_project(tmp_path / "repo")

    run_in(repo, "dvc", "exp", "run", "-S", f"data.source={source}", "preprocess")

    with (repo / "data" / "preprocessed" / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(photos) >= 10 * PER_BREED - 5  # a few photos are in two breeds
    wnids = {row["breed"]: row["wnid"] for row in rows}
    expected = {f.split("-", 1)[1].lower(): f.split("-", 1)[0] for f in folders}
    assert wnids == expected  # e.g. old_english_sheepdog -> n02105641, shih-tzu -> n02086240
    assert {row["split"] for row in rows} == {"train", "val", "test"}
    assert all((repo / "data" / "preprocessed" / row["path"]).is_file() for row in rows)
    lock = (repo / "dvc.lock").read_text()
    assert "ingest:" in lock and "preprocess:" in lock and str(source) in lock

    again = run_in(repo, "dvc", "repro", "preprocess")
    assert "Running stage" not in again
    assert "Stage 'preprocess' didn't change" in again
    assert "up to date" in run_in(repo, "dvc", "status", "preprocess")
