"""Small building blocks shared by the architectures."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations


class GaussianNoise(nn.Module):
    """Adds N(0, std^2) noise in training mode only (Salimans et al. 2016's noise layers)."""

    def __init__(self, std: float):
        super().__init__()
        self.std = float(std)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.std > 0:
            return x + self.std * torch.randn_like(x)
        return x

    def extra_repr(self) -> str:
        return f"std={self.std}"


def hidden_activations(layers: nn.Sequential, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Run ``layers`` on ``x``; return the output and every LeakyReLU's output (the hidden
    layers' activations, first to last), for ``forward(x, features="all")``."""
    hs: list[Tensor] = []
    for m in layers:
        x = m(x)
        if isinstance(m, nn.LeakyReLU):
            hs.append(x)
    return x, hs


def normed(layer: nn.Module, norm: str) -> nn.Module:
    """Wrap a Linear/Conv in weight normalisation ("weight"), spectral ("spectral") or none."""
    if norm == "weight":
        return parametrizations.weight_norm(layer)
    if norm == "spectral":
        return parametrizations.spectral_norm(layer)
    if norm == "none":
        return layer
    raise ValueError(f"unknown weight norm {norm!r}; use 'weight', 'spectral' or 'none'")


def one_hot(y: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """(N,) class ids -> (N, C) one-hot, with a clear error for ids outside [0, C).

    The range check reads the labels on the host, so it runs for CPU labels only: on a GPU
    it would stall every training step, and there F.one_hot's device-side assert catches
    bad ids instead (CLSGAN.sample checks its labels on the host before moving them).
    """
    if y.dim() != 1:
        raise ValueError(f"labels must be a 1-D tensor of class ids, got shape {tuple(y.shape)}")
    if (y.numel() and y.device.type == "cpu" and not torch.compiler.is_compiling()
            and (int(y.min()) < 0 or int(y.max()) >= num_classes)):
        raise ValueError(f"class ids must lie in [0, {num_classes}), got range "
                         f"[{int(y.min())}, {int(y.max())}]")
    return nn.functional.one_hot(y.long(), num_classes).to(dtype)
