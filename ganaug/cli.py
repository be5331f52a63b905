"""Command line: parses arguments and calls the Python API, nothing more.

    ganaug train [options]                      train; prints the final test accuracy
    ganaug sample --run DIR --per-class N --out FILE.png|FILE.pt
    ganaug eval --run DIR                       accuracy, per-class, balanced, macro-F1
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ._io import CheckpointError, safe_torch_load
from .config import LIPSCHITZ, TrainConfig
from .data import DataNotFoundError
from .objectives import list_objectives

# flag -> TrainConfig field, for the options `train` accepts (all default to "not given")
_TRAIN_FLAGS = {
    "dataset": str, "data_root": str, "image_size": int, "labels_per_class": None,
    "data_seed": int, "arch": str, "objective": str, "lipschitz": str, "lam": float,
    "gamma": float, "gamma_rampup": int, "margin_scale": float, "nu": float, "g_loss": str,
    "d_steps": int, "mode_seeking": float, "weight_decay": float, "gp_weight": float, "clip": float,
    "div_k": float, "div_p": float, "epochs": int, "batch_size": int, "lr": float,
    "ema_decay": float, "seed": int, "device": str,
}
_SWITCHES = ("download", "balanced_labels")   # store_true flags -> TrainConfig fields
_HELP = {
    "dataset": "digits (default, ships with scikit-learn), mnist, svhn, cifar10 or folder:PATH",
    "data_root": "torchvision dataset root holding the data (default ./data)",
    "labels_per_class": "labels kept per class (class-balanced), or 'all' (default 10)",
    "objective": f"one of {', '.join(list_objectives())} (default sscls)",
    "lipschitz": f"auto (the objective's own) or one of {', '.join(LIPSCHITZ)}",
    "device": "auto (CUDA when present, else CPU), cpu, cuda or cuda:N",
    "mode_seeking": "weight of the mode-seeking (MSGAN) diversity term in the generator's loss (default 0: off)",
    "g_loss": "generator objective: auto (feature matching for sscls, else the objective's own), loss or feature-matching",
}


def _labels_per_class(s: str):
    if s == "all":
        return None
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {s!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganaug", description="Class-conditional and "
                                "semi-supervised CLS-GANs for data augmentation.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a (semi-supervised) CLS-GAN",
                       argument_default=argparse.SUPPRESS)
    defaults = TrainConfig()
    for name, typ in _TRAIN_FLAGS.items():
        flag = "--" + name.replace("_", "-")
        typ = _labels_per_class if name == "labels_per_class" else typ
        t.add_argument(flag, dest=name, type=typ, metavar=name.upper(),
                       help=_HELP.get(name, f"default {getattr(defaults, name)!r}"))
    t.add_argument("--download", dest="download", action="store_true",
                   help="let torchvision download missing data (needs internet)")
    t.add_argument("--balanced-labels", dest="balanced_labels", action="store_true",
                   help="draw labeled batches class-balanced (for imbalanced data)")
    t.add_argument("--out", default=None, help="run folder (default runs/<time>-<dataset>-<objective>)")
    t.add_argument("--resume", action="store_true", default=False,
                   help="continue the run in --out from its last checkpoint")
    t.add_argument("--quiet", action="store_true", default=False, help="no progress bar")

    s = sub.add_parser("sample", help="write class-conditional samples of a trained run")
    s.add_argument("--run", required=True, help="run folder (or checkpoint file)")
    s.add_argument("--per-class", type=int, default=10)
    s.add_argument("--out", required=True, help="FILE.png (grid, a row per class) or FILE.pt")
    s.add_argument("--seed", type=int, default=0)

    e = sub.add_parser("eval", help="evaluate a run's classifier on its test split")
    e.add_argument("--run", required=True, help="run folder")
    e.add_argument("--data-root", default=None, help="override the run's data root")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    return p


def _train(args: argparse.Namespace) -> int:
    from .experiment import fit

    given = {k: v for k, v in vars(args).items() if k in _TRAIN_FLAGS or k in _SWITCHES}
    if args.resume:
        if args.out is None:
            raise ValueError("--resume needs --out pointing at the run to resume")
        from pathlib import Path
        from .train import CHECKPOINT
        path = Path(args.out) / CHECKPOINT
        if not path.exists():
            raise ValueError(f"nothing to resume in {args.out}: it has no {CHECKPOINT}; drop "
                             f"--resume to start a new run there")
        saved = TrainConfig.from_dict(safe_torch_load(path)["config"])
        clash = [k for k, v in given.items()
                 if k not in TrainConfig.RESUMABLE and getattr(saved, k) != v]
        if clash:
            detail = ", ".join(f"--{k.replace('_', '-')} {getattr(saved, k)!r} -> {given[k]!r}"
                               for k in clash)
            raise ValueError(f"cannot resume {args.out}: the configuration differs ({detail}); "
                             f"drop those flags or start a new run with another --out")
        cfg = dataclasses.replace(saved, **given)
    else:
        cfg = TrainConfig(**given)
    summary = fit(cfg, out=args.out, resume=args.resume, progress=not args.quiet)
    print(f"test accuracy {summary['test_accuracy']:.4f} ({summary['dataset']}, "
          f"{summary['num_labeled']} labels, {summary['objective']}, "
          f"{summary['train_seconds']:.1f}s) -> {summary['run']}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from .experiment import sample_run

    path = sample_run(args.run, args.per_class, args.out, args.seed)
    print(f"wrote {path}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .experiment import evaluate_run

    m = evaluate_run(args.run, args.data_root)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    print(f"run {args.run} (epoch {m['epoch']}, {m['dataset']} test split, {m['num_test']} images)")
    print(f"test accuracy      {m['accuracy']:.4f}")
    print(f"balanced accuracy  {m['balanced_accuracy']:.4f}")
    print(f"macro-F1           {m['macro_f1']:.4f}")
    print("per-class accuracy")
    for name, acc in zip(m["classes"], m["per_class_accuracy"]):
        print(f"  {name:>12}  {'n/a' if acc is None else f'{acc:.4f}'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"train": _train, "sample": _sample, "eval": _eval}[args.command](args)
    except (ValueError, DataNotFoundError, CheckpointError, FileNotFoundError) as e:
        print(f"ganaug: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganaug: interrupted; the last complete epoch's checkpoint is kept "
              "(continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
