"""A made-up data/preprocessed (manifest.csv, breeds.json, JPEGs) for fast training tests."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

BREEDS = [
    ("beagle", "Beagle", "n02088364"),
    ("samoyed", "Samoyed", "n02111889"),
    ("mutt", "Mutt", None),
]
COLOURS = [(200, 120, 40), (240, 240, 235), (60, 60, 160)]
SPLITS = ["train"] * 4 + ["val"] * 2 + ["test"] * 2


def photo_bytes(
    colour: tuple[int, int, int], seed: int, size: tuple[int, int] = (300, 256)
) -> bytes:
    """A noisy single-colour JPEG."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_preprocessed(root: Path, splits: list[str] = SPLITS) -> Path:
    """Write `root/manifest.csv`, `root/breeds.json` and the photos; returns `root`."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for b, (name, _, wnid) in enumerate(BREEDS):
        for i, split in enumerate(splits):
            data = photo_bytes(COLOURS[b], seed=100 * b + i)
            digest = hashlib.sha256(data).hexdigest()[:16]
            path = f"images/{digest}.jpg"
            (root / path).write_bytes(data)
            rows.append(
                {"path": path, "breed": name, "wnid": wnid or "", "split": split, "hash": digest}
            )
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "breed", "wnid", "split", "hash"])
        writer.writeheader()
        writer.writerows(rows)
    labels = [{"name": n, "display": d, "wnid": w} for n, d, w in BREEDS]
    (root / "breeds.json").write_text(json.dumps(labels))
    return root
