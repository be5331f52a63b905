"""Time per epoch of the recipes, on data of the real shape and size written in each data
set's exact on-disk format (random pixels: the data itself is not on our machines).

    python benchmarks/epoch_time.py [--recipes svhn-1000,cifar10-4000] [--epochs E | --steps N]
                                    [--device auto] [--keep-data DIR] [--out DIR]

For each recipe (recipes/NAME.yaml) it writes full-size files with the layout the loaders
read (SVHN: train_32x32.mat, test_32x32.mat, 73257 / 26032 images; CIFAR-10:
cifar-10-batches-py/, 5 x 10000 / 10000; MNIST: MNIST/raw/, 60000 / 10000), loads them
through ganaug's own loader and split, and times training with the recipe's settings:

- ``--epochs E`` (the default on CUDA, E = 2): ``ganaug.fit`` trains E whole epochs exactly
  as ``ganaug train --recipe`` does; the row gives the last epoch's training seconds as the
  run records them (``metrics.jsonl``: the steps and the BatchNorm pass of
  ``recalibrate_bn``, without the epoch's test evaluation, sample grid and checkpoint;
  the first epoch includes torch.compile's warm-up on CUDA; ``--warmup`` is refused: the
  epochs before the last are the warm-up). Its s/step is that epoch's seconds / its steps,
  so it includes the BatchNorm pass, unlike ``--steps`` mode's.
- ``--steps N`` (the default on the CPU, N = 10; a conv step takes seconds there): after
  ``--warmup`` untimed steps, N training steps as ``train`` runs them (the recipe's
  TrainStep and batch draws on the loaded data); the row's epoch time is the median
  seconds per step x steps per epoch, plus the BatchNorm pass that ends each epoch of a
  conv recipe (``recalibrate_bn``; 10 of its batches timed, scaled to the training set),
  marked "estimate", and one test evaluation is timed apart (the training loop runs one
  after every epoch). Where ``penalty_every`` or ``d_steps`` makes steps differ (with or
  without the gradient penalty or the generator's update), each kind's median is weighted
  by how often it comes, and N must cover one cycle of lcm(penalty_every, d_steps) steps.

images/s counts the real images of a step: the labeled batch and, where there are unlabeled
images, ``unlabeled_ratio`` times as many unlabeled ones.

Pixel values do not change the work of a step, so the times hold for the real data; no
accuracy is reported (the pixels are noise). Prints a markdown table; writes
epoch_time.json / epoch_time.csv under --out.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import OUT_HELP, ROOT, machine, print_table, write_outputs

sys.path.insert(0, str(ROOT / "tests"))          # the exact-format writers the tests use
from _formats import write_cifar10, write_mnist, write_svhn  # noqa: E402

from ganaug import recipe_config  # noqa: E402
from ganaug.experiment import build_model, fit, load_data  # noqa: E402
from ganaug.step import TrainStep, _Draws, _Shard, step_kind  # noqa: E402
from ganaug.nets import recalibrate_batchnorm  # noqa: E402
from ganaug.train import evaluate_accuracy, pick_device  # noqa: E402

RECIPES = ROOT / "recipes"
SIZES = {"svhn": (73257, 26032), "cifar10": (50000, 10000), "mnist": (60000, 10000)}
BN_BATCHES = 10          # batches of the BatchNorm pass timed in --steps mode


def write_full_size(dataset: str, root: Path) -> None:
    """``root`` as a torchvision root holding ``dataset`` at its real size (random pixels,
    every class present)."""
    n_train, n_test = SIZES[dataset]
    if dataset == "svhn":
        write_svhn(root, n_train, n_test)
    elif dataset == "cifar10":
        write_cifar10(root, n_train // 5, n_test)
    elif dataset == "mnist":
        rng = np.random.default_rng(0)
        pix = lambda n: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)  # noqa: E731
        lab = lambda n: (np.arange(n) % 10).astype(np.uint8)                 # noqa: E731
        write_mnist(root, pix(n_train), lab(n_train), pix(n_test), lab(n_test))
    else:
        raise ValueError(f"no full-size writer for dataset {dataset!r}")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cycle_length(cfg) -> int:
    """Steps after which the kinds of step repeat: lcm(penalty_every, d_steps)."""
    return math.lcm(cfg.penalty_every, cfg.d_steps)


def seconds_per_step(times: dict, cfg, adversarial: bool) -> float:
    """The mean seconds of a step over an epoch from ``times`` ({kind: [seconds]}): the
    median of each kind of step, weighted by how often it comes in a cycle (a step with the
    penalty costs more than one without it, so a median over all steps would underestimate
    an epoch whenever ``penalty_every`` or ``d_steps`` is above 1)."""
    cycle = [step_kind(s, cfg, adversarial) for s in range(1, cycle_length(cfg) + 1)]
    missing = sorted(set(cycle) - set(times))
    if missing:
        raise ValueError(f"no step of kind(s) {missing} (penalty, generator update) was timed; "
                         f"time at least {len(cycle)} steps")
    return statistics.fmean(statistics.median(times[k]) for k in cycle)


def time_steps(cfg, warmup: int, steps: int) -> dict:
    """Seconds per training step (seconds_per_step over ``steps`` timed steps) and of one
    test evaluation."""
    labeled, unlabeled, test, _ = load_data(cfg)
    model = build_model(cfg, labeled)
    device = pick_device(cfg.device)
    step = TrainStep(model, cfg, device, log=lambda s: print(f"  {s}", flush=True))
    fmt = torch.channels_last if step.speed.channels_last else torch.contiguous_format
    x_lab = labeled.images.to(device).contiguous(memory_format=fmt)
    x_unl = (unlabeled.images.to(device).contiguous(memory_format=fmt)
             if unlabeled is not None and len(unlabeled) else None)
    draws = _Draws(cfg, x_lab, labeled.targets.to(device), labeled.targets, x_unl,
                   torch.Generator().manual_seed(0), _Shard(), model.noise_dim,
                   step.adversarial, device)
    times: dict[tuple[bool, bool], list[float]] = {}
    for i in range(warmup + steps):
        penalize, generator_step = step_kind(i + 1, cfg, step.adversarial)
        sync(device)
        t = time.perf_counter()
        b, nz = draws.next(generator_step)
        step(b, nz, cfg.gamma, cfg.ema_decay, penalize)
        sync(device)
        if i >= warmup:
            times.setdefault((penalize, generator_step), []).append(time.perf_counter() - t)
    t = time.perf_counter()
    evaluate_accuracy(model, test)
    sync(device)
    n_train = len(labeled) + (len(unlabeled) if unlabeled is not None else 0)
    eval_s = time.perf_counter() - t
    # the BatchNorm pass that ends each epoch (recalibrate_bn), timed on the first
    # BN_BATCHES of its batches and scaled to the whole training set; None: no pass
    bn_s = None
    if cfg.recalibrate_bn:
        some = (x_unl if x_unl is not None else x_lab)[:BN_BATCHES * 2 * cfg.batch_size]
        t = time.perf_counter()
        if recalibrate_batchnorm(model.loss_net_ema, [some], 2 * cfg.batch_size):
            sync(device)
            bn_s = (time.perf_counter() - t) * n_train / len(some)
    return {"step_s": seconds_per_step(times, cfg, step.adversarial), "eval_s": eval_s,
            "bn_s": bn_s, "steps_per_epoch": math.ceil(n_train / cfg.batch_size),
            "n_train": n_train, "n_test": len(test), "settings": step.speed.describe(),
            "images_per_step": images_per_step(cfg, x_unl is not None)}


def images_per_step(cfg, unlabeled: bool) -> int:
    """Real images in a training step: the labeled batch, and ``unlabeled_ratio`` times as
    many unlabeled images when there are any (the training loop's own count)."""
    from ganaug.train import _step_rows
    return _step_rows(cfg, unlabeled)


def time_epochs(cfg, out: Path) -> dict:
    """Seconds of the last of ``cfg.epochs`` whole epochs of ``ganaug.fit``."""
    summary = fit(cfg, out, progress=False, tensorboard=False,
                  log=lambda s: print(f"  {s}", flush=True))
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    secs = [r["seconds"] for r in recs]
    epoch_s = secs[-1] - (secs[-2] if len(secs) > 1 else 0.0)
    steps = recs[-1]["step"] // len(recs)
    n_train = summary["num_labeled"] + summary["num_unlabeled"]
    return {"epoch_s": epoch_s, "epoch_s_each": [round(b - a, 3) for a, b in
                                                 zip([0.0] + secs[:-1], secs)],
            "steps_per_epoch": steps, "n_train": n_train, "n_test": summary["num_test"],
            "step_s": epoch_s / steps,
            "images_per_step": images_per_step(cfg, summary["num_unlabeled"] > 0)}


def _bn_cell(r: dict) -> str:
    """The table's "BatchNorm pass s": timed (steps), part of the epoch (epochs), or none."""
    if "bn_s" not in r:
        return "in the epoch"
    return f"{r['bn_s']:.1f}" if r["bn_s"] is not None else "none"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", default="svhn-1000,cifar10-4000",
                   help="comma-separated recipe names under recipes/ (default: the two whose "
                        "data we lack)")
    p.add_argument("--epochs", type=int, default=None,
                   help="time whole epochs with ganaug.fit (default on CUDA: 2)")
    p.add_argument("--steps", type=int, default=None,
                   help="time this many steps and estimate the epoch (default on the CPU: 10)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps before --steps (default 2 on the CPU, 30 on CUDA)")
    p.add_argument("--device", default="auto")
    p.add_argument("--keep-data", default=None,
                   help="write (or reuse) the full-size files under this folder instead of a "
                        "temporary one")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help=OUT_HELP)
    args = p.parse_args()
    # stopped by `timeout` or a scheduler: exit through the with-blocks, so the full-size
    # files in the temporary folder (hundreds of MB) are removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    for n in names:                               # every problem before any long work
        if not (RECIPES / f"{n}.yaml").is_file():
            p.error(f"no recipe {n!r}: choose from "
                    f"{', '.join(sorted(f.stem for f in RECIPES.glob('*.yaml')))}")
    if args.epochs is not None and args.steps is not None:
        p.error("give --epochs or --steps, not both")
    for flag in ("epochs", "steps", "warmup"):
        v = getattr(args, flag)
        if v is not None and v < (0 if flag == "warmup" else 1):
            p.error(f"--{flag} must be {'non-negative' if flag == 'warmup' else 'positive'}")
    from ganaug.distributed import configure_threads
    threads = configure_threads()
    device = pick_device(args.device)
    mode = ("epochs" if args.epochs is not None else "steps" if args.steps is not None
            else "epochs" if device.type == "cuda" else "steps")
    if mode == "epochs" and args.warmup is not None:
        p.error("--warmup sets the untimed steps before --steps; --epochs times the last of "
                "whole epochs (the ones before it are the warm-up): drop --warmup, or give "
                "--steps N")
    warmup = args.warmup if args.warmup is not None else (30 if device.type == "cuda" else 2)
    n_steps = args.steps or 10
    print(f"device {device}, {threads} CPU threads, torch {torch.__version__}; mode {mode}",
          flush=True)

    if mode == "steps":                           # every kind of step timed, checked up front
        for n in names:
            c = recipe_config(RECIPES / f"{n}.yaml").resolved()
            if n_steps < cycle_length(c):
                p.error(f"--steps {n_steps} does not cover recipe {n}'s cycle of "
                        f"{cycle_length(c)} steps (penalty_every {c.penalty_every}, d_steps "
                        f"{c.d_steps}); give --steps {cycle_length(c)} or more")

    rows = []
    with tempfile.TemporaryDirectory(prefix="ganaug-epoch-time-") as tmp:
        data_dir = Path(args.keep_data) if args.keep_data else Path(tmp) / "data"
        for name in names:
            root = data_dir / name
            cfg = recipe_config(RECIPES / f"{name}.yaml", device=str(device),
                                data_root=str(root), epochs=args.epochs or 2).resolved()
            if not (root / ".complete").exists():
                print(f"{name}: writing full-size {cfg.dataset} files under {root}", flush=True)
                root.mkdir(parents=True, exist_ok=True)
                write_full_size(cfg.dataset, root)
                (root / ".complete").write_text("")
            print(f"{name}: timing ({mode})", flush=True)
            if mode == "steps":
                r = time_steps(cfg, warmup, n_steps)
                r["epoch_s"] = r["step_s"] * r["steps_per_epoch"] + (r["bn_s"] or 0.0)
                how = f"estimate: median of {n_steps} steps x steps/epoch" + (
                    f" + BatchNorm pass ({BN_BATCHES} batches scaled)" if r["bn_s"] else "")
            else:
                r = time_epochs(cfg, Path(tmp) / "runs" / name)
                r["settings"] = "ganaug.fit"
                how = f"measured: epoch {cfg.epochs} of {cfg.epochs} (metrics.jsonl)"
            rows.append({"recipe": name, "dataset": cfg.dataset, "arch": cfg.arch,
                         "batch": cfg.batch_size, "device": str(device), "mode": mode,
                         "how": how, **r,
                         "images_per_s": r["images_per_step"] / r["step_s"]})
            print(f"  {name}: {r['epoch_s']:.1f} s of training per epoch ({r['step_s'] * 1e3:.1f} ms per "
                  f"step, {r['steps_per_epoch']} steps)", flush=True)

    meta = {"machine": machine(), "device": str(device), "threads": threads,
            "torch": torch.__version__, "mode": mode,
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS",)}, "args": vars(args)}
    write_outputs(rows, Path(args.out), "epoch_time", meta)
    print_table(f"\nTime per epoch on full-size data of each recipe's shape ({device})",
                ["recipe", "data (train / test)", "batch", "steps/epoch",
                 "s/step (--epochs: the epoch's s / steps, BatchNorm pass in)",
                 "training s/epoch", "images/s", "BatchNorm pass s", "test evaluation s",
                 "how"],
                [[r["recipe"], f"{r['dataset']} {r['n_train']} / {r['n_test']}",
                  f"{r['batch']}+{r['images_per_step'] - r['batch']}", str(r["steps_per_epoch"]),
                  f"{r['step_s']:.3f}", f"{r['epoch_s']:.1f}", f"{r['images_per_s']:.0f}",
                  _bn_cell(r), f"{r['eval_s']:.1f}" if "eval_s" in r else "not timed", r["how"]]
                 for r in rows])


if __name__ == "__main__":
    main()
