"""Sample quality of a trained run, in numbers that compare across runs of one dataset.

Inception weights cannot be downloaded on every machine, so the main feature space is a
*domain* one (:mod:`ganaug.features`): a small fixed classifier (``DomainNet``, an MLP for
images of at most 28x28x1 pixels, a small CNN otherwise) trained with a fixed seed and step
count on every label of the real training split. The GAN never sees those labels; the
classifier is only a ruler. Its weights are cached (keyed by a hash of the training images,
the architecture, the steps and the seed), so every run of a dataset is measured with the
same ruler.

On those penultimate-layer features, with generated images given exactly the labels of the
real reference images (the test split, at most ``max_samples`` of them):

- domain FID and KID (generated vs real test images);
- intra-class FID (the same, class by class, averaged over classes);
- improved precision and recall (k nearest neighbours, k = 3);
- each next to its *real reference*: the same metric for real training images (same labels)
  vs the same test images, i.e. what a generator that reproduced the training set would get;
- diversity, the mixers' check (``ganaug.checks``) on the same images, in pixels: how spread
  out the generated images of a class are relative to the real test images of the class
  (the first 20 per class); about 1 as varied, under 0.6 a likely collapse;
- label accuracy (GAN-test, Shmelkov et al. 2018): the share of generated images that the
  ruler assigns to their intended label; its real reference is its accuracy on the real
  test images;
- gate pass rates: the share of generated images that ``SyntheticMix(gate=G)`` would keep
  (the run's own classifier is confident enough of their intended label), overall and in
  the class that passes least, and how many of the kept ones the ruler reads as their label;
- train-on-synthetic-test-on-real (TSTR): the same small classifier, same steps and seed,
  trained only on generated images, tested on the whole real test split; its train-on-real
  reference is the ruler's own test accuracy.

Standard (Inception) FID is computed only from a local torchvision ``inception_v3`` weights
file (``inception_weights=`` / ``$GANAUG_INCEPTION_WEIGHTS``); nothing is ever downloaded.
"""
from __future__ import annotations

import copy
import math
import os
from typing import Any, Callable

import torch
from torch import Tensor

from . import features
from . import quality as Q
from .checks import DIVERSITY_SIDE, DIVERSITY_WARN, first_per_class_distances, relative_spread
from .checks import per_class as diversity_per_class
from .data import ImageSet
from .mix import GATE_MAX_DRAWS, gate_mask
from .model import CLSGAN, _concrete
from .train import pick_device   # auto; a clear error for cuda without a GPU

MAX_SAMPLES = 10_000           # real reference images (and as many generated) for FID & co.
KNN_K = 3
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000


# ----------------------------------------------------------------------------- metrics

def _reference_indices(test: ImageSet, max_samples: int, seed: int) -> Tensor:
    """All test images, or ``max_samples`` of them drawn at random with ``seed``."""
    if len(test) <= max_samples:
        return torch.arange(len(test))
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(len(test), generator=g)[:max_samples].sort().values


def _matching_train(train: ImageSet, labels: Tensor, seed: int) -> Tensor:
    """Training indices with the same per-class counts as ``labels`` (fewer if a class has
    fewer training images)."""
    g = torch.Generator().manual_seed(features.offset_seed(seed, 17))
    picks = []
    for c in range(train.num_classes):
        need = int((labels == c).sum())
        idx = torch.nonzero(train.targets == c).squeeze(1)
        picks.append(idx[torch.randperm(len(idx), generator=g)[:need]])
    return torch.cat(picks).sort().values


def _maybe(fn: Callable[[], Any], fix: str | None = None) -> tuple[Any, str | None]:
    """(fn(), None), or (None, why) when the sets are too small for the metric; ``fix``
    (what to change) is added to the reason when more samples would help."""
    try:
        return fn(), None
    except Q.TooFewSamples as e:
        return None, f"{e}; {fix}" if fix else str(e)
    except ValueError as e:
        return None, str(e)


def _too_few_fix(n: int, max_samples: int, n_test: int) -> str:
    """What to change when ``n`` reference images were too few for a metric."""
    if n == n_test:             # the whole test split is used: --samples cannot help
        return f"the test split has only {n_test} images"
    return f"pass a --samples larger than {max_samples}"


def _intra_classes(*labels: Tensor) -> list[int]:
    """The classes with at least 2 images in every one of the label sets: intra-class FID's
    classes, one list for the generated images and the real reference alike."""
    return [c for c in torch.unique(labels[0]).tolist()
            if all(int((y == c).sum()) >= 2 for y in labels)]


