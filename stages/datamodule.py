"""Training data: the manifest of data/preprocessed, as cached features (head) or photos (finetune).

Head mode keeps every split in memory as one tensor and serves whole random batches by indexing
it: no per-sample Python, no worker processes, so an epoch over 10k photos takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from bot.imaging import decode
from stages.manifest import Row, read_labels, read_manifest, split_rows


class TensorBatches(Dataset):
    """Indexable by a list of indices: returns the whole batch at once."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[idx], self.y[idx]


def batch_loader(data: Dataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """A DataLoader that asks the dataset for whole batches (see `TensorBatches`)."""
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(data, generator=generator) if shuffle else SequentialSampler(data)
    return DataLoader(
        data, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None
    )


class FeatureDataModule(L.LightningDataModule):
    """Cached backbone features of each split (head mode)."""

    def __init__(self, root: Path, features: dict[str, np.ndarray], batch_size: int, seed: int):
        super().__init__()
        self.root, self.features, self.batch_size, self.seed = root, features, batch_size, seed
        self.data: dict[str, TensorBatches] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        labels = read_labels(self.root)
        for split, (rows, targets) in split_rows(read_manifest(self.root), labels).items():
            missing = [r.path for r in rows if r.hash not in self.features]
            if missing:
                raise RuntimeError(
                    f"{len(missing)} photos lack features, e.g. {missing[0]}: "
                    "run the features stage"
                )
            x = np.stack([self.features[r.hash] for r in rows]) if rows else np.zeros((0, 1))
            self.data[split] = TensorBatches(
                torch.from_numpy(x.astype(np.float32)), torch.from_numpy(targets)
            )

    def train_dataloader(self) -> DataLoader:
        return batch_loader(self.data["train"], self.batch_size, shuffle=True, seed=self.seed)

    def val_dataloader(self) -> DataLoader:
        return batch_loader(self.data["val"], 4096, shuffle=False, seed=self.seed)

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self.data["test"], 4096, shuffle=False, seed=self.seed)


class PhotoDataset(Dataset):
    """Preprocessed photos -> (uint8 HWC pixels, class id) through `transform`."""

    def __init__(self, root: Path, rows: list[Row], targets: np.ndarray, transform: Callable):
        self.root, self.rows, self.targets, self.transform = root, rows, targets, transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img: Image.Image = decode(self.root / self.rows[i].path)
        return self.transform(img), int(self.targets[i])


class PhotoDataModule(L.LightningDataModule):
    """Photos with augmentation for training, the evaluation centre crop otherwise (finetune)."""

    def __init__(
        self,
        root: Path,
        train_transform: Callable,
        eval_transform: Callable,
        batch_size: int,
        num_workers: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.root, self.batch_size, self.num_workers, self.seed = (
            root,
            batch_size,
            num_workers,
            seed,
        )
        self.transforms = {"train": train_transform, "val": eval_transform, "test": eval_transform}
        self.data: dict[str, PhotoDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        labels = read_labels(self.root)
        for split, (rows, targets) in split_rows(read_manifest(self.root), labels).items():
            self.data[split] = PhotoDataset(self.root, rows, targets, self.transforms[split])

    def _loader(self, split: str) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.data[split],
            batch_size=self.batch_size,
            shuffle=split == "train",
            num_workers=self.num_workers,
            generator=generator,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
