"""Stage `evaluate`: the exported ONNX model (what the bot serves) on the test split.

Photos are cropped by `bot.imaging.center_crop` with the sizes in model.json, through the same
`Predictor` the bot uses. Writes eval/metrics.json, eval/plots/confusion.json (rows for DVC's
confusion template) and eval/plots/per_breed.csv. With `evaluate.negatives` (a folder of
non-dog photos) it also measures the dog output: AUROC of dogs vs non-dogs, and how many of
each are rejected at the model's dog threshold.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from bot.predict import expand
from bot.predictor import Predictor
from stages import metrics
from stages.neptune_eval import log_evaluation, open_evaluation

log = logging.getLogger(__name__)
ECE_BINS = 15


@dataclass
class Scores:
    """Model outputs for a set of photos (rows of photos that could not be read are dropped)."""

    probs: np.ndarray  # [N, K]
    dog: np.ndarray  # [N]
    kept: np.ndarray  # [N] indices into the input list


def score(predictor: Predictor, paths: Sequence[Path], batch_size: int, desc: str) -> Scores:
    """Run the model on `paths` in batches with a progress bar; unreadable photos are logged."""
    probs, dog, kept = [], [], []
    with tqdm(total=len(paths), desc=desc, unit="photo") as bar:
        for start in range(0, len(paths), batch_size):
            loaded = predictor.load_many(paths[start : start + batch_size])
            good = [i for i, x in enumerate(loaded) if isinstance(x, np.ndarray)]
            for i, x in enumerate(loaded):
                if not isinstance(x, np.ndarray):
                    log.warning("skipping %s: %s", paths[start + i], x)
            if good:
                p, d = predictor.run(np.stack([loaded[i] for i in good]))
                probs.append(p)
                dog.append(d)
                kept.extend(start + i for i in good)
            bar.update(len(loaded))
    k = len(predictor.labels)
    return Scores(
        probs=np.concatenate(probs) if probs else np.zeros((0, k), np.float32),
        dog=np.concatenate(dog) if dog else np.zeros(0, np.float32),
        kept=np.asarray(kept, dtype=int),
    )


def read_test_split(manifest: Path, names: list[str]) -> tuple[list[Path], np.ndarray]:
    """Test photos of the manifest and their class ids in the model's label order."""
    index = {name: i for i, name in enumerate(names)}
    paths, labels = [], []
    with manifest.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] != "test":
                continue
            if row["breed"] not in index:
                raise ValueError(f"{manifest}: test breed {row['breed']!r} is not a model label")
            paths.append(manifest.parent / row["path"])
            labels.append(index[row["breed"]])
    return paths, np.asarray(labels, dtype=int)


def evaluate(
    predictor: Predictor, manifest: Path, negatives: Path | None, batch_size: int
) -> tuple[dict, list[dict], list[tuple[str, float]]]:
    """Metrics, confusion rows and per-breed accuracy of `predictor` on the test split."""
    names = [b.name for b in predictor.labels]
    paths, y_all = read_test_split(manifest, names)
    if not paths:
        raise ValueError(f"{manifest}: no test photos")
    dogs = score(predictor, paths, batch_size, "test")
    y = y_all[dogs.kept]
    pred = dogs.probs.argmax(axis=1)
    classes = np.unique(y)
    per_class = metrics.per_class_accuracy(y, pred, classes)
    per_breed = [(names[c], acc) for c, acc in sorted(per_class.items(), key=lambda x: names[x[0]])]
    threshold = predictor.thresholds.dog
    result: dict = {
        "n_test": len(y),
        "n_unreadable": len(paths) - len(y),
        "top1": metrics.top_k_accuracy(dogs.probs, y, 1),
        "top3": metrics.top_k_accuracy(dogs.probs, y, 3),
        "macro_f1": metrics.macro_f1(y, pred, classes),
        "ece": metrics.expected_calibration_error(dogs.probs, y, ECE_BINS),
        "dogs_rejected": float((dogs.dog < threshold).mean()),
        "dogs_unsure": float(
            (
                (dogs.dog >= threshold) & (dogs.probs.max(axis=1) < predictor.thresholds.unsure)
            ).mean()
        ),
    }
    if negatives is not None:
        neg = score(predictor, list(expand([str(negatives)])), batch_size, "negatives")
        if len(neg.dog):
            result |= {
                "n_negatives": len(neg.dog),
                "not_a_dog_auroc": metrics.auroc(dogs.dog, neg.dog),
                "negatives_rejected": float((neg.dog < threshold).mean()),
            }
        else:
            log.warning("no readable photos in %s: no not-a-dog metrics", negatives)
    result |= {
        "thresholds": {"dog": threshold, "unsure": predictor.thresholds.unsure},
        "model": {"name": predictor.name, "version": predictor.version},
        "per_breed": dict(per_breed),
    }
    confusion = [{"actual": names[a], "predicted": names[p]} for a, p in zip(y, pred, strict=True)]
    return result, confusion, per_breed


def write_outputs(
    out: Path, result: dict, confusion: list[dict], per_breed: list[tuple[str, float]]
) -> None:
    """eval/metrics.json, eval/plots/confusion.json and eval/plots/per_breed.csv."""
    (out / "plots").mkdir(parents=True, exist_ok=True)
    # NaN (e.g. no readable photos of a kind) is not JSON: write null instead.
    clean = json.loads(json.dumps(result), parse_constant=lambda _: None)
    (out / "metrics.json").write_text(json.dumps(clean, indent=2) + "\n")
    (out / "plots" / "confusion.json").write_text(json.dumps(confusion, indent=1) + "\n")
    with (out / "plots" / "per_breed.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["breed", "accuracy"])
        writer.writerows((breed, f"{acc:.4f}") for breed, acc in per_breed)


def main(argv: Sequence[str] | None = None) -> None:
    """Evaluate models/ on data/preprocessed's test split (paths overridable for tests)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--model", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=Path("data/preprocessed"))
    parser.add_argument("--out", type=Path, default=Path("eval"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = yaml.safe_load(args.params.read_text())["evaluate"]
    negatives = Path(params["negatives"]) if params.get("negatives") else None
    if negatives is not None and not negatives.is_dir():
        raise SystemExit(f"evaluate.negatives: {negatives} is not a folder")
    predictor = Predictor.load(args.model)
    result, confusion, per_breed = evaluate(
        predictor, args.data / "manifest.csv", negatives, int(params["batch_size"])
    )
    run, result["neptune_run_id"] = open_evaluation(args.model)  # the model's Neptune run
    write_outputs(args.out, result, confusion, per_breed)
    log_evaluation(run, args.model, result, args.out / "plots")
    summary = {k: v for k, v in result.items() if isinstance(v, float | int)}
    log.info("%s", " ".join(f"{k}={v:.4g}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
