"""Class-imbalance tools: class counts, long-tailed subsets (CIFAR-10-LT style) and balancing
plans in the spirit of imbalanced-learn's ``sampling_strategy``."""
from __future__ import annotations

import math
import numbers
import os
import sys
import warnings
from typing import Any, Mapping, Sequence, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset, Subset

Balance = Union[str, int, Mapping[int, int], Mapping[str, int]]


def dataset_targets(dataset: Dataset) -> Tensor:
    """Integer targets of a map-style dataset, (N,) long.

    Reads ``.targets`` (torchvision datasets, ``ImageSet``) or ``.labels`` (SVHN), looks
    through ``Subset`` and ``ConcatDataset``, and otherwise reads the items' second elements
    (only the items of a ``Subset``, once each). Stored targets are used only when they are
    the labels the items carry: one per item, and no ``target_transform`` on the dataset
    (which changes them on the way out); else the items are read.
    """
    t = _stored_targets(dataset)
    if t is not None:
        return t
    if isinstance(dataset, Subset):
        return torch.tensor([_item_label(dataset.dataset[i]) for i in dataset.indices],
                            dtype=torch.long)
    return torch.tensor([_item_label(dataset[i]) for i in range(len(dataset))], dtype=torch.long)


def _stored_targets(dataset: Dataset) -> Tensor | None:
    """The targets a dataset keeps as an attribute (through Subset / ConcatDataset), or None
    when they can only be had by reading its items: none kept, a ``target_transform`` (the
    items carry its output, not the stored targets), or not one per item (stale targets)."""
    if getattr(dataset, "target_transform", None) is not None:
        return None
    for name in ("targets", "labels"):
        t = getattr(dataset, name, None)
        if t is not None:
            try:
                t = torch.as_tensor(t).reshape(-1)
            except (TypeError, ValueError):   # e.g. class names: read the items' labels
                return None
            if len(t) != len(dataset):        # not one per item (e.g. stale): read the items
                return None
            if t.is_floating_point() and len(t) and not torch.equal(t, t.round()):
                raise _fractional(t[t != t.round()][0].item(), f"its .{name}")
            return t.long()
    if isinstance(dataset, Subset):
        parent = _stored_targets(dataset.dataset)
        return None if parent is None else parent[torch.as_tensor(dataset.indices, dtype=torch.long)]
    if isinstance(dataset, ConcatDataset):
        parts = [_stored_targets(d) for d in dataset.datasets]
        if any(p is None for p in parts):
            return None
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
    return None


def as_pair(item: Any) -> tuple[Any, Any]:
    """A dataset item as its ``(image, label)``, or a ValueError that says how to adapt."""
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    raise _not_a_pair(item)


def _item_label(item: Any) -> int:
    """The label of an item read for its target: its second element, an integer."""
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise _not_a_pair(item)
    y = item[1]
    try:
        label = int(y)
        # 3.5 is no class id, 3.0 is class 3 (only a float's fraction is looked at)
        fraction = float(y) != label if is_float_dtype(getattr(y, "dtype", type(y))) else False
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"dataset items must be (image, label) with an integer class id as "
                         f"the label, got a label of type {type(y).__name__}") from None
    if fraction:
        raise _fractional(float(y), "its items' labels")
    return label


def is_float_dtype(dtype: Any) -> bool:
    """Whether a torch or numpy dtype (or a Python type, e.g. ``float``) is floating-point."""
    if isinstance(dtype, torch.dtype):
        return dtype.is_floating_point
    return np.issubdtype(np.dtype(dtype), np.floating)


def _fractional(value: float, where: str) -> ValueError:
    return ValueError(f"the dataset's labels must be whole class ids, and {where} include "
                      f"{value:g}; labels are class indices 0 to K - 1 (remap them, e.g. with "
                      f"a target_transform)")


def _not_a_pair(item: Any) -> ValueError:
    if isinstance(item, Mapping):
        got = f"a dict with keys {list(item)}"
    elif isinstance(item, (tuple, list)):
        got = f"a {type(item).__name__} of {len(item)} elements"
    else:
        got = f"a {type(item).__name__}"
    return ValueError(f"dataset items must be (image, label) pairs, got {got}; wrap the dataset "
                      f"in a small Dataset whose __getitem__ returns (image, label), e.g. "
                      f"`return item['image'], item['label']` or `x, y, _ = item; return x, y`")