def _metric_set(real: Tensor, y_real: Tensor, other: Tensor, y_other: Tensor, seed: int,
                classes: list[int], skip: str | None = None, fix: str | None = None) -> dict:
    """FID, KID, intra-class FID (over ``classes``), precision and recall of ``other``
    against ``real``; with ``skip`` (a reason) none is computed and each is ``None`` with that
    reason. ``fix``: see :func:`_maybe`."""
    maybe = (lambda fn: (None, skip)) if skip else (lambda fn: _maybe(fn, fix))
    m: dict[str, Any] = {}
    m["fid"], m["fid_error"] = maybe(lambda: Q.fid(real, other))
    size = min(KID_SUBSET_SIZE, len(real), len(other))
    # sets no larger than a subset: every subset would be both whole sets, one and the same
    subsets = 1 if size == len(real) == len(other) else KID_SUBSETS
    m["kid"], m["kid_error"] = maybe(lambda: Q.kid(real, other, subsets=subsets,
                                                   subset_size=size, seed=seed))
    m["kid_subset_size"], m["kid_subsets"] = size, subsets
    ok_t = torch.tensor(classes, dtype=torch.long)
    keep_r, keep_o = torch.isin(y_real, ok_t), torch.isin(y_other, ok_t)
    m["intra"], m["intra_error"] = maybe(lambda: Q.intra_class_fid(
        real[keep_r], y_real[keep_r], other[keep_o], y_other[keep_o])) if classes or skip \
        else (None, "no class has 2 images on every side" + (f"; {fix}" if fix else ""))
    m["pr"], m["pr_error"] = maybe(lambda: Q.precision_recall(real, other, k=KNN_K))
    return m


DIVERGED = "generated images contain NaN or inf values (the generator diverged)"


def _entry(value, protocol: str, reference=None, **extra) -> dict:
    return {"value": value, "real_reference": reference, "protocol": protocol, **extra}


