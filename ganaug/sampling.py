"""Samplers for the mixing tools: a trained ganaug model (object, run folder or checkpoint)
or any callable ``labels -> images``, checked once, seeded per call, and the image formats
(tensor, PIL, numpy) that synthetic items must match."""
from __future__ import annotations

import copy
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from .imbalance import is_float_dtype as _is_float
from .model import CLSGAN, _concrete, as_labels, no_generator, trains_generator
from .step import _derive_seed
from .train import pick_device


def _device_of(obj: Any) -> torch.device:
    dev = getattr(obj, "device", None)
    if isinstance(dev, (torch.device, str)):
        return torch.device(dev)
    if isinstance(obj, torch.nn.Module):
        for p in obj.parameters():
            return p.device
    return torch.device("cpu")


class Sampler:
    """A labels -> images function with a seed: ``sampler(labels, seed)`` returns
    (N, C, H, W) floats in [-1, 1] on ``self.device``; a pure function of (labels, seed).

    ``classifier`` (images -> logits) is there when the sampler is a ganaug model, for the
    quality gate.
    """

    def __init__(self, source: Any, device: str | torch.device | None = None):
        if device is not None or isinstance(source, (str, os.PathLike)):
            device = pick_device("auto" if device is None else device)  # a clear error first
        if isinstance(source, (str, os.PathLike)):
            source = CLSGAN.load(source, map_location=device, need_generator=True)
        elif isinstance(source, CLSGAN) and device is not None and \
                _concrete(device) != _concrete(source.device):
            source = copy.deepcopy(source).to(device)       # the caller's model stays put
        objective = getattr(source, "objective", None)   # an older ganaug's pickle: none
        if isinstance(source, CLSGAN) and not trains_generator(objective):
            raise ValueError(f"the sampler (a CLSGAN) {no_generator(objective)}")
        if not callable(source):
            raise TypeError(f"sampler must be a ganaug model, a run folder or checkpoint path, or "
                            f"a callable labels -> images; got {type(source).__name__}")
        self.source = source
        self.model = source if isinstance(source, CLSGAN) else None
        self.device = self.model.device if self.model is not None else _device_of(source)
        self.num_classes = self.model.num_classes if self.model is not None else None
        self.classifier: Callable[[Tensor], Tensor] | None = (
            self.model.activations if self.model is not None else None)

    @torch.no_grad()
    def __call__(self, labels: Tensor, seed: int) -> Tensor:
        """A ganaug model draws its noise from its own generator. A callable draws from
        torch's global RNG (the CPU one, and its device's when that is a GPU), seeded here
        and restored afterwards: random numbers drawn by other threads meanwhile change
        its output."""
        if self.model is not None:                # it checks its labels itself
            return self.model.sample(labels, torch.Generator().manual_seed(seed))
        labels = as_labels(labels)
        dev = _concrete(self.device)
        cuda = dev.type == "cuda"
        with torch.random.fork_rng(devices=[dev.index] if cuda else []):
            torch.default_generator.manual_seed(seed)
            if cuda:
                with torch.cuda.device(dev.index):
                    torch.cuda.manual_seed(seed)
            return self.source(labels.to(self.device))

    def check(self, num_classes: int, image_shape: tuple[int, ...] | None) -> tuple[int, ...]:
        """Probe once (one image per class) and raise ValueError on anything off; returns
        the sampler's image shape (C, H, W)."""
        if self.num_classes is not None and self.num_classes != num_classes:
            raise ValueError(f"the sampler was trained for {self.num_classes} classes but the data "
                             f"has {num_classes}; train a CLS-GAN on this dataset's classes")
        labels = torch.arange(num_classes)
        try:
            out = self(labels, seed=0)
        except Exception as e:
            raise ValueError(f"the sampler failed on labels 0..{num_classes - 1}: "
                             f"{type(e).__name__}: {e}") from None
        if not isinstance(out, Tensor):
            raise ValueError(f"the sampler must return a torch.Tensor, got {type(out).__name__}")
        if out.dim() != 4 or len(out) != num_classes:
            raise ValueError(f"the sampler must return (N, C, H, W) for N labels; for "
                             f"{num_classes} labels it returned shape {tuple(out.shape)}")
        if not out.is_floating_point():
            raise ValueError(f"the sampler must return floating-point images in [-1, 1], got "
                             f"dtype {out.dtype}")
        if not bool(torch.isfinite(out).all()):
            raise ValueError("the sampler returned non-finite values (NaN or inf)")
        lo, hi = float(out.min()), float(out.max())
        if lo < -1.001 or hi > 1.001:
            raise ValueError(f"the sampler must return images in [-1, 1] (tanh range); its "
                             f"values span [{lo:.3g}, {hi:.3g}]")
        shape = tuple(out.shape[1:])
        if image_shape is not None and shape != tuple(image_shape):
            grey = shape[0] == 1 and tuple(image_shape) == (3, *shape[1:])
            last = tuple(image_shape) == (shape[1], shape[2], shape[0])
            made_last = shape == (image_shape[1], image_shape[2], image_shape[0])
            fix = ("the data are grey images read as RGB (torchvision's ImageFolder converts "
                   "every image to RGB): add transforms.Grayscale() to the dataset's "
                   "transform" if grey else
                   "the items look channels-last (H, W, C): tensor items are (C, H, W), so "
                   "permute them (x.permute(2, 0, 1), e.g. in the dataset's transform)" if last
                   else "the sampler's images look channels-last (N, H, W, C): a sampler "
                   "returns (N, C, H, W), so permute its output (x.permute(0, 3, 1, 2))"
                   if made_last else "train the sampler on this data or resize the data to match")
            raise ValueError(f"the sampler makes images of shape {shape} but the real items "
                             f"are {tuple(image_shape)} (C, H, W); {fix}")
        return shape


