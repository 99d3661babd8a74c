"""Fixtures shared by the whole suite: where the real photos are, and small copies of them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
REQUIRE_ENV = "DOGGO_REQUIRE_SHARED_DATA"


def require_shared_data(*parts: str) -> Path:
    """The path under ../shared/data, or skip (fail in CI, where DOGGO_REQUIRE_SHARED_DATA=1)."""
    path = SHARED_DATA.joinpath(*parts)
    if path.exists():
        return path
    message = f"needs real photos at {path} (../shared/data beside the checkout)"
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{message}; {REQUIRE_ENV} is set, so this is an error")
    pytest.skip(message)


def copy_imagewoof_subset(dest: Path, per_breed: int) -> Path:
    """Copy the first `per_breed` photos of each ImageWoof breed into `dest` (Stanford layout)."""
    source = require_shared_data("imagewoof", "Images")
    for breed_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        target = dest / "Images" / breed_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for photo in sorted(breed_dir.iterdir())[:per_breed]:
            shutil.copyfile(photo, target / photo.name)
    return dest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (skips, or fails in CI, when missing)."""
    return require_shared_data()


@pytest.fixture(scope="session")
def imagewoof_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 breeds x 12 real photos in the Stanford layout, in a temp dir (read-only by contract)."""
    return copy_imagewoof_subset(tmp_path_factory.mktemp("imagewoof_small"), per_breed=12)


@pytest.fixture(scope="session")
def imagewoof_40(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 breeds x 40 real photos in the Stanford layout: the CI-sized real-photo pipeline."""
    return copy_imagewoof_subset(tmp_path_factory.mktemp("imagewoof_40"), per_breed=40)


@pytest.fixture(scope="session")
def not_dogs() -> Path:
    """../shared/data/not-dogs: one photo of each non-dog ImageNet class."""
    return require_shared_data("not-dogs")


# --- models (stages/baseline.py, stages/train.py) ---


@pytest.fixture(scope="session")
def baseline_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real baseline model (120 Stanford breeds) exported by `stages.baseline` into a temp dir."""
    from stages.baseline import build

    out = tmp_path_factory.mktemp("baseline")
    build(out, "efficientnet-lite0", image_size=224, resize=256)
    return out


def run_in(repo: Path, *command: str) -> str:
    """Run a command in `repo` with the venv first on PATH (as `make` does); fail on error."""
    import subprocess
    import sys

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["DVC_NO_ANALYTICS"] = "1"
    result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def new_project(repo: Path, params: dict | None = None) -> Path:
    """A fresh clone's worth of the project in `repo` (git + DVC, empty data/new), committed.

    `params`: {"section.key": value} overrides written into params.yaml before the commit.
    """
    import sys

    import yaml

    repo.mkdir(parents=True)
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    for package in ("stages", "bot"):
        shutil.copytree(
            ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    if params:
        values = yaml.safe_load((repo / "params.yaml").read_text())
        for dotted, value in params.items():
            section, key = dotted.split(".", 1)
            values[section][key] = value
        (repo / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    run_in(repo, "git", "init", "-q")
    run_in(repo, "git", "config", "user.email", "test@doggo-recog.invalid")
    run_in(repo, "git", "config", "user.name", "doggo test")
    run_in(repo, "dvc", "init", "-q")
    run_in(repo, sys.executable, "-m", "stages.ingest", "--init", "data/new")
    run_in(repo, "dvc", "add", "-q", "data/new")
    run_in(repo, "git", "add", "-A")
    run_in(repo, "git", "commit", "-q", "-m", "project")
    return repo


@pytest.fixture(scope="session")
def trained_repo(
    tmp_path_factory: pytest.TempPathFactory, imagewoof_40: Path, not_dogs: Path
) -> Path:
    """A git+DVC project after `dvc repro` on 10 breeds x 40 real photos (head mode).

    models/ holds a really trained model.onnx + model.json (+ models/checkpoints/best.ckpt),
    eval/ the evaluation, data/preprocessed and data/features the data; 40 non-dog photos are
    the negatives. About a minute on 2 cores.
    """
    base = tmp_path_factory.mktemp("trained")
    negatives = base / "not-dogs"
    negatives.mkdir()
    for photo in sorted(not_dogs.iterdir())[:40]:
        shutil.copyfile(photo, negatives / photo.name)
    repo = new_project(
        base / "repo", {"data.source": str(imagewoof_40), "evaluate.negatives": str(negatives)}
    )
    run_in(repo, "dvc", "repro")
    return repo
