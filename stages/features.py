"""Stage `features`: pooled backbone features of every photo, computed once, with ONNX Runtime.

The cache `data/features/<backbone>-<resize>-<size>.npz` maps a photo's content hash to its
float16 features (centre-crop preprocessing). A run computes only the hashes it lacks, so a new
photo costs one forward pass and a re-run costs none. Non-dog photos (`evaluate.negatives`) get
their own file, used to choose the dog threshold.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from bot.imaging import IMAGE_SUFFIXES, PREPROCESSING_VERSION, BadImage, load_for_model
from stages.manifest import read_manifest
from stages.photos import file_id

log = logging.getLogger(__name__)

FEATURES_DIR = Path("data/features")
PREPROCESSED = Path("data/preprocessed")


@dataclass(frozen=True)
class FeatureSpec:
    """What the features depend on besides the photo: backbone and preprocessing sizes."""

    backbone: str
    resize: int
    size: int

    def path(self, root: Path = FEATURES_DIR, negatives: bool = False) -> Path:
        """The cache file of this spec (`negatives-` prefix for the non-dog photos)."""
        prefix = "negatives-" if negatives else ""
        return root / f"{prefix}{self.backbone}-{self.resize}-{self.size}.npz"


def fingerprint(stamp: str = "") -> str:
    """What else the features depend on: the preprocessing code's version and its settings."""
    return f"imaging-v{PREPROCESSING_VERSION}:{stamp}"


def preprocess_stamp(root: Path = PREPROCESSED) -> str:
    """The settings preprocess stored the photos with (shorter side, JPEG quality)."""
    stamp = root / "preprocess.json"
    return stamp.read_text().strip() if stamp.exists() else ""


def load_cache(path: Path, stamp: str | None = None) -> dict[str, np.ndarray]:
    """hash -> float16 features; with `stamp`, empty when made with other preprocessing."""
    if not path.exists():
        return {}
    with np.load(path) as data:
        stored = str(data["fingerprint"]) if "fingerprint" in data else ""
        if stamp is not None and stored != fingerprint(stamp):
            log.info("%s was made with other preprocessing: recomputing it", path)
            return {}
        return dict(zip(data["hashes"].tolist(), data["features"], strict=True))


def save_cache(path: Path, cache: dict[str, np.ndarray], stamp: str = "") -> None:
    """Write the cache atomically, sorted by hash (so identical content gives identical files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hashes = sorted(cache)
    features = np.stack([cache[h] for h in hashes]).astype(np.float16) if hashes else np.zeros(0)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temp.open("wb") as fh:
        np.savez(
            fh,
            hashes=np.array(hashes, dtype=str),
            features=features,
            fingerprint=np.array(fingerprint(stamp)),
        )
    os.replace(temp, path)


def feature_session(spec: FeatureSpec, threads: int):
    """An ONNX Runtime session of uint8 NHWC pixels -> pooled features (exported on the fly)."""
    import onnxruntime as ort
    from torch import nn

    from stages.backbone import Normalize, load_backbone
    from stages.export import save_onnx

    graph = nn.Sequential(Normalize(), load_backbone(spec.backbone, spec.size))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # no busy-waiting between runs: the decoding thread needs those cycles on a 2-core machine
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = save_onnx(graph, Path(tmp) / "features.onnx", spec.size, ["features"])
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def load_pixels(path: Path, spec: FeatureSpec) -> np.ndarray | None:
    """The centre crop the network sees, or None (logged) for a photo that cannot be read."""
    try:
        return load_for_model(path, spec.resize, spec.size)
    except (BadImage, OSError) as exc:
        log.warning("skipping %s: %s", path, exc)
        return None


def _batches(items: list[tuple[str, Path]], size: int) -> Iterator[list[tuple[str, Path]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def compute(
    items: list[tuple[str, Path]], spec: FeatureSpec, threads: int, batch_size: int, desc: str
) -> dict[str, np.ndarray]:
    """Features of (hash, photo) pairs; photos are decoded one batch ahead of the network."""
    if not items:
        return {}
    session = feature_session(spec, threads)
    out: dict[str, np.ndarray] = {}
    progress = tqdm(total=len(items), desc=desc, unit="photo", mininterval=2.0)
    with ThreadPoolExecutor(max_workers=1) as pool:

        def decode(batch: list[tuple[str, Path]]):
            return batch, [load_pixels(path, spec) for _, path in batch]

        batches = _batches(items, batch_size)
        pending = pool.submit(decode, next(batches))
        for following in [*batches, None]:
            batch, pixels = pending.result()
            if following is not None:
                pending = pool.submit(decode, following)
            keep = [(h, px) for (h, _), px in zip(batch, pixels, strict=True) if px is not None]
            if keep:
                (features,) = session.run(None, {"pixels": np.stack([px for _, px in keep])})
                out.update(
                    (h, f.astype(np.float16)) for (h, _), f in zip(keep, features, strict=True)
                )
            progress.update(len(batch))
    progress.close()
    return out


def update(
    path: Path,
    items: list[tuple[str, Path]],
    spec: FeatureSpec,
    threads: int,
    batch_size: int,
    stamp: str = "",
) -> int:
    """Compute the features `path` lacks and drop those of photos gone; returns how many new."""
    cache = load_cache(path, stamp)
    wanted = dict(items)
    missing = [(h, p) for h, p in wanted.items() if h not in cache]
    stale = len(cache.keys() - wanted.keys())
    log.info(
        "%s: %d cached, %d to compute, %d dropped",
        path,
        len(wanted) - len(missing),
        len(missing),
        stale,
    )
    if missing or stale or not path.exists():
        cache = {h: f for h, f in cache.items() if h in wanted}
        cache.update(compute(missing, spec, threads, batch_size, desc=path.stem))
        save_cache(path, cache, stamp)
    return len(missing)


def negative_photos(folder: Path) -> list[tuple[str, Path]]:
    """(content hash, path) of every image file under `folder`."""
    photos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [(file_id(p), p) for p in photos]


def main() -> None:
    """Compute the missing features of data/preprocessed and of evaluate.negatives."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = yaml.safe_load(Path("params.yaml").read_text())
    train, features = params["train"], params["features"]
    FEATURES_DIR.mkdir(parents=True, exist_ok=True)
    if train["mode"] != "head":
        log.info(
            "train.mode=%s: the backbone is trained, cached features are not used", train["mode"]
        )
        return
    spec = FeatureSpec(train["backbone"], train["resize"], train["image_size"])
    threads, batch = features["threads"], features["batch_size"]
    rows = read_manifest(PREPROCESSED)
    items = [(r.hash, PREPROCESSED / r.path) for r in rows]
    update(spec.path(), items, spec, threads, batch, stamp=preprocess_stamp())
    negatives = params.get("evaluate", {}).get("negatives")
    if negatives:
        items = negative_photos(Path(negatives))
        update(spec.path(negatives=True), items, spec, threads, batch)


if __name__ == "__main__":
    main()