def seed_for(seed: int, *keys: int) -> int:
    return _derive_seed(seed, *keys)


# ---------------------------------------------------------------------------- item formats
@dataclass
class ItemFormat:
    """How the real items look, so synthetic items can look the same.

    kind: "tensor", "numpy" or "pil"; layout "CHW", "HWC" (numpy only) or "HW" (one channel,
    none stored: a grey image as a 2-D array or tensor); dtype; value range (lo, hi) that
    [-1, 1] maps onto; mode for PIL ("L" or "RGB"); tensor_type, the items' tensor class
    when it is a subclass (torchvision's ``tv_tensors.Image``, whose v2 transforms treat it
    apart from a plain tensor).
    """
    kind: str
    shape_chw: tuple[int, int, int]
    dtype: Any = None
    value_range: tuple[float, float] = (-1.0, 1.0)
    layout: str = "CHW"
    mode: str | None = None
    tensor_type: type | None = None

    def from_unit(self, x: Tensor) -> Tensor:
        """(N, C, H, W) in [-1, 1] -> the storage form: uint8 for PIL / integer items,
        else floats in ``value_range``; on the CPU."""
        lo, hi = self.value_range
        y = lo + (x.float().clamp(-1, 1) + 1) * 0.5 * (hi - lo)
        if self.kind == "pil" or not _is_float(self.dtype):
            return y.round().clamp(lo, hi).to(torch.uint8 if hi <= 255 and lo >= 0 else torch.int64).cpu()
        return y.cpu()

    def to_item(self, x: Tensor) -> Any:
        """One stored (C, H, W) image -> the real items' type."""
        if self.kind == "pil":
            from PIL import Image
            arr = x.to(torch.uint8).permute(1, 2, 0).numpy()
            return Image.fromarray(arr[..., 0] if self.mode == "L" else arr, mode=self.mode)
        if self.layout == "HW":
            x = x[0]
        if self.kind == "numpy":
            arr = x.numpy()
            if self.layout == "HWC":
                arr = np.ascontiguousarray(arr.transpose(1, 2, 0))
            return arr.astype(self.dtype, copy=False)
        x = x.to(self.dtype)
        return x.as_subclass(self.tensor_type) if self.tensor_type is not None else x


def check_value_range(value_range: Any) -> tuple[Any, Any]:
    """``(lo, hi)`` as given, or a ValueError unless it is two finite numbers with lo < hi
    (reversed ends would invert the synthetic images, equal ones blank them)."""
    try:
        lo, hi = value_range
        ok = (not any(isinstance(v, (bool, str, bytes)) for v in (lo, hi))
              and math.isfinite(float(lo)) and math.isfinite(float(hi)) and float(lo) < float(hi))
    except (TypeError, ValueError, RuntimeError):
        ok = False
    if not ok:
        raise ValueError(f"value_range must be two finite numbers (lo, hi) with lo < hi, the "
                         f"range of the real images' values (e.g. (0, 1) or (0, 255)); got "
                         f"{value_range!r}")
    return lo, hi


