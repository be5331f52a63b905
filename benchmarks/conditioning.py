"""Do the generator's samples follow their labels? The default job (`ganaug train`: semi-
supervised CLS-GAN, digits, 10 labels per class) with the conditional generator term
``--g-cond-weight W`` (feature matching + W x mean L(G(z, y), y)) at several weights, each
over several seeds: the run's own test accuracy next to `ganaug eval`'s sample metrics
(TSTR accuracy, intra-class FID, domain FID, precision, recall).

    python benchmarks/conditioning.py [--weights 0,1,3,10] [--seeds 0,1,2] [--jobs 2]
                                      [--extra "--epochs 30"] [--out benchmarks/results]

Each run is `python -m ganaug train --seed S --g-cond-weight W` then `python -m ganaug eval`
in fresh processes; ``--jobs`` runs that many side by side with one thread each (so the
wall times here are not a user's: this benchmark measures accuracy and sample quality).
Prints a markdown table (mean ± std over seeds); writes conditioning.json and .csv.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import (extra_train_flags, fmt, ganaug_env, machine, print_table, run_train,
                     write_outputs)

METRICS = ("tstr_accuracy", "intra_class_fid", "domain_fid", "precision", "recall")


def one_run(weight: float, seed: int, extra: list[str], tmp: Path, threads: int | None) -> dict:
    out = tmp / f"w{weight:g}-s{seed}"
    r = run_train(["--seed", str(seed), "--g-cond-weight", str(weight), *extra], out, threads)
    e = subprocess.run([sys.executable, "-m", "ganaug", "eval", "--run", str(out), "--json"],
                       capture_output=True, text=True, env=ganaug_env(threads))
    if e.returncode != 0:
        raise RuntimeError(f"ganaug eval --run {out} failed:\n{e.stderr[-2000:]}")
    q = json.loads(e.stdout)["quality"]
    row = {"g_cond_weight": weight, "seed": seed, "test_accuracy": r["test_accuracy"],
           "epochs": r["epochs"], "train_seconds": r["train_seconds"],
           **{m: q[m]["value"] for m in METRICS},
           **{f"{m}_real_reference": q[m]["real_reference"] for m in METRICS}}
    print(f"W={weight:g} seed {seed}: accuracy {row['test_accuracy']:.4f}, TSTR "
          f"{row['tstr_accuracy']:.4f}, intra-FID {row['intra_class_fid']:.2f}", flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="0,1,3,10")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--jobs", type=int, default=1, help="runs side by side (one thread each if > 1)")
    p.add_argument("--extra", default="",
                   help="extra `ganaug train` flags, space-separated; write them with '=' "
                        "(--extra='--epochs 1'), as argparse takes a value starting with -- "
                        "for a flag")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    extra = args.extra.split()
    extra_train_flags(p, extra, dict.fromkeys(("seed", "seeds", "g_cond_weight", "out", "resume"),
                                              "set per row here"))
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")
    threads = 1 if args.jobs > 1 else None
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(one_run, w, s, extra, Path(tmp), threads)
                   for w in weights for s in seeds]
        rows = [f.result() for f in futures]
    write_outputs(rows, Path(args.out), "conditioning",
                  {"machine": machine(), "weights": weights, "seeds": seeds, "extra": extra,
                   "jobs": args.jobs})
    ref = rows[0]
    lines = [["real training images (reference)", "", f"{ref['tstr_accuracy_real_reference']:.4f}",
              *(f"{ref[f'{m}_real_reference']:.4f}" for m in METRICS[1:])]]
    for w in weights:
        rs = [r for r in rows if r["g_cond_weight"] == w]
        lines.append([f"W = {w:g}", fmt([r["test_accuracy"] for r in rs]),
                      *(fmt([r[m] for r in rs]) for m in METRICS)])
    print_table(f"\ndigits, 10 labels per class, seeds {args.seeds} (mean ± std)",
                ["generator loss: feature matching + W x L(G(z, y), y)", "test accuracy",
                 "TSTR accuracy", "intra-class FID", "domain FID", "precision", "recall"], lines)


if __name__ == "__main__":
    main()
