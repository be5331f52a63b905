"""Does SyntheticMix's quality gate (``gate=G``: keep only samples that the CLS-GAN's own
classifier assigns to their label with confidence >= G) give a better mix? Side by side on
the same trained samplers: for each run and each G, how many samples pass, how many of the
samples carry their label (read by `ganaug eval`'s domain classifier, trained on every real
training image with its true label), and the few-labels benchmark's classifier
(benchmarks/augment.py: the small MLP on the labeled images with ``SyntheticMix(fraction=
0.5, gate=G)``), next to the same classifier on the labels alone.

    python benchmarks/gate.py [--gates 0,0.5,0.7,0.9] [--seeds 0,1,2] [--jobs 2]
                              [--extra "--arch conv --epochs 30"] [--out benchmarks/results]
    python benchmarks/gate.py --runs RUN [RUN ...]      # run folders already trained
    python benchmarks/gate.py --table RESULTS.json [MORE.json ...]

Without ``--runs`` it trains ``ganaug train --seed S EXTRA`` for each seed first (``--jobs``
side by side, one thread each). G = 0 is no gate. ``--probe N``: samples per class drawn to
read the pass rate and the label agreement (default 500). A gate that cannot fill a class
(SyntheticMix's error) is recorded as n/a for the mix. Prints a markdown table (mean ± std
over seeds) and writes gate[-NAME].json and .csv.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import (add_run_flags, extra_train_flags, fmt, gate_failed, ganaug_env, machine,
                     parse_list, print_table, run_train, write_outputs)

FRACTION = 0.5              # SyntheticMix's share, as the best row of docs/mixing.md's table
CLF_EPOCHS = 200            # benchmarks/augment.py's classifier budget


def measure_run(run: Path, gates: list[float], probe: int) -> list[dict]:
    """Every gate of ``gates`` on one run folder (in this process)."""
    import torch
    from torch.utils.data import TensorDataset

    from _classifier import evaluate, train_classifier
    from ganaug import CLSGAN, SyntheticMix, TrainConfig, load_dataset
    from ganaug._io import safe_torch_load
    from ganaug.data import split_labeled
    from ganaug.features import domain_extractor
    from ganaug.mix import gate_mask

    ckpt = safe_torch_load(run / "checkpoint.pt")
    cfg = TrainConfig.from_dict(ckpt["config"])
    model = CLSGAN.from_checkpoint(ckpt).to("cpu")
    train_set, test = load_dataset(cfg.dataset, cfg.data_root, False, cfg.image_size)
    lab, _ = split_labeled(train_set, cfg.labels_per_class, cfg.data_seed)
    real = TensorDataset(lab.images, lab.targets)
    C, d = lab.num_classes, math.prod(lab.image_shape)
    kw = dict(num_classes=C, in_features=d, seed=cfg.seed, batch_size=64,
              steps=CLF_EPOCHS * math.ceil(len(lab) / 64))
    labeled_only = evaluate(train_classifier(real, **kw), test.images, test.targets, C)["accuracy"]
    ruler, _ = domain_extractor(train_set, cache_dir=run / "cache", device="cpu")
    y = torch.arange(C).repeat_interleave(probe)
    with torch.no_grad():
        own = float((model.predict(test.images).cpu() == test.targets).float().mean())
        ruler_acc = float((ruler(test.images).argmax(1) == test.targets).float().mean())
        # one probe per class: the gate's confidence and the ruler's reading of every sample
        x = model.sample(y, torch.Generator().manual_seed(10_000 + cfg.seed))
        logits = model.activations(x).float()
        agrees = ruler(x).argmax(1) == y
    rows = []
    for g in gates:
        passed = gate_mask(logits, y, g) if g else torch.ones_like(y, dtype=torch.bool)
        per_class = [float(passed[y == c].float().mean()) for c in range(C)]
        kept = agrees[passed]
        try:
            mix = SyntheticMix(real, model, fraction=FRACTION, seed=cfg.seed, refresh_every=1,
                               gate=g or None)
            clf = train_classifier(mix, on_epoch=mix.set_epoch, **kw)
            mix_acc, mix_error = evaluate(clf, test.images, test.targets, C)["accuracy"], None
        except ValueError as e:
            if not gate_failed(e):
                raise
            mix_acc, mix_error = None, str(e)
        rows.append({"run": str(run), "seed": cfg.seed, "gate": g, "epochs": int(ckpt["epoch"]),
                     "dataset": cfg.dataset, "arch": model.arch, "objective": cfg.objective,
                     "pass_rate": float(passed.float().mean()),
                     "pass_rate_min_class": min(per_class),
                     "label_agreement": float(kept.float().mean()) if len(kept) else None,
                     "mix_accuracy": mix_acc, "mix_error": mix_error,
                     "labeled_only_accuracy": labeled_only, "own_accuracy": own,
                     "ruler_test_accuracy": ruler_acc})
    return rows


def evaluate_in_child(run: Path, gates: list[float], probe: int,
                      threads: int | None) -> list[dict]:
    e = subprocess.run([sys.executable, __file__, "--evaluate", str(run), "--gates",
                        ",".join(map(str, gates)), "--probe", str(probe)],
                       capture_output=True, text=True, env=ganaug_env(threads))
    if e.returncode != 0:
        raise RuntimeError(f"evaluating {run} failed:\n{e.stderr[-2000:]}")
    rows = json.loads(e.stdout.strip().splitlines()[-1])
    for r in rows:
        num = lambda v: "n/a" if v is None else f"{v:.4f}"     # noqa: E731
        print(f"{run} gate {r['gate']:g}: pass rate {r['pass_rate']:.3f}, label agreement "
              f"{num(r['label_agreement'])}, mix accuracy {num(r['mix_accuracy'])}", flush=True)
    return rows


def one_seed(seed: int, gates: list[float], probe: int, extra: list[str], tmp: Path,
             threads: int | None) -> list[dict]:
    out = tmp / f"seed-{seed}"
    r = run_train(["--seed", str(seed), *extra], out, threads)
    return [{**row, "run": f"ganaug train --seed {seed} {' '.join(extra)}".strip(),
             "train_seconds": r["train_seconds"]}
            for row in evaluate_in_child(out, gates, probe, threads)]


def summary(rows: list[dict]) -> None:
    gates = sorted({r["gate"] for r in rows})
    first = [r for r in rows if r["gate"] == gates[0]]           # one row per run
    seeds = sorted({r["seed"] for r in first})

    def cell(rs, key, digits=4):
        vals = [r[key] for r in rs if r[key] is not None]
        miss = len(rs) - len(vals)
        if not vals:
            return "n/a"
        text = fmt(vals) if len(vals) > 1 else f"{vals[0]:.{digits}f}"
        return text + (f" ({miss} of {len(rs)} n/a)" if miss else "")

    lines = [["the labeled images alone", "", "", "", cell(first, "labeled_only_accuracy")]]
    for g in gates:
        rs = [r for r in rows if r["gate"] == g]
        lines.append([f"+ SyntheticMix {FRACTION:g}, gate {g:g}" if g else
                      f"+ SyntheticMix {FRACTION:g}, no gate", cell(rs, "pass_rate"),
                      cell(rs, "pass_rate_min_class"), cell(rs, "label_agreement"),
                      cell(rs, "mix_accuracy")])
    print_table(f"\nseeds {', '.join(map(str, seeds))} (mean ± std); the CLS-GAN's own test "
                f"accuracy {cell(first, 'own_accuracy')}; the domain classifier's "
                f"{cell(first, 'ruler_test_accuracy')}",
                ["classifier trained on", "samples passing", "passing, fewest class",
                 "passing samples the domain classifier reads as their label",
                 "test accuracy"], lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gates", default="0,0.5,0.7,0.9", help="confidences; 0: no gate")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--runs", nargs="+", default=None, metavar="RUN",
                   help="trained run folders to measure instead of training --seeds")
    p.add_argument("--probe", type=int, default=500, help="samples per class for the rates")
    p.add_argument("--name", default="", help="results file: gate-NAME.json (default gate.json)")
    add_run_flags(p, "runs")
    args = p.parse_args()
    if args.table:
        summary([row for f in args.table for row in json.loads(Path(f).read_text())["rows"]])
        return
    gates = parse_list(p, args.gates, "--gates", float)
    seeds = parse_list(p, args.seeds, "--seeds")
    if any(not 0 <= g <= 1 for g in gates):
        p.error(f"--gates take confidences in [0, 1] (0: no gate), got {args.gates}")
    if args.probe < 1:
        p.error(f"--probe must be at least 1, got {args.probe}")
    if args.evaluate is not None:
        print(json.dumps(measure_run(Path(args.evaluate), gates, args.probe)))
        return
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    extra = args.extra.split()
    if args.runs and extra:
        p.error("--extra trains new runs; with --runs nothing is trained")
    for run in args.runs or []:
        if not (Path(run) / "checkpoint.pt").is_file():
            p.error(f"--runs: {run} holds no checkpoint.pt; pass folders written by "
                    f"`ganaug train`")
    extra_train_flags(p, extra, dict.fromkeys(("seed", "seeds", "out", "resume"),
                                              "set per run here"))
    threads = 1 if args.jobs > 1 else None
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        if args.runs:
            futures = [pool.submit(evaluate_in_child, Path(r).resolve(), gates, args.probe,
                                   threads) for r in args.runs]
        else:
            futures = [pool.submit(one_seed, s, gates, args.probe, extra, Path(tmp), threads)
                       for s in seeds]
        rows = [row for f in futures for row in f.result()]
    write_outputs(rows, Path(args.out), f"gate-{args.name}" if args.name else "gate",
                  {"machine": machine(), "gates": gates, "seeds": None if args.runs else seeds,
                   "runs": args.runs, "extra": extra, "jobs": args.jobs, "probe": args.probe,
                   "mix_fraction": FRACTION, "clf_epochs": CLF_EPOCHS})
    summary(rows)


if __name__ == "__main__":
    main()
