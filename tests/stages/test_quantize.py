"""The optional int8 export: a quantised graph that keeps the contract and the float answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from bot.imaging import load_for_model
from bot.predictor import Predictor
from stages.export import file_sha256
from stages.manifest import read_manifest
from stages.quantize import check_mode, quantize_int8
from tests.stages.training import cache_features, check_model_dir, shrunk_params


def op_types(model: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(model)).graph.node}


def test_train_exports_an_int8_model_when_asked(tiny_repo) -> None:
    from stages.train import run

    params = shrunk_params("head", tiny_repo / "not-dogs")
    params["export"].update(quantize="int8", calibration_photos=8)
    cache_features(tiny_repo)
    meta = run(params, tiny_repo / "models")
    model = tiny_repo / "models/model.onnx"
    assert "QLinearConv" in op_types(model) and "Conv" not in op_types(model)
    assert meta["version"] == file_sha256(model)[:12]  # model.json describes the int8 file
    check_model_dir(tiny_repo / "models")
    predictor = Predictor.load(tiny_repo / "models")
    pre = tiny_repo / "data/preprocessed"
    rows = read_manifest(pre)
    got = [predictor.predict(pre / r.path).breeds[0].breed for r in rows]
    # single-colour "breeds": the int8 model still tells them apart
    assert np.mean([g == r.breed for g, r in zip(got, rows, strict=True)]) >= 2 / 3


def test_unknown_mode_is_refused() -> None:
    assert check_mode("int8") == "int8"
    with pytest.raises(ValueError, match="none"):
        check_mode("int4")


def test_int8_needs_calibration_photos(tmp_path) -> None:
    with pytest.raises(ValueError, match="calibration"):
        quantize_int8(tmp_path / "model.onnx", np.zeros((0, 224, 224, 3), np.uint8))


@pytest.mark.slow
def test_int8_agrees_with_the_float_model_on_real_photos(trained_repo: Path, tmp_path) -> None:
    float_dir = trained_repo / "models"
    int8_dir = tmp_path / "int8"
    int8_dir.mkdir()
    shutil.copy(float_dir / "model.onnx", int8_dir / "model.onnx")
    pre = trained_repo / "data/preprocessed"
    rows = read_manifest(pre)
    crops = {r.hash: load_for_model(pre / r.path, 256, 224) for r in rows}
    train = [crops[r.hash] for r in rows if r.split == "train"][:32]
    quantize_int8(int8_dir / "model.onnx", np.stack(train))
    meta = json.loads((float_dir / "model.json").read_text())
    meta["version"] = file_sha256(int8_dir / "model.onnx")[:12]
    (int8_dir / "model.json").write_text(json.dumps(meta))

    held_out = np.stack([crops[r.hash] for r in rows if r.split != "train"])
    want, want_dog = Predictor.load(float_dir).run(held_out)
    got, got_dog = Predictor.load(int8_dir).run(held_out)
    agreement = float(np.mean(want.argmax(1) == got.argmax(1)))
    assert agreement >= 0.95, agreement
    assert np.abs(got_dog - want_dog).mean() < 0.05
    size = (int8_dir / "model.onnx").stat().st_size
    assert size < 0.4 * (float_dir / "model.onnx").stat().st_size
