"""The paper's convolutional pair (Qi 2017, section 7), parameterised by image size.

Loss network: nine convolutions (3x3 96, 3x3 96, 4x4/2 96, 3x3 192, 3x3 192, 4x4/2 192,
3x3 192, 3x3 192, 1x1 192; DESIGN.md's list) with BatchNorm and LeakyReLU 0.2, global mean
pool, linear to C. Generator: [z, one_hot(y)]
-> 512 x (S/8)^2 -> transposed convolutions 256, 128, C_img -> tanh. S = 32 for SVHN,
CIFAR-10 and MNIST padded to 32; any square size divisible by 8 works.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ._layers import GaussianNoise, hidden_activations, level, normed, one_hot, width
from ._registry import register


def _init_normal(module: nn.Module) -> None:
    """Weights N(0, 0.02) as in the paper; BN scale N(1, 0.02); biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ConvGenerator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, noise_dim: int = 100,
                 width: int = 512):
        super().__init__()
        c, s, _ = image_shape
        self.image_shape, self.num_classes, self.noise_dim = image_shape, num_classes, noise_dim
        self.start = s // 8
        self.width = width
        self.fc = nn.Sequential(nn.Linear(noise_dim + num_classes, width * self.start ** 2),
                                nn.BatchNorm1d(width * self.start ** 2), nn.ReLU())
        chans = [width, width // 2, width // 4]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.ReLU()]
        layers += [nn.ConvTranspose2d(chans[-1], c, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        _init_normal(self)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        h = self.fc(torch.cat([z, one_hot(y, self.num_classes, z.dtype)], dim=1))
        return self.net(h.view(-1, self.width, self.start, self.start))  # (N, C, S, S)


class ConvLossNet(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, width: int = 96,
                 input_noise: float = 0.0, dropout: float = 0.0, norm: str = "none"):
        super().__init__()
        c = image_shape[0]
        w1, w2 = width, 2 * width
        # (out channels, kernel, stride, padding)
        spec = [(w1, 3, 1, 1), (w1, 3, 1, 1), (w1, 4, 2, 1),
                (w2, 3, 1, 1), (w2, 3, 1, 1), (w2, 4, 2, 1),
                (w2, 3, 1, 1), (w2, 3, 1, 1), (w2, 1, 1, 0)]
        layers: list[nn.Module] = [GaussianNoise(input_noise)]
        cin = c
        for i, (cout, k, st, p) in enumerate(spec):
            # BatchNorm does not mix with spectral normalisation's Lipschitz bound: drop it there
            bn = [] if norm == "spectral" else [nn.BatchNorm2d(cout)]
            conv = nn.Conv2d(cin, cout, k, st, p)
            _init_normal(conv)                    # before any weight parametrisation
            layers += [normed(conv, norm), *bn, nn.LeakyReLU(0.2)]
            if dropout > 0 and i in (2, 5):
                layers.append(nn.Dropout(dropout))
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        head = nn.Linear(cin, num_classes)
        _init_normal(head)
        self.head = normed(head, norm)
        self.num_classes = num_classes
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                _init_normal(m)

    def forward(self, x: Tensor, features: bool | str = False):
        """a (N, C); with ``features=True`` also the pooled features (N, 2 * width); with
        ``features="all"`` the list of every conv block's activation map (N, C_l, H_l, W_l),
        first to last."""
        if features == "all":
            h, hs = hidden_activations(self.features, x)
            return self.head(h), hs
        h = self.features(x)      # (N, 2 * width) pooled features
        a = self.head(h)          # (N, C) class activations
        return (a, h) if features else a


@register("conv")
def build_conv(image_shape, num_classes, *, noise_dim: int = 100, g_width: int = 512,
               d_width: int = 96, input_noise: float = 0.0, dropout: float = 0.0,
               norm: str = "none"):
    c, h, w = image_shape
    if h != w or h % 8:
        raise ValueError(f"the conv pair needs square images with a side divisible by 8, got "
                         f"{h}x{w}; resize an image folder or pad MNIST (image_size, "
                         f"--image-size N, e.g. 32) or use the MLP pair (arch='mlp', --arch mlp)")
    g_width, d_width = width("g_width", g_width), width("d_width", d_width)
    noise_dim = width("noise_dim", noise_dim)
    input_noise, dropout = level("input_noise", input_noise), level("dropout", dropout, True)
    return (ConvGenerator(image_shape, num_classes, noise_dim, g_width),
            ConvLossNet(image_shape, num_classes, d_width, input_noise, dropout, norm))
