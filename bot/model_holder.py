"""One shared model for the whole bot, swapped only for a model that loaded and answered."""

from __future__ import annotations

import asyncio
import io
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bot.predictor import Prediction, Predictor

logger = logging.getLogger(__name__)


class ReloadError(RuntimeError):
    """A new model failed to load or to pass the smoke prediction; the old one stays."""


def smoke_photo() -> bytes:
    """A small synthetic JPEG every model must be able to answer."""
    ramp = np.linspace(0, 255, 320, dtype=np.uint8)
    pixels = np.stack([np.tile(ramp, (240, 1))] * 3, axis=-1)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="JPEG")
    return out.getvalue()


def load_checked(model_dir: Path) -> Predictor:
    """Load a model and make one prediction with it; raise `ReloadError` if either fails."""
    try:
        # One ONNX thread per call: the holder's pool runs several photos side by side instead.
        predictor = Predictor.load(model_dir, threads=1)
        predictor.smoke_test()
        prediction = predictor.predict(smoke_photo(), top_k=3)
    except Exception as exc:  # any failure of a new model must leave the old one serving
        raise ReloadError(f"model in {model_dir} did not load: {exc}") from exc
    probabilities = [score.probability for score in prediction.breeds]
    if not probabilities or not all(math.isfinite(p) for p in probabilities):
        raise ReloadError(f"model in {model_dir} gave no usable prediction: {probabilities}")
    if not math.isfinite(prediction.dog_probability):
        raise ReloadError(f"model in {model_dir} gave no usable dog probability")
    return predictor


class ModelHolder:
    """The predictor in use; inference runs in a small thread pool, off the event loop."""

    def __init__(
        self, predictor: Predictor, model_dir: Path, threads: int = 2, max_pixels: int = 60_000_000
    ) -> None:
        self.predictor = predictor
        self.model_dir = model_dir
        self.max_pixels = max_pixels
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="infer")
        self._reload_lock = asyncio.Lock()

    @classmethod
    def load(cls, model_dir: Path, threads: int = 2, max_pixels: int = 60_000_000) -> ModelHolder:
        """Load the first model (a failure here stops the bot: there is nothing to serve)."""
        return cls(load_checked(model_dir), model_dir, threads, max_pixels)

    async def predict(self, photo: bytes, top_k: int = 3) -> tuple[Prediction, Predictor]:
        """Predict in the pool; returns the predictor used too (its version goes in sidecars)."""
        predictor = self.predictor
        loop = asyncio.get_running_loop()

        def work() -> Prediction:
            pixels = predictor.pixels(photo, max_pixels=self.max_pixels)  # raises BadImage
            return predictor.predict_arrays(pixels, top_k)[0]

        return await loop.run_in_executor(self._executor, work), predictor

    async def reload(self, model_dir: Path | None = None) -> Predictor:
        """Load `model_dir` (default: the current one) in a thread; swap only if it works."""
        async with self._reload_lock:
            target = model_dir or self.model_dir
            predictor = await asyncio.to_thread(load_checked, target)
            old = self.predictor.version
            self.predictor, self.model_dir = predictor, target
            logger.info("model reloaded: %s -> %s from %s", old, predictor.version, target)
            return predictor

    def close(self) -> None:
        """Stop the inference threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
