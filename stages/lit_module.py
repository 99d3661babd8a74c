"""The LightningModule: loss, metrics and optimiser around a plain `nn.Module` of breed logits."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn


def breed_logits(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """A head returns logits; a BreedNet returns (breed logits, ImageNet logits)."""
    return output[0] if isinstance(output, tuple) else output


class BreedModule(L.LightningModule):
    """Trains `net` (a head on features, or a whole BreedNet on pixels) with cross-entropy."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_name = optimizer
        self.lr, self.weight_decay, self.label_smoothing = lr, weight_decay, label_smoothing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return breed_logits(self.net(x))

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        top = logits.topk(min(3, logits.shape[1]), dim=1).indices
        metrics = {
            f"{stage}/loss": loss,
            f"{stage}/top1": (top[:, 0] == y).float().mean(),
            f"{stage}/top3": (top == y[:, None]).any(dim=1).float().mean(),
        }
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.net.parameters() if p.requires_grad]
        if self.optimizer_name == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(
                params, lr=self.lr, momentum=0.9, nesterov=True, weight_decay=self.weight_decay
            )
        raise ValueError(f"unknown optimizer {self.optimizer_name!r}: adamw | sgd")
