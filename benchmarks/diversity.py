"""The mixers' diversity check on trained samplers: what ``SyntheticMix(...).diversity`` and
``BatchMixer(...).diversity`` read for each run folder, beside the run's `ganaug eval`
recall and TSTR accuracy (when ``eval.json`` is there), so that the warning line
(``ganaug.checks.DIVERSITY_WARN``) can be checked against samplers known to have collapsed
or not.

    python benchmarks/diversity.py --runs RUN [RUN ...] [--data-root DIR] [--fraction 0.5]
                                   [--batch-size 64] [--seed 0] [--name NAME]

Each run's own data set and labeled split (its config's ``labels_per_class`` and
``data_seed``) are the real items, as in benchmarks/augment.py: ``SyntheticMix(labeled, run,
fraction=F)`` reads its first bank against the labeled items, and ``BatchMixer(run, F)``
its probe (20 per class) against the first shuffled batch of the labeled items. Also the
probe against ``--reference`` real training items per class (default 20), which does not
depend on the split's size. ``--seed`` seeds these probes and draws; each row's ``seed`` is
the sampler's training seed (its config's), ``probe_seed`` the ``--seed`` (files written
before 2026-12-07 hold the probe seed in ``seed``). Prints a markdown table and writes
diversity[-NAME].json and .csv under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from _common import OUT_HELP, machine, print_table, write_outputs


def measure(run: Path, data_root: str | None, fraction: float, batch_size: int, seed: int,
            reference: int) -> dict:
    import torch

    from ganaug import BatchMixer, SyntheticMix, TrainConfig, load_dataset
    from ganaug._io import safe_torch_load
    from ganaug.checks import pair_distances, pooled, relative_spread
    from ganaug.data import split_labeled

    cfg = TrainConfig.from_dict(safe_torch_load(run / "checkpoint.pt")["config"])
    train_set, _ = load_dataset(cfg.dataset, data_root or cfg.data_root, False, cfg.image_size)
    lab, _ = split_labeled(train_set, cfg.labels_per_class, cfg.data_seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                    # the values are the point here
        mix = SyntheticMix(lab, run, fraction=fraction, seed=seed, device="cpu")
        mixer = BatchMixer(run, fraction, seed=seed, device="cpu")
        order = torch.randperm(len(lab), generator=torch.Generator().manual_seed(seed))
        idx = order[:batch_size]
        mixer(lab.images[idx], lab.targets[idx])
        C = lab.num_classes
        g = torch.Generator().manual_seed(seed)
        ref = torch.cat([torch.nonzero(train_set.targets == c).flatten()[
            torch.randperm(int((train_set.targets == c).sum()), generator=g)[:reference]]
            for c in range(C)])
        probe = torch.arange(C).repeat_interleave(20)
        syn = pooled(mix.sampler(probe, seed))
        to_reference = relative_spread(pair_distances(syn, probe, C),
                                       pair_distances(pooled(train_set.images[ref]),
                                                      train_set.targets[ref], C))
    row = {"run": str(run), "dataset": cfg.dataset, "labels_per_class": cfg.labels_per_class,
           "seed": cfg.seed, "probe_seed": seed, "fraction": fraction,
           "synthetic_mix": mix.diversity,
           "batch_mixer": mixer.diversity, "reference": to_reference,
           "label_agreement": mix.label_agreement}
    ev = run / "eval.json"
    if ev.exists():
        q = json.loads(ev.read_text())["quality"]
        row.update(recall=q["recall"]["value"], tstr_accuracy=q["tstr_accuracy"]["value"])
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, type=Path, help="trained run folders")
    p.add_argument("--data-root", default=None, help="torchvision root (default: each run's)")
    p.add_argument("--fraction", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--reference", type=int, default=20, help="real items per class")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the probes and draws (rows: probe_seed; their seed is each "
                        "run's training seed)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                   help=OUT_HELP)
    p.add_argument("--name", default=None, help="suffix of the output files")
    args = p.parse_args(argv)
    if not 0 < args.fraction < 1:
        p.error(f"--fraction takes a share in (0, 1), got {args.fraction:g}")
    if args.batch_size < 2 or args.reference < 2:
        p.error("--batch-size and --reference must be at least 2")
    for run in args.runs:
        if not (run / "checkpoint.pt").is_file():
            p.error(f"--runs: {run} has no checkpoint.pt; pass folders that `ganaug train` "
                    f"wrote")
    rows = []
    for run in args.runs:
        rows.append(measure(run, args.data_root, args.fraction, args.batch_size, args.seed,
                            args.reference))
        print(f"measured {run}", file=sys.stderr, flush=True)

    def f(v, spec=".3f"):
        return "n/a" if v is None else format(v, spec)

    print_table(f"diversity (relative spread; warns under the line), fraction {args.fraction:g}",
                ["run", "SyntheticMix", "BatchMixer", f"{args.reference}/class reference",
                 "label agreement", "recall", "TSTR"],
                [[r["run"], f(r["synthetic_mix"]), f(r["batch_mixer"]), f(r["reference"]),
                  f(r["label_agreement"]), f(r.get("recall")), f(r.get("tstr_accuracy"))]
                 for r in rows])
    name = "diversity" + (f"-{args.name}" if args.name else "")
    write_outputs(rows, args.out, name, {"args": {k: str(v) if isinstance(v, Path) else v
                                                  for k, v in vars(args).items()
                                                  if k != "runs"},
                                         "runs": [str(r) for r in args.runs],
                                         "machine": machine()})
    print(f"wrote {args.out / name}.json and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
