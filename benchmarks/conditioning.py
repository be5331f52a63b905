"""Do the generator's samples follow their labels? The default job (`ganaug train`: semi-
supervised CLS-GAN, digits, 10 labels per class) with the conditional generator term
``--g-cond-weight W`` (feature matching + W x mean L(G(z, y), y)) at several weights, each
over several seeds, or with ``--g-cond-share S`` (the term held at a share S of the
generator's loss) at several shares: the run's own test accuracy next to `ganaug eval`'s
sample metrics (TSTR accuracy, intra-class FID, domain FID, precision, recall).

    python benchmarks/conditioning.py [--weights 0,1,3,10] [--shares 0.5] [--seeds 0,1,2]
                                      [--jobs 2] [--extra "--epochs 30"]
                                      [--out benchmarks/results] [--name conditioning]

Each run is `python -m ganaug train --seed S --g-cond-weight W` (or `--g-cond-share S`)
then `python -m ganaug eval` in fresh processes; ``--jobs`` runs that many side by side with
one thread each (so the wall times here are not a user's: this benchmark measures accuracy
and sample quality).
Prints a markdown table (mean ± std over seeds); writes NAME.json and .csv.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import (OUT_HELP, extra_train_flags, fmt, ganaug_env, machine, parse_list,
                     print_table, run_train, write_outputs)

METRICS = ("tstr_accuracy", "intra_class_fid", "domain_fid", "precision", "recall")


def one_run(weight: float, seed: int, extra: list[str], tmp: Path, threads: int | None,
            share: float = 0.0) -> dict:
    """One run at weight ``weight``, or at ``share`` of the generator's loss when given."""
    out = tmp / (f"share{share:g}-s{seed}" if share else f"w{weight:g}-s{seed}")
    term = ["--g-cond-share", str(share)] if share else ["--g-cond-weight", str(weight)]
    r = run_train(["--seed", str(seed), *term, *extra], out, threads)
    e = subprocess.run([sys.executable, "-m", "ganaug", "eval", "--run", str(out), "--json"],
                       capture_output=True, text=True, env=ganaug_env(threads))
    if e.returncode != 0:
        raise RuntimeError(f"ganaug eval --run {out} failed:\n{e.stderr[-2000:]}")
    q = json.loads(e.stdout)["quality"]
    row = {"g_cond_weight": 0.0 if share else weight, "g_cond_share": share, "seed": seed,
           "test_accuracy": r["test_accuracy"],
           "epochs": r["epochs"], "train_seconds": r["train_seconds"],
           **{m: q[m]["value"] for m in METRICS},
           **{f"{m}_real_reference": q[m]["real_reference"] for m in METRICS}}
    print(f"{_name(row)} seed {seed}: accuracy {row['test_accuracy']:.4f}, TSTR "
          f"{row['tstr_accuracy']:.4f}, intra-FID {row['intra_class_fid']:.2f}", flush=True)
    return row


def _name(row: dict) -> str:
    return f"share {row['g_cond_share']:g}" if row.get("g_cond_share") else \
        f"W = {row['g_cond_weight']:g}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="0,1,3,10", help="fixed weights W ('' for none)")
    p.add_argument("--shares", default="", help="shares S of the generator's loss, each in "
                                                 "(0, 1) (default: none)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--jobs", type=int, default=1, help="runs side by side (one thread each if > 1)")
    p.add_argument("--extra", default="",
                   help="extra `ganaug train` flags, space-separated; write them with '=' "
                        "(--extra='--epochs 1'), as argparse takes a value starting with -- "
                        "for a flag")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help=OUT_HELP)
    p.add_argument("--name", default="conditioning", help="the outputs' file name, no suffix")
    args = p.parse_args()
    # each weight and share trains into a folder of its own (w3-s0: 3 and 3.0 are one)
    weights = parse_list(p, args.weights, "--weights", float, empty_ok=True)
    shares = parse_list(p, args.shares, "--shares", float, empty_ok=True)
    if not all(0 < v < 1 for v in shares) or not weights + shares:
        p.error(f"--shares takes shares in (0, 1), and --weights and --shares at least one "
                f"value between them; got --weights {args.weights!r} --shares {args.shares!r}")
    seeds = parse_list(p, args.seeds, "--seeds")
    extra = args.extra.split()
    extra_train_flags(p, extra, dict.fromkeys(("seed", "seeds", "g_cond_weight", "g_cond_share",
                                               "out", "resume"), "set per row here"))
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")
    threads = 1 if args.jobs > 1 else None
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(one_run, w, s, extra, Path(tmp), threads)
                   for w in weights for s in seeds]
        futures += [pool.submit(one_run, 0.0, s, extra, Path(tmp), threads, share=v)
                    for v in shares for s in seeds]
        rows = [f.result() for f in futures]
    write_outputs(rows, Path(args.out), args.name,
                  {"machine": machine(), "weights": weights, "shares": shares, "seeds": seeds,
                   "extra": extra,
                   "jobs": args.jobs})
    ref = rows[0]
    lines = [["real training images (reference)", "", f"{ref['tstr_accuracy_real_reference']:.4f}",
              *(f"{ref[f'{m}_real_reference']:.4f}" for m in METRICS[1:])]]
    for name in dict.fromkeys(_name(r) for r in rows):      # weights, then shares
        rs = [r for r in rows if _name(r) == name]
        lines.append([name, fmt([r["test_accuracy"] for r in rs]),
                      *(fmt([r[m] for r in rs]) for m in METRICS)])
    print_table(f"\ndigits, 10 labels per class, seeds {args.seeds} (mean ± std)",
                ["generator loss: feature matching + W x L(G(z, y), y) (or its share)",
                 "test accuracy",
                 "TSTR accuracy", "intra-class FID", "domain FID", "precision", "recall"], lines)


if __name__ == "__main__":
    main()
