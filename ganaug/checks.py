"""What the mixers check about a sampler before its samples go into a classifier's training.

- Label agreement: the share of the samples that the sampler's own classifier assigns to
  their label (``LabelAgreementWarning`` under ``LABEL_AGREEMENT_WARN``).
- Diversity: how spread out the samples of a class are, relative to the real items of the
  class (``DiversityWarning`` under ``DIVERSITY_WARN``). A sampler that makes a few images
  per class passes the label check; this one sees it.

Both are cheap, run once, and only warn: ``ganaug eval`` (recall, TSTR) is the full check.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

# SyntheticMix and BatchMixer warn when the sampler's own classifier assigns fewer of the
# ungated synthetic images to their label (the gate 0 row of `ganaug eval`). Measured: the
# MNIST samplers that helped a few-labels classifier were at 0.92 to 0.99 and the digits
# default job's at 0.91 to 0.98 (twelve seeds); every sampler under 0.75 (MNIST at 0.27 to
# 0.62, the digits conv pair at 0.56) cost it 2.6 to 36 points, and one MNIST sampler at
# 0.83 cost it 4
LABEL_AGREEMENT_WARN = 0.75

# ... and when a class's samples are less than this share as spread out as its real items
# (``relative_spread``). Measured on 61 trained samplers (benchmarks/README.md, "Do the
# samples vary?"): every one under 0.6 (0.24 to 0.58) had a `ganaug eval` recall of 0.11 or
# less, a few images per class; all but one over it (0.61 to 1.05) a recall of 0.16 or more
DIVERSITY_WARN = 0.6
DIVERSITY_ITEMS = 2000   # at most this many images per side (and 20 per class) are compared
DIVERSITY_SIDE = 32      # images larger than this are average-pooled to it first


class LabelAgreementWarning(UserWarning):
    """A SyntheticMix's or BatchMixer's sampler assigns few of its own samples to their
    label (see ``LABEL_AGREEMENT_WARN``); silence it with ``warnings.filterwarnings("ignore",
    category=ganaug.LabelAgreementWarning)``."""


class DiversityWarning(UserWarning):
    """A SyntheticMix's or BatchMixer's samples of a class are much less varied than the
    real items of the class, as when the generator has collapsed to a few images per class
    (see ``DIVERSITY_WARN``); silence it with ``warnings.filterwarnings("ignore",
    category=ganaug.DiversityWarning)``."""


def warn_label_agreement(agreement: float | None, who: str, fix: str, stacklevel: int = 3
                         ) -> None:
    if agreement is not None and agreement < LABEL_AGREEMENT_WARN:
        warnings.warn(
            f"{who}: the sampler's own classifier assigns only {100 * agreement:.1f}% of the "
            f"synthetic images to their label. Every sampler this low in ganaug's benchmarks "
            f"cost the few-labels classifier accuracy when mixed in (2.6 to 36 points). Check "
            f"the sampler with `ganaug eval --run RUN` (label accuracy, TSTR, gate pass rates), "
            f"{fix}, or train it with a conditional objective (sscls, cls, ...; the "
            f"unconditional ones, such as gan or ls, generate without looking at the label) "
            f"and a larger --g-cond-weight", LabelAgreementWarning,
            stacklevel=stacklevel)            # 3: the caller of the mix's __init__


def diversity_note(diversity: float, run: str = "RUN") -> str:
    """What a diversity under ``DIVERSITY_WARN`` means and what to do (the mixers' warning,
    and the closing line of a training run)."""
    return (f"within their classes, the synthetic images are only {100 * diversity:.0f}% as "
            f"spread out as the real ones (mean pixel distance within a class over that "
            f"between classes, relative to the real images'): the generator may have collapsed "
            f"to a few images per class. In ganaug's benchmarks every sampler under "
            f"{100 * DIVERSITY_WARN:.0f}% had a recall of 0.11 or less, and on MNIST their "
            f"samples added nothing to a few-labels classifier (-2.0 to +0.3 points, where "
            f"varied samples added 4 to 12). Check the sampler with `ganaug eval --run {run}` "
            f"(recall, TSTR, samples.png), and train it with another seed or the recipe's "
            f"settings")


def warn_diversity(diversity: float | None, who: str, stacklevel: int = 3) -> None:
    if diversity is not None and diversity < DIVERSITY_WARN:
        warnings.warn(f"{who}: {diversity_note(diversity)}", DiversityWarning,
                      stacklevel=stacklevel)


def first_of_each_class(targets: Tensor, k: int, classes) -> Tensor:
    """The indices of the first ``k`` items of each class in ``classes``, class by class."""
    return torch.cat([torch.nonzero(targets == c).flatten()[:k] for c in classes])


def first_per_class_distances(images: Tensor, targets: Tensor, num_classes: int, k: int
                              ) -> tuple[Tensor, Tensor]:
    """``pair_distances`` of the first ``k`` images of each class (pooled as the check reads
    them): one side of ``relative_spread``."""
    idx = first_of_each_class(targets, k, range(num_classes))
    return pair_distances(pooled(images[idx]), targets[idx], num_classes)


def per_class(num_classes: int, cap: int = 20) -> int:
    """Images per class that the diversity check compares: up to ``cap``, at least 2, and
    ``DIVERSITY_ITEMS`` in all."""
    return max(2, min(cap, DIVERSITY_ITEMS // max(num_classes, 1)))


def pooled(x: Tensor) -> Tensor:
    """(N, C, H, W) images as float rows, average-pooled to at most ``DIVERSITY_SIDE``
    pixels a side."""
    x = x.float()
    if x.shape[-1] > DIVERSITY_SIDE or x.shape[-2] > DIVERSITY_SIDE:
        x = F.adaptive_avg_pool2d(x, (min(x.shape[-2], DIVERSITY_SIDE),
                                      min(x.shape[-1], DIVERSITY_SIDE)))
    return x.flatten(1)


def pair_distances(x: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Summed Euclidean distances between the rows of ``x`` (N, D), by class pair, and the
    number of pairs: two (C, C) float64 tensors on the CPU. Entry (c, c) sums the ordered
    pairs of distinct items of class c; items whose label is outside [0, C) are left out.
    Sums over several batches add up."""
    x, y = x.double(), y.to(x.device, torch.long)
    keep = (y >= 0) & (y < num_classes)
    x, y = x[keep], y[keep]
    M = F.one_hot(y, num_classes).double()                    # (N, C)
    sums = M.T @ torch.cdist(x, x) @ M
    n = M.sum(0)
    pairs = n[:, None] * n[None] - torch.diag(n)              # n_c (n_c - 1) on the diagonal
    return sums.cpu(), pairs.cpu()


