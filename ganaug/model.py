"""CLSGAN: the generator, the loss network (which is also the classifier) and their EMAs.

The model is a container: it builds the networks, classifies and samples. It owns no
optimiser; :mod:`ganaug.train` trains it.
"""
from __future__ import annotations

import copy
import os
import warnings
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ._io import CHECKPOINT_VERSION, CheckpointError, atomic_torch_save, plain, run_checkpoint, \
    safe_torch_load
from .nets import (as_int, check_shape, create_nets, estimate_batchnorm, resolve_arch,
                   resolved_net_options)
from .nets._layers import even_batches
from .objectives import OBJECTIVES, conditional_loss


def id_names(num_classes: int) -> list[str]:
    """``["0", "1", ...]``: the class names of a model given none (and digits', MNIST's)."""
    return [str(i) for i in range(num_classes)]


class CLSGAN(nn.Module):
    """A class-conditional GAN whose loss network classifies.

    ``generator(z, y)`` maps noise and labels to images in [-1, 1]; ``loss_net(x)`` gives
    class activations a (N, C) with L(x, y) = -a_y + softplus(logsumexp a): lower means
    "real and of class y". ``generator_ema`` / ``loss_net_ema`` are exponential moving
    averages of the weights, used for sampling and for classification.
    """

    def __init__(self, image_shape: Sequence[int], num_classes: int, arch: str = "auto",
                 classes: Sequence[str] | None = None, **net_options: Any):
        super().__init__()
        self.image_shape, self.num_classes = check_shape(image_shape, num_classes)
        self.arch = resolve_arch(arch, self.image_shape)
        # every builder option, defaults included: a saved spec rebuilds these very networks
        self.net_options = resolved_net_options(self.arch, net_options)
        self.classes = list(classes) if classes is not None else id_names(num_classes)
        if len(self.classes) != self.num_classes:
            raise ValueError(f"{len(self.classes)} class names for {num_classes} classes")
        self.generator, self.loss_net = create_nets(self.arch, self.image_shape, self.num_classes,
                                                    **self.net_options)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval()
        self.loss_net_ema = copy.deepcopy(self.loss_net).requires_grad_(False).eval()
        # the objective it trained with, where known (build_model, train, load, and save
        # keeps it): one that trains no generator ("supervised") makes the model no sampler
        self.objective: str | None = None

    @property
    def noise_dim(self) -> int:
        return self.generator.noise_dim

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ classifier
    @torch.no_grad()
    def activations(self, x: Tensor, batch_size: int = 2048, ema: bool = True) -> Tensor:
        """Class activations a(x), (N, C), in eval mode, on the model's device. ``x``: images
        in [-1, 1] of the model's shape (N, C, H, W) (grey ones may be (N, H, W)), a tensor,
        numpy array or list; other shapes and integer pixels are a ValueError."""
        batch_size = _positive(batch_size, "batch_size")
        x = self._images(x)
        net = self.loss_net_ema if ema else self.loss_net
        dtype = next(net.parameters()).dtype       # float64 images (numpy's) as the weights'
        was = net.training
        net.eval()
        try:
            out = [net(x[i:i + batch_size].to(self.device, dtype))
                   for i in range(0, len(x), batch_size)]
        finally:
            net.train(was)
        return torch.cat(out) if out else torch.empty(0, self.num_classes, device=self.device)

    def _images(self, x: Any) -> Tensor:
        """``x`` as an image tensor of this model's shape, or a ValueError saying what to
        change (the networks' own errors name matrix sizes, not images)."""
        t = torch.as_tensor(x)
        if not t.is_floating_point():
            raise ValueError(f"images must be floating-point, in [-1, 1], got dtype {t.dtype}; "
                             f"for 8-bit pixels use x.float() / 127.5 - 1")
        if t.dim() == 3 and self.image_shape[0] == 1:      # grey images without a channel
            t = t.unsqueeze(1)
        if t.dim() != 4 or tuple(t.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"images must be (N, {', '.join(map(str, self.image_shape))}) "
                             f"(N, channels, height, width), as the model was built, got shape "
                             f"{tuple(t.shape)}" + ("; channels-last images need "
                                                   "x.permute(0, 3, 1, 2)" if t.dim() == 4 and
                                                   tuple(t.shape[1:]) == (*self.image_shape[1:],
                                                                          self.image_shape[0])
                                                   else ""))
        return t

    @torch.no_grad()
    def loss(self, x: Tensor, y: Tensor, form: str = "semi", ema: bool = True) -> Tensor:
        """L(x, y) per sample (N,); lower means "real and of class y"."""
        y = as_labels(y, self.num_classes)
        if len(y) != len(x):
            raise ValueError(f"loss takes one label per image: {len(x)} images, {len(y)} labels")
        return conditional_loss(self.activations(x, ema=ema), y.to(self.device), form)

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 2048, ema: bool = True) -> Tensor:
        """argmin_y L(x, y) = argmax_y a_y(x): (N,) class ids."""
        return self.activations(x, batch_size, ema).argmax(dim=1)

    # ------------------------------------------------------------------ sampler
    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Uniform noise in [-1, 1], (n, noise_dim), drawn on the CPU (same on any device)."""
        return to_device(torch.rand(n, self.noise_dim, generator=generator) * 2 - 1, self.device)

    @torch.no_grad()
    def sample(self, labels: Tensor, generator: torch.Generator | None = None,
               ema: bool = True, batch_size: int = 4096) -> Tensor:
        """Images of the given classes, (N, C, H, W) in [-1, 1], on the model's device.

        ``generator`` (a CPU ``torch.Generator``) makes the noise reproducible.
        """
        labels = as_labels(labels, self.num_classes)
        batch_size = _positive(batch_size, "batch_size")
        net = self.generator_ema if ema else self.generator
        was = net.training
        net.eval()
        out = None
        try:
            for start in range(0, len(labels), batch_size):
                chunk = labels[start:start + batch_size]
                images = net(self.noise(len(chunk), generator), to_device(chunk, self.device))
                if out is None:                   # filled in place: the result is held once
                    out = images.new_empty((len(labels), *images.shape[1:]))
                out[start:start + len(chunk)] = images
        finally:
            net.train(was)
        return out if out is not None else torch.empty(0, *self.image_shape, device=self.device)

    def forward(self, labels: Tensor) -> Tensor:  # so the model is a "labels -> images" sampler
        return self.sample(labels)

    def sample_per_class(self, per_class: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        """``per_class`` images of every class, class-major: (images, labels)."""
        per_class = _count(per_class, "per_class")
        seed = _integer(seed, "seed")
        labels = torch.arange(self.num_classes).repeat_interleave(per_class)
        return self.sample(labels, torch.Generator().manual_seed(seed)), labels

    def standing_statistics(self, samples: int = 20000, batch_size: int = 128,
                            seed: int = 0) -> bool:
        """Re-estimate the BatchNorm statistics of the averaged generator (the sampler) from
        ``samples`` images of its own: "standing statistics" (Brock et al. 2019, BigGAN).
        Noise as in :meth:`sample`, labels balanced over the classes in a seeded shuffle,
        near-equal batches of at most ``batch_size``, a cumulative average
        (:func:`ganaug.nets.estimate_batchnorm`); the global RNG is not touched. Returns
        False, having done nothing, for a generator without BatchNorm (``g_norm="none"``).

        Why: ``generator_ema`` inherits the running statistics of the generator it averages,
        gathered for other weights; these are its own. Measured on the default job (docs/cli.md,
        "--standing-stats"): samples closer to the real images in all six seeds (lower FID,
        higher recall), but no gain for a classifier trained with them mixed in.

        Fewer than 5 images per class warn (``StandingStatsWarning``): statistics of so few
        images are noise. On the default job's run (seed 0, 10 classes), 2 images left 98%
        of the pixels saturated and 14% of the samples on their label by the run's own
        classifier, 5 images 81%, 10 images 93%, 50 or more 95%, as without re-estimating.
        """
        samples = _count(samples, "samples", least=2)
        batch_size = _count(batch_size, "batch_size", least=2)
        if samples < 5 * self.num_classes and _has_batchnorm(self.generator_ema):
            warnings.warn(f"standing statistics from {samples} images for {self.num_classes} "
                          f"classes: so few make noisy BatchNorm statistics and poor samples "
                          f"(on digits, 2 images left 14% of the samples on their label, 50 "
                          f"or more as many as without re-estimating); use at least "
                          f"{5 * self.num_classes}, e.g. 2048", StandingStatsWarning, stacklevel=2)
        g = torch.Generator().manual_seed(_integer(seed, "seed"))
        labels = torch.arange(samples) % self.num_classes
        return estimate_batchnorm(
            self.generator_ema,
            ((self.noise(len(idx), g), to_device(labels[idx], self.device))
             for idx in even_batches(samples, batch_size, g)))

    # ------------------------------------------------------------------ persistence
    def spec(self) -> dict:
        """Everything needed to rebuild the networks, as primitives."""
        return _prim({"image_shape": list(self.image_shape), "num_classes": self.num_classes,
                      "arch": self.arch, "classes": self.classes, "net_options": self.net_options})

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> None:
        """Atomically write a checkpoint that loads with ``torch.load(weights_only=True)``
        (with the objective it trained with, where known)."""
        known = {"objective": self.objective} if getattr(self, "objective", None) else {}
        atomic_torch_save(path, {"format": "ganaug", "version": CHECKPOINT_VERSION,
                                 "model": self.spec(), "state": self.state_dict(), **known,
                                 **(extra or {})})

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "CLSGAN":
        try:
            spec = ckpt["model"]
            # its initial weights are replaced below: drawing them leaves the caller's RNG be
            with torch.random.fork_rng(devices=[]):
                model = cls(spec["image_shape"], spec["num_classes"], spec["arch"],
                            spec["classes"], **spec["net_options"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint does not describe a ganaug model "
                                  f"({type(e).__name__}: {e}); it was written by another "
                                  f"program or edited") from None
        state = ckpt.get("state")
        if not isinstance(state, dict):
            raise CheckpointError("checkpoint holds no model weights (no 'state' dict)")
        fit = _fitting(model, state)
        if fit:
            raise CheckpointError(f"the checkpoint's weights do not fit the networks its spec "
                                  f"describes: {fit}; it was written by another ganaug version "
                                  f"or edited")
        result = model.load_state_dict(state, strict=False)
        bad = [f"{len(keys)} {what} (e.g. {keys[0]!r})" for what, keys in
               (("missing", result.missing_keys), ("unexpected", result.unexpected_keys)) if keys]
        if bad:
            raise CheckpointError(f"the checkpoint's weights do not fit the networks its spec "
                                  f"describes: {', '.join(bad)} keys; it was written by another "
                                  f"ganaug version or edited")
        return model

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: Any = "cpu",
             need_generator: bool = False) -> "CLSGAN":
        """Load a model from a checkpoint file or a run folder (its ``checkpoint.pt``).
        ``need_generator``: refuse a run whose objective trains no generator (its samples
        would be noise from the initial weights). ``map_location``: the device to load the
        model onto (``"auto"`` too); another value ``torch.load`` takes (a function, a dict)
        maps the checkpoint's tensors, and the model is built on the CPU."""
        if isinstance(map_location, (str, torch.device)):
            map_location = pick_device(map_location)      # a clear error for a bad device
        ckpt = safe_torch_load(run_checkpoint(path), map_location)
        objective = (ckpt.get("config") or {}).get("objective", ckpt.get("objective"))
        if need_generator and not trains_generator(objective):
            raise CheckpointError(f"{path} {no_generator(objective)}")
        model = cls.from_checkpoint(ckpt)
        model.objective = objective if isinstance(objective, str) else None
        return model.to(map_location) if isinstance(map_location, torch.device) else model


