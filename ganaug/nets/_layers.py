"""Small building blocks shared by the architectures."""
from __future__ import annotations

import itertools
import math
import operator
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations


def as_int(v) -> int | None:
    """``v`` as an int when it is one (numpy's too), else None (a bool, 2.5, "3")."""
    if isinstance(v, bool):
        return None
    try:
        return operator.index(v)                  # ints and numpy ints; not 2.5, not "3"
    except TypeError:
        return None


def non_negative_number(v) -> bool:
    """A finite real number >= 0 (not a bool, a string or nan)."""
    return not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v < math.inf


def widths(name: str, value) -> tuple[int, ...]:
    """``value`` (a builder option: layer widths, e.g. ``[500, 500]``) as a tuple of positive
    ints; ValueError naming the option otherwise (a float such as ``5e2``, a lone number)."""
    out = [as_int(v) for v in value] if isinstance(value, (list, tuple)) else []
    if not out or any(v is None or v < 1 for v in out):
        raise ValueError(f"net option {name} must be a list of positive whole numbers (layer "
                         f"widths, e.g. [500, 500]), got {value!r}")
    return tuple(out)


def width(name: str, value) -> int:
    """``value`` as one positive int (a builder's width option); ValueError otherwise."""
    n = as_int(value)
    if n is None or n < 1:
        raise ValueError(f"net option {name} must be a positive whole number, got {value!r}")
    return n


def level(name: str, value, below_one: bool = False) -> float:
    """``value`` as a finite number >= 0 (a noise std; with ``below_one`` a dropout rate,
    also < 1); ValueError naming the option otherwise (a string, a negative number)."""
    if not non_negative_number(value) or (below_one and value >= 1):
        what = "a rate in [0, 1)" if below_one else "a number >= 0 (a std in [-1, 1] pixel units)"
        raise ValueError(f"net option {name} must be {what}, got {value!r}")
    return float(value)


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


@torch.no_grad()
def estimate_batchnorm(net: nn.Module, batches: Iterable[tuple]) -> bool:
    """Re-estimate the running mean and variance of every BatchNorm layer in ``net`` by
    calling ``net(*args)`` for each ``args`` in ``batches``, with the BatchNorm layers in
    training mode and a cumulative average (momentum None: every batch weighs the same), and
    every other layer (noise, dropout) in eval mode. Modes and momenta are restored after.
    Returns False, having drawn nothing from ``batches``, for a net without BatchNorm.
    """
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    training = {m: m.training for m in net.modules()}
    momenta = [m.momentum for m in bns]
    net.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for args in batches:
            net(*args)
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        for m, was in training.items():
            m.train(was)
    return True


def even_batches(n: int, batch_size: int, gen: torch.Generator) -> tuple[Tensor, ...]:
    """A shuffle of ``range(n)`` drawn from ``gen``, cut into near-equal batches of at most
    ``batch_size`` (none of one item while n >= 2, which BatchNorm1d cannot take)."""
    perm = torch.randperm(n, generator=gen)
    return torch.tensor_split(perm, -(-n // batch_size))


def recalibrate_batchnorm(net: nn.Module, parts: Sequence[Tensor], batch_size: int,
                          seed: int = 0) -> bool:
    """Re-estimate the BatchNorm statistics of ``net`` (:func:`estimate_batchnorm`) from the
    images in ``parts`` (tensors on the net's device, taken together): one pass over them in
    shuffled near-equal batches of at most ``batch_size``. Returns False, having done
    nothing, for a net without BatchNorm or fewer than two images.

    Why: a weight average (EMA) inherits the running statistics of the network it averages,
    which its training batches (half generated images, the penalty's interpolates) gathered
    for other weights; in eval mode the loss network then normalises real images with
    statistics that are not theirs. The shuffle (``seed``) keeps batches from being all one
    class; the global RNG is not touched.
    """
    n = sum(len(p) for p in parts)
    if n < 2:
        return False
    offsets = [0, *itertools.accumulate(len(p) for p in parts)]   # part k: rows [o_k, o_k+1)

    def batches():
        for idx in even_batches(n, batch_size, torch.Generator().manual_seed(seed)):
            yield (torch.cat([p[(idx[(idx >= lo) & (idx < hi)] - lo).to(p.device)]
                              for p, lo, hi in zip(parts, offsets, offsets[1:])]),)

    return estimate_batchnorm(net, batches())


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
