"""The feature spaces that ganaug's sample-quality metrics are measured in.

The *domain* ruler (Inception weights cannot be downloaded on every machine): a small fixed
classifier (:class:`DomainNet`, an MLP for images of at most 28x28x1 pixels, a small CNN
otherwise) trained with a fixed seed and step count on every label of the real training
split. The GAN never sees those labels; the classifier is only a ruler. Its weights are
cached (keyed by a hash of the training images, the architecture, the steps and the seed),
so every run of a dataset is measured with the same ruler. The same classifier, trained only
on generated images, gives TSTR.

The standard one: torchvision's ``inception_v3`` pool features, from a local weights file
only (``inception_weights=`` / ``$GANAUG_INCEPTION_WEIGHTS``); nothing is ever downloaded.
:mod:`ganaug.evaluation` computes the metrics in them.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ._io import atomic_torch_save
from .data import ImageSet
from .progress import duration as _duration
from .train import pick_device   # auto; a clear error for cuda without a GPU

EXTRACTOR_VERSION = 1          # bump when DomainNet or its training changes
DEFAULT_STEPS = {"mlp": 1000, "cnn": 3000}
BATCH_SIZE = 128
INCEPTION_ENV = "GANAUG_INCEPTION_WEIGHTS"
CACHE_ENV = "GANAUG_CACHE"


def default_cache_dir() -> Path:
    """``$GANAUG_CACHE`` or ``~/.cache/ganaug``; extractors live in ``extractors/`` below it."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ganaug")


# ----------------------------------------------------------------------------- the ruler

