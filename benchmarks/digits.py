"""The default job (`ganaug train`: semi-supervised CLS-GAN, digits, 10 labels per class)
over several seeds, next to baselines on the same labels and split:

- logistic regression on the 100 labeled images alone (scikit-learn);
- LabelSpreading on labeled + unlabeled images (scikit-learn), rbf and knn kernels;
- the same loss network trained on the labels alone (`--objective supervised`).

    python benchmarks/digits.py [--seeds 0,1,2] [--out benchmarks/results]

Each ganaug run is `python -m ganaug train --seed S` in a fresh process, one at a time,
so its wall time is what a user sees. Prints a markdown table; writes JSON and CSV.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from _common import OUT_HELP, extra_train_flags, fmt, machine, parse_list, run_train, write_outputs


def sklearn_baselines(labels_per_class: int, data_seed: int) -> list[dict]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import LabelSpreading

    from ganaug.data import load_dataset, split_labeled

    tr, te = load_dataset("digits")
    lab, unl = split_labeled(tr, labels_per_class, data_seed)
    xl, yl = lab.images.flatten(1).numpy(), lab.targets.numpy()
    xu = unl.images.flatten(1).numpy()
    xt, yt = te.images.flatten(1).numpy(), te.targets.numpy()
    rows = []
    lr = LogisticRegression(max_iter=5000).fit(xl, yl)
    rows.append({"method": "logistic regression, labels only", "test_accuracy": float((lr.predict(xt) == yt).mean())})
    x_all = np.concatenate([xl, xu])
    y_all = np.concatenate([yl, -np.ones(len(xu), dtype=yl.dtype)])
    for kernel, kw in (("rbf", {"gamma": 0.25}), ("knn", {"n_neighbors": 7})):
        ls = LabelSpreading(kernel=kernel, max_iter=1000, **kw).fit(x_all, y_all)
        rows.append({"method": f"LabelSpreading ({kernel}, {kw}), labels + unlabeled",
                     "test_accuracy": float((ls.predict(xt) == yt).mean())})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help=OUT_HELP)
    p.add_argument("--extra", default="",
                   help="extra `ganaug train` flags, space-separated; write them with '=' "
                        "(--extra='--epochs 1'), as argparse takes a value starting with -- "
                        "for a flag")
    args = p.parse_args()
    seeds = parse_list(p, args.seeds, "--seeds")
    extra = args.extra.split()
    split = "the baselines beside the ganaug rows use digits, 10 labels per class, data seed 0"
    extra_train_flags(p, extra, {
        **dict.fromkeys(("dataset", "data_root", "labels_per_class", "data_seed", "recipe"), split),
        **dict.fromkeys(("objective", "seed", "seeds", "out", "resume"), "set per row here")})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for objective in ("sscls", "supervised"):
            for s in seeds:
                r = run_train(["--objective", objective, "--seed", str(s), *extra],
                              Path(tmp) / f"{objective}-{s}")
                rows.append({"method": objective, **{k: r[k] for k in (
                    "test_accuracy", "balanced_accuracy", "macro_f1", "train_seconds",
                    "wall_seconds", "epochs", "seed")}})
                print(f"{objective} seed {s}: test_accuracy {r['test_accuracy']:.4f}, "
                      f"train {r['train_seconds']:.1f}s, wall {r['wall_seconds']:.1f}s", flush=True)
    base = sklearn_baselines(10, 0)
    rows += base
    write_outputs(rows, Path(args.out), "digits", {"machine": machine(), "seeds": seeds, "extra": extra})
    print("\n| method | test accuracy (mean ± std over seeds) | train s | wall s |")
    print("|---|---|---|---|")
    for objective, label in (("sscls", "ganaug train (semi-supervised CLS-GAN)"),
                             ("supervised", "same loss network, labels only")):
        rs = [r for r in rows if r["method"] == objective]
        print(f"| {label} | {fmt([r['test_accuracy'] for r in rs])} | "
              f"{max(r['train_seconds'] for r in rs):.0f} (max) | {max(r['wall_seconds'] for r in rs):.0f} (max) |")
    for r in base:
        print(f"| {r['method']} | {r['test_accuracy']:.4f} | | |")


if __name__ == "__main__":
    main()
