"""The torch-free predictor: an exported ONNX model plus its model.json, nothing else.

One `InferenceSession` per loaded model; ONNX Runtime's `run` is thread-safe, so one `Predictor`
serves many threads. Photos go through `bot.imaging` (safe decoding and the one centre-crop
preprocessing shared with evaluation).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bot.breeds import Breed
from bot.imaging import DEFAULT_MAX_PIXELS, BadImage, Source, center_crop, decode

log = logging.getLogger(__name__)

VERDICTS = ("dog", "not_a_dog", "unsure")
_REQUIRED = ("format", "version", "input", "outputs", "labels", "thresholds")


class ModelError(ValueError):
    """A model directory that cannot be served (missing file, bad model.json, mismatch)."""


@dataclass(frozen=True)
class BreedScore:
    """One breed and its probability."""

    breed: str
    display: str
    wnid: str | None
    probability: float


@dataclass(frozen=True)
class Prediction:
    """The answer for one photo."""

    breeds: list[BreedScore]
    dog_probability: float
    verdict: str

    def to_dict(self) -> dict:
        """The JSON shape of `python -m bot.predict --json` (without the path)."""
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    """Below `dog`: not a dog; top breed below `unsure`: not sure."""

    dog: float
    unsure: float


def verdict(top1: float, dog_probability: float, thresholds: Thresholds) -> str:
    """`not_a_dog` below the dog threshold, else `unsure` below the unsure threshold, else `dog`."""
    if dog_probability < thresholds.dog:
        return "not_a_dog"
    if top1 < thresholds.unsure:
        return "unsure"
    return "dog"


def _check_meta(meta: dict, where: Path) -> None:
    missing = [key for key in _REQUIRED if key not in meta]
    missing += [f"input.{k}" for k in ("name", "size", "resize") if k not in meta.get("input", {})]
    missing += [f"outputs.{k}" for k in ("breeds", "dog") if k not in meta.get("outputs", {})]
    missing += [f"thresholds.{k}" for k in ("dog", "unsure") if k not in meta.get("thresholds", {})]
    if missing:
        raise ModelError(f"{where}: missing key(s) {', '.join(missing)}")
    if meta["format"] != 1:
        raise ModelError(f"{where}: unsupported format {meta['format']!r} (expected 1)")
    if not meta["labels"]:
        raise ModelError(f"{where}: no labels")
    for i, label in enumerate(meta["labels"]):
        if "name" not in label:
            raise ModelError(f"{where}: labels[{i}] has no name")


class Predictor:
    """An ONNX breed classifier loaded from a model directory (model.onnx + model.json)."""

    def __init__(self, session: ort.InferenceSession, meta: dict, model_dir: Path) -> None:
        self.session = session
        self.meta = meta
        self.model_dir = model_dir
        self.version: str = meta["version"]
        self.name: str = meta.get("name", "model")
        self.labels = [
            Breed(name=x["name"], display=x.get("display") or x["name"], wnid=x.get("wnid") or None)
            for x in meta["labels"]
        ]
        self.thresholds = Thresholds(
            dog=float(meta["thresholds"]["dog"]), unsure=float(meta["thresholds"]["unsure"])
        )
        self.size = int(meta["input"]["size"])
        self.resize = int(meta["input"]["resize"])
        self.input_name: str = meta["input"]["name"]
        self.output_names = [meta["outputs"]["breeds"], meta["outputs"]["dog"]]

    @classmethod
    def load(cls, model_dir: str | Path, threads: int | None = None) -> Predictor:
        """Read model.json and model.onnx once; raise `ModelError` naming what is wrong."""
        model_dir = Path(model_dir)
        json_path, onnx_path = model_dir / "model.json", model_dir / "model.onnx"
        for path in (json_path, onnx_path):
            if not path.is_file():
                raise ModelError(f"{path} does not exist")
        try:
            meta = json.loads(json_path.read_text())
        except json.JSONDecodeError as exc:
            raise ModelError(f"{json_path}: not valid JSON ({exc})") from exc
        _check_meta(meta, json_path)
        model_bytes = onnx_path.read_bytes()
        digest = hashlib.sha256(model_bytes).hexdigest()[:12]
        if meta["version"] != digest:
            raise ModelError(
                f"{json_path}: version {meta['version']} does not match model.onnx ({digest}); "
                "the two files come from different exports"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types
            raise ModelError(f"{onnx_path}: ONNX Runtime cannot load it ({exc})") from exc
        predictor = cls(session, meta, model_dir)
        predictor._check_graph(json_path)
        log.info(
            "loaded %s %s (%d breeds) from %s",
            predictor.name,
            predictor.version,
            len(predictor.labels),
            model_dir,
        )
        return predictor

    def _check_graph(self, where: Path) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        if self.input_name not in inputs:
            raise ModelError(
                f"{where}: input {self.input_name!r} not in the ONNX inputs {list(inputs)}"
            )
        outputs = {o.name: o for o in self.session.get_outputs()}
        for name in self.output_names:
            if name not in outputs:
                raise ModelError(
                    f"{where}: output {name!r} not in the ONNX outputs {list(outputs)}"
                )
        k = outputs[self.output_names[0]].shape[-1]
        if isinstance(k, int) and k != len(self.labels):
            raise ModelError(
                f"{where}: {len(self.labels)} labels but the ONNX output "
                f"{self.output_names[0]!r} has {k} classes"
            )

    def run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [N, S, S, 3] pixels -> (breed probabilities [N, K], dog probability [N])."""
        if pixels.ndim == 3:
            pixels = pixels[None]
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        probs, dog = self.session.run(self.output_names, {self.input_name: pixels})
        return probs, dog.reshape(-1)

    def pixels(self, source: Source, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """Decode one photo and crop it as the model expects; raises `BadImage`."""
        try:
            img = decode(source, max_pixels=max_pixels, min_side=self.resize)
            return center_crop(img, self.resize, self.size)
        except BadImage:
            raise
        except FileNotFoundError as exc:
            raise BadImage("not_found", str(exc)) from exc
        except OSError as exc:
            raise BadImage("unreadable", str(exc)) from exc
        except Exception as exc:  # a broken file must never take the caller down
            raise BadImage("corrupt", f"{type(exc).__name__}: {exc}") from exc

    def load_many(
        self, sources: Sequence[Source], workers: int = 2, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> list[np.ndarray | BadImage]:
        """Decode photos in parallel (PIL releases the GIL); failures come back as `BadImage`."""

        def one(source: Source) -> np.ndarray | BadImage:
            try:
                return self.pixels(source, max_pixels)
            except BadImage as exc:
                return exc

        if workers <= 1 or len(sources) <= 1:
            return [one(s) for s in sources]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, sources))

    def to_predictions(
        self, probs: np.ndarray, dog: np.ndarray, top_k: int = 3
    ) -> list[Prediction]:
        """Model outputs -> one `Prediction` per row (top-k breeds and the verdict)."""
        top_k = max(1, min(top_k, probs.shape[1]))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
        predictions = []
        for row, best, dog_p in zip(probs, order, dog, strict=True):
            breeds = [
                BreedScore(
                    breed=self.labels[i].name,
                    display=self.labels[i].display,
                    wnid=self.labels[i].wnid,
                    probability=float(row[i]),
                )
                for i in best
            ]
            predictions.append(
                Prediction(
                    breeds=breeds,
                    dog_probability=float(dog_p),
                    verdict=verdict(breeds[0].probability, float(dog_p), self.thresholds),
                )
            )
        return predictions

    def predict_arrays(self, pixels: np.ndarray, top_k: int = 3) -> list[Prediction]:
        """Cropped uint8 pixels [N, S, S, 3] (or one [S, S, 3]) -> one `Prediction` each."""
        return self.to_predictions(*self.run(pixels), top_k=top_k)

    def predict(self, source: Source, top_k: int = 3) -> Prediction:
        """One photo (path, bytes or file object) -> `Prediction`; raises `BadImage`."""
        return self.predict_arrays(self.pixels(source), top_k)[0]

    def predict_many(
        self, sources: Iterable[Source], top_k: int = 3, batch_size: int = 32, workers: int = 2
    ) -> Iterator[Prediction | BadImage]:
        """Predict photos in batches, in order; a bad photo yields its `BadImage`, not a crash."""
        it = iter(sources)
        while chunk := list(islice(it, batch_size)):
            loaded = self.load_many(chunk, workers)
            good = [x for x in loaded if isinstance(x, np.ndarray)]
            predictions = iter(self.predict_arrays(np.stack(good), top_k) if good else [])
            for item in loaded:
                yield next(predictions) if isinstance(item, np.ndarray) else item

    def smoke_test(self) -> None:
        """Predict on synthetic photos; raise `ModelError` unless the outputs are sane."""
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (2, self.size, self.size, 3), dtype=np.uint8)
        try:
            probs, dog = self.run(pixels)
        except Exception as exc:
            raise ModelError(f"{self.model_dir}: inference failed ({exc})") from exc
        k = len(self.labels)
        if probs.shape != (2, k) or dog.shape != (2,):
            raise ModelError(
                f"{self.model_dir}: output shapes {probs.shape} and {dog.shape}, "
                f"expected (2, {k}) and (2,)"
            )
        if not (np.isfinite(probs).all() and np.isfinite(dog).all()):
            raise ModelError(f"{self.model_dir}: non-finite outputs")
        if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3) or (probs < 0).any():
            raise ModelError(f"{self.model_dir}: breed probabilities do not sum to 1")
        if ((dog < 0) | (dog > 1 + 1e-4)).any():
            raise ModelError(f"{self.model_dir}: dog probability outside [0, 1]")