def trains_generator(objective: str | None) -> bool:
    """False for an objective that trains no generator (``supervised``); True otherwise,
    unknown ones and None included."""
    return not (objective in OBJECTIVES and OBJECTIVES[objective].critic == "none")


def no_generator(objective: str) -> str:
    """Why a model of ``objective`` (one that trains no generator) is no sampler."""
    return (f"was trained with objective {objective!r}, which trains no generator: its "
            f"samples would be noise; sample from a run of a GAN objective (sscls, cls, ...)")


class StandingStatsWarning(UserWarning):
    """Standing statistics asked of too few images (``CLSGAN.standing_statistics``)."""


def _has_batchnorm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def _concrete(device: str | torch.device) -> torch.device:
    """``cuda`` -> ``cuda:<current>``, so that the two spellings of one GPU compare equal."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return dev


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU. ganaug runs on the CPU and on CUDA GPUs: any
    other device, and ``cuda`` without a GPU, is a clear error."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {str(name)!r}; use auto, cpu, cuda or cuda:N (ganaug "
                         f"runs on the CPU and on CUDA GPUs)")
    if dev.type == "cpu":                 # cpu:0 is the CPU too, and torch.load's
        return torch.device("cpu")        # map_location takes only the plain one
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(name)!r} was asked for but no CUDA GPU is available; "
                         "use --device cpu or auto (device='cpu' or 'auto' in Python)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(name)!r} was asked for but this machine has "
                         f"{torch.cuda.device_count()} GPU(s) (cuda:0 ...); pick one of those")
    return dev


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """A CPU tensor on ``device``; to CUDA through pinned memory without blocking the host,
    so the host prepares the next chunk or batch while the GPU works on this one."""
    if device.type == "cuda" and t.device.type == "cpu":
        return t.contiguous().pin_memory().to(device, non_blocking=True)
    return t.to(device)                           # a no-op when it is there already


def _fitting(model: nn.Module, state: dict) -> str:
    """'' when every tensor of ``state`` that the model has is of the model's shape, else
    how many differ and the first (load_state_dict would list them all, one per line)."""
    own = model.state_dict()
    off = [k for k, v in state.items()
           if k in own and isinstance(v, Tensor) and v.shape != own[k].shape]
    if not off:
        return ""
    k = off[0]
    return (f"{len(off)} tensors of another shape (e.g. {k!r}: {tuple(state[k].shape)} in the "
            f"file, {tuple(own[k].shape)} in the network)")


def as_labels(labels: Any, num_classes: int | None = None) -> Tensor:
    """Class ids as a 1-D LongTensor (on their own device); ValueError for float or bool ids
    (``probs * C`` would silently sample the wrong classes), other shapes, or ids outside
    [0, num_classes)."""
    t = torch.as_tensor(labels)
    if t.numel() == 0 and t.dim() == 1:
        return t.long()                           # torch.as_tensor([]) is float32
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise ValueError(f"labels must be integer class ids, got dtype {t.dtype}; "
                         f"round and convert them yourself (.long()) if that is what you mean")
    if t.dim() != 1:
        raise ValueError(f"labels must be 1-D, got shape {tuple(t.shape)}")
    t = t.long()
    if num_classes is not None and t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got "
                         f"[{int(t.min())}, {int(t.max())}]")
    return t


def _integer(v: Any, name: str) -> int:
    """An integer (numpy's too; not a bool, float or string), or a ValueError naming ``name``."""
    n = as_int(v)
    if n is None:
        raise ValueError(f"{name} must be an integer, got {v!r}")
    return n


def _count(v: Any, name: str, least: int = 0) -> int:
    """An integer >= ``least`` (0: non-negative, 1: positive), or a ValueError naming
    ``name``."""
    n = as_int(v)
    if n is None or n < least:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
            least, f"an integer of at least {least}")
        raise ValueError(f"{name} must be {kind}, got {v!r}")
    return n


def _positive(v: Any, name: str) -> int:
    return _count(v, name, least=1)


def _prim(obj: Any) -> Any:
    """Tuples -> lists and numpy scalars -> Python's, recursively, so specs survive JSON and
    weights_only loading."""
    obj = plain(obj)
    if isinstance(obj, (list, tuple)):
        return [_prim(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _prim(v) for k, v in obj.items()}
    return obj
