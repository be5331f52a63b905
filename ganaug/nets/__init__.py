"""Generator / loss-network pairs behind a small registry (like timm's ``create_model``).

Every pair follows one interface:

- ``generator(z, y) -> images`` in [-1, 1], NCHW, with ``z`` of shape (N, noise_dim) and
  ``y`` a LongTensor of class ids in [0, num_classes);
- ``loss_net(x) -> a`` of shape (N, num_classes), class activations (lower
  L(x, y) = -a_y + softplus(logsumexp a) means "real and of class y"), and
  ``loss_net(x, features=True) -> (a, h)`` with ``h`` the penultimate features, and
  (for ``fm_layers="all"``) ``loss_net(x, features="all") -> (a, [h_1, ..., h_L])``, every
  hidden layer's activations, first to last.

Networks never own optimisers; training concerns live in :mod:`ganaug.train`.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from ._registry import ARCHS, register
from . import mlp as _mlp  # noqa: F401  (registers "mlp")
from . import conv as _conv  # noqa: F401  (registers "conv")

__all__ = ["create_nets", "list_archs", "register", "resolve_arch"]


def list_archs() -> list[str]:
    """Names accepted by :func:`create_nets`."""
    return sorted(ARCHS)


def resolve_arch(arch: str, image_shape: tuple[int, int, int]) -> str:
    """``"auto"`` picks the MLP for small images (<= 28x28x1 pixels) and the conv pair otherwise."""
    if arch != "auto":
        return arch
    c, h, w = image_shape
    return "mlp" if c * h * w <= 28 * 28 else "conv"


def create_nets(arch: str, image_shape: tuple[int, int, int], num_classes: int,
                **options) -> tuple[nn.Module, nn.Module]:
    """Build ``(generator, loss_net)`` of architecture ``arch`` for images of ``image_shape``
    (C, H, W) and ``num_classes`` classes. ``options`` go to the architecture's builder."""
    arch = resolve_arch(arch, tuple(image_shape))
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of: {', '.join(list_archs())}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    builder: Callable[..., tuple[nn.Module, nn.Module]] = ARCHS[arch]
    return builder(tuple(int(s) for s in image_shape), int(num_classes), **options)