def dataset_classes(dataset: Dataset) -> list | None:
    """Class names of a dataset (``.classes``, a list, array or tensor; numpy and torch
    scalars in it become Python values), looking through ``Subset`` and through a
    ``ConcatDataset`` whose parts agree; None when it has none."""
    names = getattr(dataset, "classes", None)
    if names is not None and len(names) > 0:
        return [_plain(c) for c in names]
    if isinstance(dataset, Subset):
        return dataset_classes(dataset.dataset)
    if isinstance(dataset, ConcatDataset) and dataset.datasets:
        parts = [dataset_classes(d) for d in dataset.datasets]
        if parts[0] and all(p == parts[0] for p in parts):
            return parts[0]
    return None


def _plain(value: Any) -> Any:
    """A numpy or torch scalar (an element of an array or tensor) as its Python value."""
    if isinstance(value, (np.generic, Tensor)) and value.ndim == 0:
        return value.item()
    return value


def class_counts(targets: Tensor | Sequence[int], num_classes: int | None = None) -> list[int]:
    """Items per class; negative targets (unlabeled) are not counted."""
    t = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    t = t[t >= 0]
    n = num_classes if num_classes is not None else (int(t.max()) + 1 if len(t) else 0)
    if len(t) and int(t.max()) >= n:
        raise ValueError(f"target {int(t.max())} is out of range for {n} classes")
    return torch.bincount(t, minlength=n).tolist()


def long_tail_counts(n_max: int, num_classes: int, rho: float) -> list[int]:
    """Exponential profile of CIFAR-10-LT: class c keeps ``floor(n_max * rho^(-c/(C-1)))``
    items, so class 0 has ``n_max`` and the last class ``n_max / rho``."""
    _check_rho(rho)
    if num_classes < 2:
        return [int(n_max)] * num_classes
    if n_max < rho:
        warnings.warn(f"rho={rho:g} asks the last class for {n_max}/{rho:g} < 1 item; every "
                      f"class keeps at least 1, so the largest / smallest ratio is {n_max}, not "
                      f"{rho:g} (a smaller rho, or more items in the smallest class, reach it)",
                      stacklevel=_outside_ganaug())
    return [max(1, int(math.floor(n_max * rho ** (-c / (num_classes - 1)))))
            for c in range(num_classes)]


def _outside_ganaug() -> int:
    """``warnings.warn``'s stacklevel, from the function that calls this, of the first caller
    outside the ganaug package: the user's line, however deep inside ganaug the warning is."""
    package, frame, level = os.path.dirname(__file__) + os.sep, sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _check_rho(rho: float) -> None:
    if isinstance(rho, bool) or not isinstance(rho, numbers.Real) or not 1 <= rho < math.inf:
        raise ValueError(f"imbalance ratio rho must be a finite number >= 1, got {rho!r}")


def long_tailed_indices(targets: Tensor | Sequence[int], rho: float, seed: int = 0,
                        num_classes: int | None = None) -> Tensor:
    """Indices of a long-tailed subset: every class is cut to the exponential profile
    (its share ``rho^(-c/(C-1))`` of the smallest class's full count), choosing which items
    stay at random with ``seed``. Sorted."""
    t = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    counts = class_counts(t, num_classes)
    _check_rho(rho)
    empty = [c for c, n in enumerate(counts) if n == 0]
    if empty:
        raise ValueError(f"class(es) {empty} of {len(counts)} have no items; the profile cuts "
                         f"every class from the smallest class's count, so nothing would be "
                         f"left: drop the empty classes (and their names in .classes) first")
    keep = long_tail_counts(min(counts), len(counts), rho)
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for c, k in enumerate(keep):
        idx = torch.nonzero(t == c).squeeze(1)
        out.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return torch.cat(out).sort().values


def make_long_tailed(dataset: Dataset, rho: float, seed: int = 0) -> Dataset:
    """A long-tailed version of ``dataset`` (``rho`` = largest / smallest class count).

    An ``ImageSet`` gives an ``ImageSet`` (with the same ``transform`` and
    ``target_transform``); any other dataset gives a ``Subset`` with ``.targets`` set, so
    class counts and balancing plans can read it. Items come out as the original's do.
    Unlabeled items (target -1) are left out: the profile is one of class counts.
    """
    from .data import ImageSet

    names = dataset_classes(dataset)
    targets = dataset_targets(dataset)                          # the labels the items carry
    idx = long_tailed_indices(targets, rho, seed, len(names) if names else None)
    if isinstance(dataset, ImageSet):
        return dataset.subset(idx)                              # keeps the transforms
    sub = Subset(dataset, idx.tolist())
    sub.targets = targets[idx]                                   # type: ignore[attr-defined]
    sub.classes = names or []                                    # type: ignore[attr-defined]
    return sub


