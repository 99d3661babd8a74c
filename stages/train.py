"""Stage `train`: fit the breed classifier with Lightning, export the best checkpoint to ONNX.

head mode: frozen backbone, the breed layer trains on cached features (data/features) in
seconds. finetune mode: the whole network trains on augmented photos (meant for a GPU).
Either way the best checkpoint (early-stopping monitor) becomes models/model.onnx + model.json,
with "auto" thresholds chosen on the validation split (see stages/thresholds.py).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch import nn

from stages import quantize, thresholds
from stages.backbone import Backbone, BreedNet, load_backbone, make_head
from stages.datamodule import FeatureDataModule, PhotoDataModule
from stages.export import export_onnx, imagenet_dogs, write_model_json
from stages.features import FeatureSpec, load_cache, load_pixels, negative_photos
from stages.lit_module import BreedModule
from stages.manifest import read_labels, read_manifest
from stages.neptune_logger import finish_tracking, training_logger
from stages.transforms import make_transform

log = logging.getLogger(__name__)

PREPROCESSED = Path("data/preprocessed")
FEATURES = Path("data/features")
MODELS = Path("models")


def make_loggers(params: dict[str, Any], n_breeds: int = 0) -> list:
    """Every Lightning logger of a training run: DVCLive, and Neptune (offline without a token)."""
    from dvclive.lightning import DVCLiveLogger

    # dvc.yaml already declares dvclive/metrics.json and dvclive/plots; dvclive must not edit it.
    dvclive = DVCLiveLogger(dir="dvclive", dvcyaml=None, save_dvc_exp=False, report=None)
    return [dvclive, training_logger(params, n_breeds)]


def logger_run_id(loggers: list) -> str | None:
    """The id of the first logger that exposes `neptune_run_id` (recorded in model.json)."""
    return next((lg.neptune_run_id for lg in loggers if getattr(lg, "neptune_run_id", None)), None)


def build_module(train: dict[str, Any], labels: list[dict], backbone: Backbone) -> BreedModule:
    """The LightningModule of `train.mode`, its breed layer warm-started where wnids are known."""
    imagenet = {row.wnid: row.index for row in imagenet_dogs()}
    head = make_head(backbone, [b["wnid"] for b in labels], imagenet, train["warm_start"])
    if train["mode"] == "head":
        net: nn.Module = head
    elif train["mode"] == "finetune":
        net = BreedNet(backbone, head).train()  # batch norm statistics adapt too
        backbone.classifier.requires_grad_(False)  # the ImageNet layer only feeds `dog`
    else:
        raise ValueError(f"unknown train.mode {train['mode']!r}: head | finetune")
    return BreedModule(
        net,
        optimizer=train["optimizer"],
        lr=train["lr"],
        weight_decay=train["weight_decay"],
        label_smoothing=train["label_smoothing"],
    )


def build_datamodule(train: dict[str, Any], spec: FeatureSpec) -> L.LightningDataModule:
    """Cached features (head) or augmented photos (finetune)."""
    if train["mode"] == "head":
        return FeatureDataModule(
            PREPROCESSED, load_cache(spec.path(FEATURES)), train["batch_size"], train["seed"]
        )
    augment = dict(train["augment"])
    return PhotoDataModule(
        PREPROCESSED,
        make_transform(train["image_size"], train["resize"], train=True, **augment),
        make_transform(train["image_size"], train["resize"]),
        train["batch_size"],
        train["num_workers"],
        train["seed"],
    )


def export_net(module: BreedModule, backbone: Backbone) -> BreedNet:
    """The pixels-in network of a trained module (head mode adds the frozen backbone)."""
    net = module.net if isinstance(module.net, BreedNet) else BreedNet(backbone, module.net)
    return net.eval()


def load_checkpoint(module: BreedModule, path: Path) -> BreedModule:
    """Load a Lightning checkpoint's weights into `module` (built the same way), on the CPU."""
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    module.cpu().load_state_dict(state)
    return module.eval()


