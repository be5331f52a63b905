"""The low-data case: a small classifier trained on the labeled set alone, against the same
classifier trained with ganaug samples mixed in (SyntheticMix at several fractions, and
BatchMixer with fresh samples every step), plus the BatchMixer overhead per step.

    python benchmarks/augment.py [--datasets digits,mnist] [--seeds 0,1,2]
                                 [--fractions 0.25,0.5,0.75] [--data-root ../shared/data]
                                 [--sampler-dir DIR] [--gate G]
    python benchmarks/augment.py --table RESULTS.json [MORE.json ...]

For every dataset and seed, the sampler is a semi-supervised CLS-GAN trained on the same
labeled/unlabeled split (digits: the default job, ``ganaug train --seed S``; MNIST: 100
labels, ``--gan-epochs-mnist`` epochs), so the classifier sees no label the GAN did not.
``--gan-options`` (JSON) sets other TrainConfig fields; one the script sets (the dataset, its
root, split and labels, the seed, device and epochs) is an error before any work.
With ``--gate G`` SyntheticMix keeps only samples its CLS-GAN classifies as their label with
confidence G (default: off); BatchMixer takes every sample as it comes.
``--sampler-dir DIR`` keeps each CLS-GAN as a run folder ``DIR/DATASET-seed-S`` (with its test
accuracy per epoch; ``ganaug eval --run`` measures its samples), and a later call with the
same DIR loads the finished ones instead of training them again (the same numbers: a
resumed run is the run), e.g. to try another ``--gate`` or ``--fractions`` on the same
samplers; one kept with other settings is an error before any work, more epochs train it on.
Every classifier trains for the same number of steps. Test accuracy, mean ± std over
seeds, and each method's gain over the labeled images alone seed by seed (paired: mean ±
std of the differences, and on how many seeds the method was higher). The overhead is the
median time of a classifier step with and without BatchMixer, measured side by side on this
machine (GPU when there is one). Writes JSON and CSV. ``--table`` prints the accuracy table
of saved results files together (e.g. seeds 0-2 and 3-5, run as two processes side by side);
a seed in two files is an error.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from _classifier import SmallMLP, evaluate, train_classifier
from _common import (DATA_ROOT, OUT_HELP, check_args, fmt, gan_options, gate_failed,
                     load_or_skip, machine, parse_list, stop_if_all_skipped,
                     write_outputs)

from ganaug import BatchMixer, SyntheticMix, TrainConfig, build_model, train
from ganaug.data import split_labeled

LABELS_ONLY = "labeled only"            # the baseline every other method is compared with
LABELS_PER_CLASS = 10                   # digits: 100 labels; MNIST: 100 labels
DATA_SEED = 0                           # the labeled split of every seed (--gan-options cannot
                                        # change it: the classifiers use the same split)


def step_overhead(mixer: BatchMixer, shape, C: int, device: str, fraction: float,
                  batch: int = 256, reps: int = 50) -> dict:
    """Median seconds of one classifier step on a batch already on ``device``, without and
    with the mixer (same final batch size in both, interleaved)."""
    d = int(torch.tensor(shape).prod())
    n_total = batch + mixer.count(batch)
    model = SmallMLP(d, C).to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x_full = torch.rand(n_total, *shape, device=device) * 2 - 1
    x_real = x_full[:batch]
    y_full = torch.randint(C, (n_total,), device=device)

    def step(x, y):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(fn):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t

    plain, mixed = [], []
    for i in range(reps + 5):
        a = timed(lambda: step(x_full, y_full))
        b = timed(lambda: step(*mixer(x_real, y_full[:batch])))
        if i >= 5:
            plain.append(a)
            mixed.append(b)
    p, m = statistics.median(plain), statistics.median(mixed)
    return {"batch": batch, "synthetic_per_step": mixer.count(batch), "plain_ms": p * 1e3,
            "mixed_ms": m * 1e3, "overhead_ratio": m / p}


def sampler_folder(root: str | None, name: str, seed: int) -> tuple[Path | None, bool]:
    """Where ``--sampler-dir`` keeps the CLS-GAN of one dataset and seed (None: not kept),
    and whether a run is there already (its checkpoint: then it resumes)."""
    from ganaug._io import CHECKPOINT

    out = Path(root) / f"{name}-seed-{seed}" if root else None
    return out, out is not None and (out / CHECKPOINT).exists()


def sampler_fields(name: str, lpc: int, seed: int, args, device: str) -> dict:
    """The TrainConfig fields this script sets for the CLS-GAN of one dataset and seed
    (``--gan-options`` cannot set them)."""
    epochs = args.gan_epochs if name == "digits" else args.gan_epochs_mnist
    return dict(dataset=name, data_root=args.data_root, labels_per_class=lpc, seed=seed,
                device=device, **({"epochs": epochs} if epochs is not None else {}))


def sampler_config(name: str, lpc: int, seed: int, args, device: str) -> TrainConfig:
    """The CLS-GAN's settings for one dataset and seed: the default job's, with
    ``--gan-epochs``/``--gan-epochs-mnist`` and ``--gan-options``."""
    return TrainConfig(**sampler_fields(name, lpc, seed, args, device), **args.gan_options)


def check_kept_samplers(p, names: list[str], seeds: list[int], args) -> None:
    """``p.error`` before any work when a sampler kept in ``--sampler-dir`` was trained with
    other settings than this call would train it with (it would be refused mid-run)."""
    from ganaug._io import CheckpointError
    from ganaug.runs import check_run_folder

    for name in names:
        for seed in seeds:
            out, kept = sampler_folder(args.sampler_dir, name, seed)
            if not kept:
                continue
            cfg = sampler_config(name, LABELS_PER_CLASS, seed, args, args.device).resolved()
            try:
                check_run_folder(out, cfg, resume=True)
            except (ValueError, CheckpointError) as e:
                p.error(f"--sampler-dir: {e}")


def one_seed(name, tr, te, lpc, seed, args, device) -> tuple[list[dict], BatchMixer]:
    lab, unl = split_labeled(tr, lpc, DATA_SEED)
    cfg = sampler_config(name, lpc, seed, args, device)
    gan = build_model(cfg.resolved(), lab)
    out, resume = sampler_folder(args.sampler_dir, name, seed)
    st = train(gan, lab, unl, cfg, test=te if out is not None else None, out=out, resume=resume,
               progress=False, log=lambda s: None)
    gan_s = st.train_seconds              # training time, as the run records it
    gan_acc = float((gan.predict(te.images).cpu() == te.targets).float().mean())
    C, d = lab.num_classes, int(torch.tensor(lab.image_shape).prod())
    steps = args.clf_epochs * math.ceil(len(lab) / args.batch_size)
    real = TensorDataset(lab.images, lab.targets)
    kw = dict(num_classes=C, in_features=d, steps=steps, seed=seed, batch_size=args.batch_size,
              device=device)
    rows = []

    def record(method, model, fraction=None):
        m = evaluate(model, te.images, te.targets, C, device)
        rows.append({"dataset": name, "labels_per_class": lpc, "seed": seed, "method": method,
                     "fraction": fraction, "test_accuracy": m["accuracy"],
                     "balanced_accuracy": m["balanced_accuracy"], "steps": steps,
                     "gan_test_accuracy": gan_acc, "gan_seconds": round(gan_s, 1)})
        print(f"{name} seed {seed} {method:28s} test accuracy {m['accuracy']:.4f}", flush=True)

    record(LABELS_ONLY, train_classifier(real, **kw))
    for f in args.fractions:
        try:
            mix = SyntheticMix(real, gan, fraction=f, seed=seed, refresh_every=1, gate=args.gate)
        except ValueError as e:              # the gate could not fill a class: go without
            if not gate_failed(e):
                raise
            print(f"{name} seed {seed} f={f:g}: {e}; using no gate", flush=True)
            mix = SyntheticMix(real, gan, fraction=f, seed=seed, refresh_every=1)
        record(f"SyntheticMix f={f:g}", train_classifier(mix, on_epoch=mix.set_epoch, **kw), f)
    mixer = BatchMixer(gan, args.mixer_fraction, seed=seed)
    record(f"BatchMixer f={args.mixer_fraction:g}", train_classifier(real, batch_mixer=mixer, **kw),
           args.mixer_fraction)
    return rows, mixer


def accuracy_table(rows: list[dict]) -> None:
    """Print test accuracy per dataset and method (mean ± std over seeds) and each method's
    paired gain over the labeled images alone."""
    seen: set[tuple] = set()
    for r in rows:
        key = (r["dataset"], r["method"], r["seed"])
        if key in seen:
            raise SystemExit(f"seed {r['seed']} of {r['dataset']} ({r['method']}) is in the "
                             f"results twice; pass each seed's results once")
        seen.add(key)
    print("\n| data | labels | method | test accuracy (mean ± std) | gain over labels alone "
          "(paired) | seeds higher |")
    print("|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["dataset"] for r in rows):
        sel = [r for r in rows if r["dataset"] == name]
        labels = 10 * sel[0]["labels_per_class"]
        base = {r["seed"]: r["test_accuracy"] for r in sel if r["method"] == LABELS_ONLY}
        for method in dict.fromkeys(r["method"] for r in sel):
            got = {r["seed"]: r["test_accuracy"] for r in sel if r["method"] == method}
            gain = " | "
            if method != LABELS_ONLY and set(got) <= set(base):
                diff = [got[s] - base[s] for s in sorted(got)]
                gain = f"{fmt(diff)} | {sum(d > 0 for d in diff)} of {len(diff)}"
            print(f"| {name} | {labels} | {method} | {fmt(list(got.values()))} | {gain} |")
        gan = [r["gan_test_accuracy"] for r in sel if r["method"] == LABELS_ONLY]
        print(f"| {name} | {labels} | (the CLS-GAN's own classifier) | {fmt(gan)} | | |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", nargs="+", metavar="RESULTS.json", default=None,
                   help="print the accuracy table of these saved results files and stop")
    p.add_argument("--datasets", default="digits,mnist")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--fractions", default="0.25,0.5,0.75")
    p.add_argument("--gan-options", default="{}",
                   help="JSON of extra TrainConfig fields for the CLS-GAN (default: the default job)")
    p.add_argument("--gate", type=float, default=0.0,
                   help="SyntheticMix quality gate on the CLS-GAN's own classifier (0: off); "
                        "the semi-supervised generators measured so far cannot fill a 0.9 gate")
    p.add_argument("--mixer-fraction", type=float, default=0.5)
    p.add_argument("--data-root", default=DATA_ROOT)
    p.add_argument("--gan-epochs", type=int, default=None,
                   help="CLS-GAN epochs on digits (default: the default job's)")
    p.add_argument("--gan-epochs-mnist", type=int, default=10)
    p.add_argument("--sampler-dir", default=None, metavar="DIR",
                   help="keep each CLS-GAN as a run folder DIR/DATASET-seed-S (`ganaug eval "
                        "--run` reads it); a later call with the same DIR and settings loads "
                        "a finished one instead of training it again, and finishes one that "
                        "was stopped (or trains it on to more --gan-epochs)")
    p.add_argument("--clf-epochs", type=int, default=200,
                   help="the classifiers' steps are this x ceil(labeled images / batch size); "
                        "a pass drops its last partial batch, so at 100 labels and batch 64 a "
                        "pass is 1 step and the default 200 gives 400 steps, 400 passes")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help=OUT_HELP)
    args = p.parse_args()
    if args.table:
        accuracy_table([row for f in args.table for row in json.loads(Path(f).read_text())["rows"]])
        return
    args.fractions = parse_list(p, args.fractions, "--fractions", float)
    args.gate = args.gate or None
    check_args(p, datasets=args.datasets, unit={"--fractions": (args.fractions, False),
                                               "--mixer-fraction": ([args.mixer_fraction], False)},
               gate=args.gate, positive={"--gan-epochs": args.gan_epochs,
                                         "--gan-epochs-mnist": args.gan_epochs_mnist,
                                         "--clf-epochs": args.clf_epochs,
                                         "--batch-size": args.batch_size})
    seeds = parse_list(p, args.seeds, "--seeds")
    names = args.datasets.split(",")
    args.gan_options = gan_options(p, args.gan_options, {
        **dict.fromkeys(("dataset", "data_root", "seed", "device"),
                        "--datasets, --data-root, --seeds and --device set it"),
        **dict.fromkeys(("labels_per_class", "data_seed"),
                        f"every sampler and classifier here uses {LABELS_PER_CLASS} labels per "
                        f"class of the split of data seed {DATA_SEED}"),
        "epochs": "--gan-epochs and --gan-epochs-mnist set it"},
        [sampler_fields(n, LABELS_PER_CLASS, seeds[0], args, args.device) for n in names])
    check_kept_samplers(p, names, seeds, args)
    rows, skipped, overhead = [], [], []
    for name in names:
        lpc = LABELS_PER_CLASS
        data = load_or_skip(name, args.data_root, skipped)
        if data is None:
            continue
        tr, te = data
        for seed in seeds:
            r, mixer = one_seed(name, tr, te, lpc, seed, args, args.device)
            rows += r
        overhead.append({"dataset": name, "device": args.device,
                         **step_overhead(mixer, tuple(tr.image_shape), tr.num_classes,
                                         args.device, args.mixer_fraction)})
    stop_if_all_skipped(rows, skipped)
    write_outputs(rows, Path(args.out), "augment", {"machine": machine(), "args": vars(args),
                                                    "skipped": skipped, "overhead": overhead})
    accuracy_table(rows)
    print("\n| data | device | batch | + synthetic | step ms | step + BatchMixer ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for o in overhead:
        print(f"| {o['dataset']} | {o['device']} | {o['batch']} | {o['synthetic_per_step']} | "
              f"{o['plain_ms']:.2f} | {o['mixed_ms']:.2f} | {o['overhead_ratio']:.2f} |")
    for s in skipped:
        print(f"skipped {s}")


if __name__ == "__main__":
    main()
