"""Feature cache: ONNX Runtime features, keyed by content hash, computed only once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bot.imaging import load_for_model
from stages.backbone import Normalize, load_backbone
from stages.features import FeatureSpec, load_cache, negative_photos, update
from tests.stages.tiny_dataset import COLOURS, make_preprocessed, photo_bytes

SPEC = FeatureSpec("efficientnet-lite0", 256, 224)


def test_cache_path_encodes_backbone_and_sizes(tmp_path) -> None:
    assert SPEC.path(tmp_path).name == "efficientnet-lite0-256-224.npz"
    assert SPEC.path(tmp_path, negatives=True).name == "negatives-efficientnet-lite0-256-224.npz"


def test_features_are_incremental_and_match_torch(tmp_path) -> None:
    from stages.manifest import read_manifest

    root = make_preprocessed(tmp_path / "pre", splits=["train", "val"])
    rows = read_manifest(root)
    items = [(r.hash, root / r.path) for r in rows]
    cache_path = SPEC.path(tmp_path / "features")
    assert update(cache_path, items[:4], SPEC, threads=1, batch_size=3) == 4
    assert update(cache_path, items, SPEC, threads=1, batch_size=3) == len(items) - 4
    assert update(cache_path, items, SPEC, threads=1, batch_size=3) == 0  # nothing new
    cache = load_cache(cache_path)
    assert set(cache) == {h for h, _ in items}
    first = cache[items[0][0]]
    assert first.dtype == np.float16 and first.shape == (1280,)
    # the cached features are the backbone's pooled features of the centre crop
    pixels = torch.from_numpy(load_for_model(items[0][1], 256, 224).copy())[None]
    with torch.no_grad():
        want = load_backbone("efficientnet-lite0", 224)(Normalize()(pixels))[0].numpy()
    np.testing.assert_allclose(first.astype(np.float32), want, atol=2e-2, rtol=1e-2)


def test_changed_preprocessing_recomputes_and_gone_photos_are_dropped(tmp_path) -> None:
    root = make_preprocessed(tmp_path / "pre", splits=["train", "val"])
    from stages.manifest import read_manifest

    items = [(r.hash, root / r.path) for r in read_manifest(root)]
    cache_path = SPEC.path(tmp_path / "features")
    assert update(cache_path, items, SPEC, threads=1, batch_size=8, stamp="side=256") == len(items)
    assert update(cache_path, items, SPEC, threads=1, batch_size=8, stamp="side=256") == 0
    # other preprocessing settings: nothing cached is trusted
    assert update(cache_path, items, SPEC, threads=1, batch_size=8, stamp="side=300") == len(items)
    # a photo leaves the data: its features leave the cache, nothing is recomputed
    assert update(cache_path, items[1:], SPEC, threads=1, batch_size=8, stamp="side=300") == 0
    assert set(load_cache(cache_path, "side=300")) == {h for h, _ in items[1:]}
    assert load_cache(cache_path, "side=256") == {}


def test_bad_photos_are_skipped_and_negatives_hashed(tmp_path) -> None:
    folder = tmp_path / "not-dogs"
    folder.mkdir()
    (folder / "a.JPEG").write_bytes(photo_bytes(COLOURS[0], seed=1))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("ignored")
    items = negative_photos(folder)
    assert [p.name for _, p in items] == ["a.JPEG", "broken.jpg"]
    assert all(len(h) == 16 for h, _ in items)
    cache_path = tmp_path / "neg.npz"
    update(cache_path, items, SPEC, threads=1, batch_size=8)
    assert list(load_cache(cache_path)) == [items[0][0]]


@pytest.mark.parametrize("mode", ["head"])
def test_main_writes_both_caches(tmp_path, monkeypatch, mode) -> None:
    import yaml

    from stages import features

    monkeypatch.chdir(tmp_path)
    make_preprocessed(tmp_path / "data/preprocessed", splits=["train"])
    negatives = tmp_path / "negatives"
    negatives.mkdir()
    (negatives / "x.jpg").write_bytes(photo_bytes(COLOURS[2], seed=7))
    params = {
        "train": {"mode": mode, "backbone": "efficientnet-lite0", "image_size": 224, "resize": 256},
        "features": {"batch_size": 8, "threads": 1},
        "evaluate": {"negatives": str(negatives)},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    features.main()
    assert len(load_cache(tmp_path / SPEC.path())) == 3
    assert len(load_cache(tmp_path / SPEC.path(negatives=True))) == 1
