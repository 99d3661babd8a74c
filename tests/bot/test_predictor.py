"""The torch-free predictor on a real ONNX Runtime session (the tiny contract model)."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.imaging import BadImage
from bot.predictor import ModelError, Predictor, Thresholds, verdict
from tests.bot.tiny_model import LABELS, tiny_onnx, write_tiny_model


def png(color: tuple[int, int, int], size: tuple[int, int] = (60, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def tiny(tmp_path: Path) -> Predictor:
    return Predictor.load(write_tiny_model(tmp_path / "model"), threads=1)


def test_load_reads_the_contract(tiny: Predictor) -> None:
    assert [b.name for b in tiny.labels] == [x["name"] for x in LABELS]
    assert tiny.labels[1].wnid is None and tiny.labels[0].wnid == "n02100877"
    assert tiny.thresholds == Thresholds(dog=0.5, unsure=0.6)
    assert (tiny.size, tiny.resize) == (32, 36)
    assert len(tiny.version) == 12
    tiny.smoke_test()


@pytest.mark.parametrize(
    ("color", "breed", "expected"),
    [
        ((255, 0, 0), "red_setter", "dog"),
        ((0, 255, 0), "green_terrier", "dog"),
        ((0, 0, 255), "blue_heeler", "dog"),
        ((128, 128, 128), None, "unsure"),
        ((0, 0, 0), None, "not_a_dog"),
    ],
)
def test_predict_breed_and_verdict(
    tiny: Predictor, color: tuple[int, int, int], breed: str | None, expected: str
) -> None:
    pred = tiny.predict(png(color), top_k=2)
    assert pred.verdict == expected
    assert len(pred.breeds) == 2
    assert pred.breeds[0].probability >= pred.breeds[1].probability
    if breed:
        assert pred.breeds[0].breed == breed and pred.breeds[0].probability > 0.99
    assert pred.to_dict()["breeds"][0].keys() == {"breed", "display", "wnid", "probability"}


def test_verdict_thresholds() -> None:
    t = Thresholds(dog=0.4, unsure=0.5)
    assert verdict(top1=0.9, dog_probability=0.39, thresholds=t) == "not_a_dog"
    assert verdict(top1=0.49, dog_probability=0.4, thresholds=t) == "unsure"
    assert verdict(top1=0.5, dog_probability=0.4, thresholds=t) == "dog"


def test_thresholds_come_from_model_json(tmp_path: Path) -> None:
    strict = write_tiny_model(tmp_path / "m", thresholds={"dog": 0.99999999, "unsure": 0.1})
    assert Predictor.load(strict).predict(png((255, 0, 0))).verdict == "not_a_dog"


def test_run_shapes_and_top_k_bounds(tiny: Predictor) -> None:
    probs, dog = tiny.run(np.zeros((5, 32, 32, 3), np.uint8))
    assert probs.shape == (5, 3) and dog.shape == (5,)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert len(tiny.predict(png((255, 0, 0)), top_k=10).breeds) == 3


def test_predict_many_keeps_order_and_reports_bad_files(tiny: Predictor, tmp_path: Path) -> None:
    sources = [png((255, 0, 0)), b"", b"not an image", tmp_path / "missing.jpg", png((0, 0, 255))]
    out = list(tiny.predict_many(sources, batch_size=2))
    assert out[0].breeds[0].breed == "red_setter"
    assert [e.reason for e in out[1:4]] == ["empty", "not_an_image", "not_found"]
    assert all(isinstance(e, BadImage) for e in out[1:4])
    assert out[4].breeds[0].breed == "blue_heeler"


def test_one_session_serves_many_threads(tiny: Predictor) -> None:
    photos = {c: png(c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]}
    expected = {c: tiny.predict(p).breeds[0].breed for c, p in photos.items()}
    errors: list[str] = []

    def worker(color: tuple[int, int, int]) -> None:
        for _ in range(20):
            got = tiny.predict(photos[color]).breeds[0].breed
            if got != expected[color]:
                errors.append(f"{color}: {got}")

    threads = [threading.Thread(target=worker, args=(c,)) for c in photos for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _edit_meta(model_dir: Path, **changes: object) -> None:
    path = model_dir / "model.json"
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    path.write_text(json.dumps(meta))


def test_missing_key_is_named(tmp_path: Path) -> None:
    model_dir = write_tiny_model(tmp_path / "m")
    _edit_meta(model_dir, thresholds=None)
    with pytest.raises(ModelError, match="missing key.*thresholds"):
        Predictor.load(model_dir)


def test_label_count_must_match_the_onnx_output(tmp_path: Path) -> None:
    model_dir = write_tiny_model(tmp_path / "m")
    _edit_meta(model_dir, labels=LABELS[:2])
    with pytest.raises(ModelError, match="2 labels but the ONNX output 'breeds' has 3"):
        Predictor.load(model_dir)


def test_onnx_and_json_from_different_exports_are_refused(tmp_path: Path) -> None:
    model_dir = write_tiny_model(tmp_path / "m")
    (model_dir / "model.onnx").write_bytes(tiny_onnx(3, size=16))
    with pytest.raises(ModelError, match="does not match model.onnx"):
        Predictor.load(model_dir)


def test_missing_files_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model.json does not exist"):
        Predictor.load(tmp_path)
    model_dir = write_tiny_model(tmp_path / "m")
    (model_dir / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        Predictor.load(model_dir)


@pytest.mark.slow
def test_the_real_baseline_model(baseline_model_dir: Path, imagewoof_small: Path) -> None:
    predictor = Predictor.load(baseline_model_dir, threads=2)
    predictor.smoke_test()
    assert len(predictor.labels) == 120 and (predictor.size, predictor.resize) == (224, 256)
    beagles = sorted((imagewoof_small / "Images").glob("n02088364-beagle/*.JPEG"))
    top3 = [
        {b.breed for b in p.breeds}
        for p in predictor.predict_many(beagles, top_k=3)
        if not isinstance(p, BadImage)
    ]
    assert len(top3) == len(beagles)
    assert sum("beagle" in t for t in top3) >= 0.75 * len(top3)
