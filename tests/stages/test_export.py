"""The exported ONNX graph and model.json follow the contract in the brief."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from stages.backbone import BreedNet, load_backbone
from stages.export import DOG_CLASSES, ExportGraph, export_onnx, imagenet_dogs, write_model_json


def test_dog_classes_are_the_tsv_rows() -> None:
    rows = imagenet_dogs()
    assert sorted(r.index for r in rows) == list(DOG_CLASSES)
    assert len(DOG_CLASSES) == 121 and 251 in DOG_CLASSES
    assert not set(range(269, 273)) & set(DOG_CLASSES)  # wolves and foxes


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = BreedNet(load_backbone("efficientnet-lite0", 224), torch.nn.Linear(1280, 4)).eval()
    path = export_onnx(net, tmp_path_factory.mktemp("export") / "model.onnx", 224)
    return net, path


def test_graph_io_and_dynamic_batch(exported) -> None:
    net, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (pixels,) = session.get_inputs()
    assert (pixels.name, pixels.type, pixels.shape[1:]) == (
        "pixels",
        "tensor(uint8)",
        [224, 224, 3],
    )
    assert [o.name for o in session.get_outputs()] == ["breeds", "dog"]
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        x = rng.integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)
        breeds, dog = session.run(None, {"pixels": x})
        assert breeds.shape == (batch, 4) and dog.shape == (batch,)
        assert breeds.dtype == dog.dtype == np.float32
        np.testing.assert_allclose(breeds.sum(axis=1), 1.0, atol=1e-5)
        assert ((dog >= 0) & (dog <= 1)).all()
    with torch.no_grad():
        want_breeds, want_dog = ExportGraph(net).eval()(torch.from_numpy(x))
    np.testing.assert_allclose(breeds, want_breeds.numpy(), atol=1e-5)
    np.testing.assert_allclose(dog, want_dog.numpy(), atol=1e-5)


def test_model_json_contract(exported, tmp_path, monkeypatch) -> None:
    _, path = exported
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.onnx").write_bytes(path.read_bytes())
    labels = [{"name": f"b{i}", "display": f"B{i}", "wnid": None} for i in range(4)]
    meta = write_model_json(
        tmp_path,
        name="breed-classifier",
        backbone="efficientnet-lite0",
        image_size=224,
        resize=256,
        labels=labels,
        thresholds={"dog": 0.2, "unsure": 0.4},
        metrics={"val_top1": 0.9},
        params={"train": {"lr": 0.001}},
    )
    on_disk = json.loads((tmp_path / "model.json").read_text())
    assert on_disk == meta
    assert meta["format"] == 1 and len(meta["version"]) == 12
    assert meta["input"] == {
        "name": "pixels",
        "size": 224,
        "resize": 256,
        "dtype": "uint8",
        "layout": "NHWC",
    }
    assert meta["outputs"] == {"breeds": "breeds", "dog": "dog"}
    assert meta["thresholds"] == {"dog": 0.2, "unsure": 0.4}
    provenance = meta["provenance"]
    assert set(provenance) == {"data_version", "params", "git_commit", "created", "neptune_run_id"}
    assert provenance["data_version"] is None  # no dvc.lock, no manifest here


def test_data_version_prefers_dvc_lock(tmp_path, monkeypatch) -> None:
    from stages.export import data_version

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/preprocessed").mkdir(parents=True)
    (tmp_path / "data/preprocessed/manifest.csv").write_text("path,breed,wnid,split,hash\n")
    assert data_version().startswith("manifest-sha256:")
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  preprocess:\n    outs:\n    - path: data/preprocessed\n"
        "      md5: abc123.dir\n"
    )
    assert data_version() == "abc123.dir"