@torch.no_grad()
def score(net: BreedNet, batches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(breed probabilities, dog probability, labels) over (inputs, labels) batches.

    Inputs are pixels, or pooled features when `net` is used with a frozen backbone (head mode).
    """
    from stages.export import DOG_CLASSES

    probs, dogs, ys = [], [], []
    for x, y in batches:
        if x.dtype == torch.uint8:
            breed_logits, imagenet_logits = net(x)
        else:
            breed_logits, imagenet_logits = net.head(x), net.backbone.classifier(x)
        probs.append(torch.softmax(breed_logits, 1).numpy())
        dogs.append(torch.softmax(imagenet_logits, 1)[:, list(DOG_CLASSES)].sum(1).numpy())
        ys.append(y.numpy())
    return np.concatenate(probs), np.concatenate(dogs), np.concatenate(ys)


def split_metrics(probs: np.ndarray, y: np.ndarray, split: str) -> dict[str, float]:
    """top-1 / top-3 accuracy of one split."""
    top = np.argsort(-probs, axis=1)[:, :3]
    return {
        f"{split}_top1": float((top[:, 0] == y).mean()),
        f"{split}_top3": float((top == y[:, None]).any(axis=1).mean()),
        f"{split}_n": int(len(y)),
    }


def negatives_scores(
    net: BreedNet, params: dict, spec: FeatureSpec, mode: str
) -> np.ndarray | None:
    """Dog probability of the evaluate.negatives photos (None when not set)."""
    folder = params.get("evaluate", {}).get("negatives")
    if not folder:
        return None
    if mode == "head":
        cache = load_cache(spec.path(FEATURES, negatives=True))
        x = torch.from_numpy(np.stack(list(cache.values())).astype(np.float32)) if cache else None
    else:
        pixels = [load_pixels(p, spec) for _, p in negative_photos(Path(folder))]
        x = torch.from_numpy(np.stack([px for px in pixels if px is not None]))
    if x is None:
        return None
    return score(net, [(x[i : i + 256], torch.zeros(0)) for i in range(0, len(x), 256)])[1]


def calibration_pixels(spec: FeatureSpec, count: int) -> np.ndarray:
    """Centre crops of `count` train-split photos (lowest hashes: the same on every run)."""
    train_rows = (r for r in read_manifest(PREPROCESSED) if r.split == "train")
    rows = sorted(train_rows, key=lambda r: r.hash)
    pixels = (load_pixels(PREPROCESSED / r.path, spec) for r in rows[:count])
    return np.stack([px for px in pixels if px is not None])


def make_trainer(train: dict[str, Any], loggers: list, checkpoints: Path) -> L.Trainer:
    """A Trainer from `train.trainer`, with early stopping and best-checkpoint saving."""
    stop = train["early_stopping"]
    checkpoint = ModelCheckpoint(
        dirpath=checkpoints,
        filename="best",
        monitor=stop["monitor"],
        mode=stop["mode"],
        save_top_k=1,
        auto_insert_metric_name=False,
    )
    on_cpu = train["trainer"]["accelerator"] == "cpu"
    return L.Trainer(
        **train["trainer"],
        max_epochs=train["max_epochs"],
        logger=loggers,
        callbacks=[
            EarlyStopping(stop["monitor"], mode=stop["mode"], patience=stop["patience"]),
            checkpoint,
        ],
        deterministic=True if on_cpu else "warn",
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )


def run(params: dict[str, Any], out: Path = MODELS) -> dict[str, Any]:
    """Train, export the best checkpoint to `out`; returns model.json's content."""
    train, export = params["train"], params["export"]
    quantization = quantize.check_mode(export.get("quantize", "none"))
    L.seed_everything(train["seed"], workers=True)
    labels = read_labels(PREPROCESSED)
    spec = FeatureSpec(train["backbone"], train["resize"], train["image_size"])
    backbone = load_backbone(train["backbone"], train["image_size"])
    module = build_module(train, labels, backbone)
    data = build_datamodule(train, spec)
    checkpoints = out / "checkpoints"
    shutil.rmtree(checkpoints, ignore_errors=True)
    loggers = make_loggers(params, len(labels))
    trainer = make_trainer(train, loggers, checkpoints)
    started = time.perf_counter()
    trainer.fit(module, datamodule=data)
    log.info("fit: %d epochs in %.1f s", trainer.current_epoch, time.perf_counter() - started)
    best = Path(trainer.checkpoint_callback.best_model_path)
    monitor = train["early_stopping"]["monitor"]
    log.info(
        "best checkpoint %s (%s=%.4f)", best, monitor, trainer.checkpoint_callback.best_model_score
    )
    net = export_net(load_checkpoint(module, best), backbone)
    val = score(net, data.val_dataloader())
    test_probs, _, test_y = score(net, data.test_dataloader())
    metrics = split_metrics(val[0], val[2], "val") | split_metrics(test_probs, test_y, "test")
    metrics["best_epoch"] = int(torch.load(best, weights_only=False)["epoch"])
    metrics["best_" + monitor.replace("/", "_")] = float(
        trainer.checkpoint_callback.best_model_score
    )
    chosen = thresholds.choose(export, val, negatives_scores(net, params, spec, train["mode"]))
    export_onnx(net, out / "model.onnx", train["image_size"])
    if quantization == "int8":
        calibration = calibration_pixels(spec, export.get("calibration_photos", 64))
        quantize.quantize_int8(out / "model.onnx", calibration)
    meta = write_model_json(
        out,
        name="breed-classifier",
        backbone=train["backbone"],
        image_size=train["image_size"],
        resize=train["resize"],
        labels=labels,
        thresholds=chosen,
        metrics=metrics,
        params={"train": train, "export": export},
        neptune_run_id=logger_run_id(loggers),
    )
    finish_tracking(loggers, out / "model.json")  # model card into the Neptune run, then close
    return meta


def main() -> None:
    """`python -m stages.train`: reads params.yaml `train` and `export`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = yaml.safe_load(Path("params.yaml").read_text())
    meta = run(params)
    log.info("model %s: %s, thresholds %s", meta["version"], meta["metrics"], meta["thresholds"])


if __name__ == "__main__":
    main()
