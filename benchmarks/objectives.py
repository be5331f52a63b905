"""Every objective of the family on the same nets, data and labels (digits, 10 labels per
class, the MLP pair), against the loss network trained on the labels alone.

    python benchmarks/objectives.py [--objectives all] [--seeds 0,1,2] [--epochs N] [--jobs 2]
                                    [--update]

Prints a markdown table of test accuracy (mean ± std over seeds); writes JSON and CSV.
`--jobs 2` runs two single-threaded trainings side by side (2-core machines).
`--update` re-measures only the named objectives: their rows replace the old ones in the
existing objectives.json (the meta records which objectives were re-measured, and when).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import fmt, machine, run_train, write_outputs

from ganaug.objectives import OBJECTIVES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objectives", default="all")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=None, help="default: the default job's")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--update", action="store_true",
                   help="replace only these objectives' rows in the existing results")
    args = p.parse_args()
    names = list(OBJECTIVES) if args.objectives == "all" else args.objectives.split(",")
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        p.error(f"unknown objective(s) {', '.join(unknown)}; choose from: all, "
                f"{', '.join(OBJECTIVES)}")
    if args.epochs is not None and args.epochs <= 0 or args.jobs <= 0:
        p.error(f"--epochs and --jobs must be positive, got {args.epochs} and {args.jobs}")
    seeds = [int(s) for s in args.seeds.split(",")]
    extra = ["--epochs", str(args.epochs)] if args.epochs else []
    if args.update:                       # checked before any training
        path = Path(args.out) / "objectives.json"
        if not path.exists():
            raise SystemExit(f"--update: no {path} to update; run without --update first")
        old = json.loads(path.read_text())
        if old["meta"].get("seeds") != seeds or old["meta"].get("epochs", args.epochs) != args.epochs:
            raise SystemExit(f"--update needs the --seeds and --epochs of {path}: seeds "
                             f"{old['meta'].get('seeds')}, epochs {old['meta'].get('epochs')}")
    with tempfile.TemporaryDirectory() as tmp:
        def one(job):
            name, seed = job
            r = run_train(["--objective", name, "--seed", str(seed), *extra],
                          Path(tmp) / f"{name}-{seed}", threads=1 if args.jobs > 1 else None)
            print(f"{name} seed {seed}: {r['test_accuracy']:.4f} ({r['train_seconds']:.0f}s)", flush=True)
            return {"objective": name, **{k: r[k] for k in ("test_accuracy", "balanced_accuracy",
                    "macro_f1", "train_seconds", "epochs", "seed", "lipschitz")}}
        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(one, [(n, s) for n in names for s in seeds]))
    meta = {"machine": machine(), "seeds": seeds, "epochs": args.epochs}
    if args.update:
        meta = {**old["meta"], "epochs": args.epochs,
                "updated": {**old["meta"].get("updated", {}), **{n: meta["machine"]["date"] for n in names}}}
        rows = [r for r in old["rows"] if r["objective"] not in names] + rows
        names = [n for n in OBJECTIVES if any(r["objective"] == n for r in rows)]
    write_outputs(rows, Path(args.out), "objectives", meta)
    sup = [r["test_accuracy"] for r in rows if r["objective"] == "supervised"]
    print(f"\n| objective | what | Lipschitz | test accuracy (mean ± std, {len(seeds)} seeds) | beats labels-only |")
    print("|---|---|---|---|---|")
    for name in names:
        acc = [r["test_accuracy"] for r in rows if r["objective"] == name]
        lip = next(r["lipschitz"] for r in rows if r["objective"] == name)
        beats = "" if name == "supervised" or not sup else ("yes" if sum(acc) / len(acc) > sum(sup) / len(sup) else "no")
        print(f"| {name} | {OBJECTIVES[name].description} | {lip} | {fmt(acc)} | {beats} |")


if __name__ == "__main__":
    main()