def spread(sums: Tensor, pairs: Tensor, classes: Tensor) -> float:
    """Mean within-class distance over mean between-class distance, each class (and class
    pair) of the bool mask ``classes`` weighted equally. 0 when all images are one; NaN
    when the images are not finite (a diverged generator's)."""
    mean = sums[classes][:, classes] / pairs[classes][:, classes]
    off = ~torch.eye(int(classes.sum()), dtype=torch.bool)
    between, within = float(mean[off].mean()), float(mean.diagonal().mean())
    if not (math.isfinite(between) and math.isfinite(within)):
        return math.nan
    return within / between if between > 0 else 0.0


def relative_spread(synthetic: tuple[Tensor, Tensor], real: tuple[Tensor, Tensor]
                    ) -> float | None:
    """The synthetic images' ``spread`` over the real ones', on the classes with two images
    or more on both sides (``pair_distances`` of each). About 1 for samples as varied as
    the real data, 0 for one image per class. ``None`` when fewer than two classes qualify,
    the real images do not vary, or the synthetic ones are not finite (a diverged generator:
    not a collapse, and not to be read as one)."""
    classes = (synthetic[1].diagonal() > 0) & (real[1].diagonal() > 0)
    if int(classes.sum()) < 2:
        return None
    ref, got = spread(*real, classes), spread(*synthetic, classes)
    return got / ref if ref > 0 and math.isfinite(got) else None
