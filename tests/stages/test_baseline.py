"""The baseline: ImageNet head restricted to the 120 Stanford breeds, exported like the model."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from bot.breeds import slug
from bot.imaging import load_for_model
from stages.baseline import baseline_labels


def test_labels_are_the_120_stanford_breeds_without_dalmatian() -> None:
    labelled = baseline_labels()
    names = [b.name for _, b in labelled]
    assert len(names) == 120 == len(set(names))
    assert "dalmatian" not in names and 251 not in [i for i, _ in labelled]
    assert names == sorted(names)
    assert {"golden_retriever", "samoyed", "dingo", "african_hunting_dog"} <= set(names)


def test_model_json_describes_the_baseline(baseline_model_dir) -> None:
    meta = json.loads((baseline_model_dir / "model.json").read_text())
    assert meta["name"] == "baseline"
    assert [lab["name"] for lab in meta["labels"]] == [b.name for _, b in baseline_labels()]
    assert all(lab["wnid"].startswith("n0") for lab in meta["labels"])
    assert 0 < meta["thresholds"]["dog"] < 1 and 0 < meta["thresholds"]["unsure"] < 1


@pytest.mark.slow
def test_baseline_ranks_the_right_breed_first_on_real_photos(
    baseline_model_dir, imagewoof_small, not_dogs
) -> None:
    meta = json.loads((baseline_model_dir / "model.json").read_text())
    names = [lab["name"] for lab in meta["labels"]]
    session = ort.InferenceSession(
        str(baseline_model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    pixels, truth = [], []
    for breed_dir in sorted((imagewoof_small / "Images").iterdir()):
        for photo in sorted(breed_dir.iterdir())[:4]:
            pixels.append(load_for_model(photo, 256, 224))
            truth.append(slug(breed_dir.name))
    probs, dog = session.run(None, {"pixels": np.stack(pixels)})
    top1 = [names[i] for i in probs.argmax(axis=1)]
    accuracy = np.mean([p == t for p, t in zip(top1, truth, strict=True)])
    assert accuracy >= 0.6, (accuracy, list(zip(top1, truth, strict=True)))  # chance: 1/120
    assert np.median(dog) > 0.9
    negatives = sorted(not_dogs.iterdir())[:16]
    _, dog_neg = session.run(
        None, {"pixels": np.stack([load_for_model(p, 256, 224) for p in negatives])}
    )
    assert np.median(dog_neg) < 0.1
