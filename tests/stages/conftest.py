"""Fixtures of the stage tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stages.tiny_dataset import make_preprocessed, photo_bytes


@pytest.fixture
def tiny_repo(tmp_path, monkeypatch) -> Path:
    """A cwd with a tiny data/preprocessed (made-up photos) and three non-dog photos."""
    monkeypatch.chdir(tmp_path)
    make_preprocessed(tmp_path / "data/preprocessed")
    negatives = tmp_path / "not-dogs"
    negatives.mkdir()
    for i in range(3):
        (negatives / f"n{i}.jpg").write_bytes(photo_bytes((20 * i, 200, 20), seed=50 + i))
    return tmp_path
