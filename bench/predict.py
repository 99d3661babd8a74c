"""Predict latency of one 1280x960 JPEG, end to end: ours (ONNX Runtime) vs the seed's path.

Ours: `bot.predictor.Predictor.predict(path)` = safe decode (JPEG draft at reduced scale) +
`center_crop` + the exported ONNX model. The seed's: the same EfficientNet-Lite0 network (the
baseline's weights and heads) traced to TorchScript, with eager torchvision transforms on the
fully decoded PIL image. Both on 2 threads, each in a process of its own, twice, alternating.
Writes a markdown table to stdout and bench/out/predict.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared/data/imagewoof/Images/n02088364-beagle/n02088364_10006.JPEG"
THREADS = 2
LIMIT_MS = 10.0
MIN_SPEEDUP = 3.0


def make_jpeg(out: Path, source: Path = PHOTO) -> Path:
    """A 1280x960 phone-sized JPEG made by upscaling a real ImageWoof photo."""
    img = Image.open(source).convert("RGB").resize((1280, 960), Image.Resampling.BICUBIC)
    img.save(out, "JPEG", quality=90)
    return out


def seed_path() -> Callable[[Path], np.ndarray]:
    """The seed's serving path: TorchScript network + torchvision transforms on the full image."""
    import torch
    from torch import nn
    from torchvision import transforms

    from stages.backbone import load_backbone
    from stages.baseline import baseline_labels, baseline_net
    from stages.export import DOG_CLASSES

    torch.set_num_threads(THREADS)
    net = baseline_net(load_backbone("efficientnet-lite0", 224), [i for i, _ in baseline_labels()])

    class Seed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("dogs", torch.tensor(DOG_CLASSES), persistent=False)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.net.backbone(x)
            imagenet = torch.softmax(self.net.backbone.classifier(features), dim=1)
            return torch.softmax(self.net.head(features), dim=1), imagenet[:, self.dogs].sum(1)

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # jit.trace is what the seed used
        traced = torch.jit.trace(Seed().eval(), torch.zeros(1, 3, 224, 224))
    preprocess = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )

    def predict(path: Path) -> np.ndarray:
        with torch.no_grad():
            x = preprocess(Image.open(path).convert("RGB")).unsqueeze(0)
            return traced(x)[0].numpy()

    return predict


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    """p50, p95 and the minimum in milliseconds (the minimum is the least load-sensitive)."""
    ms = np.asarray(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), float(ms.min())