def range_mismatch(x_lo: float, x_hi: float, lo: float, hi: float) -> str | None:
    """How images whose values span [x_lo, x_hi] do not look like images in the value
    range (lo, hi), or None when they do: "outside" (they leave it), "none below 0" (the
    range goes below 0 and they do not, e.g. [0, 1] images given (-1, 1)) or "narrow" (they
    use under 2% of it, e.g. [0, 1] images given (0, 255))."""
    if x_lo < lo - 1e-3 * (hi - lo) or x_hi > hi + 1e-3 * (hi - lo):
        return "outside"
    if lo < 0 and x_lo >= -1e-6 * (hi - lo):      # (a rounding error below 0 is none)
        return "none below 0"
    if 0 < x_hi - x_lo < 0.02 * (hi - lo):
        return "narrow"
    return None


def _check_given_range(vals: Tensor, value_range: tuple[Any, Any]) -> None:
    """A ValueError when the probed items' values go far outside the ``value_range`` given
    for them (by more than half its width, e.g. 0..255 items given (0, 1): their synthetic
    peers would be on another scale; a resize's small overshoot is fine), a warning when
    they do not look like it (none below 0 for a range that goes below 0, or under 2% of it
    used)."""
    lo, hi = float(value_range[0]), float(value_range[1])
    x_lo, x_hi = float(vals.min()), float(vals.max())
    how = range_mismatch(x_lo, x_hi, lo, hi)
    seen = f"the real items' values span [{x_lo:.3g}, {x_hi:.3g}]"
    if how == "outside" and (x_lo < lo - (hi - lo) / 2 or x_hi > hi + (hi - lo) / 2):
        raise ValueError(f"value_range=({lo:g}, {hi:g}) but {seen}, far outside it, so the "
                         f"synthetic items would be on another scale; pass the range the "
                         f"items' values are in (e.g. (0, 255) for 8-bit values), or leave "
                         f"value_range out for uint8, [0, 1] or [-1, 1] items")
    if how in ("none below 0", "narrow"):
        guess = " (e.g. (0, 1))" if 0 <= x_lo and x_hi <= 1 else ""
        warnings.warn(f"value_range=({lo:g}, {hi:g}) but {seen}"
                      f"{', none below 0' if how == 'none below 0' else ', under 2% of it'}: "
                      f"are they in another range{guess}? The synthetic items fill "
                      f"value_range; pass the range the items' values are in", stacklevel=4)
    elif x_lo < 0 and (x_lo < -1.001 or x_hi > 1.001) and (spans := channel_spans_apart(vals)):
        # (past [-1, 1], as a mean and std nearly always takes images: RGB images inside
        # it whose colours differ, a few items of one class, say, are plain data)
        warnings.warn(f"value_range=({lo:g}, {hi:g}) is one range for every channel, but the "
                      f"real items' channels span different ranges "
                      f"({spans}): images normalised per channel (a mean and "
                      f"std for each)? The synthetic items' colours would be shifted. Leave the "
                      f"normalisation out of the real dataset and pass it as SyntheticMix's "
                      f"transform= (it then runs on the real and synthetic items alike), with "
                      f"value_range for the items before it", stacklevel=4)


CHANNEL_SPREAD = 0.05    # channels whose lowest and highest values both differ by more than
#                          this share of the whole span: normalised per channel


def channel_spans_apart(vals: Tensor) -> str | None:
    """RGB items' channel spans ("[lo, hi], [lo, hi], [lo, hi]") when they clearly differ
    (both ends apart by over ``CHANNEL_SPREAD`` of the whole span), as after a per-channel
    mean/std normalisation; else None. ``vals``: (N, C, H, W) or (N, H, W, C) items, the
    channel axis the one of 3 entries next to the image axes."""
    if vals.dim() != 4 or 3 not in (vals.shape[1], vals.shape[-1]):
        return None
    ch = 1 if vals.shape[1] == 3 else vals.dim() - 1
    flat = vals.movedim(ch, 0).reshape(vals.shape[ch], -1)
    lows, highs = flat.min(1).values, flat.max(1).values
    span = float(highs.max() - lows.min())
    if span > 0 and float(lows.max() - lows.min()) > CHANNEL_SPREAD * span and \
            float(highs.max() - highs.min()) > CHANNEL_SPREAD * span:
        return ", ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(lows.tolist(), highs.tolist()))
    return None


