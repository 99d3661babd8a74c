"""Training: tiny Lightning runs on CPU (head and finetune), best-checkpoint export, thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import yaml

from stages import thresholds
from stages.manifest import read_manifest
from tests.stages.tiny_dataset import COLOURS, photo_bytes
from tests.stages.training import cache_features, check_model_dir, shrunk_params


def test_head_mode_trains_from_cached_features(tiny_repo) -> None:
    from stages.train import run

    params = shrunk_params("head", tiny_repo / "not-dogs")
    cache_features(tiny_repo)
    meta = run(params, tiny_repo / "models")
    check_model_dir(tiny_repo / "models")
    # single-colour "breeds" are trivially separable: anything below is a bug
    assert meta["metrics"]["val_top1"] >= 2 / 3
    metrics = json.loads((tiny_repo / "dvclive/metrics.json").read_text())
    assert {"loss", "top1"} <= set(metrics["val"]) and "loss" in metrics["train"]
    assert (tiny_repo / "dvclive/plots/metrics/val/top1.tsv").exists()
    # same seed, same model: deterministic on CPU
    again = run(params, tiny_repo / "models2")
    assert again["version"] == meta["version"]


def test_finetune_mode_trains_end_to_end_on_photos(tiny_repo) -> None:
    from stages.train import run

    params = shrunk_params("finetune", tiny_repo / "not-dogs")
    params["train"]["max_epochs"] = 1
    run(params, tiny_repo / "models")
    check_model_dir(tiny_repo / "models")


@pytest.mark.gpu
def test_finetune_mode_on_a_gpu_exports_a_cpu_model(tiny_repo) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (train.trainer.accelerator: gpu)")
    from stages.train import run

    params = shrunk_params("finetune", tiny_repo / "not-dogs")
    params["train"]["max_epochs"] = 1
    params["train"]["trainer"].update(accelerator="gpu", devices=1, precision="16-mixed")
    run(params, tiny_repo / "models")
    check_model_dir(tiny_repo / "models")  # the ONNX export runs on CPU Runtime


def test_missing_features_are_a_clear_error(tiny_repo) -> None:
    from stages.train import run

    with pytest.raises(RuntimeError, match="run the features stage"):
        run(shrunk_params("head", tiny_repo / "not-dogs"), tiny_repo / "models")


def test_unsure_threshold_cuts_where_answers_turn_mostly_wrong() -> None:
    top1 = np.array([0.2, 0.3, 0.35, 0.4, 0.5, 0.6, 0.9, 0.95])
    correct = np.array([False, False, True, False, False, True, True, True])
    # below 0.55 there are 4 wrong and 1 right answers: "not sure" is better there
    assert thresholds.unsure_threshold(top1, correct, n_classes=10) == pytest.approx(0.55)
    # no wrong answers at all: still "not sure" up to twice the uniform probability
    assert thresholds.unsure_threshold(top1, np.ones(8, bool), n_classes=10) == 0.2


def test_dog_threshold_separates_and_keeps_99_percent_of_dogs() -> None:
    dogs = np.linspace(0.5, 1.0, 200)
    not_dogs = np.linspace(0.0, 0.3, 100)
    t = thresholds.dog_threshold(dogs, not_dogs)
    assert 0.3 < t < 0.5
    overlapping = np.concatenate([np.full(10, 0.05), np.linspace(0.6, 1, 190)])
    t = thresholds.dog_threshold(overlapping, not_dogs)
    assert (overlapping >= t).mean() >= 0.99  # the cap wins over balanced accuracy
    assert thresholds.dog_threshold(dogs) == dogs[2]  # 198 of 200 kept
    few = np.array([0.7, 0.8, 0.9])
    assert thresholds.dog_threshold(few, np.array([0.01, 0.02])) <= 0.7  # all 3 dogs kept


def test_transform_factory(tmp_path) -> None:
    from PIL import Image

    from bot.imaging import center_crop
    from stages.transforms import make_transform

    img = Image.open(__import__("io").BytesIO(photo_bytes(COLOURS[0], seed=3)))
    plain = make_transform(224, 256)(img)
    assert plain.shape == (224, 224, 3) and plain.dtype.is_floating_point is False
    assert np.array_equal(plain.numpy(), center_crop(img, 256, 224))
    augmented = make_transform(224, 256, train=True, hflip=1.0, grayscale=1.0)(img)
    assert augmented.shape == (224, 224, 3)
    channels = augmented.numpy().astype(int)
    assert (channels[..., 0] == channels[..., 1]).all()  # grayscale with probability 1


@pytest.mark.slow
def test_trained_repo_learns_the_breeds(trained_repo: Path) -> None:
    meta = json.loads((trained_repo / "models/model.json").read_text())
    assert len(meta["labels"]) == 10
    # 10 breeds x 40 photos, warm-started from ImageNet: far above chance (0.1)
    assert meta["metrics"]["val_top1"] >= 0.75, meta["metrics"]
    assert meta["provenance"]["data_version"].endswith(".dir")  # from dvc.lock
    assert len(meta["provenance"]["git_commit"]) == 40
    assert 0 < meta["thresholds"]["dog"] < 0.9 and 0 < meta["thresholds"]["unsure"] < 1
    assert "val" in json.loads((trained_repo / "dvclive/metrics.json").read_text())


@pytest.mark.slow
def test_onnx_model_matches_the_lightning_checkpoint(trained_repo: Path) -> None:
    """The exported graph and the best checkpoint agree on real photos (max prob diff <= 1e-4)."""
    import torch

    from bot.imaging import load_for_model
    from stages.backbone import load_backbone
    from stages.export import ExportGraph
    from stages.manifest import read_labels
    from stages.train import build_module, export_net, load_checkpoint

    params = yaml.safe_load((trained_repo / "params.yaml").read_text())
    train = params["train"]
    labels = read_labels(trained_repo / "data/preprocessed")
    backbone = load_backbone(train["backbone"], train["image_size"])
    module = build_module(train, labels, backbone)
    load_checkpoint(module, trained_repo / "models/checkpoints/best.ckpt")
    graph = ExportGraph(export_net(module, backbone)).eval()
    pre = trained_repo / "data/preprocessed"
    photos = [pre / r.path for r in read_manifest(pre) if r.split == "test"][:16]
    pixels = np.stack([load_for_model(p, train["resize"], train["image_size"]) for p in photos])
    with torch.no_grad():
        want_breeds, want_dog = graph(torch.from_numpy(pixels))
    session = ort.InferenceSession(
        str(trained_repo / "models/model.onnx"), providers=["CPUExecutionProvider"]
    )
    breeds, dog = session.run(None, {"pixels": pixels})
    assert np.abs(breeds - want_breeds.numpy()).max() <= 1e-4
    assert np.abs(dog - want_dog.numpy()).max() <= 1e-4
    assert breeds.max(axis=1).min() > 0.1  # a trained model, not a uniform one


def test_numbers_in_params_override_auto_thresholds() -> None:
    val = (np.array([[0.9, 0.1], [0.4, 0.6]]), np.array([0.99, 0.8]), np.array([0, 1]))
    chosen = thresholds.choose({"dog_threshold": 0.3, "unsure_threshold": "auto"}, val, None)
    assert chosen["dog"] == 0.3
    assert chosen["unsure"] == 0.75  # the floor for K=2: halfway from uniform (0.5) to 1
    with pytest.raises(ValueError, match="validation split is empty"):
        empty = (np.zeros((0, 2)), np.zeros(0), np.zeros(0, int))
        thresholds.choose({"dog_threshold": "auto", "unsure_threshold": 0.5}, empty, None)