def balance_plan(counts: Sequence[int], balance: Balance,
                 classes: Sequence[str] | None = None) -> list[int]:
    """Synthetic items to add per class, from the real ``counts`` and a strategy:

    - ``"max"``: fill every class up to the majority count;
    - ``"mean"``: fill every class below the mean count up to it (rounded down);
    - an ``int`` n: fill every class up to n (classes above n get nothing);
    - a dict ``{class: count}``: add exactly ``count`` synthetic items of each named class
      (an int id, or a name from ``classes``), none of the others.
    """
    counts = [int(c) for c in counts]
    C = len(counts)
    if not C:
        raise ValueError("there is nothing to balance: the dataset has no classes")
    if isinstance(balance, str):
        if balance == "max":
            target = max(counts)
        elif balance == "mean":
            target = sum(counts) // C
        else:
            raise ValueError(f"unknown balance {balance!r}; use 'max', 'mean', an int per "
                             f"class or a {{class: count}} dict")
        return [max(0, target - n) for n in counts]
    if isinstance(balance, bool):
        raise ValueError("balance must be 'max', 'mean', an int or a dict, not a bool")
    if isinstance(balance, numbers.Integral):
        balance = int(balance)
        if balance <= 0:
            raise ValueError(f"balance per class must be positive, got {balance}")
        return [max(0, balance - n) for n in counts]
    if isinstance(balance, Mapping):
        names = list(classes) if classes is not None else []
        plan, named = [0] * C, {}
        for key, n in balance.items():
            c = _class_id(key, C, names)
            if not isinstance(key, str) and str(key) in names and names.index(str(key)) != c:
                warnings.warn(f"balance key {key!r} is class id {c} (named {names[c]!r}); the "
                              f"class named {str(key)!r} is id {names.index(str(key))}: to mean "
                              f"that one, use the name {str(key)!r} as the key", stacklevel=3)
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
                raise ValueError(f"balance[{key!r}] must be a non-negative int, got {n!r}")
            if c in named:
                raise ValueError(f"balance names class {c} twice ({named[c]!r} and {key!r}); "
                                 f"give each class one count")
            plan[c], named[c] = int(n), key
        return plan
    raise ValueError(f"balance must be 'max', 'mean', an int or a dict, got {type(balance).__name__}")


def _class_id(key, num_classes: int, names: list[str]) -> int:
    if isinstance(key, str):
        if key in names:
            return names.index(key)
        raise ValueError(f"balance names unknown class {key!r}; known classes: "
                         f"{', '.join(names) if names else f'ids 0..{num_classes - 1}'}")
    if isinstance(key, bool) or not isinstance(key, numbers.Integral) or not 0 <= key < num_classes:
        raise ValueError(f"balance names unknown class {key!r}; class ids are 0..{num_classes - 1}")
    return int(key)


def quotas(total: int, probs: Sequence[float]) -> list[int]:
    """Split ``total`` over classes in proportion to ``probs`` exactly (largest remainder)."""
    if isinstance(total, bool) or not isinstance(total, numbers.Integral) or total < 0:
        raise ValueError(f"the number of items to split must be a whole number >= 0, got "
                         f"{total!r}")
    p = torch.as_tensor(probs, dtype=torch.float64)
    if (p.dim() != 1 or len(p) == 0 or not bool(torch.isfinite(p).all()) or bool((p < 0).any())
            or float(p.sum()) <= 0):
        raise ValueError(f"class probabilities must be a non-empty 1-D list of finite, "
                         f"non-negative numbers with a positive sum, got {p.tolist()}")
    if not math.isfinite(float(p.sum())):    # huge values: their sum overflows
        p = p / p.max()
    p = p / p.sum()
    raw = p * total
    base = raw.floor().long()
    rest = total - int(base.sum())
    order = torch.argsort(-(raw - base), stable=True)[:rest]
    base[order] += 1
    return base.tolist()
