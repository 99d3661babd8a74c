"""The one transform factory: photo (upright RGB PIL) -> uint8 HWC tensor, as the network takes it.

Without augmentation it is exactly the evaluation and serving preprocessing (`center_crop`);
with it, each augmentation is applied with its own probability from `params.yaml` `train.augment`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import v2

from bot.imaging import center_crop


def make_transform(
    size: int,
    resize: int,
    train: bool = False,
    crop_scale_min: float = 0.6,
    hflip: float = 0.5,
    color: float = 0.4,
    rotation: float = 0.2,
    rotation_degrees: float = 15,
    blur: float = 0.1,
    grayscale: float = 0.05,
) -> Callable[[Image.Image], torch.Tensor]:
    """Evaluation centre crop, or (train=True) random crop, flip, colour, rotation, blur, grey."""
    if not train:
        return lambda img: torch.from_numpy(center_crop(img, resize, size).copy())
    pipeline = v2.Compose(
        [
            v2.PILToTensor(),
            v2.RandomResizedCrop(size, scale=(crop_scale_min, 1.0), antialias=True),
            v2.RandomHorizontalFlip(p=hflip),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.05)], p=color),
            v2.RandomApply([v2.RandomRotation(rotation_degrees)], p=rotation),
            v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 2.0))], p=blur),
            v2.RandomGrayscale(p=grayscale),
        ]
    )
    return lambda img: pipeline(img).permute(1, 2, 0).contiguous()