def _timed(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(10):  # warm-up: allocators, caches, the TorchScript profiling runs
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def time_ours(model_dir: Path, jpeg: Path, n: int) -> tuple[dict[str, list[float]], str, str]:
    """Our path, in a process of its own (no torch loaded): whole, decode + crop, model."""
    from bot.predictor import Predictor

    predictor = Predictor.load(model_dir, threads=THREADS)
    pixels = predictor.pixels(jpeg)
    times = {
        "ours": _timed(lambda: predictor.predict(jpeg), n),
        "decode": _timed(lambda: predictor.pixels(jpeg), n),
        "model": _timed(lambda: predictor.run(pixels), n),
    }
    about = f"{predictor.name} {predictor.version}"
    return times, predictor.predict(jpeg).breeds[0].breed, about


def time_seed(model_dir: Path, jpeg: Path, n: int) -> tuple[list[float], str]:
    """The seed's path, in a process of its own, as the seed served it."""
    from bot.predictor import Predictor

    labels = Predictor.load(model_dir, threads=1).labels
    seed = seed_path()
    return _timed(lambda: seed(jpeg), n), labels[int(seed(jpeg).argmax())].name


def int8_copy(model_dir: Path, dest: Path, photos: int = 64) -> Path:
    """`model_dir` quantised as `export.quantize: int8` would (calibrated on ImageWoof photos)."""
    from bot.imaging import load_for_model
    from stages.export import file_sha256
    from stages.quantize import quantize_int8

    dest.mkdir(parents=True)
    shutil.copy(model_dir / "model.onnx", dest / "model.onnx")
    meta = json.loads((model_dir / "model.json").read_text())
    size, resize = meta["input"]["size"], meta["input"]["resize"]
    files = sorted(PHOTO.parents[1].glob("*/*.JPEG"))[:: max(1, 12000 // photos)][:photos]
    quantize_int8(dest / "model.onnx", np.stack([load_for_model(f, resize, size) for f in files]))
    meta["version"] = file_sha256(dest / "model.onnx")[:12]
    (dest / "model.json").write_text(json.dumps(meta))
    return dest


def run(model_dir: Path, n: int) -> str:
    """Time every path `n` times, each in a fresh process; return the markdown report.

    Separate processes, one after the other, so that no path's idle threads (OpenMP or ONNX
    Runtime spinning) steal another's cores; each path runs twice, alternating, so that load
    changes hit all alike.
    """
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {}
    tops: dict[str, str] = {}
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        jpeg = make_jpeg(Path(tmp) / "photo.jpg")
        int8_dir = int8_copy(model_dir, Path(tmp) / "int8")
        for _ in range(2):
            for suffix, directory in (("", model_dir), ("_int8", int8_dir)):
                with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    ours, top, about = pool.submit(time_ours, directory, jpeg, n // 2).result()
                for key, samples in ours.items():
                    times.setdefault(key + suffix, []).extend(samples)
                tops["ours" + suffix] = top
                if not suffix:
                    about_float = about
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                seed, tops["seed"] = pool.submit(time_seed, model_dir, jpeg, n // 2).result()
            times.setdefault("seed", []).extend(seed)
    load_after = os.getloadavg()[0]
    stats = {key: percentiles(samples) for key, samples in times.items()}
    p50, s50, q50 = stats["ours"][0], stats["seed"][0], stats["ours_int8"][0]
    speedup, speedup_int8 = s50 / p50, s50 / q50
    names = {
        "ours": "ours: ONNX Runtime + draft decode + center_crop",
        "decode": "&nbsp;&nbsp;of which decode + crop",
        "model": "&nbsp;&nbsp;of which model",
        "ours_int8": "ours with `export.quantize: int8`",
        "model_int8": "&nbsp;&nbsp;of which model (int8)",
        "seed": "seed: TorchScript + torchvision on the full image",
    }
    lines = [
        f"### Predict latency, one 1280x960 JPEG, end to end ({THREADS} threads, "
        f"n={len(times['ours'])} each)",
        "",
        "| path | p50 ms | p95 ms | min ms | top-1 |",
        "|---|---:|---:|---:|---|",
        *(
            f"| {label} | {stats[k][0]:.2f} | {stats[k][1]:.2f} | {stats[k][2]:.2f} "
            f"| {tops.get(k, '')} |"
            for k, label in names.items()
        ),
        "",
        f"- speed-up (p50): **{speedup:.1f}x** (target >= {MIN_SPEEDUP:.0f}x: "
        f"{'met' if speedup >= MIN_SPEEDUP else 'NOT met'}); ours p50 <= {LIMIT_MS:.0f} ms: "
        f"{'met' if p50 <= LIMIT_MS else 'NOT met'}; with int8: **{speedup_int8:.1f}x**, "
        f"p50 {q50:.2f} ms",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"1-min load average {load_before:.2f} before, {load_after:.2f} after"
        + (" (measured under load: rerun on an idle machine)" if load_before > 0.5 else ""),
        f"- model: {model_dir} ({about_float})",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.predict [--model DIR] [-n 200]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The seed's path rebuilds the baseline network, so the baseline is what both sides run.
    parser.add_argument("--model", type=Path, default=ROOT / "models/baseline")
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args(argv)
    report = run(args.model, args.n)
    out = ROOT / "bench/out/predict.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