def evaluate_quality(model: CLSGAN, train: ImageSet, test: ImageSet, *,
                     max_samples: int = MAX_SAMPLES, tstr_per_class: int | None = None,
                     seed: int = 0, extractor_steps: int | None = None,
                     cache_dir: str | os.PathLike | None = None,
                     inception_weights: str | os.PathLike | None = None,
                     device: str | torch.device = "auto",
                     labels_note: str | None = None,
                     log: Callable[[str], None] | None = None) -> dict:
    """Every sample-quality number of :mod:`ganaug.evaluation`'s protocol, each as
    ``{"value", "real_reference", "protocol", ...}``, plus ``"gate"`` (``{"protocol",
    "rows", "error"}``, a row per gate in :data:`GATES`: ``gate``, ``pass``, ``min_class``,
    ``min_class_pass``, ``passing_label_accuracy``) and ``"protocol"`` (a dict).

    ``max_samples``: real test images used as reference (and as many generated, with the
    same labels). ``tstr_per_class``: generated training images per class for TSTR
    (default: as many in all as the real training split has). ``seed``: the sampling seed.
    ``inception_weights``: a local torchvision inception_v3 state dict (default
    ``$GANAUG_INCEPTION_WEIGHTS``); without one, Inception FID is reported as not computed.
    It is loaded first, so a bad file is an error before any other work.
    ``labels_note``: why the generator does not follow its labels (an unconditional
    objective, feature matching alone), attached to intra-class FID, diversity, label
    accuracy, the gate table and TSTR, which read the generated images' labels.

    A metric that cannot be computed is ``None`` with the reason in ``"error"``: sets too
    small for it (the reason names ``--samples``), or generated images holding NaN or inf (a
    diverged generator: then every metric, TSTR included, is ``None``; the real references
    are still given).
    """
    if max_samples < 2:
        raise ValueError(f"max_samples (--samples) must be at least 2, got {max_samples}")
    if tstr_per_class is not None and tstr_per_class <= 0:
        raise ValueError(f"tstr_per_class (--tstr-per-class) must be positive, got "
                         f"{tstr_per_class}")
    if extractor_steps is not None and extractor_steps <= 0:
        raise ValueError(f"extractor_steps (--classifier-steps) must be positive, got "
                         f"{extractor_steps}")
    if (train.num_classes, train.image_shape) != (model.num_classes, model.image_shape):
        raise ValueError(f"the data ({train.num_classes} classes, {train.image_shape}) does not "
                         f"match the model ({model.num_classes}, {model.image_shape})")
    dev = pick_device(device)
    weights = inception_weights or os.environ.get(features.INCEPTION_ENV)
    inception = features.load_inception(weights, dev) if weights else None
    here = getattr(model, "device", None)            # a CLSGAN's; a stand-in may have none
    if here is None:
        model = model.to(dev)
    elif _concrete(here) != _concrete(dev):            # a copy there: the caller's stays put
        model = copy.deepcopy(model).to(dev)
    net, ext = features.domain_extractor(train, steps=extractor_steps, cache_dir=cache_dir,
                                         device=dev, log=log)
    ext["test_accuracy"] = features.accuracy_of(net, test.images, test.targets)
    C = model.num_classes

    say = log or (lambda s: None)
    ref = _reference_indices(test, max_samples, seed)
    y_ref = test.targets[ref]
    say(f"eval: {len(ref)} generated vs {len(ref)} real test images: FID, KID, intra-class "
        f"FID, precision and recall ...")
    x_fake = model.sample(y_ref, torch.Generator().manual_seed(seed)).cpu()
    # a diverged generator: every sample-quality number is n/a, for this one reason
    diverged = None if torch.isfinite(x_fake).all() else DIVERGED
    tr_idx = _matching_train(train, y_ref, seed)
    a_real, f_real = features.outputs_of(net, test.images[ref])  # the ruler's logits, features
    a_fake, f_fake = (a_real, f_real) if diverged else features.outputs_of(net, x_fake)
    f_train = features.features_of(net, train.images[tr_idx])
    n, n_tr = len(ref), len(tr_idx)
    fix = _too_few_fix(n, max_samples, len(test))
    y_tr = train.targets[tr_idx]
    # the same classes for the generated images and the reference: like for like
    intra = _intra_classes(y_ref, y_tr)
    gen_m = _metric_set(f_real, y_ref, f_fake, y_ref, seed, intra, skip=diverged, fix=fix)
    real_m = _metric_set(f_real, y_ref, f_train, y_tr, seed, intra)
    space = f"{ext['name']} {ext['feature_dim']}-d features"
    pair = f"{n} generated (labels = the real images' labels, seed {seed}) vs {n} real test images"
    ref_note = f"real reference: {n_tr} real training images vs the same test images"
    pr_gen, pr_real = gen_m["pr"] or (None, None), real_m["pr"] or (None, None)
    out: dict[str, Any] = {}
    out["domain_fid"] = _entry(gen_m["fid"], f"{pair}; {space}; {ref_note}", real_m["fid"],
                               error=gen_m["fid_error"])
    kid_g, kid_r = gen_m["kid"] or (None, None), real_m["kid"] or (None, None)
    whole = gen_m["kid_subsets"] == 1
    subsets = (f"one subset, all {gen_m['kid_subset_size']} of each set (no spread: no more "
               f"images than a subset of {KID_SUBSET_SIZE})" if whole else
               f"{gen_m['kid_subsets']} subsets of {gen_m['kid_subset_size']}, ± their std")
    out["domain_kid"] = _entry(kid_g[0], f"{pair}; {space}; unbiased MMD^2 (may dip below 0; "
                               f"not x1000), cubic polynomial kernel, {subsets}; "
                               f"{ref_note}", kid_r[0], std=None if whole else kid_g[1],
                               error=gen_m["kid_error"])
    intra_g, intra_r = gen_m["intra"] or (None, {}), real_m["intra"] or (None, {})
    per = [int((y_ref == c).sum()) for c in intra]
    per_note = (f"{min(per)}" if min(per) == max(per) else f"{min(per)} to {max(per)}") \
        if per else "0"
    out["intra_class_fid"] = _entry(
        intra_g[0], f"mean over {len(intra)} classes of the per-class FID ({per_note} generated "
        f"and real images a class), {pair}; {space}; {ref_note}", intra_r[0],
        per_class={str(k): v for k, v in intra_g[1].items()}, error=gen_m["intra_error"])
    out["precision"] = _entry(pr_gen[0], f"share of generated images inside the real images' "
                              f"k={KNN_K} nearest-neighbour balls; {pair}; {space}; {ref_note}",
                              pr_real[0], error=gen_m["pr_error"])
    out["recall"] = _entry(pr_gen[1], f"share of real images inside the generated images' "
                           f"k={KNN_K} nearest-neighbour balls; {pair}; {space}; {ref_note}",
                           pr_real[1], error=gen_m["pr_error"])

    # ---- do they vary within their classes: the mixers' check, on pixels
    k = diversity_per_class(C)
    out["diversity"] = _entry(
        None if diverged else _diversity(x_fake, test.images[ref], y_ref, y_ref, C, k),
        f"mean pixel distance within a class over that between classes, relative to the real "
        f"test images' (the mixers' check; under {DIVERSITY_WARN} a likely collapse); the "
        f"first {k} of each class of the {pair}; images over {DIVERSITY_SIDE} pixels a side "
        f"pooled to {DIVERSITY_SIDE}; {ref_note}",
        _diversity(train.images[tr_idx], test.images[ref], train.targets[tr_idx], y_ref, C, k),
        error=diverged)

    # ---- do the generated images carry their labels: the ruler's reading, and the gate's
    ruler_pred = None if diverged else a_fake.argmax(1)
    real_pred = a_real.argmax(1)
    out["label_accuracy"] = _entry(
        None if diverged else float((ruler_pred == y_ref).float().mean()),
        f"share of the {n} generated images that the {ext['name']} classifier (trained on the "
        f"real training images) assigns to their intended label (GAN-test); real reference: "
        f"its accuracy on the {n} real test images", float((real_pred == y_ref).float().mean()),
        error=diverged)
    out["gate"] = _gate_table(model, x_fake, y_ref, ruler_pred, C, diverged)

    # ---- train on synthetic, test on real: the ruler's architecture, steps and seed
    per_class = tstr_per_class or max(1, math.ceil(len(train) / C))
    y_syn = torch.arange(C).repeat_interleave(per_class)
    tstr, tstr_error = None, diverged
    if not diverged:
        say(f"eval: train on synthetic, test on real: {ext['steps']} steps on {len(y_syn)} "
            f"generated images ...")
        g_syn = torch.Generator().manual_seed(features.offset_seed(seed, 1))
        x_syn = model.sample(y_syn, g_syn).cpu()
        if torch.isfinite(x_syn).all():
            clf = features.train_domain_classifier(x_syn, y_syn, C, kind=ext["kind"],
                                                   steps=ext["steps"], seed=ext["seed"],
                                                   device=dev, log=log, name="TSTR classifier")
            tstr = features.accuracy_of(clf, test.images, test.targets)
        else:
            tstr_error = DIVERGED
    out["tstr_accuracy"] = _entry(
        tstr, f"{ext['name']} classifier ({ext['steps']} Adam steps, batch "
        f"{features.BATCH_SIZE}, seed {ext['seed']}) trained only on {len(y_syn)} generated "
        f"images ({per_class} per class), "
        f"tested on all {len(test)} real test images; real reference: the same classifier "
        f"trained on the {len(train)} real training images", ext["test_accuracy"],
        error=tstr_error)

    # ---- standard FID, only from local Inception weights
    if inception is not None:
        value, err = None, diverged
        say("eval: Inception features of the test, training and generated images (299x299) ...")
        fi_real = features.inception_features(test.images[ref], inception)
        reference, _ = _maybe(lambda: Q.fid(fi_real, features.inception_features(
            train.images[tr_idx], inception)))
        if not diverged:
            fi_fake = features.inception_features(x_fake, inception)
            value, err = _maybe(lambda: Q.fid(fi_real, fi_fake), fix)
        out["inception_fid"] = _entry(
            value, f"{pair}; torchvision inception_v3 2048-d pool features from {weights}, "
            f"images resized to 299x299 (bilinear); close to, not identical with, the "
            f"TF-Inception FID of published tables; {ref_note}", reference, error=err)
    else:
        out["inception_fid"] = _entry(None, f"not computed: no local Inception weights (pass "
                                      f"--inception-weights FILE or set "
                                      f"{features.INCEPTION_ENV}; nothing is downloaded)")
    if labels_note:
        for key in ("intra_class_fid", "diversity", "label_accuracy", "gate", "tstr_accuracy"):
            out[key]["note"] = labels_note
    out["protocol"] = {
        "real_split": "test", "num_real": n, "num_generated": n, "sample_seed": seed,
        "generated_labels": "the real reference images' labels", "knn_k": KNN_K,
        "num_train_reference": n_tr, "tstr_per_class": per_class, "extractor": ext,
        "classes": list(getattr(model, "classes", None) or range(C)),
        "device": str(dev),
    }
    return out