class DomainNet(nn.Module):
    """A deliberately small, fixed classifier; ``forward(x, features=True)`` -> (logits, h).

    ``mlp``: Flatten -> 256 -> ReLU -> 64 -> ReLU (h, 64-d) -> C.
    ``cnn``: [conv3x3 -> BN -> ReLU -> maxpool2] x (32, 64), conv3x3 128 -> BN -> ReLU ->
    global mean pool (h, 128-d) -> C.

    The features returned are ``h * feature_scale``, a fixed scalar set once after training
    so that the real training features have mean per-dimension variance 1 (so FID and KID
    read on one scale whatever the dataset); the logits use ``h`` itself.
    """

    def __init__(self, kind: str, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        c, hgt, wid = image_shape
        self.kind, self.image_shape, self.num_classes = kind, tuple(image_shape), num_classes
        if kind == "mlp":
            self.features = nn.Sequential(nn.Flatten(), nn.Linear(c * hgt * wid, 256), nn.ReLU(),
                                          nn.Linear(256, 64), nn.ReLU())
            dim = 64
        elif kind == "cnn":
            layers: list[nn.Module] = []
            for cin, cout in ((c, 32), (32, 64)):
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                           nn.MaxPool2d(2)]
            layers += [nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
                       nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            self.features = nn.Sequential(*layers)
            dim = 128
        else:
            raise ValueError(f"unknown domain classifier {kind!r}; use 'mlp' or 'cnn'")
        self.head = nn.Linear(dim, num_classes)
        self.register_buffer("feature_scale", torch.ones(()))

    def forward(self, x: Tensor, features: bool = False):
        h = self.features(x)             # (N, 64) or (N, 128) penultimate features
        a = self.head(h)                 # (N, C) logits
        return (a, h * self.feature_scale) if features else a


def domain_kind(image_shape: tuple[int, int, int]) -> str:
    """The ruler's architecture for an image shape: mlp up to 28x28x1 pixels, else cnn."""
    return "mlp" if math.prod(image_shape) <= 28 * 28 else "cnn"


def offset_seed(seed: int, k: int) -> int:
    """``seed + k``, less 2**64 past the largest seed torch takes (2**64 - 1), so that every
    seed ``--seed`` accepts gives seeds for the other streams (unchanged below the top)."""
    return seed + k if seed + k < 2 ** 64 else seed + k - 2 ** 64


PROGRESS_EVERY_S = 15.0                 # a classifier's training: a line this often


def train_domain_classifier(images: Tensor, targets: Tensor, num_classes: int, *,
                            kind: str | None = None, steps: int | None = None, seed: int = 0,
                            device: str | torch.device = "cpu",
                            log: Callable[[str], None] | None = None,
                            name: str = "classifier") -> DomainNet:
    """``steps`` Adam steps (lr 1e-3, batch 128, cross-entropy) on ``images`` (N, C, H, W) in
    [-1, 1]; a pure function of (data, kind, steps, seed). The global RNG is left untouched.
    ``log`` gets a progress line every ``PROGRESS_EVERY_S`` seconds (the CNN's 3000 steps
    take minutes on a CPU) that names the classifier (``name``) and the time left for it."""
    image_shape = tuple(images.shape[1:])
    kind = kind or domain_kind(image_shape)
    steps = int(DEFAULT_STEPS[kind] if steps is None else steps)
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    if len(images) == 0:
        raise ValueError("cannot train a classifier on no images")
    device = pick_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DomainNet(kind, image_shape, num_classes).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(offset_seed(seed, 1))
    x_all, y_all = images.to(device), targets.to(device)
    batch = min(BATCH_SIZE, len(x_all))
    perm, pos = torch.randperm(len(x_all), generator=gen), 0
    net.train()
    t0 = last = time.perf_counter()
    for step in range(steps):
        if log is not None and time.perf_counter() - last >= PROGRESS_EVERY_S:
            last = time.perf_counter()
            left = (f", about {_duration((last - t0) / step * (steps - step))} left for it"
                    if step else "")
            log(f"eval: {name} step {step}/{steps} ({last - t0:.0f} s{left})")
        if pos + batch > len(perm):
            perm, pos = torch.randperm(len(x_all), generator=gen), 0
        idx = perm[pos:pos + batch].to(device)
        pos += batch
        loss = nn.functional.cross_entropy(net(x_all[idx]), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def outputs_of(net: nn.Module, images: Tensor, batch: int = 1024) -> tuple[Tensor, Tensor]:
    """(logits, penultimate features) of ``images``, both on the CPU, in one pass."""
    device = next(net.parameters()).device
    a_out, h_out = [], []
    for x in images.split(batch):
        a, h = net(x.to(device), features=True)
        a_out.append(a.float().cpu())
        h_out.append(h.float().cpu())
    return torch.cat(a_out), torch.cat(h_out)


def features_of(net: DomainNet, images: Tensor, batch: int = 1024) -> Tensor:
    """Penultimate features (N, D) on the CPU, in eval mode."""
    return outputs_of(net, images, batch)[1]


def accuracy_of(net: DomainNet, images: Tensor, targets: Tensor, batch: int = 1024) -> float:
    pred = outputs_of(net, images, batch)[0].argmax(1)
    return float((pred == targets.cpu()).float().mean())


def _fingerprint(data: ImageSet, kind: str, steps: int, seed: int) -> str:
    h = hashlib.sha1()
    h.update(f"ganaug-domain-v{EXTRACTOR_VERSION}/{kind}/{steps}/{seed}/{data.image_shape}/"
             f"{data.num_classes}".encode())
    h.update(data.images.contiguous().numpy().tobytes())
    h.update(data.targets.contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def domain_extractor(train: ImageSet, *, steps: int | None = None, seed: int = 0,
                     cache_dir: str | os.PathLike | None = None,
                     device: str | torch.device = "auto",
                     log: Callable[[str], None] | None = None) -> tuple[DomainNet, dict]:
    """The ruler for ``train`` (every image with its true label): trained once, then loaded
    from ``cache_dir/extractors/domain-<kind>-<key>.pt`` (written atomically, loads with
    ``weights_only=True``). Returns ``(net in eval mode, info)``."""
    if len(train) == 0 or int(train.targets.min()) < 0:
        raise ValueError("the domain classifier needs a labeled training split")
    kind = domain_kind(train.image_shape)
    steps = int(DEFAULT_STEPS[kind] if steps is None else steps)
    if steps <= 0:
        raise ValueError(f"classifier steps must be positive, got {steps}")
    key = _fingerprint(train, kind, steps, seed)
    path = Path(cache_dir or default_cache_dir()) / "extractors" / f"domain-{kind}-{key}.pt"
    dev = pick_device(device)
    net = None
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            with torch.random.fork_rng(devices=[]):        # leave the caller's RNG alone
                net = DomainNet(kind, train.image_shape, train.num_classes)
            net.load_state_dict(saved["state"])
            net = net.to(dev).eval()
        except Exception as e:   # a bad cache file is retrained, never trusted
            (log or (lambda s: None))(f"ganaug eval: ignoring unreadable {path} ({e})")
            net = None
    if net is None:
        (log or (lambda s: None))(f"ganaug eval: training the domain classifier ({kind}, "
                                  f"{steps} steps; --classifier-steps sets them) on "
                                  f"{len(train)} real training images; cached in {path} "
                                  f"(the TSTR classifier then trains as many steps)")
        net = train_domain_classifier(train.images, train.targets, train.num_classes,
                                      kind=kind, steps=steps, seed=seed, device=dev, log=log,
                                      name="domain classifier")
        var = features_of(net, train.images).double().var(dim=0).mean()
        net.feature_scale.fill_(float(var.clamp_min(1e-12).rsqrt()))
        try:
            atomic_torch_save(path, {"format": "ganaug-domain", "version": EXTRACTOR_VERSION,
                                     "kind": kind, "image_shape": list(train.image_shape),
                                     "num_classes": train.num_classes, "steps": steps,
                                     "seed": seed, "train_images": len(train),
                                     "state": {k: v.cpu() for k, v in net.state_dict().items()}})
        except OSError as e:     # an unwritable cache costs the next run time, not this one
            (log or (lambda s: None))(f"ganaug eval: could not cache the domain classifier in "
                                      f"{path} ({e}); continuing without the cache (pass "
                                      f"--cache-dir DIR or set {CACHE_ENV} to a writable "
                                      f"folder)")
            path = None
    dim = net.head.in_features
    info = {"name": f"domain-{kind}-v{EXTRACTOR_VERSION}", "key": key, "kind": kind,
            "feature_dim": dim, "steps": steps, "seed": seed, "batch_size": BATCH_SIZE,
            "train_images": len(train), "feature_scale": float(net.feature_scale),
            "path": None if path is None else str(path)}
    return net, info


# ----------------------------------------------------------------------------- Inception

def load_inception(weights: str | os.PathLike, device: str | torch.device = "auto") -> nn.Module:
    """torchvision's ``inception_v3`` from a local weights file (its IMAGENET1K_V1 state
    dict, or a dict holding it under ``state_dict``), its classifier removed, in eval mode.
    A missing or foreign file is a clear error; nothing is ever downloaded."""
    from torchvision.models import inception_v3

    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights {path} do not exist; pass --inception-weights "
                                f"with a local torchvision inception_v3 state dict (or unset "
                                f"{INCEPTION_ENV})")
    dev = pick_device(device)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} cannot be read as a torch weights file (torch.load with "
                         f"weights_only=True raised {type(e).__name__}); pass a torchvision "
                         f"inception_v3 state dict") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    with torch.random.fork_rng(devices=[]):
        net = inception_v3(weights=None, aux_logits=True, init_weights=False,
                           transform_input=False)
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a torchvision inception_v3 state dict: it holds a "
                         f"{type(state).__name__}, not a dict of tensors; pass the file of "
                         f"torch.save(inception_v3(...).state_dict(), PATH)")
    want = net.state_dict()                 # (BatchNorm's counters: older files lack them,
    missing = [k for k in want if k not in state            # load_state_dict fills them in)
               and not k.endswith("num_batches_tracked")]
    extra = [k for k in state if k not in want]
    if missing or extra:
        parts = ([f"{len(missing)} of its {len(want)} tensors missing (e.g. {missing[:2]})"]
                 if missing else []) + ([f"{len(extra)} others (e.g. {extra[:2]})"]
                                        if extra else [])
        raise ValueError(f"{path} is not a torchvision inception_v3 state dict: "
                         f"{', '.join(parts)}; pass the file of "
                         f"torch.save(inception_v3(...).state_dict(), PATH)")
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        why = " ".join(str(e).split())               # torch's message runs over lines
        raise ValueError(f"{path} is not a torchvision inception_v3 state dict: "
                         f"{why[:300]}") from None
    net.fc = nn.Identity()
    return net.to(dev).eval()


def inception_features(images: Tensor, weights: str | os.PathLike | nn.Module,
                       device: str | torch.device = "auto", batch: int = 64) -> Tensor:
    """2048-d pool features of torchvision's ``inception_v3`` (a net from
    :func:`load_inception`, or the path of its weights); images in [-1, 1] are resized to
    299x299 (bilinear) and grey images repeated to 3 channels. Never downloads."""
    net = weights if isinstance(weights, nn.Module) else load_inception(weights, device)
    dev = next(net.parameters()).device
    out = []
    with torch.no_grad():
        for x in images.split(batch):
            x = x.to(dev).float()
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            # the Google weights expect inputs in [-1, 1], which is what ours are
            x = nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(net(x).float().cpu())
    return torch.cat(out)


__all__ = ["DomainNet", "domain_kind", "train_domain_classifier", "domain_extractor",
           "features_of", "outputs_of", "accuracy_of", "load_inception", "inception_features",
           "default_cache_dir", "offset_seed"]
