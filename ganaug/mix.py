"""Mix synthesized class-conditional samples into a classifier's training.

- ``SyntheticMix`` (here): a map-style Dataset of the real items followed by a bank of
  synthetic ones (a share of every epoch, or enough per class to balance the set).
- ``BatchMixer`` (``batch_mixer.py``): fresh samples appended to (or replacing part of) a
  batch already on the device, every step.

Both need only a sampler: a trained ganaug model, its run folder or checkpoint, or any
callable that maps a LongTensor of labels to images in [-1, 1] on its device. The argument
checks and the quality gate both use are here.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import numbers
import operator
import os
import random
import sys
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, WeightedRandomSampler

from .checks import (first_of_each_class, pair_distances, per_class, pooled, relative_spread,
                     warn_diversity, warn_label_agreement)
from .imbalance import (Balance, as_pair, balance_plan, class_counts, dataset_classes,
                        dataset_targets, quotas)
from .model import CLSGAN, id_names
from .sampling import (ItemFormat, Sampler, check_value_range, from_hwc_uint8, infer_format,
                       is_albumentations, item_layout, range_mismatch, seed_for, to_hwc_uint8)

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


# the albumentations transforms seeded in this DataLoader worker: (worker id, its seed) by
# the transform's id (a worker lives for an epoch or a run, its transforms as long)
_WORKER_SEEDED: dict[int, tuple[int, int]] = {}
GATE_MAX_DRAWS = 50      # SyntheticMix's default: a class must pass more than 1 in 50 draws


@contextlib.contextmanager
def _rng_kept():
    """Leave torch's CPU, numpy's and Python's global RNGs as they were (reading a dataset's
    items may run random transforms)."""
    py, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


@dataclasses.dataclass
class _FirstBank:
    """What SyntheticMix's checks read while it generates its first bank: ``tally``
    [assigned to their label, drawn] (None: no label check), up to ``per_class`` pooled
    images of every class (``kept``), and the sampler's values ``[lo, hi]`` (``span``)."""
    tally: list[int] | None
    per_class: int
    kept: dict[int, list[Tensor]] = dataclasses.field(default_factory=dict)
    span: list[float] = dataclasses.field(default_factory=lambda: [math.inf, -math.inf])


def _check_fraction(fraction: Any) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise ValueError(f"fraction must be a number in [0, 1) (the synthetic share), got "
                         f"{type(fraction).__name__} {fraction!r}")
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")


def _check_positive_int(name: str, value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int ({what}), got "
                         f"{type(value).__name__} {value!r}")


def _check_class_probs(class_probs: Any) -> None:
    """Refuse class probabilities that are not numbers, before any other work."""
    if class_probs is None:
        return
    try:
        torch.as_tensor(class_probs, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"class_probs must be a list of numbers, one per class, got "
                         f"{class_probs!r}") from None


def _check_transform(transform: Any) -> None:
    if transform is not None and not callable(transform):
        raise ValueError(f"transform must be a callable (e.g. a torchvision or albumentations "
                         f"transform) or None, got {type(transform).__name__} {transform!r}")


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an int (the synthetic samples are a pure function of "
                         f"it; there is no unseeded mode), got {seed!r}")


def _warn_sampler_range(lo: float, hi: float, who: str, target: str, stacklevel: int) -> None:
    """Warn when a sampler's images, spanning [lo, hi], leave [-1, 1] or have no value
    below 0 (e.g. [0, 1] images)."""
    if range_mismatch(lo, hi, -1.0, 1.0) in ("outside", "none below 0"):
        warnings.warn(f"{who}: the sampler's images span [{lo:.3g}, {hi:.3g}] but a sampler "
                      f"must return images in [-1, 1] (tanh range), which are mapped onto "
                      f"{target}: images in [0, 1] (a sigmoid head) come out too bright; have "
                      f"the sampler return 2 * x - 1", stacklevel=stacklevel + 1)


def _warn_if_training(sampler: Sampler, who: str) -> None:
    """A hand-written ``nn.Module`` sampler (or the module of a bound method) is called as it
    is: in training mode its BatchNorm layers update their running statistics and make each
    image depend on its batch mates, and dropout drops. ganaug's own models are switched to
    eval mode; warn about the others."""
    src = sampler.source
    module = src if isinstance(src, torch.nn.Module) else getattr(src, "__self__", None)
    if isinstance(module, torch.nn.Module) and not isinstance(module, CLSGAN) and module.training:
        warnings.warn(f"{who}: the sampler ({type(module).__name__}) is an nn.Module in "
                      f"training mode, and is called as it is: its BatchNorm layers would "
                      f"update their running statistics and make each image depend on the "
                      f"others in its batch, and dropout would drop. Call .eval() on it "
                      f"first", stacklevel=3)         # 3: the caller of the mix's __init__


