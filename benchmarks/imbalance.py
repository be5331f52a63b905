"""Class balancing on long-tailed data: ganaug's SyntheticMix(balance="max") against the
usual fixes, with the same small classifier (benchmarks/_classifier.py) and the same number
of training steps for every method.

    python benchmarks/imbalance.py [--datasets digits,mnist] [--rhos 10,100] [--seeds 0,1,2]
                                   [--data-root ../shared/data] [--gan-epochs 100]
                                   [--gan-options JSON] [--gate 0.9] [--gate-mode real]
                                   [--real-shares 0.5]

For every dataset, imbalance ratio rho and seed: the train split is cut to an exponential
long tail (CIFAR-10-LT profile, ``ganaug.make_long_tailed``, seed = the seed), then

- real: the long-tailed data as it is;
- oversample: WeightedRandomSampler with weights 1 / class count;
- class-weighted: cross-entropy weighted by N / (C * class count);
- SMOTE: imbalanced-learn's SMOTE on flattened pixels, up to the majority count;
- ganaug: a conditional CLS-GAN (``objective="cls"``, every label; ``--gan-options``,
  default: class-balanced labeled batches and the mode-seeking term, weight 1; not the
  fields the script sets: dataset, objective, labels_per_class, epochs, seed, device)
  trained on the long-tailed data, then ``SyntheticMix(lt, model, balance="max", gate=0.9,
  gate_mode="real")`` (``--gate``, ``--gate-mode``), read in shuffled order ("ganaug") and
  through ``mix.balanced_sampler(real_share)`` (every class equally often, that share of
  its draws from its real images).

The classifier trains for ``clf_epochs`` passes over a balanced-size set, for every method.
Metrics on the (balanced) test split: balanced accuracy and macro-F1, mean ± std over
seeds. Datasets whose files are missing are skipped and say so. Writes JSON and CSV.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset, WeightedRandomSampler

from _classifier import evaluate, train_classifier
from _common import (DATA_ROOT, OUT_HELP, check_args, fmt, gan_options, gate_failed,
                     load_or_skip, machine, parse_list, stop_if_all_skipped,
                     write_outputs)

from ganaug import SyntheticMix, TrainConfig, build_model, make_long_tailed, train

BASELINES = ("real", "oversample", "class-weighted", "SMOTE")


def smote(x: torch.Tensor, y: torch.Tensor, seed: int) -> TensorDataset | None:
    """SMOTE up to the majority count; None when a class has a single image (SMOTE
    interpolates between an image and its neighbours of the same class)."""
    from imblearn.over_sampling import SMOTE

    if int(torch.bincount(y).min()) < 2:
        return None
    k = min(5, int(torch.bincount(y).min()) - 1)
    xs, ys = SMOTE(k_neighbors=k, random_state=seed).fit_resample(x.flatten(1).numpy(), y.numpy())
    return TensorDataset(torch.as_tensor(xs, dtype=torch.float).view(-1, *x.shape[1:]),
                         torch.as_tensor(ys, dtype=torch.long))


def one_setting(name, train_set, test_set, rho, seed, args, device) -> list[dict]:
    lt = make_long_tailed(train_set, rho, seed)
    counts = lt.class_counts()
    C, d = lt.num_classes, int(np.prod(lt.image_shape))
    steps = args.clf_epochs * math.ceil(C * max(counts) / args.batch_size)
    real = TensorDataset(lt.images, lt.targets)
    rows, base = [], {"dataset": name, "rho": rho, "seed": seed, "n_train": len(lt),
                      "class_counts": counts, "steps": steps}

    def record(method, model, extra=None):
        m = evaluate(model, test_set.images, test_set.targets, C, device)
        rows.append({**base, "method": method, "balanced_accuracy": m["balanced_accuracy"],
                     "macro_f1": m["macro_f1"], "accuracy": m["accuracy"], **(extra or {})})
        print(f"{name}-LT rho={rho} seed={seed} {method:15s} bal.acc {m['balanced_accuracy']:.4f}"
              f"  macro-F1 {m['macro_f1']:.4f}", flush=True)

    kw = dict(num_classes=C, in_features=d, steps=steps, seed=seed, batch_size=args.batch_size,
              device=device)
    record("real", train_classifier(real, **kw))
    w = 1.0 / torch.tensor(counts, dtype=torch.double)
    sampler = WeightedRandomSampler(w[lt.targets], num_samples=C * max(counts), replacement=True,
                                    generator=torch.Generator().manual_seed(seed))
    record("oversample", train_classifier(real, sampler=sampler, **kw))
    cw = len(lt) / (C * torch.tensor(counts, dtype=torch.float))
    record("class-weighted", train_classifier(real, class_weight=cw, **kw))
    smoted = smote(lt.images, lt.targets, seed)
    if smoted is not None:
        record("SMOTE", train_classifier(smoted, **kw))
    else:
        print(f"{name}-LT rho={rho} seed={seed} SMOTE: not run, a class has a single image",
              flush=True)

    cfg = TrainConfig(**gan_fields(name, args.gan_epochs, seed, device), **args.gan_options)
    gan = build_model(cfg.resolved(), lt)
    t0 = time.perf_counter()
    train(gan, lt, None, cfg, progress=False, log=lambda s: None)
    gan_s = time.perf_counter() - t0
    gan_acc = evaluate_model(gan, test_set)
    gate = args.gate
    try:
        mix = SyntheticMix(lt, gan, balance="max", seed=seed, gate=gate, gate_mode=args.gate_mode)
    except ValueError as e:                  # the gate could not fill a class: go without
        if not gate_failed(e):
            raise
        print(f"{name}-LT rho={rho} seed={seed}: {e}; using no gate", flush=True)
        gate = None
        mix = SyntheticMix(lt, gan, balance="max", seed=seed)
    extra = {"gan_seconds": round(gan_s, 1), "num_synthetic": mix.num_synthetic,
             "gan_balanced_accuracy": gan_acc, "gate": gate}
    record("ganaug", train_classifier(mix, **kw), extra)
    for share in args.real_shares:
        draws = mix.balanced_sampler(share, generator=torch.Generator().manual_seed(seed))
        record(f"ganaug, real share {share:g}", train_classifier(mix, sampler=draws, **kw), extra)
    return rows


def gan_fields(name: str, epochs: int, seed: int, device: str) -> dict:
    """The TrainConfig fields this script sets for a CLS-GAN (``--gan-options`` cannot)."""
    return dict(dataset=name, objective="cls", labels_per_class=None, epochs=epochs, seed=seed,
                device=device)


def evaluate_model(gan, test_set) -> float:
    """Balanced accuracy of the CLS-GAN's own classifier (for reference)."""
    from ganaug.experiment import evaluate as evaluate_gan
    return evaluate_gan(gan, test_set)["balanced_accuracy"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="digits,mnist",
                   help="comma-separated datasets (digits, mnist, svhn, cifar10, folder:PATH; "
                        "default digits,mnist); one whose files are missing is skipped")
    p.add_argument("--rhos", default="10,100",
                   help="imbalance ratios (largest / smallest class) to try (default 10,100)")
    p.add_argument("--seeds", default="0,1,2", help="seeds (default 0,1,2)")
    p.add_argument("--data-root", default=DATA_ROOT,
                   help="torchvision root of mnist, svhn, cifar10 (default ../shared/data)")
    p.add_argument("--gan-epochs", type=int, default=100,
                   help="CLS-GAN epochs on digits-LT (default 100)")
    p.add_argument("--gan-epochs-mnist", type=int, default=5,
                   help="CLS-GAN epochs on every other dataset (default 5)")
    p.add_argument("--clf-epochs", type=int, default=30,
                   help="classifier passes over a balanced-size set, on digits (default 30)")
    p.add_argument("--clf-epochs-mnist", type=int, default=10,
                   help="the same on every other dataset (default 10)")
    p.add_argument("--batch-size", type=int, default=64, help="classifier batch (default 64)")
    p.add_argument("--gan-options", default='{"balanced_labels": true, "mode_seeking": 1.0}',
                   help="JSON of extra TrainConfig fields for the CLS-GAN")
    p.add_argument("--gate", type=float, default=0.9, help="SyntheticMix quality gate (0: off)")
    p.add_argument("--gate-mode", choices=("real", "class"), default="real",
                   help="what the gate reads: exp(-L(x, y)) ('real') or the class softmax ('class')")
    p.add_argument("--real-shares", default="0.5",
                   help="real shares of mix.balanced_sampler to try, comma-separated")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help=OUT_HELP)
    args = p.parse_args()
    args.gate = args.gate or None
    args.real_shares = parse_list(p, args.real_shares, "--real-shares", float, empty_ok=True)
    check_args(p, datasets=args.datasets, unit={"--real-shares": (args.real_shares, True)},
               gate=args.gate, positive={f"--{k.replace('_', '-')}": getattr(args, k) for k in (
                   "gan_epochs", "gan_epochs_mnist", "clf_epochs", "clf_epochs_mnist",
                   "batch_size")})
    rhos = parse_list(p, args.rhos, "--rhos", float)
    if not all(1 <= r < math.inf for r in rhos):
        p.error(f"--rhos takes imbalance ratios (largest / smallest class), each a finite "
                f"number >= 1, got {args.rhos!r}")
    seeds = parse_list(p, args.seeds, "--seeds")
    names = args.datasets.split(",")
    args.gan_options = gan_options(p, args.gan_options, dict.fromkeys(
        ("dataset", "objective", "labels_per_class", "epochs", "seed", "device"),
        "set by this script: --datasets, the conditional CLS-GAN on every label, "
        "--gan-epochs/--gan-epochs-mnist, --seeds, --device"), [gan_fields(
            n, args.gan_epochs if n == "digits" else args.gan_epochs_mnist, seeds[0],
            args.device) for n in names])
    try:                                         # SMOTE, one of the baselines: before any work
        import imblearn  # noqa: F401
    except ImportError:
        p.error("the SMOTE baseline needs imbalanced-learn: pip install -e '.[bench]'")
    rows, skipped = [], []
    for name in names:
        data = load_or_skip(name, args.data_root, skipped)
        if data is None:
            continue
        tr, te = data
        small = name == "digits"
        a = argparse.Namespace(**{**vars(args),
                                  "gan_epochs": args.gan_epochs if small else args.gan_epochs_mnist,
                                  "clf_epochs": args.clf_epochs if small else args.clf_epochs_mnist})
        for rho in rhos:
            for seed in seeds:
                rows += one_setting(name, tr, te, rho, seed, a, args.device)
    stop_if_all_skipped(rows, skipped)
    write_outputs(rows, Path(args.out), "imbalance",
                  {"machine": machine(), "args": vars(args), "skipped": skipped})
    print("\n| data | rho | method | balanced accuracy | macro-F1 |")
    print("|---|---|---|---|---|")
    for name in dict.fromkeys(r["dataset"] for r in rows):
        for rho in rhos:
            sel = [r for r in rows if r["dataset"] == name and r["rho"] == rho]
            ran = [m for m in BASELINES if any(r["method"] == m for r in sel)]
            best = max(ran, key=lambda m: np.mean(
                [r["balanced_accuracy"] for r in sel if r["method"] == m]))
            ours = ("ganaug",) + tuple(f"ganaug, real share {r:g}" for r in args.real_shares)
            for m in BASELINES + ours:
                rs = [r for r in sel if r["method"] == m]
                if not rs:
                    print(f"| {name}-LT | {rho:g} | {m} | not run (a class has one image) | |")
                    continue
                mark = " (best baseline)" if m == best else ""
                print(f"| {name}-LT | {rho:g} | {m}{mark} | {fmt([r['balanced_accuracy'] for r in rs])} "
                      f"| {fmt([r['macro_f1'] for r in rs])} |")
            gan = [r["gan_balanced_accuracy"] for r in sel if r["method"] == "ganaug"]
            print(f"| {name}-LT | {rho:g} | (the CLS-GAN's own classifier, for reference) | "
                  f"{fmt(gan)} | |")
    for s in skipped:
        print(f"skipped {s}")


if __name__ == "__main__":
    main()