def _diversity(x: Tensor, real: Tensor, y: Tensor, y_real: Tensor, num_classes: int, k: int
               ) -> float | None:
    """``checks.relative_spread`` of the first ``k`` images of each class of ``x`` against
    the first ``k`` of each class of ``real``."""
    return relative_spread(first_per_class_distances(x, y, num_classes, k),
                           first_per_class_distances(real, y_real, num_classes, k))


GATES = (0.0, 0.5, 0.7, 0.9)     # 0: the argmax alone, no confidence asked


def _gate_table(model: Any, x: Tensor, y: Tensor, ruler_pred: Tensor | None, num_classes: int,
                diverged: str | None) -> dict:
    """What ``SyntheticMix(gate=G)`` would keep of the generated images ``x`` (intended
    labels ``y``): for each G in :data:`GATES`, the share passing the run's own classifier
    (:func:`ganaug.mix.gate_mask`, ``gate_mode="class"``), the share in the class that
    passes least, and the share of the passing images the ruler reads as their label
    (``ruler_pred``). A sampler without ``activations`` (not a ganaug model) gets none."""
    protocol = (f"the run's own classifier (EMA loss network, softmax over its {num_classes} "
                f"classes, as SyntheticMix(gate=G) reads it) on the same {len(y)} generated "
                f"images; gate 0 asks only that the argmax is the intended label")
    table: dict[str, Any] = {"protocol": protocol, "rows": [], "error": diverged}
    if diverged:
        return table
    if not callable(getattr(model, "activations", None)):
        table["error"] = "the sampler has no classifier of its own (no activations method)"
        return table
    logits = model.activations(x).float().cpu()
    y = y.cpu()
    present = [c for c in range(num_classes) if bool((y == c).any())]
    for g in GATES:
        keep = gate_mask(logits, y, g).cpu()
        per_class = {c: float(keep[y == c].float().mean()) for c in present}
        low = min(per_class, key=per_class.get)
        table["rows"].append({
            "gate": g, "pass": float(keep.float().mean()), "min_class": low,
            "min_class_pass": per_class[low],
            "passing_label_accuracy": float((ruler_pred[keep] == y[keep]).float().mean())
            if bool(keep.any()) else None})
    return table


