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
