"""Stage `baseline`: the ImageNet classifier restricted to the 120 Stanford Dogs breeds.

Needs no training data, so the bot can answer from day one. The breed head is a copy of the
ImageNet rows of those breeds: its softmax is the ImageNet softmax renormalised over them.
251 dalmatian is not a Stanford breed, so it is not a label, but it still counts as a dog.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
import yaml
from torch import nn

from bot import breeds
from stages.backbone import Backbone, BreedNet, load_backbone
from stages.export import export_onnx, imagenet_dogs, write_model_json

log = logging.getLogger(__name__)

NOT_STANFORD = frozenset({251})  # dalmatian
# No data to choose them from: fixed values (a trained model chooses its own: stages/thresholds.py).
THRESHOLDS = {"dog": 0.5, "unsure": 0.3}


def baseline_labels() -> list[tuple[int, breeds.Breed]]:
    """(ImageNet index, breed) of the 120 Stanford breeds, sorted by breed name."""
    rows = [r for r in imagenet_dogs() if r.index not in NOT_STANFORD]
    labelled = [(r.index, breeds.parse(f"{r.wnid}-{r.name}")) for r in rows]
    return sorted(labelled, key=lambda item: item[1].name)


def baseline_net(backbone: Backbone, indices: list[int]) -> BreedNet:
    """A BreedNet whose breed head is the ImageNet classifier's rows `indices`."""
    source = backbone.classifier
    head = nn.Linear(source.in_features, len(indices))
    with torch.no_grad():
        head.weight.copy_(source.weight[indices])
        head.bias.copy_(source.bias[indices])
    return BreedNet(backbone, head).eval()


def build(out: Path, backbone_name: str, image_size: int, resize: int) -> dict:
    """Export the baseline model into `out` (model.onnx + model.json); returns the metadata."""
    labelled = baseline_labels()
    net = baseline_net(load_backbone(backbone_name, image_size), [i for i, _ in labelled])
    export_onnx(net, out / "model.onnx", image_size)
    labels = [{"name": b.name, "display": b.display, "wnid": b.wnid} for _, b in labelled]
    params = {"backbone": backbone_name, "image_size": image_size, "resize": resize}
    return write_model_json(
        out,
        name="baseline",
        backbone=backbone_name,
        image_size=image_size,
        resize=resize,
        labels=labels,
        thresholds=THRESHOLDS,
        params={"train": params},
    )


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m stages.baseline [--out models/baseline] [--params params.yaml]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/baseline"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    train = yaml.safe_load(args.params.read_text())["train"]
    meta = build(args.out, train["backbone"], train["image_size"], train["resize"])
    log.info("baseline: %d breeds, version %s", len(meta["labels"]), meta["version"])


if __name__ == "__main__":
    main()
