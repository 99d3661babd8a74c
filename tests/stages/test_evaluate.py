"""Stage `evaluate` on a constructed test split whose metrics are worked out by hand.

The tiny contract model (tests/bot/tiny_model.py) maps a photo's colour to its breed logits
(10 * per-channel mean of (p - 127) / 128, a fourth label with a zero column) and its dog
probability (sigmoid(10 * max channel mean + 3)), so every number below follows from the colours.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bot.breeds import parse
from stages import metrics
from stages.evaluate import main
from tests.bot.tiny_model import LABELS, write_tiny_model

LABELS4 = [*LABELS, {"name": "yellow_lab", "display": "Yellow lab", "wnid": None}]
RED, BLUE, GREY, MAGENTA = (255, 0, 0), (0, 0, 255), (128, 128, 128), (255, 0, 128)
# (colour, breed, split): predicted breed in the comment.
ROWS = [
    (RED, "red_setter", "test"),  # red_setter: right
    (RED, "red_setter", "test"),  # red_setter: right
    (BLUE, "blue_heeler", "test"),  # blue_heeler: right
    (GREY, "green_terrier", "test"),  # uniform over 3, argmax red_setter: wrong, top-3 right
    (MAGENTA, "green_terrier", "test"),  # red_setter, then blue, yellow: wrong, top-3 wrong
    (RED, "green_terrier", "train"),  # not in the test split: ignored
    (BLUE, "red_setter", "val"),  # ignored
]
NEGATIVES = {"black": (0, 0, 0), "dark": (64, 64, 64), "white": (255, 255, 255)}


def softmax(logits: list[float]) -> np.ndarray:
    e = np.exp(np.asarray(logits, dtype=np.float64))
    return e / e.sum()


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repo root with params.yaml, models/ (tiny model), data/preprocessed and negatives."""
    write_tiny_model(tmp_path / "models", labels=LABELS4, thresholds={"dog": 0.5, "unsure": 0.6})
    data = tmp_path / "data" / "preprocessed"
    (data / "images").mkdir(parents=True)
    with (data / "manifest.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "breed", "wnid", "split", "hash"])
        for i, (colour, breed, split) in enumerate(ROWS):
            Image.new("RGB", (48, 40), colour).save(data / "images" / f"{i:02d}.jpg", "PNG")
            writer.writerow([f"images/{i:02d}.jpg", breed, "", split, f"{i:016x}"])
        # An unreadable test photo is skipped and counted, not fatal.
        (data / "images" / "bad.jpg").write_bytes(b"not a photo")
        writer.writerow(["images/bad.jpg", "blue_heeler", "", "test", "f" * 16])
    negatives = tmp_path / "not-dogs"
    negatives.mkdir()
    for name, colour in NEGATIVES.items():
        Image.new("RGB", (40, 40), colour).save(negatives / f"{name}.png")
    params = {"evaluate": {"negatives": "not-dogs", "batch_size": 2}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_metrics_match_the_hand_computed_values(project: Path) -> None:
    main([])
    m = json.loads((project / "eval" / "metrics.json").read_text())
    assert m["n_test"] == 5 and m["n_unreadable"] == 1 and m["n_negatives"] == 3
    assert m["top1"] == pytest.approx(3 / 5)
    assert m["top3"] == pytest.approx(4 / 5)
    # F1: red_setter tp=2 fp=2 -> 2/3; green_terrier tp=0 -> 0; blue_heeler -> 1.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert m["per_breed"] == {"blue_heeler": 1.0, "green_terrier": 0.0, "red_setter": 1.0}
    # ECE: the four confident photos share the top bin (3 right), grey sits alone in bin 5.
    confident = [softmax([10, -10, -10, 0]).max()] * 3 + [softmax([10, -10, 10 / 128, 0]).max()]
    grey = softmax([10 / 128] * 3 + [0]).max()
    expected_ece = abs(3 / 4 - np.mean(confident)) * 4 / 5 + abs(0 - grey) * 1 / 5
    assert m["ece"] == pytest.approx(expected_ece, abs=1e-5)
    # Dog output: grey (0.956) is the only unsure dog; no dog is rejected at 0.5.
    assert m["dogs_rejected"] == 0.0 and m["dogs_unsure"] == pytest.approx(1 / 5)
    # AUROC: 4 dogs tie the white negative at sigmoid(13) (half each), grey beats 2 of 3.
    assert m["not_a_dog_auroc"] == pytest.approx((4 * 2.5 + 2) / 15)
    assert m["negatives_rejected"] == pytest.approx(2 / 3)
    model = json.loads((project / "models" / "model.json").read_text())
    assert m["model"] == {"name": "baseline", "version": model["version"]}
    assert m["thresholds"] == {"dog": 0.5, "unsure": 0.6}


def test_plot_files_fit_the_dvc_templates(project: Path) -> None:
    main([])
    rows = json.loads((project / "eval" / "plots" / "confusion.json").read_text())
    pairs = [(r["actual"], r["predicted"]) for r in rows]
    assert pairs == [
        ("red_setter", "red_setter"),
        ("red_setter", "red_setter"),
        ("blue_heeler", "blue_heeler"),
        ("green_terrier", "red_setter"),
        ("green_terrier", "red_setter"),
    ]
    with (project / "eval" / "plots" / "per_breed.csv").open() as f:
        per_breed = list(csv.DictReader(f))
    assert [(r["breed"], float(r["accuracy"])) for r in per_breed] == [
        ("blue_heeler", 1.0),
        ("green_terrier", 0.0),
        ("red_setter", 1.0),
    ]


def test_without_negatives_and_with_an_unknown_breed(project: Path) -> None:
    (project / "params.yaml").write_text(
        yaml.safe_dump({"evaluate": {"negatives": "", "batch_size": 64}})
    )
    main([])
    m = json.loads((project / "eval" / "metrics.json").read_text())
    assert "not_a_dog_auroc" not in m and m["top1"] == pytest.approx(3 / 5)
    manifest = project / "data" / "preprocessed" / "manifest.csv"
    manifest.write_text(manifest.read_text() + "images/00.jpg,poodle,,test,0\n")
    with pytest.raises(ValueError, match="'poodle' is not a model label"):
        main([])


def test_metric_helpers_edge_cases() -> None:
    assert metrics.auroc(np.array([0.9, 0.8]), np.array([0.1])) == 1.0
    assert metrics.auroc(np.array([0.5]), np.array([0.5])) == 0.5
    assert math.isnan(metrics.auroc(np.array([]), np.array([0.5])))
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert metrics.expected_calibration_error(probs, np.array([0, 1])) == 0.0
    assert metrics.expected_calibration_error(probs, np.array([1, 0])) == 1.0


@pytest.mark.slow
def test_baseline_on_real_photos(
    baseline_model_dir: Path,
    imagewoof_small: Path,
    not_dogs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real baseline on 120 ImageWoof photos and 40 non-dogs: well above chance."""
    data = tmp_path / "data" / "preprocessed"
    data.mkdir(parents=True)
    (data / "images").symlink_to(imagewoof_small / "Images")
    with (data / "manifest.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "breed", "wnid", "split", "hash"])
        for photo in sorted((imagewoof_small / "Images").rglob("*.JPEG")):
            breed = parse(photo.parent.name)
            rel = f"images/{photo.parent.name}/{photo.name}"
            writer.writerow([rel, breed.name, breed.wnid, "test", "0" * 16])
    negatives = tmp_path / "not-dogs"
    negatives.mkdir()
    for photo in sorted(not_dogs.iterdir())[:40]:
        (negatives / photo.name).symlink_to(photo)
    params = {"evaluate": {"negatives": str(negatives), "batch_size": 32}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    main(["--model", str(baseline_model_dir)])
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["n_test"] == 120 and m["n_negatives"] == 40
    # 120 labels (chance 1/120); on these 10 breeds the baseline's top-3 is ~0.9.
    assert m["top1"] > 0.55 and m["top3"] > 0.8, m
    assert m["not_a_dog_auroc"] > 0.95 and m["negatives_rejected"] > 0.9, m
    assert len(m["per_breed"]) == 10