def item_layout(first: Any) -> tuple[str, str, tuple[int, int, int]]:
    """``(kind, layout, (C, H, W))`` of one real item's image ("pil", "numpy" or "tensor";
    "CHW", "HWC" or "HW"), or a ValueError naming what it cannot be."""
    if hasattr(first, "getbands") and hasattr(first, "size"):        # PIL.Image
        if first.mode not in ("L", "RGB"):
            raise ValueError(f"PIL images of mode {first.mode!r} are not supported; convert the "
                             f"real items to 'L' or 'RGB'")
        w, h = first.size
        return "pil", "CHW", (1 if first.mode == "L" else 3, h, w)
    if isinstance(first, np.ndarray):
        if first.ndim not in (2, 3):
            raise ValueError(f"numpy items must be images (H, W), (H, W, C) or (C, H, W), got "
                             f"shape {first.shape}")
        if first.ndim == 2:
            return "numpy", "HW", (1, *first.shape)
        if first.shape[-1] in (1, 3) and first.shape[0] not in (1, 3):
            return "numpy", "HWC", (first.shape[2], first.shape[0], first.shape[1])
        return "numpy", "CHW", tuple(first.shape)
    if isinstance(first, Tensor):
        if first.dim() not in (2, 3):
            raise ValueError(f"tensor items must be images (C, H, W), or (H, W) with one "
                             f"channel, got shape {tuple(first.shape)}")
        return ("tensor", "HW", (1, *first.shape)) if first.dim() == 2 else \
            ("tensor", "CHW", tuple(first.shape))
    raise ValueError(f"cannot mix synthetic images into items of type {type(first).__name__}; "
                     f"the real dataset must yield (image, label) with a tensor, numpy array or "
                     f"PIL image")


def infer_format(items: list[Any], value_range: tuple[float, float] | None = None) -> ItemFormat:
    """Read a few real items (their images) and describe their format; a ``value_range``
    given for them is checked against their values."""
    if value_range is not None:
        value_range = check_value_range(value_range)
    first = items[0]
    kind, layout, shape = item_layout(first)
    shape = tuple(int(v) for v in shape)
    if kind == "pil":
        if value_range is not None and (float(value_range[0]), float(value_range[1])) != (0, 255):
            raise ValueError(f"value_range={tuple(value_range)!r} but the real items are PIL "
                             f"images, whose values are 0..255 whatever comes after them (a "
                             f"ToTensor() in SyntheticMix's transform= runs on the synthetic "
                             f"items too); leave value_range out for PIL items")
        return ItemFormat("pil", shape, None, (0, 255), mode=first.mode)
    if kind == "numpy":
        vals = torch.as_tensor(np.stack([np.asarray(i, dtype=np.float64) for i in items]))
    else:
        vals = torch.stack([i.double() for i in items])
    if value_range is not None:
        _check_given_range(vals, value_range)
    else:
        value_range = _guess_range(vals, first.dtype)
        _warn_partial_guess(vals, value_range)
    sub = type(first) if kind == "tensor" and type(first) is not Tensor else None
    return ItemFormat(kind, shape, first.dtype, value_range, layout, tensor_type=sub)


