"""Does re-estimating the sampler's BatchNorm statistics on its own samples (``ganaug train
--standing-stats N``, BigGAN's standing statistics) give better samples? Side by side on the
same trained generators: the default job (``ganaug train --seed S``, digits, 10 labels per
class) for several seeds, then its averaged generator as trained and with the statistics
that ``--standing-stats N`` would have written after the last epoch, for each N.

    python benchmarks/standing_stats.py [--samples 0,2048,20480] [--seeds 0,1,2] [--jobs 2]
                                        [--extra "--epochs 30"] [--out benchmarks/results]
    python benchmarks/standing_stats.py --table RESULTS.json [MORE.json ...]

The option changes nothing in training (only the averaged generator's BatchNorm buffers,
tests/test_standing_stats.py), so one training per seed serves every N: each N applies
``CLSGAN.standing_statistics`` to the run's checkpoint with the arguments training uses
(2 x batch size, the last epoch's seed). For each: `ganaug eval`'s sample metrics (TSTR
accuracy, intra-class and domain FID, domain KID, precision, recall), and the few-labels
benchmark's classifier (benchmarks/augment.py: the small MLP on the 100 labeled images with
``SyntheticMix(fraction=0.5)``), next to the same classifier on the labels alone, and the
seconds of one pass (which ``--standing-stats N`` spends after every epoch). ``--jobs``
runs that many seeds side by side, one thread each. Prints a markdown table (mean ± std
over seeds) and one of each N against the statistics as trained, seed by seed; writes
standing_stats.json and .csv. ``--table`` prints the tables of saved results files, e.g. of
runs over different seeds together (a seed's rows do not depend on the other seeds).
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import (add_run_flags, extra_train_flags, fmt, ganaug_env, machine, parse_list,
                     print_table, run_train, write_outputs)

METRICS = ("tstr_accuracy", "intra_class_fid", "domain_fid", "domain_kid", "precision", "recall")
FRACTION = 0.5              # SyntheticMix's share, as the best row of docs/mixing.md's table
CLF_EPOCHS = 200            # benchmarks/augment.py's classifier budget


def measure_run(run: Path, samples: list[int]) -> list[dict]:
    """Every N of ``samples`` on one run folder (in this process, single-threaded)."""
    from torch.utils.data import TensorDataset

    from _classifier import evaluate, train_classifier
    from ganaug import CLSGAN, SyntheticMix, TrainConfig, load_dataset
    from ganaug._io import safe_torch_load
    from ganaug.data import split_labeled
    from ganaug.evaluation import evaluate_quality
    from ganaug.train import standing_stats_pass

    ckpt = safe_torch_load(run / "checkpoint.pt")
    cfg = TrainConfig.from_dict(ckpt["config"])
    if cfg.standing_stats:
        raise SystemExit(f"{run} was trained with standing_stats={cfg.standing_stats}; this "
                         f"benchmark needs the statistics as trained (drop --standing-stats "
                         f"from --extra)")
    train_set, test = load_dataset(cfg.dataset, cfg.data_root, False, cfg.image_size)
    lab, _ = split_labeled(train_set, cfg.labels_per_class, cfg.data_seed)
    real = TensorDataset(lab.images, lab.targets)
    C, d = lab.num_classes, math.prod(lab.image_shape)
    kw = dict(num_classes=C, in_features=d, seed=cfg.seed, batch_size=64,
              steps=CLF_EPOCHS * math.ceil(len(lab) / 64))
    labeled_only = evaluate(train_classifier(real, **kw), test.images, test.targets, C)["accuracy"]
    rows = []
    for n in samples:
        model = CLSGAN.from_checkpoint(ckpt)
        t = time.perf_counter()
        if n:
            standing_stats_pass(model, n, cfg, int(ckpt["epoch"]) - 1)
        pass_s = time.perf_counter() - t
        q = evaluate_quality(model, train_set, test, device="cpu", cache_dir=run / "cache")
        mix = SyntheticMix(real, model, fraction=FRACTION, seed=cfg.seed, refresh_every=1)
        clf = train_classifier(mix, on_epoch=mix.set_epoch, **kw)
        rows.append({"seed": cfg.seed, "standing_stats": n, "pass_seconds": round(pass_s, 4),
                     "epochs": int(ckpt["epoch"]),
                     "test_accuracy": float((model.predict(test.images).cpu()
                                             == test.targets).float().mean()),
                     **{m: q[m]["value"] for m in METRICS},
                     **{f"{m}_real_reference": q[m]["real_reference"] for m in METRICS},
                     "mix_accuracy": evaluate(clf, test.images, test.targets, C)["accuracy"],
                     "labeled_only_accuracy": labeled_only})
    return rows


def one_seed(seed: int, samples: list[int], extra: list[str], tmp: Path,
             threads: int | None) -> list[dict]:
    out = tmp / f"seed-{seed}"
    r = run_train(["--seed", str(seed), *extra], out, threads)
    e = subprocess.run([sys.executable, __file__, "--evaluate", str(out), "--samples",
                        ",".join(map(str, samples))],
                       capture_output=True, text=True, env=ganaug_env(threads))
    if e.returncode != 0:
        raise RuntimeError(f"evaluating {out} failed:\n{e.stderr[-2000:]}")
    rows = [{**row, "train_seconds": r["train_seconds"]}
            for row in json.loads(e.stdout.strip().splitlines()[-1])]
    for row in rows:
        print(f"seed {seed} N={row['standing_stats']}: TSTR {row['tstr_accuracy']:.4f}, "
              f"domain FID {row['domain_fid']:.2f}, mix accuracy {row['mix_accuracy']:.4f}",
              flush=True)
    return rows


def summary(rows: list[dict]) -> None:
    """Print the tables of ``rows`` (one run's, or several runs' results files together):
    mean ± std over seeds per N, and each N against the statistics as trained, seed by
    seed."""
    samples = sorted({r["standing_stats"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    first = [r for r in rows if r["standing_stats"] == samples[0]]     # one row per seed
    ref = rows[0]
    lines = [["real training images (reference)",
              *(f"{ref[f'{m}_real_reference']:.4f}" for m in METRICS), "", ""],
             ["the 100 labeled images alone", *[""] * len(METRICS),
              fmt([r["labeled_only_accuracy"] for r in first]), ""]]
    for n in samples:
        rs = [r for r in rows if r["standing_stats"] == n]
        lines.append([f"--standing-stats {n}" if n else "as trained",
                      *(fmt([r[m] for r in rs]) for m in METRICS),
                      fmt([r["mix_accuracy"] for r in rs]),
                      f"{max(r['pass_seconds'] for r in rs):.3f}" if n else ""])
    print_table(f"\ndigits, 10 labels per class, seeds {', '.join(map(str, seeds))} (mean ± "
                f"std); the GAN's own test accuracy {fmt([r['test_accuracy'] for r in first])}",
                ["sampler", "TSTR accuracy", "intra-class FID", "domain FID", "domain KID",
                 "precision", "recall", f"classifier + SyntheticMix {FRACTION:g}",
                 "pass s (most)"], lines)
    base = {r["seed"]: r for r in rows if r["standing_stats"] == 0}
    if not base:
        return
    lines = []
    for n in samples[1:]:
        pairs = [(r, base[r["seed"]]) for r in rows if r["standing_stats"] == n
                 and r["seed"] in base]
        lower = lambda m: sum(r[m] < b[m] for r, b in pairs)   # noqa: E731
        lines.append([f"--standing-stats {n}", str(len(pairs)),
                      *(str(lower(m)) for m in ("domain_fid", "intra_class_fid")),
                      str(sum(r["recall"] > b["recall"] for r, b in pairs)),
                      str(lower("mix_accuracy")),
                      fmt([r["mix_accuracy"] - b["mix_accuracy"] for r, b in pairs])])
    print_table("\nagainst the statistics as trained, seed by seed",
                ["sampler", "seeds", "domain FID lower", "intra-class FID lower",
                 "recall higher", "classifier + mix lower", "classifier + mix change"], lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", default="0,2048,20480",
                   help="values of --standing-stats to compare; 0: as trained")
    p.add_argument("--seeds", default="0,1,2")
    add_run_flags(p, "seeds")
    args = p.parse_args()
    if args.table:
        summary([row for f in args.table for row in json.loads(Path(f).read_text())["rows"]])
        return
    samples = parse_list(p, args.samples, "--samples")
    seeds = parse_list(p, args.seeds, "--seeds")
    if any(n < 0 or n == 1 for n in samples):
        p.error(f"--samples: each is 0 (as trained) or at least 2, got {args.samples}")
    if args.evaluate is not None:
        print(json.dumps(measure_run(Path(args.evaluate), samples)))
        return
    extra = args.extra.split()
    extra_train_flags(p, extra, {**dict.fromkeys(("seed", "seeds", "out", "resume",
                                                  "standing_stats"), "set per row here"),
                                 "recipe": "it could set standing_stats, set per row here"})
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    threads = 1 if args.jobs > 1 else None
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(one_seed, s, samples, extra, Path(tmp), threads) for s in seeds]
        rows = [row for f in futures for row in f.result()]
    write_outputs(rows, Path(args.out), "standing_stats",
                  {"machine": machine(), "samples": samples, "seeds": seeds, "extra": extra,
                   "jobs": args.jobs, "mix_fraction": FRACTION, "clf_epochs": CLF_EPOCHS})
    summary(rows)

if __name__ == "__main__":
    main()