def gate_mask(logits: Tensor, labels: Tensor, gate: float) -> Tensor:
    """Which samples pass the quality gate: the softmax of their ``logits`` (N, C) peaks at
    their intended ``labels`` (N,) with probability >= ``gate``. A bool mask on the logits'
    device."""
    prob = torch.softmax(logits, dim=1)
    labels = labels.to(prob.device)
    return (prob.argmax(1) == labels) & (prob.gather(1, labels[:, None]).squeeze(1) >= gate)


class SyntheticMix(Dataset):
    """``real_dataset`` plus synthetic items; indices ``[0, n_real)`` are the real items,
    the rest synthetic. Items are ``(image, label)``.

    Args:
        real_dataset: a map-style dataset of ``(image, label)`` pairs; images are tensors
            (C, H, W), numpy arrays or PIL images, and synthetic items come in the same type,
            shape, dtype and value range. Its ``.targets`` give the class counts when they
            are one per item and it has no ``target_transform``; else its items' labels do.
            Its own ``transform`` runs on the real items only (synthetic items are made in
            the format its items come out of it in), so a random augmentation there (e.g.
            ``RandomCrop``, flips) reaches only the real items: to augment both, move it
            to ``transform=``.
        sampler: a ``CLSGAN``, a run folder or checkpoint path, or a callable
            ``labels -> images`` ((N, C, H, W) floats in [-1, 1] on its device; images
            that all stay in [0, 1] get a warning). A callable is called as it is: an
            ``nn.Module`` in training mode gets a warning to call ``.eval()`` first.
        fraction: share f in [0, 1) of each epoch's items that are synthetic; their labels
            follow ``class_probs`` (default: the real class distribution), split exactly.
        balance: ``"max"``, ``"mean"``, an int per class or a ``{class: count}`` dict (see
            ``ganaug.imbalance.balance_plan``); synthetic labels come from the deficits.
        refresh_every: regenerate the synthetic bank every N epochs (call ``set_epoch``).
        transform: applied to real items (after the real dataset's own transform) and
            synthetic items alike: the place for a normalisation (a mean and std). An
            albumentations ``Compose`` gets numpy HWC uint8, and its uint8 output is
            converted back to the items' format (other output, e.g. after ``Normalize`` or
            ``ToTensorV2``, is returned as it is); in a DataLoader worker it is seeded once
            from the worker's seed, so that workers do not repeat each other's draws.
            Building the mix applies it to an item of each kind, leaving the global RNGs
            as they were.
        seed: synthetic item i is a pure function of (seed, i, refresh round), for a given
            ``batch_size`` (the noise is drawn per call of the sampler).
        gate: keep only samples that the sampler's own classifier (or ``gate_classifier``)
            assigns to their intended class with confidence >= gate, generating more until
            every quota is met.
        gate_mode: the confidence the gate reads. ``"class"``: the softmax of the logits
            over the C classes, P(y | x is of some class). ``"real"``: the softmax with the
            implicit "no known class" logit 0 added, which for a ganaug model is
            exp(-L(x, y)), P(x is real and of class y); it also rejects samples the loss
            network recognises as generated, so it accepts few samples from a GAN whose loss
            network tells its fakes apart well.
        gate_classifier: images in [-1, 1] -> class logits, used by the gate instead of the
            sampler's own classifier (needed for samplers that are not ganaug models).
        gate_max_draws: give up (ValueError) after drawing this many times a class's quota.
        value_range: the real items' value range ``(lo, hi)``, lo < hi, when it cannot be
            read off them: one range for every channel (not for PIL items, always 0..255).
            Items normalised with a mean and std belong in ``transform=`` instead.
        num_classes: the number of classes, when the real dataset has no ``.classes`` and
            lacks items of the last classes (default: from ``.classes``, the sampler or the
            largest label).
        batch_size: images per sampler call; device: where the sampler runs (default: a
            model's own device; for a path, CUDA when present). A model on another device
            is copied there, not moved.
        shared_bank: keep the bank in shared memory (``/dev/shm`` on Linux) from the start
            and refresh it in place, so DataLoader workers that outlive an epoch
            (``persistent_workers=True``) see each new round. Off by default: containers
            often give shared memory far less room than a large bank needs.

    Without a gate, when the sampler has a classifier (a ganaug model, or
    ``gate_classifier=``), ``label_agreement`` is the share of the first bank's images that
    it assigns to their label, and under 0.75 (``LABEL_AGREEMENT_WARN``) a warning says that
    the samples carry their labels poorly and what to do; else it is ``None``.

    ``diversity`` is ``ganaug.checks.relative_spread`` of the first bank's first 20 images of
    each class against the first 20 real items of each class (read once, global RNGs left
    as they were): about 1 when the samples vary within their classes as much as the real
    items, 0 for one image per class. Under 0.6 (``DIVERSITY_WARN``) a ``DiversityWarning``
    says that the generator may have collapsed; ``None`` when fewer than two classes have
    two images on both sides.

    The bank holds ``num_synthetic`` x C x H x W values of the items' storage type: 1 byte
    (uint8) for PIL items and integer items in [0, 255], 4 (float32) for float items, 8
    (int64) for other integer items; 50,000 synthetic 3 x 32 x 32 items take 146 MiB as
    uint8, 586 MiB as float32. Building it holds the bank and one batch; a refresh holds
    the old bank and the new one until it is done (with ``shared_bank``, the shared bank
    and a new one copied into it).

    DataLoader workers only read items; the main process alone generates the bank. Workers
    started with ``spawn`` or ``forkserver`` get a pickled copy without the sampler (so any
    start method works, ``spawn`` included), and receive the bank through shared memory
    whatever ``shared_bank`` says (torch moves a tensor there to send it to another
    process), so with those start methods the bank needs room in ``/dev/shm`` either way;
    ``fork`` workers (Linux's default) inherit the whole dataset, sampler and bank
    included, and never call the sampler. Without ``shared_bank`` a worker's copy is the
    bank of the round it started in; a worker asked for a synthetic item after
    ``set_epoch`` moved to a new round raises an error rather than serve the old round's
    images. Any pickled copy (a ``spawn`` worker's, or ``copy.copy``) lacks the sampler
    and cannot refresh the bank; ``copy.deepcopy`` keeps it.
    """

    def __init__(self, real_dataset: Dataset, sampler: Any, *, fraction: float | None = None,
                 balance: Balance | None = None, class_probs: Sequence[float] | None = None,
                 refresh_every: int | None = None, transform: Callable | None = None,
                 seed: int = 0, gate: float | None = None,
                 gate_classifier: Callable[[Tensor], Tensor] | None = None, gate_mode: str = "class",
                 gate_max_draws: int = GATE_MAX_DRAWS,
                 value_range: tuple[float, float] | None = None, num_classes: int | None = None,
                 batch_size: int = 1024, device: str | torch.device | None = None,
                 progress: bool = False, shared_bank: bool = False):
        if fraction is None and balance is None:
            raise ValueError("pass fraction= (a share of every epoch) or balance= ('max', "
                             "'mean', an int or a {class: count} dict)")
        if fraction is not None and balance is not None:
            raise ValueError("pass fraction= or balance=, not both")
        if class_probs is not None and balance is not None:
            raise ValueError("class_probs= goes with fraction=; with balance= the synthetic "
                             "labels come from the per-class deficits")
        if fraction is not None:
            _check_fraction(fraction)
        _check_seed(seed)
        _check_class_probs(class_probs)
        _check_transform(transform)
        if refresh_every is not None:
            _check_positive_int("refresh_every", refresh_every, "epochs per new bank, or None")
        if gate_mode not in ("class", "real"):
            raise ValueError(f"gate_mode must be 'class' or 'real', got {gate_mode!r}")
        self.gate_mode = gate_mode
        if gate is not None and (isinstance(gate, bool) or not isinstance(gate, numbers.Real)
                                 or not 0 < gate <= 1):
            raise ValueError(f"gate must be a confidence in (0, 1] (e.g. 0.5), got "
                             f"{type(gate).__name__} {gate!r}")
        _check_positive_int("batch_size", batch_size, "images per sampler call")
        _check_positive_int("gate_max_draws", gate_max_draws,
                            "draws per image of a class's quota before the gate gives up")
        if value_range is not None:
            value_range = check_value_range(value_range)
        if len(real_dataset) == 0:
            raise ValueError("the real dataset is empty")
        with _rng_kept():                           # the items' own random transforms draw
            first = as_pair(real_dataset[0])        # (image, label) items, or a clear error now
        self.real = real_dataset
        self.n_real = len(real_dataset)
        # the sampler (a checkpoint to load, a device to check) and a model's image shape
        # before the labels, which may take a pass over every item
        self.sampler = Sampler(sampler, device)
        _warn_if_training(self.sampler, "SyntheticMix")
        model, S = self.sampler.model, self.sampler.num_classes
        shape = item_layout(first[0])[2]
        if model is not None and tuple(model.image_shape) != tuple(shape):
            self.sampler.check(S, shape)            # raises, naming the fix
        with _rng_kept():
            real_targets = dataset_targets(real_dataset)
        if int(real_targets.min()) < 0:
            raise ValueError("the real dataset has unlabeled items (target -1); mix into the "
                             "labeled part only")
        names = dataset_classes(real_dataset)
        if num_classes is not None:
            _check_positive_int("num_classes", num_classes, "the number of classes")
            if names and len(names) != num_classes:
                raise ValueError(f"num_classes={num_classes!r} must equal the dataset's "
                                 f"{len(names)} classes (its .classes)")
        top = int(real_targets.max())
        if names and top >= len(names):
            raise ValueError(f"the dataset's labels go up to {top} but it has {len(names)} "
                             f".classes: label i must be the index of its class in .classes "
                             f"(0 to {len(names) - 1}), not a class name or id; remap the "
                             f"labels (e.g. with a target_transform)")
        if num_classes is not None and top >= num_classes:
            raise ValueError(f"the dataset's labels go up to {top} but num_classes="
                             f"{num_classes}: labels must be class ids 0 to {num_classes - 1}; "
                             f"remap them, or pass the right num_classes=")
        if names and model is not None:
            _check_class_names([str(c) for c in names], [str(c) for c in model.classes])
        if not names and num_classes is None and S is not None and top + 1 < S:
            raise ValueError(f"the sampler was trained for {S} classes but the data's largest "
                             f"label is {top} and it has no .classes to say how many it has: "
                             f"pass num_classes={S} if its last {S - top - 1} classes have no "
                             f"items, else train a CLS-GAN on this dataset's classes")
        C = len(names) if names else num_classes or max(top + 1, S or 0)
        self.classes = list(names) if names else (
            list(model.classes) if model is not None and len(model.classes) == C else list(range(C)))
        counts = class_counts(real_targets, C)
        if balance is not None:
            plan = balance_plan(counts, balance, [str(c) for c in self.classes])
            _warn_balance(plan, counts, balance, self.classes)
        else:
            n_syn = round(fraction * self.n_real / (1 - fraction))
            if class_probs is not None and len(class_probs) != C:
                raise ValueError(f"class_probs has {len(class_probs)} entries for {C} classes")
            plan = quotas(n_syn, class_probs if class_probs is not None else counts)
        self.gate_classifier = gate_classifier or self.sampler.classifier
        if gate is not None and self.gate_classifier is None:
            raise ValueError("gate= needs a classifier: use a ganaug model (or run folder) as "
                             "the sampler, or pass gate_classifier=")
        # the real items' format, from a few items; the sampler is probed once
        with _rng_kept():
            probe = [first[0]] + [real_dataset[i][0] for i in range(1, min(self.n_real, 32))]
        self.format: ItemFormat = infer_format(probe, value_range)
        present = len(torch.unique(real_targets))
        try:
            self.sampler.check(C, self.format.shape_chw)
        except ValueError as e:
            low = int(real_targets.min())
            if not names and num_classes is None and S is not None and 0 < low and \
                    top - low + 1 == S:
                raise ValueError(f"the sampler makes classes 0 to {S - 1}, but the data's labels "
                                 f"run from {low} to {top} (class 0 has no items): labels are "
                                 f"class indices from 0; shift them (y - {low}, e.g. with a "
                                 f"target_transform)") from None
            if names or num_classes is not None or S is not None or present == C:
                raise
            raise ValueError(f"{e}. The dataset has no .classes, so SyntheticMix took {C} "
                             f"classes from its largest label, {top}, though only {present} "
                             f"have items: label i must be the sampler's class i (0 to K - 1 "
                             f"for a K-class sampler); remap the labels, or pass num_classes= "
                             f"when the data's last classes have no items") from None

        self.plan = plan
        self.num_classes = C
        self.syn_labels = torch.arange(C).repeat_interleave(torch.tensor(plan, dtype=torch.long))
        self.targets = torch.cat([real_targets, self.syn_labels]).tolist()
        self.transform, self.seed, self.gate = transform, int(seed), gate
        self.gate_max_draws, self.batch_size, self.progress = gate_max_draws, batch_size, progress
        self.refresh_every = refresh_every
        self.round = 0
        self.shared_bank = bool(shared_bank)
        # the round the bank holds, in shared memory: a worker compares it with the round of
        # its own copy (see __getitem__). Where there is no shared memory (no /dev/shm), a
        # plain tensor: DataLoader workers cannot run there either, so nothing is lost.
        self._live_round = torch.zeros((), dtype=torch.long)
        if not self.shared_bank:
            with contextlib.suppress(RuntimeError):
                self._live_round.share_memory_()
        self.bank = self.format.from_unit(torch.empty(0, *self.format.shape_chw))
        # round 0 tallies how many ungated samples the sampler's own classifier assigns to
        # their label (one classifier pass over the first bank; later rounds skip it), and
        # keeps a few images of every class for the diversity check
        seen = _FirstBank([0, 0] if gate is None and self.gate_classifier is not None
                           else None, per_class(C))
        if transform is not None:                   # fail now, not after the bank or in a worker
            with _rng_kept():                       # a random transform draws
                self[0]
        if self.shared_bank:                        # the room first, then the long work
            self.bank = self.bank.new_empty(len(self.syn_labels), *self.format.shape_chw)
            try:
                self.bank.share_memory_()
            except RuntimeError as e:
                raise RuntimeError(f"shared_bank=True could not put the {self.bank.nbytes / 2**20:.1f} "
                                   f"MiB synthetic bank in shared memory ({e}); give the machine "
                                   f"more (docker run --shm-size=...), or pass shared_bank=False "
                                   f"with DataLoader(persistent_workers=False)") from e
            self._generate(0, seen, out=self.bank)
        else:
            self.bank = self._generate(0, seen)
        if transform is not None and len(self) > self.n_real:
            with _rng_kept():
                self[self.n_real]
        if len(self.syn_labels):
            _warn_sampler_range(*seen.span, "SyntheticMix", "the items' value range "
                                f"{self.format.value_range}", stacklevel=2)
        self.label_agreement: float | None = (
            seen.tally[0] / seen.tally[1] if seen.tally is not None and seen.tally[1]
            else None)
        warn_label_agreement(self.label_agreement, "SyntheticMix", "pass gate= (e.g. 0.5)")
        self.diversity: float | None = self._diversity(seen.kept, real_targets)
        warn_diversity(self.diversity, "SyntheticMix")

    def _diversity(self, kept: dict[int, list[Tensor]], targets: Tensor) -> float | None:
        """``relative_spread`` of the first bank's kept images against as many real items
        of the same classes (the first ones of each class; global RNGs left alone)."""
        kept = {c: torch.cat(v) for c, v in kept.items() if sum(map(len, v)) >= 2}
        if len(kept) < 2:
            return None
        index = first_of_each_class(targets, per_class(self.num_classes), kept).tolist()
        with _rng_kept():
            items = [torch.from_numpy(to_hwc_uint8(as_pair(self.real[i])[0], self.format).copy())
                     for i in index]
        if len({t.shape for t in items}) != 1:              # a dataset of varying sizes
            return None
        real = pooled(torch.stack(items).permute(0, 3, 1, 2))
        syn = torch.cat(list(kept.values()))
        syn_y = torch.cat([torch.full((len(v),), c) for c, v in kept.items()])
        return relative_spread(pair_distances(syn, syn_y, self.num_classes),
                               pair_distances(real, targets[index], self.num_classes))

    def __getstate__(self) -> dict:
        # DataLoader workers need the bank, not the sampler (a model with weight norm cannot
        # be pickled, and workers never generate): send them a copy without it.
        state = self.__dict__.copy()
        state["sampler"] = state["gate_classifier"] = None
        return state

    def __deepcopy__(self, memo: dict) -> "SyntheticMix":
        # a deep copy is a whole dataset that can still refresh its bank: it shares the
        # sampler and gate classifier (read only) and copies the rest, with shared memory of
        # its own where this one uses shared memory
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = v if k in ("sampler", "gate_classifier") else copy.deepcopy(v, memo)
        for k in ("_live_round", "bank"):
            if getattr(self, k).is_shared():
                getattr(new, k).share_memory_()
        return new

    # ------------------------------------------------------------------ bank
    def _generate(self, round_: int, seen: _FirstBank | None = None,
                  out: Tensor | None = None) -> Tensor:
        """Every class's synthetic images for refresh round ``round_``, in the storage form
        of ``self.format``, on the CPU, written batch by batch into ``out`` (default: a new
        tensor), so that no more than the bank and one batch are held. Class c's items come
        from seeds (seed, round, c, k). ``seen`` (round 0, at construction) records what the
        checks read on the way."""
        if self.sampler is None:
            raise RuntimeError("this SyntheticMix is a pickled copy (e.g. one made for a "
                               "DataLoader worker, or by copy.copy), which has no sampler; call "
                               "set_epoch on the original dataset in the main process "
                               "(copy.deepcopy keeps the sampler)")
        if out is None:
            out = torch.empty(len(self.syn_labels), *self.format.shape_chw, dtype=self.bank.dtype)
        start = 0
        for c, need in enumerate(self.plan):
            if need:
                self._generate_class(c, need, round_, out[start:start + need], seen)
            start += need
        return out

    def _generate_class(self, c: int, need: int, round_: int, out: Tensor,
                        seen: _FirstBank | None = None) -> None:
        n_got, k, drawn = 0, 0, 0
        while n_got < need:
            size = self.batch_size if self.gate is not None else min(self.batch_size, need - n_got)
            if self.gate is not None and drawn >= self.gate_max_draws * need:
                rate = n_got / max(drawn, 1)
                raise ValueError(
                    f"quality gate {self.gate} could not fill class {self.classes[c]!r}: "
                    f"{n_got} of {need} samples accepted after {drawn} draws (rate {rate:.3g}); "
                    f"lower gate=, raise gate_max_draws= or train the CLS-GAN longer")
            labels = torch.full((size,), c, dtype=torch.long)
            x = self.sampler(labels, seed_for(self.seed, round_, c, k))
            k += 1
            drawn += size
            if seen is not None:                    # for the range check
                lo, hi = torch.stack(torch.aminmax(x)).tolist()
                seen.span = [min(seen.span[0], lo), max(seen.span[1], hi)]
            if self.gate is not None:
                x = x[gate_mask(self._gate_logits(x), labels, self.gate)]
            elif seen is not None and seen.tally is not None:  # gate 0: argmax = label
                seen.tally[0] += int(gate_mask(self.gate_classifier(x), labels, 0.0).sum())
                seen.tally[1] += len(x)
            x = x[: need - n_got]
            if seen is not None:                    # for the diversity check
                have = sum(map(len, seen.kept.setdefault(c, [])))
                if have < seen.per_class:
                    seen.kept[c].append(pooled(x[: seen.per_class - have]).cpu())
            out[n_got:n_got + len(x)] = self.format.from_unit(x)
            n_got += len(x)
            if self.progress:
                print(f"\rSyntheticMix: class {self.classes[c]} {n_got}/{need}", end="",
                      file=sys.stderr, flush=True)
        if self.progress:
            print(file=sys.stderr)

    def _gate_logits(self, x: Tensor) -> Tensor:
        """(N, C) class logits, or (N, C + 1) with the "no known class" logit 0 (gate_mode
        "real"), on which the gate takes a softmax."""
        a = self.gate_classifier(x).float()
        return torch.cat([a, a.new_zeros(len(a), 1)], dim=1) if self.gate_mode == "real" else a

    def set_epoch(self, epoch: int) -> None:
        """Call at the start of every epoch, before iterating the DataLoader (like
        DistributedSampler.set_epoch): with ``refresh_every=N`` the bank is regenerated when
        ``epoch // N`` changes. Workers see the new bank when they start after this call
        (``persistent_workers=False``, the default), or always with ``shared_bank=True``."""
        try:
            if isinstance(epoch, bool):
                raise TypeError
            epoch = operator.index(epoch)           # an int, numpy integer, integer tensor
        except TypeError:
            raise TypeError(f"set_epoch takes the epoch number, a whole number, got {epoch!r} "
                            f"({type(epoch).__name__})") from None
        if epoch < 0:
            raise ValueError(f"set_epoch takes the epoch number, 0 or more, got {epoch}")
        r = epoch // self.refresh_every if self.refresh_every else 0
        if r != self.round:
            bank = self._generate(r)
            if self.shared_bank:
                self.bank.copy_(bank)               # same plan, so same shape, every round
            else:
                self.bank = bank
            self.round = r
            self._live_round.fill_(r)

    # ------------------------------------------------------------------ Dataset
    def __len__(self) -> int:
        return self.n_real + len(self.syn_labels)

    def is_synthetic(self, i: int) -> bool:
        """Whether item ``i`` (a whole number, negative from the end) is a synthetic one."""
        i = _index(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        return (i % len(self)) >= self.n_real

    @property
    def num_synthetic(self) -> int:
        return len(self.syn_labels)

    def class_counts(self) -> list[int]:
        """Items per class, real and synthetic together."""
        return class_counts(torch.tensor(self.targets), self.num_classes)

    def balanced_sampler(self, real_share: float = 0.5, num_samples: int | None = None,
                         generator: torch.Generator | None = None) -> WeightedRandomSampler:
        """A ``WeightedRandomSampler`` (with replacement) that draws every class equally often
        and, within a class that has synthetic items, a share ``real_share`` of its draws
        from its real items (the rest from its synthetic ones). A class without synthetic
        items is drawn from its real items alone.

        ``DataLoader(mix, sampler=mix.balanced_sampler(0.5), batch_size=...)`` keeps the
        rare classes' few real images in every epoch, like random oversampling, while the
        GAN's samples add variety. ``num_samples`` defaults to ``len(self)``.
        """
        if isinstance(real_share, bool) or not isinstance(real_share, numbers.Real) \
                or not 0 <= real_share <= 1:
            raise ValueError(f"real_share must be a number in [0, 1], got "
                             f"{type(real_share).__name__} {real_share!r}")
        t = torch.tensor(self.targets)
        syn = torch.arange(len(t)) >= self.n_real
        w = torch.zeros(len(t), dtype=torch.double)
        for c in range(self.num_classes):
            real, fake = (t == c) & ~syn, (t == c) & syn
            n_real, n_fake = int(real.sum()), int(fake.sum())
            share = 1.0 if n_fake == 0 else (0.0 if n_real == 0 else real_share)
            if n_real:
                w[real] = share / n_real
            if n_fake:
                w[fake] = (1 - share) / n_fake
        return WeightedRandomSampler(w, len(self) if num_samples is None else num_samples,
                                     replacement=True, generator=generator)

    def __getitem__(self, i: int):
        i = _index(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        i = i % len(self)
        if i < self.n_real:
            x, y = self.real[i]
            y = int(y)
        else:
            if not self.shared_bank and int(self._live_round) != self.round:
                raise RuntimeError(
                    f"this copy of the SyntheticMix (a DataLoader worker's) holds the synthetic "
                    f"bank of round {self.round}, but set_epoch has moved the dataset to round "
                    f"{int(self._live_round)}: the workers started before set_epoch "
                    f"(persistent_workers=True keeps them across epochs). Use "
                    f"DataLoader(persistent_workers=False), or SyntheticMix(..., "
                    f"shared_bank=True), and call set_epoch before iterating")
            j = i - self.n_real                     # a copy: transforms may work in place
            x, y = self.format.to_item(self.bank[j].clone()), self.targets[i]
        if self.transform is not None:
            x = self._apply(x)
        return x, y

    def _apply(self, x: Any) -> Any:
        if is_albumentations(self.transform):
            self._seed_transform()
            out = self.transform(image=to_hwc_uint8(x, self.format))["image"]
            # uint8 HWC back to the items' format; anything else (a tensor after ToTensorV2,
            # floats after Normalize or ToFloat) is the transform's own output, as it is
            return from_hwc_uint8(out, self.format) if isinstance(out, np.ndarray) and \
                out.dtype == np.uint8 else out
        return self.transform(x)

    def _seed_transform(self) -> None:
        """Seed an albumentations transform, which draws from a generator of its own: in a
        DataLoader worker once from the worker's seed, or every worker would copy one
        generator and repeat the others' augmentations (torch seeds its own RNG per worker,
        not albumentations'); without workers once from torch's seed
        (``torch.initial_seed()``, which ``torch.manual_seed`` sets), unless the transform
        has a seed already (``Compose(seed=...)``). Both come from torch's seeds, so seeded
        runs repeat."""
        info = torch.utils.data.get_worker_info()
        if info is None:
            if getattr(self.transform, "seed", None) is None and \
                    callable(getattr(self.transform, "set_random_seed", None)):
                self.transform.set_random_seed(torch.initial_seed() % 2**32)
            return
        if _WORKER_SEEDED.get(id(self.transform)) == (info.id, info.seed):
            return
        _WORKER_SEEDED[id(self.transform)] = (info.id, info.seed)   # per transform: one shared
        if callable(getattr(self.transform, "set_random_seed", None)):   # by two mixes is
            self.transform.set_random_seed(info.seed % 2**32)            # seeded once

    def __repr__(self) -> str:
        return (f"SyntheticMix({self.n_real} real + {self.num_synthetic} synthetic items, "
                f"{self.num_classes} classes, round {self.round})")


def _warn_balance(plan: list[int], counts: list[int], balance: Any, classes: list) -> None:
    """Warn when ``balance=`` adds no synthetic item, and name the classes that it fills
    with synthetic items alone (no real item to learn them from)."""
    if not sum(plan):
        warnings.warn(f"balance={balance!r} adds no synthetic item (the real class counts are "
                      f"{counts}): the mix is the real data alone", stacklevel=3)
    alone = [repr(classes[c]) for c, (n, k) in enumerate(zip(counts, plan)) if n == 0 and k]
    if len(alone) == 1:
        warnings.warn(f"class {alone[0]} has no real item: its items are all synthetic",
                      stacklevel=3)
    elif alone:
        warnings.warn(f"classes {', '.join(alone)} have no real item: their items are all "
                      f"synthetic", stacklevel=3)


def _index(i: Any) -> int:
    """A SyntheticMix index as an int: an int, numpy integer or integer tensor."""
    try:
        return operator.index(i)
    except TypeError:
        raise TypeError(f"SyntheticMix indices are whole numbers (a DataLoader's sampler "
                        f"gives them), got {i!r} ({type(i).__name__})") from None


def _check_class_names(data: list[str], model: list[str]) -> None:
    """Label i is the model's class i: refuse the model's class names in another order (every
    synthetic item would carry a wrong label) and warn about other differences. The names
    "0", "1", ... (digits', MNIST's and SVHN's, and a model's without names of its own) in
    another order are warned about, not refused: a model without names that was trained on
    the dataset's labels is right. A data name that starts with the model's and goes on
    after a space or a dash names that class (torchvision's MNIST calls class "0"
    "0 - zero")."""
    if len(data) == len(model) and all(_names(d, m) for d, m in zip(data, model)):
        return
    digit_names = model == id_names(len(model))                  # digits', or no names
    if sorted(data) == sorted(model) and not digit_names:
        raise ValueError(f"the dataset's classes {data} are the sampler's {model} in another "
                         f"order, so label i names another class on each side; give the "
                         f"dataset the sampler's order (e.g. remap its targets)")
    if sorted(data) == sorted(model):       # "0", "1", "10", "2", ...: ImageFolder's order
        i = next(i for i, (d, m) in enumerate(zip(data, model)) if d != m)
        warnings.warn(f"the dataset's classes {data} are the sampler's {model} in another "
                      f"order: label i is the sampler's i-th class whatever the dataset names "
                      f"it (label {i}, named {data[i]!r} here, gets images of the sampler's "
                      f"{model[i]!r}); unless the sampler was trained on this dataset's "
                      f"labels, give the dataset the sampler's order (e.g. remap its targets)",
                      stacklevel=3)
        return
    warnings.warn(f"the dataset's classes {data} are not the sampler's {model}: a synthetic "
                  f"item of label i is an image of the sampler's i-th class; check that the two "
                  f"lists name the same classes in the same order", stacklevel=3)


def _names(data_name: str, model_name: str) -> bool:
    """Whether a dataset's class name is the model's: the same, or the model's followed by
    a space or a dash and more ("0 - zero" for "0")."""
    return data_name == model_name or (data_name.startswith(model_name) and
                                       data_name[len(model_name):][:1] in (" ", "-"))
