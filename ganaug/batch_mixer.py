"""``BatchMixer``: fresh synthetic samples mixed into every training batch on its device
(see ``mix.py`` for ``SyntheticMix``, the dataset that mixes a bank of them)."""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .checks import pair_distances, per_class, pooled, relative_spread, warn_diversity, \
    warn_label_agreement
from .mix import (_check_class_probs, _check_fraction, _check_positive_int, _check_seed,
                  _check_transform, _warn_if_training, _warn_sampler_range, gate_mask)
from .model import _concrete
from .sampling import Sampler, check_value_range, range_mismatch, seed_for

LABEL_CHECK = 20         # BatchMixer's default: samples per class it checks at construction


class BatchMixer:
    """Fresh synthetic samples for every training step, generated on the batch's device.

    ``mixer(x, y)`` returns ``(x', y')``: with ``mode="append"`` the batch grows so that a
    share ``fraction`` of it is synthetic; with ``mode="replace"`` the last
    ``round(fraction * B)`` items are replaced. Labels come from the batch's own labels
    (``labels="batch"``), uniformly (``"uniform"``) or from ``class_probs``; the batch's
    labels must have an integer dtype (floats are refused). With ``labels="batch"`` every
    label of the batch must be a class id in [0, num_classes), checked at every call
    (labels on a GPU: at the first call only, to spare a host sync per step): for batches
    with unlabeled items (-1) pass ``"uniform"`` or ``class_probs``. Images are mapped from
    [-1, 1] to ``value_range`` (lo < hi: the batch's range before ``transform``) and through
    ``transform`` (a tensor function on the device, e.g. normalisation), then cast to the
    batch's dtype (rounded for integer batches). Labels, and a ganaug model's noise, are
    drawn with a generator on the device seeded with ``seed``, without a host round-trip:
    under data parallelism give each rank its own (``seed=base_seed + rank``), or every rank
    draws the same synthetic images. A callable sampler draws its own noise, so ``seed``
    fixes its labels only. A callable is called as it is: an ``nn.Module`` in training mode
    gets a warning to call ``.eval()`` first, and images that all stay in [0, 1] (a sigmoid
    head) a warning at the first call.

    When the sampler has a classifier (a ganaug model, or ``classifier=``: images in
    [-1, 1] -> class logits), the constructor generates ``label_check`` samples per class
    (default 20; 0 skips it) from seeds of their own, so the batches' samples are the same
    either way, and ``label_agreement`` is the share that the classifier assigns to
    their label. Under 0.75 (``LABEL_AGREEMENT_WARN``) a ``LabelAgreementWarning`` says
    that the samples carry their labels poorly and what to do; else it is ``None``.

    The same probe (with or without a classifier) is the synthetic side of the diversity
    check (see ``SyntheticMix``), and the first batches its real side: ``diversity`` is set
    once two classes have had two labeled items in a batch (one host sync per batch until
    then; after ten batches without, it stays ``None``), with a ``DiversityWarning`` under
    0.6. ``label_check=0`` skips both checks.
    """

    def __init__(self, sampler: Any, fraction: float, *, mode: str = "append",
                 labels: str = "batch", class_probs: Sequence[float] | None = None,
                 num_classes: int | None = None, value_range: tuple[float, float] = (-1.0, 1.0),
                 transform: Callable[[Tensor], Tensor] | None = None, seed: int = 0,
                 device: str | torch.device | None = None,
                 classifier: Callable[[Tensor], Tensor] | None = None,
                 label_check: int = LABEL_CHECK):
        _check_fraction(fraction)
        _check_seed(seed)
        if num_classes is not None:
            _check_positive_int("num_classes", num_classes, "the number of classes")
        _check_class_probs(class_probs)
        _check_transform(transform)
        if mode not in ("append", "replace"):
            raise ValueError(f"mode must be 'append' or 'replace', got {mode!r}")
        if class_probs is None and labels not in ("batch", "uniform"):
            raise ValueError(f"labels must be 'batch' or 'uniform' (or pass class_probs), got "
                             f"{labels!r}")
        value_range = check_value_range(value_range)
        self.sampler = Sampler(sampler, device)
        _warn_if_training(self.sampler, "BatchMixer")
        C = num_classes or self.sampler.num_classes or (
            len(class_probs) if class_probs is not None else None)
        if C is None:
            raise ValueError("pass num_classes= for a sampler that is not a ganaug model")
        self.image_shape = self.sampler.check(C, None)
        self.num_classes, self.fraction, self.mode, self.labels = C, fraction, mode, labels
        dev = self.sampler.device
        self.probs = None
        if class_probs is not None:
            p = torch.as_tensor(class_probs, dtype=torch.float, device=dev)
            if (p.shape != (C,) or not bool(torch.isfinite(p).all()) or bool((p < 0).any())
                    or float(p.sum()) <= 0):
                raise ValueError(f"class_probs must be {C} finite, non-negative numbers with a "
                                 f"positive sum, got {p.tolist()}")
            self.probs = p / p.sum()
        self.value_range, self.transform = value_range, transform
        self.gen = torch.Generator(device=dev).manual_seed(int(seed))
        self.model = self.sampler.model
        self._range_checked = False
        self._sampler_range_checked = False
        self._labels_checked = False
        if isinstance(label_check, bool) or not isinstance(label_check, int) or label_check < 0:
            raise ValueError(f"label_check must be a non-negative int (samples per class; 0 "
                             f"skips the check), got {label_check!r}")
        self.classifier = classifier or self.sampler.classifier
        self.label_agreement: float | None = None
        self.diversity: float | None = None
        # the probe's pair_distances, until the first batches give the real side's
        self._spread: tuple[Tensor, Tensor] | None = None
        self._real_spread: tuple[Tensor, Tensor] | None = None
        self._spread_calls = 0
        if label_check:
            self._probe(label_check, int(seed))
            warn_label_agreement(self.label_agreement, "BatchMixer",
                                 "mix it through SyntheticMix(gate=0.5)")

    @torch.no_grad()
    def _probe(self, n: int, seed: int, chunk: int = 1024) -> None:
        """Draw ``n`` samples of every class, as SyntheticMix draws (seeds of their own; a
        callable's global RNG restored afterwards, so ``self.gen`` and torch's RNG are left
        as they were). ``label_agreement``: the share that the classifier assigns to their
        label; the first ``per_class`` of each class are kept for the diversity check."""
        C = self.num_classes
        labels = torch.arange(C).repeat_interleave(n)
        keep = torch.arange(len(labels)) % n < per_class(C, cap=n)
        hits, kept = 0, []
        for i, (y, k) in enumerate(zip(labels.split(chunk), keep.split(chunk))):
            x = self.sampler(y, seed_for(seed, 0, i, 0))
            if self.classifier is not None:
                hits += int(gate_mask(self.classifier(x), y, 0.0).sum())
            kept.append(pooled(x[k.to(x.device)]))
        if self.classifier is not None:
            self.label_agreement = hits / len(labels)
        self._spread = pair_distances(torch.cat(kept), labels[keep], C)

    def _check_diversity(self, x: Tensor, y: Tensor, calls: int = 10) -> None:
        """The real side of the diversity check, from the first batches (one host sync
        each) until two classes have two labeled items or more; after ``calls`` batches
        without, it gives up (``diversity`` stays None)."""
        part = pair_distances(pooled(x), y, self.num_classes)
        self._real_spread = part if self._real_spread is None else (
            self._real_spread[0] + part[0], self._real_spread[1] + part[1])
        self._spread_calls += 1
        self.diversity = relative_spread(self._spread, self._real_spread)
        if self.diversity is not None or self._spread_calls >= calls:
            self._spread = self._real_spread = None
            warn_diversity(self.diversity, "BatchMixer", stacklevel=4)

    def _check_range(self, x: Tensor) -> None:
        """Once, on the first non-empty batch (one host sync; with a transform, one more for
        where it takes the range): warn when the real images do
        not look like ``value_range``, e.g. [0, 1] or uint8 batches with the default (-1, 1).
        With a ``transform`` (e.g. a normalisation), the batch is compared with where the
        transform takes the range's two ends (images of one value each), each channel's
        span mapped back linearly, which is exact for a per-channel affine transform such
        as Normalize (a mean and std per channel); a transform that fails on them skips
        the check."""
        self._range_checked = True
        lo, hi = self.value_range
        # each channel's span, read once (the one host sync): the batch's span is theirs
        c_lo, c_hi = (v.tolist() for v in torch.stack(
            torch.aminmax(x.detach().transpose(0, 1).flatten(1).float(), dim=1)).cpu())
        x_lo, x_hi = min(c_lo), max(c_hi)
        made = f"value_range=({lo:g}, {hi:g})"
        u_lo, u_hi = x_lo, x_hi
        if self.transform is not None:
            ends = self._transformed_ends(x)
            if ends is None:
                return
            e_lo, e_hi = ends                   # per channel: a mean and std for each
            back = []                           # each channel's span in value_range's units
            for x_a, x_b, a, b in zip(c_lo, c_hi, e_lo, e_hi):
                back += [lo + (v - a) / (b - a) * (hi - lo) for v in (x_a, x_b)]
            u_lo, u_hi = min(back), max(back)
            made += (f" and then the transform, which takes it to [{min(e_lo):.3g}, "
                     f"{max(e_hi):.3g}]")
        if range_mismatch(u_lo, u_hi, lo, hi):
            before = " before the transform" if self.transform is not None else ""
            warnings.warn(f"the batch's images span [{x_lo:.3g}, {x_hi:.3g}] but BatchMixer "
                          f"makes synthetic ones in {made}; pass value_range= your images' "
                          f"range{before} (e.g. (0, 1) or (0, 255))", stacklevel=3)

    @torch.no_grad()
    def _transformed_ends(self, x: Tensor) -> tuple[list[float], list[float]] | None:
        """Each channel's lowest value in the transform of an image all ``lo``, and highest
        in that of one all ``hi`` (torch's RNG left as it was), or None when the transform
        fails on them, changes their channels, or does not keep their order."""
        dev = _concrete(self.sampler.device)
        lo, hi = self.value_range
        try:
            with torch.random.fork_rng(devices=[dev.index] if dev.type == "cuda" else []):
                t_lo, t_hi = (torch.as_tensor(self.transform(
                    torch.full((1, *x.shape[1:]), float(v), device=dev))).float()
                    .transpose(0, 1).flatten(1) for v in (lo, hi))
            e_lo, e_hi = torch.stack([t_lo.min(1).values, t_hi.max(1).values]).tolist()
        except Exception:
            return None
        ok = len(e_lo) == x.shape[1] and all(
            math.isfinite(a) and math.isfinite(b) and a < b for a, b in zip(e_lo, e_hi))
        return (e_lo, e_hi) if ok else None

    def _check_labels(self, y: Tensor) -> None:
        """With ``labels="batch"`` the synthetic labels are drawn from the batch's: refuse
        any outside [0, C) (-1: unlabeled), not only when one is drawn. Every call for labels
        on the CPU; on a GPU, where it costs a host sync, the first call only."""
        if y.device.type != "cpu" and self._labels_checked:
            return
        self._labels_checked = True
        lo, hi = torch.stack([y.min(), y.max()]).tolist()
        if lo < 0 or hi >= self.num_classes:
            fix = ("-1 marks an unlabeled item: mix into the labeled items alone, or draw the "
                   "synthetic labels with labels='uniform' or class_probs=" if lo < 0 else
                   f"the sampler makes {self.num_classes} classes")
            raise ValueError(f"labels='batch' draws the synthetic labels from the batch's, "
                             f"which must be class ids in [0, {self.num_classes}); this batch's "
                             f"labels span [{lo}, {hi}] ({fix})")

    def count(self, batch_size: int) -> int:
        """Synthetic items added to (append) or placed in (replace) a batch of this size."""
        if self.mode == "append":
            return round(self.fraction * batch_size / (1 - self.fraction))
        return round(self.fraction * batch_size)

    @torch.no_grad()
    def generate(self, labels: Tensor) -> Tensor:
        """Images of ``labels`` (on the sampler's device), in [-1, 1]."""
        if self.model is not None:
            G = self.model.generator_ema
            was = G.training
            G.eval()
            try:
                z = torch.rand(len(labels), self.model.noise_dim, generator=self.gen,
                               device=labels.device) * 2 - 1
                return G(z, labels)
            finally:
                G.train(was)
        return self.sampler.source(labels)

    def __call__(self, x: Tensor, y: Tensor, return_mask: bool = False):
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"batch images have shape {tuple(x.shape[1:])} but the sampler makes "
                             f"{self.image_shape}")
        if y.dim() != 1 or len(y) != len(x):
            raise ValueError(f"labels must be 1-D with one per image: got shape {tuple(y.shape)} "
                             f"for {len(x)} images")
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise ValueError(f"labels must be integer class ids (e.g. torch.long), got dtype "
                             f"{y.dtype}; convert them (y.long()), or pass the class ids of "
                             f"one-hot or soft labels (y.argmax(1))")
        n = self.count(len(x))
        dev = self.sampler.device
        if not self._range_checked and n:
            self._check_range(x)
        if self.probs is None and self.labels == "batch" and len(y):
            self._check_labels(y)               # also where this batch gets no synthetic item
        if n == 0:
            mask = torch.zeros(len(x), dtype=torch.bool, device=x.device)
            return (x, y, mask) if return_mask else (x, y)
        if self._spread is not None:
            self._check_diversity(x, y)
        if self.probs is not None:
            lab = torch.multinomial(self.probs, n, replacement=True, generator=self.gen)
        elif self.labels == "uniform":
            lab = torch.randint(self.num_classes, (n,), generator=self.gen, device=dev)
        else:
            idx = torch.randint(len(y), (n,), generator=self.gen, device=dev)
            lab = y.to(dev)[idx]
        img = self.generate(lab)
        if not self._sampler_range_checked:       # once (one host sync): a [0, 1] sampler
            self._sampler_range_checked = True
            _warn_sampler_range(*torch.stack(torch.aminmax(img)).tolist(), "BatchMixer",
                                f"value_range={self.value_range}", stacklevel=2)
        img = img.clamp(-1, 1)                  # a callable's stray 1.01 must not wrap uint8
        lo, hi = self.value_range
        img = lo + (img + 1) * 0.5 * (hi - lo)
        if self.transform is not None:
            img = self.transform(img)
        if not x.is_floating_point():
            img = img.round()
        img, lab = img.to(x.device, x.dtype), lab.to(y.device, y.dtype)
        if self.mode == "append":
            out_x, out_y = torch.cat([x, img]), torch.cat([y, lab])
            mask = torch.arange(len(out_x), device=x.device) >= len(x)
        else:
            k = len(x) - n
            out_x, out_y = torch.cat([x[:k], img]), torch.cat([y[:k], lab])
            mask = torch.arange(len(out_x), device=x.device) >= k
        return (out_x, out_y, mask) if return_mask else (out_x, out_y)
