"""Every objective of the family on the same nets, data and labels (digits, 10 labels per
class, the MLP pair), against the loss network trained on the labels alone.

    python benchmarks/objectives.py [--objectives all] [--seeds 0,1,2] [--epochs N] [--jobs 2]
                                    [--extra='--net-option input_noise=0.15'] [--name N]
                                    [--update]

`--objectives` takes objective names, each optionally with a Lipschitz regulariser other than
its own, NAME:LIPSCHITZ (e.g. `gan:spectral-norm`, SN-GAN): such a variant is a row of its own.
Prints a markdown table of test accuracy (mean ± std over seeds); writes JSON and CSV.
`--jobs 2` runs two single-threaded trainings side by side (2-core machines).
`--update` re-measures only the named objectives: their rows replace the old ones in the
existing objectives.json (the meta's ``machine`` stays the first run's; ``updated`` records
which objectives were re-measured, when and on which machine: {"date", "machine"}, or the
date alone in files written before it recorded the machine).
`--extra` adds `ganaug train` flags to every run (not the objective, its regulariser, the seed
or the epochs, which the script sets); `--name` names the output files (default objectives).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import OUT_HELP, check_train_configs, extra_train_flags, fmt, machine, parse_list, \
    run_train, write_outputs

from ganaug.config import LIPSCHITZ
from ganaug.objectives import OBJECTIVES


REGULARISERS = {"none": "no regulariser", "weight-decay": "weight decay",
                "gp": "gradient penalty", "zero-gp": "zero-centred gradient penalty",
                "div": "WGAN-div penalty", "clip": "weight clipping",
                "spectral-norm": "spectral normalisation"}      # the words of LIPSCHITZ's names


def what(name: str) -> str:
    """The table's "what" of a variant: its objective's description, with the regulariser
    the variant trains with in place of the objective's own."""
    objective, _, lipschitz = name.partition(":")
    obj = OBJECTIVES[objective]
    own = obj.default_lipschitz
    if not lipschitz or lipschitz == own:
        return obj.description
    text = obj.description.replace(f", {REGULARISERS[own]}", "")
    if own == "none":
        return f"{text}, with {REGULARISERS[lipschitz]}"
    if lipschitz == "none":
        return f"{text}, without {REGULARISERS[own]}"
    return f"{text}, {REGULARISERS[lipschitz]} in place of {REGULARISERS[own]}"


def variant(row: dict) -> str:
    """A row's variant: its objective, or OBJECTIVE:LIPSCHITZ when run with another
    regulariser (rows written before variants existed are the objective's own)."""
    return row.get("variant", row["objective"])


def parse_variants(spec: str) -> tuple[list[str], list[str]]:
    """``all`` or comma-separated NAME[:LIPSCHITZ] -> (variants, what is unknown)."""
    if spec == "all":
        return list(OBJECTIVES), []
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n.partition(":")[0] not in OBJECTIVES
           or (":" in n and n.partition(":")[2] not in LIPSCHITZ)]
    return names, bad


def order(names: list[str]) -> list[str]:
    """The table's order: OBJECTIVES', each objective's own row before its variants."""
    return sorted(names, key=lambda n: (list(OBJECTIVES).index(n.partition(":")[0]), n))


