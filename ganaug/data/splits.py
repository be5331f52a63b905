"""Class-balanced labeled/unlabeled/validation splits, seeded separately from training."""
from __future__ import annotations

import operator

import numpy as np
import torch
from torch import Tensor

from .images import ImageSet


def split_labeled(data: ImageSet, labels_per_class: int | None, seed: int = 0
                  ) -> tuple[ImageSet, ImageSet | None]:
    """Keep ``labels_per_class`` labels of every class, chosen at random with ``seed`` (the
    data seed, not the training seed); the rest become unlabeled (targets -1).

    ``labels_per_class=None`` (or ``"all"``) keeps every label and returns ``(data, None)``. A
    ``labels_per_class`` that takes every image of every class leaves no unlabeled images
    either: the unlabeled part is then ``None`` too, never an empty set.
    """
    labeled, unlabeled, _ = split_with_validation(data, labels_per_class, 0, seed)
    return labeled, unlabeled


def check_val_per_class(v) -> int:
    """``v`` if it is a whole number of validation images per class >= 0, else a
    ValueError (TrainConfig checks it too, before any data is loaded)."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"val_per_class must be a whole number of images per class >= 0 "
                         f"(0: no validation images), got {v!r}")
    return v


def split_with_validation(data: ImageSet, labels_per_class: int | None, val_per_class: int,
                          seed: int = 0) -> tuple[ImageSet, ImageSet | None, ImageSet | None]:
    """``(labeled, unlabeled, validation)``: :func:`split_labeled`'s split, and
    ``val_per_class`` more labeled images of every class held out of training altogether
    (None when 0), to choose an epoch by (``TrainConfig.val_per_class``).

    The labeled images are the ones :func:`split_labeled` keeps with the same ``seed``
    whatever ``val_per_class`` is: the validation images come after them in each class's
    random order, out of what would be the unlabeled ones. With ``labels_per_class=None``
    (every label) they come first, and the rest of each class is labeled.
    """
    if isinstance(labels_per_class, str) and labels_per_class == "all":
        labels_per_class = None                       # as TrainConfig and --labels-per-class
    if labels_per_class is not None:
        n = operator.index(labels_per_class) if isinstance(labels_per_class, np.integer) \
            else labels_per_class                     # numpy's ints too
        if isinstance(n, bool) or not isinstance(n, int):
            raise ValueError(f"labels_per_class must be a positive int, or None or 'all' "
                             f"(every label), got {labels_per_class!r}")
        labels_per_class = n
    if labels_per_class is not None and labels_per_class <= 0:
        raise ValueError(f"labels_per_class must be positive, got {labels_per_class}; "
                         f"use 'all' to keep every label")
    v = check_val_per_class(val_per_class)
    if labels_per_class is None and v == 0:
        return data, None, None
    counts = data.class_counts()
    empty = [data.classes[c] for c, n in enumerate(counts) if n == 0]
    if empty and labels_per_class is not None:
        names = ", ".join(repr(name) for name in empty)
        raise ValueError(f"class{'es' if len(empty) > 1 else ''} {names} ha"
                         f"{'ve' if len(empty) > 1 else 's'} no images at all in the training "
                         f"data, so no labels of {'them' if len(empty) > 1 else 'it'} can be "
                         f"kept: add images of every class (or remove the empty ones), or "
                         f"use labels_per_class 'all' to train on the labels there are")
    base = 1 if labels_per_class is None else labels_per_class   # labeled images per class
    short = [(data.classes[c], n) for c, n in enumerate(counts) if n < base + v]
    if short:
        name, n = min(short, key=lambda t: t[1])
        if labels_per_class is not None and n < labels_per_class:
            raise ValueError(f"labels_per_class={labels_per_class} (--labels-per-class) is more "
                             f"than class {name!r} has ({n} image{'' if n == 1 else 's'}); use "
                             f"at most {min(counts)} or 'all'")
        what = ("at least one labeled image" if labels_per_class is None else
                f"labels_per_class={labels_per_class}")
        most = n - base
        fix = (f"use a val_per_class (--val-per-class) of at most {most}" if most > 0 else
               "it has none to spare for validation: use val_per_class 0 (--val-per-class)"
               + ("" if labels_per_class is None else " or fewer labels per class"))
        raise ValueError(f"val_per_class={v} and {what} need {base + v} images of every "
                         f"class, but class {name!r} has {n}; {fix}")
    g = torch.Generator().manual_seed(int(seed))
    labeled: list[Tensor] = []
    held: list[Tensor] = []
    for c in range(data.num_classes):
        idx = torch.nonzero(data.targets == c).squeeze(1)
        order = idx[torch.randperm(len(idx), generator=g)]
        if labels_per_class is None:                 # every label: validation first
            held.append(order[:v])
            labeled.append(order[v:])
        else:
            labeled.append(order[:labels_per_class])
            held.append(order[labels_per_class:labels_per_class + v])
    lab, val = torch.cat(labeled).sort().values, torch.cat(held).sort().values
    mask = torch.ones(len(data), dtype=torch.bool)
    mask[lab] = False
    mask[val] = False
    unl = torch.nonzero(mask).squeeze(1)
    return (data.subset(lab), data.subset(unl, unlabeled=True) if len(unl) else None,
            data.subset(val) if v else None)
