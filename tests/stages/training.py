"""Helpers of the training tests: the real params.yaml made tiny, cached features, checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import yaml

from stages.features import FeatureSpec, negative_photos, update
from stages.manifest import read_manifest
from tests.stages.tiny_dataset import BREEDS

ROOT = Path(__file__).resolve().parents[2]


def shrunk_params(mode: str, negatives: Path) -> dict:
    """The repo's params.yaml, made tiny (the real config, not a fake one)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(mode=mode, batch_size=4, max_epochs=2)
    params["train"]["trainer"]["limit_train_batches"] = 2  # passed through to the Trainer
    params["features"].update(threads=1)
    params["evaluate"]["negatives"] = str(negatives)
    return params


def check_model_dir(models: Path) -> dict:
    meta = json.loads((models / "model.json").read_text())
    assert meta["name"] == "breed-classifier"
    assert [lab["name"] for lab in meta["labels"]] == [b[0] for b in BREEDS]
    assert meta["labels"][2]["wnid"] is None
    assert 0 <= meta["thresholds"]["dog"] <= 1 and 0 <= meta["thresholds"]["unsure"] <= 1
    assert {"val_top1", "val_top3", "test_top1", "best_epoch"} <= set(meta["metrics"])
    assert meta["provenance"]["data_version"].startswith("manifest-sha256:")
    assert meta["provenance"]["params"]["train"]["lr"] == 0.001
    assert (models / "checkpoints" / "best.ckpt").exists()
    session = ort.InferenceSession(str(models / "model.onnx"), providers=["CPUExecutionProvider"])
    probs, dog = session.run(None, {"pixels": np.zeros((2, 224, 224, 3), np.uint8)})
    assert probs.shape == (2, 3) and dog.shape == (2,)
    return meta


def cache_features(repo: Path) -> None:
    """What the features stage leaves for head mode: the photos' and the negatives' features."""
    spec = FeatureSpec("efficientnet-lite0", 256, 224)
    pre = repo / "data/preprocessed"
    rows = [(r.hash, pre / r.path) for r in read_manifest(pre)]
    update(spec.path(repo / "data/features"), rows, spec, threads=1, batch_size=16)
    negatives = negative_photos(repo / "not-dogs")
    update(spec.path(repo / "data/features", negatives=True), negatives, spec, 1, 16)