def _fmt(v, spec: str = ".4f") -> str:
    return "n/a" if v is None else format(v, spec)


def quality_lines(q: dict) -> list[str]:
    """Human-readable lines for :func:`evaluate_quality`'s result, protocol beside each."""
    ext = q["protocol"]["extractor"]
    lines = [f"sample quality (feature extractor {ext['name']} [{ext['key']}], "
             f"{ext['feature_dim']}-d penultimate layer, trained on all {ext['train_images']} "
             f"real training images with their labels, its test accuracy "
             f"{ext['test_accuracy']:.4f})"]
    rows = [("domain FID", "domain_fid", ".3f"), ("domain KID", "domain_kid", ".5f"),
            ("intra-class FID", "intra_class_fid", ".3f"),
            ("precision", "precision", ".4f"), ("recall", "recall", ".4f"),
            ("diversity", "diversity", ".3f"),
            ("label accuracy", "label_accuracy", ".4f"),
            ("TSTR accuracy", "tstr_accuracy", ".4f"),
            ("Inception FID", "inception_fid", ".3f")]
    for name, key, spec in rows:
        if key not in q:                    # an eval.json written before the metric existed
            continue
        e = q[key]
        value = _fmt(e["value"], spec)
        if e.get("std") is not None:
            value += f" ± {_fmt(e['std'], spec)}"
        ref = "" if e.get("real_reference") is None else \
            f" [real reference {_fmt(e['real_reference'], spec)}]"
        why = f" ({e['error']})" if e.get("error") else ""
        note = f" NOTE: {e['note']}." if e.get("note") else ""
        lines.append(f"  {name:<16} {value}{ref}{why}  -- {e['protocol']}{note}")
    if "gate" in q:
        lines += gate_lines(q["gate"], q["protocol"].get("classes"))
    return lines


def gate_lines(table: dict, classes: list[str] | None = None) -> list[str]:
    """The gate table of :func:`evaluate_quality` as printed lines."""
    head = "  gate pass rates"
    note = f" NOTE: {table['note']}." if table.get("note") else ""
    if table["error"]:
        return [f"{head} n/a ({table['error']})  -- {table['protocol']}{note}"]
    lines = [f"{head} -- {table['protocol']}{note}"]
    for r in table["rows"]:
        name = classes[r["min_class"]] if classes else str(r["min_class"])
        short = (f", under 1 in {GATE_MAX_DRAWS}: SyntheticMix cannot fill that class with "
                 f"its default gate_max_draws" if r["min_class_pass"] * GATE_MAX_DRAWS < 1
                 else "")
        read = "n/a" if r["passing_label_accuracy"] is None else \
            f"{100 * r['passing_label_accuracy']:.1f}%"
        lines.append(f"    gate {r['gate']:.1f}: {100 * r['pass']:5.1f}% pass (fewest: class "
                     f"{name}, {100 * r['min_class_pass']:.1f}%{short}); {read} of those are "
                     f"read as their label by the domain classifier")
    return lines


__all__ = ["evaluate_quality", "GATES", "quality_lines", "gate_lines", "MAX_SAMPLES"]
