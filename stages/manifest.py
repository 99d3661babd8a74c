"""data/preprocessed as the training stages read it: manifest.csv rows and the label order."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Row:
    """One line of data/preprocessed/manifest.csv."""

    path: str
    breed: str
    wnid: str
    split: str
    hash: str


def read_manifest(root: Path) -> list[Row]:
    """The rows of `root/manifest.csv` (path relative to `root`)."""
    with (root / "manifest.csv").open(newline="") as fh:
        return [
            Row(r["path"], r["breed"], r["wnid"], r["split"], r["hash"]) for r in csv.DictReader(fh)
        ]


def read_labels(root: Path) -> list[dict]:
    """`root/breeds.json`: [{"name", "display", "wnid"}] in label order (index = class id)."""
    labels = json.loads((root / "breeds.json").read_text())
    return [
        {"name": b["name"], "display": b["display"], "wnid": b.get("wnid") or None} for b in labels
    ]


def split_rows(rows: list[Row], labels: list[dict]) -> dict[str, tuple[list[Row], np.ndarray]]:
    """split -> (rows, class ids); rows of breeds that are not labels are dropped."""
    index = {label["name"]: i for i, label in enumerate(labels)}
    out = {}
    for split in SPLITS:
        kept = [r for r in rows if r.split == split and r.breed in index]
        out[split] = (kept, np.array([index[r.breed] for r in kept], dtype=np.int64))
    return out
