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

import difflib
import inspect
from typing import Any, Callable

from torch import nn

from ._layers import as_int, estimate_batchnorm, non_negative_number, recalibrate_batchnorm
from ._registry import ARCHS, register
from . import mlp as _mlp  # noqa: F401  (registers "mlp")
from . import conv as _conv  # noqa: F401  (registers "conv")

__all__ = ["as_int", "check_net_options", "check_shape", "create_nets", "estimate_batchnorm",
           "list_archs", "non_negative_number", "recalibrate_batchnorm", "register", "resolve_arch",
           "resolved_net_options"]


def list_archs() -> list[str]:
    """Names accepted by :func:`create_nets`."""
    return sorted(ARCHS)


def resolve_arch(arch: str, image_shape: tuple[int, int, int]) -> str:
    """``"auto"`` picks the MLP for images of at most 784 values (C x H x W, e.g. 28x28x1) and
    the conv pair otherwise."""
    if arch != "auto":
        return arch
    c, h, w = image_shape
    return "mlp" if c * h * w <= 28 * 28 else "conv"


def _builder_params(arch: str) -> tuple[list[inspect.Parameter], bool]:
    """The named options of ``arch``'s builder (after image_shape and num_classes), and
    whether it also takes ``**kwargs``."""
    P = inspect.Parameter
    params = list(inspect.signature(ARCHS[arch]).parameters.values())[2:]
    named = [p for p in params if p.kind in (P.KEYWORD_ONLY, P.POSITIONAL_OR_KEYWORD)]
    return named, any(p.kind is P.VAR_KEYWORD for p in params)


def _builder_options(arch: str) -> list[str] | None:
    """The option names of ``arch``'s builder; None when it takes ``**kwargs``."""
    named, var_kw = _builder_params(arch)
    return None if var_kw else [p.name for p in named]


def resolved_net_options(arch: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the builder's defaults filled in for every option not given, so a
    saved model spec rebuilds the same networks even after a default changes."""
    if arch not in ARCHS:
        return dict(options)
    named, _ = _builder_params(arch)
    defaults = {p.name: p.default for p in named if p.default is not inspect.Parameter.empty}
    return {**defaults, **options}


def check_net_options(arch: str, options: dict[str, Any]) -> None:
    """ValueError for a ``net_options`` key that the architecture's builder does not take
    (for ``auto``: that no builder takes), naming the nearest valid key and all of them."""
    archs = list_archs() if arch == "auto" else [arch]
    if any(a not in ARCHS for a in archs):
        return                                    # an unknown arch is reported by its caller
    valid = {a: _builder_options(a) for a in archs}
    if any(v is None for v in valid.values()):
        return                                    # a builder that takes anything
    for key in options:
        if not any(key in v for v in valid.values()):
            names = sorted({n for v in valid.values() for n in v})
            close = difflib.get_close_matches(key, names, n=1)
            raise ValueError(
                f"unknown net_options key {key!r} for arch {arch}"
                + (f" (did you mean {close[0]!r}?)" if close else "")
                + "; its options: " + "; ".join(f"{a}: {', '.join(v)}" for a, v in valid.items()))


def check_shape(image_shape: Any, num_classes: Any) -> tuple[tuple[int, int, int], int]:
    """``((C, H, W), num_classes)`` as Python ints; ValueError naming what is wrong (not
    three positive integers, fewer than two classes, a fractional count)."""
    dims = [as_int(s) for s in image_shape] if isinstance(image_shape, (tuple, list)) else []
    if len(dims) != 3 or any(d is None or d <= 0 for d in dims):
        raise ValueError(f"image_shape must be (C, H, W), three positive integers, got "
                         f"{image_shape!r}")
    n = as_int(num_classes)
    if n is None or n < 2:
        raise ValueError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
    return (dims[0], dims[1], dims[2]), n


def create_nets(arch: str, image_shape: tuple[int, int, int], num_classes: int,
                **options) -> tuple[nn.Module, nn.Module]:
    """Build ``(generator, loss_net)`` of architecture ``arch`` for images of ``image_shape``
    (C, H, W) and ``num_classes`` classes. ``options`` go to the architecture's builder."""
    shape, num_classes = check_shape(image_shape, num_classes)
    arch = resolve_arch(arch, shape)
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of: {', '.join(list_archs())}")
    check_net_options(arch, options)
    builder: Callable[..., tuple[nn.Module, nn.Module]] = ARCHS[arch]
    return builder(shape, num_classes, **options)
