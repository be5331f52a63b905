"""Class-balanced labeled/unlabeled splits, seeded separately from training."""
from __future__ import annotations

import torch
from torch import Tensor

from .images import ImageSet


def split_labeled(data: ImageSet, labels_per_class: int | None, seed: int = 0
                  ) -> tuple[ImageSet, ImageSet | None]:
    """Keep ``labels_per_class`` labels of every class, chosen at random with ``seed`` (the
    data seed, not the training seed); the rest become unlabeled (targets -1).

    ``labels_per_class=None`` keeps every label and returns ``(data, None)``. A
    ``labels_per_class`` that takes every image of every class leaves no unlabeled images
    either: the unlabeled part is then ``None`` too, never an empty set.
    """
    if labels_per_class is None:
        return data, None
    if isinstance(labels_per_class, bool) or not isinstance(labels_per_class, int):
        raise ValueError(f"labels_per_class must be a positive int or None (all), "
                         f"got {labels_per_class!r}")
    if labels_per_class <= 0:
        raise ValueError(f"labels_per_class must be positive, got {labels_per_class}; "
                         f"use 'all' to keep every label")
    counts = data.class_counts()
    empty = [data.classes[c] for c, n in enumerate(counts) if n == 0]
    if empty:
        names = ", ".join(repr(name) for name in empty)
        raise ValueError(f"class{'es' if len(empty) > 1 else ''} {names} ha"
                         f"{'ve' if len(empty) > 1 else 's'} no images at all in the training "
                         f"data, so no labels of {'them' if len(empty) > 1 else 'it'} can be "
                         f"kept: add images of every class (or remove the empty ones), or "
                         f"use labels_per_class 'all' to train on the labels there are")
    short = [(data.classes[c], n) for c, n in enumerate(counts) if n < labels_per_class]
    if short:
        name, n = min(short, key=lambda t: t[1])
        raise ValueError(f"labels_per_class={labels_per_class} is more than class {name!r} "
                         f"has ({n} images); use at most {min(counts)} or 'all'")
    g = torch.Generator().manual_seed(int(seed))
    labeled: list[Tensor] = []
    for c in range(data.num_classes):
        idx = torch.nonzero(data.targets == c).squeeze(1)
        labeled.append(idx[torch.randperm(len(idx), generator=g)[:labels_per_class]])
    lab = torch.cat(labeled).sort().values
    mask = torch.ones(len(data), dtype=torch.bool)
    mask[lab] = False
    unl = torch.nonzero(mask).squeeze(1)
    return data.subset(lab), (data.subset(unl, unlabeled=True) if len(unl) else None)