def train_flags(name: str, seed: int, extra: list[str]) -> list[str]:
    """`ganaug train`'s flags for variant ``name`` (``OBJECTIVE[:LIPSCHITZ]``) and ``seed``."""
    objective, _, lipschitz = name.partition(":")
    return ["--objective", objective, *(["--lipschitz", lipschitz] if lipschitz else []),
            "--seed", str(seed), *extra]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objectives", default="all")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=None, help="default: the default job's")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help=OUT_HELP)
    p.add_argument("--extra", default="",
                   help="extra `ganaug train` flags for every run, space-separated; write them "
                        "with '=' (--extra='--net-option input_noise=0.15')")
    p.add_argument("--name", default="objectives", help="the output files' name")
    p.add_argument("--update", action="store_true",
                   help="replace only these objectives' rows in the existing results")
    args = p.parse_args()
    user_extra = args.extra.split()
    extra_train_flags(p, user_extra, {
        **dict.fromkeys(("objective", "lipschitz", "seed", "seeds"), "each row sets it"),
        "epochs": "--epochs of this script", "recipe": "a recipe could change the objective"})
    if args.objectives != "all":         # a name twice would train twice into one folder
        parse_list(p, args.objectives, "--objectives", str)
    names, unknown = parse_variants(args.objectives)
    if unknown or not names:
        p.error(f"unknown objective(s) {', '.join(unknown) or repr(args.objectives)}; choose "
                f"from: all, {', '.join(OBJECTIVES)}, each optionally as NAME:LIPSCHITZ with "
                f"LIPSCHITZ one of {', '.join(LIPSCHITZ)}")
    if args.epochs is not None and args.epochs <= 0 or args.jobs <= 0:
        p.error(f"--epochs and --jobs must be positive, got {args.epochs} and {args.jobs}")
    seeds = parse_list(p, args.seeds, "--seeds")
    extra = (["--epochs", str(args.epochs)] if args.epochs else []) + user_extra
    check_train_configs(p, {name: train_flags(name, seeds[0], extra) for name in names})
    if args.update:                       # checked before any training
        path = Path(args.out) / f"{args.name}.json"
        if not path.exists():
            raise SystemExit(f"--update: no {path} to update; run without --update first")
        old = json.loads(path.read_text())
        if (old["meta"].get("seeds") != seeds or old["meta"].get("epochs", args.epochs) != args.epochs
                or old["meta"].get("extra", []) != user_extra):
            raise SystemExit(f"--update needs the --seeds, --epochs and --extra of {path}: seeds "
                             f"{old['meta'].get('seeds')}, epochs {old['meta'].get('epochs')}, "
                             f"extra {' '.join(old['meta'].get('extra', [])) or 'none'}")
    with tempfile.TemporaryDirectory() as tmp:
        def one(job):
            name, seed = job
            objective = name.partition(":")[0]
            r = run_train(train_flags(name, seed, extra),
                          Path(tmp) / f"{name.replace(':', '-')}-{seed}",
                          threads=1 if args.jobs > 1 else None)
            print(f"{name} seed {seed}: {r['test_accuracy']:.4f} ({r['train_seconds']:.0f}s)", flush=True)
            return {"objective": objective, "variant": name,
                    **{k: r[k] for k in ("test_accuracy", "balanced_accuracy", "macro_f1",
                                         "train_seconds", "epochs", "seed", "lipschitz")}}
        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(one, [(n, s) for n in names for s in seeds]))
    meta = {"machine": machine(), "seeds": seeds, "epochs": args.epochs, "extra": user_extra}
    if args.update:
        # the rows of ``names`` ran here, on this machine, not on the first run's
        ran = {"date": meta["machine"]["date"], "machine": meta["machine"]}
        meta = {**old["meta"], "epochs": args.epochs, "extra": user_extra,
                "updated": {**old["meta"].get("updated", {}), **dict.fromkeys(names, ran)}}
        rows = [r for r in old["rows"] if variant(r) not in names] + rows
        names = list({variant(r): None for r in rows})
    write_outputs(rows, Path(args.out), args.name, meta)
    sup = [r["test_accuracy"] for r in rows if variant(r) == "supervised"]
    print(f"\n| objective | what | Lipschitz | test accuracy (mean ± std, {len(seeds)} seeds) | beats labels-only |")
    print("|---|---|---|---|---|")
    for name in order(names):
        acc = [r["test_accuracy"] for r in rows if variant(r) == name]
        lip = next(r["lipschitz"] for r in rows if variant(r) == name)
        objective = name.partition(":")[0]
        beats = "" if name == "supervised" or not sup else ("yes" if sum(acc) / len(acc) > sum(sup) / len(sup) else "no")
        print(f"| {objective} | {what(name)} | {lip} | {fmt(acc)} | {beats} |")


if __name__ == "__main__":
    main()
