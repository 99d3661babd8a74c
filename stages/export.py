"""The contract with the bot: a `BreedNet` as `model.onnx` plus the `model.json` that describes it.

Graph: uint8 NHWC `pixels` -> cast, NCHW, (x - 127) / 128 -> backbone -> `breeds` (softmax of the
breed head, label order) and `dog` (ImageNet softmax summed over the dog classes). Batch is dynamic.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import subprocess
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

log = logging.getLogger(__name__)

IMAGENET_DOGS_TSV = Path(__file__).with_name("imagenet_dogs.tsv")
# ImageNet dog classes: 151-268 (includes 251 dalmatian) and 273-275; 269-272 are wolves and foxes.
DOG_CLASSES = (*range(151, 269), *range(273, 276))
OPSET = 18
FORMAT = 1


@dataclass(frozen=True)
class ImagenetClass:
    """One row of stages/imagenet_dogs.tsv."""

    index: int
    wnid: str
    name: str


def imagenet_dogs(path: Path = IMAGENET_DOGS_TSV) -> list[ImagenetClass]:
    """The ImageNet dog classes (120 Stanford breeds + dalmatian), by class index."""
    with path.open(newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t")
        return [ImagenetClass(int(r["index"]), r["wnid"], r["name"]) for r in rows]


class ExportGraph(nn.Module):
    """BreedNet + the output heads of the contract: breed probabilities and dog probability."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("dog_classes", torch.tensor(DOG_CLASSES), persistent=False)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        breed_logits, imagenet_logits = self.net(pixels)
        breeds = torch.softmax(breed_logits, dim=1)
        dog = torch.softmax(imagenet_logits, dim=1).index_select(1, self.dog_classes).sum(dim=1)
        return breeds, dog


def save_onnx(graph: nn.Module, path: Path, image_size: int, outputs: list[str]) -> Path:
    """Export `graph` (uint8 NHWC `pixels` in, `outputs` with a leading batch axis) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, image_size, image_size, 3, dtype=torch.uint8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's tracer warnings
        torch.onnx.export(
            graph.eval(),
            (example,),
            str(path),
            input_names=["pixels"],
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in ["pixels", *outputs]},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: 3 s here, the dynamo one several times more
        )
    return path


def export_onnx(net: nn.Module, path: Path, image_size: int) -> Path:
    """Write `net` (a BreedNet) as the ONNX graph of the contract; returns `path`."""
    return save_onnx(ExportGraph(net), path, image_size, ["breeds", "dog"])


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit(cwd: Path = Path(".")) -> str | None:
    """HEAD's commit of the repo at `cwd` (None outside git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def data_version(preprocessed: Path = Path("data/preprocessed")) -> str | None:
    """md5 of data/preprocessed from dvc.lock, else a hash of its manifest.csv, else None."""
    lock = Path("dvc.lock")
    if lock.exists():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for out in stages.get("preprocess", {}).get("outs", []):
            if Path(out.get("path", "")) == preprocessed and out.get("md5"):
                return str(out["md5"])
    manifest = preprocessed / "manifest.csv"
    if manifest.exists():
        return "manifest-sha256:" + file_sha256(manifest)[:16]
    return None


def write_model_json(
    model_dir: Path,
    *,
    name: str,
    backbone: str,
    image_size: int,
    resize: int,
    labels: list[dict[str, Any]],
    thresholds: dict[str, float],
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    neptune_run_id: str | None = None,
) -> dict[str, Any]:
    """Describe `model_dir/model.onnx` in `model_dir/model.json`; returns the written dict."""
    meta = {
        "format": FORMAT,
        "name": name,
        "version": file_sha256(model_dir / "model.onnx")[:12],
        "backbone": backbone,
        "input": {
            "name": "pixels",
            "size": image_size,
            "resize": resize,
            "dtype": "uint8",
            "layout": "NHWC",
        },
        "outputs": {"breeds": "breeds", "dog": "dog"},
        "labels": labels,
        "thresholds": {k: float(v) for k, v in thresholds.items()},
        "metrics": metrics or {},
        "provenance": {
            "data_version": data_version() if name != "baseline" else None,
            "params": params or {},
            "git_commit": git_commit(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "neptune_run_id": neptune_run_id,
        },
    }
    (model_dir / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    log.info("wrote %s (version %s)", model_dir / "model.json", meta["version"])
    return meta
