"""What ``--patience P`` would have done to runs already trained with ``--val-per-class``.

    python benchmarks/patience.py RUN [RUN ...] [--patience 5,10,20] [--out DIR] [--name NAME]

Patience changes nothing before it stops a run (every epoch re-seeds from the seed and the
epoch), so its effect on a run is read off the run's ``metrics.jsonl``: for each P, the
epoch after which ``ganaug.train``'s own rule (the one ``train`` applies) stops it, the
epochs that saves, and the test accuracy of the epoch ``best.pt`` would then hold, next to
the run's last epoch and the epoch validation chose over the whole run. RUN is a run
folder, or a ``--seeds`` folder (its ``seed-N`` runs). A run stopped by its time limit is
replayed over the epochs it trained: a P that never fired there says only that it did
not fire by then. Prints a table, and with ``--out OUT`` writes ``OUT/NAME.json`` and
``.csv`` (the committed replay of benchmarks/README.md is in ``benchmarks/results/patience``;
without ``--out`` nothing is written, so replaying your own runs leaves it alone).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import machine, print_table, write_outputs

from ganaug.train import _no_better, best_record


def runs_in(path: Path) -> list[Path]:
    """The run folders of RUN: itself, or its ``seed-N`` folders."""
    if (path / "metrics.jsonl").is_file():
        return [path]
    seeds = sorted(p.parent for p in path.glob("seed-*/metrics.jsonl"))
    if not seeds:
        raise ValueError(f"{path} holds no metrics.jsonl (nor seed-N/metrics.jsonl): point at "
                         f"a run folder of `ganaug train`")
    return seeds


def replay(run: Path, patience: list[int]) -> list[dict]:
    """One row per patience for ``run`` (trained with validation images)."""
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    if best_record(history) is None:
        raise ValueError(f"{run} has no val_accuracy: train it with --val-per-class N")
    planned = json.loads((run / "config.json").read_text())["epochs"]
    chosen, last = best_record(history), history[-1]
    rows = []
    for p in patience:
        stop = next((k for k in range(1, len(history) + 1)
                     if _no_better(p, history[:k], planned, 1)), None)
        kept = history[:stop] if stop else history
        pick = best_record(kept)
        rows.append({"run": str(run), "patience": p, "epochs_planned": planned,
                     "epochs_trained": len(history), "stopped_after": stop,
                     "epochs_saved": len(history) - len(kept),
                     "chosen_epoch": pick["epoch"], "chosen_test_accuracy": pick["test_accuracy"],
                     "whole_run_chosen_epoch": chosen["epoch"],
                     "whole_run_chosen_test_accuracy": chosen["test_accuracy"],
                     "last_test_accuracy": last["test_accuracy"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN")
    p.add_argument("--patience", default="5,10,20", help="comma-separated epochs (default "
                   "5,10,20)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the table's JSON and CSV (default: none, the table alone; "
                        "the committed replay is in benchmarks/results/patience)")
    p.add_argument("--name", default="patience")
    args = p.parse_args(argv)
    try:
        patience = [int(v) for v in args.patience.split(",")]
    except ValueError:
        p.error(f"--patience takes whole numbers separated by commas, got {args.patience!r}")
    if any(v <= 0 for v in patience):
        p.error(f"--patience takes positive epochs, got {args.patience!r}")
    try:
        rows = [r for path in args.runs for run in runs_in(path) for r in replay(run, patience)]
    except (OSError, ValueError, KeyError) as e:
        print(f"patience.py: error: {e}", file=sys.stderr)
        return 2
    print_table("test accuracy of the epoch best.pt holds, with and without patience",
                ["run", "patience", "stopped after", "epochs saved", "chosen epoch: test acc",
                 "whole run: chosen epoch, test acc", "last epoch: test acc"],
                [[r["run"], str(r["patience"]),
                  f"{r['stopped_after']} of {r['epochs_planned']}" if r["stopped_after"]
                  else f"did not stop ({r['epochs_trained']} trained)",
                  f"{r['epochs_saved']}", f"{r['chosen_epoch']}: {r['chosen_test_accuracy']:.4f}",
                  f"{r['whole_run_chosen_epoch']}: {r['whole_run_chosen_test_accuracy']:.4f}",
                  f"{r['last_test_accuracy']:.4f}"] for r in rows])
    if args.out is not None:
        write_outputs(rows, args.out, args.name, {"machine": machine(), "patience": patience,
                                                  "runs": [str(r) for r in args.runs]})
        print(f"wrote {args.out / args.name}.json and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
