"""MLP pair for small images (digits 8x8, MNIST 28x28), after Salimans et al. 2016's MNIST nets."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._layers import GaussianNoise, hidden_activations, level, normed, one_hot, width, widths
from ._registry import register


class MLPGenerator(nn.Module):
    """(z, y) -> image: [z, one_hot(y)] -> Linear-BN-Softplus x len(hidden) -> Linear -> tanh.

    ``norm="none"`` drops the BatchNorm (its batch statistics make a sample depend on the
    rest of its batch, e.g. on how data-parallel training splits the batch).
    ``out_norm="weight"`` weight-normalises the output layer (as Salimans et al.'s MNIST
    generator): Adam then moves each output unit's scale by about lr per step, instead of
    every one of its weights, which keeps the tanh from saturating where its gradient
    vanishes.
    """

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, noise_dim: int = 100,
                 hidden: tuple[int, ...] = (500, 500), norm: str = "batch",
                 out_norm: str = "none"):
        super().__init__()
        self.image_shape, self.num_classes, self.noise_dim = image_shape, num_classes, noise_dim
        layers: list[nn.Module] = []
        width = noise_dim + num_classes
        if norm not in ("batch", "none"):
            raise ValueError(f"generator norm (net_options g_norm) must be 'batch' or "
                             f"'none', got {norm!r}")
        for h in hidden:
            bn = [nn.BatchNorm1d(h)] if norm == "batch" else []
            layers += [nn.Linear(width, h), *bn, nn.Softplus()]
            width = h
        if out_norm not in ("none", "weight"):
            raise ValueError(f"generator out_norm (net_options g_out_norm) must be 'none' or "
                             f"'weight', got {out_norm!r}")
        out = nn.Linear(width, math.prod(image_shape))
        layers += [normed(out, out_norm), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        h = torch.cat([z, one_hot(y, self.num_classes, z.dtype)], dim=1)
        return self.net(h).view(-1, *self.image_shape)  # (N, C, H, W) in [-1, 1]


class MLPLossNet(nn.Module):
    """x -> class activations a (N, C): Gaussian noise on the input and after every hidden
    layer (training only), weight-normalised Linear + LeakyReLU 0.2."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int,
                 hidden: tuple[int, ...] = (1000, 500, 250, 250, 250),
                 input_noise: float = 0.15, hidden_noise: float = 0.3, norm: str = "weight"):
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(input_noise)]
        width = math.prod(image_shape)
        for h in hidden:
            layers += [normed(nn.Linear(width, h), norm), nn.LeakyReLU(0.2),
                       GaussianNoise(hidden_noise)]
            width = h
        self.features = nn.Sequential(*layers)
        self.head = normed(nn.Linear(width, num_classes), norm)

    def forward(self, x: Tensor, features: bool | str = False):
        """a (N, C); with ``features=True`` also the last hidden layer's output (N, hidden[-1])
        after its noise; with ``features="all"`` the list of every hidden layer's activations
        (before the noise), first to last."""
        if features == "all":
            h, hs = hidden_activations(self.features, x)
            return self.head(h), hs
        h = self.features(x)              # (N, hidden[-1]) penultimate features
        a = self.head(h)                  # (N, C) class activations
        return (a, h) if features else a


@register("mlp")
def build_mlp(image_shape, num_classes, *, noise_dim: int = 100, g_hidden=(500, 500),
              d_hidden=(1000, 500, 250, 250, 250), input_noise: float = 0.15,
              hidden_noise: float = 0.3, norm: str = "weight", g_norm: str = "batch",
              g_out_norm: str = "none"):
    """MLP pair; ``norm`` is the loss network's weight normalisation (weight/spectral/none),
    ``g_norm`` the generator's (batch/none), ``g_out_norm`` its output layer's (none/weight).

    The loss network's Gaussian noise layers (``input_noise`` on the input, ``hidden_noise``
    after each hidden layer, std in ganaug's [-1, 1] pixel units) default to 0.15 and 0.3,
    which regularise a loss network trained on a few labels (benchmarks/objectives.py).
    ``ganaug.build_model`` turns them off for the semi-supervised objective unless set
    (``experiment.objective_net_defaults``). Salimans et al.'s MNIST values are 0.3 on [0, 1]
    pixels, i.e. ``input_noise=0.6`` here, and ``hidden_noise=0.5`` (recipes/mnist-100.yaml).
    """
    g_hidden, d_hidden = widths("g_hidden", g_hidden), widths("d_hidden", d_hidden)
    noise_dim = width("noise_dim", noise_dim)
    input_noise, hidden_noise = level("input_noise", input_noise), level("hidden_noise", hidden_noise)
    return (MLPGenerator(image_shape, num_classes, noise_dim, g_hidden, g_norm, g_out_norm),
            MLPLossNet(image_shape, num_classes, d_hidden, input_noise, hidden_noise, norm))
