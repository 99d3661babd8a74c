"""End to end on real photos: `dvc exp run -S data.source=... preprocess` in a fresh repo."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import copy_imagewoof_subset

ROOT = Path(__file__).resolve().parents[2]
PER_BREED = 30


def _run(repo: Path, *command: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["DVC_NO_ANALYTICS"] = "1"
    result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _project(repo: Path) -> Path:
    """A fresh clone's worth of the project: pipeline, params, code, the empty data/new."""
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    for package in ("stages", "bot"):
        shutil.copytree(
            ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    _run(repo, "git", "init", "-q")
    _run(repo, "git", "config", "user.email", "test@doggo-recog.invalid")
    _run(repo, "git", "config", "user.name", "doggo test")
    _run(repo, "dvc", "init", "-q")
    _run(repo, sys.executable, "-m", "stages.ingest", "--init", "data/new")
    _run(repo, "dvc", "add", "-q", "data/new")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-q", "-m", "project")
    return repo


@pytest.mark.slow
def test_exp_run_ingests_and_preprocesses_then_nothing_changes(tmp_path: Path) -> None:
    source = copy_imagewoof_subset(tmp_path / "subset", PER_BREED)
    folders = sorted(p.name for p in (source / "Images").iterdir())
    photos = {hashlib.sha256(p.read_bytes()).digest() for p in source.rglob("*.JPEG")}
    repo = _project(tmp_path / "repo")

    _run(repo, "dvc", "exp", "run", "-S", f"data.source={source}", "preprocess")

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

    again = _run(repo, "dvc", "repro", "preprocess")
    assert "Running stage" not in again
    assert "Stage 'preprocess' didn't change" in again
    assert "up to date" in _run(repo, "dvc", "status", "preprocess")