def _guess_range(vals: Tensor, dtype: Any) -> tuple[float, float]:
    """The value range of the probed items: [0, 1] or [-1, 1] for floats that stay inside
    it, [0, 255] for uint8 and for other values that reach past 127 without leaving
    [0, 255]. Anything else (12-bit integers, floats on a 0..16 scale, normalised data)
    cannot be told from a few items and raises."""
    lo, hi = float(vals.min()), float(vals.max())
    is_float = _is_float(dtype)
    if _is_uint8(dtype):
        return (0.0, 255.0)
    if is_float and lo >= -1e-6 and hi <= 1 + 1e-6:
        return (0.0, 1.0)
    if is_float and lo >= -1 - 1e-6 and hi <= 1 + 1e-6:
        return (-1.0, 1.0)
    if lo >= -1e-6 and 127 < hi <= 255 + 1e-6:
        return (0.0, 255.0)
    raise ValueError(f"cannot tell the real items' value range (they span [{lo:.3g}, {hi:.3g}]"
                     f"{'' if is_float else ', integers'}: normalised, or not 8-bit?); for "
                     f"images normalised with a mean and std, leave the normalisation out of "
                     f"the real dataset and pass it as SyntheticMix's transform= (it runs on "
                     f"the real and synthetic items alike); for values on another scale, pass "
                     f"value_range=(lo, hi), one range for every channel (e.g. (0, 4095) for "
                     f"12-bit, (0, 16) for scikit-learn's digits)")


PARTIAL_GUESS_ITEMS = 8   # fewer probed items (a tiny dataset) may all be low in contrast


def _warn_partial_guess(vals: Tensor, guess: tuple[float, float]) -> None:
    """A guessed (-1, 1) whose ends ``PARTIAL_GUESS_ITEMS`` or more probed items do not come
    near (both more than 0.25 inside: e.g. centred ``x - 0.5`` images): the synthetic items
    would fill [-1, 1] and so differ from the real ones in scale."""
    lo, hi = float(vals.min()), float(vals.max())
    if guess == (-1.0, 1.0) and lo > -0.75 and hi < 0.75 and len(vals) >= PARTIAL_GUESS_ITEMS:
        warnings.warn(f"the real items' values span [{lo:.3g}, {hi:.3g}], inside [-1, 1] "
                      f"without coming near its ends, and were taken as in (-1, 1): the "
                      f"synthetic items fill it, so they would be on another scale if the real "
                      f"items are centred or normalised data; pass value_range=(lo, hi) for "
                      f"the range of their values, or leave the normalisation out of the real "
                      f"dataset and pass it as SyntheticMix's transform=", stacklevel=4)


def _is_uint8(dtype: Any) -> bool:
    return dtype == torch.uint8 if isinstance(dtype, torch.dtype) else np.dtype(dtype) == np.uint8


def to_hwc_uint8(x: Any, fmt: ItemFormat) -> np.ndarray:
    """An item in ``fmt`` -> numpy HWC uint8 (what albumentations expects)."""
    if fmt.kind == "pil":
        arr = np.asarray(x)
        return arr[..., None] if arr.ndim == 2 else arr
    t = torch.as_tensor(np.asarray(x)) if fmt.kind == "numpy" else x
    if fmt.layout == "HW":
        t = t[None]
    elif fmt.kind == "numpy" and fmt.layout == "HWC":
        t = t.permute(2, 0, 1)
    lo, hi = fmt.value_range
    t = ((t.double() - lo) / (hi - lo) * 255).round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(t.permute(1, 2, 0).numpy())


def from_hwc_uint8(arr: np.ndarray, fmt: ItemFormat) -> Any:
    """Inverse of ``to_hwc_uint8``: back to the items' own type and range."""
    if fmt.kind == "pil":
        from PIL import Image
        return Image.fromarray(arr[..., 0] if fmt.mode == "L" else arr, mode=fmt.mode)
    if arr.ndim == 2:
        arr = arr[..., None]
    t = torch.as_tensor(np.ascontiguousarray(arr)).permute(2, 0, 1).double() / 255
    lo, hi = fmt.value_range
    t = lo + t * (hi - lo)
    if fmt.layout == "HW":
        t = t[0]
    if fmt.kind == "numpy":
        out = t.permute(1, 2, 0).numpy() if fmt.layout == "HWC" else t.numpy()
        return (out.round() if not _is_float(fmt.dtype) else out).astype(fmt.dtype)
    t = t.round().to(fmt.dtype) if not _is_float(fmt.dtype) else t.to(fmt.dtype)
    return t.as_subclass(fmt.tensor_type) if fmt.tensor_type is not None else t


def is_albumentations(transform: Any) -> bool:
    return type(transform).__module__.split(".")[0] == "albumentations"


def import_albumentations():
    """Import albumentations lazily, without its update check (NO_ALBUMENTATIONS_UPDATE=1)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        import albumentations
    except ImportError:
        raise ImportError("albumentations is not installed: pip install albumentations") from None
    return albumentations
